//! The state machine side: applies committed entries to the [`ChatState`],
//! publishes the resulting events, and builds/installs/persists snapshots.
//!
//! The applied state is not written on every apply; durability comes from the
//! snapshot plus the log (openraft re-applies committed entries after the
//! snapshot on start). A snapshot is therefore fsynced before openraft may
//! purge the log it covers.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use tokio::sync::watch;

use super::durability::Durability;
use super::meta_file::{replace_file, sync_dir, with_path};
use super::snapshot_body::SnapshotBody;
use super::StorageOpenError;
use crate::state::command::CommandResult;
use crate::state::store::{MemoryStore, Record};
use crate::state::ChatState;
use crate::storage::events::EventHub;
use crate::storage::raft_types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_DIR: &str = "snapshots";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RCSNAP01";
/// 3: request ids remembered as 128-bit keys in a hash map, written in
/// application order; sent results by reference.
const SNAPSHOT_VERSION: u32 = 3;
/// magic + version + crc + len.
const SNAPSHOT_HEADER_LEN: usize = 8 + 4 + 4 + 8;

/// The longest a follower defers decoding its snapshot (see
/// [`StateStore::open`]) when nothing releases it earlier.
pub const LOAD_DEFER_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything applied so far. Readers (the gRPC services) take the read lock
/// briefly and never hold it across an `.await`.
#[derive(Debug, Default)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub chat: ChatState,
}

pub type SharedState = Arc<RwLock<AppliedState>>;

/// The current snapshot: its meta and where its encoded [`AppliedState`]
/// is.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: SnapshotData,
}

/// Disk mode keeps only the file's path and where the state starts in it: a
/// follower needs the bytes rarely, and holding them would double the
/// replica's memory (see [`SnapshotBody`]).
#[derive(Clone)]
enum SnapshotData {
    Memory(Arc<Vec<u8>>),
    File { path: PathBuf, data_offset: u64 },
}

/// Holds the current snapshot, in memory or (disk mode) in `dir`.
struct SnapshotStore {
    dir: Option<PathBuf>,
    current: Mutex<Option<StoredSnapshot>>,
    /// Sequence for snapshot ids and file names; unique across restarts.
    seq: AtomicU64,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_state_machine(openraft::AnyError::error(e)),
    }
}

fn snap_write_err(meta: &SnapshotMeta, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_snapshot(
            Some(meta.signature()),
            openraft::AnyError::error(e),
        ),
    }
}

fn snapshot_file_name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

fn parse_snapshot_seq(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

/// The snapshot file's header and payload prefix, such that header ++
/// prefix ++ data is the file: the payload is postcard's `(meta, data)`, but
/// built without copying `data`.
fn snapshot_file_head(meta: &SnapshotMeta, data: &[u8]) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let invalid = |e: postcard::Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    // postcard writes a byte slice as its varint length, then the bytes.
    let mut prefix = postcard::to_stdvec(meta).map_err(invalid)?;
    prefix.extend(postcard::to_stdvec(&(data.len() as u64)).map_err(invalid)?);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&prefix);
    crc.update(data);
    let payload_len = (prefix.len() + data.len()) as u64;
    let mut header = Vec::with_capacity(SNAPSHOT_HEADER_LEN);
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    header.extend_from_slice(&crc.finalize().to_le_bytes());
    header.extend_from_slice(&payload_len.to_le_bytes());
    Ok((header, prefix))
}

/// Checks a snapshot file's header and checksum and returns its meta and
/// (borrowed) state bytes.
fn decode_snapshot_file<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(SnapshotMeta, &'a [u8]), StorageOpenError> {
    let corrupt = |offset: u64, reason: String| StorageOpenError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if bytes.len() < SNAPSHOT_HEADER_LEN || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad snapshot header".into()));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != SNAPSHOT_VERSION {
        return Err(corrupt(
            8,
            format!("unsupported snapshot version {version}"),
        ));
    }
    let crc = word(12);
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[16..24]);
    let len = u64::from_le_bytes(len8);
    let payload = &bytes[SNAPSHOT_HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(corrupt(
            16,
            format!(
                "length {len} does not match {} payload bytes",
                payload.len()
            ),
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt(12, "snapshot checksum mismatch".into()));
    }
    postcard::from_bytes(payload)
        .map_err(|e| corrupt(SNAPSHOT_HEADER_LEN as u64, format!("decode: {e}")))
}

/// Maps a snapshot file into memory: decoding reads it straight from the
/// page cache, without copying hundreds of megabytes into a fresh buffer.
/// Snapshot files are never modified once renamed into place (a newer one
/// replaces them), so the mapping cannot change under the decoder.
fn map_file(path: &Path) -> Result<memmap2::Mmap, StorageOpenError> {
    let file = fs::File::open(path).map_err(|e| StorageOpenError::io("open", path, e))?;
    // SAFETY: see above; only this process writes the directory, and never
    // in place.
    // Populated: one call maps every page, instead of a fault per page
    // during the checksum.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| StorageOpenError::io("map", path, e))
}

/// The first byte of snapshot data in the current format: postcard
/// `(last_applied, membership)`, the chat state's core as a byte string
/// (`ChatState::encode_core`), then the store's records, each a postcard
/// [`Record`], to the end. Formats 1-5 (whole-state layouts of earlier
/// releases) are refused with a message saying so.
const DATA_FORMAT: u8 = 6;

fn encode_state(state: &AppliedState) -> Result<Vec<u8>, postcard::Error> {
    let mut out = vec![DATA_FORMAT];
    out = postcard::to_io(&(&state.last_applied, &state.membership), out)?;
    out = postcard::to_io(state.chat.encode_core()?.as_slice(), out)?;
    for record in state.chat.store().records() {
        out = postcard::to_io(&record, out)?;
    }
    Ok(out)
}

fn decode_state(data: &[u8]) -> Result<AppliedState, String> {
    let Some((&format, rest)) = data.split_first() else {
        return Err("empty snapshot data".into());
    };
    if format != DATA_FORMAT {
        return Err(format!(
            "snapshot data format {format} was written by an earlier chatd (this one reads \
             format {DATA_FORMAT}); start this replica with an empty --server-storage \
             directory and let it catch up from the others"
        ));
    }
    let ((last_applied, membership), rest) =
        postcard::take_from_bytes::<(Option<LogId>, StoredMembership)>(rest)
            .map_err(|e| format!("snapshot header: {e}"))?;
    let (core, mut rest) =
        postcard::take_from_bytes::<&[u8]>(rest).map_err(|e| format!("snapshot core: {e}"))?;
    let mut store = MemoryStore::default();
    while !rest.is_empty() {
        let (record, tail) = postcard::take_from_bytes::<Record>(rest)
            .map_err(|e| format!("snapshot record: {e}"))?;
        store.insert(record);
        rest = tail;
    }
    let chat =
        ChatState::from_core(core, Box::new(store)).map_err(|e| format!("snapshot core: {e}"))?;
    Ok(AppliedState {
        last_applied,
        membership,
        chat,
    })
}

impl SnapshotStore {
    fn new(dir: Option<PathBuf>, current: Option<StoredSnapshot>, next_seq: u64) -> Self {
        Self {
            dir,
            current: Mutex::new(current),
            seq: AtomicU64::new(next_seq.max(1)),
        }
    }

    /// The current snapshot; in disk mode its body is the file, opened but
    /// not read.
    async fn current_snapshot(&self) -> io::Result<Option<Snapshot>> {
        // A newer snapshot can replace (and remove) the file between looking
        // it up and opening it; then look again. Once open, it stays readable.
        let mut attempts = 0;
        loop {
            let Some(snap) = self.current() else {
                return Ok(None);
            };
            let body = match &snap.data {
                SnapshotData::Memory(data) => SnapshotBody::memory(data.as_ref().clone()),
                SnapshotData::File { path, data_offset } => {
                    match SnapshotBody::open_file(path, *data_offset).await {
                        Ok(body) => body,
                        Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                            attempts += 1;
                            continue;
                        }
                        Err(e) => return Err(with_path("open", path, e)),
                    }
                }
            };
            return Ok(Some(Snapshot {
                meta: snap.meta,
                snapshot: Box::new(body),
            }));
        }
    }

    fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `data` the current snapshot (durably, in disk mode) unless a
    /// newer one is already current — a build can race with an install.
    /// Blocking; call from `spawn_blocking`.
    fn save(&self, meta: SnapshotMeta, data: Arc<Vec<u8>>) -> io::Result<bool> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cur) = current.as_ref() {
            if cur.meta.last_log_id > meta.last_log_id {
                return Ok(false);
            }
        }
        let Some(dir) = &self.dir else {
            *current = Some(StoredSnapshot {
                meta,
                data: SnapshotData::Memory(data),
            });
            return Ok(true);
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = snapshot_file_name(seq);
        let path = dir.join(&name);
        let (header, prefix) = snapshot_file_head(&meta, &data)?;
        replace_file(dir, &name, &[&header, &prefix, &data], true)?;
        // Only the newest is kept.
        let mut removed = false;
        for item in fs::read_dir(dir).map_err(|e| with_path("list", dir, e))? {
            let p = item.map_err(|e| with_path("list", dir, e))?.path();
            let is_old = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_snapshot_seq)
                .is_some_and(|s| s != seq);
            if is_old {
                fs::remove_file(&p).map_err(|e| with_path("remove", &p, e))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir).map_err(|e| with_path("fsync dir", dir, e))?;
        }
        tracing::info!(
            file = %path.display(),
            bytes = header.len() + prefix.len() + data.len(),
            last_log_id = ?meta.last_log_id,
            "snapshot saved"
        );
        let data_offset = (header.len() + prefix.len()) as u64;
        *current = Some(StoredSnapshot {
            meta,
            data: SnapshotData::File { path, data_offset },
        });
        Ok(true)
    }

    /// Finds the newest snapshot file in `dir`, removing leftovers; returns
    /// it with the next file sequence number.
    fn newest_file(dir: &Path) -> Result<(Option<PathBuf>, u64), StorageOpenError> {
        fs::create_dir_all(dir).map_err(|e| StorageOpenError::io("create dir", dir, e))?;
        let mut newest: Option<(u64, PathBuf)> = None;
        let mut changed = false;
        for item in fs::read_dir(dir).map_err(|e| StorageOpenError::io("list", dir, e))? {
            let p = item
                .map_err(|e| StorageOpenError::io("list", dir, e))?
                .path();
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                fs::remove_file(&p).map_err(|e| StorageOpenError::io("remove", &p, e))?;
                changed = true;
            } else if let Some(seq) = parse_snapshot_seq(name) {
                if newest.as_ref().is_none_or(|(s, _)| seq > *s) {
                    newest = Some((seq, p));
                }
            }
        }
        if changed {
            sync_dir(dir).map_err(|e| StorageOpenError::io("fsync dir", dir, e))?;
        }
        Ok(match newest {
            Some((seq, path)) => (Some(path), seq + 1),
            None => (None, 0),
        })
    }
}

/// `true` once the state has been restored from the snapshot (at once in
/// memory mode or without a snapshot).
pub type Loaded = watch::Receiver<bool>;

/// Lets a follower's deferred snapshot decode start (see
/// [`StateStore::open`]): opening or dropping it does.
pub struct LoadGate {
    _release: std::sync::mpsc::SyncSender<()>,
}

impl LoadGate {
    /// Starts the decode now.
    pub fn open(self) {
        // Dropping the sender wakes the loader's `recv_timeout`.
    }
}

/// The Raft state machine. See the module docs.
pub struct StateStore {
    state: SharedState,
    hub: Arc<EventHub>,
    snapshots: Arc<SnapshotStore>,
    loaded: Loaded,
    /// The snapshot's last applied id and membership: what `applied_state`
    /// reports until its state is loaded.
    restoring: (Option<LogId>, StoredMembership),
    /// Apply waits until an entry is durable in this replica's log.
    durability: Durability,
    /// Held until the replica hands it to whatever releases a deferred
    /// decode; `None` when the decode was not deferred.
    load_gate: Option<LoadGate>,
}

/// Builds a snapshot of the state at the moment `build_snapshot` runs.
pub struct SnapshotBuilder {
    state: SharedState,
    snapshots: Arc<SnapshotStore>,
    loaded: Loaded,
}

/// Waits until the snapshot's state is loaded: applying, snapshotting or
/// installing before that would work on (or be overwritten by) the wrong
/// state.
async fn wait_loaded(loaded: &Loaded) -> Result<(), StorageError> {
    let mut loaded = loaded.clone();
    loaded
        .wait_for(|l| *l)
        .await
        .map(|_| ())
        .map_err(|_| sm_err("the snapshot loader stopped"))
}

/// Lowers the calling thread's CPU priority (Linux: nice applies per
/// thread).
fn yield_cpu() {
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

impl StateStore {
    /// A state machine whose snapshots live only in memory.
    pub fn new_memory(hub: Arc<EventHub>) -> StateStore {
        StateStore {
            state: SharedState::default(),
            hub,
            snapshots: Arc::new(SnapshotStore::new(None, None, 1)),
            loaded: watch::channel(true).1,
            restoring: Default::default(),
            durability: Durability::always(),
            load_gate: None,
        }
    }

    /// Opens `dir/snapshots` and checks the newest snapshot, then restores
    /// the state from it on a background thread (and resets `hub` to its
    /// event seq): Raft starts meanwhile, so this replica can vote and
    /// append at once, and only applying waits for the state (see
    /// [`StateStore::loaded`]).
    ///
    /// `follower` (this replica does not resume leading) defers that decode
    /// until its [`LoadGate`] opens or for [`LOAD_DEFER_MAX`], then runs it
    /// at a lower priority. In a cold restart of the whole cluster the old
    /// leader then decodes alone and serves writes sooner: a follower needs
    /// its state only to apply, serve clients and campaign, not to append,
    /// and five replicas decoding at once on a shared machine slowed the
    /// leader's decode two to three times (BENCHMARKS.md).
    pub fn open(
        dir: &Path,
        hub: Arc<EventHub>,
        follower: bool,
    ) -> Result<StateStore, StorageOpenError> {
        let snap_dir = dir.join(SNAPSHOT_DIR);
        let (newest, next_seq) = SnapshotStore::newest_file(&snap_dir)?;
        let state = SharedState::default();
        let Some(path) = newest else {
            tracing::info!(dir = %snap_dir.display(), "no snapshot; starting from empty state");
            return Ok(StateStore {
                state,
                hub,
                snapshots: Arc::new(SnapshotStore::new(Some(snap_dir), None, next_seq)),
                loaded: watch::channel(true).1,
                restoring: Default::default(),
                durability: Durability::always(),
                load_gate: None,
            });
        };
        let bytes = map_file(&path)?;
        // Header and checksum now, so a damaged file stops the replica here.
        let (meta, data) = decode_snapshot_file(&path, &bytes)?;
        // `data` borrows from `bytes`: its offset there is its offset in the
        // file.
        let data_offset = (data.as_ptr() as usize - bytes.as_ptr() as usize) as u64;
        let restoring = (meta.last_log_id, meta.last_membership.clone());
        let (loaded_tx, loaded) = watch::channel(false);
        let (gate, gate_rx) = if follower {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            (Some(LoadGate { _release: tx }), Some(rx))
        } else {
            (None, None)
        };
        let loader = {
            let (state, hub, path) = (state.clone(), hub.clone(), path.clone());
            let snapshot_id = meta.snapshot_id.clone();
            move || {
                let deferred = std::time::Instant::now();
                if let Some(gate) = gate_rx {
                    let _ = gate.recv_timeout(LOAD_DEFER_MAX);
                    yield_cpu();
                }
                let deferred_ms = deferred.elapsed().as_millis();
                let started = std::time::Instant::now();
                let data = &bytes[data_offset as usize..];
                let restored = match decode_state(data) {
                    Ok(restored) => restored,
                    Err(e) => {
                        // It passed its checksum, so this is a bug or a
                        // format mismatch: stop, naming the file.
                        tracing::error!(file = %path.display(), error = %e, "snapshot state does not decode");
                        eprintln!(
                            "chatd: {}: snapshot state does not decode: {e}",
                            path.display()
                        );
                        std::process::exit(1);
                    }
                };
                tracing::info!(
                    file = %path.display(),
                    snapshot_id = %snapshot_id,
                    last_applied = ?restored.last_applied,
                    bytes = bytes.len(),
                    deferred_ms,
                    decode_ms = started.elapsed().as_millis(),
                    follower,
                    "state restored from snapshot"
                );
                let seq = restored.chat.last_event_seq();
                *state.write().unwrap_or_else(|e| e.into_inner()) = restored;
                hub.reset(seq);
                let _ = loaded_tx.send(true);
            }
        };
        std::thread::Builder::new()
            .name("snapshot-loader".into())
            .spawn(loader)
            .map_err(|e| StorageOpenError::io("spawn the snapshot loader for", &path, e))?;
        let current = StoredSnapshot {
            meta,
            data: SnapshotData::File { path, data_offset },
        };
        Ok(StateStore {
            state,
            hub,
            snapshots: Arc::new(SnapshotStore::new(Some(snap_dir), Some(current), next_seq)),
            loaded,
            restoring,
            durability: Durability::always(),
            load_gate: gate,
        })
    }

    /// The gate of a deferred decode (once; `None` if it was not deferred).
    pub fn take_load_gate(&mut self) -> Option<LoadGate> {
        self.load_gate.take()
    }

    /// Applies entries only once `durability` says they are on disk here.
    pub fn gated_on(self, durability: Durability) -> StateStore {
        StateStore { durability, ..self }
    }

    /// Whether the state is loaded; the services refuse requests until it
    /// is (another replica can answer them).
    pub fn loaded(&self) -> Loaded {
        self.loaded.clone()
    }

    /// The applied state, for the services to read.
    pub fn shared(&self) -> SharedState {
        self.state.clone()
    }

    // StorageError is openraft's type; every trait method returns it anyway.
    #[allow(clippy::result_large_err)]
    fn write_state(&self) -> Result<RwLockWriteGuard<'_, AppliedState>, StorageError> {
        self.state
            .write()
            .map_err(|_| sm_err("state lock poisoned by a panic during apply"))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        wait_loaded(&self.loaded).await?;
        // Serializing a large state takes a while: do it on a blocking
        // thread so the replica's async workers keep serving heartbeats.
        let state = self.state.clone();
        let (data, last_applied, membership) = tokio::task::spawn_blocking(move || {
            let st = state
                .read()
                .map_err(|_| "state lock poisoned".to_string())?;
            let data = encode_state(&st).map_err(|e| format!("cannot serialize the state: {e}"))?;
            Ok::<_, String>((data, st.last_applied, st.membership.clone()))
        })
        .await
        .map_err(|e| sm_err(format!("snapshot task failed: {e}")))?
        .map_err(sm_err)?;
        crate::metrics::observe_snapshot_bytes(data.len());
        // Shares the counter with file names: ids stay unique across builds
        // of the same log id and across restarts.
        let seq = self.snapshots.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let data = Arc::new(data);
        let size = data.len();
        let store = self.snapshots.clone();
        let (m, d) = (meta.clone(), data.clone());
        tokio::task::spawn_blocking(move || store.save(m, d))
            .await
            .map_err(|e| snap_write_err(&meta, e))?
            .map_err(|e| snap_write_err(&meta, e))?;
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            last_log_id = ?meta.last_log_id,
            bytes = size,
            "snapshot built"
        );
        // Disk mode dropped its reference: this unwraps without a copy.
        let data = Arc::try_unwrap(data).unwrap_or_else(|shared| shared.as_ref().clone());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotBody::memory(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        if !*self.loaded.borrow() {
            return Ok(self.restoring.clone());
        }
        let st = self
            .state
            .read()
            .map_err(|_| sm_err("state lock poisoned"))?;
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<CommandResult>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        wait_loaded(&self.loaded).await?;
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
            let mut st = self.write_state()?;
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
        if !events.is_empty() {
            self.hub.publish(events);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            snapshots: self.snapshots.clone(),
            loaded: self.loaded.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotBody>, StorageError> {
        Ok(Box::new(SnapshotBody::memory(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotBody>,
    ) -> Result<(), StorageError> {
        // Else the loader would overwrite the installed state.
        wait_loaded(&self.loaded).await?;
        let data = snapshot.into_bytes().await.map_err(|e| StorageError::IO {
            source: StorageIOError::read_snapshot(Some(meta.signature()), &e),
        })?;
        let new_state = decode_state(&data).map_err(|e| StorageError::IO {
            source: StorageIOError::read_snapshot(
                Some(meta.signature()),
                &io::Error::new(io::ErrorKind::InvalidData, e),
            ),
        })?;
        let size = data.len();
        // Persist first: once the state is replaced openraft may purge the
        // log the old state depended on.
        let store = self.snapshots.clone();
        let m = meta.clone();
        let data = Arc::new(data);
        tokio::task::spawn_blocking(move || store.save(m, data))
            .await
            .map_err(|e| snap_write_err(meta, e))?
            .map_err(|e| snap_write_err(meta, e))?;
        let seq = new_state.chat.last_event_seq();
        {
            let mut st = self.write_state()?;
            *st = new_state;
        }
        self.hub.reset(seq);
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            last_log_id = ?meta.last_log_id,
            bytes = size,
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.snapshots
            .current_snapshot()
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::read_snapshot(None, &e),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::state::command::{Batch, Command, Proposal};

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

    #[tokio::test]
    async fn disk_snapshot_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let hub = EventHub::new(16);
        let (meta, applied, chat) = {
            let mut sm = StateStore::open(dir.path(), hub.clone(), false).unwrap();
            assert!(sm.get_current_snapshot().await.unwrap().is_none());
            sm.apply(entries()).await.unwrap();
            let mut b = sm.get_snapshot_builder().await;
            b.build_snapshot().await.unwrap();
            // A second build replaces the first on disk.
            let mut snap = b.build_snapshot().await.unwrap();
            let built = std::mem::replace(
                &mut snap.snapshot,
                Box::new(SnapshotBody::memory(Vec::new())),
            );
            let built = built.into_bytes().await.unwrap();
            let files = fs::read_dir(dir.path().join(SNAPSHOT_DIR)).unwrap().count();
            assert_eq!(files, 1);
            // Served from the file, byte for byte what was built.
            let served = sm.get_current_snapshot().await.unwrap().unwrap();
            assert!(matches!(*served.snapshot, SnapshotBody::File { .. }));
            assert_eq!(served.snapshot.into_bytes().await.unwrap(), built);
            let applied = sm.applied_state().await.unwrap();
            let chat = sm.shared().read().unwrap().chat.digest();
            (snap.meta, applied, chat)
        };
        let mut sm = StateStore::open(dir.path(), hub.clone(), true).unwrap();
        // Before the state is loaded, the snapshot's meta answers.
        assert_eq!(sm.applied_state().await.unwrap(), applied);
        // A follower's decode waits for its gate.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!*sm.loaded().borrow());
        sm.take_load_gate().expect("a follower's gate").open();
        wait_loaded(&sm.loaded()).await.unwrap();
        assert_eq!(sm.applied_state().await.unwrap(), applied);
        assert_eq!(sm.shared().read().unwrap().chat.digest(), chat);
        let cur = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(cur.meta, meta);

        // Install it on a fresh disk store and reopen that one too.
        let dir2 = tempfile::tempdir().unwrap();
        {
            let mut f = StateStore::open(dir2.path(), hub.clone(), false).unwrap();
            let mut rx = f.begin_receiving_snapshot().await.unwrap();
            *rx = *cur.snapshot;
            f.install_snapshot(&cur.meta, rx).await.unwrap();
            assert_eq!(f.applied_state().await.unwrap(), applied);
        }
        let mut f = StateStore::open(dir2.path(), hub, false).unwrap();
        wait_loaded(&f.loaded()).await.unwrap();
        assert_eq!(f.applied_state().await.unwrap(), applied);
        assert_eq!(f.get_current_snapshot().await.unwrap().unwrap().meta, meta);
    }

    #[tokio::test]
    async fn snapshot_data_round_trips_and_older_formats_are_refused() {
        let mut sm = StateStore::new_memory(EventHub::new(16));
        sm.apply(entries()).await.unwrap();
        let state = sm.shared();
        let state = state.read().unwrap();
        let current = encode_state(&state).unwrap();
        assert_eq!(current[0], DATA_FORMAT);
        let back = decode_state(&current).unwrap();
        assert_eq!(back.last_applied, state.last_applied);
        assert_eq!(back.membership, state.membership);
        assert_eq!(back.chat, state.chat);
        let mut older = current.clone();
        older[0] = 5;
        let err = decode_state(&older).unwrap_err();
        assert!(err.contains("format 5"), "{err}");
    }

    #[test]
    fn snapshot_file_payload_is_postcard_of_meta_and_data() {
        // Files written before the payload was assembled in parts must
        // still load: the parts concatenate to postcard's `(meta, data)`.
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(3, 77)),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-77-1".into(),
        };
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let (header, prefix) = snapshot_file_head(&meta, &data).unwrap();
        let payload = [prefix.as_slice(), data.as_slice()].concat();
        assert_eq!(payload, postcard::to_stdvec(&(&meta, &data)).unwrap());
        let file = [header.as_slice(), payload.as_slice()].concat();
        let (got_meta, got_data) = decode_snapshot_file(Path::new("x"), &file).unwrap();
        assert_eq!(got_meta, meta);
        assert_eq!(got_data, data.as_slice());
    }

    #[tokio::test]
    async fn corrupt_snapshot_is_hard_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sm = StateStore::open(dir.path(), EventHub::new(16), false).unwrap();
            sm.apply(entries()).await.unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        }
        let snap_dir = dir.path().join(SNAPSHOT_DIR);
        let path = fs::read_dir(&snap_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let err = match StateStore::open(dir.path(), EventHub::new(16), false) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("corrupt snapshot accepted"),
        };
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{err}");
        assert!(err.contains("checksum"), "{err}");
    }
}
