//! Simulated power cuts on a stopped replica's files, for the fault suite
//! (built only with the `fault-injection` feature): loss of unsynced log
//! data ([`cut_after`]) and of the boot marker ([`forget_boot`]).
//!
//! `kill -9` loses nothing that reached `write(2)`: the page cache survives
//! the process. A power cut loses whatever was written but not yet
//! `fdatasync`ed. From outside the process we cannot see the synced length,
//! so [`cut_after`] never guesses it: the caller names the last log index
//! `keep` that must survive (see the testkit's `nemesis::lose_unsynced_tail` for how it is
//! proven to bound everything the replica ever acknowledged) and only
//! records after it, in the last segment, are cut — the first of them torn
//! at a random byte, as a crash mid-`write` leaves it. Cut bytes become
//! zeros, as the WAL's preallocated tail reads where nothing reached the disk.
//!
//! Record layout (see [`super::wal`]):
//! `[payload len u32 LE][crc32 u32 LE][index u64 LE][payload]`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use super::wal::{crc_of, RECORD_HEADER_LEN};
use super::{log_store, meta_file};

/// What [`cut_after`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub segment: PathBuf,
    /// The segment's length, which the cut keeps.
    pub file_len: u64,
    /// Where the zeros now start.
    pub cut_at: u64,
    /// First and last index of the records removed (the first one torn when
    /// `cut_at` is not its start).
    pub first_dropped: u64,
    pub last_dropped: u64,
}

/// Why nothing was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCut {
    /// No record after `keep` in the last segment.
    NothingAfter { last_index: Option<u64> },
    /// The whole last segment lies after `keep`; deleting segments is not
    /// something a power cut does to an fsynced directory, so we leave it.
    WholeSegment { first_index: u64 },
}

/// A record's index and byte range in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordSpan {
    index: u64,
    start: u64,
    len: u64,
}

/// Makes the next open of `dir` treat its log as written in another boot
/// of the machine, as a power cut and reboot would (for fault tests): a
/// replica that led then does not resume its term (see `LogStore::open`).
pub fn forget_boot(dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(dir.join(log_store::BOOT_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => meta_file::sync_dir(dir),
    }
}

/// The segments of `storage_dir/log`, oldest first.
pub fn segments(storage_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(storage_dir.join("log"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    Ok(segs)
}

/// The complete records of a segment's bytes; stops at a torn tail or at
/// the preallocated zeros.
fn spans(bytes: &[u8]) -> Vec<RecordSpan> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let header = RECORD_HEADER_LEN as usize;
    while at + header <= bytes.len() {
        let word = |o: usize, n: usize| &bytes[at + o..at + o + n];
        let len = u32::from_le_bytes(word(0, 4).try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(word(4, 4).try_into().unwrap_or([0; 4]));
        let index = u64::from_le_bytes(word(8, 8).try_into().unwrap_or([0; 8]));
        let total = header + len;
        if len == 0 || at + total > bytes.len() || crc_of(index, word(header, len)) != crc {
            break;
        }
        out.push(RecordSpan {
            index,
            start: at as u64,
            len: total as u64,
        });
        at += total;
    }
    out
}

/// Index of the last record in a stopped replica's log, if any.
pub fn last_index(storage_dir: &Path) -> io::Result<Option<u64>> {
    let Some(segment) = segments(storage_dir)?.pop() else {
        return Ok(None);
    };
    Ok(spans(&std::fs::read(segment)?).last().map(|s| s.index))
}

/// Cuts the last segment of a stopped replica's log after the record with
/// index `keep`, zeroing the rest of the file; the first removed record is
/// cut `tear(its length)` bytes in (0 = on the record boundary).
pub fn cut_after(
    storage_dir: &Path,
    keep: u64,
    tear: impl FnOnce(u64) -> u64,
) -> io::Result<Result<Cut, NoCut>> {
    let Some(segment) = segments(storage_dir)?.pop() else {
        return Ok(Err(NoCut::NothingAfter { last_index: None }));
    };
    let bytes = std::fs::read(&segment)?;
    let spans = spans(&bytes);
    let Some(pos) = spans.iter().position(|s| s.index > keep) else {
        return Ok(Err(NoCut::NothingAfter {
            last_index: spans.last().map(|s| s.index),
        }));
    };
    if pos == 0 {
        return Ok(Err(NoCut::WholeSegment {
            first_index: spans[0].index,
        }));
    }
    let first = spans[pos];
    let cut_at = first.start + tear(first.len).min(first.len - 1);
    let last_dropped = spans.last().map_or(first.index, |s| s.index);
    let file = OpenOptions::new().write(true).open(&segment)?;
    let zeros = vec![0u8; bytes.len() - cut_at as usize];
    std::os::unix::fs::FileExt::write_all_at(&file, &zeros, cut_at)?;
    file.sync_all()?;
    Ok(Ok(Cut {
        segment,
        file_len: bytes.len() as u64,
        cut_at,
        first_dropped: first.index,
        last_dropped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64, payload: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        r.extend_from_slice(&crc_of(index, payload).to_le_bytes());
        r.extend_from_slice(&index.to_le_bytes());
        r.extend_from_slice(payload);
        r
    }

    fn log_dir(records: &[(u64, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("log")).unwrap();
        let bytes: Vec<u8> = records.iter().flat_map(|(i, p)| record(*i, p)).collect();
        std::fs::write(
            dir.path()
                .join("log")
                .join(format!("{:020}.seg", records[0].0)),
            bytes,
        )
        .unwrap();
        dir
    }

    #[test]
    fn cuts_after_keep_tearing_the_first_dropped_record() {
        let dir = log_dir(&[(5, b"aaaa"), (6, b"bbbb"), (7, b"cc")]);
        let cut = cut_after(dir.path(), 5, |len| len / 2).unwrap().unwrap();
        assert_eq!((cut.first_dropped, cut.last_dropped), (6, 7));
        assert_eq!(cut.file_len, 20 + 20 + 18);
        assert_eq!(cut.cut_at, 20 + 10);
        let bytes = std::fs::read(&cut.segment).unwrap();
        assert_eq!(bytes.len(), 58, "the file keeps its length");
        assert!(
            bytes[30..].iter().all(|&b| b == 0),
            "the cut bytes are zeros"
        );
        assert_eq!(last_index(dir.path()).unwrap(), Some(5));
    }

    #[test]
    fn keeps_what_must_survive() {
        let dir = log_dir(&[(5, b"aaaa"), (6, b"bbbb")]);
        assert_eq!(
            cut_after(dir.path(), 6, |_| 0).unwrap(),
            Err(NoCut::NothingAfter {
                last_index: Some(6)
            })
        );
        assert_eq!(
            cut_after(dir.path(), 4, |_| 0).unwrap(),
            Err(NoCut::WholeSegment { first_index: 5 })
        );
    }

    #[test]
    fn a_tear_never_removes_the_whole_record_boundary_beyond() {
        let dir = log_dir(&[(1, b"a"), (2, b"bbbb")]);
        let cut = cut_after(dir.path(), 1, |len| len + 100).unwrap().unwrap();
        assert_eq!(cut.cut_at, 17 + 19, "at most one byte short of the record");
    }
}
