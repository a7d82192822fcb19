//! Operating a replica: the gRPC health service follows Raft (a `--join`
//! replica is NOT_SERVING until added), and `/metrics` serves Prometheus text.

mod common;

use std::time::Duration;

use common::{http_get as get, options, user, Cluster, Options};
use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::AddReplicaRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn health(cluster: &Cluster, id: u64) -> ServingStatus {
    let channel = cluster.channel(id);
    let mut client = HealthClient::new(channel);
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(reply.status).unwrap()
}

async fn wait_health(cluster: &Cluster, id: u64, want: ServingStatus) {
    for _ in 0..100 {
        if health(cluster, id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replica {id} never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_raft_and_metrics_are_served() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        metrics: true,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    for id in 1..=3 {
        wait_health(&cluster, id, ServingStatus::Serving).await;
    }
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    alice.send(&"bob".parse().unwrap(), "hi").await.unwrap();

    // A joining replica is not in the cluster yet: NOT_SERVING.
    let joiner = cluster.start_joining_replica();
    let url = cluster.url(joiner);
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_health(&cluster, joiner, ServingStatus::NotServing).await;
    let mut admin = ClusterClient::new(cluster.channel_as(leader, true));
    let reply = admin
        .add_replica(AddReplicaRequest {
            id: joiner,
            url: url.clone(),
            catch_up_timeout_ms: 20_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.outcome.contains("as a voter"), "{reply:?}");
    wait_health(&cluster, joiner, ServingStatus::Serving).await;

    // Prometheus text from the leader.
    let text = get(&cluster.metrics_addr(leader).unwrap(), "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for metric in [
        "raftchat_raft_role{role=\"leader\"} 1",
        "raftchat_raft_term ",
        "raftchat_raft_leader_changes_total ",
        "raftchat_raft_commit_index ",
        "raftchat_raft_applied_index ",
        "raftchat_raft_voters 4",
        "raftchat_proposals_total{outcome=\"ok\"} ",
        "raftchat_proposal_duration_seconds_bucket",
        "raftchat_wal_fsync_duration_seconds_count ",
        "raftchat_snapshot_size_bytes ",
        "raftchat_live_subscriptions ",
        "raftchat_live_send_streams ",
    ] {
        assert!(text.contains(metric), "missing {metric}:\n{text}");
    }
    let text = get(&cluster.metrics_addr(leader).unwrap(), "/nope");
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");

    // Without quorum (leader and one more of four killed), the survivors
    // cannot elect anyone and report NOT_SERVING.
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let other = *cluster.running().iter().find(|i| **i != leader).unwrap();
    cluster.kill(leader);
    cluster.kill(other);
    for id in cluster.running() {
        wait_health(&cluster, id, ServingStatus::NotServing).await;
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// 3 of 5 killed, the leader among the survivors: the leader stays in
/// office (openraft 0.9), yet every surface says the group has no quorum:
/// `chatctl status` marks it and exits non-zero, health is NOT_SERVING on
/// both survivors, `raftchat_raft_has_quorum` is 0 (the README's alert).
/// One replica back: all of it turns around.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_majority_shows_everywhere() {
    let mut cluster = Cluster::start(Options {
        metrics: true,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    for id in 1..=5 {
        wait_health(&cluster, id, ServingStatus::Serving).await;
    }
    let before = get(&cluster.metrics_addr(leader).unwrap(), "/metrics");
    assert_eq!(
        metric(&before, "raftchat_raft_has_quorum"),
        Some(1.0),
        "{before}"
    );
    assert!(metric(&before, "raftchat_raft_elections_total").is_some_and(|n| n >= 1.0));

    let survivor = (1..=5).find(|id| *id != leader).unwrap();
    let killed: Vec<u64> = (1..=5)
        .filter(|id| *id != leader && *id != survivor)
        .collect();
    for id in &killed {
        cluster.kill(*id);
    }
    for id in [leader, survivor] {
        wait_health(&cluster, id, ServingStatus::NotServing).await;
    }
    let status = chatctl_status(&cluster);
    assert!(!status.status.success(), "{status:?}");
    let stdout = String::from_utf8_lossy(&status.stdout);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stdout.contains("(no quorum)"), "{stdout}");
    assert!(
        stderr.contains("no replica has a working quorum"),
        "{stderr}"
    );
    for id in [leader, survivor] {
        let text = get(&cluster.metrics_addr(id).unwrap(), "/metrics");
        assert_eq!(
            metric(&text, "raftchat_raft_has_quorum"),
            Some(0.0),
            "replica {id}"
        );
    }

    cluster.start_replica(killed[0]);
    cluster.wait_leader(Duration::from_secs(20)).await;
    for id in cluster.running() {
        wait_health(&cluster, id, ServingStatus::Serving).await;
    }
    let status = chatctl_status(&cluster);
    assert!(status.status.success(), "{status:?}");
}

/// `chatctl status` against every replica of `cluster`.
fn chatctl_status(cluster: &Cluster) -> std::process::Output {
    std::process::Command::new(raftchat_testkit::bins::path("chatctl"))
        .envs(cluster.chatctl_env(false))
        .arg("--servers")
        .arg(cluster.urls().join(","))
        .arg("status")
        .output()
        .expect("run chatctl")
}

/// gRPC reflection answers in both versions tools speak: v1 (grpcurl) and
/// v1alpha (older tools, which got UNIMPLEMENTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};

    let cluster = Cluster::start(Options {
        replicas: 1,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    // The same exchange in each version's generated types.
    macro_rules! listed_services {
        ($version:ident) => {{
            use $version::server_reflection_client::ServerReflectionClient;
            use $version::server_reflection_request::MessageRequest;
            use $version::server_reflection_response::MessageResponse;
            let request = $version::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut answers = ServerReflectionClient::new(cluster.channel(1))
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .unwrap()
                .into_inner();
            match answers
                .message()
                .await
                .unwrap()
                .and_then(|a| a.message_response)
            {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
                }
                other => panic!("{}: {other:?}", stringify!($version)),
            }
        }};
    }
    for services in [listed_services!(v1), listed_services!(v1alpha)] {
        assert!(
            services.iter().any(|s| s == "raftchat.v1.Chat"),
            "{services:?}"
        );
    }
}
