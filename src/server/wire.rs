//! The replica-to-replica Raft wire format: openraft's AppendEntries, Vote
//! and InstallSnapshot as length-prefixed postcard frames on a plain TCP
//! connection, on the same port as the gRPC API (`listener.rs` tells the
//! two apart; `network.rs` is the dialling side).
//!
//! Why not gRPC: a unary HTTP/2 call costs several task wakeups (the
//! channel's buffer worker, the h2 connection task, a server stream task)
//! plus HPACK headers and trailers, and the leader makes several per chat
//! message. A dedicated connection per replication stream costs one write
//! and one read per call.
//!
//! A connection starts with [`MAGIC`], written once by the dialler (an
//! HTTP/2 client starts with `PRI * HTTP/2.0`, so the first bytes tell the
//! two protocols apart). Then the dialler sends one request frame and waits
//! for its response frame, one call at a time:
//!
//! ```text
//! [u32 LE length][u8 kind][postcard payload]    length = 1 + payload bytes
//! ```
//!
//! A request carries openraft's request struct; the response echoes the
//! kind and carries `Result<Resp, RaftError<NodeId, E>>`. A length over
//! [`MAX_FRAME`], an unknown kind or an undecodable payload closes the
//! connection.

use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

use crate::server::network::MAX_RAFT_MESSAGE;

/// The first bytes of a Raft connection.
pub const MAGIC: [u8; 8] = *b"RCRAFT01";

/// Largest frame (kind byte plus payload); snapshot chunks are 3 MiB.
pub const MAX_FRAME: usize = MAX_RAFT_MESSAGE;

/// Length and kind.
const HEADER: usize = 5;

/// A Raft connection: reads are buffered so a small frame costs one read.
pub type Conn = BufReader<TcpStream>;

/// Which openraft RPC a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Append = 1,
    Vote = 2,
    Snapshot = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Append),
            2 => Some(Self::Vote),
            3 => Some(Self::Snapshot),
            _ => None,
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A whole frame, header and payload in one buffer, ready for one write.
pub fn encode_frame<T: Serialize>(kind: Kind, value: &T) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0, kind as u8]);
    let mut buf = postcard::to_extend(value, buf)
        .map_err(|e| invalid(format!("cannot encode a {kind:?} frame: {e}")))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "{kind:?} frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        )));
    }
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(buf)
}

/// Writes a frame from [`encode_frame`] with one `write_all`.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}

/// Reads one frame: `None` if the peer closed the connection between
/// frames. A frame cut short is `UnexpectedEof`; a bad length or kind is
/// `InvalidData`.
pub async fn read_frame<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<(Kind, Vec<u8>)>> {
    if r.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(invalid(format!(
            "frame length {len} outside 1..={MAX_FRAME}"
        )));
    }
    let kind = Kind::from_byte(header[4])
        .ok_or_else(|| invalid(format!("unknown frame kind {}", header[4])))?;
    let want = len - 1;
    // Grow with what arrives rather than trusting the length up front.
    let mut payload = Vec::with_capacity(want.min(1 << 20));
    (&mut *r)
        .take(want as u64)
        .read_to_end(&mut payload)
        .await?;
    if payload.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{kind:?} frame cut short: {} of {want} bytes",
                payload.len()
            ),
        ));
    }
    Ok(Some((kind, payload)))
}

/// Opens a Raft connection to `addr` (`host:port`).
pub async fn dial(addr: &str, connect_timeout: Duration) -> io::Result<Conn> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("cannot connect to {addr} in {connect_timeout:?}"),
            )
        })??;
    // Nagle + delayed ACKs would add 40 ms to every call.
    stream.set_nodelay(true)?;
    let mut conn = BufReader::new(stream);
    conn.get_mut().write_all(&MAGIC).await?;
    Ok(conn)
}

/// Whether an idle connection still looks usable: nothing buffered, nothing
/// to read (the server never speaks unasked, so readable means closed).
pub fn is_reusable(conn: &Conn) -> bool {
    if !conn.buffer().is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(conn.get_ref().try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn frames_round_trip_over_tcp() {
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        let big = vec![7u8; 3 << 20];
        for (kind, value) in [
            (Kind::Append, vec![1u8, 2, 3]),
            (Kind::Vote, vec![]),
            (Kind::Snapshot, big.clone()),
        ] {
            let frame = encode_frame(kind, &value).unwrap();
            let (written, read) = tokio::join!(write_frame(&mut a, &frame), read_frame(&mut b));
            written.unwrap();
            let (got, payload) = read.unwrap().expect("a frame");
            assert_eq!(got, kind);
            let decoded: Vec<u8> = postcard::from_bytes(&payload).unwrap();
            assert_eq!(decoded, value);
        }
        drop(a);
        assert!(read_frame(&mut b).await.unwrap().is_none(), "clean close");
    }

    #[tokio::test]
    async fn oversized_length_is_rejected() {
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        let mut header = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        header.push(Kind::Append as u8);
        a.write_all(&header).await.unwrap();
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn unknown_kind_is_rejected() {
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        a.write_all(&[1, 0, 0, 0, 9]).await.unwrap();
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        let frame = encode_frame(Kind::Append, &vec![5u8; 100]).unwrap();
        a.write_all(&frame[..50]).await.unwrap();
        drop(a);
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        // Cut inside the header too.
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        a.write_all(&frame[..3]).await.unwrap();
        drop(a);
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn closed_idle_connection_is_not_reused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (conn, accepted) = tokio::join!(dial(&addr, Duration::from_secs(1)), listener.accept());
        let conn = conn.unwrap();
        let (mut server, _) = accepted.unwrap();
        let mut magic = [0u8; 8];
        server.read_exact(&mut magic).await.unwrap();
        assert_eq!(magic, MAGIC);
        assert!(is_reusable(&conn));
        drop(server);
        // Give the FIN a moment to arrive.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while is_reusable(&conn) {
            assert!(tokio::time::Instant::now() < deadline, "close never seen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
