//! A segmented, append-only, checksummed write-ahead log of opaque records.
//!
//! It knows nothing about Raft: a record is a `u64` index plus a byte payload,
//! and indices strictly increase. The WAL does not insist on `last + 1`
//! (openraft's own conformance suite appends logs with holes, and a log
//! purged past its end by a snapshot install restarts at any index); the log
//! store checks that the recovered Raft log is gap-free.
//!
//! # Layout
//!
//! `DIR/NNNNNNNNNNNNNNNNNNNN.seg`, named by the zero-padded index of the
//! segment's first record. Each record is
//!
//! ```text
//! [payload len u32 LE][crc32 u32 LE over (index u64 LE ++ payload)][index u64 LE][payload]
//! ```
//!
//! # Durability
//!
//! * `write` writes all records of the call with one positional write; `sync`
//!   then `fdatasync`s them (the log writer reports a leader's own records
//!   between the two, see `durability`). A new segment is started (file
//!   created, directory fsynced, the previous one cut to its records and
//!   synced) when the current one has reached the size limit.
//! * The active segment is kept [`PREALLOCATE`] bytes of written zeros ahead
//!   of its records, so most appends overwrite blocks the file already owns:
//!   their `fdatasync` then flushes data only, with no journal commit for a
//!   new file size (on this project's VM, five concurrent 600-byte
//!   append-and-`fdatasync` loops took p50 0.54–0.88 ms, overwriting
//!   0.39–0.53 ms; BENCHMARKS.md). One write in each [`PREALLOCATE`] bytes
//!   carries the next zeros, and pays the size change.
//! * `truncate_from` deletes later segments newest-first, fsyncs the directory,
//!   then shortens the segment holding the cut and fsyncs it. Every crash
//!   point leaves a gap-free prefix of the old log.
//! * `purge_upto` deletes wholly purged segments oldest-first; a partly
//!   purged one stays whole until a later purge passes it. (Earlier
//!   releases rewrote that segment's live tail into a new file; a crash in
//!   the middle left a `.tmp` file, or the old segment overlapping the new
//!   one, and recovery still removes both.)
//!
//! # Recovery
//!
//! Segments are scanned in order. A segment's records end where only zeros
//! follow (the preallocated tail). Only the last segment may end in a torn
//! write, that is in records written but never synced, which a power cut
//! leaves partly on disk: the page cache writes pages back in any order, so
//! a page in the middle may never have been written while later ones were.
//! A record whose checksum fails is taken for such a tail when only zeros
//! follow it, or when one of its pages reads as zeros from the record's start
//! to the page's end (what a page never written back past the last sync
//! holds); so is a header or payload that runs past EOF. Every record after
//! an unsynced one is unsynced too. That tail is logged (`warn`) and cut off.
//! Anything else — a bad checksum on a record with data after it in its
//! pages, an index that does not increase (or does not match the segment
//! name), any damage in an earlier segment — is a
//! hard error naming the file and byte offset: data is never silently dropped.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::meta_file::{sync_dir, with_path};
use super::StorageOpenError;

/// Bytes before each payload: len, crc, index.
/// Largest payload a record may carry; a longer length field is damage.
pub const MAX_RECORD_LEN: u64 = 256 * 1024 * 1024;

pub const RECORD_HEADER_LEN: u64 = 16;
/// Roll to a new segment once the current one reaches this size. A purge
/// deletes whole segments only, so up to one segment of purged entries
/// stays on disk.
pub const DEFAULT_SEGMENT_LIMIT: u64 = 16 << 20;
/// Bytes of zeros the active segment keeps written ahead of its records.
pub const PREALLOCATE: u64 = 1 << 20;
/// The page cache writes a file back in pages of this size, in any order.
const PAGE: usize = 4096;

const SEGMENT_EXT: &str = "seg";

/// One segment file and where its records start.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first: u64,
    /// (index, byte offset) of every record, in order.
    offsets: Vec<(u64, u64)>,
    /// Valid length in bytes.
    len: u64,
}

impl Segment {
    fn last(&self) -> Option<u64> {
        self.offsets.last().map(|(i, _)| *i)
    }

    /// Position of the first record with index `>= index`.
    fn position(&self, index: u64) -> usize {
        self.offsets.partition_point(|(i, _)| *i < index)
    }
}

/// The write-ahead log. All methods block on disk I/O; callers run them on a
/// dedicated thread.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_limit: u64,
    segments: Vec<Segment>,
    /// Write handle of the last segment.
    active: Option<Active>,
}

/// The last segment, open for writing.
#[derive(Debug)]
struct Active {
    file: File,
    /// The file's length: its records, then zeros up to here.
    size: u64,
}

impl Active {
    fn open(path: &Path) -> io::Result<Active> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| with_path("open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| with_path("stat", path, e))?
            .len();
        Ok(Active { file, size })
    }
}

/// A segment's bytes as mapped from the page cache: recovery reads every
/// record in place instead of copying the log into fresh buffers, which on
/// a machine that backs memory lazily costs more than the reading.
struct Mapped(Option<memmap2::Mmap>);

impl std::ops::Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

fn map_segment(path: &Path) -> Result<Mapped, StorageOpenError> {
    let file = File::open(path).map_err(|e| StorageOpenError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageOpenError::io("stat", path, e))?
        .len();
    if len == 0 {
        // An empty file cannot be mapped.
        return Ok(Mapped(None));
    }
    // SAFETY: the log directory is written only by this process's log
    // writer, which starts after recovery; recovery drops a mapping before
    // it shortens that file, and drops them all before returning.
    // Populated: one call maps every page instead of a fault per page.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| StorageOpenError::io("map", path, e))?;
    Ok(Mapped(Some(map)))
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{SEGMENT_EXT}"))
}

/// A record's checksum.
pub fn crc_of(index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn encode_into(buf: &mut Vec<u8>, index: u64, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "WAL record larger than 4 GiB"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc_of(index, payload).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

/// Result of scanning one segment file.
struct Scan {
    offsets: Vec<(u64, u64)>,
    valid_len: u64,
    /// (offset, reason) of a torn tail that must be cut off.
    torn: Option<(u64, String)>,
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// What is wrong with the record where a scan stopped.
enum Bad {
    /// It runs past the end of the file: an interrupted final write.
    Cut,
    /// Its checksum fails; torn if [`unsynced_shaped`] says so.
    Checksum { end: u64 },
    /// Damage no write of ours leaves, torn or not.
    Damaged,
}

/// Parses a segment. `is_last` enables torn-tail tolerance.
fn scan_segment(
    path: &Path,
    bytes: &[u8],
    first: u64,
    is_last: bool,
) -> Result<Scan, StorageOpenError> {
    let n = bytes.len() as u64;
    let mut off = 0u64;
    // The first record must carry the segment's name; later ones increase.
    let mut prev: Option<u64> = None;
    let mut offsets = Vec::new();
    while off < n {
        let rest = &bytes[off as usize..];
        let parsed: Result<(u64, u64), (String, Bad)> = if (rest.len() as u64) < RECORD_HEADER_LEN {
            Err(("incomplete record header".into(), Bad::Cut))
        } else {
            let len = u64::from(read_u32(rest));
            let crc = read_u32(&rest[4..]);
            let index = read_u64(&rest[8..]);
            let end = off + RECORD_HEADER_LEN + len;
            if len > MAX_RECORD_LEN {
                // We never write such a record, so this is not a torn
                // write but a damaged length field.
                Err((
                    format!("record length {len} exceeds the {MAX_RECORD_LEN}-byte limit"),
                    Bad::Damaged,
                ))
            } else if end > n {
                Err((
                    format!("record of {len} bytes runs past end of file"),
                    Bad::Cut,
                ))
            } else {
                let payload = &bytes[(off + RECORD_HEADER_LEN) as usize..end as usize];
                if crc_of(index, payload) != crc {
                    Err(("checksum mismatch".into(), Bad::Checksum { end }))
                } else if prev.map_or(index != first, |p| index <= p) {
                    let want =
                        prev.map_or(format!("index {first}"), |p| format!("an index above {p}"));
                    Err((
                        format!("expected {want}, found index {index}"),
                        Bad::Damaged,
                    ))
                } else {
                    Ok((index, end))
                }
            }
        };
        match parsed {
            Ok((index, end)) => {
                offsets.push((index, off));
                off = end;
                prev = Some(index);
            }
            Err((reason, bad)) => {
                if rest.iter().all(|&b| b == 0) {
                    // The preallocated tail: the records end here. (A sealed
                    // segment is cut to its records, but one an interrupted
                    // purge left behind keeps its zeros; a segment that lost
                    // records to zeros leaves a gap the log store refuses.)
                    return Ok(Scan {
                        offsets,
                        valid_len: off,
                        torn: None,
                    });
                }
                let torn = match bad {
                    Bad::Cut => true,
                    Bad::Damaged => false,
                    Bad::Checksum { end } => unsynced_shaped(bytes, off as usize, end as usize),
                };
                if is_last && torn {
                    return Ok(Scan {
                        offsets,
                        valid_len: off,
                        torn: Some((off, reason)),
                    });
                }
                let why = if is_last {
                    "more data follows, so this is not a torn write"
                } else {
                    "not the last segment"
                };
                return Err(StorageOpenError::Corrupt {
                    path: path.to_path_buf(),
                    offset: off,
                    reason: format!("{reason} ({why})"),
                });
            }
        }
    }
    Ok(Scan {
        offsets,
        valid_len: off,
        torn: None,
    })
}

/// Writes `len` zero bytes at `at`, from a static buffer: no allocation and
/// no fresh memory to fault in.
fn write_zeros(file: &File, mut at: u64, len: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let end = at + len;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Whether the record at `off..end` whose checksum fails looks written but
/// never synced: only zeros follow it (or nothing), or one of the pages it
/// lies in was never written back. Such a page still holds what was synced,
/// so from the record (which lies past the last sync) to the page's end it
/// reads as the preallocated zeros.
fn unsynced_shaped(bytes: &[u8], off: usize, end: usize) -> bool {
    if bytes[end..].iter().all(|&b| b == 0) {
        return true;
    }
    let mut page_start = off / PAGE * PAGE;
    while page_start < end {
        let page_end = (page_start + PAGE).min(bytes.len());
        if bytes[off.max(page_start)..page_end].iter().all(|&b| b == 0) {
            return true;
        }
        page_start += PAGE;
    }
    false
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovers it and hands
    /// every record to `visit` in index order, straight from the mapped
    /// segment (a visitor that keeps a payload copies it).
    pub fn open(
        dir: &Path,
        segment_limit: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<(), StorageOpenError>,
    ) -> Result<Wal, StorageOpenError> {
        fs::create_dir_all(dir).map_err(|e| StorageOpenError::io("create dir", dir, e))?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        let listing = fs::read_dir(dir).map_err(|e| StorageOpenError::io("list", dir, e))?;
        let mut removed_tmp = false;
        for item in listing {
            let item = item.map_err(|e| StorageOpenError::io("list", dir, e))?;
            let path = item.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                // An unfinished purge rewrite; the original is still in place.
                fs::remove_file(&path).map_err(|e| StorageOpenError::io("remove", &path, e))?;
                removed_tmp = true;
                continue;
            }
            if let Some(stem) = name.strip_suffix(".seg") {
                let first = stem.parse::<u64>().map_err(|_| StorageOpenError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: "segment file name is not an index".into(),
                })?;
                names.push((first, path));
            }
        }
        if removed_tmp {
            sync_dir(dir).map_err(|e| StorageOpenError::io("fsync dir", dir, e))?;
        }
        names.sort();

        let mut segments: Vec<Segment> = Vec::new();
        let mut maps: Vec<Mapped> = Vec::new();
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let mut bytes = map_segment(&path)?;
            let scan = scan_segment(&path, &bytes, first, is_last)?;
            if let Some((offset, reason)) = &scan.torn {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    discarded_bytes = bytes.len() as u64 - offset,
                    reason = %reason,
                    "WAL: discarding torn tail of last segment"
                );
                // Never shorten a file while it is mapped.
                drop(bytes);
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageOpenError::io("open", &path, e))?;
                f.set_len(scan.valid_len)
                    .map_err(|e| StorageOpenError::io("truncate", &path, e))?;
                f.sync_all()
                    .map_err(|e| StorageOpenError::io("fsync", &path, e))?;
                bytes = map_segment(&path)?;
            }
            if scan.offsets.is_empty() {
                if !is_last {
                    return Err(StorageOpenError::Corrupt {
                        path,
                        offset: 0,
                        reason: "empty segment before the last one".into(),
                    });
                }
                // Created by a roll (or emptied by a torn write) before any
                // record became durable.
                fs::remove_file(&path).map_err(|e| StorageOpenError::io("remove", &path, e))?;
                sync_dir(dir).map_err(|e| StorageOpenError::io("fsync dir", dir, e))?;
                continue;
            }
            segments.push(Segment {
                path,
                first,
                offsets: scan.offsets,
                len: scan.valid_len,
            });
            maps.push(bytes);
        }

        // Leftovers of an interrupted purge rewrite: an older segment that the
        // next one (its rewritten tail) overlaps. Delete the older one.
        let mut k = 0;
        while k + 1 < segments.len() {
            let (prev_first, prev_last) = (segments[k].first, segments[k].last().unwrap_or(0));
            let next = &segments[k + 1];
            let next_last = next.last().unwrap_or(0);
            if next.first > prev_first && next.first <= prev_last {
                if next_last < prev_last {
                    return Err(StorageOpenError::Corrupt {
                        path: next.path.clone(),
                        offset: 0,
                        reason: format!(
                            "segment overlaps {} but does not cover it",
                            segments[k].path.display()
                        ),
                    });
                }
                let old = segments.remove(k);
                drop(maps.remove(k));
                tracing::warn!(file = %old.path.display(), "WAL: removing segment left by an interrupted purge");
                fs::remove_file(&old.path)
                    .map_err(|e| StorageOpenError::io("remove", &old.path, e))?;
                sync_dir(dir).map_err(|e| StorageOpenError::io("fsync dir", dir, e))?;
                continue;
            }
            if next.first <= prev_last {
                return Err(StorageOpenError::Corrupt {
                    path: next.path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment starts at index {} but the previous one ends at {prev_last}",
                        next.first
                    ),
                });
            }
            k += 1;
        }

        let active = match segments.last() {
            Some(s) => {
                let a =
                    Active::open(&s.path).map_err(|e| StorageOpenError::io("open", &s.path, e))?;
                // A previous process may have written records it had not
                // synced yet (the leader reports its own appends early, see
                // `durability`): they are in the page cache, and from here on
                // they are treated as on disk, so make them so.
                a.file
                    .sync_data()
                    .map_err(|e| StorageOpenError::io("fdatasync", &s.path, e))?;
                Some(a)
            }
            None => None,
        };
        for (segment, bytes) in segments.iter().zip(&maps) {
            for &(index, off) in &segment.offsets {
                // Checked by `scan_segment`: the record lies within the file.
                let start = (off + RECORD_HEADER_LEN) as usize;
                let len = read_u32(&bytes[off as usize..]) as usize;
                visit(index, &bytes[start..start + len])?;
            }
        }
        drop(maps);
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_limit: segment_limit.max(1),
            segments,
            active,
        };
        Ok(wal)
    }

    /// Index of the first record, if any.
    #[cfg(test)]
    pub fn first_index(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first)
    }

    /// Index of the last record, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.segments.last().and_then(|s| s.last())
    }

    /// Appends consecutive records with one write and one `fdatasync`.
    #[cfg(test)]
    pub fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        self.write(records)?;
        self.sync()
    }

    /// Appends consecutive records with one write, without syncing them:
    /// they are durable after the next [`Wal::sync`].
    pub fn write(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let Some((first, _)) = records.first() else {
            return Ok(());
        };
        let mut prev = self.last_index();
        for (index, payload) in records {
            if payload.len() as u64 > MAX_RECORD_LEN {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "WAL record {index} is {} bytes, over the limit",
                        payload.len()
                    ),
                ));
            }
            if prev.is_some_and(|p| *index <= p) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "WAL append out of order: index {index} after {}",
                        prev.unwrap_or_default()
                    ),
                ));
            }
            prev = Some(*index);
        }
        let roll = match self.segments.last() {
            None => true,
            Some(s) => s.len >= self.segment_limit,
        };
        if roll || self.active.is_none() {
            self.seal_active()?;
            let path = segment_path(&self.dir, *first);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| with_path("create", &path, e))?;
            sync_dir(&self.dir).map_err(|e| with_path("fsync dir", &self.dir, e))?;
            self.segments.push(Segment {
                path,
                first: *first,
                offsets: Vec::new(),
                len: 0,
            });
            self.active = Some(Active { file, size: 0 });
        }
        let (Some(seg), Some(active)) = (self.segments.last_mut(), self.active.as_mut()) else {
            return Err(io::Error::other("WAL has no active segment"));
        };
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|(_, p)| p.len() + RECORD_HEADER_LEN as usize)
                .sum(),
        );
        let mut offsets = Vec::with_capacity(records.len());
        for (index, payload) in records {
            offsets.push((*index, seg.len + buf.len() as u64));
            encode_into(&mut buf, *index, payload)?;
        }
        let end = seg.len + buf.len() as u64;
        active
            .file
            .write_all_at(&buf, seg.len)
            .map_err(|e| with_path("write", &seg.path, e))?;
        if end > active.size {
            // Zeros for the writes to come, flushed by this write's sync.
            write_zeros(&active.file, end, PREALLOCATE)
                .map_err(|e| with_path("write", &seg.path, e))?;
            active.size = end + PREALLOCATE;
        }
        seg.len = end;
        seg.offsets.extend(offsets);
        Ok(())
    }

    /// Syncs the active segment cut to its records: only the last segment
    /// may hold unsynced records or zeros after them.
    fn seal_active(&mut self) -> io::Result<()> {
        let (Some(seg), Some(active)) = (self.segments.last(), self.active.as_mut()) else {
            return Ok(());
        };
        if active.size > seg.len {
            active
                .file
                .set_len(seg.len)
                .map_err(|e| with_path("truncate", &seg.path, e))?;
            active.size = seg.len;
        }
        self.sync()
    }

    /// `fdatasync`s the active segment: every record written so far is then
    /// durable (older segments were synced before the next one was started).
    pub fn sync(&mut self) -> io::Result<()> {
        let (Some(seg), Some(active)) = (self.segments.last(), self.active.as_ref()) else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        active
            .file
            .sync_data()
            .map_err(|e| with_path("fdatasync", &seg.path, e))?;
        crate::metrics::observe_fsync(started.elapsed());
        Ok(())
    }

    /// Removes every record with index `>= index`.
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some(last) = self.last_index() else {
            return Ok(());
        };
        if index > last {
            return Ok(());
        }
        // Drop whole segments newest-first so every crash point leaves a prefix.
        let mut removed = false;
        while let Some(seg) = self.segments.last() {
            if seg.first < index {
                break;
            }
            self.active = None;
            fs::remove_file(&seg.path).map_err(|e| with_path("remove", &seg.path, e))?;
            self.segments.pop();
            removed = true;
        }
        if removed {
            sync_dir(&self.dir).map_err(|e| with_path("fsync dir", &self.dir, e))?;
        }
        if let Some(seg) = self.segments.last_mut() {
            if let Some(seg_last) = seg.last() {
                if index <= seg_last {
                    let keep = seg.position(index);
                    let cut = seg.offsets[keep].1;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&seg.path)
                        .map_err(|e| with_path("open", &seg.path, e))?;
                    f.set_len(cut)
                        .map_err(|e| with_path("truncate", &seg.path, e))?;
                    f.sync_all().map_err(|e| with_path("fsync", &seg.path, e))?;
                    seg.offsets.truncate(keep);
                    seg.len = cut;
                }
            }
        }
        self.reopen_active()
    }

    /// Forgets every record with index `<= index` by deleting the segments
    /// that hold nothing else: [`detach_purged`](Self::detach_purged), then
    /// [`delete_segments`].
    pub fn purge_upto(&mut self, index: u64) -> io::Result<()> {
        let detached = self.detach_purged(index)?;
        delete_segments(&self.dir, &detached)
    }

    /// Takes the segments holding only records `<= index` out of the log,
    /// oldest first, and returns their files for [`delete_segments`], which
    /// may run on another thread: this log no longer touches them. A
    /// segment holding both purged and live records stays whole until a
    /// later purge passes it, and recovery hands out its purged records too
    /// (the caller skips them). Rewriting its live tail instead held back
    /// every append on the writer thread, on all replicas at once since
    /// they purge at about the same entry (BENCHMARKS.md, "History on
    /// disk").
    pub fn detach_purged(&mut self, index: u64) -> io::Result<Vec<PathBuf>> {
        let mut detached = Vec::new();
        while let Some(seg) = self.segments.first() {
            match seg.last() {
                Some(l) if l > index => break,
                _ => {}
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            detached.push(self.segments.remove(0).path);
        }
        if !detached.is_empty() {
            self.reopen_active()?;
        }
        Ok(detached)
    }

    fn reopen_active(&mut self) -> io::Result<()> {
        self.active = match self.segments.last() {
            Some(s) => Some(Active::open(&s.path)?),
            None => None,
        };
        Ok(())
    }
}

/// Deletes segment files that [`Wal::detach_purged`] returned, oldest
/// first (a crash leaves the newer ones, still contiguous with the log),
/// then fsyncs `dir`.
pub fn delete_segments(dir: &Path, segments: &[PathBuf]) -> io::Result<()> {
    if segments.is_empty() {
        return Ok(());
    }
    for path in segments {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(with_path("remove", path, e))
            }
            _ => {}
        }
    }
    sync_dir(dir).map_err(|e| with_path("fsync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Record = (u64, Vec<u8>);

    /// Opens the log and collects what recovery hands out.
    fn open(dir: &Path, segment_limit: u64) -> Result<(Wal, Vec<Record>), StorageOpenError> {
        let mut got = Vec::new();
        let wal = Wal::open(dir, segment_limit, |index, payload| {
            got.push((index, payload.to_vec()));
            Ok(())
        })?;
        Ok((wal, got))
    }

    fn rec(i: u64) -> Record {
        (i, format!("payload-{i:05}-xyz").into_bytes())
    }

    fn recs(r: std::ops::RangeInclusive<u64>) -> Vec<Record> {
        r.map(rec).collect()
    }

    fn seg_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    /// Bytes the records `r` take in a segment.
    fn span(r: std::ops::RangeInclusive<u64>) -> u64 {
        r.map(|i| RECORD_HEADER_LEN + rec(i).1.len() as u64).sum()
    }

    /// Cuts a segment file to `len` bytes, as a power cut may leave it.
    fn cut(path: &Path, len: u64) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn append_reopen_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert!(got.is_empty());
        wal.append(&recs(1..=3)).unwrap();
        wal.append(&recs(4..=4)).unwrap();
        assert!(
            wal.append(&recs(3..=3)).is_err(),
            "going back must be refused"
        );
        drop(wal);
        let (wal, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, recs(1..=4));
        assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(4)));
    }

    #[test]
    fn rollover_creates_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), 100).unwrap();
        for i in 1..=10 {
            wal.append(&recs(i..=i)).unwrap();
        }
        let files = seg_files(dir.path());
        assert!(files.len() > 2, "{files:?}");
        assert!(files[0].ends_with("00000000000000000001.seg"));
        drop(wal);
        let (_, got) = open(dir.path(), 100).unwrap();
        assert_eq!(got, recs(1..=10));
    }

    #[test]
    fn truncate_from_removes_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), 100).unwrap();
        for i in 1..=10 {
            wal.append(&recs(i..=i)).unwrap();
        }
        wal.truncate_from(5).unwrap();
        assert_eq!(wal.last_index(), Some(4));
        wal.append(&recs(5..=6)).unwrap();
        drop(wal);
        let (mut wal, got) = open(dir.path(), 100).unwrap();
        assert_eq!(got, recs(1..=6));
        wal.truncate_from(1).unwrap();
        assert_eq!(wal.last_index(), None);
        assert!(seg_files(dir.path()).is_empty());
        wal.append(&recs(1..=2)).unwrap();
        drop(wal);
        assert_eq!(open(dir.path(), 100).unwrap().1, recs(1..=2));
    }

    #[test]
    fn purge_deletes_the_segments_it_passes_and_keeps_the_one_it_splits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), 120).unwrap();
        for i in 1..=10 {
            wal.append(&recs(i..=i)).unwrap();
        }
        let before = seg_files(dir.path()).len();
        // Four records a segment: 1-4, 5-8, 9-10. Index 6 splits the second.
        wal.purge_upto(6).unwrap();
        let files = seg_files(dir.path());
        assert!(files.len() < before);
        let first = fs::read(&files[0]).unwrap();
        assert!(contains(&first, &rec(6).1) && contains(&first, &rec(7).1));
        for f in &files {
            let bytes = fs::read(f).unwrap();
            for i in 1..=4 {
                assert!(!contains(&bytes, &rec(i).1), "record {i} still in {f:?}");
            }
        }
        wal.append(&recs(11..=11)).unwrap();
        drop(wal);
        // The split segment's purged records come back; the log store skips them.
        let (mut wal, got) = open(dir.path(), 120).unwrap();
        assert_eq!(got, recs(5..=11));
        // Purge past the end empties the log; any index may follow.
        wal.purge_upto(20).unwrap();
        assert!(seg_files(dir.path()).is_empty());
        wal.append(&recs(21..=21)).unwrap();
        drop(wal);
        assert_eq!(open(dir.path(), 120).unwrap().1, recs(21..=21));
    }

    /// What an interrupted purge of an earlier release left: the segment's
    /// rewritten tail under its new first index next to the original, and
    /// an unfinished `.tmp`.
    #[test]
    fn an_interrupted_purge_rewrite_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        wal.append(&recs(1..=5)).unwrap();
        drop(wal);
        let tail = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(tail.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        wal.append(&recs(3..=5)).unwrap();
        drop(wal);
        let rewritten = "00000000000000000003.seg";
        fs::copy(tail.path().join(rewritten), dir.path().join(rewritten)).unwrap();
        fs::write(dir.path().join("00000000000000000004.seg.tmp"), b"partial").unwrap();
        let old = dir.path().join("00000000000000000001.seg");
        let (_, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, recs(3..=5));
        assert!(!old.exists());
        assert_eq!(seg_files(dir.path()), vec![dir.path().join(rewritten)]);
    }

    #[test]
    fn active_segment_keeps_zeros_ahead_and_sealed_ones_are_cut_to_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), 200).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        let first = dir.path().join("00000000000000000001.seg");
        let bytes = fs::read(&first).unwrap();
        assert_eq!(bytes.len() as u64, span(1..=3) + PREALLOCATE);
        assert!(bytes[span(1..=3) as usize..].iter().all(|&b| b == 0));
        // Later appends overwrite the zeros: the file does not grow.
        wal.append(&recs(4..=4)).unwrap();
        assert_eq!(
            fs::metadata(&first).unwrap().len(),
            span(1..=3) + PREALLOCATE
        );
        drop(wal);
        // Reopening finds the records' end inside the zeros, and goes on.
        let (mut wal, got) = open(dir.path(), 200).unwrap();
        assert_eq!(got, recs(1..=4));
        for i in 5..=20 {
            wal.append(&recs(i..=i)).unwrap();
        }
        drop(wal);
        let files = seg_files(dir.path());
        assert!(files.len() > 2, "{files:?}");
        for sealed in &files[..files.len() - 1] {
            let bytes = fs::read(sealed).unwrap();
            assert!(
                bytes.last() != Some(&0),
                "{} ends in zeros",
                sealed.display()
            );
        }
        let (_, got) = open(dir.path(), 200).unwrap();
        assert_eq!(got, recs(1..=20));
    }

    #[test]
    fn torn_tail_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        drop(wal);
        let path = dir.path().join("00000000000000000001.seg");
        // Cut the last record in half.
        cut(&path, span(1..=3) - span(3..=3) / 2);
        let (mut wal, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, recs(1..=2));
        wal.append(&recs(3..=5)).unwrap();
        drop(wal);
        // A bad checksum on a final record that only zeros follow.
        let mut bytes = fs::read(&path).unwrap();
        bytes[span(1..=5) as usize - 1] ^= 0x55;
        fs::write(&path, &bytes).unwrap();
        let (_, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, recs(1..=4));
        // The same record ending exactly at EOF.
        fs::write(&path, &bytes[..span(1..=5) as usize]).unwrap();
        let (_, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, recs(1..=4));
    }

    #[test]
    fn never_written_page_between_unsynced_records_is_a_torn_tail() {
        // A power cut keeps unsynced pages in any order: record 2's page
        // never reached the disk (zeros), a later page did.
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        let big = |i: u64| (i, vec![i as u8 | 0x80; 3000]);
        wal.append(&[big(1)]).unwrap();
        wal.append(&[big(2), big(3), big(4)]).unwrap();
        drop(wal);
        let path = dir.path().join("00000000000000000001.seg");
        let mut bytes = fs::read(&path).unwrap();
        let page = PAGE;
        assert!(bytes[page..2 * page].iter().any(|&b| b != 0));
        bytes[page..2 * page].fill(0);
        fs::write(&path, &bytes).unwrap();
        let (_, got) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        assert_eq!(got, vec![big(1)]);
    }

    #[test]
    fn damaged_length_field_is_not_mistaken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        wal.append(&recs(1..=4)).unwrap();
        drop(wal);
        let path = dir.path().join("00000000000000000001.seg");
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] = 0xFF; // high byte of record 1's length
        fs::write(&path, &bytes).unwrap();
        let err = open(dir.path(), DEFAULT_SEGMENT_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("00000000000000000001.seg") && err.contains("offset 0"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_middle_record_is_hard_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap();
        wal.append(&recs(1..=4)).unwrap();
        drop(wal);
        let path = dir.path().join("00000000000000000001.seg");
        let mut bytes = fs::read(&path).unwrap();
        bytes[RECORD_HEADER_LEN as usize + 2] ^= 0x01; // payload of record 1
        fs::write(&path, &bytes).unwrap();
        let err = open(dir.path(), DEFAULT_SEGMENT_LIMIT).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("00000000000000000001.seg"), "{msg}");
        assert!(msg.contains("offset 0"), "{msg}");
        // The file was left alone for the operator.
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn corruption_in_earlier_segment_is_hard_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path(), 60).unwrap();
        for i in 1..=6 {
            wal.append(&recs(i..=i)).unwrap();
        }
        drop(wal);
        let files = seg_files(dir.path());
        assert!(files.len() >= 2);
        let first = &files[0];
        let mut bytes = fs::read(first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(first, &bytes).unwrap();
        let err = open(dir.path(), 60).unwrap_err().to_string();
        assert!(err.contains("00000000000000000001.seg"), "{err}");
        assert!(err.contains("not the last segment"), "{err}");
    }
}
