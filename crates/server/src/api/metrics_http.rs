//! The metrics endpoint: Prometheus text on `--metrics-addr` (`GET
//! /metrics`), with Raft's numbers read from openraft at scrape time.
//!
//! The HTTP side is deliberately tiny — one `GET` per connection, answered
//! and closed — because that is all a Prometheus scrape needs, and it keeps
//! an HTTP server stack out of the dependencies.

use std::net::SocketAddr;
use std::time::Duration;

use openraft::ServerState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::cluster_service::committed_index;
use crate::metrics::{self, RaftNumbers};
use crate::raft::consensus::Consensus;
use crate::storage::raft_types::Raft;

/// Counts leader changes (a new leader becoming known) until Raft stops.
pub async fn count_leader_changes(raft: Raft) {
    // Not `metrics()`: that changes on every append and apply.
    let mut metrics = raft.server_metrics();
    let mut last = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            if last.is_some() {
                metrics::observe_leader_change();
            }
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Raft's numbers for [`metrics::render`], from `consensus` now.
fn raft_numbers(consensus: &Consensus) -> RaftNumbers {
    let m = consensus.metrics();
    let applied = m.last_applied.map(|l| l.index);
    RaftNumbers {
        role: match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        },
        term: m.current_term,
        leader: m.current_leader,
        committed: committed_index(&m).or(applied),
        applied,
        last_log: m.last_log_index,
        snapshot: m.snapshot.map(|l| l.index),
        voters: m.membership_config.membership().voter_ids().count() as u64,
        has_quorum: consensus.has_quorum(),
    }
}

/// Binds `addr` (so a busy port fails at startup) and serves `/metrics`
/// until the process ends.
pub async fn serve(addr: SocketAddr, consensus: Consensus) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen for metrics on {addr} (--metrics-addr): {e}")
    })?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let consensus = consensus.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &consensus).await {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// Reads one request head and answers it; the connection is then closed.
async fn answer(mut stream: TcpStream, consensus: &Consensus) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::other("request head not received in 5 s"))??;
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics::render(&raft_numbers(consensus)),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET /metrics is served\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
