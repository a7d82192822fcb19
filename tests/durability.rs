//! What survives crashes: whole-cluster kills, lagging replicas catching up
//! through snapshots, torn and corrupted logs, and memory-only replicas.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    bodies_with, options, send_concurrently, sent_bodies, user, Clients, Cluster, Options,
};
use raftchat_client::Target;
use raftchat_server::storage::power_cut as wal_cut;

/// All five SIGKILLed at once and restarted: nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_kill_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    let mut acked = Vec::new();
    for i in 0..30 {
        let body = format!("m{i}");
        alice.send(&target, &body).await.unwrap();
        acked.push(body);
    }
    cluster.kill_all();
    for id in [3, 1, 5, 2, 4] {
        cluster.start_replica(id);
    }
    cluster.wait_leader(Duration::from_secs(20)).await;
    // The old session is still valid: sessions are replicated state.
    assert_eq!(bodies_with(&alice, "bob").await, acked);
    cluster.wait_converged(Duration::from_secs(20)).await;
}

/// A leader SIGKILLed together with the whole cluster restarts as the leader
/// of the same term (openraft 0.9 resumes a committed vote without an
/// election), knowing only what its state machine had applied. Restarted
/// with the two replicas that missed the latest writes, it must not answer a
/// read until those writes are committed again: every acknowledged message
/// is in the first read it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_restarted_in_its_term_serves_no_stale_read() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let behind: Vec<u64> = (1..=5).filter(|&id| id != leader).take(2).collect();
    for &id in &behind {
        cluster.kill(id);
    }
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    send_concurrently(&alice, &target, 8, 100).await;
    let term = cluster.status(leader, false).await.unwrap().term;
    cluster.kill_all();
    cluster.start_replica(leader);
    for &id in &behind {
        cluster.start_replica(id);
    }
    let on_leader = cluster.client_on(leader);
    on_leader.set_token(alice.token());
    let got = bodies_with(&on_leader, "bob").await;
    if got.len() != 800 {
        panic!(
            "{}",
            explain_count(&cluster, &on_leader, &got, 8, 100).await
        );
    }
    let status = cluster.status(leader, false).await.unwrap();
    assert_eq!(status.role, "leader", "{status:?}");
    assert_eq!(status.term, term, "the leader resumed its term: {status:?}");
}

/// All five SIGKILLed with snapshots on disk and restarted: each decodes its
/// snapshot in the background while Raft already runs (clients get
/// UNAVAILABLE from a loading replica and move on), then re-applies the log
/// after it. Nothing acknowledged is lost and the replicas converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_from_snapshots_loses_nothing() {
    let mut cluster = Cluster::start(Options {
        snapshot_every: Some(50),
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    send_concurrently(&alice, &target, 4, 100).await;
    cluster.wait_converged(Duration::from_secs(30)).await;
    cluster.kill_all();
    for id in 1..=5 {
        cluster.start_replica(id);
    }
    // The old session still works once the state is back.
    let got = bodies_with(&alice, "bob").await;
    if got.len() != 400 {
        panic!("{}", explain_count(&cluster, &alice, &got, 4, 100).await);
    }
    for t in 0..4 {
        let mine: Vec<&String> = got
            .iter()
            .filter(|b| b.starts_with(&format!("t{t}-")))
            .collect();
        let want = sent_bodies(t, 100);
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "sender {t} out of order"
        );
    }
    alice.send(&target, "after restart").await.unwrap();
    cluster.wait_converged(Duration::from_secs(30)).await;
    // Each replica reopened its history store at a checkpoint (a snapshot
    // is one) rather than replaying the whole history from the log.
    for id in 1..=5 {
        let log = std::fs::read_to_string(cluster.log_path(id)).unwrap();
        let opened: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("history store opened"))
            .collect();
        assert_eq!(
            opened.len(),
            2,
            "replica {id} opened its store twice:\n{log}"
        );
        assert!(
            opened[1].contains("last_applied=Some"),
            "replica {id} restarted without a checkpoint: {}",
            opened[1]
        );
    }
}

/// Why a read of the `senders` × `each` bodies `send_concurrently` wrote
/// came back with `got.len()` of them: which are missing or doubled, and
/// what each replica holds and says about itself, so a rare failure tells
/// a lost write from a stale read.
async fn explain_count(
    cluster: &Cluster,
    reader: &raftchat_client::ChatClient,
    got: &[String],
    senders: usize,
    each: usize,
) -> String {
    let want: Vec<String> = (0..senders).flat_map(|t| sent_bodies(t, each)).collect();
    let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
    let mut seen = std::collections::HashSet::new();
    let doubled: Vec<&String> = got.iter().filter(|b| !seen.insert(*b)).collect();
    let mut out = format!(
        "read {} of {} bodies (served by {:?}); missing {missing:?}; doubled {doubled:?}\n",
        got.len(),
        want.len(),
        reader.connection_state().borrow().server,
    );
    for id in cluster.running() {
        let pinned = cluster.client_on(id);
        pinned.set_token(reader.token());
        let held = match pinned.history(&Target::User("bob".into()), 0, 1000).await {
            Ok(page) => format!("{} messages", page.messages.len()),
            Err(e) => format!("history failed: {e}"),
        };
        let status = cluster.status(id, true).await;
        out += &format!("replica {id}: {held}; status {status:?}\n");
    }
    out + &cluster.logs_tail()
}

/// A cluster with one replica down while alice sent bob 8 × `each`
/// messages, with a snapshot every `snapshot_every` entries.
struct Lagging {
    cluster: Cluster,
    leader: u64,
    down: u64,
    alice: raftchat_client::ChatClient,
    target: Target,
}

async fn lagging(snapshot_every: u64, each: usize) -> Lagging {
    let mut cluster = Cluster::start(Options {
        snapshot_every: Some(snapshot_every),
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let down = if leader == 5 { 4 } else { 5 };
    cluster.kill(down);
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    // Concurrent senders: the proposer batches them.
    send_concurrently(&alice, &target, 8, each).await;
    Lagging {
        cluster,
        leader,
        down,
        alice,
        target,
    }
}

/// A replica down while 2,000 messages are written (snapshots every 200
/// entries) catches up after restart through a snapshot; digests match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_catches_up_through_a_snapshot() {
    let Lagging {
        mut cluster, down, ..
    } = lagging(200, 250).await;
    // The log the down replica needs has been compacted away.
    let status = cluster.status(cluster.running()[0], false).await.unwrap();
    assert!(status.snapshot_index > 0, "no snapshot taken: {status:?}");

    cluster.start_replica(down);
    let digest = cluster.wait_converged(Duration::from_secs(60)).await;
    let restarted = cluster.status(down, true).await.unwrap();
    assert_eq!(restarted.digest, digest);
    assert!(
        restarted.snapshot_index > 0,
        "caught up without a snapshot: {restarted:?}"
    );
    assert!(
        std::fs::read_to_string(cluster.log_path(down))
            .unwrap()
            .contains("snapshot"),
        "the restarted replica's log does not mention a snapshot"
    );
    let reader = cluster.client_on(down);
    reader.login("bob", "password-bob").await.unwrap();
    assert_eq!(bodies_with(&reader, "alice").await.len(), 2000);
}

/// A replica behind the purged log catches up with one snapshot while
/// writes go on: the leader keeps the log after the snapshot it sent until
/// the replica has fetched it. Snapshotting (and purging) past it during or
/// right after the install sent a second snapshot, and with enough writes
/// would never have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_needs_one_snapshot_while_writes_go_on() {
    // Small, so that a few entries written during the install would
    // have been enough for the leader to snapshot past the replica.
    const SNAPSHOT_EVERY: u64 = 30;
    let Lagging {
        mut cluster,
        leader,
        down,
        alice,
        target,
    } = lagging(SNAPSHOT_EVERY, 1000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (alice, target, stop) = (alice.clone(), target.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    alice.send(&target, &format!("w{i}")).await.unwrap();
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_replica(down);
    // Caught up: within a snapshot interval of the leader, writes going on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let leader = cluster.status(leader, false).await;
        let restarted = cluster.status(down, false).await;
        if let (Some(l), Some(r)) = (leader, restarted) {
            if r.snapshot_index > 0 && r.applied_index + SNAPSHOT_EVERY >= l.applied_index {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica {down} did not catch up:\n{}",
            cluster.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let digest = cluster.wait_converged(Duration::from_secs(30)).await;
    assert_eq!(cluster.status(down, true).await.unwrap().digest, digest);
    let log = std::fs::read_to_string(cluster.log_path(down)).unwrap();
    assert_eq!(
        log.matches("snapshot installed").count(),
        1,
        "replica {down} installed more than one snapshot:\n{}",
        cluster.logs_tail()
    );
}

/// A torn log tail on a stopped replica is discarded on restart and the
/// replica catches up; a corrupted record in the middle stops it with an
/// error naming the file and offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_discarded_and_corruption_stops_the_replica() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    for i in 0..20 {
        alice.send(&target, &format!("m{i}")).await.unwrap();
    }
    let victim = if leader == 1 { 2 } else { 1 };
    cluster.wait_converged(Duration::from_secs(10)).await;
    cluster.kill(victim);

    // Tear the tail: cut the last record in half.
    let dir = cluster.storage_dir(victim);
    let last = wal_cut::last_index(&dir).unwrap().expect("a record");
    let cut = wal_cut::cut_after(&dir, last - 1, |len| len / 2).unwrap();
    assert!(cut.is_ok(), "{cut:?}");
    cluster.start_replica(victim);
    for i in 20..25 {
        alice.send(&target, &format!("m{i}")).await.unwrap();
    }
    cluster.wait_converged(Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(cluster.log_path(victim)).unwrap();
    assert!(log.contains("torn"), "no torn-tail warning in:\n{log}");

    // Corrupt a record in the middle: the replica refuses to start.
    cluster.kill(victim);
    let first = wal_cut::segments(&dir).unwrap().remove(0);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    // Bytes 16.. are the first record's payload (after len, crc, index).
    file.seek(SeekFrom::Start(20)).unwrap();
    file.write_all(&[0xFF, 0x00, 0xFF]).unwrap();
    drop(file);
    let output = std::process::Command::new(raftchat_testkit::bins::path("chatd"))
        .args(cluster.args(victim))
        .output()
        .unwrap();
    assert!(!output.status.success(), "chatd started on a corrupted log");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains(&name),
        "error does not name the file: {stderr}"
    );
    assert!(
        stderr.contains("offset"),
        "error does not name the offset: {stderr}"
    );
}

/// Memory-only replicas: a restarted one comes back empty and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_only_replica_catches_up_after_restart() {
    let mut cluster = Cluster::start(Options {
        storage: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    for i in 0..20 {
        alice.send(&target, &format!("m{i}")).await.unwrap();
    }
    let victim = if leader == 3 { 4 } else { 3 };
    cluster.kill(victim);
    for i in 20..30 {
        alice.send(&target, &format!("m{i}")).await.unwrap();
    }
    cluster.start_replica(victim);
    cluster.wait_converged(Duration::from_secs(30)).await;
    let reader = cluster.client_on(victim);
    reader.login("bob", "password-bob").await.unwrap();
    assert_eq!(bodies_with(&reader, "alice").await.len(), 30);
}

/// A subscriber resuming, on a replica that caught up through a snapshot,
/// from an event position the snapshot passed over is told so (`Resync`),
/// then gets what happens next: no silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_before_a_snapshot_install_says_resync() {
    use futures::StreamExt;
    use raftchat_client::SubscriptionItem;

    let Lagging {
        mut cluster,
        down,
        alice,
        target,
        ..
    } = lagging(200, 250).await;
    cluster.start_replica(down);
    cluster.wait_converged(Duration::from_secs(60)).await;
    let log = std::fs::read_to_string(cluster.log_path(down)).unwrap();
    assert!(
        log.contains("snapshot installed"),
        "replica {down} caught up without a snapshot"
    );
    // bob resumes on that replica from the first event there ever was.
    let bob = common::client_for(&cluster, vec![cluster.url(down)]);
    bob.login("bob", "password-bob").await.unwrap();
    let mut stream = Box::pin(bob.subscribe(Some(1)));
    let first = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(SubscriptionItem::Reconnecting { .. }) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("no answer from the subscription");
    assert!(
        matches!(first, Some(SubscriptionItem::Resync { oldest_seq }) if oldest_seq > 1),
        "{first:?}"
    );
    // It goes on live: the next message arrives.
    alice.send(&target, "after the resync").await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(SubscriptionItem::Event(e)) => match e.kind {
                    Some(raftchat_proto::event::Kind::Message(m)) => return m.body,
                    _ => continue,
                },
                Some(SubscriptionItem::Failed(e)) => panic!("subscription failed: {e}"),
                Some(_) => continue,
                None => panic!("subscription ended"),
            }
        }
    })
    .await
    .expect("the message after the resync never came");
    assert_eq!(next, "after the resync");
}
