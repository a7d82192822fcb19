//! The applied-event ring that feeds `Subscribe` streams.
//!
//! The state machine numbers events with a replicated counter, so every replica
//! has the same `seq` for the same event. Each replica keeps the most recent
//! events in memory; a subscriber resuming from a `seq` this replica still
//! holds gets every later event exactly once, in order, and one resuming from
//! an older `seq` (or from before this replica last restarted or installed a
//! snapshot) is told to resync.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::state::command::ChatEvent;

/// How many events a replica remembers for resuming subscribers.
pub const DEFAULT_EVENT_CAPACITY: usize = 100_000;

/// Shared between the state machine (which publishes) and the subscription
/// service (which reads).
#[derive(Debug)]
pub struct EventHub {
    ring: Mutex<Ring>,
    /// The last published `seq`; subscribers wait on it.
    latest: watch::Sender<u64>,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<Arc<ChatEvent>>,
    capacity: usize,
    /// Every event with `seq > floor` is either in `events` or not yet
    /// published. Events at or below `floor` are gone.
    floor: u64,
}

/// The cursor is older than what this replica remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// The oldest cursor that can still be resumed from.
    pub oldest_seq: u64,
}

impl EventHub {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                floor: 0,
            }),
            latest: watch::channel(0).0,
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent
        // (every mutation is a single push/pop), so poisoning is ignored.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends applied events (in `seq` order).
    pub fn publish(&self, events: impl IntoIterator<Item = ChatEvent>) {
        let mut last = None;
        {
            let mut ring = self.ring();
            for event in events {
                last = Some(event.seq);
                ring.events.push_back(Arc::new(event));
                if ring.events.len() > ring.capacity {
                    if let Some(old) = ring.events.pop_front() {
                        ring.floor = old.seq;
                    }
                }
            }
        }
        if let Some(seq) = last {
            self.latest.send_replace(seq);
        }
    }

    /// Forgets everything: the state jumped to `seq` (restart from a snapshot,
    /// or a snapshot installed from the leader). Earlier cursors must resync.
    pub fn reset(&self, seq: u64) {
        {
            let mut ring = self.ring();
            ring.events.clear();
            ring.floor = seq;
        }
        self.latest.send_replace(seq);
    }

    /// The last published `seq`.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A receiver that changes whenever events are published.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Events with `seq > after` that this replica holds, at most `max`.
    /// `after` older than the ring, or beyond its newest event, must resync.
    pub fn since(&self, after: u64, max: usize) -> Result<Vec<Arc<ChatEvent>>, Resync> {
        let ring = self.ring();
        let newest = ring.events.back().map_or(ring.floor, |e| e.seq);
        if after < ring.floor || after > newest {
            return Err(Resync {
                oldest_seq: ring.floor,
            });
        }
        let start = ring.events.partition_point(|e| e.seq <= after);
        Ok(ring.events.iter().skip(start).take(max).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::command::EventKind;

    fn event(seq: u64) -> ChatEvent {
        ChatEvent {
            seq,
            index: seq,
            recipients: vec![1],
            kind: EventKind::Presence {
                user: "a".into(),
                online: true,
                last_seen_ms: 0,
            },
        }
    }

    #[test]
    fn resumes_exactly_after_cursor() {
        let hub = EventHub::new(10);
        hub.publish((1..=5).map(event));
        let got: Vec<u64> = hub.since(2, 100).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(got, vec![3, 4, 5]);
        assert_eq!(hub.latest(), 5);
    }

    #[test]
    fn too_old_cursor_must_resync() {
        let hub = EventHub::new(3);
        hub.publish((1..=6).map(event));
        assert_eq!(hub.since(1, 100), Err(Resync { oldest_seq: 3 }));
        let got: Vec<u64> = hub.since(3, 100).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(got, vec![4, 5, 6]);
    }

    #[test]
    fn cursor_beyond_the_newest_event_must_resync() {
        let hub = EventHub::new(10);
        assert_eq!(hub.since(1, 10), Err(Resync { oldest_seq: 0 }));
        hub.publish((1..=5).map(event));
        assert!(hub.since(5, 10).unwrap().is_empty());
        assert_eq!(hub.since(6, 10), Err(Resync { oldest_seq: 0 }));
        assert_eq!(hub.since(u64::MAX, 10), Err(Resync { oldest_seq: 0 }));
        hub.reset(50);
        assert!(hub.since(50, 10).unwrap().is_empty());
        assert!(hub.since(51, 10).is_err());
    }

    #[test]
    fn reset_forgets_history() {
        let hub = EventHub::new(10);
        hub.publish((1..=3).map(event));
        hub.reset(50);
        assert!(hub.since(3, 10).is_err());
        assert!(hub.since(50, 10).unwrap().is_empty());
    }
}
