//! When a replica builds a snapshot.
//!
//! openraft's own policy builds one every `--snapshot-every` applied
//! entries and then purges the log up to it (minus the entries kept). A
//! leader doing that while a follower receives or installs a snapshot, or
//! right after, before the follower has fetched the log that follows it,
//! purges the entries that follower needs next: it is behind the purged
//! log again and is sent another snapshot. With writes going on, a 1M-
//! message catch-up loaded two snapshots (BENCHMARKS.md), and a follower
//! whose install takes longer than one snapshot interval of writes could
//! never catch up. TiKV and CockroachDB likewise keep the log a pending
//! snapshot needs.
//!
//! So openraft's policy is off (`SnapshotPolicy::Never`) and [`schedule`]
//! asks for a snapshot at the same interval, except while this replica
//! sends one ([`Outgoing`]) or a follower it sent one to is still catching
//! up by the log. It waits for at most [`HOLD_INTERVALS`] intervals of log
//! (and no fewer than [`HOLD_MIN_ENTRIES`]), which bounds the log held in
//! memory, and at most [`CATCH_UP_WINDOW`] after a send.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::storage::raft_types::{LogId, NodeId, Raft};

/// How often the schedule compares the applied index with the snapshot's.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Snapshot intervals of log this replica keeps at most for a follower
/// before it snapshots (and purges) anyway.
pub const HOLD_INTERVALS: u64 = 4;

/// Entries a follower may hold whatever `--snapshot-every`: with a short
/// interval, a few intervals of writes pass during one install.
pub const HOLD_MIN_ENTRIES: u64 = 10_000;

/// How long after a send the follower may take to catch up by the log
/// before snapshots go on without it.
pub const CATCH_UP_WINDOW: Duration = Duration::from_secs(60);

/// The snapshots this replica sends, by follower.
#[derive(Clone, Default)]
pub struct Outgoing(Arc<Mutex<BTreeMap<NodeId, Transfers>>>);

/// The snapshot transfers to one follower.
#[derive(Default, Debug, Clone, Copy)]
struct Transfers {
    /// Under way: from the probe before the first chunk to the follower's
    /// answer that it installed the snapshot.
    active: usize,
    /// When the last one ended.
    ended: Option<Instant>,
}

/// One snapshot being sent; dropping it ends the send.
pub struct Sending {
    outgoing: Outgoing,
    target: NodeId,
}

impl Outgoing {
    pub fn start(&self, target: NodeId) -> Sending {
        self.lock().entry(target).or_default().active += 1;
        Sending {
            outgoing: self.clone(),
            target,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, Transfers>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(send) = self.outgoing.lock().get_mut(&self.target) {
            send.active = send.active.saturating_sub(1);
            send.ended = Some(Instant::now());
        }
    }
}

/// Whether a follower still needs the log after the snapshot it was sent:
/// a send is under way, or one ended less than [`CATCH_UP_WINDOW`] ago
/// and the follower's log (`matched`, as the leader knows it) ends before
/// what a snapshot now would purge (`applied` minus half the `kept`
/// entries, so that a follower following closely does not hold anything).
/// Followers that need nothing more are forgotten.
fn holds(
    sends: &mut BTreeMap<NodeId, Transfers>,
    now: Instant,
    matched: impl Fn(NodeId) -> Option<u64>,
    applied: u64,
    kept: u64,
) -> bool {
    sends.retain(|&target, send| {
        send.active > 0
            || send.ended.is_some_and(|ended| {
                now.duration_since(ended) < CATCH_UP_WINDOW
                    && matched(target).map_or(0, |m| m + 1) + kept / 2 < applied
            })
    });
    !sends.is_empty()
}

/// Whether to build a snapshot now, `since` applied entries after the last
/// one.
fn due(since: u64, every: u64, held: bool) -> bool {
    if held {
        since >= every.saturating_mul(HOLD_INTERVALS).max(HOLD_MIN_ENTRIES)
    } else {
        since >= every
    }
}

/// Asks `raft` for a snapshot every `every` applied entries (as openraft's
/// `LogsSinceLast` would; openraft keeps `kept` entries before it), holding
/// off for the followers in `outgoing`; ends when Raft shuts down.
pub fn schedule(raft: Raft, every: u64, kept: u64, outgoing: Outgoing) {
    tokio::spawn(async move {
        let metrics = raft.metrics();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if metrics.has_changed().is_err() {
                return;
            }
            let next = |l: Option<&LogId>| l.map_or(0, |l| l.index + 1);
            let (since, held) = {
                let m = metrics.borrow();
                let applied = next(m.last_applied.as_ref());
                let matched = |target| {
                    let replication = m.replication.as_ref()?;
                    replication.get(&target)?.as_ref().map(|l| l.index)
                };
                let held = holds(&mut outgoing.lock(), Instant::now(), matched, applied, kept);
                (applied.saturating_sub(next(m.snapshot.as_ref())), held)
            };
            if due(since, every, held) && raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_snapshot_waits_for_a_bounded_log() {
        let every = HOLD_MIN_ENTRIES;
        assert!(!due(every - 1, every, false));
        assert!(due(every, every, false));
        assert!(!due(every, every, true));
        assert!(!due(every * HOLD_INTERVALS - 1, every, true));
        assert!(due(every * HOLD_INTERVALS, every, true));
        // A short interval holds no fewer entries.
        assert!(!due(HOLD_MIN_ENTRIES - 1, 100, true));
        assert!(due(HOLD_MIN_ENTRIES, 100, true));
    }

    #[test]
    fn a_follower_holds_snapshots_while_sent_one_and_until_it_caught_up() {
        let outgoing = Outgoing::default();
        let now = Instant::now();
        let at = |m: u64| move |_| Some(m);
        let sending = outgoing.start(2);
        // Under way: held whatever the follower's log.
        assert!(holds(&mut outgoing.lock(), now, at(5_000), 5_000, 1_000));
        drop(sending);
        let ended = Instant::now();
        // Installed at 1,000 while the leader applied up to 5,000: held.
        assert!(holds(&mut outgoing.lock(), ended, at(1_000), 5_000, 1_000));
        // Within half the kept entries of the leader: caught up, forgotten.
        assert!(!holds(&mut outgoing.lock(), ended, at(4_600), 5_000, 1_000));
        assert!(outgoing.lock().is_empty());
        // A follower that never catches up holds only for a while.
        drop(outgoing.start(3));
        let late = Instant::now() + CATCH_UP_WINDOW + Duration::from_secs(1);
        assert!(holds(&mut outgoing.lock(), ended, |_| None, 5_000, 1_000));
        assert!(!holds(&mut outgoing.lock(), late, |_| None, 5_000, 1_000));
    }
}
