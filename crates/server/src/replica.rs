//! Starting and stopping one replica: the server loop.
//!
//! 1. bind the port (so a busy port fails fast, before anything else);
//! 2. open storage (memory or disk): recover the log and open the history
//!    store at its last checkpoint;
//! 3. start Raft, and bootstrap the static membership from the flags
//!    (`initialize` on a replica that already has state is refused with
//!    `NotAllowed`, which is the normal restart path), unless `--join` says
//!    this replica waits to be added by the leader (`chatctl members add`);
//! 4. serve everything on the one port (`listener.rs`), over TLS when
//!    `--tls-cert` is given: a peer's Raft connection carries openraft's
//!    RPCs, forwarded proposals and read-index requests as frames (one
//!    write and one read per AppendEntries, where a unary HTTP/2 call cost
//!    several task wakeups and header work); any other goes to tonic: the
//!    Chat and Cluster gRPC services, gRPC health (tracking Raft) and
//!    reflection. Prometheus metrics go on `--metrics-addr` when asked;
//! 5. on SIGTERM/SIGINT: refuse new requests, let in-flight ones finish
//!    (bounded), stop Raft (every acknowledged entry is already fsynced),
//!    return. If the Raft core stops by itself (a fatal storage error, a
//!    bug), return an error at once, so the process exits non-zero and a
//!    supervisor (`Restart=on-failure`) restarts it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::chat_service::{ChatService, ServiceContext};
use crate::api::cluster_service::ClusterService;
use crate::api::presence::Presence;
use crate::api::proto::chat_server::ChatServer;
use crate::api::proto::cluster_server::ClusterServer;
use crate::api::typing::TypingLimits;
use crate::api::{health, metrics_http};
use crate::config::ChatdArgs;
use crate::raft::consensus::{Consensus, Timeouts};
use crate::raft::elections::ElectionHold;
use crate::raft::listener::Incoming;
use crate::raft::network::{Network, Peers};
use crate::raft::typing::TypingRelay;
use crate::raft::{incarnation, lanes, listener, quorum, snapshots};
use crate::state::command::{Command, Proposal};
use crate::storage;
use crate::storage::events::{EventHub, DEFAULT_EVENT_CAPACITY};
use crate::storage::raft_types::Raft;
use raftchat_tls::{ReplicaTls, Role};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Entries kept in the log after a snapshot, so a briefly lagging replica
/// catches up from the log rather than a full snapshot.
const LOG_KEPT_AFTER_SNAPSHOT: u64 = 1000;

/// How long one snapshot chunk may take to be answered. The last one is
/// answered once the follower has loaded the whole snapshot into a fresh
/// history store, which takes seconds per million messages.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 60_000;

/// Most entries in one AppendEntries. openraft 0.9 gives each call the
/// heartbeat interval (25 ms by default) to complete and resends a late one
/// from scratch; its default of 300 batched entries (megabytes at load)
/// often missed that while a restarted replica caught up, and so did the
/// probes a restarted leader sends to find where each follower's log ends.
/// Catch-up of 100,000 messages: 2.0-2.2 s at 300, 0.8 s at 32.
const MAX_PAYLOAD_ENTRIES: u64 = 32;

/// Runs a replica until `shutdown` resolves.
pub async fn run(
    args: ChatdArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    let id = args.server_id;
    let tls = load_tls(&args)?;
    let url = args.own_url();
    let addr = SocketAddr::new(args.listen, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--listen/--port)"))?;
    tracing::info!(id, %addr, %url, members = ?args.members(), "starting replica");
    let mut shutdown = std::pin::pin!(shutdown);

    // Before storage::open, which creates what an empty storage lacks.
    let local = incarnation::load_or_create(args.server_storage.as_deref())
        .context("cannot open storage (--server-storage)")?;
    let hub = EventHub::new(DEFAULT_EVENT_CAPACITY);
    let (log_store, state_store) = storage::open(args.server_storage.clone(), id, hub.clone())
        .await
        .context("cannot open storage (--server-storage)")?;
    let state = state_store.shared();

    let kept = LOG_KEPT_AFTER_SNAPSHOT.min(args.snapshot_every);
    let config = Config {
        cluster_name: "raftchat".into(),
        heartbeat_interval: args.heartbeat_ms,
        election_timeout_min: args.election_timeout_ms.min,
        election_timeout_max: args.election_timeout_ms.max,
        // Built by `snapshots::schedule` instead, which waits for snapshots
        // being sent.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: kept,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    }
    .validate()
    .context("invalid Raft timing (--heartbeat-ms / --election-timeout-ms)")?;

    let peers = Peers::new(args.replica_routes.0.clone(), tls.clone());
    let snapshots_out = snapshots::Outgoing::default();
    let network = Network {
        peers: peers.clone(),
        durability: log_store.durability(),
        snapshots_out: snapshots_out.clone(),
    };
    let raft = Raft::new(id, Arc::new(config), network, log_store, state_store)
        .await
        .context("cannot start Raft")?;
    snapshots::schedule(raft.clone(), args.snapshot_every, kept, snapshots_out);
    // Before the first election timeout: a replica restarted into a running
    // cluster must not depose its leader (`raft::elections`).
    let elections = ElectionHold::start(raft.clone());
    if !args.join {
        // The stored membership (it may have changed since the flags).
        let stored: BTreeMap<u64, String> = raft
            .server_metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let members = if stored.is_empty() {
            args.members()
        } else {
            stored
        };
        if members.len() > 1 {
            elections.after_restart(peers.clone(), id, members);
        }
    }

    let timeouts = Timeouts::for_election_timeout(args.election_timeout_ms.max);
    let consensus = Consensus::start(id, raft.clone(), peers.clone(), timeouts);
    // Before the first election, which it counts.
    tokio::spawn(quorum::watch(consensus.clone()));
    tokio::spawn(lanes::offer_while_leading(consensus.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);

    // Our accept loop sets TCP_NODELAY (tonic's only applies to sockets it
    // binds), does the TLS handshakes, serves Raft connections and passes
    // the rest to tonic; it stops accepting when the server drains. Peers
    // get only start-up checks until this replica may take part in Raft.
    let (raft_open, raft_open_rx) = watch::channel(false);
    let typing = Arc::new(TypingRelay::default());
    let (incoming, accept) = listener::serve(
        listener,
        listener::PeerSide {
            consensus: consensus.clone(),
            state: state.clone(),
            raft_open: raft_open_rx,
            elections,
            typing: typing.clone(),
        },
        tls.as_ref().map(|t| t.server.clone()),
        stop_rx.clone(),
    );
    let _accept = AbortOnDrop(accept);

    // Empty storage without --join: take part only if the cluster does not
    // already know this replica with other storage (`incarnation`).
    let flag_members = args.members();
    if local.fresh && !args.join && flag_members.len() > 1 {
        tokio::select! {
            checked = incarnation::probe(&peers, id, local.id, &flag_members) => {
                checked.map_err(anyhow::Error::msg)?
            }
            _ = &mut shutdown => return Ok(()),
        }
    }

    let members: BTreeMap<u64, BasicNode> = flag_members
        .into_iter()
        .map(|(id, url)| (id, BasicNode { addr: url }))
        .collect();
    // The flags' membership only seeds a brand-new cluster. Once the
    // cluster exists, its membership lives in the log (and may have changed
    // since through `chatctl members`): a replica with state ignores the flags
    // (`NotAllowed`), and a joining one waits for the leader to add it.
    if args.join {
        tracing::info!("--join: not bootstrapping; waiting for the leader to add this replica");
    } else {
        match raft.initialize(members).await {
            Ok(()) => {
                tracing::info!("bootstrapped a fresh replica with the configured membership")
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!("replica already has state; rejoining")
            }
            Err(e) => return Err(anyhow::anyhow!("cannot bootstrap membership: {e}")),
        }
    }
    let _ = raft_open.send(true);
    tokio::spawn(log_role_changes(raft.clone()));
    tokio::spawn(metrics_http::count_leader_changes(raft.clone()));

    let presence = Presence::start(consensus.clone(), state.clone());
    if let Some(addr) = args.metrics_addr {
        metrics_http::serve(addr, consensus.clone()).await?;
    }
    let (health_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(health::track(consensus.clone(), health_reporter));
    // Both versions: grpcurl speaks v1, other tools still only v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .context("cannot build the gRPC reflection service")?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .context("cannot build the gRPC reflection service (v1alpha)")?;
    let refused = record_incarnation(consensus.clone(), id, local.id, args.join);
    let ctx = Arc::new(ServiceContext {
        consensus: consensus.clone(),
        state,
        hub,
        presence,
        typing,
        typing_limits: TypingLimits::default(),
        session_ttl: args.session_ttl(),
        shutdown: stop_rx.clone(),
    });

    let chat = ChatServer::new(ChatService { ctx: ctx.clone() });
    let cluster = ClusterServer::new(ClusterService {
        ctx,
        url,
        persistent: args.server_storage.is_some(),
        tls: tls.is_some(),
        started: Instant::now(),
    });

    let mut drained = stop_rx.clone();
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)))
        .add_service(chat)
        .add_service(cluster)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha);
    let drained = async move {
        let _ = drained.wait_for(|s| *s).await;
    };
    let mut server: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> = match incoming
    {
        Incoming::Plain(incoming) => {
            Box::pin(router.serve_with_incoming_shutdown(incoming, drained))
        }
        Incoming::Tls(incoming) => Box::pin(router.serve_with_incoming_shutdown(incoming, drained)),
    };

    tokio::select! {
        res = &mut server => res.context("server failed")?,
        fatal = raft_stopped(raft.clone()) => {
            let _ = stop_tx.send(true);
            return Err(anyhow::anyhow!("the Raft core stopped: {fatal}; exiting so that a supervisor restarts this replica"));
        }
        why = refused => {
            let _ = stop_tx.send(true);
            return Err(anyhow::anyhow!("the cluster refused this replica's storage: {why}"));
        }
        _ = &mut shutdown => {
            tracing::info!("shutting down: refusing new requests, draining in-flight ones");
            let _ = stop_tx.send(true);
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await.is_err() {
                tracing::warn!("in-flight requests did not finish in {DRAIN_TIMEOUT:?}; stopping anyway");
            }
        }
    }
    raft.shutdown().await.ok();
    tracing::info!("replica stopped");
    Ok(())
}

/// Loads `--tls-cert`/`--tls-key`/`--tls-ca` and checks the certificate is
/// this replica's; without them (loopback, or `--insecure-plaintext`),
/// warns what that means.
fn load_tls(args: &ChatdArgs) -> anyhow::Result<Option<ReplicaTls>> {
    let Some((cert, key, ca)) = args.tls_files() else {
        if args.listen.is_loopback() {
            tracing::info!("no TLS: plaintext on loopback only");
        } else {
            tracing::warn!(
                listen = %args.listen,
                "--insecure-plaintext: NO TLS on a non-loopback address. Passwords, session \
                 tokens and messages travel unencrypted, and anyone who reaches this port can \
                 act as a replica"
            );
        }
        return Ok(None);
    };
    let tls = ReplicaTls::load(cert, key, ca).map_err(anyhow::Error::msg)?;
    if tls.role != Some(Role::Replica(args.server_id)) {
        anyhow::bail!(
            "--tls-cert {} is {}, not replica {}'s certificate (make one with `chatctl certs`)",
            cert.display(),
            tls.role.map_or(
                "a certificate without a raftchat role".to_string(),
                |r| format!("the {r} certificate")
            ),
            args.server_id
        );
    }
    tracing::info!(
        "TLS on: clients and peers are served over TLS; peers must present replica certificates"
    );
    Ok(Some(tls))
}

/// Records this replica's storage incarnation through the log once it can
/// (a leader known), retrying until it is applied. Resolves
/// only if the cluster refuses it: another storage is recorded for this id
/// and `replace` (`--join`) was not given — a wiped replica that slipped
/// past the start-up check, which must stop.
async fn record_incarnation(
    consensus: Consensus,
    id: u64,
    incarnation: incarnation::Incarnation,
    replace: bool,
) -> String {
    let proposal = Proposal {
        request_id: None,
        command: Command::RecordIncarnation {
            replica: id,
            incarnation,
            replace,
        },
    };
    loop {
        if consensus.leader().is_some() {
            match consensus.propose(proposal.clone()).await {
                Ok(Ok(_)) => return std::future::pending().await,
                Ok(Err(refused)) => return refused.message,
                Err(e) => tracing::debug!(error = %e, "cannot record this replica's storage yet"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolves when the Raft core stops on its own (openraft reports a fatal
/// error, or its metrics end), with what it reported.
async fn raft_stopped(raft: Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "its metrics ended".to_string();
        }
    }
}

/// Stops a task when `run` returns, however it returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs elections, role changes and leader changes.
async fn log_role_changes(raft: Raft) {
    // Server metrics change only with role, vote, leader or membership, so
    // this task is not woken for every append and apply.
    let mut metrics = raft.server_metrics();
    let mut last = None;
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_leader, m.vote.leader_id().term)
        };
        if last != Some(now) {
            let (state, leader, term) = now;
            tracing::info!(role = ?state, ?leader, term, "raft role");
            last = Some(now);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
