//! The user's conversations, each with the part of its history the client
//! has seen, including own messages still on their way to the cluster.

use std::collections::BTreeMap;

use crate::model::{ConversationInfo, ConversationKind, Message, Reaction};

/// How far one of the user's own messages got. Ordered: a mark only ever
/// moves forward (see [`Entry::advance`]).
///
/// - `Queued`: typed and kept in the local outbox; not handed to the
///   network yet (waiting behind an earlier message, or for a quorum).
/// - `Accepted`: handed to the client library, which retries it across
///   replicas with one request id; the cluster may already have it.
/// - `Committed`: the cluster committed it: the send call returned OK
///   (replicas answer after the Raft commit) or it came back on the
///   subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    Queued,
    Accepted,
    Committed,
}

/// Identifies a conversation, including one that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConvKey {
    Id(u64),
    /// A direct conversation started from the accounts browser; the server
    /// creates it with the first message.
    NewDirect(String),
}

/// Identifies a message in a log, stable across its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKey {
    /// A message typed here: its local id, even after the server gave it one.
    Local(u64),
    Server(u64),
}

/// One message line of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The server's id, once committed.
    pub id: Option<u64>,
    /// Set for messages typed in this client.
    pub local_id: Option<u64>,
    /// The request id every retry of this message carries.
    pub request_id: Option<String>,
    pub sender: String,
    pub body: String,
    pub sent_ms: u64,
    /// Set for the user's own messages.
    pub delivery: Option<Delivery>,
    /// Why the last attempt failed for good (retryable with a key).
    pub failed: Option<String>,
    /// When its sender last edited it (Unix ms); 0 = never.
    pub edited_at_ms: u64,
    /// The message it answers (0 = none).
    pub reply_to: u64,
    /// Reactions by emoji, as the server last reported them.
    pub reactions: Vec<Reaction>,
    /// Our edit on its way to the cluster: shown instead of the body
    /// until the cluster answers.
    pub edit_pending: Option<String>,
    /// Our edit the cluster refused: its text and why. `e` on the message
    /// brings the text back, so nothing typed is lost.
    pub edit_failed: Option<(String, String)>,
}

impl Entry {
    /// A committed message as the server reports it.
    pub fn committed(message: &Message, me: &str) -> Self {
        Self {
            id: Some(message.id),
            local_id: None,
            request_id: None,
            sender: message.sender.clone(),
            body: message.body.clone(),
            sent_ms: message.sent_ms,
            delivery: is_me(&message.sender, me).then_some(Delivery::Committed),
            failed: None,
            edited_at_ms: message.edited_at_ms,
            reply_to: message.reply_to,
            reactions: message.reactions.clone(),
            edit_pending: None,
            edit_failed: None,
        }
    }

    /// One of our messages as typed at `sent_ms`, not committed yet.
    pub fn pending(
        local_id: u64,
        request_id: String,
        sender: String,
        body: String,
        sent_ms: u64,
    ) -> Self {
        Self {
            id: None,
            local_id: Some(local_id),
            request_id: Some(request_id),
            sender,
            body,
            sent_ms,
            delivery: Some(Delivery::Queued),
            failed: None,
            edited_at_ms: 0,
            reply_to: 0,
            reactions: Vec::new(),
            edit_pending: None,
            edit_failed: None,
        }
    }

    /// Takes what the server says the message is now: its text if this
    /// edit is not older than the one shown, its reactions if
    /// `with_reactions` (only the subscription's events are in order).
    pub fn apply_change(&mut self, message: &Message, with_reactions: bool) {
        if message.edited_at_ms >= self.edited_at_ms {
            self.body = message.body.clone();
            self.edited_at_ms = message.edited_at_ms;
        }
        if with_reactions {
            self.reactions = message.reactions.clone();
        }
    }

    /// The text to show: our edit while it is on its way, else the body.
    pub fn text(&self) -> &str {
        self.edit_pending.as_deref().unwrap_or(&self.body)
    }

    pub fn key(&self) -> EntryKey {
        match (self.local_id, self.id) {
            (Some(local), _) => EntryKey::Local(local),
            (None, Some(id)) => EntryKey::Server(id),
            (None, None) => EntryKey::Local(0),
        }
    }

    /// Moves the delivery mark to `to` unless it is already further.
    pub fn advance(&mut self, to: Delivery) {
        if self.delivery.is_none_or(|d| d < to) {
            self.delivery = Some(to);
        }
    }

    pub fn is_own(&self) -> bool {
        self.delivery.is_some()
    }
}

/// Account names compare case-insensitively, like on the server.
pub fn is_me(name: &str, me: &str) -> bool {
    name.eq_ignore_ascii_case(me)
}

/// Whether `body` mentions `me`: `@me`, in any case, not inside a longer
/// word or name on either side (`x@me`, `@mel` and `@me.x` do not count).
pub fn mentions(body: &str, me: &str) -> bool {
    if me.is_empty() {
        return false;
    }
    // Characters of a user name (the server's rule): a mention ends at
    // the first character that cannot be part of one. A trailing `.` or
    // `-` ends a sentence, not the name.
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    body.match_indices('@').any(|(at, _)| {
        if body[..at].chars().next_back().is_some_and(word_char) {
            return false;
        }
        let rest = &body[at + 1..];
        let name_len = rest
            .char_indices()
            .find(|(_, c)| !name_char(*c))
            .map_or(rest.len(), |(i, _)| i);
        if rest[name_len..].chars().next().is_some_and(word_char) {
            return false; // `@meé`: a longer word
        }
        let name = &rest[..name_len];
        name.eq_ignore_ascii_case(me) || name.trim_end_matches(['.', '-']).eq_ignore_ascii_case(me)
    })
}

/// The loaded part of a conversation: committed messages by id, then own
/// pending ones in typing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageLog {
    pub entries: Vec<Entry>,
    /// The newest page has been fetched.
    pub loaded: bool,
    /// Older messages exist on the server.
    pub more: bool,
    /// A history request is in flight.
    pub loading: bool,
}

impl MessageLog {
    fn sort(&mut self) {
        self.entries
            .sort_by_key(|e| (e.id.unwrap_or(u64::MAX), e.local_id.unwrap_or(0)));
    }

    pub fn contains_id(&self, id: u64) -> bool {
        self.entries.iter().any(|e| e.id == Some(id))
    }

    /// Adds a committed message, matching it to an own pending message
    /// with the same body when there is one. False if already present
    /// (then its text and reactions are brought up to date: a reloaded
    /// history carries edits the stream may have missed).
    pub fn insert_committed(&mut self, message: &Message, me: &str) -> bool {
        if let Some(entry) = self.find_id_mut(message.id) {
            entry.apply_change(message, true);
            return false;
        }
        let pending = is_me(&message.sender, me)
            .then(|| {
                self.entries.iter_mut().find(|e| {
                    e.id.is_none()
                        && e.delivery >= Some(Delivery::Accepted)
                        && e.body == message.body
                })
            })
            .flatten();
        match pending {
            Some(entry) => {
                entry.id = Some(message.id);
                entry.sent_ms = message.sent_ms;
                entry.failed = None;
                entry.advance(Delivery::Committed);
            }
            None => self.entries.push(Entry::committed(message, me)),
        }
        self.sort();
        true
    }

    /// Gives the own message `local_id` its committed identity, dropping a
    /// copy that the subscription may have delivered first.
    pub fn commit_local(&mut self, local_id: u64, message: &Message) -> bool {
        let Some(pos) = self
            .entries
            .iter()
            .position(|e| e.local_id == Some(local_id))
        else {
            return false;
        };
        if self.entries[pos].id != Some(message.id) {
            self.entries
                .retain(|e| e.local_id == Some(local_id) || e.id != Some(message.id));
        }
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.local_id == Some(local_id))
        {
            entry.id = Some(message.id);
            entry.sent_ms = message.sent_ms;
            entry.failed = None;
            entry.advance(Delivery::Committed);
        }
        self.sort();
        true
    }

    pub fn push_pending(&mut self, entry: Entry) {
        self.entries.push(entry);
        self.sort();
    }

    pub fn find_id_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == Some(id))
    }

    pub fn find_id(&self, id: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == Some(id))
    }

    pub fn find_local_mut(&mut self, local_id: u64) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.local_id == Some(local_id))
    }

    pub fn remove_ids(&mut self, ids: &[u64]) {
        self.entries
            .retain(|e| e.id.is_none_or(|id| !ids.contains(&id)));
    }

    pub fn position(&self, key: EntryKey) -> Option<usize> {
        self.entries.iter().position(|e| e.key() == key)
    }

    /// The newest committed id among the first `upto_index + 1` entries.
    pub fn newest_id_through(&self, upto_index: usize) -> u64 {
        self.entries
            .iter()
            .take(upto_index.saturating_add(1))
            .filter_map(|e| e.id)
            .max()
            .unwrap_or(0)
    }

    pub fn oldest_id(&self) -> Option<u64> {
        self.entries.iter().filter_map(|e| e.id).min()
    }

    /// Messages from others after `read_up_to` among those loaded.
    pub fn unread_after(&self, read_up_to: u64, me: &str) -> u64 {
        let count = self
            .entries
            .iter()
            .filter(|e| e.id.is_some_and(|id| id > read_up_to) && !is_me(&e.sender, me))
            .count();
        u64::try_from(count).unwrap_or(u64::MAX)
    }
}

/// A line about the conversation itself (a member joined or left), shown
/// among its messages after message `after_id`. Seen live only: history
/// does not carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub after_id: u64,
    pub text: String,
    pub at_ms: u64,
}

/// A conversation in the sidebar, with its loaded messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub key: ConvKey,
    pub kind: ConversationKind,
    pub name: String,
    pub members: Vec<String>,
    pub unread: u64,
    pub last_message_id: u64,
    pub last_activity_ms: u64,
    pub read_up_to: u64,
    pub log: MessageLog,
    /// How far each other member has read, from the read receipts seen
    /// since this client started (the server lists only our own pointer).
    pub seen: BTreeMap<String, u64>,
    /// Membership changes seen since this client started, oldest first.
    pub notes: Vec<Note>,
    /// The newest loaded message of a group naming us (`@me`); 0 = none.
    pub last_mention: u64,
    /// Others typing here, as their notices said (see `typing`).
    pub typing: Vec<super::Typist>,
}

impl Conversation {
    pub fn from_info(info: &ConversationInfo) -> Self {
        Self {
            key: ConvKey::Id(info.id),
            kind: info.kind,
            name: info.name.clone(),
            members: info.members.clone(),
            unread: info.unread,
            last_message_id: info.last_message_id,
            last_activity_ms: info.last_activity_ms,
            read_up_to: info.read_up_to,
            log: MessageLog::default(),
            seen: BTreeMap::new(),
            notes: Vec::new(),
            last_mention: 0,
            typing: Vec::new(),
        }
    }

    /// A direct conversation that the first message will create.
    pub fn new_direct(peer: &str, now_ms: u64) -> Self {
        Self {
            key: ConvKey::NewDirect(peer.to_string()),
            kind: ConversationKind::Direct,
            name: peer.to_string(),
            members: Vec::new(),
            unread: 0,
            last_message_id: 0,
            last_activity_ms: now_ms,
            read_up_to: 0,
            log: MessageLog {
                loaded: true,
                ..MessageLog::default()
            },
            seen: BTreeMap::new(),
            notes: Vec::new(),
            last_mention: 0,
            typing: Vec::new(),
        }
    }

    /// Who of the others has read message `id`, by the receipts seen.
    pub fn seen_by(&self, id: u64) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(_, up_to)| **up_to >= id)
            .map(|(reader, _)| reader.as_str())
            .collect()
    }

    /// Its name as titles show it: `#team` for a group, the peer's name
    /// for a direct conversation (unsanitised: the caller makes it safe).
    pub fn label(&self) -> String {
        match self.kind {
            ConversationKind::Group => format!("#{}", self.name),
            ConversationKind::Direct => self.name.clone(),
        }
    }

    pub fn id(&self) -> Option<u64> {
        match self.key {
            ConvKey::Id(id) => Some(id),
            ConvKey::NewDirect(_) => None,
        }
    }

    /// Takes the server's metadata; unread counts only when `with_counts`
    /// (membership events do not carry the user's counts reliably).
    fn update_meta(&mut self, info: &ConversationInfo, with_counts: bool) {
        self.kind = info.kind;
        self.name = info.name.clone();
        self.members = info.members.clone();
        self.last_message_id = self.last_message_id.max(info.last_message_id);
        self.last_activity_ms = self.last_activity_ms.max(info.last_activity_ms);
        if with_counts {
            self.unread = info.unread;
            self.read_up_to = self.read_up_to.max(info.read_up_to);
        }
    }

    /// Notes a committed message in the sidebar metadata.
    pub fn note_message(&mut self, message: &Message) {
        self.last_message_id = self.last_message_id.max(message.id);
        self.last_activity_ms = self.last_activity_ms.max(message.sent_ms);
    }

    /// Notes whether a group message (of someone else) names `me`; true
    /// if it does.
    pub fn note_mention(&mut self, message: &Message, me: &str) -> bool {
        let named = self.kind == ConversationKind::Group
            && !is_me(&message.sender, me)
            && mentions(&message.body, me);
        if named {
            self.last_mention = self.last_mention.max(message.id);
        }
        named
    }

    /// Whether an unread message names us: the sidebar says so.
    pub fn mentioned_unread(&self) -> bool {
        self.unread > 0 && self.last_mention > self.read_up_to
    }
}

/// All conversations, most recent activity first, and which one is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversations {
    pub list: Vec<Conversation>,
    pub open: Option<ConvKey>,
    /// The sidebar's cursor when it is not on the open conversation:
    /// moving through the list does not open (and so does not read) what
    /// it passes; `Enter` opens it.
    pub highlighted: Option<ConvKey>,
}

impl Conversations {
    pub fn sort(&mut self) {
        self.list.sort_by(|a, b| {
            b.last_activity_ms
                .cmp(&a.last_activity_ms)
                .then_with(|| b.id().unwrap_or(u64::MAX).cmp(&a.id().unwrap_or(u64::MAX)))
        });
    }

    pub fn get(&self, key: &ConvKey) -> Option<&Conversation> {
        self.list.iter().find(|c| &c.key == key)
    }

    pub fn get_mut(&mut self, key: &ConvKey) -> Option<&mut Conversation> {
        self.list.iter_mut().find(|c| &c.key == key)
    }

    pub fn by_id_mut(&mut self, id: u64) -> Option<&mut Conversation> {
        self.get_mut(&ConvKey::Id(id))
    }

    pub fn open(&self) -> Option<&Conversation> {
        self.open.as_ref().and_then(|key| self.get(key))
    }

    pub fn open_mut(&mut self) -> Option<&mut Conversation> {
        let key = self.open.clone()?;
        self.get_mut(&key)
    }

    pub fn open_index(&self) -> Option<usize> {
        let key = self.open.as_ref()?;
        self.list.iter().position(|c| &c.key == key)
    }

    /// Where the sidebar's cursor is: the highlighted conversation, else
    /// the open one.
    pub fn cursor_index(&self) -> Option<usize> {
        self.highlighted
            .as_ref()
            .and_then(|key| self.list.iter().position(|c| &c.key == key))
            .or_else(|| self.open_index())
    }

    /// The existing direct conversation with `peer`, if any.
    pub fn direct_with(&self, peer: &str) -> Option<&Conversation> {
        self.list
            .iter()
            .find(|c| c.kind == ConversationKind::Direct && c.name.eq_ignore_ascii_case(peer))
    }

    /// Inserts or refreshes a conversation from the server. A pending
    /// new direct conversation with the same peer becomes this one.
    pub fn upsert(&mut self, info: &ConversationInfo, with_counts: bool) {
        if info.kind == ConversationKind::Direct {
            self.adopt_draft(&info.name, info.id);
        }
        match self.by_id_mut(info.id) {
            Some(existing) => existing.update_meta(info, with_counts),
            None => self.list.push(Conversation::from_info(info)),
        }
        self.sort();
    }

    /// Turns the draft direct conversation with `peer` into conversation
    /// `id`, merging into it if it already exists.
    pub fn adopt_draft(&mut self, peer: &str, id: u64) {
        let Some(pos) = self
            .list
            .iter()
            .position(|c| matches!(&c.key, ConvKey::NewDirect(p) if p.eq_ignore_ascii_case(peer)))
        else {
            return;
        };
        let was_open = self.open.as_ref() == Some(&self.list[pos].key);
        let mut draft = self.list.remove(pos);
        let real_key = ConvKey::Id(id);
        match self.by_id_mut(id) {
            Some(real) => {
                for entry in draft.log.entries.drain(..) {
                    if entry.id.is_none_or(|id| !real.log.contains_id(id)) {
                        real.log.push_pending(entry);
                    }
                }
            }
            None => {
                draft.key = real_key.clone();
                draft.log.loaded = false;
                self.list.push(draft);
            }
        }
        if was_open {
            self.open = Some(real_key);
        }
        self.sort();
    }

    /// Which conversation holds the own message `local_id`.
    pub fn key_of_local(&self, local_id: u64) -> Option<ConvKey> {
        self.list
            .iter()
            .find(|c| c.log.entries.iter().any(|e| e.local_id == Some(local_id)))
            .map(|c| c.key.clone())
    }

    pub fn total_unread(&self) -> u64 {
        self.list.iter().map(|c| c.unread).sum()
    }
}
