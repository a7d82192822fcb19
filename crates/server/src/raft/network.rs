//! Replica-to-replica transport, the dialling side.
//!
//! Everything one replica asks another goes over framed connections
//! (`wire.rs`) on the peer's one port: openraft's RPCs (AppendEntries,
//! Vote, InstallSnapshot), proposals forwarded to the leader and read-index
//! requests. A unary HTTP/2 call per AppendEntries cost several task wakeups
//! and header work; a dedicated framed connection costs one write and one
//! read. openraft makes one [`PeerConnection`] per replication stream,
//! election or leadership check; each keeps its own connection, dropped on
//! any error. A call that outlives openraft's deadline keeps its connection
//! waiting for the late answer, which the next call reads and discards
//! before it sends its own (so a late answer is never taken for the next
//! call's, and a busy peer is not dialled anew every heartbeat). Idle
//! connections go back to a small per-peer pool. Forwarded proposals,
//! read-index requests and lease questions go to the leader over the lane
//! it opened to this replica (`raft::lanes`) when there is one, and over
//! a pooled connection otherwise.
//!
//! With TLS, each connection is mutually authenticated: this replica
//! presents its certificate and accepts only the peer's own (replica N's
//! certificate when dialling replica N). Only admin calls a follower hands
//! to the leader still use gRPC, over one lazily-connected channel per
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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::snapshot_transport::{Chunked, SnapshotTransport};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::raft::incarnation::Known;
use crate::raft::lanes::{LaneAnswer, LaneRequest, Lanes};
use crate::raft::snapshots;
use crate::raft::typing::TypingNotice;
use crate::raft::wire::{self, Kind};
use crate::state::command::{CommandResult, Proposal};
use crate::storage::durability::Durability;
use crate::storage::raft_types::{Node, NodeId, Snapshot, TypeConfig};
use raftchat_tls::ReplicaTls;

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

/// How long a Raft connection may take to open (TCP and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle Raft connections kept per peer address.
const IDLE_PER_PEER: usize = 16;

/// How long a call's late answer is waited for before the connection is
/// given up and the peer dialled anew. A follower loading a snapshot does
/// not answer heartbeats for seconds; redialling it every 25 ms cost a TLS
/// handshake on both sides each time and left hundreds of connections open
/// on it. A peer whose connection died silently (a partition) is redialled
/// this long after its last answer.
const LATE_LIMIT: Duration = Duration::from_millis(500);

/// One request and response on a connection, owning what it needs so that
/// it can outlive the call that started it.
type Exchange = Pin<Box<dyn Future<Output = io::Result<(wire::Conn, Vec<u8>)>> + Send>>;

/// Channels and connections to peers, and when each last answered.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<BTreeMap<String, Channel>>,
    /// Idle Raft connections by peer and dialled address, newest last.
    idle: Mutex<BTreeMap<(NodeId, String), Vec<wire::Conn>>>,
    contacts: Mutex<BTreeMap<NodeId, Instant>>,
    /// Addresses to dial instead of the membership address, by peer id.
    routes: BTreeMap<NodeId, String>,
    /// This replica's certificate, for every connection to a peer; `None`
    /// on a plaintext (loopback) cluster.
    tls: Option<ReplicaTls>,
    dial_tls: Option<wire::DialTls>,
    /// Connections leaders opened to this replica to take its forwarded
    /// calls (`raft::lanes`), preferred to dialling the leader.
    pub lanes: Arc<Lanes>,
}

impl Peers {
    /// Peers dialled through `routes` where one is given for them, over
    /// TLS when `tls` is given.
    pub fn new(routes: BTreeMap<NodeId, String>, tls: Option<ReplicaTls>) -> Arc<Self> {
        let dial_tls = tls.as_ref().map(|t| wire::DialTls {
            config: t.raft_client.clone(),
        });
        Arc::new(Self {
            routes,
            tls,
            dial_tls,
            ..Self::default()
        })
    }

    /// The address to dial for `peer`, whose membership address is
    /// `advertised`.
    pub fn route<'a>(&'a self, peer: NodeId, advertised: &'a str) -> &'a str {
        self.routes.get(&peer).map_or(advertised, String::as_str)
    }

    /// The shared gRPC channel to `url` (`host:port`), created on first use.
    pub fn channel(&self, url: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(url) {
            return Ok(ch.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{url}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("bad peer url {url}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.grpc_client())
                .map_err(|e| tonic::Status::internal(format!("cannot set up TLS to {url}: {e}")))?;
        }
        let ch = endpoint.connect_lazy();
        channels.insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    /// A new Raft connection to `peer`, whose membership address is
    /// `advertised`, by its route if it has one.
    pub async fn dial(&self, peer: NodeId, advertised: &str) -> io::Result<wire::Conn> {
        self.dial_at(peer, self.route(peer, advertised), advertised)
            .await
    }

    /// A new Raft connection to `peer` at `url`; its certificate must
    /// name the host of `advertised`.
    async fn dial_at(&self, peer: NodeId, url: &str, advertised: &str) -> io::Result<wire::Conn> {
        wire::dial(
            peer,
            url,
            advertised,
            self.dial_tls.as_ref(),
            CONNECT_TIMEOUT,
        )
        .await
    }

    /// Asks `leader` over the lane it opened to this replica. `None` if
    /// there is none, or it closed before answering: the caller dials.
    async fn over_lane(
        &self,
        leader: NodeId,
        request: LaneRequest<'_>,
        timeout: Duration,
    ) -> Option<io::Result<LaneAnswer>> {
        match self.lanes.call(leader, &request, timeout).await? {
            Ok(answer) => {
                self.touch(leader);
                Some(Ok(answer))
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Some(Err(e)),
            Err(_) => None,
        }
    }

    /// An idle Raft connection to `peer` at `url` that still looks open.
    fn take_idle(&self, peer: NodeId, url: &str) -> Option<wire::Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(&(peer, url.to_string()))?;
        while let Some(conn) = conns.pop() {
            if wire::is_reusable(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a Raft connection between calls for the next caller.
    fn put_idle(&self, peer: NodeId, url: &str, conn: wire::Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry((peer, url.to_string())).or_default();
        if conns.len() < IDLE_PER_PEER {
            conns.push(conn);
        }
    }

    pub fn touch(&self, peer: NodeId) {
        let mut contacts = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        contacts.insert(peer, Instant::now());
    }

    /// How many of `replicas` there are, and how many answered within
    /// `within` (`me` always counts as answering).
    pub fn heard_within(
        &self,
        replicas: impl Iterator<Item = NodeId>,
        me: NodeId,
        within: Duration,
    ) -> (usize, usize) {
        let contacts = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        replicas.fold((0, 0), |(total, heard), id| {
            let recent = id == me || contacts.get(&id).is_some_and(|t| t.elapsed() < within);
            (total + 1, heard + usize::from(recent))
        })
    }

    /// Time since `peer` last answered an RPC, if it ever did.
    pub fn since_contact(&self, peer: NodeId) -> Option<Duration> {
        let contacts = self.contacts.lock().unwrap_or_else(|e| e.into_inner());
        contacts.get(&peer).map(|t| t.elapsed())
    }

    /// One request and its response on `conn` (or an idle or new
    /// connection to `peer`, dialled at `url`; its certificate must name
    /// the host of `advertised`). Returns the connection for reuse.
    async fn exchange(
        &self,
        peer: NodeId,
        url: &str,
        advertised: &str,
        conn: Option<wire::Conn>,
        kind: Kind,
        frame: &[u8],
    ) -> io::Result<(wire::Conn, Vec<u8>)> {
        let mut conn = match conn.or_else(|| self.take_idle(peer, url)) {
            Some(conn) => conn,
            None => self.dial_at(peer, url, advertised).await?,
        };
        wire::write_frame(conn.get_mut(), frame).await?;
        match wire::read_frame(&mut conn).await? {
            Some((got, payload)) if got == kind => Ok((conn, payload)),
            Some((got, _)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{url} answered a {kind:?} call with a {got:?} frame"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{url} closed the connection"),
            )),
        }
    }

    /// One call to `peer` (membership address `advertised`) on a pooled
    /// connection, bounded by `timeout`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: NodeId,
        advertised: &str,
        kind: Kind,
        req: &Req,
        timeout: Duration,
    ) -> io::Result<Resp> {
        let url = self.route(peer, advertised);
        let frame = wire::encode_frame(kind, req)?;
        let (conn, payload) = tokio::time::timeout(
            timeout,
            self.exchange(peer, url, advertised, None, kind, &frame),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no {kind:?} answer from {url} in {timeout:?}"),
            )
        })??;
        let resp = postcard::from_bytes(&payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable {kind:?} answer from {url}: {e}"),
            )
        })?;
        self.touch(peer);
        self.put_idle(peer, url, conn);
        Ok(resp)
    }

    /// Forwards a proposal to the leader `leader`, whose membership address
    /// is `url`.
    pub async fn forward(
        &self,
        leader: NodeId,
        url: &str,
        proposal: &ForwardRequest,
        timeout: Duration,
    ) -> io::Result<ForwardReply> {
        if let Some(answer) = self
            .over_lane(leader, LaneRequest::Forward(proposal), timeout)
            .await
        {
            return answer?.forward();
        }
        self.call(leader, url, Kind::Forward, proposal, timeout)
            .await
    }

    /// Asks `peer` (membership address `url`) what it knows of replica
    /// `asker`'s storage.
    pub async fn hello(
        &self,
        peer: NodeId,
        url: &str,
        asker: NodeId,
        timeout: Duration,
    ) -> io::Result<Known> {
        self.call(peer, url, Kind::Hello, &asker, timeout).await
    }

    /// Asks `peer` (membership address `url`) whether it leads with a live
    /// quorum: its id if it does.
    pub async fn lease(
        &self,
        peer: NodeId,
        url: &str,
        timeout: Duration,
    ) -> io::Result<Option<NodeId>> {
        if let Some(answer) = self.over_lane(peer, LaneRequest::Lease, timeout).await {
            return answer?.lease();
        }
        self.call(peer, url, Kind::Lease, &(), timeout).await
    }

    /// Hands a typing notice to `peer` (membership address `url`).
    pub async fn typing(
        &self,
        peer: NodeId,
        url: &str,
        notice: &TypingNotice,
        timeout: Duration,
    ) -> io::Result<()> {
        self.call(peer, url, Kind::Typing, notice, timeout).await
    }

    /// Asks the leader `leader` (membership address `url`) for a
    /// linearizable read index.
    pub async fn read_index(
        &self,
        leader: NodeId,
        url: &str,
        timeout: Duration,
    ) -> io::Result<ReadIndexReply> {
        if let Some(answer) = self
            .over_lane(leader, LaneRequest::ReadIndex, timeout)
            .await
        {
            return answer?.read_index();
        }
        self.call(leader, url, Kind::ReadIndex, &(), timeout).await
    }
}

/// How long a peer has to answer before a snapshot is sent to it.
const SNAPSHOT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// openraft's network factory: one [`PeerConnection`] per target.
#[derive(Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
    /// Caps the commit index sent to followers at this replica's durable log.
    pub durability: Durability,
    /// Snapshots being sent, which hold off this replica's next snapshot.
    pub snapshots_out: snapshots::Outgoing,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerConnection {
            target,
            url: self.peers.route(target, &node.addr).into(),
            advertised: node.addr.as_str().into(),
            peers: self.peers.clone(),
            durability: self.durability.clone(),
            snapshots_out: self.snapshots_out.clone(),
            conn: None,
            late: None,
        }
    }
}

/// openraft's client for one target; it calls one RPC at a time.
pub struct PeerConnection {
    target: NodeId,
    /// The address dialled (the route, if one is given).
    url: Arc<str>,
    /// The membership address, whose host the peer's certificate names.
    advertised: Arc<str>,
    peers: Arc<Peers>,
    durability: Durability,
    snapshots_out: snapshots::Outgoing,
    /// Open between calls; taken out during one, so a call cancelled midway
    /// (openraft's own timeout) drops it.
    conn: Option<wire::Conn>,
    /// The exchange of the last call, which timed out, and when it did (in a
    /// `Mutex` only to make it `Sync`, as openraft asks; reached through
    /// `&mut self`, it is never locked).
    late: Option<(Mutex<Exchange>, Instant)>,
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.peers.put_idle(self.target, &self.url, conn);
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
        let ttl = option.hard_ttl();
        let deadline = tokio::time::Instant::now() + ttl;
        let timed_out = |what: String| {
            let e = io::Error::new(io::ErrorKind::TimedOut, what);
            RPCError::Network(NetworkError::new(&e))
        };
        let mut conn = self.conn.take();
        if let Some((exchange, since)) = &mut self.late {
            let left = LATE_LIMIT.saturating_sub(since.elapsed());
            let exchange = exchange.get_mut().unwrap_or_else(|e| e.into_inner());
            match tokio::time::timeout(left.min(ttl), exchange.as_mut()).await {
                // The late answer is read and dropped; its connection is free.
                Ok(answer) => {
                    conn = answer.ok().map(|(conn, _)| conn);
                    self.late = None;
                }
                Err(_) if left > ttl => {
                    return Err(timed_out(format!(
                        "{} has not answered an earlier call yet",
                        self.url
                    )));
                }
                Err(_) => self.late = None,
            }
        }
        let peers = self.peers.clone();
        let (target, url, advertised) = (self.target, self.url.clone(), self.advertised.clone());
        let mut exchange: Exchange = Box::pin(async move {
            peers
                .exchange(target, &url, &advertised, conn, kind, &frame)
                .await
        });
        let (conn, payload) = match tokio::time::timeout_at(deadline, exchange.as_mut()).await {
            Ok(Ok(answer)) => answer,
            // Connection refused / reset / closed: back off instead of spinning.
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(_) => {
                self.late = Some((Mutex::new(exchange), Instant::now()));
                return Err(timed_out(format!(
                    "no {kind:?} answer from {} in {ttl:?}",
                    self.url
                )));
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
    /// [`crate::storage::durability`]).
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

    /// Asks the peer a cheap question first: a snapshot's body is written
    /// out only when first read (`storage::SnapshotBody`), and a leader
    /// retrying a snapshot for a replica that was down wrote the whole
    /// history out every second or two.
    async fn full_snapshot(
        &mut self,
        vote: openraft::Vote<NodeId>,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<openraft::raft::SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>>
    {
        // From here until the peer answers that it installed the snapshot
        // (or the send fails): the log after it must stay.
        let _sending = self.snapshots_out.start(self.target);
        let probe = self
            .peers
            .hello(
                self.target,
                &self.advertised,
                self.target,
                SNAPSHOT_PROBE_TIMEOUT,
            )
            .await;
        if let Err(e) = probe {
            return Err(StreamingError::Unreachable(Unreachable::new(&e)));
        }
        Chunked::send_snapshot(self, vote, snapshot, cancel, option).await
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
