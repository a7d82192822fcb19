//! Idempotent writes: results of proposals that carried a request id are
//! remembered for [`DEDUP_WINDOW_MS`] of state time, so a retry (to any
//! replica, after a leader change, …) gets the original result back instead of
//! applying twice.
//!
//! Keys are scoped by who asked (see [`Scope`]) so that two clients that happen
//! to pick the same request id never see each other's results. Since rules
//! [`crate::state::ACCOUNT_DEDUP`] a command acting through a session is
//! scoped by the session's account, not by the session: a client that logs
//! in again (an expired session, a password change, chat-tui's outbox
//! after a restart) and retries with the same id gets the original result
//! instead of a second message.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{DedupKey, MessageRef, Remembered, RememberedAt, Store, StoredView};
use crate::state::command::*;

/// Who a request id belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Housekeeping commands (no user).
    Replica,
    /// Commands acting through a session (the hash of its token), and
    /// `CreateSession` (the hash of the token it would create: a retried login
    /// carries a fresh token, and must open that one, since the original
    /// token never reached the client).
    Token(TokenHash),
    /// `CreateAccount`: the lowercase username.
    Name(String),
    /// Commands acting through a session of this account (see
    /// [`crate::state::ChatState`]'s `dedup_scope`).
    Account(UserId),
}

impl Scope {
    pub fn of(command: &Command) -> Scope {
        match command {
            Command::CreateAccount { username, .. } => Scope::Name(username.to_lowercase()),
            Command::CreateSession { token_hash, .. } => Scope::Token(*token_hash),
            Command::EndSession { session }
            | Command::ChangePassword { session, .. }
            | Command::DeleteAccount { session, .. }
            | Command::Send { session, .. }
            | Command::CreateGroup { session, .. }
            | Command::AddMember { session, .. }
            | Command::LeaveGroup { session, .. }
            | Command::MarkRead { session, .. }
            | Command::ReadUnread { session, .. }
            | Command::DeleteMessages { session, .. }
            | Command::EditMessage { session, .. }
            | Command::SendReply { session, .. }
            | Command::React { session, .. }
            | Command::SubscriptionOpened { session, .. } => Scope::Token(*session),
            Command::SubscriptionClosed { .. }
            | Command::PresenceLease { .. }
            | Command::ReplicaStarted { .. }
            | Command::RecordIncarnation { .. }
            | Command::SetRules { .. }
            | Command::Tick => Scope::Replica,
        }
    }
}

/// Who asked and the id they chose, as the first 128 bits of a SHA-256:
/// fixed-size keys keep the stored window small and quick to compare. Two
/// different requests share a key with probability 2^-128.
fn key(scope: &Scope, id: &str) -> DedupKey {
    let mut h = Sha256::new();
    match scope {
        Scope::Replica => h.update([0u8]),
        Scope::Token(token) => {
            h.update([1u8]);
            h.update(token);
        }
        Scope::Name(name) => {
            h.update([2u8]);
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        Scope::Account(user) => {
            h.update([3u8]);
            h.update(user.to_le_bytes());
        }
    }
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// The result remembered for `id` from `scope`, if it was applied less than
/// [`DEDUP_WINDOW_MS`] of state time before `now`.
pub fn lookup(store: &dyn Store, scope: &Scope, id: &str, now: u64) -> Option<Remembered> {
    let entry = store.remembered(&key(scope, id))?;
    (entry.at.saturating_add(DEDUP_WINDOW_MS) > now).then_some(entry.result)
}

/// Remembers `result` for `id` from `scope`, applied at state time `now`.
/// Sent messages and handed-out messages are kept by reference (see
/// [`Remembered`]).
pub fn remember(store: &mut dyn Store, scope: &Scope, id: &str, now: u64, result: &CommandResult) {
    let result = match result {
        Ok(Outcome::Sent(view)) => Remembered::Sent(MessageRef::of(view)),
        Ok(Outcome::Messages {
            messages,
            remaining,
        }) => Remembered::Messages {
            messages: messages.iter().map(StoredView::of).collect(),
            remaining: *remaining,
        },
        Ok(Outcome::Changed(view)) => Remembered::Changed(MessageRef::of(view)),
        other => Remembered::Other(Box::new(other.clone())),
    };
    store.remember(key(scope, id), RememberedAt { at: now, result });
}

/// Frees the entries that expired at state time `now`.
pub fn evict(store: &mut dyn Store, now: u64) {
    // Expired: at + window <= now, that is at < now + 1 - window.
    store.forget_before(now.saturating_add(1).saturating_sub(DEDUP_WINDOW_MS));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::MemoryStore;

    fn sent(id: MessageId) -> CommandResult {
        Ok(Outcome::Sent(MessageView {
            id,
            conversation: 1,
            sender_id: 2,
            sender: "ann".into(),
            body: "hi".into(),
            sent_ms: 5,
            index: 9,
            edited_at_ms: 0,
            reply_to: 0,
            reactions: Vec::new(),
        }))
    }

    #[test]
    fn a_key_remembered_again_answers_with_its_newest_result() {
        let mut s = MemoryStore::default();
        let scope = Scope::Token([1; 32]);
        for i in 0..500u64 {
            remember(&mut s, &scope, &format!("r{i}"), i, &sent(i));
        }
        remember(&mut s, &scope, "r7", 600, &sent(70));
        assert_eq!(s.remembered_len(), 500);
        let found = |s: &MemoryStore, id: &str, now| lookup(s, &scope, id, now);
        assert!(matches!(
            found(&s, "r7", 600),
            Some(Remembered::Sent(MessageRef { id: 70, .. }))
        ));
        // Expired at exactly the window's end, whether or not evicted yet.
        assert!(found(&s, "r8", 8 + DEDUP_WINDOW_MS - 1).is_some());
        assert!(found(&s, "r8", 8 + DEDUP_WINDOW_MS).is_none());
        evict(&mut s, 10 + DEDUP_WINDOW_MS);
        assert_eq!(s.remembered_len(), 500 - 10);
        assert!(matches!(
            found(&s, "r7", 601),
            Some(Remembered::Sent(MessageRef { id: 70, .. }))
        ));
        assert!(
            lookup(&s, &Scope::Token([8; 32]), "r100", 601).is_none(),
            "scoped"
        );
        evict(&mut s, 600 + DEDUP_WINDOW_MS);
        assert_eq!(s.remembered_len(), 0);
    }

    #[test]
    fn handed_out_messages_are_remembered_without_their_bodies() {
        let mut s = MemoryStore::default();
        let Ok(Outcome::Sent(view)) = sent(3) else {
            unreachable!()
        };
        let result = Ok(Outcome::Messages {
            messages: vec![view.clone()],
            remaining: 4,
        });
        remember(&mut s, &Scope::Replica, "read", 1, &result);
        let Some(Remembered::Messages {
            messages,
            remaining: 4,
        }) = lookup(&s, &Scope::Replica, "read", 2)
        else {
            panic!("not remembered as messages");
        };
        assert_eq!(messages, vec![StoredView::of(&view)]);
        assert_eq!(
            messages[0].clone().view(),
            MessageView {
                body: String::new(),
                ..view
            }
        );
    }
}
