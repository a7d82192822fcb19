//! The state machine side: applies committed entries to the [`ChatState`],
//! publishes the resulting events, and builds, serves and installs
//! snapshots.
//!
//! *Memory mode* keeps the history in a [`MemoryStore`]; a snapshot is the
//! whole state encoded in RAM.
//!
//! *Disk mode* keeps it in a [`DiskStore`] (`DIR/state.redb`), which apply
//! writes in RAM. A *checkpoint* writes those changes, with the rest of the
//! applied state, to the file in one durable transaction on a blocking
//! thread while apply goes on. One runs when the changes reach the
//! replica's [`checkpoint_bytes`]. A snapshot *is* a checkpoint, durable
//! before openraft may purge the log it covers: building one returns the
//! newest checkpoint, or writes one if openraft already knows that one. A restart opens the file at its last checkpoint and openraft
//! re-applies the log after it, so its cost does not grow with the history.
//! A follower that needs a snapshot is sent a dump of the newest checkpoint,
//! written when streaming starts; a replica receiving one writes the chunks
//! to an unnamed file, loads them into `state.redb.new` and renames that
//! over `state.redb`.

// StorageError is openraft's type, large; every trait method returns it
// anyway.
#![allow(clippy::result_large_err)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use tokio::sync::oneshot;

use super::disk_store::{Checkpoint, DiskStore, View};
use super::durability::Durability;
use super::meta_file::sync_dir;
use super::snapshot_body::SnapshotBody;
use super::snapshot_data::{self, Applied};
use super::StorageOpenError;
use crate::state::command::CommandResult;
use crate::state::ChatState;
use crate::storage::events::EventHub;
use crate::storage::raft_types::{
    Entry, LogId, NodeId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// The history store's file in the storage directory.
const STATE_FILE: &str = "state.redb";
/// A received snapshot, loaded and about to replace [`STATE_FILE`].
const INCOMING_FILE: &str = "state.redb.new";
/// Where releases before the history store kept whole-state snapshots.
const OLD_SNAPSHOT_DIR: &str = "snapshots";
/// Names of snapshot dumps for followers, by snapshot id.
const DUMP_PREFIX: &str = "snapshot-dump-";

/// Changes (roughly, in bytes) that wait in RAM before a checkpoint writes
/// them, on average over replicas (see [`checkpoint_bytes`]). Bounds both
/// the replica's RAM and the log a restart re-applies; at twice a replica's
/// threshold, apply waits for the running checkpoint.
pub const CHECKPOINT_BYTES: usize = 32 << 20;

/// Replica `id`'s checkpoint threshold: 83 % to 117 % of
/// [`CHECKPOINT_BYTES`] by id. Replicas apply the same entries, so with
/// one threshold all five wrote their checkpoints at once, and on a shared
/// disk the burst held every follower's log flush (and so every commit)
/// long enough for an election.
pub fn checkpoint_bytes(id: NodeId) -> usize {
    CHECKPOINT_BYTES / 12 * (10 + (id % 5) as usize)
}

/// Everything applied so far. Readers (the gRPC services) take the read lock
/// briefly and never hold it across an `.await`.
#[derive(Debug, Default)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub chat: ChatState,
}

pub type SharedState = Arc<RwLock<AppliedState>>;

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_state_machine(openraft::AnyError::error(e)),
    }
}

fn snapshot_read_err(meta: Option<&SnapshotMeta>, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_snapshot(
            meta.map(|m| m.signature()),
            &io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        ),
    }
}

/// The meta of a snapshot of the state at `last_applied`. Its id names
/// the log id, so two snapshots with one id hold the same state.
fn snapshot_meta(last_applied: Option<LogId>, membership: StoredMembership) -> SnapshotMeta {
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "0-none".to_string(),
    };
    SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id,
    }
}

/// Memory mode's latest snapshot, kept whole.
type MemorySnapshot = Arc<Mutex<Option<(SnapshotMeta, Arc<Vec<u8>>)>>>;

/// Where snapshots come from.
#[derive(Clone)]
enum Mode {
    Memory(MemorySnapshot),
    Disk(Arc<Checkpoints>),
}

/// A checkpoint's outcome, once written.
type Written = oneshot::Receiver<Result<(), String>>;

/// A checkpoint for the writer thread, and where its outcome goes.
type Job = (Checkpoint, Vec<u8>, oneshot::Sender<Result<(), String>>);

/// Disk mode's checkpoints, one at a time (see the module docs).
struct Checkpoints {
    dir: PathBuf,
    state: SharedState,
    /// The checkpoint being written, if any.
    running: tokio::sync::Mutex<Option<Written>>,
    /// This replica's threshold ([`checkpoint_bytes`]).
    threshold: usize,
    /// The newest snapshot openraft knows of (built, served or installed):
    /// a checkpoint newer than it can serve as the next snapshot.
    told: Mutex<Option<LogId>>,
    /// The writer thread's queue.
    writer: Mutex<std::sync::mpsc::Sender<Job>>,
    /// The newest dump's snapshot id and file, kept for every follower
    /// that asks for that snapshot: a leader asks again after each failed
    /// attempt and each new term, and writing the history out each time
    /// kept a lagging replica from ever catching up. Held while one is
    /// written.
    dump: Mutex<Option<(String, PathBuf)>>,
}

/// Writes checkpoints at a lower CPU priority than the Raft core's
/// threads: all five replicas of a cluster reach a checkpoint at about the
/// same entry, and on a shared machine their writes at full priority
/// delayed heartbeats past the election timeout.
fn spawn_writer() -> io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            super::lower_thread_priority();
            for (checkpoint, applied, done) in rx {
                let started = std::time::Instant::now();
                let outcome = checkpoint.run(&applied).map_err(|e| e.to_string());
                tracing::debug!(ms = started.elapsed().as_millis(), "checkpoint written");
                let _ = done.send(outcome);
            }
        })?;
    Ok(tx)
}

impl Checkpoints {
    /// After apply: stops on a failed read of the history store, starts a
    /// checkpoint once enough changes wait, and waits for the running one
    /// when they have piled up to twice that.
    async fn after_apply(&self) -> Result<(), StorageError> {
        let (failure, pending) = {
            let st = read(&self.state)?;
            let disk = disk_store(&st)?;
            (disk.failure(), disk.pending_bytes())
        };
        if let Some(failure) = failure {
            return Err(sm_err(format!(
                "reading the history store failed: {failure}"
            )));
        }
        if pending < self.threshold {
            return Ok(());
        }
        let mut running = self.running.lock().await;
        if let Some(written) = running.as_mut() {
            match written.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) if pending < 2 * self.threshold => {
                    return Ok(());
                }
                Err(oneshot::error::TryRecvError::Empty) => finish(&mut running).await?,
                outcome => {
                    *running = None;
                    outcome
                        .map_err(|_| sm_err("the checkpoint writer stopped"))?
                        .map_err(checkpoint_failed)?;
                }
            }
        }
        *running = Some(self.start()?.0);
        Ok(())
    }

    /// The state for a snapshot: the newest checkpoint if openraft has not
    /// been told of it yet (it is durable, so the log it covers may go),
    /// else a checkpoint written now. While changes flow, checkpoints come
    /// more often than snapshots, so building one rarely writes anything:
    /// all five replicas reach a snapshot at the same entry.
    async fn for_snapshot(&self) -> Result<SnapshotMeta, StorageError> {
        if let Some((_, meta)) = self.newest()? {
            if self.tell(&meta) {
                return Ok(meta);
            }
        }
        let meta = self.now().await?;
        self.tell(&meta);
        Ok(meta)
    }

    /// Notes that openraft knows of the snapshot `meta`; whether it is
    /// newer than any it knew.
    fn tell(&self, meta: &SnapshotMeta) -> bool {
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        let newer = meta.last_log_id > *told;
        if newer {
            *told = meta.last_log_id;
        }
        newer
    }

    /// Writes everything applied so far, durably; returns the meta of the
    /// state written.
    async fn now(&self) -> Result<SnapshotMeta, StorageError> {
        let mut running = self.running.lock().await;
        finish(&mut running).await?;
        let (handle, meta) = self.start()?;
        *running = Some(handle);
        finish(&mut running).await?;
        Ok(meta)
    }

    /// Seals the changes and starts writing them with the state they belong
    /// to. The caller holds `running`, which must be empty.
    fn start(&self) -> Result<(Written, SnapshotMeta), StorageError> {
        let (checkpoint, applied, meta) = {
            let mut st = write(&self.state)?;
            let applied = Applied::of(&st)
                .and_then(|a| a.encode())
                .map_err(|e| sm_err(format!("cannot encode the applied state: {e}")))?;
            let meta = snapshot_meta(st.last_applied, st.membership.clone());
            let checkpoint = disk_store_mut(&mut st)?
                .seal()
                .ok_or_else(|| sm_err("a checkpoint is already being written"))?;
            (checkpoint, applied, meta)
        };
        let (done, written) = oneshot::channel();
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((checkpoint, applied, done))
            .map_err(|_| sm_err("the checkpoint writer stopped"))?;
        Ok((written, meta))
    }

    /// The newest checkpoint and its meta as a snapshot's.
    fn newest(&self) -> Result<Option<(View, SnapshotMeta)>, StorageError> {
        let view = disk_store(&*read(&self.state)?)?.view();
        let Some(blob) = view.applied() else {
            return Ok(None);
        };
        let applied = Applied::decode(blob).map_err(|e| snapshot_read_err(None, e))?;
        let meta = snapshot_meta(applied.last_applied, applied.membership);
        Ok(Some((view, meta)))
    }

    /// The newest checkpoint as a snapshot; its body dumps it when read.
    fn current_snapshot(self: &Arc<Self>) -> Result<Option<Snapshot>, StorageError> {
        let Some((view, meta)) = self.newest()? else {
            return Ok(None);
        };
        self.tell(&meta);
        let (this, id) = (self.clone(), meta.snapshot_id.clone());
        let body = SnapshotBody::dump(Box::new(move || behind_raft(|| this.dump(&id, &view))));
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(body),
        }))
    }

    /// Replaces the state with the snapshot data `data` holds.
    async fn install(
        &self,
        meta: &SnapshotMeta,
        data: Box<dyn io::Read + Send>,
    ) -> Result<AppliedState, StorageError> {
        let incoming = self.dir.join(INCOMING_FILE);
        let load = {
            let incoming = incoming.clone();
            move || -> Result<Applied, String> {
                let mut reader = snapshot_data::Reader::new(data);
                let applied = reader.start()?;
                let blob = applied.encode().map_err(|e| e.to_string())?;
                DiskStore::load(&incoming, &blob, reader.records()).map_err(|e| e.to_string())?;
                Ok(applied)
            }
        };
        let applied = tokio::task::spawn_blocking(|| behind_raft(load))
            .await
            .map_err(|e| sm_err(format!("snapshot load task failed: {e}")))?
            .map_err(|e| snapshot_read_err(Some(meta), e))?;
        if applied.last_applied != meta.last_log_id {
            return Err(snapshot_read_err(
                Some(meta),
                format!("the data holds {:?}", applied.last_applied),
            ));
        }
        // No checkpoint of the old state may land after the swap.
        let mut running = self.running.lock().await;
        finish(&mut running).await?;
        let mut st = write(&self.state)?;
        // Closes the old file first.
        st.chat = ChatState::default();
        let path = self.dir.join(STATE_FILE);
        let swapped = fs::rename(&incoming, &path)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| {
                sm_err(format!(
                    "cannot move {} into place: {e}",
                    incoming.display()
                ))
            });
        let (store, _) = swapped.and_then(|()| {
            DiskStore::open(&path).map_err(|e| sm_err(format!("{}: {e}", path.display())))
        })?;
        let chat = ChatState::from_core(&applied.core, Box::new(store))
            .map_err(|e| snapshot_read_err(Some(meta), format!("snapshot core: {e}")))?;
        self.tell(meta);
        Ok(std::mem::replace(
            &mut *st,
            AppliedState {
                last_applied: applied.last_applied,
                membership: applied.membership,
                chat,
            },
        ))
    }
}

/// Runs `work` on a thread of its own at a lower priority (see
/// [`spawn_writer`]) and waits for it: for long work on a blocking-pool
/// thread, whose priority would otherwise stay lowered for later tasks.
fn behind_raft<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            super::lower_thread_priority();
            work()
        });
        match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Checkpoints {
    /// The dump of snapshot `id` (`view`), written to `DIR/DUMP_PREFIX<id>`
    /// unless it is the newest already; it replaces the previous one.
    fn dump(&self, id: &str, view: &View) -> io::Result<fs::File> {
        let mut newest = self.dump.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((have, path)) = newest.as_ref() {
            if have == id {
                return fs::File::open(path);
            }
        }
        let started = std::time::Instant::now();
        let applied = view
            .applied()
            .ok_or_else(|| io::Error::other("the checkpoint has no applied state"))?;
        let path = self.dir.join(format!("{DUMP_PREFIX}{id}"));
        let partial = self.dir.join(format!("{DUMP_PREFIX}{id}.tmp"));
        let mut file = fs::File::create(&partial)?;
        let mut out = io::BufWriter::with_capacity(1 << 20, &mut file);
        let records = view.records().map(|r| r.map_err(io::Error::other));
        let bytes = snapshot_data::write(&mut out, applied, records)?;
        io::Write::flush(&mut out)?;
        drop(out);
        // Not synced: a dump is rewritten after a restart anyway.
        fs::rename(&partial, &path)?;
        if let Some((_, old)) = newest.replace((id.to_string(), path.clone())) {
            let _ = fs::remove_file(old);
        }
        crate::metrics::observe_snapshot_bytes(bytes as usize);
        tracing::info!(
            bytes,
            ms = started.elapsed().as_millis(),
            "snapshot dump written"
        );
        fs::File::open(&path)
    }
}

/// Removes the dumps a previous run left in `dir`.
fn remove_dumps(dir: &Path) -> Result<(), StorageOpenError> {
    for entry in fs::read_dir(dir).map_err(|e| StorageOpenError::io("list", dir, e))? {
        let path = entry
            .map_err(|e| StorageOpenError::io("list", dir, e))?
            .path();
        let is_dump = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DUMP_PREFIX));
        if is_dump {
            fs::remove_file(&path).map_err(|e| StorageOpenError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Waits for the running checkpoint, if any.
async fn finish(running: &mut Option<Written>) -> Result<(), StorageError> {
    if let Some(written) = running.take() {
        written
            .await
            .map_err(|_| sm_err("the checkpoint writer stopped"))?
            .map_err(checkpoint_failed)?;
    }
    Ok(())
}

fn checkpoint_failed(e: String) -> StorageError {
    sm_err(format!("writing a checkpoint failed: {e}"))
}

fn write(state: &SharedState) -> Result<RwLockWriteGuard<'_, AppliedState>, StorageError> {
    state
        .write()
        .map_err(|_| sm_err("state lock poisoned by a panic during apply"))
}

fn read(state: &SharedState) -> Result<std::sync::RwLockReadGuard<'_, AppliedState>, StorageError> {
    state.read().map_err(|_| sm_err("state lock poisoned"))
}

fn disk_store(st: &AppliedState) -> Result<&DiskStore, StorageError> {
    st.chat
        .store_as::<DiskStore>()
        .ok_or_else(|| sm_err("disk mode without its history store"))
}

fn disk_store_mut(st: &mut AppliedState) -> Result<&mut DiskStore, StorageError> {
    st.chat
        .store_as_mut::<DiskStore>()
        .ok_or_else(|| sm_err("disk mode without its history store"))
}

/// The Raft state machine. See the module docs.
pub struct StateStore {
    state: SharedState,
    hub: Arc<EventHub>,
    mode: Mode,
    /// Apply waits until an entry is durable in this replica's log.
    durability: Durability,
}

/// Builds a snapshot of the state at the moment `build_snapshot` runs.
pub struct SnapshotBuilder {
    state: SharedState,
    mode: Mode,
}

impl StateStore {
    /// A state machine whose history and snapshots live only in memory.
    pub fn new_memory(hub: Arc<EventHub>) -> StateStore {
        StateStore {
            state: SharedState::default(),
            hub,
            mode: Mode::Memory(Default::default()),
            durability: Durability::always(),
        }
    }

    /// Opens (creating if missing) the history store in `dir` at its last
    /// checkpoint, and resets `hub` to its event seq.
    pub fn open(
        dir: &Path,
        id: NodeId,
        hub: Arc<EventHub>,
    ) -> Result<StateStore, StorageOpenError> {
        refuse_old_snapshots(dir)?;
        remove_dumps(dir)?;
        let incoming = dir.join(INCOMING_FILE);
        match fs::remove_file(&incoming) {
            Ok(()) => sync_dir(dir).map_err(|e| StorageOpenError::io("fsync dir", dir, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageOpenError::io("remove", &incoming, e)),
        }
        let path = dir.join(STATE_FILE);
        let started = std::time::Instant::now();
        let (store, blob) = DiskStore::open(&path).map_err(|e| StorageOpenError::Store {
            path: path.clone(),
            source: e,
        })?;
        let corrupt = |reason: String| StorageOpenError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason,
        };
        let state = match blob {
            None => AppliedState {
                chat: ChatState::with_store(Box::new(store)),
                ..AppliedState::default()
            },
            Some(blob) => {
                let applied = Applied::decode(&blob).map_err(corrupt)?;
                let chat = ChatState::from_core(&applied.core, Box::new(store))
                    .map_err(|e| corrupt(format!("applied state core: {e}")))?;
                AppliedState {
                    last_applied: applied.last_applied,
                    membership: applied.membership,
                    chat,
                }
            }
        };
        tracing::info!(
            file = %path.display(),
            last_applied = ?state.last_applied,
            ms = started.elapsed().as_millis(),
            "history store opened"
        );
        hub.reset(state.chat.last_event_seq());
        let state = Arc::new(RwLock::new(state));
        let writer = spawn_writer()
            .map_err(|e| StorageOpenError::io("start the checkpoint writer for", &path, e))?;
        Ok(StateStore {
            state: state.clone(),
            hub,
            mode: Mode::Disk(Arc::new(Checkpoints {
                dir: dir.to_path_buf(),
                state,
                running: Default::default(),
                threshold: checkpoint_bytes(id),
                told: Mutex::new(None),
                writer: Mutex::new(writer),
                dump: Mutex::new(None),
            })),
            durability: Durability::always(),
        })
    }

    /// Applies entries only once `durability` says they are on disk here.
    pub fn gated_on(self, durability: Durability) -> StateStore {
        StateStore { durability, ..self }
    }

    /// The applied state, for the services to read.
    pub fn shared(&self) -> SharedState {
        self.state.clone()
    }
}

/// Storage written by a release that kept whole-state snapshot files: its
/// log may be purged up to such a snapshot, which this release cannot read,
/// so starting on it would lose history.
fn refuse_old_snapshots(dir: &Path) -> Result<(), StorageOpenError> {
    let old = dir.join(OLD_SNAPSHOT_DIR);
    let entries = match fs::read_dir(&old) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageOpenError::io("list", &old, e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| StorageOpenError::io("list", &old, e))?
            .path();
        if path.extension().is_some_and(|x| x == "snap") {
            return Err(StorageOpenError::Outdated {
                path,
                reason: "this chatd cannot read its snapshots; start this replica with an \
                         empty --server-storage directory and let it catch up from the others"
                    .into(),
            });
        }
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let snapshot = match &self.mode {
            // openraft keeps only the meta of what this returns.
            Mode::Disk(checkpoints) => Snapshot {
                meta: checkpoints.for_snapshot().await?,
                snapshot: Box::new(SnapshotBody::memory(Vec::new())),
            },
            Mode::Memory(current) => {
                let state = self.state.clone();
                let (data, meta) = tokio::task::spawn_blocking(move || {
                    let st = read(&state)?;
                    let data = snapshot_data::encode(&st)
                        .map_err(|e| sm_err(format!("cannot encode the state: {e}")))?;
                    Ok::<_, StorageError>((
                        data,
                        snapshot_meta(st.last_applied, st.membership.clone()),
                    ))
                })
                .await
                .map_err(|e| sm_err(format!("snapshot task failed: {e}")))??;
                crate::metrics::observe_snapshot_bytes(data.len());
                let data = Arc::new(data);
                *current.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((meta.clone(), data.clone()));
                Snapshot {
                    meta,
                    snapshot: Box::new(SnapshotBody::memory(data.as_ref().clone())),
                }
            }
        };
        tracing::info!(
            snapshot_id = %snapshot.meta.snapshot_id,
            last_log_id = ?snapshot.meta.last_log_id,
            "snapshot built"
        );
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = read(&self.state)?;
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<CommandResult>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            self.durability
                .wait_durable(last.log_id.index)
                .await
                .map_err(sm_err)?;
        }
        let mut results = Vec::with_capacity(entries.len());
        let mut events = Vec::new();
        {
            let mut st = write(&self.state)?;
            for entry in entries {
                st.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(Vec::new()),
                    EntryPayload::Normal(batch) => {
                        let r = st.chat.apply_batch(entry.log_id.index, &batch, &mut events);
                        results.push(r);
                    }
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(Vec::new());
                    }
                }
            }
        }
        // Before any result or event leaves: a failed read may have made
        // them wrong.
        if let Mode::Disk(checkpoints) = &self.mode {
            checkpoints.after_apply().await?;
        }
        if !events.is_empty() {
            self.hub.publish(events);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            mode: self.mode.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotBody>, StorageError> {
        match &self.mode {
            Mode::Memory(_) => Ok(Box::new(SnapshotBody::memory(Vec::new()))),
            // Unnamed: nothing to clean up if the transfer is abandoned.
            Mode::Disk(checkpoints) => {
                let file =
                    tempfile::tempfile_in(&checkpoints.dir).map_err(|e| StorageError::IO {
                        source: StorageIOError::write_snapshot(None, &e),
                    })?;
                Ok(Box::new(SnapshotBody::file(tokio::fs::File::from_std(
                    file,
                ))))
            }
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotBody>,
    ) -> Result<(), StorageError> {
        let read_err = |e: io::Error| StorageError::IO {
            source: StorageIOError::read_snapshot(Some(meta.signature()), &e),
        };
        let old = match &self.mode {
            Mode::Disk(checkpoints) => {
                let data = snapshot.into_reader().await.map_err(read_err)?;
                checkpoints.install(meta, data).await?
            }
            Mode::Memory(current) => {
                let data = snapshot.into_bytes().await.map_err(read_err)?;
                let new_state =
                    snapshot_data::decode(&data).map_err(|e| snapshot_read_err(Some(meta), e))?;
                *current.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((meta.clone(), Arc::new(data)));
                std::mem::replace(&mut *write(&self.state)?, new_state)
            }
        };
        // A large old state is freed off the async workers.
        tokio::task::spawn_blocking(move || drop(old));
        let seq = read(&self.state)?.chat.last_event_seq();
        self.hub.reset(seq);
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            last_log_id = ?meta.last_log_id,
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        match &self.mode {
            Mode::Disk(checkpoints) => checkpoints.current_snapshot(),
            Mode::Memory(current) => Ok(current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(meta, data)| Snapshot {
                    meta: meta.clone(),
                    snapshot: Box::new(SnapshotBody::memory(data.as_ref().clone())),
                })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::state::command::{Batch, Command, Proposal, Target};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entries() -> Vec<Entry> {
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        vec![
            Entry {
                log_id: log_id(1, 1),
                payload: EntryPayload::Membership(Membership::new(vec![members], None)),
            },
            Entry {
                log_id: log_id(1, 2),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(1, 3),
                payload: EntryPayload::Normal(Batch {
                    ts_ms: 1000,
                    proposals: vec![Proposal {
                        request_id: Some("r1".into()),
                        command: Command::Tick,
                    }],
                }),
            },
        ]
    }

    #[tokio::test]
    async fn apply_returns_one_result_vec_per_entry() {
        let mut sm = StateStore::new_memory(EventHub::new(16));
        let out = sm.apply(entries()).await.unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].len(), 1);
        let (last, membership) = sm.applied_state().await.unwrap();
        assert_eq!(last, Some(log_id(1, 3)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 1)));
        assert_eq!(sm.shared().read().unwrap().last_applied, Some(log_id(1, 3)));
    }

    /// A chat entry at `index` of term 1.
    fn chat(index: u64, command: Command) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(Batch {
                ts_ms: 1000 + index,
                proposals: vec![Proposal {
                    request_id: Some(format!("r{index}")),
                    command,
                }],
            }),
        }
    }

    /// Two accounts, a session, and `messages` messages from index 10 on.
    fn history(messages: u64) -> Vec<Entry> {
        let mut out = entries();
        for (i, name) in ["ann", "bob"].into_iter().enumerate() {
            out.push(chat(
                4 + i as u64,
                Command::CreateAccount {
                    username: name.into(),
                    password_hash: format!("hash-{name}"),
                },
            ));
        }
        out.push(chat(
            6,
            Command::CreateSession {
                username: "ann".into(),
                verified_hash: "hash-ann".into(),
                token_hash: [7; 32],
                expires_ms: u64::MAX / 2,
            },
        ));
        for i in 0..messages {
            out.push(chat(
                10 + i,
                Command::Send {
                    session: [7; 32],
                    target: Target::User("bob".into()),
                    body: format!("message {i}"),
                },
            ));
        }
        // Indexes 7-9 are blank, to keep the log contiguous.
        for index in 7..10 {
            out.insert(
                index as usize - 1,
                Entry {
                    log_id: log_id(1, index),
                    payload: EntryPayload::Blank,
                },
            );
        }
        out
    }

    fn digest(sm: &StateStore) -> (Option<LogId>, [u8; 32]) {
        let st = sm.shared();
        let st = st.read().unwrap();
        (st.last_applied, st.chat.digest())
    }

    /// A snapshot is a durable checkpoint; what was applied after it is not
    /// in the file (the log replays it), and the newest checkpoint is
    /// served, dumped, installed elsewhere in either mode, and reopened.
    #[tokio::test]
    async fn checkpoints_reopen_and_snapshots_install_in_both_modes() {
        let dir = tempfile::tempdir().unwrap();
        let hub = EventHub::new(16);
        let all = history(300);
        let (meta, at_snapshot) = {
            let mut sm = StateStore::open(dir.path(), 1, hub.clone()).unwrap();
            assert!(sm.get_current_snapshot().await.unwrap().is_none());
            sm.apply(all[..200].to_vec()).await.unwrap();
            let at_snapshot = digest(&sm);
            let meta = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap()
                .meta;
            assert_eq!(meta.last_log_id, at_snapshot.0);
            sm.apply(all[200..].to_vec()).await.unwrap();
            assert_ne!(digest(&sm), at_snapshot);
            (meta, at_snapshot)
        };
        let mut sm = StateStore::open(dir.path(), 1, hub.clone()).unwrap();
        assert_eq!(digest(&sm), at_snapshot, "reopens at the checkpoint");
        assert_eq!(sm.applied_state().await.unwrap().0, meta.last_log_id);
        // Replaying the log after it reaches the same state as before.
        sm.apply(all[200..].to_vec()).await.unwrap();
        let replayed = digest(&sm);

        let served = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(served.meta, meta);
        let data = served.snapshot.into_bytes().await.unwrap();
        assert_eq!(data[0], snapshot_data::DATA_FORMAT);

        let dir2 = tempfile::tempdir().unwrap();
        {
            let mut follower = StateStore::open(dir2.path(), 2, hub.clone()).unwrap();
            follower.apply(entries()).await.unwrap();
            let mut rx = follower.begin_receiving_snapshot().await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut *rx, &data)
                .await
                .unwrap();
            follower.install_snapshot(&meta, rx).await.unwrap();
            assert_eq!(digest(&follower), at_snapshot);
            follower.apply(all[200..].to_vec()).await.unwrap();
            assert_eq!(digest(&follower), replayed);
            let served = follower.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(served.meta, meta, "the installed snapshot is current");
        }
        let follower = StateStore::open(dir2.path(), 2, hub.clone()).unwrap();
        assert_eq!(digest(&follower), at_snapshot);

        let mut memory = StateStore::new_memory(hub);
        memory
            .install_snapshot(&meta, Box::new(SnapshotBody::memory(data.clone())))
            .await
            .unwrap();
        assert_eq!(digest(&memory), at_snapshot);
        let mut memory_built = memory
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(memory_built.meta, meta);
        let rebuilt = std::mem::replace(
            &mut memory_built.snapshot,
            Box::new(SnapshotBody::memory(Vec::new())),
        );
        assert_eq!(
            rebuilt.into_bytes().await.unwrap(),
            data,
            "one format in both modes"
        );
    }

    #[tokio::test]
    async fn storage_of_an_earlier_release_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(OLD_SNAPSHOT_DIR)).unwrap();
        let old = dir
            .path()
            .join(OLD_SNAPSHOT_DIR)
            .join("snap-00000000000000000003.snap");
        fs::write(&old, b"RCSNAP01").unwrap();
        let err = match StateStore::open(dir.path(), 1, EventHub::new(16)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("opened over an old snapshot"),
        };
        assert!(err.contains("snap-00000000000000000003.snap"), "{err}");
        assert!(err.contains("empty --server-storage"), "{err}");
    }
}
