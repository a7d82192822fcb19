//! The bytes of a snapshot as openraft streams them: in RAM (memory mode), a
//! file (a snapshot being received in disk mode), or a dump written only
//! when something first reads it.
//!
//! The dump is lazy because openraft asks for the current snapshot at every
//! start just to learn its meta; writing a history of gigabytes for that
//! would cost most of a restart. A follower's replication task reads it, so
//! waiting for the dump there delays nothing else.

use std::future::Future;
use std::io::{self, Cursor, Read, SeekFrom};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

/// Writes a dump and returns it, positioned anywhere.
pub type DumpJob = Box<dyn FnOnce() -> io::Result<std::fs::File> + Send>;

pub enum SnapshotBody {
    Memory(Cursor<Vec<u8>>),
    File(File),
    /// Not written yet: the first read or seek starts `job` on a blocking
    /// thread and waits for it.
    Dump {
        job: Option<DumpJob>,
        writing: Option<JoinHandle<io::Result<std::fs::File>>>,
        /// A seek asked for before the dump was ready.
        seek: Option<SeekFrom>,
    },
}

impl SnapshotBody {
    pub fn memory(data: Vec<u8>) -> Self {
        SnapshotBody::Memory(Cursor::new(data))
    }

    pub fn file(file: File) -> Self {
        SnapshotBody::File(file)
    }

    pub fn dump(job: DumpJob) -> Self {
        SnapshotBody::Dump {
            job: Some(job),
            writing: None,
            seek: None,
        }
    }

    /// All the bytes from the beginning, as a blocking reader.
    pub async fn into_reader(mut self) -> io::Result<Box<dyn Read + Send>> {
        self.seek(SeekFrom::Start(0)).await?;
        match self {
            SnapshotBody::Memory(cursor) => Ok(Box::new(cursor)),
            SnapshotBody::File(file) => Ok(Box::new(io::BufReader::new(file.into_std().await))),
            SnapshotBody::Dump { .. } => unreachable!("a seek makes the dump a file"),
        }
    }

    /// All the bytes, from the beginning, in RAM.
    pub async fn into_bytes(self) -> io::Result<Vec<u8>> {
        let mut reader = self.into_reader().await?;
        tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            reader.read_to_end(&mut data)?;
            Ok(data)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Makes a dump a file once it is written; then `self` is not a dump.
    fn poll_dumped(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let SnapshotBody::Dump { job, writing, seek } = self else {
            return Poll::Ready(Ok(()));
        };
        if let Some(job) = job.take() {
            *writing = Some(tokio::task::spawn_blocking(job));
        }
        let Some(task) = writing.as_mut() else {
            return Poll::Ready(Err(io::Error::other("the snapshot dump failed before")));
        };
        let done = ready!(Pin::new(task).poll(cx));
        *writing = None;
        let file = File::from_std(done.map_err(io::Error::other)??);
        let seek = seek.take().unwrap_or(SeekFrom::Start(0));
        *self = SnapshotBody::File(file);
        let SnapshotBody::File(file) = self else {
            unreachable!()
        };
        Poll::Ready(Pin::new(file).start_seek(seek))
    }
}

impl AsyncRead for SnapshotBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let SnapshotBody::Dump { .. } = this {
            ready!(this.poll_dumped(cx))?;
            // Complete the seek the dump's readiness started.
            if let SnapshotBody::File(file) = this {
                ready!(Pin::new(file).poll_complete(cx))?;
            }
        }
        match this {
            SnapshotBody::Memory(c) => Pin::new(c).poll_read(cx, buf),
            SnapshotBody::File(file) => Pin::new(file).poll_read(cx, buf),
            SnapshotBody::Dump { .. } => Poll::Pending,
        }
    }
}

impl AsyncSeek for SnapshotBody {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).start_seek(position),
            SnapshotBody::File(file) => Pin::new(file).start_seek(position),
            SnapshotBody::Dump { seek, .. } => {
                *seek = Some(position);
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        ready!(this.poll_dumped(cx))?;
        match this {
            SnapshotBody::Memory(c) => Pin::new(c).poll_complete(cx),
            SnapshotBody::File(file) => Pin::new(file).poll_complete(cx),
            SnapshotBody::Dump { .. } => Poll::Pending,
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
            SnapshotBody::File(file) => Pin::new(file).poll_write(cx, buf),
            SnapshotBody::Dump { .. } => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_flush(cx),
            SnapshotBody::File(file) => Pin::new(file).poll_flush(cx),
            SnapshotBody::Dump { .. } => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SnapshotBody::Memory(c) => Pin::new(c).poll_shutdown(cx),
            SnapshotBody::File(file) => Pin::new(file).poll_shutdown(cx),
            SnapshotBody::Dump { .. } => Poll::Ready(Ok(())),
        }
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "a snapshot being sent is not written through openraft",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_dump_is_written_on_first_use_and_then_reads_and_seeks_as_a_file() {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let mut body = SnapshotBody::dump(Box::new(move || {
            flag.store(true, Ordering::SeqCst);
            let mut file = tempfile::tempfile()?;
            io::Write::write_all(&mut file, b"payload-bytes")?;
            Ok(file)
        }));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!started.load(Ordering::SeqCst), "nothing read it yet");
        // openraft learns the size by seeking to the end.
        assert_eq!(body.seek(SeekFrom::End(0)).await.unwrap(), 13);
        assert!(started.load(Ordering::SeqCst));
        assert_eq!(body.seek(SeekFrom::Start(8)).await.unwrap(), 8);
        let mut rest = String::new();
        body.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "bytes");
        assert_eq!(body.into_bytes().await.unwrap(), b"payload-bytes");

        // Read without a seek first: from the beginning.
        let mut body = SnapshotBody::dump(Box::new(|| {
            let mut file = tempfile::tempfile()?;
            io::Write::write_all(&mut file, b"abc")?;
            Ok(file)
        }));
        let mut all = Vec::new();
        body.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abc");
        assert!(body.write_all(b"x").await.is_ok(), "now a file");
    }

    #[tokio::test]
    async fn a_file_body_is_written_at_offsets_then_read_back() {
        let file = File::from_std(tempfile::tempfile().unwrap());
        let mut body = SnapshotBody::file(file);
        body.write_all(b"abc").await.unwrap();
        body.seek(SeekFrom::Start(6)).await.unwrap();
        body.write_all(b"def").await.unwrap();
        body.flush().await.unwrap();
        assert_eq!(body.into_bytes().await.unwrap(), b"abc\0\0\0def");
        let mut body = SnapshotBody::memory(Vec::new());
        body.write_all(b"xyz").await.unwrap();
        assert_eq!(body.into_bytes().await.unwrap(), b"xyz");
    }
}
