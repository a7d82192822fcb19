//! The history store of disk mode: the chat state's [`Store`] in a redb
//! file, with the changes since the last checkpoint in RAM.
//!
//! Apply never waits for the disk: writes go to the *fresh* delta in RAM.
//! A [`Checkpoint`] seals that delta (it stays readable) and writes it, with
//! the caller's applied-state blob, in one durable redb transaction on a
//! blocking thread; then the redb view moves to that commit and the sealed
//! delta is dropped. Every redb commit is a checkpoint, so the file always
//! holds one consistent applied state: after a crash it reopens at the last
//! checkpoint and the Raft log replays the rest (see `storage::durability`).
//!
//! # Layout (redb tables)
//!
//! ```text
//! messages    id -> postcard Slot { conversation, prev, message } (by global id: appends),
//!             the message as its `MessageV0`, then its `MessageExt` if
//!             not empty (see `Slot::encode`)
//! heads       conversation -> newest id in its chain
//! remembered-G  request key -> postcard RememberedAt    (one table per
//!               generation G of state time: see `request_window`)
//! remembered_filters  G -> that table's key filter
//! meta        "applied" -> the caller's blob (last applied id, membership, chat core)
//!             "forget_before" -> state time before which requests are forgotten
//!             "search_index" -> which checkpoint the search index matches
//! search_grams, search_scopes   this replica's search index (`search_index`):
//!             written by each checkpoint with its messages, rebuilt at open
//!             when it does not match, built by `load`; never a `Record`
//! ```
//!
//! Messages are keyed by their global id, so a checkpoint appends to the
//! end of the tree instead of touching one leaf per conversation (in the
//! store spike, keys `(conversation, id)` cost three times the CPU and twice
//! the disk: BENCHMARKS.md "Choosing the state store"). A conversation's
//! messages form a chain through `prev`, newest first from `heads`. A
//! deleted message stays as a slot without a message, so chains need no
//! repair; a removed conversation's slots are deleted at the checkpoint.
//!
//! Reads look in the fresh delta, then the sealed one, then redb. A read
//! error from redb (I/O, corruption) cannot be returned through [`Store`]:
//! it reads as "absent" and is kept in [`DiskStore::failure`], which the
//! state machine's owner checks after every apply and turns into a storage
//! error that stops the replica before any result is used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::request_window::{self, Filters, Window};
use super::search_index::{self, Pending};
use crate::state::command::{ConversationId, MessageId};
use crate::state::search::{self, Query};
use crate::state::store::{
    DedupKey, Message, MessageExt, MessageV0, MessageV0Ref, Messages, Record, RememberedAt, Store,
};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const HEADS: TableDefinition<u64, u64> = TableDefinition::new("heads");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const APPLIED: &str = "applied";
const FORGET_BEFORE: &str = "forget_before";

/// redb's page cache. Reads are mostly of recent messages, which the deltas
/// hold anyway.
const CACHE_BYTES: usize = 32 << 20;

/// A message's place in its conversation's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    conversation: ConversationId,
    /// The previous message of the conversation (0 = none).
    prev: MessageId,
    /// `None` once deleted.
    message: Option<Message>,
}

/// A [`Slot`] as the releases before message extensions wrote it, and as
/// every slot still starts.
#[derive(Serialize)]
struct SlotV0Ref<'a> {
    conversation: ConversationId,
    prev: MessageId,
    message: Option<MessageV0Ref<'a>>,
}

#[derive(Deserialize)]
struct SlotV0 {
    conversation: ConversationId,
    prev: MessageId,
    message: Option<MessageV0>,
}

impl Slot {
    /// Appends the slot to `bytes`: the [`SlotV0Ref`] layout, then the
    /// message's [`MessageExt`] only when it is not empty. A slot without
    /// an extension is written exactly as older releases wrote it.
    fn encode(&self, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
        let v0 = SlotV0Ref {
            conversation: self.conversation,
            prev: self.prev,
            message: self.message.as_ref().map(Message::v0),
        };
        let bytes = postcard::to_extend(&v0, bytes).map_err(|e| corrupt("encode", e))?;
        match &self.message {
            Some(m) if !m.ext.is_empty() => {
                postcard::to_extend(&m.ext, bytes).map_err(|e| corrupt("encode", e))
            }
            _ => Ok(bytes),
        }
    }

    /// Reads what [`encode`](Self::encode) wrote, or an older release did
    /// (no bytes after the [`SlotV0`]).
    fn decode(bytes: &[u8]) -> Result<Slot, postcard::Error> {
        let (v0, rest): (SlotV0, _) = postcard::take_from_bytes(bytes)?;
        let ext = if rest.is_empty() {
            MessageExt::default()
        } else {
            postcard::from_bytes(rest)?
        };
        Ok(Slot {
            conversation: v0.conversation,
            prev: v0.prev,
            message: v0.message.map(|m| Message::from_parts(m, ext)),
        })
    }
}

/// Changes not yet in redb.
#[derive(Debug, Default)]
struct Delta {
    slots: BTreeMap<MessageId, Slot>,
    heads: BTreeMap<ConversationId, MessageId>,
    removed: BTreeSet<ConversationId>,
    /// Looked up for every proposal with a request id, nearly always a
    /// miss: a hash map answers in one probe where a tree of 100,000
    /// keys took 10 times as long. Keys are SHA-256 digests, but hashed
    /// again (SipHash, random keys): clients choose request ids, so they
    /// could grind digests into one bucket.
    remembered: HashMap<DedupKey, RememberedAt>,
    /// Entries remembered before this are forgotten.
    forget_before: u64,
    /// Roughly the bytes this delta holds, to decide when to checkpoint.
    bytes: usize,
}

/// What a lookup in one delta found.
enum Found<T> {
    Here(T),
    /// The delta says it does not exist (deleted or removed): do not look
    /// further down.
    Gone,
    NotHere,
}

impl Delta {
    fn slot(&self, id: MessageId) -> Found<Slot> {
        match self.slots.get(&id) {
            Some(s) if self.removed.contains(&s.conversation) => Found::Gone,
            Some(s) => Found::Here(s.clone()),
            None => Found::NotHere,
        }
    }

    fn head(&self, conversation: ConversationId) -> Found<MessageId> {
        if self.removed.contains(&conversation) {
            return Found::Gone;
        }
        match self.heads.get(&conversation) {
            Some(&id) => Found::Here(id),
            None => Found::NotHere,
        }
    }

    fn remembered(&self, key: &DedupKey) -> Option<RememberedAt> {
        self.remembered.get(key).cloned()
    }
}

/// redb at the last checkpoint.
struct Base {
    // Tables first: they hold pages of the transaction.
    messages: Option<ReadOnlyTable<u64, &'static [u8]>>,
    heads: Option<ReadOnlyTable<u64, u64>>,
    search: search_index::Reader,
    window: Window,
    /// The applied-state blob written with this commit.
    applied: Option<Vec<u8>>,
    /// Requests remembered before this are forgotten.
    forget_before: u64,
    _tx: ReadTransaction,
}

/// What readers share with a running checkpoint.
struct Layers {
    sealed: Option<Arc<Delta>>,
    base: Arc<Base>,
}

struct Shared {
    db: Database,
    layers: RwLock<Layers>,
    failure: Mutex<Option<String>>,
}

/// The disk-mode [`Store`]. See the module docs.
pub struct DiskStore {
    fresh: Delta,
    shared: Arc<Shared>,
}

/// The redb error type for the operations this module uses.
pub type Error = redb::Error;

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupted(format!("{what}: {e}"))
}

impl Base {
    fn open(db: &Database, filters: &Filters) -> Result<Base, Error> {
        let tx = db.begin_read()?;
        // A table that was never written does not exist yet.
        let messages = optional(tx.open_table(MESSAGES))?;
        let heads = optional(tx.open_table(HEADS))?;
        let search = search_index::Reader::open(&tx)?;
        let window = Window::open(&tx, filters)?;
        let (applied, forget_before) = match optional(tx.open_table(META))? {
            Some(meta) => (
                meta.get(APPLIED)?.map(|v| v.value().to_vec()),
                match meta.get(FORGET_BEFORE)? {
                    Some(v) => u64::from_le_bytes(
                        v.value()
                            .try_into()
                            .map_err(|_| corrupt("forget_before", "not 8 bytes"))?,
                    ),
                    None => 0,
                },
            ),
            None => (None, 0),
        };
        Ok(Base {
            messages,
            heads,
            search,
            window,
            applied,
            forget_before,
            _tx: tx,
        })
    }

    fn slot(&self, id: MessageId) -> Result<Option<Slot>, Error> {
        let Some(table) = &self.messages else {
            return Ok(None);
        };
        match table.get(id)? {
            Some(v) => Slot::decode(v.value())
                .map(Some)
                .map_err(|e| corrupt(&format!("message {id}"), e)),
            None => Ok(None),
        }
    }

    fn head(&self, conversation: ConversationId) -> Result<Option<MessageId>, Error> {
        let Some(table) = &self.heads else {
            return Ok(None);
        };
        Ok(table.get(conversation)?.map(|v| v.value()))
    }
}

/// Writes the applied-state blob and the marker saying the search index
/// (written in the same transaction) matches it: always together.
fn record_applied(tx: &redb::WriteTransaction, applied: &[u8]) -> Result<(), Error> {
    let mut meta = tx.open_table(META)?;
    meta.insert(APPLIED, applied)?;
    meta.insert(
        search_index::MARKER,
        search_index::marker(applied).as_slice(),
    )?;
    Ok(())
}

/// Rebuilds the search index from the messages unless its marker matches
/// the applied state (see `search_index`): the file was written by a
/// release without the index, or by one that did not keep it.
fn ensure_search_index(db: &Database, path: &Path) -> Result<(), Error> {
    let read = db.begin_read()?;
    let Some(meta) = optional(read.open_table(META))? else {
        return Ok(());
    };
    let Some(applied) = meta.get(APPLIED)?.map(|v| v.value().to_vec()) else {
        return Ok(());
    };
    let marker = search_index::marker(&applied);
    if meta
        .get(search_index::MARKER)?
        .is_some_and(|v| v.value() == marker.as_slice())
    {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let commit = |mut tx: redb::WriteTransaction, last: bool| -> Result<(), Error> {
        let durability = if last {
            Durability::Immediate
        } else {
            Durability::None
        };
        tx.set_durability(durability)
            .map_err(|e| corrupt("durability", e))?;
        tx.set_quick_repair(last);
        tx.commit()?;
        Ok(())
    };
    let tx = db.begin_write()?;
    search_index::clear(&tx)?;
    tx.open_table(META)?.remove(search_index::MARKER)?;
    commit(tx, false)?;
    let mut search = Pending::default();
    let mut indexed = 0u64;
    if let Some(messages) = optional(read.open_table(MESSAGES))? {
        for item in messages.iter()? {
            let (k, v) = item?;
            let id = k.value();
            let slot = Slot::decode(v.value()).map_err(|e| corrupt(&format!("message {id}"), e))?;
            if let Some(m) = &slot.message {
                search.add(id, slot.conversation, &m.body);
                indexed += 1;
            }
            if search.full() {
                let tx = db.begin_write()?;
                search.write(&tx)?;
                commit(tx, false)?;
            }
        }
    }
    let tx = db.begin_write()?;
    search.write(&tx)?;
    tx.open_table(META)?
        .insert(search_index::MARKER, marker.as_slice())?;
    commit(tx, true)?;
    let bytes = search_index::stored_bytes(&db.begin_read()?)?;
    tracing::info!(
        file = %path.display(),
        messages = indexed,
        bytes,
        ms = started.elapsed().as_millis(),
        "search index rebuilt"
    );
    Ok(())
}

fn optional<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, Error> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl DiskStore {
    /// Opens (creating if missing) the store at `path`; returns it with the
    /// applied-state blob of its last checkpoint (`None` if it has none).
    pub fn open(path: &Path) -> Result<(DiskStore, Option<Vec<u8>>), Error> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        if request_window::needs_migration(&db.begin_read()?)? {
            let mut tx = db.begin_write()?;
            request_window::migrate(&tx)?;
            tx.set_durability(Durability::Immediate)
                .map_err(|e| corrupt("durability", e))?;
            tx.set_quick_repair(true);
            tx.commit()?;
            tracing::info!(file = %path.display(), "request-id window moved to one table per generation");
        }
        ensure_search_index(&db, path)?;
        let base = Base::open(&db, &Filters::new())?;
        let applied = base.applied.clone();
        let fresh = Delta {
            forget_before: base.forget_before,
            ..Delta::default()
        };
        let shared = Arc::new(Shared {
            db,
            layers: RwLock::new(Layers {
                sealed: None,
                base: Arc::new(base),
            }),
            failure: Mutex::new(None),
        });
        Ok((DiskStore { fresh, shared }, applied))
    }

    /// The first read error met since opening, if any (see the module docs).
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Roughly how many bytes of changes wait in RAM for a checkpoint.
    pub fn pending_bytes(&self) -> usize {
        self.fresh.bytes
    }

    /// Whether a checkpoint is being written.
    #[cfg(test)]
    fn checkpointing(&self) -> bool {
        self.layers().0.is_some()
    }

    /// Seals the changes made so far for a checkpoint, which the caller runs
    /// (blocking) with the applied-state blob that matches them. `None`
    /// while another checkpoint is still being written.
    pub fn seal(&mut self) -> Option<Checkpoint> {
        let mut layers = self
            .shared
            .layers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if layers.sealed.is_some() {
            return None;
        }
        let delta = Arc::new(std::mem::take(&mut self.fresh));
        // Forgetting is for good: the cutoff carries over.
        self.fresh.forget_before = delta.forget_before;
        layers.sealed = Some(delta.clone());
        Some(Checkpoint {
            delta,
            shared: self.shared.clone(),
        })
    }

    /// The store as of its last checkpoint, for snapshots: stays readable
    /// however long it is held, whatever is written meanwhile.
    pub fn view(&self) -> View {
        View {
            base: self.layers().1,
        }
    }

    /// Creates the store at `path` (replacing any file there) holding
    /// `records`, in [`Record`] order, and the applied-state blob `applied`,
    /// durably: what installing a snapshot builds before renaming it into
    /// place.
    pub fn load<E: std::fmt::Display>(
        path: &Path,
        applied: &[u8],
        records: impl Iterator<Item = Result<Record, E>>,
    ) -> Result<(), Error> {
        /// Records per transaction: bounds the RAM a transaction holds.
        const BATCH: usize = 100_000;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let mut heads: BTreeMap<ConversationId, MessageId> = BTreeMap::new();
        let mut remembered = BTreeMap::new();
        let mut search = Pending::default();
        let mut records = records.peekable();
        let mut last_id = 0;
        loop {
            let mut tx = db.begin_write()?;
            let last = {
                let mut messages = tx.open_table(MESSAGES)?;
                let mut bytes = Vec::new();
                for record in records.by_ref().take(BATCH) {
                    match record.map_err(|e| corrupt("snapshot record", e))? {
                        Record::Message {
                            conversation,
                            id,
                            message,
                        } => {
                            if id <= last_id {
                                return Err(corrupt(
                                    "snapshot",
                                    format!("message {id} after message {last_id}"),
                                ));
                            }
                            last_id = id;
                            search.add(id, conversation, &message.body);
                            if search.full() {
                                search.write(&tx)?;
                            }
                            let slot = Slot {
                                conversation,
                                prev: heads.insert(conversation, id).unwrap_or(0),
                                message: Some(message),
                            };
                            bytes.clear();
                            bytes = slot.encode(bytes)?;
                            messages.insert(id, bytes.as_slice())?;
                        }
                        Record::Remembered { key, entry } => {
                            remembered.insert(key, entry);
                        }
                    }
                }
                // Records come in key order: each table is appended to.
                request_window::write(&tx, &remembered, 0, None)?;
                remembered.clear();
                search.write(&tx)?;
                records.peek().is_none()
            };
            if last {
                let mut table = tx.open_table(HEADS)?;
                for (&conversation, &id) in &heads {
                    table.insert(conversation, id)?;
                }
                drop(table);
                record_applied(&tx, applied)?;
                tx.set_durability(Durability::Immediate)
                    .map_err(|e| corrupt("durability", e))?;
                tx.set_quick_repair(true);
                tx.commit()?;
                return Ok(());
            }
            tx.set_durability(Durability::None)
                .map_err(|e| corrupt("durability", e))?;
            tx.commit()?;
        }
    }

    fn layers(&self) -> (Option<Arc<Delta>>, Arc<Base>) {
        let layers = self.shared.layers.read().unwrap_or_else(|e| e.into_inner());
        (layers.sealed.clone(), layers.base.clone())
    }

    fn failed(&self, e: Error) {
        let mut failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            tracing::error!(error = %e, "reading the history store failed");
            *failure = Some(e.to_string());
        }
    }

    fn slot(&self, id: MessageId) -> Option<Slot> {
        match self.fresh.slot(id) {
            Found::Here(s) => return Some(s),
            Found::Gone => return None,
            Found::NotHere => {}
        }
        let (sealed, base) = self.layers();
        if let Some(sealed) = &sealed {
            match sealed.slot(id) {
                Found::Here(s) if !self.fresh.removed.contains(&s.conversation) => return Some(s),
                Found::Here(_) | Found::Gone => return None,
                Found::NotHere => {}
            }
        }
        match base.slot(id) {
            Ok(Some(s)) if self.is_removed(s.conversation, sealed.as_deref()) => None,
            Ok(s) => s,
            Err(e) => {
                self.failed(e);
                None
            }
        }
    }

    fn is_removed(&self, conversation: ConversationId, sealed: Option<&Delta>) -> bool {
        self.fresh.removed.contains(&conversation)
            || sealed.is_some_and(|d| d.removed.contains(&conversation))
    }

    fn head(&self, conversation: ConversationId) -> Option<MessageId> {
        match self.fresh.head(conversation) {
            Found::Here(id) => return Some(id),
            Found::Gone => return None,
            Found::NotHere => {}
        }
        let (sealed, base) = self.layers();
        if let Some(sealed) = &sealed {
            match sealed.head(conversation) {
                Found::Here(id) => return Some(id),
                Found::Gone => return None,
                Found::NotHere => {}
            }
        }
        base.head(conversation).unwrap_or_else(|e| {
            self.failed(e);
            None
        })
    }

    /// Approximate size of one message in a delta.
    fn weight(message: &Message) -> usize {
        message.body.len() + message.sender.len() + 96
    }
}

/// `conversation`'s messages newest first from `start` down, within
/// `lower`: follows the chain.
struct Chain<'a> {
    store: &'a DiskStore,
    conversation: ConversationId,
    next: MessageId,
    lower: Bound<MessageId>,
}

impl Iterator for Chain<'_> {
    type Item = (MessageId, Message);

    fn next(&mut self) -> Option<(MessageId, Message)> {
        loop {
            let id = self.next;
            let below = match self.lower {
                Bound::Included(l) => id < l,
                Bound::Excluded(l) => id <= l,
                Bound::Unbounded => false,
            };
            if id == 0 || below {
                return None;
            }
            let slot = self.store.slot(id)?;
            if slot.conversation != self.conversation {
                return None;
            }
            self.next = slot.prev;
            if let Some(m) = slot.message {
                return Some((id, m));
            }
        }
    }
}

impl Store for DiskStore {
    fn message(&self, conversation: ConversationId, id: MessageId) -> Option<Message> {
        self.slot(id)
            .filter(|s| s.conversation == conversation)?
            .message
    }

    fn home(&self, id: MessageId) -> Option<ConversationId> {
        let slot = self.slot(id)?;
        slot.message.is_some().then_some(slot.conversation)
    }

    fn messages(
        &self,
        conversation: ConversationId,
        range: (Bound<MessageId>, Bound<MessageId>),
        newest_first: bool,
    ) -> Messages<'_> {
        let head = self.head(conversation).unwrap_or(0);
        // The chain's newest id within the upper bound: a client paging back
        // passes an id of this conversation, whose `prev` is the answer;
        // anything else walks from the head.
        let start = match range.1 {
            Bound::Unbounded => head,
            Bound::Included(u) if u >= head => head,
            Bound::Excluded(u) if u > head => head,
            Bound::Included(u) | Bound::Excluded(u) => {
                let inclusive = matches!(range.1, Bound::Included(_));
                match self.slot(u).filter(|s| s.conversation == conversation) {
                    Some(_) if inclusive => u,
                    Some(s) => s.prev,
                    None => {
                        let beyond = |id: MessageId| if inclusive { id > u } else { id >= u };
                        let mut id = head;
                        while id != 0 && beyond(id) {
                            id = self
                                .slot(id)
                                .filter(|s| s.conversation == conversation)
                                .map_or(0, |s| s.prev);
                        }
                        id
                    }
                }
            }
        };
        let chain = Chain {
            store: self,
            conversation,
            next: start,
            lower: range.0,
        };
        if newest_first {
            Box::new(chain)
        } else {
            let mut all: Vec<(MessageId, Message)> = chain.collect();
            all.reverse();
            Box::new(all.into_iter())
        }
    }

    fn put_message(&mut self, conversation: ConversationId, id: MessageId, message: Message) {
        let prev = self.head(conversation).unwrap_or(0);
        self.fresh.bytes += Self::weight(&message);
        self.fresh.slots.insert(
            id,
            Slot {
                conversation,
                prev,
                message: Some(message),
            },
        );
        self.fresh.heads.insert(conversation, id);
    }

    fn update_message(&mut self, conversation: ConversationId, id: MessageId, message: Message) {
        if let Some(mut slot) = self
            .slot(id)
            .filter(|s| s.conversation == conversation && s.message.is_some())
        {
            self.fresh.bytes += Self::weight(&message);
            slot.message = Some(message);
            self.fresh.slots.insert(id, slot);
        }
    }

    fn remove_message(&mut self, conversation: ConversationId, id: MessageId) {
        if let Some(mut slot) = self.slot(id).filter(|s| s.conversation == conversation) {
            slot.message = None;
            self.fresh.bytes += 64;
            self.fresh.slots.insert(id, slot);
        }
    }

    fn remove_conversation(&mut self, conversation: ConversationId) {
        self.fresh.removed.insert(conversation);
        self.fresh.heads.remove(&conversation);
        self.fresh.bytes += 64;
    }

    fn remembered(&self, key: &DedupKey) -> Option<RememberedAt> {
        let (sealed, base) = self.layers();
        let cutoff = self.fresh.forget_before;
        let found = self
            .fresh
            .remembered(key)
            .or_else(|| sealed.as_ref().and_then(|d| d.remembered(key)))
            .or_else(|| {
                base.window.get(key).unwrap_or_else(|e| {
                    self.failed(e);
                    None
                })
            });
        found.filter(|e| e.at >= cutoff)
    }

    fn remember(&mut self, key: DedupKey, entry: RememberedAt) {
        self.fresh.bytes += 64;
        self.fresh.remembered.insert(key, entry);
    }

    fn forget_before(&mut self, cutoff: u64) {
        self.fresh.forget_before = self.fresh.forget_before.max(cutoff);
    }

    /// Messages changed since the last checkpoint (the deltas) are checked
    /// one by one; the rest are the index's candidates at the last
    /// checkpoint that no delta changed, checked against their text.
    fn search(
        &self,
        scope: &BTreeSet<ConversationId>,
        query: &Query,
        before: MessageId,
        limit: usize,
    ) -> Vec<search::Found> {
        let upper = match before {
            0 => MessageId::MAX,
            before => before,
        };
        let (sealed, base) = self.layers();
        let deltas: Vec<&Delta> = std::iter::once(&self.fresh)
            .chain(sealed.as_deref())
            .collect();
        let live = |conversation: &ConversationId| {
            scope.contains(conversation) && !self.is_removed(*conversation, sealed.as_deref())
        };
        let mut found = Vec::new();
        for (n, delta) in deltas.iter().enumerate() {
            let newer = &deltas[..n];
            let matches = delta
                .slots
                .range(..upper)
                .rev()
                .filter(|(id, slot)| {
                    live(&slot.conversation) && !newer.iter().any(|d| d.slots.contains_key(id))
                })
                .filter_map(|(&id, slot)| {
                    let message = slot.message.as_ref()?;
                    query.matches(&message.body).then(|| search::Found {
                        conversation: slot.conversation,
                        id,
                        message: message.clone(),
                    })
                })
                .take(limit);
            found.extend(matches);
        }
        let mut from_index = 0;
        let mut failure = None;
        let walked = base
            .search
            .candidates(scope, &query.lookup(), before, |id| {
                if deltas.iter().any(|d| d.slots.contains_key(&id)) {
                    return true;
                }
                match base.slot(id) {
                    Ok(Some(Slot {
                        conversation,
                        message: Some(message),
                        ..
                    })) if live(&conversation) && query.matches(&message.body) => {
                        found.push(search::Found {
                            conversation,
                            id,
                            message,
                        });
                        from_index += 1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
                from_index < limit
            });
        if let Some(e) = walked.err().or(failure) {
            self.failed(e);
        }
        search::newest(found, limit)
    }

    fn records(&self) -> Box<dyn Iterator<Item = Record> + '_> {
        // Every id any layer knows, resolved through the layers.
        let (sealed, base) = self.layers();
        let mut ids: BTreeSet<MessageId> = self.fresh.slots.keys().copied().collect();
        let mut keys: BTreeSet<DedupKey> = self.fresh.remembered.keys().copied().collect();
        if let Some(sealed) = &sealed {
            ids.extend(sealed.slots.keys());
            keys.extend(sealed.remembered.keys());
        }
        let mut scan = || -> Result<(), Error> {
            if let Some(t) = &base.messages {
                for item in t.iter()? {
                    ids.insert(item?.0.value());
                }
            }
            for item in base.window.entries(0) {
                keys.insert(item?.0);
            }
            Ok(())
        };
        if let Err(e) = scan() {
            self.failed(e);
        }
        let messages = ids.into_iter().filter_map(|id| {
            let slot = self.slot(id)?;
            Some(Record::Message {
                conversation: slot.conversation,
                id,
                message: slot.message?,
            })
        });
        let remembered = keys.into_iter().filter_map(|key| {
            Some(Record::Remembered {
                entry: self.remembered(&key)?,
                key,
            })
        });
        Box::new(messages.chain(remembered))
    }
}

/// The store as of one checkpoint. See [`DiskStore::view`].
pub struct View {
    base: Arc<Base>,
}

impl View {
    /// The applied-state blob written with this checkpoint.
    pub fn applied(&self) -> Option<&[u8]> {
        self.base.applied.as_deref()
    }

    /// Everything held at this checkpoint, in [`Record`] order.
    pub fn records(&self) -> impl Iterator<Item = Result<Record, Error>> + '_ {
        let messages = self.base.messages.as_ref().map(|t| t.iter());
        let messages = messages.into_iter().flat_map(|r| {
            let (items, error) = split(r);
            items
                .filter_map(|item| {
                    let (k, v) = match item {
                        Ok(kv) => kv,
                        Err(e) => return Some(Err(e.into())),
                    };
                    let id = k.value();
                    match Slot::decode(v.value()) {
                        Ok(Slot {
                            conversation,
                            message: Some(message),
                            ..
                        }) => Some(Ok(Record::Message {
                            conversation,
                            id,
                            message,
                        })),
                        Ok(_) => None,
                        Err(e) => Some(Err(corrupt(&format!("message {id}"), e))),
                    }
                })
                .chain(error)
        });
        let remembered = self
            .base
            .window
            .entries(self.base.forget_before)
            .map(|item| item.map(|(key, entry)| Record::Remembered { key, entry }));
        messages.chain(remembered)
    }
}

/// A table iterator, or the error that kept it from starting as the only
/// item.
fn split<I: Iterator>(
    r: Result<I, redb::StorageError>,
) -> (impl Iterator<Item = I::Item>, Option<Result<Record, Error>>) {
    match r {
        Ok(items) => (Some(items).into_iter().flatten(), None),
        Err(e) => (None.into_iter().flatten(), Some(Err(e.into()))),
    }
}

/// A sealed delta on its way into redb. See [`DiskStore::seal`].
pub struct Checkpoint {
    delta: Arc<Delta>,
    shared: Arc<Shared>,
}

impl Checkpoint {
    fn layers_base(&self) -> Arc<Base> {
        let layers = self.shared.layers.read().unwrap_or_else(|e| e.into_inner());
        layers.base.clone()
    }

    /// Writes the sealed changes and `applied` (the applied-state blob that
    /// matches them) in one durable transaction, then lets readers see redb
    /// at that commit. Blocking. A checkpoint that fails leaves its changes
    /// sealed: they stay readable, but no later checkpoint can start, so the
    /// caller must stop the replica.
    pub fn run(self, applied: &[u8]) -> Result<(), Error> {
        let mut filters = self.layers_base().window.filters();
        let mut tx = self.shared.db.begin_write()?;
        tx.set_durability(Durability::Immediate)
            .map_err(|e| corrupt("durability", e))?;
        // Keeps the allocator state in the commit, so that opening after a
        // crash does not walk every tree of a large file to rebuild it.
        tx.set_quick_repair(true);
        {
            let d = &self.delta;
            let mut messages = tx.open_table(MESSAGES)?;
            let mut heads = tx.open_table(HEADS)?;
            let mut bytes = Vec::new();
            let mut search = Pending::default();
            for (&id, slot) in &d.slots {
                if d.removed.contains(&slot.conversation) {
                    continue;
                }
                if let Some(m) = &slot.message {
                    search.add(id, slot.conversation, &m.body);
                    if search.full() {
                        search.write(&tx)?;
                    }
                }
                bytes.clear();
                bytes = slot.encode(bytes)?;
                messages.insert(id, bytes.as_slice())?;
            }
            for (&conversation, &id) in &d.heads {
                heads.insert(conversation, id)?;
            }
            for &conversation in &d.removed {
                // Walk the chain as written so far, deleting it.
                let mut next = heads.remove(conversation)?.map_or(0, |v| v.value());
                while next != 0 {
                    let slot: Option<Slot> = match messages.remove(next)? {
                        Some(v) => Some(
                            Slot::decode(v.value())
                                .map_err(|e| corrupt(&format!("message {next}"), e))?,
                        ),
                        None => None,
                    };
                    next = slot
                        .filter(|s| s.conversation == conversation)
                        .map_or(0, |s| s.prev);
                }
            }
            drop((messages, heads));
            search.write(&tx)?;
            request_window::write(&tx, &d.remembered, d.forget_before, Some(&mut filters))?;
            record_applied(&tx, applied)?;
            tx.open_table(META)?
                .insert(FORGET_BEFORE, d.forget_before.to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        let base = Base::open(&self.shared.db, &filters)?;
        tracing::debug!(
            filter_bytes = base.window.filter_bytes(),
            "request-id window filters"
        );
        let base = Arc::new(base);
        let mut layers = self
            .shared
            .layers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        layers.base = base;
        layers.sealed = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{MemoryStore, MessageRef, Remembered};

    fn msg(i: u64) -> Message {
        Message::new(
            i % 3,
            &format!("u{}", i % 3),
            &format!("body {i}"),
            i * 10,
            i,
        )
    }

    /// A slot exactly as the releases before message extensions derived
    /// its encoding.
    #[derive(Serialize)]
    struct OldSlot {
        conversation: ConversationId,
        prev: MessageId,
        message: Option<OldMessage>,
    }
    #[derive(Serialize)]
    struct OldMessage {
        sender_id: u64,
        sender: String,
        body: String,
        sent_ms: u64,
        index: u64,
    }

    #[test]
    fn slots_written_before_message_extensions_still_decode() {
        let old = OldSlot {
            conversation: 4,
            prev: 2,
            message: Some(OldMessage {
                sender_id: 1,
                sender: "ann".into(),
                body: "hi".into(),
                sent_ms: 50,
                index: 5,
            }),
        };
        let bytes = postcard::to_stdvec(&old).unwrap();
        let slot = Slot::decode(&bytes).unwrap();
        let plain = Slot {
            conversation: 4,
            prev: 2,
            message: Some(Message::new(1, "ann", "hi", 50, 5)),
        };
        assert_eq!(slot, plain);
        // A message never edited is written byte for byte as before.
        assert_eq!(plain.encode(Vec::new()).unwrap(), bytes);
        let deleted = OldSlot {
            message: None,
            ..old
        };
        let bytes = postcard::to_stdvec(&deleted).unwrap();
        assert_eq!(Slot::decode(&bytes).unwrap().message, None);
        // An edited one carries its extension after the old layout.
        let mut edited = plain.clone();
        if let Some(m) = &mut edited.message {
            m.body = "hello".into();
            m.ext.edited_at_ms = 77;
            m.ext.reply_to = 1;
            m.ext.reactions.push(crate::state::store::Reaction {
                user: 2,
                name: "bob".into(),
                emoji: "👍".into(),
            });
        }
        let bytes = edited.encode(Vec::new()).unwrap();
        assert_eq!(Slot::decode(&bytes).unwrap(), edited);
    }

    /// The disk store finds what a walk of the memory store finds.
    fn same_search(disk: &DiskStore, mem: &MemoryStore) {
        let scopes: Vec<BTreeSet<ConversationId>> =
            vec![(1..=6).collect(), [2].into(), [1, 3, 6].into(), [9].into()];
        for query in [
            "body 1", "BODY", "Edited", "round 3", "1", "y 2", "9", "zzz",
        ] {
            let query = Query::new(query).unwrap();
            for scope in &scopes {
                for before in [0, 1, 40, 41, 97, 1000] {
                    for limit in [1, 3, 200] {
                        assert_eq!(
                            disk.search(scope, &query, before, limit),
                            search::scan(mem, scope, &query, before, limit),
                            "{query:?} in {scope:?} before {before}, limit {limit}"
                        );
                    }
                }
            }
        }
    }

    /// Search through the state machine, with the changes written at
    /// every other step and left sealed (being written) at the others.
    #[test]
    fn search_over_the_disk_store_follows_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (disk, _) = DiskStore::open(&dir.path().join("state.redb")).unwrap();
        let mut sealed: Option<Checkpoint> = None;
        crate::state::tests::search_scenario(Box::new(disk), &mut |state| {
            let disk = state.store_as_mut::<DiskStore>().unwrap();
            match sealed.take() {
                Some(checkpoint) => checkpoint.run(b"applied").unwrap(),
                None => sealed = disk.seal(),
            }
        });
    }

    /// An index that does not match the applied state is rebuilt at open;
    /// a loaded snapshot comes with one.
    #[test]
    fn the_search_index_is_rebuilt_when_it_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let (mut disk, _) = DiskStore::open(&path).unwrap();
        let mut mem = MemoryStore::default();
        for id in 1..=300u64 {
            let m = msg(id);
            disk.put_message(id % 4 + 1, id, m.clone());
            mem.put_message(id % 4 + 1, id, m);
        }
        disk.seal().unwrap().run(b"one").unwrap();
        for id in [5, 6, 7] {
            let c = mem.home(id).unwrap();
            disk.remove_message(c, id);
            mem.remove_message(c, id);
        }
        disk.seal().unwrap().run(b"two").unwrap();
        drop(disk);
        // A release without the index writes a checkpoint: the marker no
        // longer matches, and the message it wrote is not indexed.
        {
            let db = Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut messages = tx.open_table(MESSAGES).unwrap();
                let slot = Slot {
                    conversation: 2,
                    prev: 0,
                    message: Some(Message::new(1, "u1", "unindexed words", 1, 1)),
                };
                messages
                    .insert(1000, slot.encode(Vec::new()).unwrap().as_slice())
                    .unwrap();
                tx.open_table(META)
                    .unwrap()
                    .insert(APPLIED, &b"three"[..])
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        mem.put_message(2, 1000, Message::new(1, "u1", "unindexed words", 1, 1));
        let (disk, _) = DiskStore::open(&path).unwrap();
        same_search(&disk, &mem);
        let query = Query::new("unindexed").unwrap();
        assert_eq!(disk.search(&[2].into(), &query, 0, 5).len(), 1);
        // A snapshot loaded elsewhere.
        let loaded = dir.path().join("loaded.redb");
        DiskStore::load(&loaded, b"snap", mem.records().map(Ok::<_, String>)).unwrap();
        let (disk, applied) = DiskStore::open(&loaded).unwrap();
        assert_eq!(applied.as_deref(), Some(&b"snap"[..]));
        same_search(&disk, &mem);
        drop(disk);
        let marker = Database::open(&loaded)
            .unwrap()
            .begin_read()
            .unwrap()
            .open_table(META)
            .unwrap()
            .get(search_index::MARKER)
            .unwrap()
            .map(|v| v.value().to_vec());
        assert_eq!(marker, Some(search_index::marker(b"snap")));
    }

    /// More messages than one write of gathered postings holds: a load
    /// and a checkpoint write them in parts, a rebuild in transactions.
    #[test]
    fn the_search_index_is_written_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let n = search_index::PENDING_MESSAGES as u64 + 700;
        let mut mem = MemoryStore::default();
        for id in 1..=n {
            let body = format!(
                "w{} {}",
                id % 1000,
                if id % 7 == 0 { "seventh" } else { "" }
            );
            mem.put_message(id % 3 + 1, id, Message::new(1, "a", &body, id, id));
        }
        let check = |disk: &DiskStore| {
            for (query, before) in [("seventh", 0), ("W99 ", 0), ("w5", 40_000), ("w5", n)] {
                let query = Query::new(query).unwrap();
                for scope in [[1, 2, 3].into(), [2].into()] {
                    assert_eq!(
                        disk.search(&scope, &query, before, 500),
                        search::scan(&mem, &scope, &query, before, 500),
                        "{query:?} in {scope:?} before {before}"
                    );
                }
            }
        };
        let loaded = dir.path().join("loaded.redb");
        DiskStore::load(&loaded, b"snap", mem.records().map(Ok::<_, String>)).unwrap();
        let (disk, _) = DiskStore::open(&loaded).unwrap();
        check(&disk);
        drop(disk);
        // The marker gone: rebuilt at open.
        {
            let db = Database::open(&loaded).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .remove(search_index::MARKER)
                .unwrap();
            tx.commit().unwrap();
        }
        let (disk, _) = DiskStore::open(&loaded).unwrap();
        check(&disk);
        // Written by one checkpoint.
        let (mut disk, _) = DiskStore::open(&dir.path().join("state.redb")).unwrap();
        for record in mem.records() {
            if let Record::Message {
                conversation,
                id,
                message,
            } = record
            {
                disk.put_message(conversation, id, message);
            }
        }
        disk.seal().unwrap().run(b"one").unwrap();
        check(&disk);
    }

    fn entry(at: u64) -> RememberedAt {
        RememberedAt {
            at,
            result: Remembered::Sent(MessageRef {
                id: at,
                conversation: 1,
                sender_id: 2,
                sent_ms: at,
                index: at,
            }),
        }
    }

    /// The same calls on both stores, checkpointing (and at the end
    /// reopening) the disk one: they must read the same at every step.
    #[test]
    fn reads_like_the_memory_store_across_checkpoints_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let (mut disk, applied) = DiskStore::open(&path).unwrap();
        assert_eq!(applied, None);
        let mut mem = MemoryStore::default();
        let all = (Bound::Unbounded, Bound::Unbounded);
        let check = |disk: &DiskStore, mem: &MemoryStore| {
            assert!(disk.records().eq(mem.records()));
            for c in 1..=6 {
                for (range, newest) in [
                    (all, true),
                    (all, false),
                    ((Bound::Unbounded, Bound::Excluded(40)), true),
                    ((Bound::Unbounded, Bound::Excluded(41)), true),
                    ((Bound::Excluded(20), Bound::Unbounded), false),
                ] {
                    let d: Vec<_> = disk.messages(c, range, newest).collect();
                    let m: Vec<_> = mem.messages(c, range, newest).collect();
                    assert_eq!(d, m, "conversation {c} {range:?} newest first {newest}");
                }
            }
            for id in 0..130 {
                assert_eq!(disk.home(id), mem.home(id), "home of {id}");
            }
            same_search(disk, mem);
            assert_eq!(disk.failure(), None);
        };
        let mut id = 0;
        for round in 0..6u64 {
            for _ in 0..20 {
                id += 1;
                // Conversation ids are never reused once removed.
                let conversation = match id % 5 + 1 {
                    2 if round > 3 => 6,
                    c => c,
                };
                disk.put_message(conversation, id, msg(id));
                mem.put_message(conversation, id, msg(id));
                // Keys come back (re-remembered); seven seconds of state
                // time per id spread the window over many generations.
                let key = [(id % 50) as u8; 16];
                disk.remember(key, entry(id * 7_000));
                mem.remember(key, entry(id * 7_000));
            }
            // Edits, some of messages already checkpointed.
            for edited in [id - 1, id.saturating_sub(22), 9] {
                if let Some(c) = mem.home(edited) {
                    let mut m = mem.message(c, edited).unwrap();
                    m.body = format!("edited in round {round}");
                    m.ext.edited_at_ms = round + 1;
                    disk.update_message(c, edited, m.clone());
                    mem.update_message(c, edited, m);
                }
            }
            for victim in [id - 3, id.saturating_sub(25), 7] {
                if let Some(c) = mem.home(victim) {
                    disk.remove_message(c, victim);
                    mem.remove_message(c, victim);
                }
            }
            if round == 3 {
                disk.remove_conversation(2);
                mem.remove_conversation(2);
            }
            disk.forget_before(id.saturating_sub(30) * 7_000);
            mem.forget_before(id.saturating_sub(30) * 7_000);
            check(&disk, &mem);
            if round % 2 == 1 {
                assert!(disk.pending_bytes() > 20 * 96);
                let checkpoint = disk.seal().unwrap();
                assert_eq!(disk.pending_bytes(), 0);
                assert!(disk.seal().is_none(), "one checkpoint at a time");
                check(&disk, &mem);
                checkpoint.run(format!("round {round}").as_bytes()).unwrap();
                assert!(!disk.checkpointing());
                check(&disk, &mem);
            }
        }
        disk.seal().unwrap().run(b"last").unwrap();
        let view = disk.view();
        let viewed: Vec<Record> = view.records().map(Result::unwrap).collect();
        assert_eq!(viewed, mem.records().collect::<Vec<_>>());
        drop((view, disk));
        let (disk, applied) = DiskStore::open(&path).unwrap();
        assert_eq!(applied.as_deref(), Some(&b"last"[..]));
        check(&disk, &mem);
    }

    /// A store written by the first history-store release kept the whole
    /// request-id window in one table and a time index: opening moves it.
    #[test]
    fn the_one_table_request_window_is_moved_at_open() {
        use redb::TableHandle;
        use request_window::{OLD_BY_TIME, OLD_REMEMBERED as OLD};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let entries: Vec<(DedupKey, RememberedAt)> = (1..=300u64)
            .map(|i| {
                (
                    [
                        (i % 251) as u8,
                        (i / 251) as u8,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        1,
                    ],
                    entry(i * 1_000),
                )
            })
            .collect();
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut old = tx.open_table(OLD).unwrap();
                let mut by_time = tx.open_table(OLD_BY_TIME).unwrap();
                for (key, entry) in &entries {
                    old.insert(key, postcard::to_allocvec(entry).unwrap().as_slice())
                        .unwrap();
                    by_time.insert((entry.at, *key), ()).unwrap();
                }
                tx.open_table(META)
                    .unwrap()
                    .insert(APPLIED, &b"old"[..])
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let (disk, applied) = DiskStore::open(&path).unwrap();
        assert_eq!(applied.as_deref(), Some(&b"old"[..]));
        for (key, entry) in &entries {
            assert_eq!(disk.remembered(key).as_ref(), Some(entry));
        }
        let mut mem = MemoryStore::default();
        for (key, entry) in entries {
            mem.remember(key, entry);
        }
        assert!(disk.records().eq(mem.records()));
        drop(disk);
        let db = Database::open(&path).unwrap();
        let names: Vec<String> = db
            .begin_read()
            .unwrap()
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n == "remembered" || n == "remembered_by_time"),
            "{names:?}"
        );
        // 1 s to 300 s of state time.
        let generations = 300_000 / request_window::GENERATION_MS + 1;
        let tables = names
            .iter()
            .filter(|n| n.starts_with("remembered-"))
            .count();
        assert_eq!(tables as u64, generations, "{names:?}");
    }
}
