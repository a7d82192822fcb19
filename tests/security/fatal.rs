//! A replica whose Raft core dies does not linger as a zombie that reports
//! SERVING: it exits non-zero, so a supervisor restarts it (and alerts).
//!
//! The core is killed the way the original attack did it: a persisted vote
//! at term 2^64−1 (what forged frames could once write on every replica),
//! after which openraft's `term + 1` at the next election cannot succeed.

use std::time::{Duration, Instant};

use openraft::Vote;

use crate::common::{options, Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_raft_core_dies_exits_non_zero() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    cluster.kill_all();
    let doomed = 1;
    raftchat_server::storage::save_small_file(
        &cluster.storage_dir(doomed),
        "vote",
        &Vote::new(u64::MAX, 2),
    )
    .unwrap();
    // Alone, it campaigns at its election timeout: its core cannot.
    cluster.start_replica(doomed);
    let started = Instant::now();
    let status = loop {
        let child = cluster
            .replicas
            .get_mut(&doomed)
            .unwrap()
            .child
            .as_mut()
            .unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica outlived its Raft core:\n{}",
            cluster.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.replicas.get_mut(&doomed).unwrap().child = None;
    assert!(!status.success(), "exited {status:?}");
    let log = std::fs::read_to_string(cluster.log_path(doomed)).unwrap();
    assert!(log.contains("the Raft core stopped"), "{log}");
}
