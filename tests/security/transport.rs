//! Attacks on the replica-to-replica port and the admin calls, replayed
//! against real TLS replicas: nothing without a replica certificate reaches
//! Raft or the proposer, an authenticated peer cannot push an absurd term or
//! speak for another replica, membership needs the admin certificate, and
//! connection floods cost bounded descriptors for a bounded time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::RemoveReplicaRequest;
use raftchat_server::raft::wire::{self, Kind};
use raftchat_server::state::command::{Command, Proposal};
use raftchat_server::storage::raft_types::TypeConfig;
use raftchat_tls::{self as tls, ReplicaTls};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::{options, Cluster, Options};

/// Every replica's (term, leader, applied index, digest).
async fn snapshot(cluster: &Cluster) -> Vec<(u64, u64, u64, String)> {
    let mut out = Vec::new();
    for id in cluster.running() {
        let s = cluster.status(id, true).await.expect("status");
        out.push((s.term, s.leader_id, s.applied_index, s.digest));
    }
    out
}

/// The cluster's state once its own start-up writes (each replica's
/// start notice) are applied: two looks a second apart agree.
async fn settled(cluster: &Cluster) -> Vec<(u64, u64, u64, String)> {
    let mut last = snapshot(cluster).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = snapshot(cluster).await;
        if now == last && now.windows(2).all(|w| w[0] == w[1]) {
            return now;
        }
        last = now;
    }
    panic!("the cluster never settled: {last:?}");
}

/// A TLS connection to `id` offering the Raft ALPN, presenting `identity`
/// (a certificate stem in the cluster's certs dir) or nothing.
async fn raft_tls(
    cluster: &Cluster,
    id: u64,
    identity: Option<&str>,
) -> std::io::Result<wire::Conn> {
    let certs = cluster.certs_dir();
    let ca = tls::read_certs("ca", &certs.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(stem) => builder
            .with_client_auth_cert(
                tls::read_certs("cert", &certs.join(format!("{stem}.pem"))).unwrap(),
                tls::read_key("key", &certs.join(format!("{stem}.key"))).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![tls::RAFT_ALPN.to_vec()];
    let tcp = TcpStream::connect(cluster.url(id)).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await?;
    Ok(BufReader::new(wire::Stream::Tls(Box::new(stream.into()))))
}

/// Sends one frame and reports whether an answer came back (a refused
/// request closes the connection instead).
async fn answered<T: serde::Serialize>(
    conn: std::io::Result<wire::Conn>,
    kind: Kind,
    req: &T,
) -> bool {
    let Ok(mut conn) = conn else {
        return false;
    };
    let frame = wire::encode_frame(kind, req).unwrap();
    if wire::write_frame(conn.get_mut(), &frame).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(5), wire::read_frame(&mut conn)).await,
        Ok(Ok(Some(_)))
    )
}

fn forged_account() -> Proposal {
    Proposal {
        request_id: Some("x".repeat(100_000)),
        command: Command::CreateAccount {
            username: "mallory".into(),
            password_hash: "x".repeat(500_000),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_replica_certificates_reach_raft() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let other = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let before = settled(&cluster).await;
    let huge = Vote::new(u64::MAX, follower);
    let vote = VoteRequest::new(huge, None);

    // Plaintext, as before TLS: the magic and a term-2^64-1 vote.
    let mut plain = TcpStream::connect(cluster.url(leader)).await.unwrap();
    let _ = plain.write_all(&wire::MAGIC).await;
    let conn = Ok(BufReader::new(wire::Stream::Plain(plain)));
    assert!(
        !answered(conn, Kind::Vote, &vote).await,
        "plaintext frame answered"
    );

    // TLS without a certificate, and with the admin's: not a replica.
    for identity in [None, Some("admin")] {
        for id in [leader, follower] {
            let conn = raft_tls(&cluster, id, identity).await;
            assert!(
                !answered(conn, Kind::Vote, &vote).await,
                "{identity:?} vote answered"
            );
            let conn = raft_tls(&cluster, id, identity).await;
            assert!(
                !answered(conn, Kind::Forward, &forged_account()).await,
                "{identity:?} forward answered"
            );
        }
    }

    // An authenticated but buggy (or compromised) replica: a term that
    // would overflow, as AppendEntries and as a vote, and a vote in
    // another replica's name.
    let append: AppendEntriesRequest<TypeConfig> = AppendEntriesRequest {
        vote: huge,
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let me = format!("replica-{follower}");
    for id in [leader, other] {
        assert!(!answered(raft_tls(&cluster, id, Some(&me)).await, Kind::Vote, &vote).await);
        assert!(
            !answered(
                raft_tls(&cluster, id, Some(&me)).await,
                Kind::Append,
                &append
            )
            .await
        );
        let impersonated = VoteRequest::new(Vote::new(before[0].0 + 1, other), None);
        assert!(
            !answered(
                raft_tls(&cluster, id, Some(&me)).await,
                Kind::Vote,
                &impersonated
            )
            .await,
            "a vote in another replica's name was answered"
        );
    }
    // A frame over its kind's limit is refused from its header on.
    let mut conn = raft_tls(&cluster, leader, Some(&me)).await.unwrap();
    let mut header = (2u32 << 20).to_le_bytes().to_vec();
    header.push(Kind::Forward as u8);
    conn.get_mut().write_all(&header).await.unwrap();
    conn.get_mut().flush().await.unwrap();
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_secs(5), wire::read_frame(&mut conn)).await,
            Ok(Ok(Some(_)))
        ),
        "an oversized forward was answered"
    );

    // The same certificate and an honest request is answered: the refusals
    // above were about the requests, not a broken client.
    assert!(
        answered(
            raft_tls(&cluster, leader, Some(&me)).await,
            Kind::ReadIndex,
            &()
        )
        .await,
        "an honest read-index request was refused"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        snapshot(&cluster).await,
        before,
        "the attacks changed the cluster"
    );

    // Nobody panicked: the leader dies and the others elect a new one.
    cluster.kill(leader);
    let next = cluster.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(next, leader);
    let term = cluster.status(next, false).await.unwrap().term;
    assert!(term < before[0].0 + 100, "term jumped to {term}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_clients_and_connection_floods_are_refused() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        storage: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;

    // A client without the CA speaks plaintext HTTP/2: refused.
    let mut config = raftchat_client::ClientConfig::new([cluster.url(leader)]);
    config.rpc_timeout = Duration::from_millis(500);
    config.write_deadline = Duration::from_secs(2);
    let plain = raftchat_client::ChatClient::new(config).unwrap();
    assert!(plain.create_account("eve", "password-eve").await.is_err());
    // With the CA it works.
    let client =
        raftchat_client::ChatClient::new(cluster.client_config([cluster.url(leader)])).unwrap();
    assert!(
        client.cluster_status(false).await[0].result.is_ok(),
        "a TLS client is served"
    );

    // 1,000 connections that never say anything: at most MAX_HANDSHAKES
    // are held, and only for HANDSHAKE_TIMEOUT.
    let pid = cluster.pid(leader).unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let baseline = fds();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect(cluster.url(leader)).await {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = fds();
    println!("1000 idle connections: replica fds {baseline} -> {held}");
    assert!(
        held <= baseline + raftchat_server::raft::listener::MAX_HANDSHAKES + 16,
        "{held} fds held (baseline {baseline})"
    );
    let started = Instant::now();
    while fds() > baseline + 16 {
        assert!(
            started.elapsed() < raftchat_server::raft::listener::HANDSHAKE_TIMEOUT * 3,
            "idle connections still held: {} fds",
            fds()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(idle);
    // Still serving.
    assert!(
        client.cluster_status(false).await[0].result.is_ok(),
        "served after the flood"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_need_the_admin_certificate() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        storage: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    let client = raftchat_client::ChatClient::new(cluster.client_config(cluster.urls())).unwrap();
    let members = || async {
        client
            .cluster_status(false)
            .await
            .into_iter()
            .map(|s| {
                let s = s.result.expect("status");
                (s.id, s.members.len(), s.leader_id)
            })
            .collect::<Vec<_>>()
    };
    let before = members().await;

    let remove = RemoveReplicaRequest { id: victim };
    let err = ClusterClient::new(cluster.channel(leader))
        .remove_replica(remove)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("admin certificate"), "{err:?}");

    // A replica's certificate is not an admin's, even from a follower.
    let certs = cluster.certs_dir();
    let peer = ReplicaTls::load(
        &certs.join(format!("replica-{victim}.pem")),
        &certs.join(format!("replica-{victim}.key")),
        &certs.join("ca.pem"),
    )
    .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.url(leader)))
            .unwrap()
            .tls_config(peer.grpc_client())
            .unwrap()
            .connect_lazy();
    let err = ClusterClient::new(channel)
        .remove_replica(remove)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(
        members().await,
        before,
        "membership changed without the admin certificate"
    );

    // The admin certificate, through a follower (which forwards it).
    let reply = ClusterClient::new(cluster.channel_as(victim, true))
        .remove_replica(remove)
        .await
        .expect("the admin may remove a replica")
        .into_inner();
    assert!(reply.members.iter().all(|m| m.id != victim), "{reply:?}");
}

/// The peak resident memory of a process, from /proc.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_from_a_peer_cost_bounded_memory() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        storage: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let peer = (1..=3).find(|id| *id != leader).unwrap();
    let pid = cluster.pid(leader).unwrap();
    let before = peak_rss_mib(pid);

    // Eight connections, each one 48 MiB AppendEntries (within the kind's
    // limit) at once: 384 MiB if all were held.
    const FRAME: usize = 48 << 20;
    let mut senders = Vec::new();
    for _ in 0..8 {
        let conn = raft_tls(&cluster, leader, Some(&format!("replica-{peer}")))
            .await
            .unwrap();
        senders.push(tokio::spawn(async move {
            let mut conn = conn;
            let mut header = (FRAME as u32).to_le_bytes().to_vec();
            header.push(Kind::Append as u8);
            let chunk = vec![0u8; 1 << 20];
            let sent = async {
                conn.get_mut().write_all(&header).await?;
                for _ in 0..FRAME / chunk.len() {
                    conn.get_mut().write_all(&chunk).await?;
                }
                conn.get_mut().flush().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), sent).await;
            // Zeros decode to a request in replica 0's name: refused.
            tokio::time::timeout(Duration::from_secs(30), wire::read_frame(&mut conn)).await
        }));
    }
    for sender in senders {
        let answer = sender.await.unwrap();
        assert!(
            !matches!(answer, Ok(Ok(Some(_)))),
            "a forged append was answered"
        );
    }
    let after = peak_rss_mib(pid);
    println!("8 x 48 MiB frames: leader peak RSS {before} -> {after} MiB");
    // At most the frame budget (128 MiB) is read at once.
    assert!(
        after < before + 200,
        "peak RSS grew from {before} to {after} MiB"
    );
    let client = raftchat_client::ChatClient::new(cluster.client_config(cluster.urls())).unwrap();
    assert!(client
        .cluster_status(false)
        .await
        .iter()
        .all(|s| s.result.is_ok()));
}
