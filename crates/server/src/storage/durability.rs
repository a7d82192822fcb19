//! The durability rule, whole, and the tracker that enforces it.
//!
//! **The promise.** An acknowledged write is on disk (`fdatasync`ed) on a
//! majority of replicas, and no replica applies, serves or acknowledges
//! anything that is not.
//!
//! **Why it needs a rule.** openraft 0.9 awaits the leader's own log flush
//! before it sends an entry to the followers, which puts two `fdatasync`s
//! (the leader's, then the followers') in series on every write. So the log
//! writer reports the *leader's own* appends flushed as soon as they are
//! written, and runs their `fdatasync` while the followers run theirs (see
//! `LogStore::append`). openraft then counts the leader toward a commit
//! quorum before its copy is durable, and "committed" in openraft's sense
//! no longer implies "on disk on a majority". Followers' appends are still
//! reported only after their `fdatasync`: their acknowledgements are what
//! makes an entry durable on a majority.
//!
//! **The rule.** Nothing acts on an entry the leader holds unsynced. Four
//! places enforce it, and a change to any of them must keep the others in
//! mind:
//!
//! 1. *Apply waits* (`storage::state_store`): the state machine applies an
//!    entry, and so acknowledges its client, answers linearizable reads
//!    with it and publishes its events, only once it is durable here:
//!    [`Durability::wait_durable`].
//! 2. *Followers learn commits late* (`raft::network`): the commit index the
//!    leader sends is capped at its last durable entry, so no follower
//!    applies an entry that only a minority holds on disk:
//!    [`Durability::cap_commit`].
//! 3. *A leader from another boot does not resume its term*
//!    (`storage::log_store`, `vote_for_this_boot`): after a power cut the
//!    leader's log may lack entries followers hold under its leader id, so
//!    a log last opened in another boot of the machine campaigns in a new
//!    term instead of handing out those log ids again. A process crash loses
//!    nothing written (the page cache keeps it, and the WAL is synced again
//!    at open), so it keeps its term.
//! 4. *A restarted leader's reads wait for its old log* (`raft::consensus`,
//!    `ReadFloor`): openraft 0.9 restarts a leader of a committed vote in the
//!    same term with its commit index back at what it had applied; in each
//!    term the leader hands out no read index below the end of its log as it
//!    was when it first served a read.
//!
//! The fault suite's `power-cut-leader` and `lose-unsynced` events test the
//! rule end to end: a power cut may take a leader's unsynced tail, never an
//! acknowledged write.

use tokio::sync::watch;

use crate::storage::raft_types::LogId;

/// Entries from `first` on were reported flushed before their `fdatasync`
/// returned; `durable` is the last entry before them (all of it on disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsynced {
    pub first: u64,
    pub durable: Option<LogId>,
}

/// The writer's side: the only one that changes the state.
#[derive(Debug)]
pub struct DurabilityWriter {
    tx: watch::Sender<State>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    unsynced: Option<Unsynced>,
    /// The log writer failed: an unsynced entry may never become durable.
    failed: bool,
}

/// A cheap, cloneable view for the state machine and the network.
#[derive(Clone, Debug)]
pub struct Durability {
    rx: watch::Receiver<State>,
}

/// Creates a writer and its view, with nothing unsynced.
pub fn channel() -> (DurabilityWriter, Durability) {
    let (tx, rx) = watch::channel(State::default());
    (DurabilityWriter { tx }, Durability { rx })
}

impl DurabilityWriter {
    /// Called before the early flush reports go out.
    pub fn begin_unsynced(&self, unsynced: Unsynced) {
        self.tx.send_modify(|s| {
            // Earlier unsynced entries (none, since the writer syncs each
            // batch before the next) would keep the lower bound.
            if s.unsynced.is_none() {
                s.unsynced = Some(unsynced);
            }
        });
    }

    /// Called after the `fdatasync` that covers every unsynced entry.
    pub fn synced(&self) {
        self.tx.send_if_modified(|s| s.unsynced.take().is_some());
    }

    /// Called when a write or sync failed: unsynced entries stay unsynced
    /// forever, so whoever waits for them gets an error instead.
    pub fn failed(&self) {
        self.tx.send_modify(|s| s.failed = true);
    }
}

impl Durability {
    /// For a log without a disk (memory mode): everything counts as durable.
    pub fn always() -> Durability {
        channel().1
    }

    /// Waits until the entry at `index` is durable in this replica's log.
    /// Returns at once unless it was reported flushed early.
    pub async fn wait_durable(&self, index: u64) -> Result<(), String> {
        let mut rx = self.rx.clone();
        let state = rx
            .wait_for(|s| s.failed || s.unsynced.is_none_or(|u| u.first > index))
            .await
            .map_err(|_| "the log writer stopped".to_string())?;
        if state.failed && state.unsynced.is_some_and(|u| u.first <= index) {
            return Err(format!(
                "log entry {index} may not be on disk: the log writer failed"
            ));
        }
        Ok(())
    }

    /// The commit index a leader may tell followers: `committed`, or the last
    /// durable entry if `committed` is past it.
    pub fn cap_commit(&self, committed: Option<LogId>) -> Option<LogId> {
        let state = *self.rx.borrow();
        match (committed, state.unsynced) {
            (Some(c), Some(u)) if c.index >= u.first => u.durable,
            _ => committed,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::CommittedLeaderId;

    use super::*;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    #[tokio::test]
    async fn applying_an_unsynced_entry_waits_for_its_sync() {
        let (writer, view) = channel();
        writer.begin_unsynced(Unsynced {
            first: 5,
            durable: Some(log_id(4)),
        });
        // Entries before the unsynced ones are not held up.
        view.wait_durable(4).await.expect("4 is durable");
        let waiting = tokio::spawn({
            let view = view.clone();
            async move { view.wait_durable(6).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "entry 6 was applied before its sync"
        );
        writer.synced();
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released by the sync")
            .expect("task");
        assert_eq!(r, Ok(()));
    }

    #[tokio::test]
    async fn a_failed_writer_fails_the_wait() {
        let (writer, view) = channel();
        writer.begin_unsynced(Unsynced {
            first: 1,
            durable: None,
        });
        writer.failed();
        let r = view.wait_durable(1).await;
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn the_commit_sent_to_followers_stops_at_the_last_durable_entry() {
        let (writer, view) = channel();
        assert_eq!(view.cap_commit(Some(log_id(9))), Some(log_id(9)));
        writer.begin_unsynced(Unsynced {
            first: 7,
            durable: Some(log_id(6)),
        });
        assert_eq!(view.cap_commit(Some(log_id(6))), Some(log_id(6)));
        assert_eq!(view.cap_commit(Some(log_id(7))), Some(log_id(6)));
        assert_eq!(view.cap_commit(None), None);
        writer.synced();
        assert_eq!(view.cap_commit(Some(log_id(9))), Some(log_id(9)));
    }
}
