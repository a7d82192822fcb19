//! Small, atomically replaced, checksummed files (`vote`, `purged`).
//!
//! Layout: `[magic "RCF1"][len u32 LE][crc32 u32 LE of payload][payload]`,
//! where the payload is postcard. A file is replaced by writing `NAME.tmp`,
//! fsyncing it, renaming it over `NAME` and fsyncing the directory, so a crash
//! leaves either the old or the new content, never a mix. A file whose magic,
//! length or checksum does not match is a hard error: it is never treated as
//! "absent", because forgetting a vote could let this replica vote twice.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StorageOpenError;

const MAGIC: &[u8; 4] = b"RCF1";
const HEADER_LEN: usize = 12;

/// fsyncs a directory so that creating, renaming or deleting a file in it is
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Adds the path (and what was being done) to an io error, so errors that
/// reach openraft or the operator say which file failed.
pub(crate) fn with_path(op: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Atomically and durably replaces `dir/name` with `value`.
pub(crate) fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let payload = postcard::to_stdvec(value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("encode {name}: {e}")))?;
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "meta file too large"))?;
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);

    replace_file(dir, name, &[&buf], true)
}

/// Replaces `dir/name` with `parts` (concatenated) through `name.tmp` and a
/// rename, so a crash leaves the old or the new content, never a mix.
/// `durable` fsyncs the file before the rename and the directory after it.
pub(crate) fn replace_file(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    durable: bool,
) -> io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| with_path("create", &tmp, e))?;
        for part in parts {
            f.write_all(part).map_err(|e| with_path("write", &tmp, e))?;
        }
        if durable {
            f.sync_all().map_err(|e| with_path("fsync", &tmp, e))?;
        }
    }
    fs::rename(&tmp, &path).map_err(|e| with_path("rename", &tmp, e))?;
    if durable {
        sync_dir(dir).map_err(|e| with_path("fsync dir", dir, e))?;
    }
    Ok(())
}

/// Reads `dir/name`; `Ok(None)` if it does not exist. A leftover `NAME.tmp`
/// (crash before the rename) is ignored: the rename is the commit point.
pub(crate) fn load<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, StorageOpenError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageOpenError::io("read", &path, e)),
    };
    decode(&path, &bytes).map(Some)
}

fn decode<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, StorageOpenError> {
    let corrupt = |offset: u64, reason: String| StorageOpenError::Corrupt {
        path: PathBuf::from(path),
        offset,
        reason,
    };
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(corrupt(0, "bad header (magic/length)".into()));
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(corrupt(
            4,
            format!(
                "length {len} does not match {} payload bytes",
                payload.len()
            ),
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt(8, "checksum mismatch".into()));
    }
    let (value, rest) = postcard::take_from_bytes(payload)
        .map_err(|e| corrupt(HEADER_LEN as u64, format!("decode: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt(
            HEADER_LEN as u64,
            "trailing bytes after value".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load::<u64>(dir.path(), "x").unwrap(), None);
        save(dir.path(), "x", &(7u64, Some(9u64))).unwrap();
        assert_eq!(
            load::<(u64, Option<u64>)>(dir.path(), "x").unwrap(),
            Some((7, Some(9)))
        );
        let path = dir.path().join("x");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = load::<(u64, Option<u64>)>(dir.path(), "x").unwrap_err();
        assert!(err.to_string().contains("x"), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
