//! The standard gRPC health service (`grpc.health.v1.Health`), kept in step
//! with Raft: a replica reports SERVING only while it is a member of the
//! cluster, knows a leader and the group has a working quorum (a leader
//! hears from a majority; a follower's leader says it does: `raft::quorum`).
//! Load balancers and orchestrators can then route around a
//! replica that is partitioned, still joining, or without quorum — its requests would fail with
//! UNAVAILABLE anyway.

use std::time::Duration;

use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::chat_service::ChatService;
use crate::api::proto::chat_server::ChatServer;
use crate::raft::consensus::Consensus;

/// How often the status is re-evaluated even without Raft events (the
/// leader's quorum check depends on time passing).
const RECHECK: Duration = Duration::from_millis(250);

/// Whether this replica can serve requests now.
pub fn is_serving(consensus: &Consensus) -> bool {
    let m = consensus.metrics();
    // The Raft core stopped (the process is about to exit non-zero).
    if m.running_state.is_err() {
        return false;
    }
    let member = m
        .membership_config
        .membership()
        .get_node(&consensus.id)
        .is_some();
    if !member || m.current_leader.is_none() {
        return false;
    }
    consensus.has_quorum()
}

/// Updates `reporter` for the whole server ("") and the Chat service until
/// Raft stops.
pub async fn track(consensus: Consensus, reporter: HealthReporter) {
    // Leadership and membership live in the server metrics, which (unlike
    // `metrics()`) do not change on every append and apply.
    let mut metrics = consensus.raft.server_metrics();
    let mut last = None;
    loop {
        let serving = is_serving(&consensus);
        if last != Some(serving) {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            tracing::info!(?status, "health");
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status(<ChatServer<ChatService> as NamedService>::NAME, status)
                .await;
            last = Some(serving);
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RECHECK) => {}
        }
    }
}
