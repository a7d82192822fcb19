//! Prometheus metrics, served as plain text on `--metrics-addr` (`GET
//! /metrics`).
//!
//! The metrics are process-wide ([`METRICS`]) because a process runs exactly
//! one replica: storage (fsync latency, snapshot size) and the subscription
//! code record into them with one call and no plumbing. Raft's own numbers
//! (role, term, indexes) are not duplicated: they are read from openraft's
//! metrics at scrape time, so they can never drift.
//!
//! The HTTP side is deliberately tiny — one `GET` per connection, answered
//! and closed — because that is all a Prometheus scrape needs, and it keeps
//! an HTTP server stack out of the dependencies.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use openraft::ServerState;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::consensus::Consensus;
use crate::raft_types::Raft;

type Labels = Vec<(String, String)>;

/// Every metric this replica exports.
pub struct Metrics {
    role: Family<Labels, Gauge>,
    term: Gauge,
    leader_id: Gauge,
    leader_changes: Counter,
    commit_index: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    snapshot_index: Gauge,
    voters: Gauge,
    proposals: Family<Labels, Counter>,
    proposal_seconds: Histogram,
    fsync_seconds: Histogram,
    snapshot_bytes: Gauge,
    subscriptions: Gauge,
    send_streams: Gauge,
}

/// The process-wide metrics (one replica per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    role: Family::default(),
    term: Gauge::default(),
    leader_id: Gauge::default(),
    leader_changes: Counter::default(),
    commit_index: Gauge::default(),
    applied_index: Gauge::default(),
    last_log_index: Gauge::default(),
    snapshot_index: Gauge::default(),
    voters: Gauge::default(),
    proposals: Family::default(),
    // 100 µs .. ~13 s: a loopback commit is sub-millisecond, a WAN one
    // hundreds of milliseconds, a stuck one hits the 3 s commit timeout.
    proposal_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
    // 10 µs .. ~0.6 s.
    fsync_seconds: Histogram::new(exponential_buckets(0.00001, 2.0, 16)),
    snapshot_bytes: Gauge::default(),
    subscriptions: Gauge::default(),
    send_streams: Gauge::default(),
});

/// Records one proposal (a write submitted through this replica) and how
/// long it took to be committed and applied, or to fail.
pub fn observe_proposal(elapsed: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    METRICS
        .proposals
        .get_or_create(&vec![("outcome".into(), outcome.into())])
        .inc();
    METRICS.proposal_seconds.observe(elapsed.as_secs_f64());
}

/// Records one fsync (fdatasync) of the write-ahead log.
pub fn observe_fsync(elapsed: Duration) {
    METRICS.fsync_seconds.observe(elapsed.as_secs_f64());
}

/// Records the size of the snapshot just built.
pub fn observe_snapshot_bytes(bytes: usize) {
    METRICS
        .snapshot_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// Held while something live is open on this replica; counts itself in a
/// gauge until dropped.
pub struct Live(Gauge);

impl Live {
    /// An event subscription (a connected client): `live_subscriptions`.
    pub fn subscription() -> Self {
        Self::enter(&METRICS.subscriptions)
    }

    /// A `SendStream` call: `live_send_streams`.
    pub fn send_stream() -> Self {
        Self::enter(&METRICS.send_streams)
    }

    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts leader changes (a new leader becoming known) until Raft stops.
pub async fn count_leader_changes(raft: Raft) {
    // Not `metrics()`: that changes on every append and apply.
    let mut metrics = raft.server_metrics();
    let mut last = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            if last.is_some() {
                METRICS.leader_changes.inc();
            }
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn gauge(v: Option<u64>) -> i64 {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The Prometheus text exposition of every metric, with Raft's numbers
/// refreshed from `consensus` now.
pub fn render(consensus: &Consensus) -> String {
    let m = consensus.metrics();
    let me = &*METRICS;
    for (state, name) in [
        (ServerState::Leader, "leader"),
        (ServerState::Follower, "follower"),
        (ServerState::Candidate, "candidate"),
        (ServerState::Learner, "learner"),
        (ServerState::Shutdown, "shutdown"),
    ] {
        me.role
            .get_or_create(&vec![("role".into(), name.into())])
            .set(i64::from(m.state == state));
    }
    // Both outcomes exist from the start, so rates work before the first
    // failure (and on replicas that only forward).
    for outcome in ["ok", "error"] {
        let _ = me
            .proposals
            .get_or_create(&vec![("outcome".into(), outcome.into())]);
    }
    me.term.set(gauge(Some(m.current_term)));
    me.leader_id.set(gauge(m.current_leader));
    let applied = m.last_applied.map(|l| l.index);
    me.applied_index.set(gauge(applied));
    me.commit_index.set(gauge(
        crate::cluster_service::committed_index(&m).or(applied),
    ));
    me.last_log_index.set(gauge(m.last_log_index));
    me.snapshot_index.set(gauge(m.snapshot.map(|l| l.index)));
    me.voters.set(gauge(Some(
        m.membership_config.membership().voter_ids().count() as u64,
    )));

    let mut registry = Registry::with_prefix("raftchat");
    registry.register(
        "raft_role",
        "1 for this replica's current Raft role, 0 for the others",
        me.role.clone(),
    );
    registry.register("raft_term", "Current Raft term", me.term.clone());
    registry.register(
        "raft_leader_id",
        "Id of the leader this replica follows (0 = none known)",
        me.leader_id.clone(),
    );
    registry.register(
        "raft_leader_changes",
        "Times this replica saw a different leader since it started",
        me.leader_changes.clone(),
    );
    registry.register(
        "raft_commit_index",
        "Highest log index known committed (on followers: the applied index)",
        me.commit_index.clone(),
    );
    registry.register(
        "raft_applied_index",
        "Highest log index applied to the chat state",
        me.applied_index.clone(),
    );
    registry.register(
        "raft_last_log_index",
        "Highest log index stored on this replica",
        me.last_log_index.clone(),
    );
    registry.register(
        "raft_snapshot_index",
        "Log index covered by the latest snapshot",
        me.snapshot_index.clone(),
    );
    registry.register(
        "raft_voters",
        "Voting members in the current membership",
        me.voters.clone(),
    );
    registry.register(
        "proposals",
        "Writes submitted through this replica, by outcome",
        me.proposals.clone(),
    );
    registry.register(
        "proposal_duration_seconds",
        "Time from submitting a write to its result (commit and apply, or failure)",
        me.proposal_seconds.clone(),
    );
    registry.register(
        "wal_fsync_duration_seconds",
        "fdatasync latency of write-ahead-log appends (storage mode only)",
        me.fsync_seconds.clone(),
    );
    registry.register(
        "snapshot_size_bytes",
        "Size of the latest snapshot this replica built",
        me.snapshot_bytes.clone(),
    );
    registry.register(
        "live_subscriptions",
        "Connected clients: event subscriptions currently open on this replica",
        me.subscriptions.clone(),
    );
    registry.register(
        "live_send_streams",
        "SendStream calls currently open on this replica (clients sending over one stream)",
        me.send_streams.clone(),
    );
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        tracing::error!("cannot encode metrics");
    }
    out
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
            render(consensus),
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
