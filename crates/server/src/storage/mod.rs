//! Raft log and state-machine storage, in memory or on disk.
//!
//! [`open`] returns a [`LogStore`] (openraft `RaftLogStorage`) and a
//! [`StateStore`] (openraft `RaftStateMachine`). With `dir = None` everything
//! lives in memory (tests, throwaway clusters). With a directory, the replica
//! survives crashes: the log, the vote and the applied state are on disk.
//! The applied state lives in the history store (`disk_store`, a redb
//! file), which reopens on start at its last checkpoint; openraft then
//! re-applies the log entries after it, once the leader says they are
//! committed.
//!
//! # On-disk layout
//!
//! ```text
//! DIR/vote            current vote                      (small file, fsynced)
//! DIR/boot            boot id of the machine session that last opened the log
//! DIR/purged          last purged log id                (small file, fsynced)
//! DIR/incarnation     this storage's random id          (small file; `server::incarnation`)
//! DIR/log/NNN….seg    the log: segments named by their first index (see `wal`)
//! DIR/state.redb      the applied state at its last checkpoint: history,
//!                     remembered request ids, and the rest of the chat state
//!                     with last_applied and membership (see `disk_store`);
//!                     and this replica's search index (`search_index`)
//! DIR/state.redb.new  a received snapshot being loaded (removed at start)
//! DIR/snapshot-dump-ID  the newest snapshot as sent to followers, written
//!                     when one first needs it (not synced; removed at start)
//! ```
//!
//! *Small files* are `[magic "RCF1"][len u32][crc32 u32][postcard payload]`,
//! replaced by write `NAME.tmp` → fsync → rename → fsync dir.
//!
//! *Log records* are `[len u32][crc32 u32 over index++payload][index u64][payload]`,
//! all little-endian, where the payload is a postcard-encoded
//! `openraft::Entry<TypeConfig>`. Segments roll at 64 MiB.
//!
//! *Snapshot data*, sent to followers (and in memory mode kept in RAM), is
//! described in `snapshot_data`: a format byte, the applied state without
//! its history, then the history's records. Data of earlier formats, and a
//! `DIR/snapshots/` of earlier releases, are refused with a message saying
//! what to do.
//!
//! # Fsync points
//!
//! * Log append: one `write` + `fdatasync` per batch of queued appends, on a
//!   dedicated writer thread. A follower's entries are reported flushed
//!   (which is what lets openraft count it toward a commit majority) only
//!   after that `fdatasync` returned. The leader's own entries are reported
//!   once written, so its `fdatasync` overlaps the followers'; applying them
//!   waits for it, and so does telling followers they are committed (see
//!   [`durability`]).
//! * Open: the last log segment is `fdatasync`ed before anything is read
//!   from it as durable (a killed leader may have left written, unsynced
//!   records in the page cache). A leader whose log was last opened in
//!   another boot (a power cut may have lost such records) does not resume
//!   its term: its vote is saved as not committed before the new boot id.
//! * Vote: fsynced (file and directory) before `save_vote` returns, because a
//!   forgotten vote could let the replica vote twice in a term.
//! * Truncate: complete (with fsyncs) before returning.
//! * Purge: queued behind the writes before it, and not waited for
//!   (openraft's core waits for `purge`). It deletes the segments holding
//!   only purged entries; the segment it splits stays whole until a later
//!   purge passes it. The purged log id is made durable *before* any
//!   segment is deleted; a purge lost in a crash only leaves entries that
//!   the history store's checkpoint holds.
//! * Committed log id: written through the same ordered writer, after the
//!   entries it refers to, coalesced to at most one write per ~20 ms. Losing
//!   the latest value only means re-applying fewer entries at start.
//! * Checkpoint: one durable redb transaction holding the history's
//!   changes since the last one and the applied state they belong to. One
//!   runs when the changes waiting in RAM reach the replica's threshold
//!   (`checkpoint_bytes`, staggered by id around `CHECKPOINT_BYTES`).
//!   `build_snapshot` returns the newest checkpoint openraft was not yet
//!   told of, or writes one first: the log a snapshot covers, which
//!   openraft may purge, is always in a durable checkpoint.
//! * Install: the received snapshot is loaded into `state.redb.new`
//!   (durable commit), renamed over `state.redb` and the directory fsynced
//!   before `install_snapshot` returns.
//! * Every create/rename/delete is followed by an fsync of the directory.
//!
//! # Recovery rules
//!
//! * A torn write at the end of the last log segment (record running past EOF,
//!   bad checksum on a final record ending exactly at EOF, or an all-zero
//!   remainder) is logged with `warn` and cut off. Such a record was never
//!   acknowledged, since acknowledgement waits for the fsync.
//! * Any other damage (bad checksum followed by more data, index gap or
//!   disorder, damage in an earlier segment, a corrupt small file or
//!   history store, a log that does not start right after the purged id) is a hard
//!   error naming the file and byte offset. Nothing is silently dropped.
//! * Leftovers of interrupted operations are cleaned up: `*.tmp` files, and a
//!   segment overlapped by its rewritten tail from an interrupted purge of
//!   an earlier release, which rewrote the segment a purge split.
//! * Log entries at or below the persisted purged id are skipped (those of
//!   a split segment, or of an interrupted purge).

mod disk_store;
pub mod durability;
pub mod events;
mod log_store;
mod meta_file;
#[cfg(any(test, feature = "fault-injection"))]
pub mod power_cut;
pub mod raft_types;
mod request_window;
mod search_index;
mod snapshot_body;
mod snapshot_data;
mod state_store;
mod wal;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use log_store::{LogReader, LogStore};
pub use snapshot_body::SnapshotBody;
pub use state_store::{AppliedState, SharedState, SnapshotBuilder, StateStore, CHECKPOINT_BYTES};

use crate::storage::events::EventHub;
use crate::storage::raft_types::NodeId;

/// Why storage could not be opened. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageOpenError {
    #[error("storage I/O error: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("history store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("storage file {} was written by an earlier chatd: {reason}", path.display())]
    Outdated { path: PathBuf, reason: String },
    #[error("corrupt storage file {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// Reads one of `dir`'s small checksummed files (the layout of `vote`);
/// `None` if it does not exist.
pub fn load_small_file<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, StorageOpenError> {
    meta_file::load(dir, name)
}

/// Atomically and durably writes one of `dir`'s small checksummed files.
pub fn save_small_file<T: serde::Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), StorageOpenError> {
    meta_file::save(dir, name, value).map_err(|e| StorageOpenError::io("write", &dir.join(name), e))
}

/// Nice 10 for the calling thread (on Linux a thread has its own nice
/// value), for background work that must not delay the Raft core on a
/// busy machine: checkpoints, password hashing. Best effort: failing
/// leaves normal priority.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl StorageOpenError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        StorageOpenError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens (creating if missing) the storage of replica `id`. `None` keeps
/// everything in memory. In disk mode the history store opens at its last
/// checkpoint (see [`StateStore::open`]) and `hub` is reset to its event
/// seq.
///
/// Opening reads and recovers the whole log synchronously; it is meant to run
/// once at startup.
pub async fn open(
    dir: Option<PathBuf>,
    id: NodeId,
    hub: Arc<EventHub>,
) -> Result<(LogStore, StateStore), StorageOpenError> {
    match dir {
        None => Ok((LogStore::new_memory(id), StateStore::new_memory(hub))),
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| StorageOpenError::io("create dir", &dir, e))?;
            let log = LogStore::open(&dir, id)?;
            let sm = StateStore::open(&dir, id, hub)?.gated_on(log.durability());
            // Make the (possibly just created) directories themselves durable.
            meta_file::sync_dir(&dir).map_err(|e| StorageOpenError::io("fsync dir", &dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                meta_file::sync_dir(parent)
                    .map_err(|e| StorageOpenError::io("fsync dir", parent, e))?;
            }
            Ok((log, sm))
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::storage::raft_types::{StorageError, TypeConfig};

    fn to_storage_error(e: StorageOpenError) -> StorageError {
        StorageError::IO {
            source: openraft::StorageIOError::write(&e),
        }
    }

    struct MemoryBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateStore, ()> for MemoryBuilder {
        async fn build(&self) -> Result<((), LogStore, StateStore), StorageError> {
            let (log, sm) = open(None, 1, EventHub::new(1024))
                .await
                .map_err(to_storage_error)?;
            Ok(((), log, sm))
        }
    }

    struct DiskBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateStore, tempfile::TempDir> for DiskBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateStore), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| StorageError::IO {
                source: openraft::StorageIOError::write(&e),
            })?;
            let (log, sm) = open(Some(dir.path().join("node")), 1, EventHub::new(1024))
                .await
                .map_err(to_storage_error)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_suite_memory() {
        Suite::test_all(MemoryBuilder).unwrap();
    }

    #[test]
    fn openraft_suite_disk() {
        Suite::test_all(DiskBuilder).unwrap();
    }
}
