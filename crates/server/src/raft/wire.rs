//! The replica-to-replica wire format: openraft's AppendEntries, Vote and
//! InstallSnapshot, and our forwarded proposals, read-index requests and
//! typing notices, as
//! length-prefixed postcard frames on one connection per call stream, on
//! the same port as the gRPC API (`listener.rs` tells the two apart;
//! `network.rs` is the dialling side). One replica-to-replica protocol:
//! nothing between replicas goes over gRPC but forwarded admin calls.
//!
//! Why not gRPC: a unary HTTP/2 call costs several task wakeups (the
//! channel's buffer worker, the h2 connection task, a server stream task)
//! plus HPACK headers and trailers, and the leader makes several per chat
//! message. A dedicated connection per replication stream costs one write
//! and one read per call.
//!
//! With TLS (the default outside loopback), a Raft connection is a TLS
//! connection that negotiated ALPN [`raftchat_tls::RAFT_ALPN`] with a replica
//! certificate on both sides. Without TLS (loopback only), it starts with
//! [`MAGIC`], written once by the dialler (an HTTP/2 client starts with
//! `PRI * HTTP/2.0`, so the first bytes tell the two protocols apart).
//! Then the dialler sends one request frame and waits for its response
//! frame, one call at a time:
//!
//! ```text
//! [u32 LE length][u8 kind][postcard payload]    length = 1 + payload bytes
//! ```
//!
//! A request carries openraft's request struct (or ours); the response
//! echoes the kind and carries the result. A length over the kind's limit
//! ([`Kind::max_len`]), an unknown kind or an undecodable payload closes
//! the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    ReadBuf,
};
use tokio::net::TcpStream;

use crate::storage::raft_types::NodeId;
use raftchat_tls::{self as tls, Role};

/// The first bytes of a plaintext Raft connection.
pub const MAGIC: [u8; 8] = *b"RCRAFT01";

/// Largest frame of any kind (kind byte plus payload).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Length and kind.
const HEADER: usize = 5;

/// A Raft connection: reads are buffered so a small frame costs one read.
pub type Conn = BufReader<Stream>;

/// The byte stream under a Raft connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Append = 1,
    Vote = 2,
    Snapshot = 3,
    /// A follower hands a proposal to the leader's proposer.
    Forward = 4,
    /// A follower asks the leader for a linearizable read index.
    ReadIndex = 5,
    /// A replica starting with empty storage asks what the cluster knows
    /// of it (`server::incarnation`).
    Hello = 6,
    /// A restarted replica asks whether the peer leads with a live quorum
    /// (`raft::elections`).
    Lease = 7,
    /// The leader offers the connection it opened as a lane
    /// (`raft::lanes`); no answer, the connection changes direction.
    Lane = 8,
    /// A follower's calls on a lane, any number back to back.
    LaneCalls = 9,
    /// The leader's answers on a lane, any number back to back.
    LaneAnswers = 10,
    /// A typing notice for the peer's subscriptions (`raft::typing`).
    Typing = 11,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Append),
            2 => Some(Self::Vote),
            3 => Some(Self::Snapshot),
            4 => Some(Self::Forward),
            5 => Some(Self::ReadIndex),
            6 => Some(Self::Hello),
            7 => Some(Self::Lease),
            8 => Some(Self::Lane),
            9 => Some(Self::LaneCalls),
            10 => Some(Self::LaneAnswers),
            11 => Some(Self::Typing),
            _ => None,
        }
    }

    /// Largest frame of this kind, request or response. A vote is a few
    /// dozen bytes; an append carries at most 32 entries of at most one
    /// batch each; a snapshot chunk is 3 MiB; a forwarded proposal is one
    /// client request (a message body is at most 4 KiB); a lane's frame
    /// is closed at 1 MiB plus the call or answer that passed it.
    pub fn max_len(self) -> usize {
        match self {
            Kind::Vote
            | Kind::ReadIndex
            | Kind::Hello
            | Kind::Lease
            | Kind::Lane
            | Kind::Typing => 4 * 1024,
            Kind::Forward => 1024 * 1024,
            Kind::LaneCalls | Kind::LaneAnswers => 4 * 1024 * 1024,
            Kind::Snapshot => 4 * 1024 * 1024,
            Kind::Append => MAX_FRAME,
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
    if len > kind.max_len() {
        return Err(invalid(format!(
            "{kind:?} frame of {len} bytes exceeds the {}-byte limit",
            kind.max_len()
        )));
    }
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(buf)
}

/// A whole frame around a payload already encoded.
pub fn frame_from_payload(kind: Kind, payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = payload.len() + 1;
    if len > kind.max_len() {
        return Err(invalid(format!(
            "{kind:?} frame of {len} bytes exceeds the {}-byte limit",
            kind.max_len()
        )));
    }
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
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
    let Some((kind, len)) = read_header(r).await? else {
        return Ok(None);
    };
    read_payload(r, kind, len)
        .await
        .map(|payload| Some((kind, payload)))
}

/// Reads a frame's header: its kind and length (kind byte included),
/// checked against the kind's limit. `None` if the peer closed the
/// connection between frames.
pub async fn read_header<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<(Kind, usize)>> {
    if r.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let kind = Kind::from_byte(header[4])
        .ok_or_else(|| invalid(format!("unknown frame kind {}", header[4])))?;
    if len == 0 || len > kind.max_len() {
        return Err(invalid(format!(
            "{kind:?} frame length {len} outside 1..={}",
            kind.max_len()
        )));
    }
    Ok(Some((kind, len)))
}

/// Reads the payload of a frame whose header [`read_header`] returned.
pub async fn read_payload<R: AsyncBufRead + Unpin>(
    r: &mut R,
    kind: Kind,
    len: usize,
) -> io::Result<Vec<u8>> {
    let want = len - 1;
    // The whole payload at once: its length is within the kind's limit
    // (and, on a replica's listener, within the frame budget), and pages
    // not yet written are not resident, so memory follows what arrives
    // without a growing buffer's copies.
    let mut payload = vec![0u8; want];
    r.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{kind:?} frame cut short: fewer than {want} bytes"),
            )
        } else {
            e
        }
    })?;
    Ok(payload)
}

/// How to authenticate a dialled replica.
#[derive(Clone)]
pub struct DialTls {
    pub config: Arc<rustls::ClientConfig>,
}

/// Opens a Raft connection to replica `target` at `addr` (`host:port`),
/// whose membership address is `advertised` (the two differ behind a
/// `--replica-routes` proxy; the certificate names the membership host).
/// With TLS the server must present replica `target`'s certificate.
pub async fn dial(
    target: NodeId,
    addr: &str,
    advertised: &str,
    tls: Option<&DialTls>,
    connect_timeout: Duration,
) -> io::Result<Conn> {
    let connect = async {
        let stream = TcpStream::connect(addr).await?;
        // Nagle + delayed ACKs would add 40 ms to every call.
        stream.set_nodelay(true)?;
        let Some(tls) = tls else {
            let mut stream = stream;
            stream.write_all(&MAGIC).await?;
            return Ok(Stream::Plain(stream));
        };
        let name = server_name(advertised)?;
        let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(name, stream)
            .await?;
        let role = tls::peer_role(stream.get_ref().1.peer_certificates());
        if role != Some(Role::Replica(target)) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{addr} presented {} instead of replica {target}'s certificate",
                    role.map_or("no role".to_string(), |r| r.to_string())
                ),
            ));
        }
        Ok(Stream::Tls(Box::new(stream.into())))
    };
    let stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("cannot connect to {addr} in {connect_timeout:?}"),
            )
        })??;
    Ok(BufReader::new(stream))
}

/// The name a replica's certificate must carry: the host of its URL.
fn server_name(url: &str) -> io::Result<ServerName<'static>> {
    let host = url
        .rsplit_once(':')
        .map_or(url, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| invalid(format!("'{host}' is not a host name: {e}")))
}

/// Whether an idle connection still looks usable: nothing buffered, nothing
/// to read (the server never speaks unasked, so readable means closed).
pub fn is_reusable(conn: &Conn) -> bool {
    if !conn.buffer().is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    // A byte read here is lost, but then the connection is dropped anyway.
    matches!(conn.get_ref().tcp().try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
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
            (Kind::Forward, vec![9u8; 1000]),
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

        // A vote is small: a 5 KiB one is refused before its payload is read.
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        let mut header = (5000u32).to_le_bytes().to_vec();
        header.push(Kind::Vote as u8);
        a.write_all(&header).await.unwrap();
        let err = read_frame(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(encode_frame(Kind::Vote, &vec![0u8; 5000]).is_err());
    }

    #[tokio::test]
    async fn unknown_kind_is_rejected() {
        let (mut a, b) = pair().await;
        let mut b = BufReader::new(b);
        a.write_all(&[1, 0, 0, 0, 200]).await.unwrap();
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
        let (conn, accepted) = tokio::join!(
            dial(1, &addr, &addr, None, Duration::from_secs(1)),
            listener.accept()
        );
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
