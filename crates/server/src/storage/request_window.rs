//! The request-id window of the history store: remembered request results
//! (see `state::dedup`) in redb, one table per [`GENERATION_MS`] of state
//! time.
//!
//! Request keys are SHA-256 prefixes, so a checkpoint's inserts land all
//! over a table keyed by them and redb copies every leaf they touch. In one
//! table for the whole 15-minute window, each checkpoint rewrote the whole
//! window, and the copies left behind took more disk than the window itself
//! (BENCHMARKS.md, "History on disk"). A table per generation keeps the
//! rewriting to the newest one or two; expiry drops whole tables, so no
//! time index is needed; and a snapshot load appends each table in key
//! order, packed.
//!
//! A lookup probes the generations newest first. Each generation has a
//! [`KeyFilter`] in RAM (about 10 bits per key, one cache line read per
//! probe), so a request that was never seen (nearly every request) reads
//! no table. A checkpoint stores the filters it changed next to the
//! tables (`remembered_filters`); opening takes a stored filter only if it
//! counts as many keys as its table holds, and otherwise builds it from the
//! table.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, WriteTransaction,
};

use super::disk_store::Error;
use crate::state::store::{DedupKey, RememberedAt};

/// State time covered by one table. Shorter means less rewritten per
/// checkpoint but more filters per lookup: a 15-minute window spans 31.
pub const GENERATION_MS: u64 = 30_000;

const PREFIX: &str = "remembered-";

/// Each generation's filter, as [`KeyFilter::encode`] writes it.
const FILTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("remembered_filters");

/// The generation an entry remembered at `at` belongs to.
fn generation(at: u64) -> u64 {
    at / GENERATION_MS
}

fn name(generation: u64) -> String {
    format!("{PREFIX}{generation:016x}")
}

fn definition(name: &str) -> TableDefinition<'_, DedupKey, &'static [u8]> {
    TableDefinition::new(name)
}

/// The generation a table name stands for, if it is one of ours.
fn parse(name: &str) -> Option<u64> {
    u64::from_str_radix(name.strip_prefix(PREFIX)?, 16).ok()
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Corrupted(format!("remembered request: {e}"))
}

fn decode(bytes: &[u8]) -> Result<RememberedAt, Error> {
    postcard::from_bytes(bytes).map_err(corrupt)
}

/// The generations that exist in `tx`'s view, oldest first.
fn list(tx: &ReadTransaction) -> Result<Vec<u64>, Error> {
    let mut found: Vec<u64> = tx.list_tables()?.filter_map(|t| parse(t.name())).collect();
    found.sort_unstable();
    Ok(found)
}

/// A growable Bloom filter over request keys: "maybe present" or "surely
/// absent". Keys are already uniform hashes, so their bytes index it
/// directly. It grows by adding a filter twice the size of the last when
/// that one is full, each with ~1 % false positives.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct KeyFilter {
    parts: Vec<Bloom>,
}

/// A blocked Bloom filter: each key sets [`PROBES`] bits in one 512-bit
/// block, so a probe reads one cache line.
#[derive(Clone, Debug, PartialEq)]
struct Bloom {
    blocks: Vec<[u64; 8]>,
    capacity: u64,
    len: u64,
}

const BITS_PER_KEY: u64 = 10;
const PROBES: u32 = 7;
const FIRST_CAPACITY: u64 = 16 << 10;

impl Bloom {
    fn new(capacity: u64) -> Bloom {
        Bloom {
            blocks: vec![[0; 8]; (capacity * BITS_PER_KEY).div_ceil(512) as usize],
            capacity,
            len: 0,
        }
    }

    /// The block and the bits within it for `key`.
    fn place(&self, key: &DedupKey) -> (usize, impl Iterator<Item = usize>) {
        let mut half = [0u8; 8];
        half.copy_from_slice(&key[..8]);
        let h1 = u64::from_le_bytes(half);
        half.copy_from_slice(&key[8..]);
        let h2 = u64::from_le_bytes(half);
        let block = ((u128::from(h1) * self.blocks.len() as u128) >> 64) as usize;
        (
            block,
            (0..PROBES).map(move |i| ((h2 >> (9 * i)) & 511) as usize),
        )
    }

    fn insert(&mut self, key: &DedupKey) {
        let (block, bits) = self.place(key);
        let block = &mut self.blocks[block];
        for bit in bits {
            block[bit / 64] |= 1 << (bit % 64);
        }
        self.len += 1;
    }

    fn may_contain(&self, key: &DedupKey) -> bool {
        let (block, mut bits) = self.place(key);
        let block = &self.blocks[block];
        bits.all(|bit| block[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

impl KeyFilter {
    pub fn insert(&mut self, key: &DedupKey) {
        match self.parts.last_mut() {
            Some(last) if last.len < last.capacity => last.insert(key),
            last => {
                let capacity = last.map_or(FIRST_CAPACITY, |b| b.capacity * 2);
                let mut bloom = Bloom::new(capacity);
                bloom.insert(key);
                self.parts.push(bloom);
            }
        }
    }

    pub fn may_contain(&self, key: &DedupKey) -> bool {
        self.parts.iter().any(|b| b.may_contain(key))
    }

    /// Keys inserted.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|b| b.len).sum()
    }

    /// RAM it takes.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|b| b.blocks.len() * 64).sum()
    }

    /// Per part: capacity, keys, blocks (u64 little-endian each), then the
    /// blocks' words.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes() + 24 * self.parts.len());
        for b in &self.parts {
            for n in [b.capacity, b.len, b.blocks.len() as u64] {
                out.extend_from_slice(&n.to_le_bytes());
            }
            for word in b.blocks.iter().flatten() {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out
    }

    /// What [`encode`](Self::encode) wrote; `None` if it is not that.
    pub fn decode(bytes: &[u8]) -> Option<KeyFilter> {
        let word = |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?));
        let mut rest = bytes;
        let mut parts = Vec::new();
        while !rest.is_empty() {
            let (header, tail) = rest.split_at_checked(24)?;
            let (capacity, len, blocks) = (
                word(&header[..8])?,
                word(&header[8..16])?,
                word(&header[16..])?,
            );
            if blocks != capacity.checked_mul(BITS_PER_KEY)?.div_ceil(512) || len > capacity {
                return None;
            }
            let (data, tail) =
                tail.split_at_checked(usize::try_from(blocks).ok()?.checked_mul(64)?)?;
            rest = tail;
            let blocks = data
                .chunks_exact(64)
                .map(|block| {
                    let mut words = [0u64; 8];
                    for (w, b) in words.iter_mut().zip(block.chunks_exact(8)) {
                        *w = word(b).unwrap_or(0);
                    }
                    words
                })
                .collect();
            parts.push(Bloom {
                blocks,
                capacity,
                len,
            });
        }
        Some(KeyFilter { parts })
    }
}

/// Filters by generation.
pub type Filters = BTreeMap<u64, Arc<KeyFilter>>;

struct Generation {
    generation: u64,
    table: ReadOnlyTable<DedupKey, &'static [u8]>,
    filter: Arc<KeyFilter>,
}

/// The window as of one redb commit (read side).
pub struct Window {
    /// Newest first.
    generations: Vec<Generation>,
}

impl Window {
    /// The window in `tx`'s view. Each generation's filter is taken from
    /// `known` (what the checkpoint that wrote `tx`'s commit built), else
    /// from the stored ones if it counts the table's keys, else built from
    /// the table.
    pub fn open(tx: &ReadTransaction, known: &Filters) -> Result<Window, Error> {
        let stored = match tx.open_table(FILTERS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut generations = Vec::new();
        for generation in list(tx)?.into_iter().rev() {
            let table = tx.open_table(definition(&name(generation)))?;
            let filter = match known.get(&generation) {
                Some(filter) => filter.clone(),
                None => {
                    let rows = table.len()?;
                    let stored = match &stored {
                        Some(t) => t
                            .get(generation)?
                            .and_then(|v| KeyFilter::decode(v.value())),
                        None => None,
                    };
                    match stored.filter(|f| f.len() == rows) {
                        Some(filter) => Arc::new(filter),
                        None => {
                            let mut filter = KeyFilter::default();
                            for item in table.iter()? {
                                filter.insert(&item?.0.value());
                            }
                            Arc::new(filter)
                        }
                    }
                }
            };
            generations.push(Generation {
                generation,
                table,
                filter,
            });
        }
        Ok(Window { generations })
    }

    /// The newest entry remembered under `key`, expired or not.
    pub fn get(&self, key: &DedupKey) -> Result<Option<RememberedAt>, Error> {
        for g in &self.generations {
            if !g.filter.may_contain(key) {
                continue;
            }
            if let Some(v) = g.table.get(key)? {
                return decode(v.value()).map(Some);
            }
        }
        Ok(None)
    }

    /// Every entry remembered at or after `cutoff`, in key order (for a key
    /// in several generations, the newest).
    pub fn entries(
        &self,
        cutoff: u64,
    ) -> impl Iterator<Item = Result<(DedupKey, RememberedAt), Error>> + '_ {
        Merge {
            sources: self
                .generations
                .iter()
                .map(|g| Source::new(g.table.iter().map_err(Error::from)))
                .collect(),
            failed: false,
        }
        .filter(move |item| item.as_ref().map_or(true, |(_, e)| e.at >= cutoff))
    }

    /// The filters of this window's generations.
    pub fn filters(&self) -> Filters {
        self.generations
            .iter()
            .map(|g| (g.generation, g.filter.clone()))
            .collect()
    }

    /// RAM the filters take.
    pub fn filter_bytes(&self) -> usize {
        self.generations.iter().map(|g| g.filter.bytes()).sum()
    }
}

/// One generation's entries in key order, with the next one read ahead.
struct Source<I> {
    items: Option<I>,
    next: Option<Result<(DedupKey, Vec<u8>), Error>>,
}

type Items<'a> = redb::Range<'a, DedupKey, &'static [u8]>;

impl<'a> Source<Items<'a>> {
    fn new(items: Result<Items<'a>, Error>) -> Self {
        let mut source = match items {
            Ok(items) => Source {
                items: Some(items),
                next: None,
            },
            Err(e) => Source {
                items: None,
                next: Some(Err(e)),
            },
        };
        if source.next.is_none() {
            source.advance();
        }
        source
    }

    fn advance(&mut self) {
        self.next = self.items.as_mut().and_then(|items| {
            items.next().map(|item| {
                item.map(|(k, v)| (k.value(), v.value().to_vec()))
                    .map_err(Error::from)
            })
        });
    }
}

/// Merges the generations (newest first) into key order.
struct Merge<'a> {
    sources: Vec<Source<Items<'a>>>,
    failed: bool,
}

impl Iterator for Merge<'_> {
    type Item = Result<(DedupKey, RememberedAt), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // An error ends the stream.
        for source in &mut self.sources {
            if matches!(source.next, Some(Err(_))) {
                self.failed = true;
                if let Some(Err(e)) = source.next.take() {
                    return Some(Err(e));
                }
            }
        }
        let smallest = self
            .sources
            .iter()
            .filter_map(|s| match &s.next {
                Some(Ok((key, _))) => Some(*key),
                _ => None,
            })
            .min()?;
        // Sources are newest first: the first holding the key wins; the
        // others' copies are older and skipped.
        let mut found = None;
        for source in &mut self.sources {
            if matches!(&source.next, Some(Ok((key, _))) if *key == smallest) {
                let taken = source.next.take();
                source.advance();
                if found.is_none() {
                    found = taken;
                }
            }
        }
        let (key, bytes) = match found? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e)),
        };
        Some(decode(&bytes).map(|entry| (key, entry)))
    }
}

/// Writes `entries` into their generations' tables and drops the tables
/// whose every entry was remembered before `forget_before`, in a
/// checkpoint's (or a load's) transaction. With `filters` (the window's
/// before this write), extends them with `entries` and stores the ones
/// that changed; without, opening builds them from the tables.
pub fn write<'a>(
    tx: &WriteTransaction,
    entries: impl IntoIterator<Item = (&'a DedupKey, &'a RememberedAt)>,
    forget_before: u64,
    mut filters: Option<&mut Filters>,
) -> Result<(), Error> {
    let mut by_generation: BTreeMap<u64, Vec<(&DedupKey, &RememberedAt)>> = BTreeMap::new();
    for (key, entry) in entries {
        by_generation
            .entry(generation(entry.at))
            .or_default()
            .push((key, entry));
    }
    let mut bytes = Vec::new();
    for entries in by_generation.values_mut() {
        // In key order, each table is appended to page by page.
        entries.sort_unstable_by_key(|(key, _)| *key);
    }
    for (generation, entries) in &by_generation {
        let mut table = tx.open_table(definition(&name(*generation)))?;
        for (key, entry) in entries {
            bytes.clear();
            bytes = postcard::to_extend(entry, bytes).map_err(corrupt)?;
            table.insert(*key, bytes.as_slice())?;
        }
        if let Some(filters) = filters.as_deref_mut() {
            let filter = Arc::make_mut(filters.entry(*generation).or_default());
            entries.iter().for_each(|(key, _)| filter.insert(key));
            tx.open_table(FILTERS)?
                .insert(*generation, filter.encode().as_slice())?;
        }
    }
    let expired: Vec<u64> = tx
        .list_tables()?
        .filter_map(|t| parse(t.name()))
        .filter(|&g| (g + 1).saturating_mul(GENERATION_MS) <= forget_before)
        .collect();
    if !expired.is_empty() {
        let mut stored = tx.open_table(FILTERS)?;
        for generation in expired {
            tx.delete_table(definition(&name(generation)))?;
            stored.remove(generation)?;
            if let Some(filters) = filters.as_deref_mut() {
                filters.remove(&generation);
            }
        }
    }
    Ok(())
}

/// The one-table layout of the first history-store release, read for
/// [`migrate`] (and written by its test).
pub(super) const OLD_REMEMBERED: TableDefinition<DedupKey, &[u8]> =
    TableDefinition::new("remembered");
pub(super) const OLD_BY_TIME: TableDefinition<(u64, DedupKey), ()> =
    TableDefinition::new("remembered_by_time");

/// Moves a window stored in the one-table layout (see [`needs_migration`])
/// into generations, in `tx`.
pub fn migrate(tx: &WriteTransaction) -> Result<(), Error> {
    let old = tx.open_table(OLD_REMEMBERED)?;
    let mut entries = BTreeMap::new();
    for item in old.iter()? {
        let (key, value) = item?;
        entries.insert(key.value(), decode(value.value())?);
    }
    drop(old);
    write(tx, &entries, 0, None)?;
    tx.delete_table(OLD_REMEMBERED)?;
    tx.delete_table(OLD_BY_TIME)?;
    Ok(())
}

/// Whether `tx` still has the one-table layout.
pub fn needs_migration(tx: &ReadTransaction) -> Result<bool, Error> {
    Ok(tx.list_tables()?.any(|t| t.name() == OLD_REMEMBERED.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> DedupKey {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(i.to_le_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&digest[..16]);
        k
    }

    #[test]
    fn the_filter_has_no_false_negatives_and_few_false_positives() {
        let mut filter = KeyFilter::default();
        for i in 0..100_000 {
            filter.insert(&key(i));
        }
        assert!((0..100_000).all(|i| filter.may_contain(&key(i))));
        let false_positives = (100_000..200_000)
            .filter(|&i| filter.may_contain(&key(i)))
            .count();
        // ~1 % per part; the grown filter has three parts.
        assert!(false_positives < 4_000, "{false_positives}");
        assert!(filter.bytes() < 100_000 * 3, "{}", filter.bytes());
        assert_eq!(filter.len(), 100_000);
        let decoded = KeyFilter::decode(&filter.encode()).unwrap();
        assert_eq!(decoded, filter);
        let bytes = filter.encode();
        assert_eq!(KeyFilter::decode(&bytes[..bytes.len() - 1]), None);
    }
}
