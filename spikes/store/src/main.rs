//! redb against fjall on raftchat's workload, one engine per run.
//!
//! What it does, in one process, on a fresh directory:
//! 1. **apply**: `--messages` messages in batches of `--per-batch` (one Raft
//!    entry's worth), each batch one atomic write: the messages by
//!    (conversation, id), the id index, each touched conversation's head and
//!    `last_applied`. Nothing is synced per batch (the Raft log is the
//!    source of truth); every `--checkpoint` messages the store is made
//!    durable, as it must be before the log is purged. Reports the commit
//!    time per batch and of the checkpoints.
//! 2. **pages**: random history pages (the newest `--page` messages of a
//!    conversation, and a page before a random message), timed.
//! 3. **snapshot under writes**: one thread reads a point-in-time view of
//!    every message (what a snapshot streams) while the main thread applies
//!    more batches; reports the scan and the slowest batch meanwhile.
//! 4. **reopen**: drop and open the store again, then read one page.
//!
//! Prints one `key=value` line per figure, plus RSS, CPU and disk use.
//!
//! Engines (`--engine`): `redb`, `redb-by-id` (messages under their id, a
//! key-only (conversation, id) index), `redb-chain` (messages under their
//! id, each naming the previous message of its conversation; a page follows
//! that chain from the conversation's head, or from the message `before`
//! names, whatever conversation that is: the cost of a walk is what is
//! measured), `fjall`, and `mem` (ordered maps in RAM, today's replica) as
//! the baseline.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// One applied batch: messages as (conversation, id, value), the touched
/// conversations' heads, and the log index it came from.
struct Batch {
    messages: Vec<(u64, u64, Vec<u8>)>,
    heads: Vec<(u64, u64)>,
    last_applied: u64,
}

trait Store: Send + Sync {
    fn apply(&self, batch: &Batch);
    /// Makes everything applied so far durable.
    fn checkpoint(&self);
    /// Up to `limit` messages of `conversation` with ids below `before`,
    /// newest first; returns how many bytes they hold.
    fn page(&self, conversation: u64, before: u64, limit: usize) -> (usize, usize);
    /// Reads every message from one point-in-time view; returns the count.
    fn scan_all(&self) -> usize;
}

fn key(conversation: u64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&conversation.to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The baseline: ordered maps in RAM behind one lock, what the replica
/// does today (no disk, no encoding).
mod mem_store {
    use std::collections::BTreeMap;
    use std::sync::RwLock;

    use super::{Batch, Store};

    #[derive(Default)]
    pub struct Mem {
        inner: RwLock<Tables>,
    }

    #[derive(Default, Clone)]
    struct Tables {
        messages: BTreeMap<(u64, u64), Vec<u8>>,
        ids: BTreeMap<u64, u64>,
        heads: BTreeMap<u64, u64>,
        last_applied: u64,
    }

    impl Store for Mem {
        fn apply(&self, batch: &Batch) {
            let mut t = self.inner.write().expect("lock");
            for (c, id, value) in &batch.messages {
                t.messages.insert((*c, *id), value.clone());
                t.ids.insert(*id, *c);
            }
            for (c, head) in &batch.heads {
                t.heads.insert(*c, *head);
            }
            t.last_applied = batch.last_applied;
        }

        fn checkpoint(&self) {}

        fn page(&self, conversation: u64, before: u64, limit: usize) -> (usize, usize) {
            let t = self.inner.read().expect("lock");
            let mut n = 0;
            let mut bytes = 0;
            for (_, v) in t
                .messages
                .range((conversation, 0)..(conversation, before))
                .rev()
                .take(limit)
            {
                n += 1;
                bytes += v.len();
            }
            (n, bytes)
        }

        fn scan_all(&self) -> usize {
            // A point-in-time view of maps in RAM needs the lock for the
            // whole scan: that is today's snapshot stall.
            let t = self.inner.read().expect("lock");
            t.messages.values().map(|v| std::hint::black_box(v.len())).count()
        }
    }
}

#[cfg(feature = "redb")]
mod redb_store {
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

    use super::{key, Batch, Store};

    const MESSAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("messages");
    const IDS: TableDefinition<u64, u64> = TableDefinition::new("message_ids");
    const HEADS: TableDefinition<u64, u64> = TableDefinition::new("heads");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    /// Layout "id": the message itself under its id (appended in order),
    /// and a key-only index (conversation, id) for history pages.
    const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
    const BY_CONVERSATION: TableDefinition<&[u8], ()> = TableDefinition::new("by_conversation");

    /// Layout: 0 = messages by (conversation, id) + id index; 1 = by id +
    /// key-only (conversation, id) index; 2 = by id only, each record naming
    /// the previous message of its conversation (pages follow that chain).
    pub struct Redb(Database, u8);

    fn prev_of(record: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&record[..8]);
        u64::from_le_bytes(b)
    }

    impl Redb {
        pub fn open(path: &std::path::Path, cache: usize, layout: u8) -> Redb {
            let db = Database::builder()
                .set_cache_size(cache)
                .create(path.join("state.redb"))
                .expect("open redb");
            Redb(db, layout)
        }
    }

    impl Store for Redb {
        fn apply(&self, batch: &Batch) {
            let mut tx = self.0.begin_write().expect("begin");
            tx.set_durability(Durability::None).expect("durability");
            if self.1 == 1 {
                let mut bodies = tx.open_table(BODIES).expect("table");
                let mut index = tx.open_table(BY_CONVERSATION).expect("table");
                for (c, id, value) in &batch.messages {
                    bodies.insert(*id, &value[..]).expect("insert");
                    index.insert(&key(*c, *id)[..], ()).expect("insert");
                }
            }
            if self.1 == 2 {
                let mut bodies = tx.open_table(BODIES).expect("table");
                let mut heads = tx.open_table(HEADS).expect("table");
                let mut record = Vec::new();
                for (c, id, value) in &batch.messages {
                    let prev = heads.get(*c).expect("get").map_or(0, |g| g.value());
                    record.clear();
                    record.extend_from_slice(&prev.to_le_bytes());
                    record.extend_from_slice(value);
                    bodies.insert(*id, &record[..]).expect("insert");
                    heads.insert(*c, *id).expect("insert");
                }
            }
            {
                let mut messages = tx.open_table(MESSAGES).expect("table");
                let mut ids = tx.open_table(IDS).expect("table");
                let mut heads = tx.open_table(HEADS).expect("table");
                let mut meta = tx.open_table(META).expect("table");
                for (c, id, value) in batch.messages.iter().filter(|_| self.1 == 0) {
                    messages
                        .insert(&key(*c, *id)[..], &value[..])
                        .expect("insert");
                    ids.insert(*id, *c).expect("insert");
                }
                for (c, head) in &batch.heads {
                    heads.insert(*c, *head).expect("insert");
                }
                meta.insert("last_applied", batch.last_applied)
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }

        fn checkpoint(&self) {
            let mut tx = self.0.begin_write().expect("begin");
            tx.set_durability(Durability::Immediate).expect("durability");
            tx.commit().expect("commit");
        }

        fn page(&self, conversation: u64, before: u64, limit: usize) -> (usize, usize) {
            let tx = self.0.begin_read().expect("read");
            let (lo, hi) = (key(conversation, 0), key(conversation, before));
            if self.1 == 2 {
                let bodies = tx.open_table(BODIES).expect("table");
                let heads = tx.open_table(HEADS).expect("table");
                // The page starts at `before` itself when it is a message
                // of this conversation (what a client paging back passes),
                // else at the conversation's newest message.
                let start = match bodies.get(before).expect("get") {
                    Some(_) if before != u64::MAX => before,
                    _ => heads.get(conversation).expect("get").map_or(0, |g| g.value()),
                };
                let mut next = if start == before {
                    bodies.get(before).expect("get").map_or(0, |g| prev_of(g.value()))
                } else {
                    start
                };
                let mut n = 0;
                let mut bytes = 0;
                while next != 0 && n < limit {
                    let v = bodies.get(next).expect("get").expect("body");
                    n += 1;
                    bytes += v.value().len() - 8;
                    next = prev_of(v.value());
                }
                return (n, bytes);
            }
            if self.1 == 1 {
                let bodies = tx.open_table(BODIES).expect("table");
                let index = tx.open_table(BY_CONVERSATION).expect("table");
                let mut n = 0;
                let mut bytes = 0;
                for item in index.range(&lo[..]..&hi[..]).expect("range").rev().take(limit) {
                    let (k, _) = item.expect("item");
                    let mut id = [0u8; 8];
                    id.copy_from_slice(&k.value()[8..]);
                    let v = bodies.get(u64::from_be_bytes(id)).expect("get").expect("body");
                    n += 1;
                    bytes += v.value().len();
                }
                return (n, bytes);
            }
            let messages = tx.open_table(MESSAGES).expect("table");
            let mut n = 0;
            let mut bytes = 0;
            for item in messages
                .range(&lo[..]..&hi[..])
                .expect("range")
                .rev()
                .take(limit)
            {
                let (_, v) = item.expect("item");
                n += 1;
                bytes += v.value().len();
            }
            (n, bytes)
        }

        fn scan_all(&self) -> usize {
            let tx = self.0.begin_read().expect("read");
            if self.1 != 0 {
                let bodies = tx.open_table(BODIES).expect("table");
                let mut n = 0;
                for item in bodies.iter().expect("iter") {
                    let (_, v) = item.expect("item");
                    std::hint::black_box(v.value().len());
                    n += 1;
                }
                return n;
            }
            let messages = tx.open_table(MESSAGES).expect("table");
            let mut n = 0;
            for item in messages.iter().expect("iter") {
                let (_, v) = item.expect("item");
                std::hint::black_box(v.value().len());
                n += 1;
            }
            n
        }
    }
}

#[cfg(feature = "fjall")]
mod fjall_store {
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

    use super::{key, Batch, Store};

    pub struct Fjall {
        db: Database,
        messages: Keyspace,
        ids: Keyspace,
        heads: Keyspace,
        meta: Keyspace,
    }

    impl Fjall {
        pub fn open(path: &std::path::Path, cache: u64, journal_mb: u64, memtable_mb: u64) -> Fjall {
            let db = Database::builder(path.join("state.fjall"))
                .cache_size(cache)
                .manual_journal_persist(true)
                .max_journaling_size(journal_mb * 1024 * 1024)
                .open()
                .expect("open fjall");
            let options = || {
                KeyspaceCreateOptions::default()
                    .manual_journal_persist(true)
                    .max_memtable_size(memtable_mb * 1024 * 1024)
            };
            let ks = |name| db.keyspace(name, options).expect("keyspace");
            Fjall {
                messages: ks("messages"),
                ids: ks("message_ids"),
                heads: ks("heads"),
                meta: ks("meta"),
                db,
            }
        }
    }

    impl Store for Fjall {
        fn apply(&self, batch: &Batch) {
            let mut b = self.db.batch().durability(None);
            for (c, id, value) in &batch.messages {
                b.insert(&self.messages, key(*c, *id), value.as_slice());
                b.insert(&self.ids, id.to_be_bytes(), c.to_be_bytes());
            }
            for (c, head) in &batch.heads {
                b.insert(&self.heads, c.to_be_bytes(), head.to_be_bytes());
            }
            b.insert(&self.meta, "last_applied", batch.last_applied.to_be_bytes());
            b.commit().expect("commit");
        }

        fn checkpoint(&self) {
            self.db.persist(PersistMode::SyncData).expect("persist");
        }

        fn page(&self, conversation: u64, before: u64, limit: usize) -> (usize, usize) {
            let (lo, hi) = (key(conversation, 0), key(conversation, before));
            let mut n = 0;
            let mut bytes = 0;
            for item in self.messages.range(lo..hi).rev().take(limit) {
                let v = item.value().expect("item");
                n += 1;
                bytes += v.len();
            }
            (n, bytes)
        }

        fn scan_all(&self) -> usize {
            let snapshot = self.db.snapshot();
            let mut n = 0;
            for item in snapshot.iter(&self.messages) {
                let v = item.value().expect("item");
                std::hint::black_box(v.len());
                n += 1;
            }
            n
        }
    }
}

struct Args {
    engine: String,
    messages: u64,
    per_batch: u64,
    conversations: u64,
    body: usize,
    page: usize,
    checkpoint: u64,
    cache_mb: u64,
    /// fjall only: the journal size that forces memtable flushes (bounds
    /// replay at reopen), and each keyspace's memtable size.
    journal_mb: u64,
    memtable_mb: u64,
    dir: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        engine: if cfg!(feature = "redb") { "redb" } else { "fjall" }.into(),
        messages: 1_000_000,
        per_batch: 20,
        conversations: 1_000,
        body: 256,
        page: 50,
        checkpoint: 200_000,
        cache_mb: 64,
        journal_mb: 512,
        memtable_mb: 64,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => a.engine = value(),
            "--messages" => a.messages = value().parse().expect("--messages N"),
            "--per-batch" => a.per_batch = value().parse().expect("--per-batch N"),
            "--conversations" => a.conversations = value().parse().expect("--conversations N"),
            "--body" => a.body = value().parse().expect("--body BYTES"),
            "--page" => a.page = value().parse().expect("--page N"),
            "--checkpoint" => a.checkpoint = value().parse().expect("--checkpoint N"),
            "--cache-mb" => a.cache_mb = value().parse().expect("--cache-mb N"),
            "--journal-mb" => a.journal_mb = value().parse().expect("--journal-mb N"),
            "--memtable-mb" => a.memtable_mb = value().parse().expect("--memtable-mb N"),
            "--dir" => a.dir = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn open(args: &Args, dir: &Path) -> Box<dyn Store> {
    let cache = args.cache_mb * 1024 * 1024;
    match args.engine.as_str() {
        #[cfg(feature = "redb")]
        "redb" => Box::new(redb_store::Redb::open(dir, cache as usize, 0)),
        #[cfg(feature = "redb")]
        "redb-by-id" => Box::new(redb_store::Redb::open(dir, cache as usize, 1)),
        #[cfg(feature = "redb")]
        "redb-chain" => Box::new(redb_store::Redb::open(dir, cache as usize, 2)),
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fjall_store::Fjall::open(
            dir,
            cache,
            args.journal_mb,
            args.memtable_mb,
        )),
        "mem" => Box::new(mem_store::Mem::default()),
        other => panic!("engine {other} not built in"),
    }
}

/// Makes batches of messages spread over conversations, each value about
/// what raftchat stores per message (sender id, times, log index, sender
/// name, body).
struct Workload {
    rng: rand::rngs::StdRng,
    next_id: u64,
    next_index: u64,
    args_conversations: u64,
    per_batch: u64,
    body: usize,
}

impl Workload {
    fn batch(&mut self) -> Batch {
        let index = self.next_index;
        self.next_index += 1;
        let mut messages = Vec::with_capacity(self.per_batch as usize);
        let mut heads = Vec::new();
        for _ in 0..self.per_batch {
            let c = self.rng.gen_range(0..self.args_conversations);
            let id = self.next_id;
            self.next_id += 1;
            let mut value = Vec::with_capacity(40 + self.body);
            value.extend_from_slice(&(c * 7 + 1).to_le_bytes());
            value.extend_from_slice(&(1_795_000_000_000 + id).to_le_bytes());
            value.extend_from_slice(&index.to_le_bytes());
            value.extend_from_slice(b"\x05alice");
            // Random letters and spaces: about as compressible as chat text
            // (an engine that compresses must not win on a repeated pattern).
            let rng = &mut self.rng;
            value.extend((0..self.body).map(|_| b" abcdefghijklmnopqrstuvwxyz"[rng.gen_range(0..27)]));
            messages.push((c, id, value));
            heads.push((c, id));
        }
        Batch {
            messages,
            heads,
            last_applied: index,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// CPU seconds this process used so far, every thread (background
/// compaction and flushing included).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn disk_mb(dir: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum()
    }
    walk(dir) / (1024 * 1024)
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name}: n={} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        times.len(),
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.99)),
        us(*times.last().unwrap_or(&Duration::ZERO)),
    );
}

fn main() {
    let args = parse_args();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .dir
        .as_ref()
        .map(|d| Path::new(d).to_path_buf())
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("dir");
    println!(
        "engine={} messages={} per_batch={} conversations={} body={} cache_mb={} checkpoint={} journal_mb={} memtable_mb={} rss_start_mb={}",
        args.engine, args.messages, args.per_batch, args.conversations, args.body, args.cache_mb,
        args.checkpoint, args.journal_mb, args.memtable_mb, rss_mb()
    );
    let mut load = Workload {
        rng: rand::rngs::StdRng::seed_from_u64(7),
        next_id: 1,
        next_index: 1,
        args_conversations: args.conversations,
        per_batch: args.per_batch,
        body: args.body,
    };
    let store = open(&args, &dir);

    // 1. apply
    let batches = args.messages / args.per_batch;
    let mut commits = Vec::with_capacity(batches as usize);
    let mut checkpoints = Vec::new();
    let started = Instant::now();
    for n in 1..=batches {
        let batch = load.batch();
        let t = Instant::now();
        store.apply(&batch);
        commits.push(t.elapsed());
        if (n * args.per_batch) % args.checkpoint == 0 {
            let t = Instant::now();
            store.checkpoint();
            checkpoints.push(t.elapsed());
        }
    }
    let t = Instant::now();
    store.checkpoint();
    checkpoints.push(t.elapsed());
    let elapsed = started.elapsed();
    println!(
        "apply: seconds={:.2} messages_per_s={:.0} cpu_s={:.2} rss_mb={} disk_mb={}",
        elapsed.as_secs_f64(),
        args.messages as f64 / elapsed.as_secs_f64(),
        cpu_s(),
        rss_mb(),
        disk_mb(&dir)
    );
    report("apply_batch_commit", commits);
    report("checkpoint_sync", checkpoints);

    // Background work (flushes, compaction) the apply phase left behind.
    let cpu_before = cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    println!("settle_5s: cpu_s={:.2} rss_mb={}", cpu_s() - cpu_before, rss_mb());

    // 2. pages
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut newest = Vec::new();
    let mut older = Vec::new();
    let mut returned = 0;
    for _ in 0..10_000 {
        let c = rng.gen_range(0..args.conversations);
        let t = Instant::now();
        returned += store.page(c, u64::MAX, args.page).0;
        newest.push(t.elapsed());
        let before = rng.gen_range(1..load.next_id);
        let t = Instant::now();
        returned += store.page(c, before, args.page).0;
        older.push(t.elapsed());
    }
    println!("pages: messages_returned={returned} rss_mb={}", rss_mb());
    report("page_newest", newest);
    report("page_before_random_id", older);

    // 3. a point-in-time scan of everything while batches keep coming
    let more = (batches / 10).max(1);
    let (scan, during) = std::thread::scope(|s| {
        let store = &store;
        let scanner = s.spawn(move || {
            let t = Instant::now();
            let n = store.scan_all();
            (n, t.elapsed())
        });
        let mut during = Vec::new();
        for _ in 0..more {
            let batch = load.batch();
            let t = Instant::now();
            store.apply(&batch);
            during.push(t.elapsed());
            if scanner.is_finished() {
                break;
            }
        }
        (scanner.join().expect("scan"), during)
    });
    println!(
        "snapshot_scan: messages={} seconds={:.2} batches_meanwhile={} rss_mb={}",
        scan.0,
        scan.1.as_secs_f64(),
        during.len(),
        rss_mb()
    );
    report("apply_batch_during_scan", during);
    store.checkpoint();

    // 4. reopen
    drop(store);
    let t = Instant::now();
    let store = open(&args, &dir);
    let opened = t.elapsed();
    let t = Instant::now();
    let (n, _) = store.page(1, u64::MAX, args.page);
    println!(
        "reopen: open_ms={:.1} first_page_ms={:.2} page_len={n} rss_mb={} disk_mb={}",
        opened.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3,
        rss_mb(),
        disk_mb(&dir)
    );
}
