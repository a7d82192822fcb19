//! A replica whose storage was wiped must not come back as the voter it
//! was (it forgot its votes and the entries it acknowledged): started
//! without `--join` it refuses to start; removed and added back with
//! `--join`, it rejoins.

use std::time::{Duration, Instant};

use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::{AddReplicaRequest, RemoveReplicaRequest};

use crate::common::{options, user, Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_replica_without_join_does_not_rejoin() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    alice.send(&"bob".parse().unwrap(), "before").await.unwrap();
    let digest = cluster.wait_converged(Duration::from_secs(20)).await;
    assert!(!digest.is_empty());
    // Every replica has recorded its storage by now (it does so once it
    // serves); give the last one a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let victim = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(victim);
    std::fs::remove_dir_all(cluster.storage_dir(victim)).unwrap();
    cluster.start_replica(victim);
    let started = Instant::now();
    let status = loop {
        let child = cluster
            .replicas
            .get_mut(&victim)
            .unwrap()
            .child
            .as_mut()
            .unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the wiped replica kept running:\n{}",
            cluster.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.replicas.get_mut(&victim).unwrap().child = None;
    assert!(!status.success(), "a refused start exits non-zero");
    let log = std::fs::read_to_string(cluster.log_path(victim)).unwrap();
    assert!(
        log.contains("already knows replica") && log.contains("--join"),
        "the refusal says why and what to do:\n{log}"
    );
    // The others never heard from it: same leader, still writable.
    assert_eq!(cluster.wait_leader(Duration::from_secs(10)).await, leader);
    alice
        .send(&"bob".parse().unwrap(), "while it is refused")
        .await
        .unwrap();

    // The documented way back: remove it, start it with --join, add it.
    let mut admin = ClusterClient::new(cluster.channel_as(leader, true));
    admin
        .remove_replica(RemoveReplicaRequest { id: victim })
        .await
        .expect("remove the wiped replica");
    std::fs::remove_dir_all(cluster.storage_dir(victim)).ok();
    cluster.replicas.get_mut(&victim).unwrap().join = true;
    cluster.start_replica(victim);
    let reply = admin
        .add_replica(AddReplicaRequest {
            id: victim,
            url: cluster.url(victim),
            catch_up_timeout_ms: 20_000,
        })
        .await
        .expect("add it back")
        .into_inner();
    assert!(
        reply
            .members
            .iter()
            .any(|m| m.id == victim && m.role == "voter"),
        "{reply:?}"
    );
    alice.send(&"bob".parse().unwrap(), "after").await.unwrap();
    cluster.wait_converged(Duration::from_secs(30)).await;
}
