//! When this replica holds its elections: openraft 0.9 has no pre-vote, so
//! a replica that campaigns while a healthy leader exists raises the term
//! and deposes that leader when the leader next reaches it. Two moments
//! made replicas do that, and each holds elections for a bounded time:
//!
//! - **A snapshot being streamed to it** ([`Hold::Snapshot`]). A replica
//!   more than a snapshot behind kept campaigning a few hundred
//!   milliseconds into each transfer; each campaign cancelled the transfer,
//!   so it never caught up (BENCHMARKS.md, "History on disk").
//! - **A restart while the cluster runs** ([`Hold::Restart`]). The leader
//!   retries an unreachable peer with a backoff of up to 500 ms, longer
//!   than an election timeout, so a restarted follower campaigned before
//!   the leader's first append reached it (5 restarts in 10 raised the
//!   term). At start a replica asks its peers whether one of them leads
//!   with a live quorum ([`crate::raft::wire::Kind::Lease`]); if one does,
//!   it holds elections for [`RESTART_HOLD`], time for the leader to reach
//!   it and send what it missed. Releasing the hold at the leader's first
//!   append was not enough: the appends after it could still pause for
//!   longer than an election timeout (3 term changes in 20 restarts). When
//!   all replicas restart together nobody leads, and nothing is held.
//!   Holding only stops this replica from campaigning; it still votes, so
//!   if the leader dies meanwhile the others elect one as usual.
//!
//! One task owns `runtime_config().elect(..)`: elections are on exactly
//! when no hold is in force.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::raft::network::Peers;
use crate::storage::raft_types::{NodeId, Raft};

/// Why elections are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hold {
    Snapshot,
    Restart,
}

/// How long a replica restarted while another leads does not campaign:
/// four times the leader's longest backoff for an unreachable peer
/// (`network::PeerConnection::backoff`), and longer than the 1,000-write
/// catch-ups of `bench --only restarts` took (at most 1.2 s).
pub const RESTART_HOLD: Duration = Duration::from_secs(2);

/// How long each peer has to say whether it leads, at start.
const LEASE_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// The holds in force, shared by the listener (snapshots) and start-up.
pub struct ElectionHold {
    holds: Mutex<BTreeMap<Hold, Instant>>,
    /// A hold was placed or lifted.
    changed: Notify,
}

impl ElectionHold {
    /// Starts the task that turns `raft`'s elections off and on.
    pub fn start(raft: Raft) -> Arc<Self> {
        let hold = Arc::new(Self {
            holds: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        });
        tokio::spawn(hold.clone().apply(raft));
        hold
    }

    /// Holds elections for `how_long` from now for `why` (replacing an
    /// earlier hold for the same reason).
    pub fn hold(&self, why: Hold, how_long: Duration) {
        let until = Instant::now() + how_long;
        self.holds_mut().insert(why, until);
        self.changed.notify_one();
    }

    /// Lifts the hold for `why`.
    pub fn release(&self, why: Hold) {
        self.holds_mut().remove(&why);
        self.changed.notify_one();
    }

    /// At start: asks `members` (this replica `id` among them) whether one
    /// leads with a live quorum, and if one does, holds elections for
    /// [`RESTART_HOLD`]. Call right after `Raft::new`, before the first
    /// election timeout.
    pub fn after_restart(
        self: &Arc<Self>,
        peers: Arc<Peers>,
        id: NodeId,
        members: BTreeMap<NodeId, String>,
    ) {
        self.hold(Hold::Restart, RESTART_HOLD);
        let this = self.clone();
        tokio::spawn(async move {
            let asks = members
                .iter()
                .filter(|(peer, _)| **peer != id)
                .map(|(peer, url)| peers.lease(*peer, url, LEASE_PROBE_TIMEOUT));
            let leader = futures::future::join_all(asks)
                .await
                .into_iter()
                .find_map(|answer| answer.ok().flatten());
            match leader {
                Some(leader) => tracing::info!(
                    leader,
                    hold_ms = RESTART_HOLD.as_millis() as u64,
                    "started while replica {leader} leads: not campaigning for a while"
                ),
                None => {
                    tracing::info!("started; no replica leads with a quorum");
                    this.release(Hold::Restart);
                }
            }
        });
    }

    fn holds_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<Hold, Instant>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `raft`'s elections off while a hold is in force.
    async fn apply(self: Arc<Self>, raft: Raft) {
        let mut held = false;
        loop {
            let changed = self.changed.notified();
            let next_expiry = {
                let mut holds = self.holds_mut();
                let now = Instant::now();
                holds.retain(|_, until| *until > now);
                holds.values().min().copied()
            };
            let now_held = next_expiry.is_some();
            if now_held != held {
                raft.runtime_config().elect(!now_held);
                held = now_held;
            }
            match next_expiry {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at.into(), changed).await;
                }
                None => changed.await,
            }
        }
    }
}
