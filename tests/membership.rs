//! Membership changes without downtime, on real `chatd` processes driven by
//! the real `chatctl members`: grow 3 → 5 and shrink 5 → 3 (removing the
//! leader among others) while a background task keeps sending messages.
//! Nothing acknowledged may be lost or duplicated.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bodies_with, client_for, options, user, Clients, Cluster, Options};
use raftchat_client::Target;

/// Runs `chatctl --json --servers ... ARGS`; returns the parsed JSON line.
async fn chatctl(cluster: &Cluster, servers: Vec<String>, args: &[&str]) -> serde_json::Value {
    let mut cmd = std::process::Command::new(raftchat_testkit::bins::path("chatctl"));
    cmd.envs(cluster.chatctl_env(true));
    cmd.arg("--json")
        .arg("--servers")
        .arg(servers.join(","))
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run chatctl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "chatctl {args:?} failed: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn voters(list: &serde_json::Value) -> Vec<u64> {
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "voter")
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_three_to_five_and_shrink_back_under_write_load() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let original = cluster.urls();

    // A writer that keeps sending through the original three replicas.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = client_for(&cluster, original.clone());
        client.set_token(alice.token());
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let bob = Target::User("bob".into());
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("m{i}");
                match client.send(&bob, &body).await {
                    Ok(_) => acked.push(body),
                    Err(e) => {
                        eprintln!("send {body}: {e}");
                        failed.push(body)
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, failed)
        })
    };
    let servers = |c: &Cluster| c.running().iter().map(|id| c.url(*id)).collect::<Vec<_>>();

    // Grow: start each newcomer with --join, then add it through any replica.
    for _ in 0..2 {
        // Ask a follower on purpose: it must forward to the leader. (The
        // leader is looked up before the newcomer starts: until it is added
        // it knows no leader, so the cluster would not "agree" on one.)
        let leader = cluster.wait_leader(Duration::from_secs(20)).await;
        let id = cluster.start_joining_replica();
        let member = format!("{id}={}", cluster.url(id));
        let follower = original
            .iter()
            .find(|u| **u != cluster.url(leader))
            .unwrap()
            .clone();
        let reply = chatctl(&cluster, vec![follower], &["members", "add", &member]).await;
        assert!(voters(&reply).contains(&id), "{reply}");
    }
    let list = chatctl(&cluster, servers(&cluster), &["members"]).await;
    assert_eq!(voters(&list), vec![1, 2, 3, 4, 5], "{list}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Shrink: remove the leader and one more, then stop them.
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let other = *cluster.running().iter().find(|id| **id != leader).unwrap();
    for id in [leader, other] {
        let reply = chatctl(
            &cluster,
            servers(&cluster),
            &["members", "remove", &id.to_string()],
        )
        .await;
        assert!(!voters(&reply).contains(&id), "{reply}");
        cluster.terminate(id);
        cluster.wait_leader(Duration::from_secs(20)).await;
    }
    let list = chatctl(&cluster, servers(&cluster), &["members"]).await;
    assert_eq!(voters(&list).len(), 3, "{list}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    let (acked, failed) = writer.await.unwrap();
    eprintln!(
        "{} writes acknowledged, {} failed",
        acked.len(),
        failed.len()
    );
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    assert!(
        failed.len() <= 2,
        "{} writes failed during membership changes: {failed:?}",
        failed.len()
    );

    // Every acknowledged write, once and in order, on every member.
    cluster.wait_converged(Duration::from_secs(30)).await;
    for id in cluster.running() {
        let reader = cluster.client_on(id);
        reader.set_token(alice.token());
        let got: Vec<String> = bodies_with(&reader, "bob")
            .await
            .into_iter()
            .filter(|b| !failed.contains(b))
            .collect();
        assert_eq!(got, acked, "replica {id}");
    }

    // The removed leader, restarted on its old data: its stored vote says
    // it leads, and the members refuse its connections, so nothing tells
    // it otherwise. It must say it was removed, not that it leads.
    cluster.start_replica(leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = cluster
        .status(leader, false)
        .await
        .expect("the removed replica answers Status");
    println!(
        "removed replica {leader}: role {} term {} applied {} has_quorum {:?}",
        status.role, status.term, status.applied_index, status.has_quorum
    );
    assert_eq!(
        (status.role.as_str(), status.leader_id, status.has_quorum),
        ("removed", 0, Some(false)),
        "{status:?}"
    );
    let member = *cluster
        .running()
        .iter()
        .find(|id| ![leader, other].contains(id))
        .unwrap();
    let seen = cluster.status(member, false).await.unwrap();
    assert!(
        ![0, leader].contains(&seen.leader_id),
        "member {member}: {seen:?}"
    );
}
