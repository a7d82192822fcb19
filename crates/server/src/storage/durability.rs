//! What of the leader's log is on disk yet, for the places that must only
//! act on durable entries.
//!
//! openraft 0.9 awaits the leader's own log flush before it sends the entry
//! to the followers, which puts two `fdatasync`s (the leader's, then the
//! followers') in series on every write. So the log writer reports the
//! *leader's own* appends flushed as soon as they are written, and runs their
//! `fdatasync` while the followers run theirs (see `LogStore::append`). That
//! lets openraft count the leader toward a commit quorum before its copy is
//! durable, so nothing may act on such a commit until the leader's copy is:
//!
//! * the state machine applies an entry (and so acknowledges the client,
//!   answers linearizable reads and publishes events) only once it is
//!   durable here: [`Durability::wait_durable`];
//! * the commit index sent to followers is capped at the last durable entry,
//!   so no follower applies an entry that only a minority holds on disk:
//!   [`Durability::cap_commit`].
//!
//! A process crash loses nothing that was written (the page cache keeps it,
//! and the log is fsynced again at open). What a power cut loses is handled
//! at open: see `LogStore::open` (a leader from a previous boot does not
//! resume its term).
//!
//! Followers' appends are reported only after their `fdatasync`, as before:
//! their acknowledgements are what makes an entry durable on a majority.

use tokio::sync::watch;

use crate::raft_types::LogId;

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
