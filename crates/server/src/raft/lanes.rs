//! Lanes: one connection the leader opens to each follower, over which the
//! follower asks the leader what it would otherwise dial it for: forwarded
//! proposals, read indexes and the lease question ([`LaneRequest`]).
//!
//! Why the leader dials. With connections *to* the leader's port blocked
//! (a firewall rule, a one-way partition) the leader still reaches its
//! followers, keeps its quorum and is never deposed, but a follower could
//! not forward a single write to it: writes stalled for as long as the
//! block lasted. The leader's own connections still work, so it offers
//! each follower one ([`Kind::Lane`]), and the follower sends its requests
//! back over it.
//!
//! Why many at once. A lane carries any number of requests in flight,
//! tagged with a call number and answered in whatever order they finish.
//! Each side writes everything that is ready in one frame
//! ([`Kind::LaneCalls`], [`Kind::LaneAnswers`]), after yielding once to let
//! the others that are ready now join it, so a follower forwarding hundreds
//! of clients' writes costs the leader a few reads and writes per batch
//! instead of one connection and one exchange per write.
//!
//! A follower uses the lane its leader opened whenever there is one and
//! dials the leader otherwise (`network::Peers`). The leader
//! ([`offer_while_leading`]) keeps a lane open to every other member while
//! it leads and closes them when it stops. A lane that answers nothing
//! while a call waits is closed by the follower, which then dials; the
//! leader offers a new one.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinHandle};

use crate::raft::consensus::Consensus;
use crate::raft::network::{ForwardReply, ForwardRequest, ReadIndexReply};
use crate::raft::wire::{self, Kind};
use crate::storage::raft_types::NodeId;

/// What a follower asks its leader over a lane.
#[derive(Debug, Serialize)]
pub enum LaneRequest<'a> {
    Forward(&'a ForwardRequest),
    ReadIndex,
    Lease,
}

/// [`LaneRequest`] as the leader decodes it.
#[derive(Debug, Deserialize)]
enum Received {
    Forward(ForwardRequest),
    ReadIndex,
    Lease,
}

/// The leader's answer to a [`LaneRequest`] of the same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum LaneAnswer {
    Forward(ForwardReply),
    ReadIndex(ReadIndexReply),
    Lease(Option<NodeId>),
}

/// How long the leader waits between looks at which lanes it must open,
/// and before it dials a follower again after a failed offer.
const OFFER_EVERY: Duration = Duration::from_millis(100);
const OFFER_RETRY: Duration = Duration::from_millis(500);

/// The leader closes a lane on which no call came for this long. A live
/// follower asks the lease question every `raft::quorum::RECHECK`; a lane
/// whose follower restarted or vanished would otherwise wait forever, and
/// the follower never get a new one.
const LANE_SILENCE: Duration = Duration::from_secs(3);

/// Calls the leader handles at once on one lane; it reads no more calls
/// while this many are unanswered. A proposer batch holds at most 1,024.
const LANE_IN_FLIGHT: usize = 4096;

/// A frame of calls or answers is closed once it holds this many bytes;
/// the rest go in the next one.
const BATCH_BYTES: usize = 1024 * 1024;

/// A call, encoded with its number, and the number alone (for the log).
struct Outgoing {
    id: u64,
    item: Vec<u8>,
}

/// The calls waiting for their answers on one lane; none are taken once
/// it has closed.
#[derive(Default)]
struct Waiting {
    calls: HashMap<u64, oneshot::Sender<LaneAnswer>>,
    closed: bool,
}

/// One lane, as the follower holds it.
struct Lane {
    /// Told apart from a newer lane from the same leader.
    generation: u64,
    calls: mpsc::UnboundedSender<Outgoing>,
    waiting: Mutex<Waiting>,
    next_call: AtomicU64,
    /// When the leader last sent anything on it.
    heard: Mutex<Instant>,
    tasks: [AbortHandle; 2],
}

impl Lane {
    /// Takes no more calls, and fails the waiting ones.
    fn shut(&self) {
        let mut waiting = lock(&self.waiting);
        waiting.closed = true;
        waiting.calls.clear();
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.tasks.iter().for_each(AbortHandle::abort);
    }
}

/// The lanes leaders opened to this replica, by leader.
#[derive(Default)]
pub struct Lanes {
    open: Mutex<BTreeMap<NodeId, Arc<Lane>>>,
    generations: AtomicU64,
}

impl Lanes {
    /// Takes `conn`, which `leader` opened and offered as a lane, in place
    /// of any older lane from it. `permit` counts it among the Raft
    /// connections for as long as it is open.
    pub fn adopt(self: &Arc<Self>, leader: NodeId, conn: wire::Conn, permit: OwnedSemaphorePermit) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (reader, writer) = tokio::io::split(conn);
        let (calls, outgoing) = mpsc::unbounded_channel();
        let lane = Arc::new_cyclic(|weak: &std::sync::Weak<Lane>| {
            let read = tokio::spawn(read_answers(
                self.clone(),
                leader,
                weak.clone(),
                reader,
                permit,
            ));
            let write = tokio::spawn(write_calls(
                self.clone(),
                leader,
                weak.clone(),
                writer,
                outgoing,
            ));
            Lane {
                generation,
                calls,
                waiting: Mutex::default(),
                next_call: AtomicU64::new(0),
                heard: Mutex::new(Instant::now()),
                tasks: [read.abort_handle(), write.abort_handle()],
            }
        });
        tracing::debug!(leader, "leader opened a lane to this replica");
        self.lock().insert(leader, lane);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Arc<Lane>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes `lane`, from `leader`, and forgets it unless a newer lane
    /// from that leader took its place.
    fn close(&self, leader: NodeId, lane: &Lane) {
        lane.shut();
        let mut open = self.lock();
        if open
            .get(&leader)
            .is_some_and(|l| l.generation == lane.generation)
        {
            open.remove(&leader);
        }
    }

    /// Asks `leader` over its lane: `None` if it has none open, else its
    /// answer or why there is none within `timeout`. A lane that sent
    /// nothing at all while the call waited is closed.
    pub async fn call(
        &self,
        leader: NodeId,
        request: &LaneRequest<'_>,
        timeout: Duration,
    ) -> Option<io::Result<LaneAnswer>> {
        let lane = self.lock().get(&leader).cloned()?;
        let id = lane.next_call.fetch_add(1, Ordering::Relaxed);
        let item = match postcard::to_stdvec(&(id, request)) {
            Ok(item) => item,
            Err(e) => return Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = lock(&lane.waiting);
            if waiting.closed {
                return None;
            }
            waiting.calls.insert(id, tx);
        }
        let sent = Instant::now();
        if lane.calls.send(Outgoing { id, item }).is_err() {
            self.close(leader, &lane);
            return None;
        }
        let result = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("the lane from replica {leader} closed"),
            )),
            Err(_) => {
                lock(&lane.waiting).calls.remove(&id);
                if *lock(&lane.heard) < sent {
                    tracing::debug!(leader, "lane silent for {timeout:?}; closing it");
                    self.close(leader, &lane);
                }
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from replica {leader} in {timeout:?}"),
                ))
            }
        };
        Some(result)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The follower's writer: everything queued goes out in one frame.
async fn write_calls(
    lanes: Arc<Lanes>,
    leader: NodeId,
    lane: std::sync::Weak<Lane>,
    mut writer: WriteHalf<wire::Conn>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(first) = outgoing.recv().await {
        // Let the other calls that are ready now queue up: they share the
        // write.
        tokio::task::yield_now().await;
        let mut payload = first.item;
        let mut last = first.id;
        while payload.len() < BATCH_BYTES {
            match outgoing.try_recv() {
                Ok(next) => {
                    payload.extend_from_slice(&next.item);
                    last = next.id;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = write_batch(&mut writer, Kind::LaneCalls, &payload).await {
            tracing::debug!(leader, last, error = %e, "cannot write on a lane; closing it");
            break;
        }
    }
    if let Some(lane) = lane.upgrade() {
        lanes.close(leader, &lane);
    }
}

/// The follower's reader: hands each answer to its waiting call. Ends (and
/// with it every waiting call) when the leader closes the lane or sends
/// anything but answers.
async fn read_answers(
    lanes: Arc<Lanes>,
    leader: NodeId,
    lane: std::sync::Weak<Lane>,
    mut reader: ReadHalf<wire::Conn>,
    _permit: OwnedSemaphorePermit,
) {
    let mut buffered = tokio::io::BufReader::new(&mut reader);
    loop {
        let frame = match wire::read_frame(&mut buffered).await {
            Ok(Some((Kind::LaneAnswers, payload))) => payload,
            Ok(Some((kind, _))) => {
                tracing::warn!(leader, ?kind, "unexpected frame on a lane; closing it");
                break;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(leader, error = %e, "lane failed");
                break;
            }
        };
        let Some(lane) = lane.upgrade() else { return };
        *lock(&lane.heard) = Instant::now();
        let answers = match decode_all::<(u64, LaneAnswer)>(&frame) {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(leader, error = %e, "undecodable answers on a lane; closing it");
                lanes.close(leader, &lane);
                return;
            }
        };
        let mut waiting = lock(&lane.waiting);
        for (id, answer) in answers {
            if let Some(tx) = waiting.calls.remove(&id) {
                let _ = tx.send(answer);
            }
        }
    }
    if let Some(lane) = lane.upgrade() {
        lanes.close(leader, &lane);
    }
}

/// Items written back to back, each a postcard value.
fn decode_all<T: serde::de::DeserializeOwned>(mut bytes: &[u8]) -> postcard::Result<Vec<T>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (item, rest) = postcard::take_from_bytes(bytes)?;
        items.push(item);
        bytes = rest;
    }
    Ok(items)
}

/// One frame of `kind` whose payload is `payload`, in one write.
async fn write_batch(
    writer: &mut WriteHalf<wire::Conn>,
    kind: Kind,
    payload: &[u8],
) -> io::Result<()> {
    let frame = wire::frame_from_payload(kind, payload)?;
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// While this replica leads, keeps a lane open to every other member and
/// serves the calls that come back on it; closes them all when it stops
/// leading. Runs until Raft stops.
pub async fn offer_while_leading(consensus: Consensus) {
    let mut serving: BTreeMap<NodeId, (JoinHandle<()>, Instant)> = BTreeMap::new();
    loop {
        if consensus.metrics().running_state.is_err() {
            break;
        }
        if !consensus.is_leader() {
            for (_, (task, _)) in std::mem::take(&mut serving) {
                task.abort();
            }
        } else {
            let members = consensus.other_members();
            serving.retain(|id, (task, _)| {
                let keep = members.iter().any(|(m, _)| m == id);
                if !keep {
                    task.abort();
                }
                keep
            });
            for (peer, addr) in members {
                let due = match serving.get(&peer) {
                    Some((task, started)) => task.is_finished() && started.elapsed() >= OFFER_RETRY,
                    None => true,
                };
                if due {
                    let task = tokio::spawn(serve_lane(consensus.clone(), peer, addr));
                    serving.insert(peer, (task, Instant::now()));
                }
            }
        }
        tokio::time::sleep(OFFER_EVERY).await;
    }
    for (_, (task, _)) in serving {
        task.abort();
    }
}

/// The leader's side of one lane to `peer`: dials it, offers the lane and
/// answers its calls until either side closes it.
async fn serve_lane(consensus: Consensus, peer: NodeId, advertised: String) {
    let conn = match consensus.peers.dial(peer, &advertised).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(peer, error = %e, "cannot open a lane");
            return;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(conn);
    let offer = match wire::encode_frame(Kind::Lane, &consensus.id) {
        Ok(offer) => offer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a lane offer");
            return;
        }
    };
    if let Err(e) = wire::write_frame(&mut writer, &offer).await {
        tracing::debug!(peer, error = %e, "cannot offer a lane");
        return;
    }
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Vec<u8>>();
    let writing = async move {
        while let Some(first) = answers.recv().await {
            // The answers of one log entry come back together: one write.
            tokio::task::yield_now().await;
            let mut payload = first;
            while payload.len() < BATCH_BYTES {
                match answers.try_recv() {
                    Ok(next) => payload.extend_from_slice(&next),
                    Err(_) => break,
                }
            }
            let frame = wire::frame_from_payload(Kind::LaneAnswers, &payload)?;
            writer.write_all(&frame).await?;
            writer.flush().await?;
        }
        io::Result::Ok(())
    };
    let in_flight = Arc::new(Semaphore::new(LANE_IN_FLIGHT));
    let reading = async {
        let mut buffered = tokio::io::BufReader::new(&mut reader);
        loop {
            let frame = tokio::time::timeout(LANE_SILENCE, wire::read_frame(&mut buffered))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no call for {LANE_SILENCE:?}"),
                    )
                })?;
            let payload = match frame? {
                Some((Kind::LaneCalls, payload)) => payload,
                Some((kind, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a {kind:?} frame where lane calls belong"),
                    ))
                }
                None => return io::Result::Ok(()),
            };
            let calls = decode_all::<(u64, Received)>(&payload)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            for (id, call) in calls {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return Ok(());
                };
                let consensus = consensus.clone();
                let answers = answers_tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let answer = answer(&consensus, call).await;
                    if let Ok(item) = postcard::to_stdvec(&(id, answer)) {
                        let _ = answers.send(item);
                    }
                });
            }
        }
    };
    let ended = tokio::select! {
        ended = reading => ended,
        ended = writing => ended,
    };
    if let Err(e) = ended {
        tracing::debug!(peer, error = %e, "lane closed");
    }
}

/// What the leader answers one call.
async fn answer(consensus: &Consensus, call: Received) -> LaneAnswer {
    match call {
        Received::Forward(proposal) => LaneAnswer::Forward(consensus.propose_local(proposal).await),
        Received::ReadIndex => LaneAnswer::ReadIndex(consensus.read_index_local().await),
        Received::Lease => LaneAnswer::Lease(consensus.lease()),
    }
}

impl LaneAnswer {
    /// The answer to a forwarded proposal, or an error if the leader
    /// answered another question.
    pub fn forward(self) -> io::Result<ForwardReply> {
        match self {
            LaneAnswer::Forward(reply) => Ok(reply),
            other => Err(mismatch(&other)),
        }
    }

    pub fn read_index(self) -> io::Result<ReadIndexReply> {
        match self {
            LaneAnswer::ReadIndex(reply) => Ok(reply),
            other => Err(mismatch(&other)),
        }
    }

    pub fn lease(self) -> io::Result<Option<NodeId>> {
        match self {
            LaneAnswer::Lease(reply) => Ok(reply),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(answer: &LaneAnswer) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the leader answered another question: {answer:?}"),
    )
}
