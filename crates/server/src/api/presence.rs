//! Presence bookkeeping: which users hold live subscriptions on this replica.
//!
//! Presence is replicated state (so every replica lists the same online
//! users), driven by this replica's housekeeping task:
//! - at start it proposes `ReplicaStarted`, dropping whatever subscriptions a
//!   previous run of this replica left behind, and `SetRules` if the state
//!   applies older rules than this release's ([`crate::state::RULES`]);
//! - it proposes `SubscriptionOpened` / `SubscriptionClosed` as streams come
//!   and go (retrying until they commit, in order);
//! - while it holds subscriptions it renews its lease every third of
//!   [`PRESENCE_LEASE_MS`], so if this replica dies its users go offline when
//!   the lease runs out;
//! - on the leader, it proposes a `Tick` once some replica's lease has
//!   passed, so expiry takes effect even when nothing else is written.
//!
//! Bound: a user whose client disconnects goes offline as soon as the close
//! commits (HTTP/2 keepalive detects a silent client within ~4 s); a user
//! whose replica dies goes offline within `PRESENCE_LEASE_MS` + 1 s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::raft::consensus::{now_ms, Consensus};
use crate::state::command::{Command, Proposal, TokenHash, PRESENCE_LEASE_MS};
use crate::state::RULES;
use crate::storage::SharedState;

enum Op {
    Open { id: u64, session: TokenHash },
    Close { id: u64 },
}

/// Registers subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    ops: mpsc::UnboundedSender<Op>,
    next: Arc<AtomicU64>,
}

/// Held by a live subscription; dropping it marks the subscription closed.
pub struct Online {
    id: u64,
    ops: mpsc::UnboundedSender<Op>,
}

impl Drop for Online {
    fn drop(&mut self) {
        let _ = self.ops.send(Op::Close { id: self.id });
    }
}

impl Presence {
    /// Starts the housekeeping task.
    pub fn start(consensus: Consensus, state: SharedState) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        // Subscription ids are unique across restarts of this replica.
        let first = now_ms() << 16;
        tokio::spawn(housekeeping(consensus, state, rx));
        Self {
            ops: tx,
            next: Arc::new(AtomicU64::new(first)),
        }
    }

    pub fn open(&self, session: TokenHash) -> Online {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let _ = self.ops.send(Op::Open { id, session });
        Online {
            id,
            ops: self.ops.clone(),
        }
    }
}

/// One subscription's replicated status.
struct Sub {
    session: TokenHash,
    opened: bool,
}

async fn housekeeping(
    consensus: Consensus,
    state: SharedState,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    let replica = consensus.id;
    let mut started = false;
    let mut rules_set = false;
    let mut subs: BTreeMap<u64, Sub> = BTreeMap::new();
    // Closed subscriptions whose close has not committed yet.
    let mut closing: Vec<u64> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    let mut last_lease = 0u64;
    let propose = |command: Command| {
        let consensus = consensus.clone();
        async move {
            consensus
                .propose(Proposal {
                    request_id: None,
                    command,
                })
                .await
                .map(|_| ())
        }
    };
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                Some(Op::Open { id, session }) => {
                    subs.insert(id, Sub { session, opened: false });
                }
                Some(Op::Close { id }) => {
                    if subs.remove(&id).is_some_and(|s| s.opened) {
                        closing.push(id);
                    }
                }
                None => return,
            },
            _ = tick.tick() => {}
        }
        if consensus.leader().is_none() {
            continue;
        }
        if !started {
            started = propose(Command::ReplicaStarted { replica }).await.is_ok();
            if !started {
                continue;
            }
        }
        if !rules_set {
            let rules = state.read().unwrap_or_else(|e| e.into_inner()).chat.rules();
            rules_set =
                rules >= RULES || propose(Command::SetRules { version: RULES }).await.is_ok();
            if rules_set && rules < RULES {
                tracing::info!(from = rules, to = RULES, "state machine rules raised");
            }
        }
        for (id, sub) in subs.iter_mut().filter(|(_, s)| !s.opened) {
            let command = Command::SubscriptionOpened {
                replica,
                subscription: *id,
                session: sub.session,
            };
            sub.opened = propose(command).await.is_ok();
        }
        let mut still_closing = Vec::new();
        for id in closing.drain(..) {
            let command = Command::SubscriptionClosed {
                replica,
                subscription: id,
            };
            if propose(command).await.is_err() {
                still_closing.push(id);
            }
        }
        closing = still_closing;
        let now = now_ms();
        if !subs.is_empty() && now >= last_lease + PRESENCE_LEASE_MS / 3 {
            let until_ms = now + PRESENCE_LEASE_MS;
            if propose(Command::PresenceLease { replica, until_ms })
                .await
                .is_ok()
            {
                last_lease = now;
            }
        }
        if consensus.is_leader() {
            let expired = {
                let guard = state.read().unwrap_or_else(|e| e.into_inner());
                guard.chat.next_lease_expiry().is_some_and(|t| t < now)
            };
            if expired {
                let _ = propose(Command::Tick).await;
            }
        }
    }
}
