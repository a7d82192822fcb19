//! The disk store's search index: which messages hold which trigrams of
//! their folded text (`state::search`), and which conversation each
//! message is in. It lives in the history store's redb file but is this
//! replica's own: not a [`Record`](crate::state::store::Record), not in
//! snapshots or digests, rebuilt from the messages whenever in doubt.
//!
//! # Layout (redb tables)
//!
//! ```text
//! search_grams   (segment, trigram)      -> posting: its messages holding the trigram
//! search_scopes  (segment, conversation) -> posting: its messages of the conversation
//! meta "search_index" -> FORMAT, then the SHA-256 of the "applied" blob it matches
//! ```
//!
//! A *segment* is 2^16 consecutive message ids; a *posting* is the low 16
//! bits of some of its ids, as sorted little-endian `u16`s while there are
//! at most [`LIST_MAX`], else as a bitmap of 8 KiB (roaring's two kinds of
//! container, without the crate). Ids are global and grow, so a
//! checkpoint's new messages land in the last segment or two, and the
//! postings it rewrites are few. A query intersects postings one segment
//! at a time, newest first, in 8 KiB bitmaps, and stops once it has enough
//! matches.
//!
//! # Keeping it right
//!
//! Every checkpoint adds the postings of the messages it writes (sent or
//! edited) in its own transaction, so the index always matches the
//! messages in the file, including after a crash. Postings only grow: a
//! deleted message, an edit's previous text, a removed conversation keep
//! theirs, and are dropped by verification (every candidate is checked
//! against its current text). The marker names the checkpoint the index
//! matches: opening a file whose marker does not match its applied state
//! (written by a release without the index, or by one that did not keep
//! it) rebuilds the index from the messages; installing a snapshot builds
//! it with the file.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use sha2::{Digest, Sha256};

use crate::state::command::{ConversationId, MessageId};
use crate::state::search::{each_gram, fold, Lookup};

const GRAMS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("search_grams");
const SCOPES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("search_scopes");

/// The meta key of the marker (see the module docs).
pub const MARKER: &str = "search_index";

/// The index format: a marker of another format does not match.
const FORMAT: u8 = 1;

const SEGMENT_BITS: u32 = 16;
/// Words of a segment's bitmap.
const WORDS: usize = (1 << SEGMENT_BITS) / 64;
/// Longest posting kept as a list (a list of more is larger than a bitmap).
pub const LIST_MAX: usize = 4096;
const LIST: u8 = 0;
const BITMAP: u8 = 1;

type Error = redb::Error;

fn corrupt(what: &str) -> Error {
    Error::Corrupted(format!("search index: {what}"))
}

fn segment(id: MessageId) -> u64 {
    id >> SEGMENT_BITS
}

fn low(id: MessageId) -> u16 {
    (id & ((1 << SEGMENT_BITS) - 1)) as u16
}

/// The marker of an index that matches the checkpoint holding `applied`.
pub fn marker(applied: &[u8]) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(&Sha256::digest(applied));
    out
}

/// One segment's ids as a bitmap.
struct Bits(Box<[u64; WORDS]>);

impl Bits {
    fn empty() -> Bits {
        Bits(Box::new([0; WORDS]))
    }

    fn set(&mut self, low: u16) {
        self.0[low as usize / 64] |= 1 << (low % 64);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a &= *b;
        }
    }

    /// Adds the ids of an encoded posting.
    fn add_posting(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match bytes.split_first() {
            Some((&LIST, list)) if list.len() % 2 == 0 => {
                for pair in list.chunks_exact(2) {
                    self.set(u16::from_le_bytes([pair[0], pair[1]]));
                }
                Ok(())
            }
            Some((&BITMAP, words)) if words.len() == WORDS * 8 => {
                for (w, word) in self.0.iter_mut().zip(words.chunks_exact(8)) {
                    let mut le = [0; 8];
                    le.copy_from_slice(word);
                    *w |= u64::from_le_bytes(le);
                }
                Ok(())
            }
            _ => Err(corrupt("a posting is malformed")),
        }
    }

    fn of_posting(bytes: &[u8]) -> Result<Bits, Error> {
        let mut bits = Bits::empty();
        bits.add_posting(bytes)?;
        Ok(bits)
    }

    /// The low bits set, highest first.
    fn descending(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().rev().flat_map(|(at, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let bit = 63 - word.leading_zeros();
                word &= !(1u64 << bit);
                Some((at * 64 + bit as usize) as u16)
            })
        })
    }

    fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn encode(&self) -> Vec<u8> {
        if self.len() <= LIST_MAX {
            let mut out = Vec::with_capacity(1 + 2 * self.len());
            out.push(LIST);
            let mut lows: Vec<u16> = self.descending().collect();
            lows.reverse();
            for l in lows {
                out.extend_from_slice(&l.to_le_bytes());
            }
            out
        } else {
            let mut out = Vec::with_capacity(1 + 8 * WORDS);
            out.push(BITMAP);
            for w in self.0.iter() {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out
        }
    }
}

/// `existing` (an encoded posting, if any) with `lows` (sorted, distinct)
/// added, encoded.
fn merged(existing: Option<&[u8]>, lows: &[u16]) -> Result<Vec<u8>, Error> {
    match existing {
        // Lists stay lists while short: merge without a bitmap.
        Some([LIST, list @ ..]) if (list.len() / 2 + lows.len()) <= LIST_MAX => {
            if list.len() % 2 != 0 {
                return Err(corrupt("a posting is malformed"));
            }
            let mut all: Vec<u16> = list
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .chain(lows.iter().copied())
                .collect();
            all.sort_unstable();
            all.dedup();
            let mut out = Vec::with_capacity(1 + 2 * all.len());
            out.push(LIST);
            for l in all {
                out.extend_from_slice(&l.to_le_bytes());
            }
            Ok(out)
        }
        None if lows.len() <= LIST_MAX => {
            let mut out = Vec::with_capacity(1 + 2 * lows.len());
            out.push(LIST);
            for l in lows {
                out.extend_from_slice(&l.to_le_bytes());
            }
            Ok(out)
        }
        existing => {
            let mut bits = match existing {
                Some(bytes) => Bits::of_posting(bytes)?,
                None => Bits::empty(),
            };
            for &l in lows {
                bits.set(l);
            }
            Ok(bits.encode())
        }
    }
}

/// FxHash's step: keys here are integers, which need no DoS-proof hash,
/// and gathering a message's hundred-odd trigrams was most of the cost.
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Postings = HashMap<(u64, u64), Vec<u16>, BuildHasherDefault<IntHasher>>;

/// Messages whose postings are gathered before they are written: bounds
/// the RAM a checkpoint, a load or a rebuild holds for them (about 100
/// postings of 2 bytes per message of 150 bytes, plus the map: ~15 MB).
pub const PENDING_MESSAGES: usize = 1 << SEGMENT_BITS;

/// Postings to add, gathered in RAM before one write.
#[derive(Default)]
pub struct Pending {
    grams: Postings,
    scopes: Postings,
    messages: usize,
}

impl Pending {
    /// Adds message `id` of `conversation` with text `body`. A trigram
    /// repeated in the text is pushed again and dropped at the write.
    pub fn add(&mut self, id: MessageId, conversation: ConversationId, body: &str) {
        let (segment, low) = (segment(id), low(id));
        each_gram(&fold(body), |gram| {
            let lows = self.grams.entry((segment, gram)).or_default();
            if lows.last() != Some(&low) {
                lows.push(low);
            }
        });
        self.scopes
            .entry((segment, conversation))
            .or_default()
            .push(low);
        self.messages += 1;
    }

    /// Whether enough is gathered to write it now (see [`PENDING_MESSAGES`]).
    pub fn full(&self) -> bool {
        self.messages >= PENDING_MESSAGES
    }

    /// Adds everything gathered to the index in `tx`, and empties itself.
    pub fn write(&mut self, tx: &WriteTransaction) -> Result<(), Error> {
        for (table, pending) in [
            (GRAMS, std::mem::take(&mut self.grams)),
            (SCOPES, std::mem::take(&mut self.scopes)),
        ] {
            let mut table = tx.open_table(table)?;
            // In key order: the tree is written leaf after leaf.
            let mut pending: Vec<((u64, u64), Vec<u16>)> = pending.into_iter().collect();
            pending.sort_unstable_by_key(|(key, _)| *key);
            for (key, mut lows) in pending {
                lows.sort_unstable();
                lows.dedup();
                let bytes = {
                    let old = table.get(key)?;
                    merged(old.as_ref().map(|v| v.value()), &lows)?
                };
                table.insert(key, bytes.as_slice())?;
            }
        }
        self.messages = 0;
        Ok(())
    }
}

/// Drops the whole index in `tx` (before a rebuild).
pub fn clear(tx: &WriteTransaction) -> Result<(), Error> {
    for table in [GRAMS, SCOPES] {
        match tx.delete_table(table) {
            Ok(_) | Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Bytes the index takes in the file (stored keys and values), for logs
/// and benchmarks.
pub fn stored_bytes(tx: &ReadTransaction) -> Result<u64, Error> {
    let mut total = 0;
    for table in [GRAMS, SCOPES] {
        if let Some(t) = optional(tx.open_table(table))? {
            let stats = t.stats()?;
            total += stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        }
    }
    Ok(total)
}

fn optional<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, Error> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The index at one commit, for queries.
pub struct Reader {
    grams: Option<ReadOnlyTable<(u64, u64), &'static [u8]>>,
    scopes: Option<ReadOnlyTable<(u64, u64), &'static [u8]>>,
}

impl Reader {
    pub fn open(tx: &ReadTransaction) -> Result<Reader, Error> {
        Ok(Reader {
            grams: optional(tx.open_table(GRAMS))?,
            scopes: optional(tx.open_table(SCOPES))?,
        })
    }

    /// Passes `visit` the ids below `before` (0 = no bound) of `scope`'s
    /// messages that may match `lookup`, newest first, until it returns
    /// `false`. Every match is among them; the caller checks each.
    pub fn candidates(
        &self,
        scope: &BTreeSet<ConversationId>,
        lookup: &Lookup,
        before: MessageId,
        mut visit: impl FnMut(MessageId) -> bool,
    ) -> Result<(), Error> {
        let (Some(grams), Some(scopes)) = (&self.grams, &self.scopes) else {
            return Ok(());
        };
        let Some(newest) = scopes.last()?.map(|(k, _)| k.value().0) else {
            return Ok(());
        };
        let top = match before {
            0 => MessageId::MAX,
            before => before - 1,
        };
        let mut at = segment(top).min(newest);
        loop {
            if let Some(bits) = segment_candidates(grams, scopes, at, scope, lookup)? {
                for low in bits.descending() {
                    let id = (at << SEGMENT_BITS) | low as u64;
                    if id <= top && !visit(id) {
                        return Ok(());
                    }
                }
            }
            if at == 0 {
                return Ok(());
            }
            at -= 1;
        }
    }
}

type PostingTable = ReadOnlyTable<(u64, u64), &'static [u8]>;

/// The messages of segment `at` in `scope` that hold what `lookup` asks
/// for; `None` if there are none.
fn segment_candidates(
    grams: &PostingTable,
    scopes: &PostingTable,
    at: u64,
    scope: &BTreeSet<ConversationId>,
    lookup: &Lookup,
) -> Result<Option<Bits>, Error> {
    let mut bits = match lookup {
        Lookup::All(wanted) => {
            let mut all: Option<Bits> = None;
            for &gram in wanted {
                let Some(posting) = grams.get((at, gram))? else {
                    return Ok(None);
                };
                let these = Bits::of_posting(posting.value())?;
                let acc = match all.take() {
                    None => these,
                    Some(mut acc) => {
                        acc.and(&these);
                        acc
                    }
                };
                if acc.is_empty() {
                    return Ok(None);
                }
                all = Some(acc);
            }
            match all {
                Some(bits) => bits,
                None => return Ok(None),
            }
        }
        Lookup::AnyIn(lo, hi) => {
            let mut any = Bits::empty();
            for item in grams.range((at, *lo)..=(at, *hi))? {
                any.add_posting(item?.1.value())?;
            }
            any
        }
    };
    if bits.is_empty() {
        return Ok(None);
    }
    let mut in_scope = Bits::empty();
    for &conversation in scope {
        if let Some(posting) = scopes.get((at, conversation))? {
            in_scope.add_posting(posting.value())?;
        }
    }
    bits.and(&in_scope);
    Ok((!bits.is_empty()).then_some(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_merge_across_both_encodings() {
        let lows: Vec<u16> = (0..3000).map(|i| i * 3).collect();
        let list = merged(None, &lows).unwrap();
        assert_eq!(list[0], LIST);
        let more: Vec<u16> = (0..3000).map(|i| i * 3 + 1).collect();
        let bitmap = merged(Some(&list), &more).unwrap();
        assert_eq!(bitmap[0], BITMAP);
        assert_eq!(bitmap.len(), 1 + 8 * WORDS);
        let bits = Bits::of_posting(&bitmap).unwrap();
        assert_eq!(bits.len(), 6000);
        let again = merged(Some(&bitmap), &[2]).unwrap();
        assert_eq!(Bits::of_posting(&again).unwrap().len(), 6001);
        let top: Vec<u16> = bits.descending().take(3).collect();
        assert_eq!(top, vec![8998, 8997, 8995]);
        assert!(Bits::of_posting(&[LIST, 1]).is_err());
        assert!(Bits::of_posting(&[7]).is_err());
    }
}
