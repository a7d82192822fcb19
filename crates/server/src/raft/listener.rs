//! One port, two protocols: the accept loop in front of tonic, and the
//! serving side of replica-to-replica frames.
//!
//! Every accepted connection gets `TCP_NODELAY` and must say what it is
//! within [`HANDSHAKE_TIMEOUT`], with at most [`MAX_HANDSHAKES`] connections
//! undecided at once (more are closed at once: a flood of idle connections
//! costs a bounded number of descriptors for a bounded time).
//!
//! - **With TLS**, the connection must open with a TLS handshake. One that
//!   negotiates ALPN [`tls::RAFT_ALPN`] is a peer's Raft connection and must
//!   present a replica certificate of the cluster CA; any other is handed,
//!   decrypted, to tonic (users present no certificate, admins and peers
//!   forwarding admin calls do).
//! - **Without TLS** (loopback only), a connection opening with
//!   [`wire::MAGIC`] is a Raft connection and anything else goes to tonic.
//!
//! A Raft connection is served here, one frame in, one frame out, in turn,
//! unless the peer, leading, offers it as a lane ([`Kind::Lane`]): then it
//! goes to `raft::lanes`, still counted among the Raft connections.
//! Even from an authenticated peer, a frame is checked before openraft sees
//! it ([`check_frame`]): its size against its kind's limit, its sender
//! against the certificate, its term against absurd jumps (a term near
//! 2^64 would make openraft's `term + 1` overflow and panic at the next
//! election, on every restart, since the vote is persisted). Frames must
//! arrive whole within [`FRAME_DEADLINE`]; an idle connection is closed after
//! [`RAFT_IDLE_TIMEOUT`]; at most [`MAX_RAFT_CONNECTIONS`] are open at once,
//! and the frames being read or handled at once hold at most
//! [`FRAME_BUDGET`] bytes between them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Vote;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::raft::coalesce::Coalesced;
use crate::raft::consensus::Consensus;
use crate::raft::elections::{ElectionHold, Hold};
use crate::raft::incarnation::Known;
use crate::raft::network::ForwardRequest;
use crate::raft::typing::{TypingNotice, TypingRelay};
use crate::raft::wire::{self, Kind, Stream};
use crate::storage::raft_types::{NodeId, TypeConfig};
use crate::storage::SharedState;
use raftchat_tls::{self as tls, Role};

/// How long a new connection has to send its first bytes and finish its
/// TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections accepted but not yet identified (sniffing, TLS handshake).
pub const MAX_HANDSHAKES: usize = 256;

/// Raft connections open at once. A peer keeps one per replication stream
/// plus a small idle pool (16): four peers need well under 100.
pub const MAX_RAFT_CONNECTIONS: usize = 256;

/// A Raft connection with no frame for this long is closed; the dialler
/// notices and dials anew when it next needs one.
pub const RAFT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Once a frame's first byte arrived, the whole frame must follow within
/// this (a 3 MiB snapshot chunk needs ~100 KB/s).
pub const FRAME_DEADLINE: Duration = Duration::from_secs(30);

/// Bytes of frames read or being handled at once, over all Raft
/// connections: twice the largest frame. A frame waits for its share
/// before its payload is read, so many large frames cost waiting, not
/// memory.
pub const FRAME_BUDGET: usize = 2 * wire::MAX_FRAME;

/// How far ahead of this replica's term a peer's term may be. An honest
/// replica cut off from the others campaigns once per election timeout
/// (80-160 ms by default): 2^32 terms is over ten years of that. Terms past
/// 2^62 are refused whatever the current term, far from overflow.
pub const MAX_TERM_LEAD: u64 = 1 << 32;
const MAX_TERM: u64 = 1 << 62;

/// Pause after a failed accept (EMFILE and the like) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// The TLS byte that opens a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Connections for tonic, as `serve_with_incoming` wants them: plain TCP on
/// a loopback cluster without TLS, decrypted TLS streams otherwise.
/// Their writes are coalesced ([`Coalesced`]).
pub enum Incoming {
    Plain(ReceiverStream<io::Result<Coalesced<TcpStream>>>),
    Tls(ReceiverStream<io::Result<Coalesced<TlsStream<TcpStream>>>>),
}

#[derive(Clone)]
enum GrpcTx {
    Plain(mpsc::Sender<io::Result<Coalesced<TcpStream>>>),
    Tls(mpsc::Sender<io::Result<Coalesced<TlsStream<TcpStream>>>>),
}

/// What peers' frames are answered from.
pub struct PeerSide {
    pub consensus: Consensus,
    pub state: SharedState,
    /// Raft frames (all but [`Kind::Hello`]) are refused until this turns
    /// true: a replica first checks it may take part
    /// (`server::incarnation`) and bootstraps.
    pub raft_open: watch::Receiver<bool>,
    pub elections: Arc<ElectionHold>,
    /// Where peers' typing notices go.
    pub typing: Arc<TypingRelay>,
}

/// How long a snapshot chunk holds elections (`raft::elections`); the last
/// one (which installs) holds them for as long as the leader waits for its
/// answer.
const QUIET_AFTER_CHUNK: Duration = Duration::from_secs(5);
const QUIET_WHILE_INSTALLING: Duration = Duration::from_secs(60);
/// After the install, until the leader's appends resume.
const QUIET_AFTER_INSTALL: Duration = Duration::from_secs(1);

/// Everything the accept loop and the Raft connections share.
struct Shared {
    side: PeerSide,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grpc: GrpcTx,
    handshakes: Arc<Semaphore>,
    raft_connections: Arc<Semaphore>,
    frame_budget: Arc<Semaphore>,
    refusals: Throttle,
}

/// Starts accepting on `listener` until `stop` turns true, with TLS when
/// `tls` is given. Returns the gRPC connections for tonic and the accept
/// task.
pub fn serve(
    listener: TcpListener,
    side: PeerSide,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: watch::Receiver<bool>,
) -> (Incoming, JoinHandle<()>) {
    let (grpc, incoming) = if tls.is_some() {
        let (tx, rx) = mpsc::channel(64);
        (GrpcTx::Tls(tx), Incoming::Tls(ReceiverStream::new(rx)))
    } else {
        let (tx, rx) = mpsc::channel(64);
        (GrpcTx::Plain(tx), Incoming::Plain(ReceiverStream::new(rx)))
    };
    let shared = Arc::new(Shared {
        side,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        grpc,
        handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
        raft_connections: Arc::new(Semaphore::new(MAX_RAFT_CONNECTIONS)),
        frame_budget: Arc::new(Semaphore::new(FRAME_BUDGET)),
        refusals: Throttle::new(Duration::from_secs(10)),
    });
    let task = tokio::spawn(accept_loop(listener, shared, stop));
    (incoming, task)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
                    shared.refusals.warn(|suppressed| {
                        tracing::warn!(%peer, suppressed, "{MAX_HANDSHAKES} connections are already \
                            handshaking; closing new ones")
                    });
                    continue;
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                tokio::spawn(route(stream, peer, shared.clone(), permit));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// What a connection turned out to be.
enum Routed {
    /// A Raft connection from `peer` (`None`: plaintext, unauthenticated).
    Raft(wire::Conn, Option<NodeId>),
    Grpc,
    /// Closed, refused or failed; already logged.
    Done,
}

/// Sends the connection where it belongs, holding a handshake permit until
/// it is identified.
async fn route(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let routed = match tokio::time::timeout(HANDSHAKE_TIMEOUT, identify(stream, addr, &shared))
        .await
    {
        Ok(routed) => routed,
        Err(_) => {
            tracing::debug!(%addr, "connection not identified within {HANDSHAKE_TIMEOUT:?}; closing");
            Routed::Done
        }
    };
    drop(permit);
    if let Routed::Raft(conn, peer) = routed {
        let Ok(permit) = shared.raft_connections.clone().try_acquire_owned() else {
            shared.refusals.warn(|suppressed| {
                tracing::warn!(%addr, suppressed, "{MAX_RAFT_CONNECTIONS} Raft connections are \
                    open; closing a new one")
            });
            return;
        };
        if let Some((leader, conn)) = serve_raft(conn, addr, peer, &shared).await {
            // Still counted among the Raft connections while it is a lane.
            shared
                .side
                .consensus
                .peers
                .lanes
                .adopt(leader, conn, permit);
        }
    }
}

/// Sniffs, shakes hands and hands gRPC connections to tonic.
async fn identify(stream: TcpStream, addr: SocketAddr, shared: &Shared) -> Routed {
    let Some(acceptor) = &shared.tls else {
        return match sniff(&stream).await {
            Ok(Protocol::Raft) => {
                let mut conn = BufReader::new(Stream::Plain(stream));
                let mut magic = [0u8; wire::MAGIC.len()];
                match conn.read_exact(&mut magic).await {
                    Ok(_) => Routed::Raft(conn, None),
                    Err(_) => Routed::Done,
                }
            }
            Ok(Protocol::Other) => {
                if let GrpcTx::Plain(tx) = &shared.grpc {
                    // Fails only when the server is shutting down.
                    let _ = tx.send(Ok(Coalesced::new(stream))).await;
                }
                Routed::Grpc
            }
            Ok(Protocol::Closed) => Routed::Done,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "connection failed before its first bytes");
                Routed::Done
            }
        };
    };
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(0) | Err(_) => return Routed::Done,
        Ok(_) => {
            shared.refusals.warn(|suppressed| {
                tracing::info!(%addr, suppressed, "refused a plaintext connection: this replica \
                    speaks only TLS (clients need --ca / CHAT_CA)")
            });
            return Routed::Done;
        }
    }
    let stream = match acceptor.accept(stream).await {
        Ok(stream) => stream,
        Err(e) => {
            shared.refusals.warn(
                |suppressed| tracing::info!(%addr, error = %e, suppressed, "TLS handshake failed"),
            );
            return Routed::Done;
        }
    };
    let session = stream.get_ref().1;
    if session.alpn_protocol() == Some(tls::RAFT_ALPN) {
        return match tls::peer_role(session.peer_certificates()) {
            Some(Role::Replica(id)) => Routed::Raft(
                BufReader::new(Stream::Tls(Box::new(stream.into()))),
                Some(id),
            ),
            other => {
                shared.refusals.warn(|suppressed| {
                    tracing::warn!(%addr, role = ?other, suppressed, "refused a Raft connection \
                        without a replica certificate")
                });
                Routed::Done
            }
        };
    }
    if let GrpcTx::Tls(tx) = &shared.grpc {
        let _ = tx.send(Ok(Coalesced::new(stream))).await;
    }
    Routed::Grpc
}

enum Protocol {
    Raft,
    Other,
    Closed,
}

/// Peeks until the first bytes match [`wire::MAGIC`] or cannot.
async fn sniff(stream: &TcpStream) -> io::Result<Protocol> {
    let mut buf = [0u8; wire::MAGIC.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(Protocol::Closed);
        }
        if buf[..n] != wire::MAGIC[..n] {
            return Ok(Protocol::Other);
        }
        if n == wire::MAGIC.len() {
            return Ok(Protocol::Raft);
        }
        // A prefix of the magic so far: peek would return at once again.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves one peer's Raft connection until it closes, idles out or
/// misbehaves, or until the peer, leading, offers it as a lane: then
/// returns it with the leader's id (`raft::lanes`).
async fn serve_raft(
    mut conn: wire::Conn,
    addr: SocketAddr,
    peer: Option<NodeId>,
    shared: &Shared,
) -> Option<(NodeId, wire::Conn)> {
    loop {
        match tokio::time::timeout(RAFT_IDLE_TIMEOUT, conn.fill_buf()).await {
            Ok(Ok(buf)) if !buf.is_empty() => {}
            Ok(_) => return None,
            Err(_) => {
                tracing::debug!(%addr, "Raft connection idle for {RAFT_IDLE_TIMEOUT:?}; closing");
                return None;
            }
        }
        let read = async {
            let Some((kind, len)) = wire::read_header(&mut conn).await? else {
                return Ok(None);
            };
            // `len` is at most MAX_FRAME, far below u32::MAX.
            let share = shared
                .frame_budget
                .clone()
                .acquire_many_owned(len as u32)
                .await
                .map_err(|_| io::Error::other("shutting down"))?;
            let payload = wire::read_payload(&mut conn, kind, len).await?;
            io::Result::Ok(Some((kind, payload, share)))
        };
        let (kind, payload, _share) = match tokio::time::timeout(FRAME_DEADLINE, read).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                shared.refusals.warn(|suppressed| {
                    tracing::warn!(%addr, ?peer, error = %e, suppressed, "bad Raft frame; closing the connection")
                });
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "Raft connection failed");
                return None;
            }
            Err(_) => {
                shared.refusals.warn(|suppressed| {
                    tracing::warn!(%addr, ?peer, suppressed, "a Raft frame took over {FRAME_DEADLINE:?} to arrive; closing")
                });
                return None;
            }
        };
        if kind == Kind::Lane {
            return match lane_offer(&shared.side, peer, &payload) {
                Ok(leader) => Some((leader, conn)),
                // Starting up: the leader offers again shortly.
                Err(Refused::NotReady) => None,
                Err(e) => {
                    shared.refusals.warn(|suppressed| {
                        tracing::warn!(%addr, ?peer, error = %e, suppressed, "refused a lane; closing the connection")
                    });
                    None
                }
            };
        }
        let reply = match dispatch(&shared.side, peer, kind, &payload).await {
            Ok(reply) => reply,
            Err(e) => {
                shared.refusals.warn(|suppressed| {
                    tracing::warn!(%addr, ?peer, ?kind, error = %e, suppressed, "refused a Raft request; closing the connection")
                });
                return None;
            }
        };
        if let Err(e) = wire::write_frame(conn.get_mut(), &reply).await {
            tracing::debug!(%addr, error = %e, "cannot answer on a Raft connection");
            return None;
        }
    }
}

/// Checks one request and hands it to openraft or the proposer; returns
/// the response frame.
async fn dispatch(
    side: &PeerSide,
    peer: Option<NodeId>,
    kind: Kind,
    payload: &[u8],
) -> Result<Vec<u8>, Refused> {
    let consensus = &side.consensus;
    if let Some(peer) = peer {
        check_member(consensus, peer)?;
    }
    if kind == Kind::Hello {
        let asker: NodeId = postcard::from_bytes(payload)?;
        // A certificate names the asker; plaintext takes its word.
        return Ok(wire::encode_frame(
            kind,
            &known(side, peer.unwrap_or(asker)),
        )?);
    }
    if kind == Kind::Lease {
        // Asked at start-up too: a replica not yet in Raft leads nothing.
        let () = postcard::from_bytes(payload)?;
        let leads = consensus.lease();
        return Ok(wire::encode_frame(kind, &leads)?);
    }
    if !*side.raft_open.borrow() {
        return Err(Refused::NotReady);
    }
    let raft = &consensus.raft;
    match kind {
        Kind::Append => {
            let rpc: AppendEntriesRequest<TypeConfig> = postcard::from_bytes(payload)?;
            check_frame(consensus, peer, &rpc.vote)?;
            Ok(wire::encode_frame(kind, &raft.append_entries(rpc).await)?)
        }
        Kind::Vote => {
            let rpc: VoteRequest<NodeId> = postcard::from_bytes(payload)?;
            check_frame(consensus, peer, &rpc.vote)?;
            Ok(wire::encode_frame(kind, &raft.vote(rpc).await)?)
        }
        Kind::Snapshot => {
            let rpc: InstallSnapshotRequest<TypeConfig> = postcard::from_bytes(payload)?;
            check_frame(consensus, peer, &rpc.vote)?;
            let last = rpc.done;
            let elections = &side.elections;
            elections.hold(
                Hold::Snapshot,
                if last {
                    QUIET_WHILE_INSTALLING
                } else {
                    QUIET_AFTER_CHUNK
                },
            );
            let answer = raft.install_snapshot(rpc).await;
            if last {
                elections.hold(Hold::Snapshot, QUIET_AFTER_INSTALL);
            }
            Ok(wire::encode_frame(kind, &answer)?)
        }
        Kind::Forward => {
            let proposal: ForwardRequest = postcard::from_bytes(payload)?;
            Ok(wire::encode_frame(
                kind,
                &consensus.propose_local(proposal).await,
            )?)
        }
        Kind::ReadIndex => {
            let () = postcard::from_bytes(payload)?;
            Ok(wire::encode_frame(
                kind,
                &consensus.read_index_local().await,
            )?)
        }
        Kind::Typing => {
            let notice: TypingNotice = postcard::from_bytes(payload)?;
            side.typing.deliver(notice);
            Ok(wire::encode_frame(kind, &())?)
        }
        Kind::Hello | Kind::Lease => Err(Refused::NotReady),
        Kind::Lane | Kind::LaneCalls | Kind::LaneAnswers => Err(Refused::Misplaced(kind)),
    }
}

/// Checks a lane offer: from a member, under its own name, once this
/// replica takes part in Raft. Returns the offering leader's id.
fn lane_offer(side: &PeerSide, peer: Option<NodeId>, payload: &[u8]) -> Result<NodeId, Refused> {
    if !*side.raft_open.borrow() {
        return Err(Refused::NotReady);
    }
    let leader: NodeId = postcard::from_bytes(payload)?;
    if let Some(peer) = peer {
        if peer != leader {
            return Err(Refused::Impersonation {
                peer,
                claimed: leader,
            });
        }
    }
    check_member(&side.consensus, leader)?;
    Ok(leader)
}

/// What this replica's applied state records of `replica`'s storage.
fn known(side: &PeerSide, replica: NodeId) -> Known {
    let state = side.state.read().unwrap_or_else(|e| e.into_inner());
    match state.chat.incarnation_of(replica) {
        Some(incarnation) => Known::Recorded(incarnation),
        None => Known::Unknown,
    }
}

/// An authenticated peer must be in this replica's membership, unless this
/// replica knows none yet (it waits to be added: `--join`).
fn check_member(consensus: &Consensus, peer: NodeId) -> Result<(), Refused> {
    let metrics = consensus.raft.server_metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    if membership.nodes().next().is_none() || membership.get_node(&peer).is_some() {
        Ok(())
    } else {
        Err(Refused::NotMember(peer))
    }
}

/// The sender of a Raft request is the replica its certificate names, and
/// its term is not absurdly far ahead of ours.
fn check_frame(
    consensus: &Consensus,
    peer: Option<NodeId>,
    vote: &Vote<NodeId>,
) -> Result<(), Refused> {
    let leader = vote.leader_id();
    if let Some(peer) = peer {
        if leader.voted_for() != Some(peer) {
            return Err(Refused::Impersonation {
                peer,
                claimed: leader.voted_for().unwrap_or(0),
            });
        }
    }
    let current = consensus.raft.metrics().borrow().current_term;
    if leader.term >= MAX_TERM || leader.term > current.saturating_add(MAX_TERM_LEAD) {
        return Err(Refused::Term {
            term: leader.term,
            current,
        });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("cannot decode the request: {0}")]
    Decode(#[from] postcard::Error),
    #[error("cannot encode the response: {0}")]
    Encode(#[from] io::Error),
    #[error("replica {0} is not a member of this replica's cluster")]
    NotMember(NodeId),
    #[error("replica {peer}'s certificate sent a request as replica {claimed}")]
    Impersonation { peer: NodeId, claimed: NodeId },
    #[error("term {term} is absurdly far ahead of this replica's term {current}")]
    Term { term: u64, current: u64 },
    #[error("this replica does not take part in Raft yet (start-up check)")]
    NotReady,
    #[error("a {0:?} frame belongs on a lane, not on a Raft connection")]
    Misplaced(Kind),
}

/// At most one log line per `every` for a kind of event an attacker can
/// repeat at will; the line says how many were not logged in between.
struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number of events suppressed since the last line,
    /// unless a line was written less than `every` ago.
    fn warn(&self, log: impl FnOnce(u64)) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.every) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        log(self.suppressed.swap(0, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_logs_once_per_period_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        let mut lines = Vec::new();
        for _ in 0..5 {
            throttle.warn(|suppressed| lines.push(suppressed));
        }
        assert_eq!(lines, vec![0]);
        assert_eq!(throttle.suppressed.load(Ordering::Relaxed), 4);
        *throttle.last.lock().unwrap() = None;
        throttle.warn(|suppressed| lines.push(suppressed));
        assert_eq!(lines, vec![0, 4]);
    }
}
