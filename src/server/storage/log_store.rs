//! The Raft log: every non-purged entry in memory (so reads never touch the
//! disk), mirrored to the [`Wal`] for durability.
//!
//! Disk writes run on one dedicated writer thread fed by an ordered channel,
//! which satisfies openraft's rule that all log and vote I/O is serialized.
//! `append` returns once its entries are in memory and queued; the flush
//! callback fires from the writer thread after `fdatasync`. Consecutive
//! queued appends are merged into a single write + fdatasync (group commit).

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

use super::meta_file;
use super::wal::{Wal, DEFAULT_SEGMENT_LIMIT};
use super::StorageOpenError;
use crate::server::raft_types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_FILE: &str = "vote";
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
        callback: LogFlushed<TypeConfig>,
    },
    Truncate {
        from: u64,
        done: Done,
    },
    Purge {
        upto: LogId,
        done: Done,
    },
    SaveVote {
        vote: Vote,
        done: Done,
    },
}

/// The Raft log store. See the module docs.
pub struct LogStore {
    entries: Entries,
    vote: Option<Vote>,
    last_purged: Option<LogId>,
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
    pub fn new_memory() -> LogStore {
        LogStore {
            entries: Arc::default(),
            vote: None,
            last_purged: None,
            writer: None,
        }
    }

    /// Opens and recovers the log in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<LogStore, StorageOpenError> {
        let started = std::time::Instant::now();
        let vote: Option<Vote> = meta_file::load(dir, VOTE_FILE)?;
        let last_purged: Option<LogId> = meta_file::load(dir, PURGED_FILE)?;
        let log_dir = dir.join(LOG_DIR);
        let (mut wal, records) = Wal::open(&log_dir, DEFAULT_SEGMENT_LIMIT)?;

        let mut map = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for (index, payload) in records {
            if prev.is_some_and(|p| p + 1 != index) {
                return Err(StorageOpenError::Corrupt {
                    path: log_dir.clone(),
                    offset: 0,
                    reason: format!(
                        "hole in the log: entry {} is followed by {index}",
                        prev.unwrap_or_default()
                    ),
                });
            }
            prev = Some(index);
            let entry: Entry =
                postcard::from_bytes(&payload).map_err(|e| StorageOpenError::Corrupt {
                    path: log_dir.clone(),
                    offset: 0,
                    reason: format!("log entry {index} does not decode: {e}"),
                })?;
            if entry.log_id.index != index {
                return Err(StorageOpenError::Corrupt {
                    path: log_dir.clone(),
                    offset: 0,
                    reason: format!("record {index} holds entry {}", entry.log_id),
                });
            }
            map.insert(index, entry);
        }
        if let Some(p) = &last_purged {
            // Finish a purge that was interrupted after `purged` was written.
            if map.first_key_value().is_some_and(|(i, _)| *i <= p.index) {
                tracing::info!(purged = %p, "finishing interrupted log purge");
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
        let writer = Writer {
            dir: dir.to_path_buf(),
            wal,
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageOpenError::io("spawn writer thread for", dir, e))?;
        Ok(LogStore {
            entries: Arc::new(Mutex::new(map)),
            vote,
            last_purged,
            writer: Some(WriterHandle {
                tx: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// The vote this log was opened with.
    pub fn vote(&self) -> Option<Vote> {
        self.vote
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
        LogReader {
            entries: self.entries.clone(),
        }
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
            Some(records) => self.send(Op::Append { records, callback })?,
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut map = lock(&self.entries);
            map.split_off(&log_id.index);
        }
        let from = log_id.index;
        self.run_op(|done| Op::Truncate { from, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if self.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        self.run_op(|done| Op::Purge { upto: log_id, done }).await?;
        self.last_purged = Some(log_id);
        let mut map = lock(&self.entries);
        let keep = map.split_off(&(log_id.index + 1));
        *map = keep;
        Ok(())
    }
}

/// Owns the WAL and the small files; runs on the writer thread.
struct Writer {
    dir: PathBuf,
    wal: Wal,
    /// After any I/O error the on-disk state is unknown: refuse everything.
    failed: Option<String>,
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
        match &self.failed {
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
        }
        r
    }

    fn process(&mut self, batch: Vec<Op>) {
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut callbacks: Vec<LogFlushed<TypeConfig>> = Vec::new();
        for op in batch {
            if let Op::Append {
                records: r,
                callback,
            } = op
            {
                records.extend(r);
                callbacks.push(callback);
                continue;
            }
            self.flush_appends(&mut records, &mut callbacks);
            match op {
                Op::Append { .. } => {}
                Op::Truncate { from, done } => {
                    let r = self.check().and_then(|_| self.wal.truncate_from(from));
                    let _ = done.send(self.note(r));
                }
                Op::Purge { upto, done } => {
                    let r = self.check().and_then(|_| self.purge(upto));
                    let _ = done.send(self.note(r));
                }
                Op::SaveVote { vote, done } => {
                    let r = self
                        .check()
                        .and_then(|_| meta_file::save(&self.dir, VOTE_FILE, &vote));
                    let _ = done.send(self.note(r));
                }
            }
        }
        self.flush_appends(&mut records, &mut callbacks);
    }

    /// Purged id first, then the records: a crash in between is finished on
    /// the next open, and the log never looks like it has a hole.
    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        meta_file::save(&self.dir, PURGED_FILE, &upto)?;
        self.wal.purge_upto(upto.index)
    }

    fn flush_appends(
        &mut self,
        records: &mut Vec<(u64, Vec<u8>)>,
        callbacks: &mut Vec<LogFlushed<TypeConfig>>,
    ) {
        if callbacks.is_empty() {
            return;
        }
        let r = self.check().and_then(|_| self.wal.append(records));
        let r = self.note(r);
        records.clear();
        for cb in callbacks.drain(..) {
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
    use crate::server::command::Batch;
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
        let mut s = LogStore::new_memory();
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
            let mut s = LogStore::open(dir.path()).unwrap();
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
            let mut s = LogStore::open(dir.path()).unwrap();
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
            let mut s = LogStore::open(dir.path()).unwrap();
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
        let mut s = LogStore::open(dir.path()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(4, 30)));
        assert_eq!(st.last_log_id, Some(log_id(4, 31)));
    }

    /// Time of 1,000 single-entry fsynced appends, awaited one by one.
    /// `cargo test --lib server::storage -- --ignored --nocapture`
    #[tokio::test]
    #[ignore]
    async fn bench_single_entry_appends() {
        let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
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
