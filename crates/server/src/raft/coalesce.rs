//! Fewer socket writes for gRPC connections: answers that are ready
//! together leave in one write.
//!
//! The batching proposer finishes every request of a log entry at once, so
//! hundreds of unary answers become ready in the same instant. Each one
//! wakes the connection's HTTP/2 task, which tokio runs next (its LIFO
//! slot), and which wrote and flushed that one answer before the next
//! answer's task had run: measured, 3.5 `writev`s per unary `SendMessage`
//! on the machine against 0.5 over `SendStream`.
//!
//! [`Coalesced`] takes HTTP/2's writes into a buffer and, at its first
//! flush request, yields once to the scheduler (to the back of the run
//! queue, as `tokio::task::yield_now` does) so that the other answers ready
//! now are queued too; the next flush writes them all. A lone answer waits
//! one pass of the scheduler, microseconds.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Written bytes kept at most before they go out without waiting for a
/// flush.
const LIMIT: usize = 256 * 1024;

type Yield = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A connection whose writes are gathered until a flush, and whose flushes
/// let the other tasks that are ready run first.
pub struct Coalesced<S> {
    inner: S,
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already written to `inner`.
    written: usize,
    /// The yield of the flush in progress, if it has not finished.
    yielding: Option<Yield>,
    /// The current flush has yielded: the next poll writes.
    yielded: bool,
}

impl<S> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            yielding: None,
            yielded: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out everything gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() && !this.yielded {
            let yielding = this
                .yielding
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            ready!(yielding.as_mut().poll(cx));
            this.yielding = None;
            this.yielded = true;
            // Back to the caller, which may add what was queued meanwhile
            // before it asks again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Coalesced<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_leave_at_the_flush_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut a = Coalesced::new(a);
        a.write_all(b"one ").await.unwrap();
        a.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 16];
        // Nothing before the flush.
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.read(&mut buf)).await;
        assert!(early.is_err(), "bytes left before the flush");
        a.flush().await.unwrap();
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one two");
        // Past the limit, writes go out without a flush.
        let big = vec![7u8; LIMIT + 10];
        a.write_all(&big).await.unwrap();
        a.write_all(b"x").await.unwrap();
        let mut got = vec![0u8; LIMIT + 10];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        a.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"x");
    }
}
