//! One port, two protocols: the accept loop in front of tonic.
//!
//! Every accepted connection gets `TCP_NODELAY`, then its first bytes are
//! peeked: a connection opening with [`wire::MAGIC`] is a peer's Raft
//! connection and is served here (one frame in, one frame out, in turn);
//! anything else (an HTTP/2 preface) is handed, untouched, to tonic through
//! the stream [`serve`] returns. So `--replica-urls`, `--replica-routes` and
//! TCP proxies between replicas need no second port.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::server::raft_types::{NodeId, Raft, TypeConfig};
use crate::server::wire::{self, Kind};

/// How long a new connection has to send its first 8 bytes.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after a failed accept (EMFILE and the like) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Connections for tonic, as `serve_with_incoming` wants them.
pub type Incoming = ReceiverStream<io::Result<TcpStream>>;

/// Starts accepting on `listener` until `stop` turns true. Returns the
/// gRPC connections for tonic and the accept task.
pub fn serve(
    listener: TcpListener,
    raft: Raft,
    stop: watch::Receiver<bool>,
) -> (Incoming, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(accept_loop(listener, raft, tx, stop));
    (ReceiverStream::new(rx), task)
}

async fn accept_loop(
    listener: TcpListener,
    raft: Raft,
    grpc: mpsc::Sender<io::Result<TcpStream>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                tokio::spawn(route(stream, peer, raft.clone(), grpc.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

enum Protocol {
    Raft,
    Other,
    Closed,
}

/// Sends the connection where its first bytes say it belongs.
async fn route(
    stream: TcpStream,
    peer: SocketAddr,
    raft: Raft,
    grpc: mpsc::Sender<io::Result<TcpStream>>,
) {
    match tokio::time::timeout(SNIFF_TIMEOUT, sniff(&stream)).await {
        Ok(Ok(Protocol::Raft)) => serve_raft(stream, peer, raft).await,
        Ok(Ok(Protocol::Other)) => {
            // Fails only when the server is shutting down.
            let _ = grpc.send(Ok(stream)).await;
        }
        Ok(Ok(Protocol::Closed)) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection failed before its first bytes")
        }
        Err(_) => tracing::debug!(%peer, "connection silent for {SNIFF_TIMEOUT:?}; closing"),
    }
}

/// Peeks until the first bytes match [`wire::MAGIC`] or cannot.
async fn sniff(stream: &TcpStream) -> io::Result<Protocol> {
    let mut buf = [0u8; wire::MAGIC.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(Protocol::Closed);
        }
        if buf[..n] != wire::MAGIC[..n] {
            return Ok(Protocol::Other);
        }
        if n == wire::MAGIC.len() {
            return Ok(Protocol::Raft);
        }
        // A prefix of the magic so far: peek would return at once again.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves one peer's Raft connection until it closes or misbehaves.
async fn serve_raft(stream: TcpStream, peer: SocketAddr, raft: Raft) {
    let mut conn = BufReader::new(stream);
    let mut magic = [0u8; wire::MAGIC.len()];
    if conn.read_exact(&mut magic).await.is_err() {
        return;
    }
    loop {
        let (kind, payload) = match wire::read_frame(&mut conn).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(%peer, error = %e, "bad Raft frame; closing the connection");
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "Raft connection failed");
                return;
            }
        };
        let reply = match dispatch(&raft, kind, &payload).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(%peer, ?kind, error = %e, "bad Raft request; closing the connection");
                return;
            }
        };
        if let Err(e) = wire::write_frame(conn.get_mut(), &reply).await {
            tracing::debug!(%peer, error = %e, "cannot answer on a Raft connection");
            return;
        }
    }
}

/// Hands one request to openraft; returns the response frame.
async fn dispatch(raft: &Raft, kind: Kind, payload: &[u8]) -> Result<Vec<u8>, DispatchError> {
    match kind {
        Kind::Append => {
            let rpc: AppendEntriesRequest<TypeConfig> = postcard::from_bytes(payload)?;
            Ok(wire::encode_frame(kind, &raft.append_entries(rpc).await)?)
        }
        Kind::Vote => {
            let rpc: VoteRequest<NodeId> = postcard::from_bytes(payload)?;
            Ok(wire::encode_frame(kind, &raft.vote(rpc).await)?)
        }
        Kind::Snapshot => {
            let rpc: InstallSnapshotRequest<TypeConfig> = postcard::from_bytes(payload)?;
            Ok(wire::encode_frame(kind, &raft.install_snapshot(rpc).await)?)
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error("cannot decode the request: {0}")]
    Decode(#[from] postcard::Error),
    #[error("cannot encode the response: {0}")]
    Encode(#[from] io::Error),
}
