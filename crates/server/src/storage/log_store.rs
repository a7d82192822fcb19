//! The Raft log: every non-purged entry in memory (so reads never touch the
//! disk), mirrored to the [`Wal`] for durability.
//!
//! Disk writes run on one dedicated writer thread fed by an ordered channel,
//! which satisfies openraft's rule that all log and vote I/O is serialized.
//! `append` returns once its entries are in memory and queued; the flush
//! callback fires from the writer thread after `fdatasync`, except for the
//! leader's own entries, whose callback fires once they are written and
//! whose `fdatasync` then overlaps the followers' (see [`super::durability`]).
//! Consecutive queued appends are merged into a single write + fdatasync
//! (group commit).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError};
use tokio::sync::oneshot;

use super::durability::{self, Durability, DurabilityWriter, Unsynced};
use super::meta_file;
use super::wal::{self, Wal, DEFAULT_SEGMENT_LIMIT};
use super::StorageOpenError;
use crate::storage::raft_types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

const VOTE_FILE: &str = "vote";
/// The boot id of the machine session that last opened this log.
pub(super) const BOOT_FILE: &str = "boot";
const PURGED_FILE: &str = "purged";
const LOG_DIR: &str = "log";
/// Most ops the writer takes from the queue per round.
const MAX_BATCH_OPS: usize = 4096;

type Entries = Arc<Mutex<BTreeMap<u64, Entry>>>;

fn lock(entries: &Entries) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
    // Every mutation is a single insert/remove/split, so a panic elsewhere
    // cannot leave the map half-updated.
    entries.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_range<RB: RangeBounds<u64>>(entries: &Entries, range: RB) -> Vec<Entry> {
    lock(entries).range(range).map(|(_, e)| e.clone()).collect()
}

/// The vote to start with.
///
/// A leader reports its own appends flushed before their `fdatasync` (see
/// [`super::durability`]), so after a power cut its log may lack entries
/// that followers hold under its leader id. Resuming leadership in that term
/// (openraft 0.9 restores the leader of a committed vote at start) would
/// hand out the same log ids again for different entries. A process crash
/// loses nothing (the page cache keeps what was written, and the WAL syncs
/// it at open), so only a log last opened in another boot of the machine,
/// or in an unknown one, loses its leadership: the vote stays, but no longer
/// counts as committed, so the replica campaigns in a new term. The demoted
/// vote is saved before the boot id, so a crash in between cannot bring the
/// old one back.
fn vote_for_this_boot(
    dir: &Path,
    id: NodeId,
    vote: Option<Vote>,
) -> Result<Option<Vote>, StorageOpenError> {
    let boot = current_boot_id();
    let stored: Option<String> = meta_file::load(dir, BOOT_FILE)?;
    if boot.is_some() && stored == boot {
        return Ok(vote);
    }
    let vote = match vote {
        Some(v) if leads(&v, id) => {
            let demoted = Vote::new(v.leader_id().term, id);
            tracing::warn!(
                vote = %v,
                "log last opened in another boot (unsynced entries may be lost): \
                 not resuming leadership of that term"
            );
            meta_file::save(dir, VOTE_FILE, &demoted)
                .map_err(|e| StorageOpenError::io("save", &dir.join(VOTE_FILE), e))?;
            Some(demoted)
        }
        other => other,
    };
    if let Some(boot) = &boot {
        meta_file::save(dir, BOOT_FILE, boot)
            .map_err(|e| StorageOpenError::io("save", &dir.join(BOOT_FILE), e))?;
    }
    Ok(vote)
}

/// Whether `vote` is a committed leadership of replica `id`: what openraft
/// 0.9 resumes at start, and what lets its appends be reported early.
fn leads(vote: &Vote, id: NodeId) -> bool {
    vote.is_committed() && vote.leader_id().voted_for() == Some(id)
}

/// Linux's id of the current boot; `None` where there is none.
fn current_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A cheap, cloneable reader over the in-memory log (for replication tasks).
#[derive(Clone)]
pub struct LogReader {
    entries: Entries,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.entries, range))
    }
}

type Done = oneshot::Sender<io::Result<()>>;

/// One unit of disk work, executed strictly in queue order.
enum Op {
    Append {
        records: Vec<(u64, Vec<u8>)>,
        last: Option<LogId>,
        /// Report the flush once written, before the `fdatasync`.
        early: bool,
        callback: LogFlushed<TypeConfig>,
    },
    Truncate {
        from: u64,
        /// The entry before `from`, which is the last one after truncating.
        keep: Option<LogId>,
        done: Done,
    },
    /// Nobody waits for a purge (see [`LogStore::purge`]); `removed` are
    /// the purged entries, freed by the [`Purger`] rather than on the Raft
    /// core.
    Purge {
        upto: LogId,
        removed: BTreeMap<u64, Entry>,
    },
    SaveVote {
        vote: Vote,
        done: Done,
    },
}

/// The Raft log store. See the module docs.
pub struct LogStore {
    /// This replica: its own entries, as leader, are reported flushed early.
    id: NodeId,
    entries: Entries,
    vote: Option<Vote>,
    last_purged: Option<LogId>,
    durability: Durability,
    /// `None` in memory mode.
    writer: Option<WriterHandle>,
}

struct WriterHandle {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogStore {
    /// Lets the writer finish everything already queued before the store is
    /// gone.
    fn drop(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            w.tx.take();
            if let Some(t) = w.thread.take() {
                if t.join().is_err() {
                    tracing::error!("log writer thread panicked");
                }
            }
        }
    }
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_logs(openraft::AnyError::error(e)),
    }
}

impl LogStore {
    /// A log that lives only in memory.
    pub fn new_memory(id: NodeId) -> LogStore {
        LogStore {
            id,
            entries: Arc::default(),
            vote: None,
            last_purged: None,
            durability: Durability::always(),
            writer: None,
        }
    }

    /// Opens and recovers the log of replica `id` in `dir` and starts its
    /// writer thread.
    pub fn open(dir: &Path, id: NodeId) -> Result<LogStore, StorageOpenError> {
        let started = std::time::Instant::now();
        let vote = vote_for_this_boot(dir, id, meta_file::load(dir, VOTE_FILE)?)?;
        let last_purged: Option<LogId> = meta_file::load(dir, PURGED_FILE)?;
        let log_dir = dir.join(LOG_DIR);
        let mut map = BTreeMap::new();
        let mut prev: Option<u64> = None;
        let corrupt = |reason: String| StorageOpenError::Corrupt {
            path: log_dir.clone(),
            offset: 0,
            reason,
        };
        let mut wal = Wal::open(&log_dir, DEFAULT_SEGMENT_LIMIT, |index, payload| {
            if let Some(p) = prev.filter(|p| p + 1 != index) {
                return Err(corrupt(format!(
                    "hole in the log: entry {p} is followed by {index}"
                )));
            }
            prev = Some(index);
            let entry: Entry = postcard::from_bytes(payload)
                .map_err(|e| corrupt(format!("log entry {index} does not decode: {e}")))?;
            if entry.log_id.index != index {
                return Err(corrupt(format!(
                    "record {index} holds entry {}",
                    entry.log_id
                )));
            }
            map.insert(index, entry);
            Ok(())
        })?;
        if let Some(p) = &last_purged {
            // Purged entries that the log still holds: those of the segment
            // a purge split (kept whole), or of a purge interrupted after
            // `purged` was written.
            if map.first_key_value().is_some_and(|(i, _)| *i <= p.index) {
                tracing::debug!(purged = %p, "skipping purged log entries");
                map.retain(|i, _| *i > p.index);
                wal.purge_upto(p.index)
                    .map_err(|e| StorageOpenError::io("purge", &log_dir, e))?;
            }
            if let Some((first, _)) = map.first_key_value() {
                if *first != p.index + 1 {
                    return Err(StorageOpenError::Corrupt {
                        path: log_dir.clone(),
                        offset: 0,
                        reason: format!(
                            "log starts at index {first} but the last purged entry is {}",
                            p.index
                        ),
                    });
                }
            }
        }
        let last = map.last_key_value().map(|(_, e)| e.log_id);
        tracing::info!(
            dir = %dir.display(),
            entries = map.len(),
            first_index = map.first_key_value().map(|(i, _)| *i),
            last_log_id = ?last,
            last_purged = ?last_purged,
            vote = ?vote,
            took_ms = started.elapsed().as_millis(),
            "raft log recovered"
        );

        let (tx, rx) = mpsc::channel();
        let (durability_writer, durability) = durability::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            wal,
            last_written: last.or(last_purged),
            durability: durability_writer,
            failed: None,
            purger: Purger::spawn(dir)
                .map_err(|e| StorageOpenError::io("spawn log purger thread for", dir, e))?,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageOpenError::io("spawn writer thread for", dir, e))?;
        Ok(LogStore {
            id,
            entries: Arc::new(Mutex::new(map)),
            vote,
            last_purged,
            durability,
            writer: Some(WriterHandle {
                tx: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// A reader over the in-memory log.
    pub fn reader(&self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    /// What of this log is durable, for the state machine and the network.
    pub fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// Whether `entries` are this replica's own, appended as the leader of
    /// its committed vote: only those may be reported flushed early.
    fn own_as_leader(&self, entries: &[Entry]) -> bool {
        self.vote.is_some_and(|v| {
            leads(&v, self.id) && entries.iter().all(|e| e.log_id.leader_id == *v.leader_id())
        })
    }

    // StorageError is openraft's type; every trait method returns it anyway.
    #[allow(clippy::result_large_err)]
    fn send(&self, op: Op) -> Result<(), StorageError> {
        let Some(tx) = self.writer.as_ref().and_then(|w| w.tx.as_ref()) else {
            return Err(write_err("log writer is not running"));
        };
        tx.send(op)
            .map_err(|_| write_err("log writer thread has stopped"))
    }

    /// Queues `make(done)` and waits for the writer to finish it. A no-op in
    /// memory mode.
    async fn run_op(&self, make: impl FnOnce(Done) -> Op) -> Result<(), StorageError> {
        if self.writer.is_none() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        self.send(make(done))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_err(e)),
            Err(_) => Err(write_err("log writer dropped a request")),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_range(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last = lock(&self.entries).last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: last.or(self.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let v = *vote;
        self.run_op(|done| Op::SaveVote { vote: v, done })
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::write_vote(&e),
            })?;
        self.vote = Some(v);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id);
        let early = self.own_as_leader(&entries);
        let records = if self.writer.is_some() {
            let mut records = Vec::with_capacity(entries.len());
            for e in &entries {
                let bytes = postcard::to_stdvec(e).map_err(|err| StorageError::IO {
                    source: StorageIOError::write_log_entry(e.log_id, &err),
                })?;
                records.push((e.log_id.index, bytes));
            }
            Some(records)
        } else {
            None
        };
        {
            let mut map = lock(&self.entries);
            for e in entries {
                map.insert(e.log_id.index, e);
            }
        }
        match records {
            Some(records) => self.send(Op::Append {
                records,
                last,
                early,
                callback,
            })?,
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let keep = {
            let mut map = lock(&self.entries);
            map.split_off(&log_id.index);
            map.last_key_value().map(|(_, e)| e.log_id)
        };
        let keep = keep.or(self.last_purged);
        let from = log_id.index;
        self.run_op(|done| Op::Truncate { from, keep, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if self.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        // openraft's core awaits this, so it only queues the purge behind
        // the writes before it: the core need not wait for files to be
        // deleted. A purge a crash loses leaves entries the state store
        // holds already, which is harmless.
        self.last_purged = Some(log_id);
        let removed = {
            let mut map = lock(&self.entries);
            let keep = map.split_off(&(log_id.index + 1));
            std::mem::replace(&mut *map, keep)
        };
        if self.writer.is_some() {
            self.send(Op::Purge {
                upto: log_id,
                removed,
            })?;
        }
        Ok(())
    }
}

/// Owns the WAL and the small files; runs on the writer thread.
struct Writer {
    dir: PathBuf,
    wal: Wal,
    /// The last entry written (and synced, between batches).
    last_written: Option<LogId>,
    durability: DurabilityWriter,
    /// After any I/O error the on-disk state is unknown: refuse everything.
    failed: Option<String>,
    purger: Purger,
}

/// Purges off the writer thread, in order: the segments a purge detached
/// from the log (see [`Wal::detach_purged`]) are deleted after the purged
/// id is durable, so a crash in between leaves entries that recovery skips
/// and never a hole. Appends go on meanwhile: with the purge on the writer
/// thread, its deletes and fsyncs, on five replicas at once, held sends
/// for up to 187 ms (BENCHMARKS.md, "History on disk").
struct Purger {
    tx: Option<mpsc::Sender<PurgeJob>>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<Mutex<Option<String>>>,
}

struct PurgeJob {
    upto: LogId,
    segments: Vec<PathBuf>,
    removed: BTreeMap<u64, Entry>,
}

impl Purger {
    fn spawn(dir: &Path) -> io::Result<Purger> {
        let (tx, rx) = mpsc::channel::<PurgeJob>();
        let failed = Arc::new(Mutex::new(None));
        let (dir, log_dir, seen) = (dir.to_path_buf(), dir.join(LOG_DIR), failed.clone());
        let thread = std::thread::Builder::new()
            .name("raft-log-purger".into())
            .spawn(move || {
                for job in rx {
                    drop(job.removed);
                    if failure(&seen).is_some() {
                        continue;
                    }
                    let r = meta_file::save(&dir, PURGED_FILE, &job.upto)
                        .and_then(|()| wal::delete_segments(&log_dir, &job.segments));
                    if let Err(e) = r {
                        tracing::error!(error = %e, "log purge failed");
                        *failure(&seen) = Some(e.to_string());
                    }
                }
            })?;
        Ok(Purger {
            tx: Some(tx),
            thread: Some(thread),
            failed,
        })
    }

    fn send(&self, job: PurgeJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    fn failed(&self) -> Option<String> {
        failure(&self.failed).clone()
    }
}

fn failure(failed: &Mutex<Option<String>>) -> MutexGuard<'_, Option<String>> {
    failed.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Purger {
    /// Finishes the queued purges: whoever opens the log next sees them.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("log purger thread panicked");
            }
        }
    }
}

/// Queued appends merged into one write and one `fdatasync`.
#[derive(Default)]
struct Appends {
    records: Vec<(u64, Vec<u8>)>,
    last: Option<LogId>,
    /// Callbacks to fire once written (the leader's own entries).
    early: Vec<LogFlushed<TypeConfig>>,
    /// Callbacks to fire once synced.
    synced: Vec<LogFlushed<TypeConfig>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        loop {
            let Ok(first) = rx.recv() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_OPS {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.failed.clone().or_else(|| self.purger.failed()) {
            None => Ok(()),
            Some(msg) => Err(io::Error::other(format!(
                "log storage failed earlier: {msg}"
            ))),
        }
    }

    fn note(&mut self, r: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &r {
            tracing::error!(error = %e, "log storage write failed");
            self.failed.get_or_insert_with(|| e.to_string());
            self.durability.failed();
        }
        r
    }

    fn process(&mut self, batch: Vec<Op>) {
        let mut appends = Appends::default();
        for op in batch {
            if let Op::Append {
                records,
                last,
                early,
                callback,
            } = op
            {
                appends.records.extend(records);
                appends.last = last.or(appends.last);
                if early {
                    appends.early.push(callback);
                } else {
                    appends.synced.push(callback);
                }
                continue;
            }
            self.flush_appends(&mut appends);
            match op {
                Op::Append { .. } => {}
                Op::Truncate { from, keep, done } => {
                    let r = self.check().and_then(|_| self.wal.truncate_from(from));
                    if r.is_ok() {
                        self.last_written = keep;
                    }
                    let _ = done.send(self.note(r));
                }
                Op::Purge { upto, removed } => {
                    match self
                        .check()
                        .and_then(|_| self.wal.detach_purged(upto.index))
                    {
                        Ok(segments) => self.purger.send(PurgeJob {
                            upto,
                            segments,
                            removed,
                        }),
                        // A failure refuses every later write.
                        Err(e) => {
                            let _ = self.note(Err(e));
                        }
                    }
                }
                Op::SaveVote { vote, done } => {
                    let r = self
                        .check()
                        .and_then(|_| meta_file::save(&self.dir, VOTE_FILE, &vote));
                    let _ = done.send(self.note(r));
                }
            }
        }
        self.flush_appends(&mut appends);
    }

    /// One write, then the early callbacks, then one `fdatasync`, then the
    /// others. See [`super::durability`] for why early is safe.
    fn flush_appends(&mut self, appends: &mut Appends) {
        let Appends {
            records,
            last,
            early,
            synced,
        } = std::mem::take(appends);
        if early.is_empty() && synced.is_empty() {
            return;
        }
        let first = records.first().map(|(i, _)| *i);
        let written = self.check().and_then(|_| self.wal.write(&records));
        let written = self.note(written);
        if let (Ok(()), Some(first), false) = (&written, first, early.is_empty()) {
            // Before the callbacks: whatever they let happen must see this.
            self.durability.begin_unsynced(Unsynced {
                first,
                durable: self.last_written,
            });
        }
        let mut callbacks = synced;
        match &written {
            Ok(()) => early.into_iter().for_each(|cb| cb.log_io_completed(Ok(()))),
            Err(_) => callbacks.extend(early),
        }
        let r = written.and_then(|_| {
            let r = self.wal.sync();
            self.note(r)
        });
        if r.is_ok() {
            self.last_written = last.or(self.last_written);
            self.durability.synced();
        }
        for cb in callbacks {
            cb.log_io_completed(match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::command::Batch;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Batch {
                ts_ms: index,
                proposals: vec![],
            }),
        }
    }

    #[tokio::test]
    async fn memory_mode_basics() {
        let mut s = LogStore::new_memory(1);
        s.blocking_append((0..5).map(|i| entry(1, i)))
            .await
            .unwrap();
        s.purge(log_id(1, 1)).await.unwrap();
        s.truncate(log_id(1, 4)).await.unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(st.last_log_id, Some(log_id(1, 3)));
        let got = s.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn disk_reopen_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 2);
        {
            let mut s = LogStore::open(dir.path(), 1).unwrap();
            s.blocking_append((0..10).map(|i| entry(1, i)))
                .await
                .unwrap();
            s.blocking_append((10..20).map(|i| entry(2, i)))
                .await
                .unwrap();
            s.truncate(log_id(2, 15)).await.unwrap();
            s.save_vote(&vote).await.unwrap();
        }
        {
            let mut s = LogStore::open(dir.path(), 1).unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, None);
            assert_eq!(st.last_log_id, Some(log_id(2, 14)));
            assert_eq!(s.read_vote().await.unwrap(), Some(vote));
            let mut want: Vec<Entry> = (0..10).map(|i| entry(1, i)).collect();
            want.extend((10..15).map(|i| entry(2, i)));
            assert_eq!(s.try_get_log_entries(..).await.unwrap(), want);
            s.purge(log_id(1, 6)).await.unwrap();
            s.blocking_append([entry(3, 15)]).await.unwrap();
        }
        {
            let mut s = LogStore::open(dir.path(), 1).unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(log_id(1, 6)));
            assert_eq!(st.last_log_id, Some(log_id(3, 15)));
            let got = s.try_get_log_entries(..).await.unwrap();
            assert_eq!(got.first().map(|e| e.log_id), Some(log_id(1, 7)));
            assert_eq!(got.len(), 9);
            // Purge past the end (as after installing a snapshot).
            s.purge(log_id(4, 30)).await.unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(log_id(4, 30)));
            s.blocking_append([entry(4, 31)]).await.unwrap();
        }
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(4, 30)));
        assert_eq!(st.last_log_id, Some(log_id(4, 31)));
    }

    #[tokio::test]
    async fn a_leader_from_another_boot_does_not_resume_its_term() {
        let dir = tempfile::tempdir().unwrap();
        let led = Vote::new_committed(4, 1);
        {
            let mut s = LogStore::open(dir.path(), 1).unwrap();
            s.save_vote(&led).await.unwrap();
        }
        // Same boot: a process crash lost nothing, the leader resumes.
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(led));
        drop(s);
        // Another boot: the vote stays, but not as a committed leadership,
        // and that is on disk before the new boot id.
        meta_file::save(dir.path(), BOOT_FILE, &"an earlier boot".to_string()).unwrap();
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
        drop(s);
        let saved: Option<Vote> = meta_file::load(dir.path(), VOTE_FILE).unwrap();
        assert_eq!(saved, Some(Vote::new(4, 1)));
        // A follower's committed vote (another leader's) is kept as it is.
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        let followed = Vote::new_committed(5, 2);
        s.save_vote(&followed).await.unwrap();
        drop(s);
        meta_file::save(dir.path(), BOOT_FILE, &"an earlier boot".to_string()).unwrap();
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(followed));
    }

    #[tokio::test]
    async fn the_leaders_own_entries_become_durable_for_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        assert!(s.own_as_leader(&[entry(1, 0)]));
        assert!(!s.own_as_leader(&[entry(2, 0)]), "another term's entries");
        s.blocking_append((0..5).map(|i| entry(1, i)))
            .await
            .unwrap();
        let durability = s.durability();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            durability.wait_durable(4),
        )
        .await
        .expect("the early-reported entries were synced")
        .unwrap();
        assert_eq!(
            durability.cap_commit(Some(log_id(1, 4))),
            Some(log_id(1, 4))
        );
        drop(s);
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        assert_eq!(s.try_get_log_entries(..).await.unwrap().len(), 5);
    }

    /// Time of 1,000 single-entry fsynced appends, awaited one by one.
    /// `cargo test -p raftchat-server --lib storage -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn bench_single_entry_appends() {
        let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        let mut s = LogStore::open(dir.path(), 1).unwrap();
        let start = std::time::Instant::now();
        for i in 0..1000 {
            s.blocking_append([entry(1, i)]).await.unwrap();
        }
        let el = start.elapsed();
        println!(
            "1000 single-entry fsynced appends: {el:?} ({:?} each)",
            el / 1000
        );
    }
}
