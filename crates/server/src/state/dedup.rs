//! Idempotent writes: results of proposals that carried a request id are
//! remembered for [`DEDUP_WINDOW_MS`] of state time, so a retry (to any
//! replica, after a leader change, …) gets the original result back instead of
//! applying twice.
//!
//! Keys are scoped by who asked (see [`Scope`]) so that two clients that happen
//! to pick the same request id never see each other's results.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

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
            | Command::RecordIncarnation { .. }
            | Command::Tick => Scope::Replica,
        }
    }
}

/// Who asked and the id they chose, as the first 128 bits of a SHA-256:
/// fixed-size keys keep the table small, and quick to compare and to load
/// from a snapshot (it holds every write of the window — a million at
/// thousands of writes a second). Two different requests share a key with
/// probability 2^-128. Snapshots write it as the little-endian `u128`.
type Key = [u8; 16];

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
    first
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

/// One remembered request, in application order.
#[derive(Debug, Clone)]
struct Slot {
    key: Key,
    /// The state time it was applied at.
    at: u64,
    /// `None` once a newer slot of the same key superseded it (it stays
    /// queued until evicted, so the snapshot order does not change).
    result: Option<Remembered>,
}

/// The remembered results: a queue in application order (state time never
/// decreases, so eviction pops from the front), and a hash index from key
/// to position. The queue fixes what snapshots write, so every replica
/// writes identical bytes whatever its hash layout. The index holds only an
/// 8-byte sequence number per request: at a million requests it is 16 MB
/// instead of the 170 MB a map holding keys and results took, and a
/// restart fills it in a fraction of the time.
#[derive(Clone, Default)]
pub struct Dedup {
    slots: VecDeque<Slot>,
    /// The sequence number of `slots[0]`; slot `seq` is at `seq - first_seq`.
    first_seq: u64,
    /// Sequence numbers of the newest slot of each key.
    index: HashTable<u64>,
    hasher: DefaultHashBuilder,
}

/// At most this many entries are reserved up front when loading, whatever
/// the input claims.
const MAX_PREALLOCATED: usize = 1 << 22;

/// Written in application order, each slot with its result unless a newer
/// slot of the same key superseded it: deterministic, and each result
/// stored once.
impl Serialize for Dedup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.slots.len()))?;
        for slot in &self.slots {
            let key = u128::from_le_bytes(slot.key);
            seq.serialize_element(&(slot.at, key, slot.result.as_ref()))?;
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
                // Room for the writes replayed from the log after a
                // restart: growing a full table copies (and rehashes) all
                // of it into fresh memory while the first clients wait.
                // Unused room is never touched, so it costs no resident
                // memory.
                let room = n + n / 2;
                let mut dedup = Dedup {
                    slots: VecDeque::with_capacity(room),
                    index: HashTable::with_capacity(room),
                    ..Dedup::default()
                };
                while let Some((at, key, result)) =
                    seq.next_element::<(u64, u128, Option<Remembered>)>()?
                {
                    let key = key.to_le_bytes();
                    match result {
                        Some(result) => dedup.push(key, at, result),
                        None => dedup.slots.push_back(Slot {
                            key,
                            at,
                            result: None,
                        }),
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
        while let Some(slot) = self.slots.front() {
            if slot.at.saturating_add(DEDUP_WINDOW_MS) > now {
                break;
            }
            if slot.result.is_some() {
                let (seq, hash) = (self.first_seq, self.hasher.hash_one(slot.key));
                if let Ok(entry) = self.index.find_entry(hash, |&s| s == seq) {
                    entry.remove();
                }
            }
            self.slots.pop_front();
            self.first_seq += 1;
        }
    }

    pub fn get(&self, scope: &Scope, id: &str) -> Option<&Remembered> {
        let key = key(scope, id);
        let seq = self.find(&key)?;
        self.slot(seq)?.result.as_ref()
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
        self.push(key(scope, id), now, remembered);
    }

    /// Blanks the bodies of deleted messages in remembered results, so a
    /// deleted message's text does not outlive its deletion in the state.
    /// Linear in the remembered results; deletions are rare next to sends.
    pub fn redact(&mut self, deleted: &std::collections::BTreeSet<MessageId>) {
        for slot in self.slots.iter_mut() {
            if let Some(Remembered::Other(result)) = &mut slot.result {
                let Ok(Outcome::Messages { messages, .. }) = result.as_mut() else {
                    continue;
                };
                for view in messages.iter_mut().filter(|v| deleted.contains(&v.id)) {
                    view.body.clear();
                }
            }
        }
    }

    /// Appends a slot and points the index at it (replacing an older slot
    /// of the same key, which stays queued until evicted).
    fn push(&mut self, key: Key, at: u64, result: Remembered) {
        let seq = self.first_seq + self.slots.len() as u64;
        let hash = self.hasher.hash_one(key);
        let Dedup {
            slots,
            first_seq,
            index,
            hasher,
        } = self;
        // The same lookup as `slot`, on the fields split for the borrow
        // checker; the index only holds sequence numbers of queued slots.
        let at_seq = |s: u64| s.checked_sub(*first_seq).map(|i| i as usize);
        let key_of = |s: u64| at_seq(s).and_then(|i| slots.get(i)).map(|slot| slot.key);
        match index.find_mut(hash, |&s| key_of(s) == Some(key)) {
            Some(newest) => {
                if let Some(old) = at_seq(*newest).and_then(|i| slots.get_mut(i)) {
                    old.result = None;
                }
                *newest = seq;
            }
            None => {
                index.insert_unique(hash, seq, |&s| key_of(s).map_or(0, |k| hasher.hash_one(k)));
            }
        }
        slots.push_back(Slot {
            key,
            at,
            result: Some(result),
        });
    }

    fn find(&self, key: &Key) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&s| self.slot(s).is_some_and(|slot| slot.key == *key))
            .copied()
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        self.slots.get(seq.checked_sub(self.first_seq)? as usize)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }
}

/// Equal when they would write the same snapshot.
impl PartialEq for Dedup {
    fn eq(&self, other: &Self) -> bool {
        self.slots.len() == other.slots.len()
            && self
                .slots
                .iter()
                .zip(&other.slots)
                .all(|(a, b)| a.key == b.key && a.at == b.at && a.result == b.result)
    }
}

impl Eq for Dedup {}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup")
            .field("slots", &self.slots.len())
            .field("indexed", &self.index.len())
            .finish()
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
    fn a_key_remembered_again_answers_with_its_newest_result() {
        let mut d = Dedup::default();
        let scope = Scope::Token([1; 32]);
        // Enough keys to make the index grow (and rehash) several times.
        for i in 0..5000u64 {
            d.remember(&scope, &format!("r{i}"), i, &sent(i));
        }
        d.remember(&scope, "r7", 6000, &sent(70));
        assert_eq!(d.len(), 5000);
        assert!(matches!(
            d.get(&scope, "r7"),
            Some(Remembered::Sent { id: 70, .. })
        ));
        assert!(matches!(
            d.get(&scope, "r4999"),
            Some(Remembered::Sent { id: 4999, .. })
        ));
        // Evicting the superseded slot keeps the newer one.
        d.evict(10 + DEDUP_WINDOW_MS);
        assert!(matches!(
            d.get(&scope, "r7"),
            Some(Remembered::Sent { id: 70, .. })
        ));
        assert!(d.get(&scope, "r8").is_none());
        let bytes = postcard::to_stdvec(&d).unwrap();
        let back: Dedup = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        assert!(matches!(
            back.get(&scope, "r7"),
            Some(Remembered::Sent { id: 70, .. })
        ));
        d.evict(6001 + DEDUP_WINDOW_MS);
        assert_eq!(d.len(), 0);
        assert!(d.get(&scope, "r7").is_none());
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
