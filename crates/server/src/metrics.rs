//! Prometheus metrics: what every layer records, and their text exposition.
//!
//! The metrics are process-wide ([`METRICS`]) because a process runs exactly
//! one replica: storage (fsync latency, snapshot size), the proposer and the
//! services record into them with one call and no plumbing. This module is a
//! leaf: it imports nothing of ours, so anything may call it. Raft's own
//! numbers (role, term, indexes) are not recorded here: the metrics endpoint
//! (`api::metrics_http`) reads them from openraft at scrape time and hands
//! them to [`render`] as [`RaftNumbers`], so they can never drift.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric this replica exports.
pub struct Metrics {
    role: Family<Labels, Gauge>,
    term: Gauge,
    leader_id: Gauge,
    leader_changes: Counter,
    elections: Counter,
    has_quorum: Gauge,
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
    elections: Counter::default(),
    has_quorum: Gauge::default(),
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

/// Records the size of the snapshot just encoded (memory mode) or dumped
/// for a follower (disk mode).
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

/// Records that this replica saw a different leader than before.
pub fn observe_leader_change() {
    METRICS.leader_changes.inc();
}

/// Records `n` elections: the term rose by `n` (each campaign takes a
/// term, whoever wins, the same leader included).
pub fn observe_elections(n: u64) {
    METRICS.elections.inc_by(n);
}

/// Raft's numbers at scrape time, read from openraft by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftNumbers {
    /// One of [`ROLES`].
    pub role: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub last_log: Option<u64>,
    pub snapshot: Option<u64>,
    pub voters: u64,
    /// The group has a working quorum as far as this replica can tell.
    pub has_quorum: bool,
}

/// The values of the `role` label of `raftchat_raft_role`.
pub const ROLES: [&str; 5] = ["leader", "follower", "candidate", "learner", "shutdown"];

fn gauge(v: Option<u64>) -> i64 {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The Prometheus text exposition of every metric, with Raft's numbers
/// as given.
pub fn render(raft: &RaftNumbers) -> String {
    let me = &*METRICS;
    for name in ROLES {
        me.role
            .get_or_create(&vec![("role".into(), name.into())])
            .set(i64::from(raft.role == name));
    }
    // Both outcomes exist from the start, so rates work before the first
    // failure (and on replicas that only forward).
    for outcome in ["ok", "error"] {
        let _ = me
            .proposals
            .get_or_create(&vec![("outcome".into(), outcome.into())]);
    }
    me.term.set(gauge(Some(raft.term)));
    me.leader_id.set(gauge(raft.leader));
    me.applied_index.set(gauge(raft.applied));
    me.commit_index.set(gauge(raft.committed));
    me.last_log_index.set(gauge(raft.last_log));
    me.snapshot_index.set(gauge(raft.snapshot));
    me.voters.set(gauge(Some(raft.voters)));
    me.has_quorum.set(i64::from(raft.has_quorum));

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
        "raft_elections",
        "Elections this replica saw since it started: how far the term rose (a leader re-elected counts too)",
        me.elections.clone(),
    );
    registry.register(
        "raft_has_quorum",
        "1 while the group has a working quorum as this replica sees it (a leader hearing from a majority, or a follower whose leader says it does)",
        me.has_quorum.clone(),
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
        "Size of the latest snapshot this replica encoded or dumped for a follower",
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
