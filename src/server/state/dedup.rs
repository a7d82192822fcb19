//! Idempotent writes: results of proposals that carried a request id are
//! remembered for [`DEDUP_WINDOW_MS`] of state time, so a retry (to any
//! replica, after a leader change, …) gets the original result back instead of
//! applying twice.
//!
//! Keys are scoped by who asked (see [`Scope`]) so that two clients that happen
//! to pick the same request id never see each other's results.

use std::collections::{HashMap, VecDeque};

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::server::command::*;

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
            | Command::SubscriptionOpened { session, .. } => Scope::Token(*session),
            Command::SubscriptionClosed { .. }
            | Command::PresenceLease { .. }
            | Command::ReplicaStarted { .. }
            | Command::Tick => Scope::Replica,
        }
    }
}

/// Who asked and the id they chose, as the first 128 bits of a SHA-256:
/// fixed-size keys keep the table small, and quick to compare and to load
/// from a snapshot (it holds every write of the window — a million at
/// thousands of writes a second). Two different requests share a key with
/// probability 2^-128.
type Key = u128;

fn key(scope: &Scope, id: &str) -> Key {
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
    }
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// A remembered result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    /// A sent message, by reference: a retry rebuilds the result from the
    /// stored message (see [`ChatState`](super::ChatState)), so the window
    /// holds no bodies or names.
    Sent {
        id: MessageId,
        conversation: ConversationId,
        sender_id: UserId,
        sent_ms: u64,
        index: u64,
    },
    /// Boxed: the table holds mostly `Sent`, which is much smaller.
    Other(Box<CommandResult>),
}

/// The remembered results. A hash map, because request-id keys are random
/// and a million of them in a tree cost a cache miss per level on every
/// lookup; `order` fixes the order they are written in (see the `Serialize`
/// impl), so every replica still writes identical snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dedup {
    /// Result and the state time it was applied at.
    results: HashMap<Key, (u64, Remembered)>,
    /// The same keys in application order (state time never decreases), so
    /// eviction pops from the front.
    order: VecDeque<(u64, Key)>,
}

/// At most this many entries are reserved up front when loading, whatever
/// the input claims.
const MAX_PREALLOCATED: usize = 1 << 22;

/// Written as `order`, each key with its result: deterministic, and each
/// key stored once.
impl Serialize for Dedup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.order.len()))?;
        for (at, key) in &self.order {
            let result = self
                .results
                .get(key)
                .filter(|(t, _)| t == at)
                .map(|(_, r)| r);
            seq.serialize_element(&(at, key, result))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Dedup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = Dedup;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("remembered request ids in application order")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dedup, A::Error> {
                let n = seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED);
                let mut dedup = Dedup {
                    results: HashMap::with_capacity(n),
                    order: VecDeque::with_capacity(n),
                };
                while let Some((at, key, result)) =
                    seq.next_element::<(u64, Key, Option<Remembered>)>()?
                {
                    dedup.order.push_back((at, key));
                    if let Some(result) = result {
                        dedup.results.insert(key, (at, result));
                    }
                }
                Ok(dedup)
            }
        }

        deserializer.deserialize_seq(Entries)
    }
}

impl Dedup {
    /// Forgets results applied `DEDUP_WINDOW_MS` or longer before `now`.
    pub fn evict(&mut self, now: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(DEDUP_WINDOW_MS) > now {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                if self.results.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.results.remove(&key);
                }
            }
        }
    }

    pub fn get(&self, scope: &Scope, id: &str) -> Option<&Remembered> {
        self.results.get(&key(scope, id)).map(|(_, r)| r)
    }

    /// Remembers a result.
    pub fn remember(&mut self, scope: &Scope, id: &str, now: u64, result: &CommandResult) {
        let remembered = match result {
            Ok(Outcome::Sent(view)) => Remembered::Sent {
                id: view.id,
                conversation: view.conversation,
                sender_id: view.sender_id,
                sent_ms: view.sent_ms,
                index: view.index,
            },
            other => Remembered::Other(Box::new(other.clone())),
        };
        let key = key(scope, id);
        self.order.push_back((now, key));
        self.results.insert(key, (now, remembered));
    }

    /// Blanks the bodies of deleted messages in remembered results, so a
    /// deleted message's text does not outlive its deletion in the state.
    /// Linear in the remembered results; deletions are rare next to sends.
    pub fn redact(&mut self, deleted: &std::collections::BTreeSet<MessageId>) {
        for (_, remembered) in self.results.values_mut() {
            if let Remembered::Other(result) = remembered {
                let Ok(Outcome::Messages { messages, .. }) = result.as_mut() else {
                    continue;
                };
                for view in messages.iter_mut().filter(|v| deleted.contains(&v.id)) {
                    view.body.clear();
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.results.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: MessageId) -> CommandResult {
        Ok(Outcome::Sent(MessageView {
            id,
            conversation: 1,
            sender_id: 2,
            sender: "ann".into(),
            body: "hi".into(),
            sent_ms: 5,
            index: 9,
        }))
    }

    #[test]
    fn snapshots_are_identical_whatever_the_hash_layout() {
        let mut d = Dedup::default();
        let scope = Scope::Token([7; 32]);
        for i in 0..500u64 {
            d.remember(&scope, &format!("req-{i}"), i, &sent(i));
        }
        d.remember(
            &Scope::Replica,
            "tick",
            600,
            &Err(ChatError::not_found("x")),
        );
        d.evict(100 + DEDUP_WINDOW_MS);
        let bytes = postcard::to_stdvec(&d).unwrap();
        let back: Dedup = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, d);
        // The copy was built by inserting in another order into a fresh map,
        // yet writes the same bytes.
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        assert_eq!(back.len(), 400);
        assert!(back.get(&scope, "req-100").is_none(), "evicted");
        assert!(matches!(
            back.get(&scope, "req-101"),
            Some(Remembered::Sent { id: 101, .. })
        ));
        assert!(
            back.get(&Scope::Token([8; 32]), "req-101").is_none(),
            "scoped"
        );
        assert!(matches!(
            back.get(&Scope::Replica, "tick"),
            Some(Remembered::Other(_))
        ));
    }
}
