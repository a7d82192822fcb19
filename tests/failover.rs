//! Elections, leader failures and the loss of quorum, on real `chatd`
//! processes killed with real signals.

mod common;

use std::time::{Duration, Instant};

use common::{bodies_with, options, user, Clients, Cluster, Options};
use raftchat_client::Target;

/// Five replicas started in random order elect one leader; writes through
/// different replicas read back the same from every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_start_order_elects_one_leader_and_replicas_agree() {
    let cluster = Cluster::start(Options {
        start_order: Some(vec![4, 2, 5, 1, 3]),
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    assert!((1..=5).contains(&leader));

    // alice writes through replica 2, bob through replica 5.
    let alice = cluster.client_on(2);
    alice
        .create_account("alice", "password-alice")
        .await
        .unwrap();
    alice.login("alice", "password-alice").await.unwrap();
    let bob = cluster.client_on(5);
    bob.create_account("bob", "password-bob").await.unwrap();
    bob.login("bob", "password-bob").await.unwrap();
    for i in 0..10 {
        alice
            .send(&Target::User("bob".into()), &format!("a{i}"))
            .await
            .unwrap();
        bob.send(&Target::User("alice".into()), &format!("b{i}"))
            .await
            .unwrap();
    }

    // Every replica serves the same history and the same account list.
    let expected = bodies_with(&alice, "bob").await;
    assert_eq!(expected.len(), 20);
    for id in 1..=5 {
        let reader = cluster.client_on(id);
        reader.login("bob", "password-bob").await.unwrap();
        assert_eq!(
            bodies_with(&reader, "alice").await,
            expected,
            "replica {id}"
        );
        let names: Vec<String> = reader
            .list_accounts("*", "", 100)
            .await
            .unwrap()
            .accounts
            .into_iter()
            .map(|a| a.username)
            .collect();
        assert_eq!(names, vec!["alice", "bob"], "replica {id}");
    }
    cluster.wait_converged(Duration::from_secs(10)).await;
}

/// Kill the leader, then a second replica: the cluster keeps working and
/// loses nothing. Kill a third: writes and reads fail with UNAVAILABLE within
/// the client's deadline. Restart all three from their storage: everything
/// acknowledged is back and the replicas are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_two_failures_refuses_cleanly_without_quorum_and_recovers() {
    let mut cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let bob_target = Target::User("bob".into());
    let mut acked = Vec::new();
    let send = |body: String| {
        let alice = alice.clone();
        let target = bob_target.clone();
        async move {
            alice
                .send(&target, &body)
                .await
                .unwrap_or_else(|e| panic!("send {body}: {e}"));
            body
        }
    };
    for i in 0..5 {
        acked.push(send(format!("before-{i}")).await);
    }

    // First failure: the leader.
    let first = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.kill(first);
    for i in 0..5 {
        acked.push(send(format!("after-first-{i}")).await);
    }
    let second_leader = cluster.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(second_leader, first);

    // Second failure: the new leader too.
    cluster.kill(second_leader);
    for i in 0..5 {
        acked.push(send(format!("after-second-{i}")).await);
    }
    assert_eq!(bodies_with(&alice, "bob").await, acked);

    // Third failure: no quorum. Writes and linearizable reads fail fast.
    let third = cluster.running()[0];
    cluster.kill(third);
    let mut config = cluster.client_config(cluster.urls());
    config.rpc_timeout = Duration::from_millis(500);
    config.write_deadline = Duration::from_secs(3);
    let limited = raftchat_client::ChatClient::new(config).unwrap();
    limited.set_token(alice.token());
    let started = Instant::now();
    let err = limited.send(&bob_target, "no quorum").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "write took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let err = limited.history(&bob_target, 0, 10).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "read took {:?}",
        started.elapsed()
    );

    // Restart the three with their storage.
    for id in [first, second_leader, third] {
        cluster.start_replica(id);
    }
    cluster.wait_leader(Duration::from_secs(20)).await;
    acked.push(send("after-restart".to_string()).await);
    let got = bodies_with(&alice, "bob").await;
    // The refused write may or may not have committed; nothing else changed.
    let got: Vec<String> = got.into_iter().filter(|b| b != "no quorum").collect();
    assert_eq!(got, acked);
    cluster.wait_converged(Duration::from_secs(20)).await;
}

/// A write retried with the same request id — to the same replica, and to
/// another replica after the leader is killed — produces one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_request_id_applies_once_across_leader_kill() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    let request_id = raftchat_client::new_request_id();

    let first = alice
        .send_with_request_id(&target, "exactly once", &request_id)
        .await
        .unwrap();
    let again = alice
        .send_with_request_id(&target, "exactly once", &request_id)
        .await
        .unwrap();
    assert_eq!(
        first.message, again.message,
        "a retry returns the original result"
    );

    cluster.kill(leader);
    let other = cluster.running()[0];
    let elsewhere = cluster.client_on(other);
    elsewhere.set_token(alice.token());
    let third = elsewhere
        .send_with_request_id(&target, "exactly once", &request_id)
        .await
        .unwrap();
    assert_eq!(first.message, third.message);

    let bodies = bodies_with(&elsewhere, "bob").await;
    assert_eq!(bodies, vec!["exactly once"]);
}

/// A write that reaches a follower just after the leader died is held
/// there until the new leader is elected, and then goes through, in one
/// call: the follower does not answer `UNAVAILABLE` for an election it can
/// wait out (which would leave the client to find the new leader on its next
/// backoff round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_holds_a_write_through_an_election() {
    use raftchat_proto::chat_client::ChatClient as RawChat;
    use raftchat_proto::{send_message_request::To, SendMessageRequest};

    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let token = alice.token().expect("alice is logged in");
    let follower = (1..=5).find(|id| *id != leader).expect("a follower");
    let mut raw = RawChat::new(cluster.channel(follower));

    cluster.kill(leader);
    let mut request = tonic::Request::new(SendMessageRequest {
        request_id: raftchat_client::new_request_id(),
        to: Some(To::User("bob".into())),
        body: "during the election".into(),
        reply_to: 0,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    let reply = raw.send_message(request).await;
    assert!(
        reply.is_ok(),
        "one call to replica {follower} while leader {leader} was dead: {reply:?}"
    );
    assert!(bodies_with(&alice, "bob")
        .await
        .contains(&"during the election".to_string()));
}

/// SIGTERM stops a replica gracefully: exit status 0, and the cluster keeps
/// every write, including ones in flight through that replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gracefully_with_exit_zero() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    // Writes keep flowing through the replica being stopped.
    let victim = if leader == 2 { 3 } else { 2 };
    let mut order = vec![cluster.url(victim)];
    order.extend(
        cluster
            .urls()
            .into_iter()
            .filter(|u| *u != cluster.url(victim)),
    );
    let through_victim = common::client_for(&cluster, order);
    through_victim.set_token(alice.token());
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..40 {
            let body = format!("w{i}");
            through_victim
                .send(&Target::User("bob".into()), &body)
                .await
                .unwrap();
            acked.push(body);
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = cluster.terminate(victim).expect("victim was running");
    assert!(status.success(), "chatd exited with {status:?} on SIGTERM");
    let acked = writer.await.unwrap();
    assert_eq!(bodies_with(&alice, "bob").await, acked);
    let log = std::fs::read_to_string(cluster.log_path(victim)).unwrap();
    assert!(log.contains("replica stopped"), "{log}");
}

/// Sockets on this machine whose local port is `port`, the listening one
/// left out: the connections made to a replica, accepted or still queued.
fn connections_to(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 0A is LISTEN.
            local_port == Some(port) && fields.get(3) != Some(&"0A")
        })
        .count()
}

/// A follower that stops answering (here SIGSTOP; in practice a snapshot
/// load of several seconds) is not dialled anew at every heartbeat: the
/// leader waits on its unanswered connection and redials at most every half
/// second. Dialling every 25 ms left hundreds of connections (each a TLS
/// handshake) open on a follower loading a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_follower_is_not_redialled_at_every_heartbeat() {
    let cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let follower = (1..=5).find(|id| *id != leader).expect("a follower");
    let port: u16 = cluster
        .url(follower)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the replica's url");
    let before = connections_to(port);
    cluster.pause(follower, true);
    for i in 0..10 {
        alice
            .send(&Target::User("bob".into()), &format!("while frozen {i}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = connections_to(port);
    cluster.pause(follower, false);
    // 3 s of 25 ms heartbeats: 120 dials at one per heartbeat, about 6 at
    // one per half second.
    assert!(
        during <= before + 20,
        "connections to frozen replica {follower}: {before} before, {during} after 3 s"
    );
    cluster.wait_converged(Duration::from_secs(20)).await;
}

/// A follower restarted after missing writes rejoins without an election,
/// while writes go on: openraft 0.9 has no pre-vote, and a restarted
/// replica that campaigned before the leader's next heartbeat reached it
/// raised the term and deposed a healthy leader (5 restarts in 10 did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_follower_that_missed_writes_keeps_the_term() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let target = Target::User("bob".into());
    let term = cluster.status(leader, false).await.unwrap().term;
    // A steady writer throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (alice, target, stop) = (alice.clone(), target.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut slowest = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(120)
            {
                let t = Instant::now();
                alice.send(&target, "steady").await.unwrap();
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            slowest
        })
    };
    let followers: Vec<u64> = (1..=5).filter(|id| *id != leader).collect();
    for round in 0..4 {
        let down = followers[round % followers.len()];
        cluster.kill(down);
        common::send_concurrently(&alice, &target, 8, 60).await;
        let target = cluster.status(leader, false).await.unwrap().applied_index;
        cluster.start_replica(down);
        let started = Instant::now();
        while cluster
            .status(down, false)
            .await
            .is_none_or(|s| s.applied_index < target)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: replica {down} did not catch up to {target}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let now = cluster.status(leader, false).await.unwrap();
        assert_eq!(
            (now.role.as_str(), now.term),
            ("leader", term),
            "round {round}: restarting replica {down} changed the term"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slowest = writer.await.unwrap();
    println!("slowest steady write: {slowest:?}");
}

/// With every connection to the leader's port held (a firewall dropping
/// packets to it, while its own connections work: an asymmetric
/// partition), the leader keeps its quorum and is never deposed, and its
/// followers forward writes over the lanes the leader opened to them
/// (`raft::lanes`). Before lanes, no write through a follower was
/// acknowledged until the block ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_flow_while_nobody_can_dial_the_leader() {
    use raftchat_testkit::fault::proxy::Mesh;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    let mut cluster = Cluster::prepare(options());
    let targets: BTreeMap<u64, SocketAddr> = (1..=5)
        .map(|id| {
            (
                id,
                SocketAddr::from(([127, 0, 0, 1], cluster.replicas[&id].port)),
            )
        })
        .collect();
    let mesh = Mesh::start(&targets).await.expect("link proxies");
    cluster.routes = mesh.routes();
    for id in 1..=5 {
        cluster.start_replica(id);
    }
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let term = cluster.status(leader, false).await.unwrap().term;
    // Clients that know only the followers, as clients would that cannot
    // reach the leader either.
    let followers: Vec<String> = (1..=5)
        .filter(|id| *id != leader)
        .map(|id| cluster.url(id))
        .collect();
    let alice = common::client_for(&cluster, followers.clone());
    let bob = common::client_for(&cluster, followers);
    for (client, name) in [(&alice, "alice"), (&bob, "bob")] {
        client.create_account(name, "password").await.unwrap();
        client.login(name, "password").await.unwrap();
    }
    let target = Target::User("bob".into());
    alice.send(&target, "before").await.unwrap();

    mesh.hold_dials_to(leader);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut sent = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        let body = format!("during {}", sent.len());
        let t = Instant::now();
        alice
            .send(&target, &body)
            .await
            .unwrap_or_else(|e| panic!("{body}, {:?} into the block: {e}", started.elapsed()));
        slowest = slowest.max(t.elapsed());
        sent.push(body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mesh.heal();
    println!(
        "{} writes during the block, slowest {slowest:?}",
        sent.len()
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a write took {slowest:?} while connections to leader {leader} were held"
    );
    let now = cluster.status(leader, false).await.unwrap();
    assert_eq!((now.role.as_str(), now.term), ("leader", term));
    let read = bodies_with(&bob, "alice").await;
    assert_eq!(read.len(), sent.len() + 1, "{read:?}");
    assert_eq!(read[1..], sent[..]);
}
