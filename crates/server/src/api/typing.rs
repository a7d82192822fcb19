//! `Typing`: a client says its user is typing in a conversation.
//!
//! Typing is the one thing users see that does not go through the log: it
//! is worth nothing a few seconds later, and a log entry per keystroke
//! burst would cost every replica a disk write. The replica that takes a
//! notice checks the session and the membership in its own applied state,
//! admits at most one notice per user and conversation, and
//! [`MAX_PER_USER`] per user, per [`MIN_INTERVAL`], and relays it (`raft::typing`). Subscriptions on
//! every replica turn it into a `typing` event for the conversation's
//! other members (`api::subscribe`), which clients show for
//! [`EXPIRES_MS`] unless a newer notice or a message from that user comes
//! first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::command::{ConversationId, UserId};

/// How long a client shows a notice.
pub const EXPIRES_MS: u32 = 5_000;

/// Notices of one user in one conversation closer than this are
/// acknowledged and dropped. Clients repeat theirs every 3 s.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Most notices of one user, over all conversations, per
/// [`MIN_INTERVAL`]: each costs every replica a message, so a user in many
/// conversations must not make typing a flood.
pub const MAX_PER_USER: u32 = 5;

/// Most (user, conversation) pairs, and most users, remembered at once;
/// past it, entries older than [`MIN_INTERVAL`] are forgotten, and if none
/// are, new ones are dropped until some are.
pub const MAX_TRACKED: usize = 100_000;

/// When notices were last admitted: per user and conversation, and per
/// user (the start of their current interval and the notices in it).
#[derive(Default)]
pub struct TypingLimits(Mutex<Tables>);

#[derive(Default)]
struct Tables {
    pairs: HashMap<(UserId, ConversationId), Instant>,
    users: HashMap<UserId, (Instant, u32)>,
}

impl TypingLimits {
    /// Whether a notice of `user` in `conversation` goes out at `now`.
    pub fn admit(&self, user: UserId, conversation: ConversationId, now: Instant) -> bool {
        // Each update is an insert or a retain: ignore poisoning.
        let mut tables = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Tables { pairs, users } = &mut *tables;
        let recent = |at: &Instant| now.saturating_duration_since(*at) < MIN_INTERVAL;
        let key = (user, conversation);
        if pairs.get(&key).is_some_and(recent) {
            return false;
        }
        let count = match users.get(&user) {
            Some((since, count)) if recent(since) => (*since, *count),
            _ => (now, 0),
        };
        if count.1 >= MAX_PER_USER
            || !has_room(pairs, &key, recent)
            || !has_room(users, &user, |(at, _)| recent(at))
        {
            return false;
        }
        pairs.insert(key, now);
        users.insert(user, (count.0, count.1 + 1));
        true
    }
}

/// Whether `table` can take `key`, forgetting its old entries if it is full.
fn has_room<K: std::hash::Hash + Eq, V>(
    table: &mut HashMap<K, V>,
    key: &K,
    recent: impl Fn(&V) -> bool,
) -> bool {
    if table.len() < MAX_TRACKED || table.contains_key(key) {
        return true;
    }
    table.retain(|_, v| recent(v));
    table.len() < MAX_TRACKED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_user_and_conversation_per_interval() {
        let limits = TypingLimits::default();
        let t0 = Instant::now();
        assert!(limits.admit(1, 10, t0));
        assert!(!limits.admit(1, 10, t0 + Duration::from_millis(999)));
        // Another conversation, another user: their own budgets.
        assert!(limits.admit(1, 11, t0));
        assert!(limits.admit(2, 10, t0));
        assert!(limits.admit(1, 10, t0 + MIN_INTERVAL));
    }

    #[test]
    fn one_user_sends_a_few_per_interval_over_all_conversations() {
        let limits = TypingLimits::default();
        let t0 = Instant::now();
        let admitted = (0..20).filter(|c| limits.admit(1, *c, t0)).count();
        assert_eq!(admitted, MAX_PER_USER as usize);
        // Others are not held back by it.
        assert!(limits.admit(2, 0, t0));
        assert!(limits.admit(1, 100, t0 + MIN_INTERVAL));
    }

    #[test]
    fn a_full_table_forgets_what_is_old_and_refuses_the_rest() {
        let limits = TypingLimits::default();
        let t0 = Instant::now();
        for user in 0..MAX_TRACKED as u64 {
            assert!(limits.admit(user, 1, t0));
        }
        // All recent: a new pair waits.
        assert!(!limits.admit(u64::MAX, 1, t0));
        // Once they are old, they make room.
        assert!(limits.admit(u64::MAX, 1, t0 + MIN_INTERVAL));
        let tables = limits.0.lock().unwrap();
        assert_eq!((tables.pairs.len(), tables.users.len()), (1, 1));
    }
}
