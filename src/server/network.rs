//! Replica-to-replica transport: openraft's RPCs, proposal forwarding and
//! read-index requests, all as postcard bytes inside the `Raft` gRPC service.
//!
//! One lazily-connected HTTP/2 channel per peer is shared by every RPC to it.
//! Each successful response records the peer's last contact, which feeds the
//! `Status` report and the leader's fail-fast quorum check.
//!
//! A peer is dialled at its membership address unless `--replica-routes`
//! names another address for it (a proxy, tunnel or NAT hop). Routes are a
//! property of this replica's network position, not of the cluster, so they
//! never enter the replicated membership: every replica keeps the same
//! membership (and tells clients the same leader address) whatever path it
//! uses to reach its peers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::proto::raft_client::RaftClient;
use crate::proto::RaftBytes;
use crate::server::command::{CommandResult, Proposal};
use crate::server::raft_types::{Node, NodeId, TypeConfig};

/// Largest gRPC message between replicas (snapshot chunks are 3 MiB).
pub const MAX_RAFT_MESSAGE: usize = 64 * 1024 * 1024;

/// Why a forwarded proposal or read-index request failed on the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteFailure {
    #[error("replica {0} is not the leader")]
    NotLeader(NodeId),
    #[error("{0}")]
    Unavailable(String),
}

pub type ForwardReply = Result<CommandResult, RemoteFailure>;
pub type ReadIndexReply = Result<u64, RemoteFailure>;

/// A forwarded proposal: the leader batches it with its own.
pub type ForwardRequest = Proposal;

pub fn encode<T: Serialize>(value: &T) -> Result<RaftBytes, tonic::Status> {
    postcard::to_allocvec(value)
        .map(|data| RaftBytes { data })
        .map_err(|e| tonic::Status::internal(format!("cannot encode message: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &RaftBytes) -> Result<T, tonic::Status> {
    postcard::from_bytes(&bytes.data)
        .map_err(|e| tonic::Status::invalid_argument(format!("cannot decode message: {e}")))
}

/// Channels to peers and when each last answered.
#[derive(Debug, Default)]
pub struct Peers {
    channels: Mutex<BTreeMap<String, Channel>>,
    contacts: Mutex<BTreeMap<NodeId, Instant>>,
    /// Addresses to dial instead of the membership address, by peer id.
    routes: BTreeMap<NodeId, String>,
}

impl Peers {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Peers dialled through `routes` where one is given for them.
    pub fn with_routes(routes: BTreeMap<NodeId, String>) -> Arc<Self> {
        Arc::new(Self {
            routes,
            ..Self::default()
        })
    }

    /// The address to dial for `peer`, whose membership address is
    /// `advertised`.
    pub fn route<'a>(&'a self, peer: NodeId, advertised: &'a str) -> &'a str {
        self.routes.get(&peer).map_or(advertised, String::as_str)
    }

    /// The shared channel to `url` (`host:port`), created on first use.
    pub fn channel(&self, url: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(url) {
            return Ok(ch.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{url}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("bad peer url {url}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        let ch = endpoint.connect_lazy();
        channels.insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    pub fn client(&self, url: &str) -> Result<RaftClient<Channel>, tonic::Status> {
        Ok(RaftClient::new(self.channel(url)?)
            .max_decoding_message_size(MAX_RAFT_MESSAGE)
            .max_encoding_message_size(MAX_RAFT_MESSAGE))
    }

    pub fn touch(&self, peer: NodeId) {
        let mut contacts = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        contacts.insert(peer, Instant::now());
    }

    /// Time since `peer` last answered an RPC, if it ever did.
    pub fn since_contact(&self, peer: NodeId) -> Option<Duration> {
        let contacts = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        contacts.get(&peer).map(|t| t.elapsed())
    }

    /// Forwards a proposal to the leader `leader`, whose membership address
    /// is `url`.
    pub async fn forward(
        &self,
        leader: NodeId,
        url: &str,
        proposal: &ForwardRequest,
        timeout: Duration,
    ) -> Result<ForwardReply, tonic::Status> {
        let mut req = tonic::Request::new(encode(proposal)?);
        req.set_timeout(timeout);
        let reply = self.client(self.route(leader, url))?.forward(req).await?;
        decode(reply.get_ref())
    }

    /// Asks the leader `leader` (membership address `url`) for a
    /// linearizable read index.
    pub async fn read_index(
        &self,
        leader: NodeId,
        url: &str,
        timeout: Duration,
    ) -> Result<ReadIndexReply, tonic::Status> {
        let mut req = tonic::Request::new(encode(&())?);
        req.set_timeout(timeout);
        let reply = self
            .client(self.route(leader, url))?
            .read_index(req)
            .await?;
        decode(reply.get_ref())
    }
}

/// openraft's network factory: one [`PeerConnection`] per target.
#[derive(Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerConnection {
            target,
            url: self.peers.route(target, &node.addr).to_string(),
            peers: self.peers.clone(),
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    url: String,
    peers: Arc<Peers>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        kind: RaftRpc,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self
            .peers
            .client(&self.url)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let payload =
            postcard::to_allocvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftBytes { data: payload });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            RaftRpc::Append => client.append_entries(request).await,
            RaftRpc::Vote => client.vote(request).await,
            RaftRpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            // Connection refused / reset: back off instead of spinning.
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        self.peers.touch(self.target);
        let result: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(&reply.get_ref().data)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum RaftRpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(RaftRpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RaftRpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RaftRpc::Vote, &rpc, &option).await
    }

    /// Retry an unreachable peer quickly at first (a restarted replica should
    /// rejoin fast), then settle at half a second.
    fn backoff(&self) -> openraft::network::Backoff {
        let steps = [50u64, 100, 200, 300]
            .into_iter()
            .chain(std::iter::repeat(500));
        openraft::network::Backoff::new(steps.map(Duration::from_millis))
    }
}
