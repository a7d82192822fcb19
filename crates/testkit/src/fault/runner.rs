//! One fault-injection run from start to verdict: cluster and proxies up,
//! users and conversations set up, clients and nemesis running for the
//! configured time, everything healed, final state read from every replica,
//! checks, history file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::local_cluster::{Cluster, Options};
use raftchat_client::{new_request_id, ChatClient, ClientConfig, ClientError, Target};

use super::checker::{self, FinalState, Report};
use super::history::{Clock, History, NemesisEvent, Outcome, Request, Seen};
use super::nemesis::{Nemesis, Schedule};
use super::proxy::Mesh;
use super::workload::{self, Recorder, Setup, Timing, Worker};

/// Time after a heal during which failures do not count against
/// availability (an election and a client backoff round).
pub const GRACE_MS: u64 = 2000;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// How long clients and nemesis run (the final heal and checks come
    /// after).
    pub duration: Duration,
    pub clients: usize,
    pub replicas: u64,
    /// The `chatd` binary (default: see `local_cluster::chatd_path`).
    pub chatd: Option<PathBuf>,
    pub timing: Timing,
    pub snapshot_every: Option<u64>,
    /// Where the history file goes.
    pub history_dir: PathBuf,
    /// Write the history even when every check passes.
    pub always_write_history: bool,
    /// Print nemesis events as they happen.
    pub verbose: bool,
}

impl RunConfig {
    pub fn new(seed: u64, duration: Duration, clients: usize) -> Self {
        Self {
            seed,
            duration,
            clients,
            replicas: 5,
            chatd: None,
            timing: Timing::default(),
            snapshot_every: None,
            history_dir: std::env::temp_dir(),
            always_write_history: false,
            verbose: false,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub config: RunConfig,
    pub schedule: Schedule,
    pub events: Vec<NemesisEvent>,
    pub report: Report,
    pub history_path: Option<PathBuf>,
}

impl RunResult {
    /// Injected events by kind (heals not counted).
    pub fn events_by_kind(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.kind != "heal") {
            *out.entry(e.kind.clone()).or_default() += 1;
        }
        out
    }

    /// Everything needed to understand and reproduce the run.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "seed {} ({} s, {} clients, {} replicas): {}\n",
            c.seed,
            c.duration.as_secs(),
            c.clients,
            c.replicas,
            if self.report.ok() { "PASS" } else { "FAIL" }
        );
        out.push_str(&format!("nemesis events: {:?}\n", self.events_by_kind()));
        out.push_str(&self.report.to_string());
        if !self.report.ok() {
            out.push_str(&self.schedule.to_string());
            out.push_str("events injected:\n");
            for e in &self.events {
                out.push_str(&format!(
                    "  {:>8} ms  {:<15} {}\n",
                    e.at / 1000,
                    e.kind,
                    e.detail
                ));
            }
        }
        if let Some(path) = &self.history_path {
            out.push_str(&format!("history: {}\n", path.display()));
        }
        out
    }
}

/// Runs one seed.
pub async fn run(config: RunConfig) -> anyhow::Result<RunResult> {
    let schedule = Schedule::generate(config.seed, config.replicas, config.duration);
    let mut cluster = Cluster::prepare(Options {
        replicas: config.replicas,
        storage: true,
        snapshot_every: config.snapshot_every,
        chatd: config.chatd.clone(),
        ..Options::default()
    });
    let targets: BTreeMap<u64, SocketAddr> = cluster
        .replicas
        .values()
        .map(|r| (r.id, SocketAddr::from(([127, 0, 0, 1], r.port))))
        .collect();
    let mesh = Mesh::start(&targets).await.context("start link proxies")?;
    cluster.routes = mesh.routes();
    for id in 1..=config.replicas {
        cluster.start_replica(id);
    }
    let outcome = drive(&config, &schedule, &mut cluster, &mesh).await;
    let (history, finals, health, end) = match outcome {
        Ok(parts) => parts,
        Err(e) => return Err(e.context(format!("seed {}\n{}", config.seed, cluster.logs_tail()))),
    };
    let report = checker::check(&history.ops, &finals, &health, end, GRACE_MS);
    let history_path = if config.always_write_history || !report.ok() {
        let path = config
            .history_dir
            .join(format!("raftchat-faults-seed-{}.jsonl", config.seed));
        history
            .write_jsonl(&path, &finals.histories)
            .with_context(|| format!("write {}", path.display()))?;
        Some(path)
    } else {
        None
    };
    if !report.ok() && config.verbose {
        eprintln!("{}", cluster.logs_tail());
    }
    Ok(RunResult {
        config,
        schedule,
        events: history.nemesis,
        report,
        history_path,
    })
}

type Parts = (History, FinalState, super::nemesis::HealthTimeline, u64);

async fn drive(
    config: &RunConfig,
    schedule: &Schedule,
    cluster: &mut Cluster,
    mesh: &Mesh,
) -> anyhow::Result<Parts> {
    cluster
        .try_wait_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow!(e))?;
    let clock = Clock::new();
    let servers = cluster.client_config(cluster.urls());
    let mut history = History {
        seed: config.seed,
        describe: format!("{config:?}\n{schedule}"),
        ..History::default()
    };
    let (setup, clients, setup_ops) = set_up(config, &servers, clock).await?;
    history.ops.extend(setup_ops);

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (k, client) in clients.into_iter().enumerate() {
        let rec = Recorder::new(k, setup.users[k].clone(), clock);
        let worker = Worker::new(
            rec,
            client,
            setup.conversations_of(k),
            config.seed,
            config.timing,
        );
        tasks.push(tokio::spawn(worker.run(stop.clone())));
    }

    let until = clock.now() + config.duration.as_micros() as u64;
    let mut nemesis = Nemesis::new(cluster, mesh, clock, config.seed);
    nemesis.verbose = config.verbose;
    nemesis.run(schedule, until).await;
    stop.store(true, Ordering::Relaxed);
    nemesis.heal_all();
    let end = clock.now();
    history.nemesis = std::mem::take(&mut nemesis.events);
    let health = std::mem::take(&mut nemesis.health);
    drop(nemesis);
    for task in tasks {
        history
            .ops
            .extend(task.await.context("a client task failed")?);
    }
    // Convergence is checked below from the digests; a replica that never
    // catches up shows there, so a timeout here is not fatal.
    let _ = cluster.try_wait_converged(Duration::from_secs(60)).await;
    let finals = read_final_state(cluster, &setup, &config.timing).await?;
    Ok((history, finals, health, end))
}

/// Creates the users (`u0`, ...), two groups and a ring of direct
/// conversations; returns them, one logged-in client per user (each
/// preferring a different replica) and the setup's own sends.
async fn set_up(
    config: &RunConfig,
    servers: &ClientConfig,
    clock: Clock,
) -> anyhow::Result<(Setup, Vec<ChatClient>, Vec<super::history::Op>)> {
    anyhow::ensure!(config.clients >= 2, "need at least 2 clients");
    let n = config.clients;
    let users: Vec<String> = (0..n).map(|k| format!("u{k}")).collect();
    let mut clients = Vec::new();
    for (k, user) in users.iter().enumerate() {
        let client = workload::client(servers, k, &config.timing)?;
        client
            .create_account(user, &Setup::password(user))
            .await
            .with_context(|| format!("create {user}"))?;
        client
            .login(user, &Setup::password(user))
            .await
            .with_context(|| format!("log in {user}"))?;
        clients.push(client);
    }
    let mut conversations: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let groups = [
        ("g0", (0..n).collect::<Vec<_>>()),
        ("g1", (0..n.div_ceil(2) + 1).collect()),
    ];
    for (name, members) in groups {
        let members: Vec<usize> = members.into_iter().filter(|k| *k < n).collect();
        let others: Vec<String> = members[1..].iter().map(|k| users[*k].clone()).collect();
        let reply = clients[members[0]]
            .create_group(name, &others)
            .await
            .with_context(|| format!("create group {name}"))?;
        let conv = reply
            .conversation
            .ok_or_else(|| anyhow!("create group {name}: no conversation in the reply"))?;
        conversations.insert(conv.id, members);
    }
    // Direct conversations exist once a message is sent; the setup sends
    // are recorded like any other.
    let mut setup_ops = Vec::new();
    let pairs: Vec<(usize, usize)> = if n == 2 {
        vec![(0, 1)]
    } else {
        (0..n).map(|k| (k, (k + 1) % n)).collect()
    };
    for (a, b) in pairs {
        let mut rec = Recorder::new(a, users[a].clone(), clock);
        let body = format!("setup-{}-{}", users[a], users[b]);
        let conv = send_setup(&mut rec, &clients[a], &users[b], &body).await?;
        conversations.insert(conv, vec![a, b]);
        setup_ops.extend(rec.ops);
    }
    Ok((
        Setup {
            users,
            conversations,
        },
        clients,
        setup_ops,
    ))
}

/// Sends the first message of a direct conversation; returns its id.
async fn send_setup(
    rec: &mut Recorder,
    client: &ChatClient,
    peer: &str,
    body: &str,
) -> anyhow::Result<u64> {
    let request_id = new_request_id();
    let invoke = rec.now();
    let reply = client
        .send_with_request_id(&Target::User(peer.to_string()), body, &request_id)
        .await
        .with_context(|| format!("setup send to {peer}"))?;
    let message = reply
        .message
        .ok_or_else(|| anyhow!("setup send to {peer}: no message in the reply"))?;
    rec.push(
        Request::Send {
            conv: message.conversation_id,
            body: body.to_string(),
            request_id,
            attempt: 1,
            reply_to: 0,
        },
        invoke,
        Outcome::Sent {
            message: Seen::of(message.id, &message.body),
        },
    );
    Ok(message.conversation_id)
}

/// Every conversation's full history and every user's read position, from
/// each replica (clients pinned to it), and the digests.
async fn read_final_state(
    cluster: &Cluster,
    setup: &Setup,
    timing: &Timing,
) -> anyhow::Result<FinalState> {
    let mut finals = FinalState::default();
    for (id, replica) in &cluster.replicas {
        let url = format!("127.0.0.1:{}", replica.port);
        let mut histories = BTreeMap::new();
        let mut positions = BTreeMap::new();
        for (k, user) in setup.users.iter().enumerate() {
            let client = workload::client(&cluster.client_config([url.clone()]), 0, timing)?;
            let password = Setup::password(user);
            retry(|| client.login(user, &password))
                .await
                .with_context(|| format!("final login of {user} on replica {id}"))?;
            for conv in setup.conversations_of(k) {
                let reader = setup.conversations[&conv].first() == Some(&k);
                if reader {
                    let all = full_history(&client, conv)
                        .await
                        .with_context(|| format!("final history {conv} on replica {id}"))?;
                    histories.insert(conv, all);
                }
                let target = Target::Conversation(conv);
                let page = retry(|| client.history(&target, 0, 1))
                    .await
                    .with_context(|| format!("read position in {conv} on replica {id}"))?;
                if let Some(c) = page.conversation {
                    positions.insert((user.clone(), conv), c.read_up_to);
                }
            }
        }
        finals.histories.insert(*id, histories);
        finals.read_up_to.insert(*id, positions);
    }
    // The final logins were writes: wait for them to reach everyone.
    let _ = cluster.try_wait_converged(Duration::from_secs(60)).await;
    for id in cluster.replicas.keys() {
        let digest = cluster
            .status(*id, true)
            .await
            .map(|s| s.digest)
            .unwrap_or_else(|| "(no answer)".into());
        finals.digests.insert(*id, digest);
    }
    Ok(finals)
}

/// A conversation's whole history, oldest first.
async fn full_history(client: &ChatClient, conv: u64) -> Result<Vec<Seen>, ClientError> {
    let mut out = Vec::new();
    let mut before = 0;
    let target = Target::Conversation(conv);
    loop {
        let page = retry(|| client.history(&target, before, 1000)).await?;
        out.extend(page.messages.iter().map(Seen::of_message));
        match page.messages.last() {
            Some(m) if page.more => before = m.id,
            _ => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Retries an unavailable call a few times: after the heal the cluster may
/// still be electing.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut left = 5;
    loop {
        match call().await {
            Err(e) if e.is_unavailable() && left > 0 => left -= 1,
            other => return other,
        }
    }
}
