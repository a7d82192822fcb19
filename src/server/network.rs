//! Replica-to-replica transport, the dialling side.
//!
//! openraft's RPCs (AppendEntries, Vote, InstallSnapshot) go over framed TCP
//! connections (`wire.rs`) on the peer's one port: a unary HTTP/2 call per
//! AppendEntries cost several task wakeups and header work, a dedicated
//! framed connection costs one write and one read. openraft makes one
//! [`PeerConnection`] per replication stream, election or leadership check;
//! each keeps its own connection, dropped on any error or timeout (so a late
//! answer is never taken for the next call's). Connections of short-lived
//! `PeerConnection`s go back to a small per-peer idle pool, so a
//! linearizable read (a heartbeat round on fresh `PeerConnection`s) does
//! not dial every peer anew.
//!
//! Proposal forwarding and read-index requests stay on gRPC: postcard bytes
//! inside the `Raft` service, over one lazily-connected HTTP/2 channel per
//! peer.
//!
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
use crate::server::storage::durability::Durability;
use crate::server::wire::{self, Kind};

/// Largest message between replicas, gRPC or Raft frame (snapshot chunks
/// are 3 MiB).
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

/// How long a Raft connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle Raft connections kept per peer address.
const IDLE_PER_PEER: usize = 16;

/// Channels and connections to peers, and when each last answered.
#[derive(Debug, Default)]
pub struct Peers {
    channels: Mutex<BTreeMap<String, Channel>>,
    /// Idle Raft connections by dialled address, newest last.
    idle: Mutex<BTreeMap<String, Vec<wire::Conn>>>,
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

    /// An idle Raft connection to `url` that still looks open, if any.
    fn take_idle(&self, url: &str) -> Option<wire::Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(url)?;
        while let Some(conn) = conns.pop() {
            if wire::is_reusable(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a Raft connection between calls for the next `PeerConnection`.
    fn put_idle(&self, url: &str, conn: wire::Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        match idle.get_mut(url) {
            Some(conns) if conns.len() >= IDLE_PER_PEER => {}
            Some(conns) => conns.push(conn),
            None => {
                idle.insert(url.to_string(), vec![conn]);
            }
        }
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
    /// Caps the commit index sent to followers at this replica's durable log.
    pub durability: Durability,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerConnection {
            target,
            url: self.peers.route(target, &node.addr).to_string(),
            peers: self.peers.clone(),
            durability: self.durability.clone(),
            conn: None,
        }
    }
}

/// openraft's client for one target; it calls one RPC at a time.
pub struct PeerConnection {
    target: NodeId,
    /// The address dialled (the route, if one is given).
    url: String,
    peers: Arc<Peers>,
    durability: Durability,
    /// Open between calls; taken out during one, so a call cancelled midway
    /// (openraft's own timeout) drops it.
    conn: Option<wire::Conn>,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.peers.put_idle(&self.url, conn);
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let frame =
            wire::encode_frame(kind, req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let conn = self.conn.take();
        let (peers, url) = (&self.peers, self.url.as_str());
        let exchange = async move {
            let mut conn = match conn.or_else(|| peers.take_idle(url)) {
                Some(conn) => conn,
                None => wire::dial(url, CONNECT_TIMEOUT).await?,
            };
            wire::write_frame(conn.get_mut(), &frame).await?;
            match wire::read_frame(&mut conn).await? {
                Some((got, payload)) if got == kind => Ok((conn, payload)),
                Some((got, _)) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{url} answered a {kind:?} call with a {got:?} frame"),
                )),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{url} closed the connection"),
                )),
            }
        };
        let ttl = option.hard_ttl();
        let (conn, payload) = match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(answer)) => answer,
            // Connection refused / reset / closed: back off instead of spinning.
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(_) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no {kind:?} answer from {url} in {ttl:?}"),
                );
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        self.peers.touch(self.target);
        let result: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // Kept only once the answer made sense.
        self.conn = Some(conn);
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    /// Followers learn no commit past the leader's durable log: they would
    /// apply an entry that only a minority may hold on disk (see
    /// [`crate::server::storage::durability`]).
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        rpc.leader_commit = self.durability.cap_commit(rpc.leader_commit);
        self.call(Kind::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Kind::Vote, &rpc, &option).await
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
