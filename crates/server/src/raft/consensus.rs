//! The replica's handle on Raft: proposing writes and making reads
//! linearizable, from any replica.
//!
//! Writes: on the leader, proposals go to a batching proposer that gathers
//! every proposal waiting while earlier entries are in flight into one log
//! entry (one fsync and one replication round for all of them) and fans the
//! per-proposal results back. A follower forwards each proposal to the leader,
//! which batches it with its own.
//!
//! Reads: the leader confirms its leadership with a quorum and returns the
//! read index (openraft's `get_read_log_id`); the reading replica, leader or
//! follower, waits until it has applied that index and then reads its local
//! state.
//!
//! Neither ever hangs: the leader refuses at once when it has not heard from a
//! majority recently, and everything else is bounded by [`Timeouts`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::raft::network::{ForwardReply, Peers, ReadIndexReply, RemoteFailure};
use crate::state::command::{Batch, CommandResult, Proposal};
use crate::storage::raft_types::{NodeId, Raft, RaftMetrics};

/// Most proposals in one log entry.
const MAX_BATCH: usize = 1024;
/// Log entries the proposer keeps in flight at once. One: openraft 0.9
/// appends one entry at a time on the leader and each follower, so entries
/// queued behind one another only split the waiting proposals into smaller
/// batches, each paying its own fsync and replication round. Measured at 64
/// clients (5 replicas, 2 cores): 1 in flight 7,341 msg/s, 2: 6,950, 4:
/// 6,156, 8: 6,084; with the leader's flush overlapped (see
/// `storage::durability`), 1 and 2 were within noise of each other.
const MAX_IN_FLIGHT: usize = 1;

/// Bounds on how long the server waits for consensus.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A write not committed within this is reported UNAVAILABLE (it may
    /// still commit; retrying with the same request id is safe).
    pub commit: Duration,
    /// A leader that has not heard from a majority for this long refuses
    /// writes and reads at once instead of waiting.
    pub quorum_silence: Duration,
    /// How long a replica holds a request while no leader is known or the
    /// known one cannot be reached (an election), before answering
    /// `UNAVAILABLE`: longer than an election takes, well inside a client's
    /// attempt timeout. Holding it, rather than failing at once, lets the
    /// request go through as soon as the new leader is known, instead of
    /// whenever the client's backoff next retries.
    pub leader_wait: Duration,
}

impl Timeouts {
    pub fn for_election_timeout(max_election_ms: u64) -> Self {
        Self {
            commit: Duration::from_secs(3),
            quorum_silence: Duration::from_millis((max_election_ms * 2).max(500)),
            leader_wait: Duration::from_millis((max_election_ms * 4).clamp(300, 1500)),
        }
    }
}

/// Wall clock in Unix milliseconds: only ever read by proposers, never by
/// the state machine.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Pending {
    proposal: Proposal,
    reply: oneshot::Sender<ForwardReply>,
}

/// Cheap to clone; shared by every service.
#[derive(Clone)]
pub struct Consensus {
    pub id: NodeId,
    pub raft: Raft,
    pub peers: Arc<Peers>,
    pub timeouts: Timeouts,
    proposals: mpsc::Sender<Pending>,
    read_floor: Arc<Mutex<ReadFloor>>,
    /// On a follower: whether its leader last said it hears from a
    /// majority (`raft::quorum` asks it).
    leader_has_quorum: Arc<AtomicBool>,
}

/// The least read index this replica hands out while it leads `term`: its
/// last log index when it first handed one out in that term (rule 4 of
/// [`crate::storage::durability`]).
///
/// openraft 0.9 restarts a replica whose persisted vote made it the leader
/// as the leader of the same term, with no election and no new no-op entry,
/// and with its commit index back at what its state machine had applied (a
/// snapshot, or nothing). Its read index, `max(commit index, first entry of
/// its term)`, can then lie below entries it had committed and
/// acknowledged before the restart, and a read would miss them until they
/// are committed again. Every committed entry is in the leader's log, and
/// the log only grows while it leads, so waiting for the log's end as of the
/// first read it serves closes that window. For a newly elected leader it
/// costs that first read at most the entries then in flight.
#[derive(Default)]
struct ReadFloor {
    term: u64,
    index: u64,
}

impl Consensus {
    pub fn start(id: NodeId, raft: Raft, peers: Arc<Peers>, timeouts: Timeouts) -> Self {
        let (tx, rx) = mpsc::channel(64 * 1024);
        tokio::spawn(run_proposer(raft.clone(), rx, timeouts.commit));
        Self {
            id,
            raft,
            peers,
            timeouts,
            proposals: tx,
            read_floor: Arc::default(),
            leader_has_quorum: Arc::default(),
        }
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// The current leader and its URL, if known. Never this replica
    /// unless it leads: a replica removed while it led keeps its vote for
    /// itself and, restarted, named itself the leader while the members
    /// (which refuse a non-member's connections) never told it otherwise.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        if id == self.id && m.state != ServerState::Leader {
            return None;
        }
        let url = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((id, url))
    }

    /// The other replicas of the current membership and their URLs.
    pub fn other_members(&self) -> Vec<(NodeId, String)> {
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Applies `proposal` through the log, from any replica, and records
    /// its latency and outcome in the metrics.
    pub async fn propose(&self, proposal: Proposal) -> ForwardReply {
        let started = std::time::Instant::now();
        let reply = self.propose_inner(proposal).await;
        crate::metrics::observe_proposal(started.elapsed(), reply.is_ok());
        reply
    }

    /// Proposes here if this replica leads, else forwards to the leader.
    /// While there is no usable leader (none known, the known one is
    /// unreachable or no longer leads), waits for another one, up to
    /// [`Timeouts::leader_wait`]. A retried forward is safe: the proposal
    /// carries its request id.
    async fn propose_inner(&self, proposal: Proposal) -> ForwardReply {
        let until = tokio::time::Instant::now() + self.timeouts.leader_wait;
        loop {
            match self.propose_once(&proposal).await {
                Attempt::Answered(reply) => return reply,
                Attempt::NoUsableLeader { stale, reply } => {
                    if !self.wait_for_leader_other_than(stale, until).await {
                        return reply;
                    }
                }
            }
        }
    }

    async fn propose_once(&self, proposal: &Proposal) -> Attempt {
        if self.is_leader() {
            return match self.propose_local(proposal.clone()).await {
                reply @ Err(RemoteFailure::NotLeader(_)) => Attempt::NoUsableLeader {
                    stale: Some(self.id),
                    reply,
                },
                reply => Attempt::Answered(reply),
            };
        }
        let Some((leader, url)) = self.leader().filter(|(_, url)| !url.is_empty()) else {
            return Attempt::NoUsableLeader {
                stale: None,
                reply: Err(no_leader()),
            };
        };
        match self
            .peers
            .forward(leader, &url, proposal, self.timeouts.commit)
            .await
        {
            Ok(reply @ Err(RemoteFailure::NotLeader(_))) => Attempt::NoUsableLeader {
                stale: Some(leader),
                reply,
            },
            Ok(reply) => Attempt::Answered(reply),
            Err(e) => Attempt::NoUsableLeader {
                stale: Some(leader),
                reply: Err(RemoteFailure::Unavailable(format!(
                    "cannot reach the leader at {url}: {e}"
                ))),
            },
        }
    }

    /// Waits until this replica knows a leader other than `stale` (any
    /// leader when `None`); false if `until` passed first.
    async fn wait_for_leader_other_than(
        &self,
        stale: Option<NodeId>,
        until: tokio::time::Instant,
    ) -> bool {
        let mut metrics = self.raft.server_metrics();
        let changed = metrics.wait_for(|m| m.current_leader.is_some() && m.current_leader != stale);
        let found = matches!(tokio::time::timeout_at(until, changed).await, Ok(Ok(_)));
        found
    }

    /// Proposes on this replica, which must be the leader.
    pub async fn propose_local(&self, proposal: Proposal) -> ForwardReply {
        if !self.is_leader() {
            return Err(RemoteFailure::NotLeader(self.id));
        }
        self.check_quorum()?;
        let (tx, rx) = oneshot::channel();
        self.proposals
            .send(Pending {
                proposal,
                reply: tx,
            })
            .await
            .map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }

    /// Whether the group has a working quorum as far as this replica can
    /// tell: a leader checks whom it heard from ([`Self::check_quorum`]); a
    /// follower goes by its leader's last answer (`raft::quorum`).
    pub fn has_quorum(&self) -> bool {
        if self.is_leader() {
            self.check_quorum().is_ok()
        } else {
            self.leader().is_some() && self.leader_has_quorum.load(Ordering::Relaxed)
        }
    }

    /// What this replica answers a follower's or a restarted replica's
    /// `Lease` question: its id if it leads and hears from a majority.
    pub fn lease(&self) -> Option<NodeId> {
        (self.is_leader() && self.check_quorum().is_ok()).then_some(self.id)
    }

    /// Records what the leader last said of its quorum.
    pub fn set_leader_has_quorum(&self, has: bool) {
        self.leader_has_quorum.store(has, Ordering::Relaxed);
    }

    /// Refuses at once when the leader has not heard from a majority of
    /// voters within `quorum_silence`.
    pub fn check_quorum(&self) -> Result<(), RemoteFailure> {
        // Asked for every proposal: no allocation, one lock of the contacts.
        let metrics = self.raft.server_metrics();
        let m = metrics.borrow();
        let voters = m.membership_config.membership().voter_ids();
        let (total, reachable) =
            self.peers
                .heard_within(voters, self.id, self.timeouts.quorum_silence);
        drop(m);
        let needed = total / 2 + 1;
        if reachable >= needed {
            Ok(())
        } else {
            Err(RemoteFailure::Unavailable(format!(
                "no quorum: the leader reaches {reachable} of {total} replicas, {needed} needed"
            )))
        }
    }

    /// The leader's side of a linearizable read: the index a reader must
    /// have applied.
    pub async fn read_index_local(&self) -> ReadIndexReply {
        if !self.is_leader() {
            return Err(RemoteFailure::NotLeader(self.id));
        }
        self.check_quorum()?;
        let floor = self.read_floor();
        match tokio::time::timeout(self.timeouts.commit, self.raft.get_read_log_id()).await {
            Ok(Ok((read, _applied))) => Ok(read.map(|l| l.index).unwrap_or(0).max(floor)),
            Ok(Err(RaftError::APIError(_))) => Err(RemoteFailure::NotLeader(self.id)),
            Ok(Err(e)) => Err(RemoteFailure::Unavailable(e.to_string())),
            Err(_) => Err(RemoteFailure::Unavailable(
                "no quorum: leadership not confirmed in time".into(),
            )),
        }
    }

    /// See [`ReadFloor`]; called only while this replica leads.
    fn read_floor(&self) -> u64 {
        let (term, last) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_term, m.last_log_index.unwrap_or(0))
        };
        let mut floor = self.read_floor.lock().unwrap_or_else(|e| e.into_inner());
        if floor.term != term {
            *floor = ReadFloor { term, index: last };
        }
        floor.index
    }

    /// Waits until this replica's state reflects every write committed before
    /// the call: after it, a read of the local state is linearizable.
    pub async fn read_barrier(&self) -> Result<(), RemoteFailure> {
        let index = if self.is_leader() {
            self.read_index_local().await?
        } else {
            if self.leader().is_none() {
                let until = tokio::time::Instant::now() + self.timeouts.leader_wait;
                self.wait_for_leader_other_than(None, until).await;
            }
            let (leader, url) = self
                .leader()
                .filter(|(_, u)| !u.is_empty())
                .ok_or_else(no_leader)?;
            self.peers
                .read_index(leader, &url, self.timeouts.commit)
                .await
                .map_err(|e| {
                    RemoteFailure::Unavailable(format!("cannot reach the leader at {url}: {e}"))
                })??
        };
        self.raft
            .wait(Some(self.timeouts.commit))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| RemoteFailure::Unavailable(format!("this replica is catching up: {e}")))?;
        Ok(())
    }
}

/// One try of [`Consensus::propose_inner`].
enum Attempt {
    /// A reply to return as it is.
    Answered(ForwardReply),
    /// The leader in view (`stale`, if any) could not take the proposal;
    /// `reply` is the error to return if no other leader turns up.
    NoUsableLeader {
        stale: Option<NodeId>,
        reply: ForwardReply,
    },
}

fn no_leader() -> RemoteFailure {
    RemoteFailure::Unavailable("no leader: an election is in progress or there is no quorum".into())
}

fn shutting_down() -> RemoteFailure {
    RemoteFailure::Unavailable("replica is shutting down".into())
}

/// Gathers waiting proposals into batches and keeps up to
/// [`MAX_IN_FLIGHT`] entries in flight. Batches enter Raft in the order they
/// were formed (`client_write_ff` is called here, in sequence); only the
/// waiting for their results is concurrent.
async fn run_proposer(raft: Raft, mut rx: mpsc::Receiver<Pending>, commit_timeout: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut pending = vec![first];
        while pending.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
                Err(_) => break,
            }
        }
        let (proposals, replies): (Vec<Proposal>, Vec<_>) =
            pending.into_iter().map(|p| (p.proposal, p.reply)).unzip();
        let batch = Batch {
            ts_ms: now_ms(),
            proposals,
        };
        let receiver = match raft.client_write_ff(batch).await {
            Ok(rx) => rx,
            Err(_) => {
                fan_out_error(replies, shutting_down());
                continue;
            }
        };
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(commit_timeout, receiver).await {
                Ok(Ok(Ok(response))) => fan_out(replies, response.data),
                Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => {
                    fan_out_error(replies, RemoteFailure::NotLeader(f.leader_id.unwrap_or(0)))
                }
                Ok(Ok(Err(e))) => fan_out_error(replies, RemoteFailure::Unavailable(e.to_string())),
                Ok(Err(_)) => fan_out_error(replies, shutting_down()),
                Err(_) => fan_out_error(
                    replies,
                    RemoteFailure::Unavailable(format!(
                        "no quorum: the write was not committed within {} ms (it may still \
                         commit; retrying with the same request id is safe)",
                        commit_timeout.as_millis()
                    )),
                ),
            }
        });
    }
}

fn fan_out(replies: Vec<oneshot::Sender<ForwardReply>>, results: Vec<CommandResult>) {
    if replies.len() != results.len() {
        tracing::error!(
            expected = replies.len(),
            got = results.len(),
            "state machine returned a wrong number of results"
        );
    }
    let mut results = results.into_iter();
    for reply in replies {
        let result = results
            .next()
            .ok_or_else(|| RemoteFailure::Unavailable("internal error: missing result".into()));
        let _ = reply.send(result);
    }
}

fn fan_out_error(replies: Vec<oneshot::Sender<ForwardReply>>, err: RemoteFailure) {
    for reply in replies {
        let _ = reply.send(Err(err.clone()));
    }
}
