//! The bytes of a snapshot as openraft streams them: in memory (a snapshot
//! being received, or memory mode), or the state region of a snapshot file.
//!
//! A file-backed body is only opened, never read, until openraft streams it
//! to a follower. That matters because openraft asks for the current
//! snapshot at every start just to learn its meta: reading (and holding) a
//! state of hundreds of megabytes for that cost most of a cold restart and
//! doubled the replica's memory.

use std::io::{self, Cursor, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, ReadBuf};

pub enum SnapshotBody {
    Memory(Cursor<Vec<u8>>),
    /// `file` from byte `start` to its end; positions are relative to
    /// `start`. Read-only.
    File {
        file: File,
        start: u64,
    },
}

impl SnapshotBody {
    pub fn memory(data: Vec<u8>) -> Self {
        SnapshotBody::Memory(Cursor::new(data))
    }

    /// The region of `path` from `start` to its end, positioned at its
    /// beginning.
    pub async fn open_file(path: &Path, start: u64) -> io::Result<Self> {
        let mut file = File::open(path).await?;
        file.seek(SeekFrom::Start(start)).await?;
        Ok(SnapshotBody::File { file, start })
    }

    /// All the bytes, from the beginning.
    pub async fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            SnapshotBody::Memory(cursor) => Ok(cursor.into_inner()),
            SnapshotBody::File { mut file, start } => {
                file.seek(SeekFrom::Start(start)).await?;
                let mut data = Vec::new();
                file.read_to_end(&mut data).await?;
                Ok(data)
            }
        }
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "a snapshot file is not written through openraft",
    )
}

impl AsyncRead for SnapshotBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_read(cx, buf),
            SnapshotBody::File { file, .. } => Pin::new(file).poll_read(cx, buf),
        }
    }
}

impl AsyncSeek for SnapshotBody {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).start_seek(position),
            SnapshotBody::File { file, start } => {
                let position = match position {
                    SeekFrom::Start(n) => SeekFrom::Start(start.saturating_add(n)),
                    other => other,
                };
                Pin::new(file).start_seek(position)
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_complete(cx),
            SnapshotBody::File { file, start } => match Pin::new(file).poll_complete(cx) {
                Poll::Ready(Ok(at)) if at < *start => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "seek before the start of the snapshot",
                ))),
                Poll::Ready(Ok(at)) => Poll::Ready(Ok(at - *start)),
                other => other,
            },
        }
    }
}

impl AsyncWrite for SnapshotBody {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_write(cx, buf),
            SnapshotBody::File { .. } => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_flush(cx),
            SnapshotBody::File { .. } => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_shutdown(cx),
            SnapshotBody::File { .. } => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_file_region_reads_and_seeks_relative_to_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, b"HEADERpayload-bytes").unwrap();
        let mut body = SnapshotBody::open_file(&path, 6).await.unwrap();
        // openraft learns the size by seeking to the end.
        assert_eq!(body.seek(SeekFrom::End(0)).await.unwrap(), 13);
        assert_eq!(body.seek(SeekFrom::Start(8)).await.unwrap(), 8);
        let mut rest = String::new();
        body.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "bytes");
        assert!(
            body.write_all(b"x").await.is_err(),
            "file bodies are read-only"
        );
        assert_eq!(body.into_bytes().await.unwrap(), b"payload-bytes");
    }

    #[tokio::test]
    async fn a_memory_body_is_written_then_read_back() {
        let mut body = SnapshotBody::memory(Vec::new());
        body.write_all(b"abc").await.unwrap();
        body.seek(SeekFrom::Start(1)).await.unwrap();
        let mut rest = Vec::new();
        body.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bc");
        assert_eq!(body.into_bytes().await.unwrap(), b"abc");
    }
}
