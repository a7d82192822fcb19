//! Where the parts of the chat state that grow with history live: the
//! messages, and the results remembered for request ids (see `dedup`).
//!
//! The state machine reads and writes them only through [`Store`], so the
//! same deterministic logic runs over [`MemoryStore`] (unit tests, memory
//! mode) and over storage's disk-backed store, which keeps them in redb
//! and only recent changes in RAM. Everything else in [`ChatState`]
//! (accounts, sessions, conversations and their members' read state,
//! presence) is bounded by users and conversations, not by history, and
//! stays in RAM.
//!
//! A store holds no clock and no randomness; every call is a pure function
//! of the calls before it, so two stores that saw the same calls hold the
//! same [`Record`]s in the same order.
//!
//! [`ChatState`]: super::ChatState

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::state::command::*;
use crate::state::search::{self, Found, Query};

/// A remembered request: who asked and the id they chose, as the first 128
/// bits of a SHA-256 (see `dedup::key`).
pub type DedupKey = [u8; 16];

/// A message as the store holds it, under `(conversation, id)`; reads and
/// events hand out [`MessageView`]s.
///
/// Not serialized as it is: stored messages and snapshots encode it as a
/// [`MessageV0`] (the layout of the releases before messages could be
/// edited), followed by a [`MessageExt`] only where the extension is not
/// empty (see [`Record`] and `storage::disk_store`), so that what those
/// releases wrote still decodes, and a message never edited is written
/// byte for byte as they wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender_id: UserId,
    /// The sender's name when it was sent; survives account deletion.
    pub sender: String,
    pub body: String,
    pub sent_ms: u64,
    /// The log index of the entry that sent it.
    pub index: u64,
    /// What later releases added.
    pub ext: MessageExt,
}

/// A message's fields added after the first release; all default for a
/// message written before (see [`Message`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageExt {
    /// State time of the last edit; 0 = never edited.
    pub edited_at_ms: u64,
    /// The message of the same conversation this one answers; 0 = none.
    pub reply_to: MessageId,
    /// One reaction per user, by user id.
    pub reactions: Vec<Reaction>,
}

/// A user's reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub user: UserId,
    /// The user's name when they reacted; survives account deletion.
    pub name: String,
    pub emoji: String,
}

impl MessageExt {
    /// Nothing to write after the [`MessageV0`].
    pub fn is_empty(&self) -> bool {
        *self == MessageExt::default()
    }
}

/// The encoding of a [`Message`] before the [`MessageExt`]: frozen, it is
/// what stored data of older releases holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageV0 {
    pub sender_id: UserId,
    pub sender: String,
    pub body: String,
    pub sent_ms: u64,
    pub index: u64,
}

/// [`MessageV0`] borrowed, to encode without copying the text (postcard
/// writes `&str` and `String` alike).
#[derive(Serialize)]
pub struct MessageV0Ref<'a> {
    pub sender_id: UserId,
    pub sender: &'a str,
    pub body: &'a str,
    pub sent_ms: u64,
    pub index: u64,
}

impl Message {
    /// A message as sent (no extension yet).
    pub fn new(sender_id: UserId, sender: &str, body: &str, sent_ms: u64, index: u64) -> Message {
        Message {
            sender_id,
            sender: sender.into(),
            body: body.into(),
            sent_ms,
            index,
            ext: MessageExt::default(),
        }
    }

    pub fn view(&self, conversation: ConversationId, id: MessageId) -> MessageView {
        MessageView {
            id,
            conversation,
            sender_id: self.sender_id,
            sender: self.sender.clone(),
            body: self.body.clone(),
            sent_ms: self.sent_ms,
            index: self.index,
            edited_at_ms: self.ext.edited_at_ms,
            reply_to: self.ext.reply_to,
            reactions: reaction_views(&self.ext.reactions),
        }
    }

    /// The part every release encodes.
    pub fn v0(&self) -> MessageV0Ref<'_> {
        MessageV0Ref {
            sender_id: self.sender_id,
            sender: &self.sender,
            body: &self.body,
            sent_ms: self.sent_ms,
            index: self.index,
        }
    }

    pub fn from_parts(v0: MessageV0, ext: MessageExt) -> Message {
        Message {
            sender_id: v0.sender_id,
            sender: v0.sender,
            body: v0.body,
            sent_ms: v0.sent_ms,
            index: v0.index,
            ext,
        }
    }
}

/// Reactions grouped by emoji (in emoji order), each with who reacted (in
/// user id order).
fn reaction_views(reactions: &[Reaction]) -> Vec<ReactionView> {
    let mut by_emoji: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in reactions {
        by_emoji.entry(&r.emoji).or_default().push(r.name.clone());
    }
    by_emoji
        .into_iter()
        .map(|(emoji, users)| ReactionView {
            emoji: emoji.to_owned(),
            users,
        })
        .collect()
}

/// A [`MessageView`] as the request-id window stores it
/// ([`Remembered::Messages`]): the layout `MessageView` had before messages
/// could be edited, frozen so that windows written then still decode. A
/// retry fills in everything else from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredView {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender_id: UserId,
    pub sender: String,
    pub body: String,
    pub sent_ms: u64,
    pub index: u64,
}

impl StoredView {
    /// `view` without its body (see [`Remembered::Messages`]).
    pub fn of(view: &MessageView) -> StoredView {
        StoredView {
            id: view.id,
            conversation: view.conversation,
            sender_id: view.sender_id,
            sender: view.sender.clone(),
            body: String::new(),
            sent_ms: view.sent_ms,
            index: view.index,
        }
    }

    /// The view with no body and no extension, for the store to fill in.
    pub fn view(self) -> MessageView {
        MessageView {
            id: self.id,
            conversation: self.conversation,
            sender_id: self.sender_id,
            sender: self.sender,
            body: self.body,
            sent_ms: self.sent_ms,
            index: self.index,
            edited_at_ms: 0,
            reply_to: 0,
            reactions: Vec::new(),
        }
    }
}

/// A message by reference: what a retry needs to rebuild its result from
/// the store, without its body or names. Encoded as the fields of the
/// struct variant `Remembered::Sent` were, so older windows still decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender_id: UserId,
    pub sent_ms: u64,
    pub index: u64,
}

impl MessageRef {
    pub fn of(view: &MessageView) -> MessageRef {
        MessageRef {
            id: view.id,
            conversation: view.conversation,
            sender_id: view.sender_id,
            sent_ms: view.sent_ms,
            index: view.index,
        }
    }
}

/// A remembered result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remembered {
    /// A sent message, by reference: a retry rebuilds the result from the
    /// stored message, so the window holds no bodies or names.
    Sent(MessageRef),
    /// Messages handed out (`ReadUnread`) with their bodies left out: a
    /// retry fills them in from the store, so a message deleted since
    /// comes back with an empty body, and the window holds no text.
    Messages {
        messages: Vec<StoredView>,
        remaining: u64,
    },
    /// Any other result. Boxed: the window holds mostly `Sent`.
    Other(Box<CommandResult>),
    /// A message changed (edited): by reference like `Sent`, answered
    /// with the message as it is when the retry arrives.
    Changed(MessageRef),
}

/// One remembered request id: the state time it was applied at and its
/// result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedAt {
    pub at: u64,
    pub result: Remembered,
}

/// One item of a store's contents, in the order [`Store::records`] yields
/// them: every message by id, then every remembered request by key.
/// Snapshots carry a store as this sequence, encoded as [`RecordWire`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RecordWire")]
pub enum Record {
    Message {
        conversation: ConversationId,
        id: MessageId,
        message: Message,
    },
    Remembered {
        key: DedupKey,
        entry: RememberedAt,
    },
}

/// How a [`Record`] is encoded. The first two variants are the encoding of
/// the releases before messages could be edited (a message as its
/// [`MessageV0`]), so their snapshots still decode; a message with a
/// non-empty [`MessageExt`] is the variant added after them.
#[derive(Serialize, Deserialize)]
pub enum RecordWire {
    Message {
        conversation: ConversationId,
        id: MessageId,
        message: MessageV0,
    },
    Remembered {
        key: DedupKey,
        entry: RememberedAt,
    },
    Extended {
        conversation: ConversationId,
        id: MessageId,
        message: MessageV0,
        ext: MessageExt,
    },
}

/// [`RecordWire`] borrowed: the same variants in the same order.
#[derive(Serialize)]
enum RecordWireRef<'a> {
    Message {
        conversation: ConversationId,
        id: MessageId,
        message: MessageV0Ref<'a>,
    },
    Remembered {
        key: &'a DedupKey,
        entry: &'a RememberedAt,
    },
    Extended {
        conversation: ConversationId,
        id: MessageId,
        message: MessageV0Ref<'a>,
        ext: &'a MessageExt,
    },
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Record::Message {
                conversation,
                id,
                message,
            } if message.ext.is_empty() => RecordWireRef::Message {
                conversation: *conversation,
                id: *id,
                message: message.v0(),
            },
            Record::Message {
                conversation,
                id,
                message,
            } => RecordWireRef::Extended {
                conversation: *conversation,
                id: *id,
                message: message.v0(),
                ext: &message.ext,
            },
            Record::Remembered { key, entry } => RecordWireRef::Remembered { key, entry },
        };
        wire.serialize(serializer)
    }
}

impl From<RecordWire> for Record {
    fn from(wire: RecordWire) -> Record {
        match wire {
            RecordWire::Message {
                conversation,
                id,
                message,
            } => Record::Message {
                conversation,
                id,
                message: Message::from_parts(message, MessageExt::default()),
            },
            RecordWire::Extended {
                conversation,
                id,
                message,
                ext,
            } => Record::Message {
                conversation,
                id,
                message: Message::from_parts(message, ext),
            },
            RecordWire::Remembered { key, entry } => Record::Remembered { key, entry },
        }
    }
}

/// Messages as an iterator of `(id, message)`.
pub type Messages<'a> = Box<dyn Iterator<Item = (MessageId, Message)> + 'a>;

/// The history and the request-id window, as the state machine sees them.
///
/// Reads see every write made before them, including the writes of the
/// entry being applied. Writes cannot fail: a disk-backed store records
/// them in RAM and persists them later (see `storage`).
pub trait Store: std::any::Any + Send + Sync {
    /// One message of `conversation`.
    fn message(&self, conversation: ConversationId, id: MessageId) -> Option<Message>;
    /// The conversation message `id` was sent to, while it exists.
    fn home(&self, id: MessageId) -> Option<ConversationId>;
    /// `conversation`'s messages with ids in `range`, oldest first, or
    /// newest first with `newest_first`.
    fn messages(
        &self,
        conversation: ConversationId,
        range: (Bound<MessageId>, Bound<MessageId>),
        newest_first: bool,
    ) -> Messages<'_>;
    fn put_message(&mut self, conversation: ConversationId, id: MessageId, message: Message);
    /// Replaces message `id` of `conversation`, which exists, in its place.
    fn update_message(&mut self, conversation: ConversationId, id: MessageId, message: Message);
    fn remove_message(&mut self, conversation: ConversationId, id: MessageId);
    /// Removes every message of `conversation` (it was removed).
    fn remove_conversation(&mut self, conversation: ConversationId);

    /// The entry remembered under `key`, expired or not (the caller
    /// decides: expiry is a matter of state time).
    fn remembered(&self, key: &DedupKey) -> Option<RememberedAt>;
    /// Remembers `entry` under `key`, replacing an older one.
    fn remember(&mut self, key: DedupKey, entry: RememberedAt);
    /// Drops the entries remembered before `cutoff` (state time); they are
    /// expired, so this only frees space.
    fn forget_before(&mut self, cutoff: u64);

    /// Everything held, in [`Record`] order.
    fn records(&self) -> Box<dyn Iterator<Item = Record> + '_>;

    /// At most `limit` messages of the conversations in `scope`, with ids
    /// below `before` (0 = no bound), whose current text matches `query`,
    /// newest first. A read of what is held, not part of it: a store may
    /// keep an index for it (a disk store does), which is no [`Record`].
    /// By default it walks the scope ([`search::scan`]).
    fn search(
        &self,
        scope: &BTreeSet<ConversationId>,
        query: &Query,
        before: MessageId,
        limit: usize,
    ) -> Vec<Found> {
        search::scan(self, scope, query, before, limit)
    }
}

/// A [`Store`] in RAM: ordered maps. Unit tests and memory mode use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    messages: BTreeMap<(ConversationId, MessageId), Message>,
    homes: BTreeMap<MessageId, ConversationId>,
    remembered: BTreeMap<DedupKey, RememberedAt>,
    /// `(at, key)` of every remembered entry: expiry pops from the front.
    by_time: BTreeSet<(u64, DedupKey)>,
}

impl MemoryStore {
    /// A store holding `records` (as [`Store::records`] yields them).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> MemoryStore {
        let mut store = MemoryStore::default();
        for record in records {
            store.insert(record);
        }
        store
    }

    /// Adds one record.
    pub fn insert(&mut self, record: Record) {
        match record {
            Record::Message {
                conversation,
                id,
                message,
            } => self.put_message(conversation, id, message),
            Record::Remembered { key, entry } => self.remember(key, entry),
        }
    }

    /// Remembered request ids held (expired ones included until forgotten).
    pub fn remembered_len(&self) -> usize {
        self.remembered.len()
    }
}

/// A range of `(conversation, id)` map keys.
type KeyRange = (
    Bound<(ConversationId, MessageId)>,
    Bound<(ConversationId, MessageId)>,
);

/// The ids of `conversation` within `range`, as a range of map keys.
fn conversation_keys(
    conversation: ConversationId,
    range: (Bound<MessageId>, Bound<MessageId>),
) -> KeyRange {
    let at = |b: Bound<MessageId>, open: (ConversationId, MessageId)| match b {
        Bound::Included(id) => Bound::Included((conversation, id)),
        Bound::Excluded(id) => Bound::Excluded((conversation, id)),
        Bound::Unbounded => Bound::Included(open),
    };
    (
        at(range.0, (conversation, MessageId::MIN)),
        at(range.1, (conversation, MessageId::MAX)),
    )
}

impl Store for MemoryStore {
    fn message(&self, conversation: ConversationId, id: MessageId) -> Option<Message> {
        self.messages.get(&(conversation, id)).cloned()
    }

    fn home(&self, id: MessageId) -> Option<ConversationId> {
        self.homes.get(&id).copied()
    }

    fn messages(
        &self,
        conversation: ConversationId,
        range: (Bound<MessageId>, Bound<MessageId>),
        newest_first: bool,
    ) -> Messages<'_> {
        let items = self
            .messages
            .range(conversation_keys(conversation, range))
            .map(|((_, id), m)| (*id, m.clone()));
        if newest_first {
            Box::new(items.rev())
        } else {
            Box::new(items)
        }
    }

    fn put_message(&mut self, conversation: ConversationId, id: MessageId, message: Message) {
        self.messages.insert((conversation, id), message);
        self.homes.insert(id, conversation);
    }

    fn update_message(&mut self, conversation: ConversationId, id: MessageId, message: Message) {
        if let Some(m) = self.messages.get_mut(&(conversation, id)) {
            *m = message;
        }
    }

    fn remove_message(&mut self, conversation: ConversationId, id: MessageId) {
        if self.messages.remove(&(conversation, id)).is_some() {
            self.homes.remove(&id);
        }
    }

    fn remove_conversation(&mut self, conversation: ConversationId) {
        let keys = conversation_keys(conversation, (Bound::Unbounded, Bound::Unbounded));
        let ids: Vec<MessageId> = self.messages.range(keys).map(|((_, id), _)| *id).collect();
        for id in ids {
            self.remove_message(conversation, id);
        }
    }

    fn remembered(&self, key: &DedupKey) -> Option<RememberedAt> {
        self.remembered.get(key).cloned()
    }

    fn remember(&mut self, key: DedupKey, entry: RememberedAt) {
        self.by_time.insert((entry.at, key));
        if let Some(old) = self.remembered.insert(key, entry) {
            self.by_time.remove(&(old.at, key));
        }
    }

    fn forget_before(&mut self, cutoff: u64) {
        while let Some(&(at, key)) = self.by_time.first() {
            if at >= cutoff {
                break;
            }
            self.by_time.pop_first();
            self.remembered.remove(&key);
        }
    }

    fn records(&self) -> Box<dyn Iterator<Item = Record> + '_> {
        let messages = self.homes.iter().filter_map(|(&id, &conversation)| {
            Some(Record::Message {
                conversation,
                id,
                message: self.messages.get(&(conversation, id))?.clone(),
            })
        });
        let remembered = self
            .remembered
            .iter()
            .map(|(key, entry)| Record::Remembered {
                key: *key,
                entry: entry.clone(),
            });
        Box::new(messages.chain(remembered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Message {
        Message::new(1, "a", body, 5, 9)
    }

    #[test]
    fn pages_stay_within_their_conversation() {
        let mut s = MemoryStore::default();
        s.put_message(1, 1, msg("a"));
        s.put_message(2, 2, msg("b"));
        s.put_message(1, 3, msg("c"));
        let ids = |it: Messages<'_>| it.map(|(id, _)| id).collect::<Vec<_>>();
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(ids(s.messages(1, all, false)), vec![1, 3]);
        assert_eq!(ids(s.messages(1, all, true)), vec![3, 1]);
        assert_eq!(
            ids(s.messages(1, (Bound::Unbounded, Bound::Excluded(3)), true)),
            vec![1]
        );
        assert_eq!(s.home(2), Some(2));
        s.remove_conversation(1);
        assert_eq!(ids(s.messages(1, all, false)), Vec::<u64>::new());
        assert_eq!(s.home(1), None);
        assert_eq!(s.home(2), Some(2));
    }

    /// Records and remembered results exactly as the releases before
    /// message extensions derived their encoding.
    #[derive(Serialize)]
    enum OldRecord {
        Message {
            conversation: ConversationId,
            id: MessageId,
            message: MessageV0,
        },
        Remembered {
            key: DedupKey,
            entry: OldRememberedAt,
        },
    }
    #[derive(Serialize)]
    struct OldRememberedAt {
        at: u64,
        result: OldRemembered,
    }
    #[derive(Serialize)]
    enum OldRemembered {
        Sent {
            id: MessageId,
            conversation: ConversationId,
            sender_id: UserId,
            sent_ms: u64,
            index: u64,
        },
        Messages {
            messages: Vec<OldView>,
            remaining: u64,
        },
    }
    #[derive(Serialize)]
    struct OldView {
        id: MessageId,
        conversation: ConversationId,
        sender_id: UserId,
        sender: String,
        body: String,
        sent_ms: u64,
        index: u64,
    }

    #[test]
    fn records_written_before_message_extensions_still_decode() {
        let v0 = MessageV0 {
            sender_id: 1,
            sender: "a".into(),
            body: "hi".into(),
            sent_ms: 5,
            index: 9,
        };
        let old = [
            OldRecord::Message {
                conversation: 2,
                id: 3,
                message: v0.clone(),
            },
            OldRecord::Remembered {
                key: [7; 16],
                entry: OldRememberedAt {
                    at: 11,
                    result: OldRemembered::Messages {
                        messages: vec![OldView {
                            id: 3,
                            conversation: 2,
                            sender_id: 1,
                            sender: "a".into(),
                            body: String::new(),
                            sent_ms: 5,
                            index: 9,
                        }],
                        remaining: 4,
                    },
                },
            },
        ];
        // Snapshots write one record after another.
        let mut bytes = Vec::new();
        for record in &old {
            bytes = postcard::to_extend(record, bytes).unwrap();
        }
        let (first, rest): (Record, _) = postcard::take_from_bytes(&bytes).unwrap();
        let (second, rest): (Record, _) = postcard::take_from_bytes(rest).unwrap();
        assert!(rest.is_empty());
        let message = Message::new(1, "a", "hi", 5, 9);
        assert_eq!(
            first,
            Record::Message {
                conversation: 2,
                id: 3,
                message: message.clone(),
            }
        );
        let Record::Remembered { key, entry } = second else {
            panic!("not remembered: {second:?}");
        };
        assert_eq!(key, [7; 16]);
        let Remembered::Messages {
            messages,
            remaining: 4,
        } = entry.result
        else {
            panic!("not messages: {:?}", entry.result);
        };
        assert_eq!(messages[0].clone().view().sender, "a");
        // A plain message is written as before; an edited one decodes back.
        let plain = Record::Message {
            conversation: 2,
            id: 3,
            message: message.clone(),
        };
        let first_len = bytes.len() - postcard::to_stdvec(&old[1]).unwrap().len();
        assert_eq!(postcard::to_stdvec(&plain).unwrap(), bytes[..first_len]);
        let mut edited = message;
        edited.body = "hello".into();
        edited.ext.edited_at_ms = 6;
        edited.ext.reply_to = 2;
        edited.ext.reactions.push(Reaction {
            user: 1,
            name: "a".into(),
            emoji: "🎉".into(),
        });
        let edited = Record::Message {
            conversation: 2,
            id: 3,
            message: edited,
        };
        let bytes = postcard::to_stdvec(&edited).unwrap();
        assert_eq!(postcard::from_bytes::<Record>(&bytes).unwrap(), edited);
        // A remembered send by reference keeps its encoding too.
        let old_sent = postcard::to_stdvec(&OldRememberedAt {
            at: 11,
            result: OldRemembered::Sent {
                id: 3,
                conversation: 2,
                sender_id: 1,
                sent_ms: 5,
                index: 9,
            },
        })
        .unwrap();
        let sent = RememberedAt {
            at: 11,
            result: Remembered::Sent(MessageRef {
                id: 3,
                conversation: 2,
                sender_id: 1,
                sent_ms: 5,
                index: 9,
            }),
        };
        assert_eq!(postcard::to_stdvec(&sent).unwrap(), old_sent);
        assert_eq!(
            postcard::from_bytes::<RememberedAt>(&old_sent).unwrap(),
            sent
        );
    }

    #[test]
    fn forgetting_keeps_a_key_remembered_again_later() {
        let mut s = MemoryStore::default();
        let entry = |at| RememberedAt {
            at,
            result: Remembered::Other(Box::new(Ok(Outcome::Done))),
        };
        s.remember([1; 16], entry(10));
        s.remember([2; 16], entry(20));
        s.remember([1; 16], entry(30));
        s.forget_before(25);
        assert_eq!(s.remembered(&[1; 16]).map(|e| e.at), Some(30));
        assert_eq!(s.remembered(&[2; 16]), None);
        assert_eq!(s.remembered_len(), 1);
        let back = MemoryStore::from_records(s.records());
        assert_eq!(back, s);
    }
}
