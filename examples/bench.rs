//! The raftchat benchmark: real `chatd` processes on loopback, measured from
//! the outside. Build and run in release:
//!
//! ```sh
//! cargo build --release --bins --examples
//! ./target/release/examples/bench                      # everything, defaults
//! ./target/release/examples/bench --only throughput --seconds 5
//! ./target/release/examples/bench --only scale --messages 3000000   # history at scale
//! ./target/release/examples/bench --only search --messages 1000000  # Search over 1M
//! ```
//!
//! Flags (all optional): `--help` prints them (see `USAGE` below); `-- FLAGS`
//! passes the rest to every `chatd`.
//!
//! Every loop is bounded in time and count.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftchat_client::{ChatClient, Target};
use raftchat_proto::chat_client::ChatClient as RawChat;
use raftchat_proto::{send_message_request::To, SendMessageRequest};
use raftchat_testkit::local_cluster::{Cluster, Options};
use serde_json::{json, Value};
use tonic::transport::Channel;

#[path = "bench/etcd.rs"]
mod etcd;
#[path = "bench/search.rs"]
mod search;

/// The load generator shares the two cores with the five replicas, so it
/// allocates with mimalloc as `chatd` does: under glibc malloc its
/// allocations took about a tenth of its CPU at 64 senders (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY_BYTES: usize = 256;

const USAGE: &str = "\
usage: bench [FLAGS] [-- CHATD_FLAGS]
  --seconds N          seconds per throughput level (default 10)
  --levels 1,16,64,256 concurrent senders per level
  --kills N            leader kills for failover (default 20)
  --catchup N          messages written while a replica is down (default 100000)
  --cold N             messages on disk before a cold restart (default 1000000)
  --cold-restarts N    times the cold restart is repeated (default 5)
  --messages N         the scale and search parts: messages written by 64
                       senders (default 1000000)
  --restarts N         the restarts part: follower restarts (default 20), each
                       after 1,000 writes it missed, 8 senders running
  --only PART          throughput|failover|catchup|cold|restarts|tls|paths|etcd|scale|search
                       (repeatable; default all but tls, paths, etcd, scale and search)
  --tls-pairs N        the tls part: N pairs of runs per level, TLS on and off
                       in alternating order, same flags (default 3)
  --vs-etcd            also run the etcd part: raftchat and a five-member etcd
                       (Debian's etcd-server, or ETCD_BIN) in alternating pairs
                       of runs at each level; skipped if etcd is not installed
  --etcd-pairs N       pairs of runs per level in the etcd part (default 2)
  --path-pairs N       the paths part: N rounds per level (levels above 1) of
                       SendStream and unary SendMessage, at the leader and
                       spread over all replicas, in rotating order (default 2)
  --no-memory          skip the storage-off reference runs
  --json FILE          also write the results as JSON
  --keep DIR           copy the replicas' storage and logs to DIR at the end
                       of the catch-up, cold, restarts, scale or search part (stopped
                       by SIGKILL)
  -- CHATD_FLAGS       pass the rest to every chatd
environment: CHATD_BIN another chatd binary; CHATD_LOG the replicas' RUST_LOG";

/// The parts `--only` names.
const PARTS: [&str; 10] = [
    "throughput",
    "failover",
    "catchup",
    "cold",
    "restarts",
    "tls",
    "paths",
    "etcd",
    "scale",
    "search",
];

/// Parts that run only when `--only` names them: they take long or need
/// another program.
const ON_REQUEST: [&str; 5] = ["tls", "paths", "etcd", "scale", "search"];

struct Args {
    seconds: u64,
    levels: Vec<usize>,
    kills: usize,
    catchup: usize,
    cold: usize,
    cold_restarts: usize,
    restarts: usize,
    messages: usize,
    only: Vec<String>,
    memory: bool,
    json: Option<String>,
    keep: Option<String>,
    tls_pairs: usize,
    path_pairs: usize,
    etcd_pairs: usize,
    vs_etcd: bool,
    chatd_flags: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let chatd_flags = match raw.iter().position(|a| a == "--") {
        Some(i) => raw.split_off(i).into_iter().skip(1).collect(),
        None => Vec::new(),
    };
    let mut args = Args {
        seconds: 10,
        levels: vec![1, 16, 64, 256],
        kills: 20,
        catchup: 100_000,
        cold: 1_000_000,
        cold_restarts: 5,
        restarts: 20,
        messages: 1_000_000,
        only: Vec::new(),
        memory: true,
        json: None,
        keep: None,
        tls_pairs: 3,
        path_pairs: 2,
        etcd_pairs: 2,
        vs_etcd: false,
        chatd_flags,
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = value()?.parse()?,
            "--levels" => {
                args.levels = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--kills" => args.kills = value()?.parse()?,
            "--catchup" => args.catchup = value()?.parse()?,
            "--cold" => args.cold = value()?.parse()?,
            "--cold-restarts" => args.cold_restarts = value()?.parse::<usize>()?.max(1),
            "--restarts" => args.restarts = value()?.parse::<usize>()?.max(1),
            "--messages" => args.messages = value()?.parse::<usize>()?.max(1),
            "--only" => {
                let part = value()?;
                anyhow::ensure!(
                    PARTS.contains(&part.as_str()),
                    "--only {part}: expected one of {}",
                    PARTS.join(", ")
                );
                args.only.push(part)
            }
            "--no-memory" => args.memory = false,
            "--json" => args.json = Some(value()?),
            "--keep" => args.keep = Some(value()?),
            "--tls-pairs" => args.tls_pairs = value()?.parse::<usize>()?.max(1),
            "--path-pairs" => args.path_pairs = value()?.parse::<usize>()?.max(1),
            "--etcd-pairs" => args.etcd_pairs = value()?.parse::<usize>()?.max(1),
            "--vs-etcd" => args.vs_etcd = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                anyhow::bail!("unknown flag {other}\n\n{USAGE}")
            }
        }
    }
    Ok(args)
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        (self.only.is_empty() && !ON_REQUEST.contains(&part))
            || self.only.iter().any(|o| o == part)
            || (part == "etcd" && self.vs_etcd)
    }
}

/// CPU seconds (user + system) of a process so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces).
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// The machine's CPU time so far from `/proc/stat`, in ticks: (all, idle
/// and iowait, stolen by the hypervisor).
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let all = (0..8).map(at).sum();
    (all, at(3) + at(4), at(7))
}

/// Percent of the machine's CPU time between two [`machine_ticks`] that was
/// idle and that the hypervisor stole: on a shared VM a slow run shows as
/// steal, not as our CPU seconds.
fn idle_and_steal_pct(before: (u64, u64, u64), after: (u64, u64, u64)) -> (f64, f64) {
    let all = after.0.saturating_sub(before.0).max(1) as f64;
    (
        after.1.saturating_sub(before.1) as f64 * 100.0 / all,
        after.2.saturating_sub(before.2) as f64 * 100.0 / all,
    )
}

/// The disk's floor for this run: p50 of a 600-byte append plus
/// `fdatasync`, by one writer and by five at once (as five replicas on one
/// disk), 200 each, in `dir`. Kept as an append so runs compare across
/// sessions; the log itself now overwrites zeros it wrote ahead, which
/// costs less (`raftchat_server` `storage/wal.rs`).
fn fdatasync_p50_ms(dir: &Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let run = |writers: usize| -> anyhow::Result<f64> {
        let threads: Vec<_> = (0..writers)
            .map(|i| {
                let path = dir.join(format!("probe-{writers}-{i}"));
                std::thread::spawn(move || -> std::io::Result<Vec<Duration>> {
                    let mut file = std::fs::File::create(&path)?;
                    let mut lat = Vec::with_capacity(200);
                    for _ in 0..200 {
                        let t = Instant::now();
                        file.write_all(&[b'x'; 600])?;
                        file.sync_data()?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let lat = t
                .join()
                .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
            all.extend(lat);
        }
        all.sort();
        Ok(pct(&all, 0.5))
    };
    Ok((run(1)?, run(5)?))
}

fn cluster_cpu(cluster: &Cluster) -> f64 {
    cluster
        .running()
        .iter()
        .filter_map(|id| cluster.pid(*id))
        .map(cpu_seconds)
        .sum()
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `RUST_LOG` for the replicas: `CHATD_LOG` if set, else the test kit's.
fn chatd_log() -> String {
    std::env::var("CHATD_LOG").unwrap_or_else(|_| Options::default().rust_log)
}

/// Copies the stopped replicas' storage and logs to `keep/replica-N` (`--keep`).
fn keep_storage(cluster: &Cluster, keep: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(keep)
        .map_err(|e| anyhow::anyhow!("--keep {keep}: cannot create it: {e}"))?;
    for id in 1..=5 {
        let to = Path::new(keep).join(format!("replica-{id}"));
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(cluster.storage_dir(id))
            .arg(&to)
            .status()?;
        anyhow::ensure!(status.success(), "cp to {} failed", to.display());
        let log = Path::new(keep).join(format!("replica-{id}.log"));
        std::fs::copy(cluster.log_path(id), &log)
            .map_err(|e| anyhow::anyhow!("copy to {}: {e}", log.display()))?;
    }
    println!("storage and logs of the five stopped replicas copied to {keep}");
    Ok(())
}

/// What each entry of a storage directory takes on disk, largest first,
/// as "name 12.3 MB" (one level deep: a directory counts as a whole), with
/// the apparent size where it differs.
fn dir_breakdown(dir: &Path) -> String {
    let mut sizes: Vec<(String, u64, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let (disk, apparent) = match e.metadata() {
                Ok(m) if m.is_dir() => (dir_bytes(&e.path()), 0),
                Ok(m) => (m.blocks() * 512, m.len()),
                Err(_) => (0, 0),
            };
            (e.file_name().to_string_lossy().into_owned(), disk, apparent)
        })
        .collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
    let mb = |b: u64| b as f64 / 1e6;
    sizes
        .iter()
        .map(|(name, disk, apparent)| {
            if *apparent > disk + (1 << 20) {
                format!(
                    "{name} {:.1} MB (apparent {:.1} MB)",
                    mb(*disk),
                    mb(*apparent)
                )
            } else {
                format!("{name} {:.1} MB", mb(*disk))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes `dir` takes on disk: allocated blocks, as `du` counts them. The
/// history store's file grows in doubling steps that stay sparse until
/// written, so its length overstates what it takes.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn client(cluster: &Cluster) -> anyhow::Result<ChatClient> {
    Ok(ChatClient::new(cluster.client_config(cluster.urls()))?)
}

/// alice and bob exist; returns a logged-in alice.
async fn setup_users(cluster: &Cluster) -> anyhow::Result<ChatClient> {
    let c = client(cluster)?;
    for name in ["alice", "bob"] {
        if let Err(e) = c.create_account(name, "password").await {
            if !e.is_already_exists() {
                return Err(e.into());
            }
        }
    }
    c.login("alice", "password").await?;
    Ok(c)
}

/// The slowest sends kept by [`closed_loop`]: (latency, when it started
/// after the first send), slowest first.
type Slowest = Vec<(Duration, Duration)>;
const SLOWEST_KEPT: usize = 3;

/// Keeps `sample` in `slowest` if it is among the [`SLOWEST_KEPT`] slowest.
fn keep_slowest(slowest: &mut Slowest, sample: (Duration, Duration)) {
    if slowest.len() < SLOWEST_KEPT || sample.0 > slowest[SLOWEST_KEPT - 1].0 {
        slowest.push(sample);
        slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
        slowest.truncate(SLOWEST_KEPT);
    }
}

/// How one group of senders reaches the cluster.
#[derive(Clone)]
enum Route {
    /// The bundled client: its `SendStream`, falling back to unary calls.
    Client(ChatClient),
    /// One unary `SendMessage` per message on a channel to one replica, as
    /// a third-party client (grpcurl, a script) sends.
    Unary(RawChat<Channel>, Arc<str>),
    /// One etcd `Put` per message, of a new key.
    Etcd(Channel),
}

impl Route {
    /// A unary path to replica `id` for the session `token`.
    fn unary(cluster: &Cluster, id: u64, token: &str) -> Self {
        Route::Unary(
            RawChat::new(cluster.channel(id)),
            format!("Bearer {token}").into(),
        )
    }

    /// The bundled client pinned to the replicas at `urls`.
    fn client(cluster: &Cluster, urls: Vec<String>, token: &str) -> anyhow::Result<Self> {
        let c = ChatClient::new(cluster.client_config(urls))?;
        c.set_token(Some(token.to_string()));
        Ok(Route::Client(c))
    }

    async fn send(&self, target: &Target, body: &str) -> bool {
        match self {
            Route::Client(c) => c.send(target, body).await.is_ok(),
            Route::Unary(raw, bearer) => {
                let mut request = tonic::Request::new(SendMessageRequest {
                    request_id: raftchat_client::new_request_id(),
                    to: Some(To::User("bob".into())),
                    body: body.to_string(),
                    reply_to: 0,
                });
                let Ok(value) = bearer.parse() else {
                    return false;
                };
                request.metadata_mut().insert("authorization", value);
                raw.clone().send_message(request).await.is_ok()
            }
            Route::Etcd(channel) => {
                let key = format!("m/{}", raftchat_client::new_request_id());
                etcd::put(channel, key.into_bytes(), body.as_bytes().to_vec()).await
            }
        }
    }
}

/// What [`closed_loop`] measured: (ok count, sorted latencies, errors,
/// elapsed, the slowest sends and when they started).
type Measured = (usize, Vec<Duration>, usize, Duration, Slowest);

/// `senders` closed-loop senders for `seconds` through the bundled client,
/// one client per 16 senders.
async fn closed_loop(
    cluster: &Cluster,
    senders: usize,
    seconds: u64,
    max_messages: usize,
) -> anyhow::Result<Measured> {
    let alice = setup_users(cluster).await?;
    let token = alice.token().unwrap_or_default();
    // One connection per 16 senders spreads HTTP/2 streams.
    let routes: Vec<Route> = (0..senders.div_ceil(16))
        .map(|_| Route::client(cluster, cluster.urls(), &token))
        .collect::<anyhow::Result<_>>()?;
    drive(&routes, senders, seconds, max_messages).await
}

/// `senders` closed-loop senders for `seconds` (or until `max_messages`),
/// spread evenly over `routes` in order.
async fn drive(
    routes: &[Route],
    senders: usize,
    seconds: u64,
    max_messages: usize,
) -> anyhow::Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let route = routes[s * routes.len() / senders].clone();
        let stop = stop.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let body = "x".repeat(BODY_BYTES);
            let target = Target::User("bob".into());
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut slowest = Slowest::new();
            while !stop.load(Ordering::Relaxed)
                && sent.fetch_add(1, Ordering::Relaxed) < max_messages
            {
                let t = Instant::now();
                if route.send(&target, &body).await {
                    let took = t.elapsed();
                    lat.push(took);
                    keep_slowest(&mut slowest, (took, t - started));
                } else {
                    errors += 1;
                }
            }
            (lat, errors, slowest)
        }));
    }
    // Stop at the time bound, or as soon as every sender is done (the
    // message bound was reached).
    let mut joined = futures::future::join_all(tasks);
    let results = tokio::select! {
        results = &mut joined => results,
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {
            stop.store(true, Ordering::Relaxed);
            joined.await
        }
    };
    let mut all = Vec::new();
    let mut errors = 0;
    let mut slowest = Slowest::new();
    for result in results {
        let (lat, e, slow) = result?;
        all.extend(lat);
        errors += e;
        slow.into_iter().for_each(|s| keep_slowest(&mut slowest, s));
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((all.len(), all, errors, elapsed, slowest))
}

async fn throughput(args: &Args, storage: bool) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    for &senders in &args.levels {
        rows.push(throughput_level(args, storage, true, senders).await?);
    }
    Ok(rows)
}

/// What TLS costs: at each level, `--tls-pairs` pairs of runs with TLS on
/// and off (storage on), alternating which goes first, so that the VM's
/// drift hits both alike.
async fn tls_ab(args: &Args) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    for &senders in &args.levels {
        for pair in 0..args.tls_pairs {
            let order = if pair % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for tls in order {
                rows.push(throughput_level(args, true, tls, senders).await?);
            }
        }
    }
    Ok(rows)
}

/// Where the senders of a [`paths`] run send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// Every connection to the leader.
    Leader,
    /// Connections spread evenly over all five replicas: the followers
    /// forward to the leader.
    Spread,
}

/// Senders per connection in the paths part: 64 senders are 8
/// connections, enough to spread over five replicas.
const PATH_GROUP: usize = 8;

/// What other clients see (`--only paths`): at each level, on one cluster,
/// `--path-pairs` rounds of four runs in rotating order: the bundled
/// client's `SendStream` and one unary `SendMessage` per message, each
/// with every connection to the leader and spread over all replicas.
/// Prints each run and, per level, the ratios over the summed rates.
async fn paths(args: &Args) -> anyhow::Result<Vec<Value>> {
    let modes = [
        ("stream", At::Leader),
        ("unary", At::Leader),
        ("stream", At::Spread),
        ("unary", At::Spread),
    ];
    let mut rows = Vec::new();
    for &senders in args.levels.iter().filter(|l| **l > 1) {
        let cluster = Cluster::start(Options {
            storage: true,
            extra_args: args.chatd_flags.clone(),
            rust_log: chatd_log(),
            ..Options::default()
        });
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let alice = setup_users(&cluster).await?;
        let token = alice.token().unwrap_or_default();
        let mut summed = [0f64; 4];
        for round in 0..args.path_pairs {
            for k in 0..modes.len() {
                let m = (k + round) % modes.len();
                let (how, at) = modes[m];
                let groups = senders.div_ceil(PATH_GROUP);
                let replica = |g: usize| match at {
                    At::Leader => leader,
                    At::Spread => (g % 5) as u64 + 1,
                };
                let routes: Vec<Route> = (0..groups)
                    .map(|g| match how {
                        "unary" => Ok(Route::unary(&cluster, replica(g), &token)),
                        _ => Route::client(&cluster, vec![cluster.url(replica(g))], &token),
                    })
                    .collect::<anyhow::Result<_>>()?;
                let machine0 = machine_ticks();
                let (servers0, client0) = (cluster_cpu(&cluster), cpu_seconds(std::process::id()));
                let (ok, lat, errors, elapsed, _) =
                    drive(&routes, senders, args.seconds, 10_000_000).await?;
                let (_, steal) = idle_and_steal_pct(machine0, machine_ticks());
                let per_1000 = |cpu: f64| cpu / ok.max(1) as f64 * 1000.0;
                let servers_cpu = per_1000(cluster_cpu(&cluster) - servers0);
                let client_cpu = per_1000(cpu_seconds(std::process::id()) - client0);
                let rate = ok as f64 / elapsed.as_secs_f64();
                summed[m] += rate;
                let at_name = if at == At::Leader { "leader" } else { "spread" };
                println!(
                    "paths clients={senders:>3} {how:<6} at {at_name:<6}: {rate:>8.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms  cpu s/1000 msgs: replicas {servers_cpu:.3}, load generator {client_cpu:.3}  steal {steal:.0} %  ({ok} msgs, {errors} errors)",
                    pct(&lat, 0.5),
                    pct(&lat, 0.99),
                );
                rows.push(json!({
                    "clients": senders,
                    "path": how,
                    "at": at_name,
                    "round": round,
                    "msgs_per_sec": rate,
                    "p50_ms": pct(&lat, 0.5),
                    "p99_ms": pct(&lat, 0.99),
                    "errors": errors,
                    "replicas_cpu_s_per_1000": servers_cpu,
                    "load_generator_cpu_s_per_1000": client_cpu,
                    "machine_steal_pct": steal,
                }));
            }
        }
        println!(
            "paths clients={senders:>3}: unary / stream at the leader {:.0} %; spread / leader: stream {:.0} %, unary {:.0} % (summed over {} rounds)",
            summed[1] / summed[0] * 100.0,
            summed[2] / summed[0] * 100.0,
            summed[3] / summed[1] * 100.0,
            args.path_pairs,
        );
    }
    Ok(rows)
}

/// The anchor in the same run (`--vs-etcd`): at each level, `--etcd-pairs`
/// pairs of runs on fresh clusters, alternating which goes first: raftchat
/// as `--only throughput` runs it (the bundled client, storage and TLS on)
/// and a five-member etcd (one `Put` of a new key with the same body per
/// message, to its leader, plaintext; see `bench/etcd.rs`). Prints the
/// ratio of the summed rates per level; skipped when etcd is not
/// installed.
async fn vs_etcd(args: &Args) -> anyhow::Result<Vec<Value>> {
    let Some(binary) = etcd::binary() else {
        println!("etcd: no /usr/bin/etcd (apt-get install etcd-server) and no ETCD_BIN; skipped");
        return Ok(Vec::new());
    };
    let version = etcd::version(&binary);
    let mut rows = Vec::new();
    for &senders in &args.levels {
        let (mut ours, mut theirs) = (0f64, 0f64);
        for pair in 0..args.etcd_pairs {
            for etcd_now in [pair % 2 == 1, pair % 2 == 0] {
                if !etcd_now {
                    let row = throughput_level(args, true, true, senders).await?;
                    ours += row["msgs_per_sec"].as_f64().unwrap_or(0.0);
                    rows.push(json!({"system": "raftchat", "pair": pair, "run": row}));
                    continue;
                }
                let cluster = etcd::EtcdCluster::start(&binary).await?;
                let routes: Vec<Route> = (0..senders.div_ceil(16))
                    .map(|_| Ok(Route::Etcd(cluster.leader_channel()?)))
                    .collect::<anyhow::Result<_>>()?;
                let machine0 = machine_ticks();
                let (ok, lat, errors, elapsed, _) =
                    drive(&routes, senders, args.seconds, 10_000_000).await?;
                let (_, steal) = idle_and_steal_pct(machine0, machine_ticks());
                let rate = ok as f64 / elapsed.as_secs_f64();
                theirs += rate;
                println!(
                    "{} clients={senders:>3}: {rate:>8.0} put/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  steal {steal:.0} %  ({ok} puts, {errors} errors)",
                    version,
                    pct(&lat, 0.5),
                    pct(&lat, 0.99),
                    pct(&lat, 0.999),
                );
                rows.push(json!({"system": "etcd", "pair": pair, "run": {
                    "clients": senders,
                    "seconds": elapsed.as_secs_f64(),
                    "messages": ok,
                    "errors": errors,
                    "msgs_per_sec": rate,
                    "p50_ms": pct(&lat, 0.5),
                    "p99_ms": pct(&lat, 0.99),
                    "p999_ms": pct(&lat, 0.999),
                    "machine_steal_pct": steal,
                }}));
            }
        }
        println!(
            "vs etcd clients={senders:>3}: raftchat / etcd {:.2}x ({ours:.0} / {theirs:.0}, summed over {} pairs)",
            ours / theirs.max(1.0),
            args.etcd_pairs
        );
    }
    Ok(rows)
}

/// One closed-loop run of `senders` on a fresh cluster.
async fn throughput_level(
    args: &Args,
    storage: bool,
    tls: bool,
    senders: usize,
) -> anyhow::Result<Value> {
    let cluster = Cluster::start(Options {
        storage,
        tls,
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(30)).await;
    setup_users(&cluster).await?;
    let cpu0 = cluster_cpu(&cluster);
    let machine0 = machine_ticks();
    let (ok, lat, errors, elapsed, _) =
        closed_loop(&cluster, senders, args.seconds, 10_000_000).await?;
    let cpu = cluster_cpu(&cluster) - cpu0;
    let (idle, steal) = idle_and_steal_pct(machine0, machine_ticks());
    let row = json!({
        "storage": storage,
        "tls": tls,
        "clients": senders,
        "seconds": elapsed.as_secs_f64(),
        "messages": ok,
        "errors": errors,
        "msgs_per_sec": ok as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(&lat, 0.5),
        "p99_ms": pct(&lat, 0.99),
        "p999_ms": pct(&lat, 0.999),
        "cpu_s_per_1000": if ok > 0 { cpu / ok as f64 * 1000.0 } else { 0.0 },
        "machine_idle_pct": idle,
        "machine_steal_pct": steal,
    });
    println!(
        "throughput storage={:<5} tls={:<5} clients={:>3}: {:>8.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  cpu {:.3} s/1000 msgs  idle {:.0} %  steal {:.0} %  ({} msgs, {} errors)",
        storage,
        tls,
        senders,
        row["msgs_per_sec"].as_f64().unwrap_or(0.0),
        row["p50_ms"].as_f64().unwrap_or(0.0),
        row["p99_ms"].as_f64().unwrap_or(0.0),
        row["p999_ms"].as_f64().unwrap_or(0.0),
        row["cpu_s_per_1000"].as_f64().unwrap_or(0.0),
        idle,
        steal,
        ok,
        errors
    );
    Ok(row)
}

async fn failover(
    args: &Args,
    storage: bool,
    flags: &[String],
    label: &str,
) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        storage,
        extra_args: flags.to_vec(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(30)).await;
    let alice = setup_users(&cluster).await?;
    let bob = Target::User("bob".into());
    let mut gaps = Vec::new();
    for round in 0..args.kills {
        alice.send(&bob, "steady").await?;
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let killed = Instant::now();
        cluster.kill(leader);
        loop {
            match alice.send(&bob, &format!("after-{round}")).await {
                Ok(_) => break,
                Err(e) if killed.elapsed() > Duration::from_secs(30) => {
                    anyhow::bail!("no write within 30 s of a leader kill: {e}")
                }
                Err(_) => {}
            }
        }
        gaps.push(killed.elapsed());
        cluster.start_replica(leader);
        cluster.wait_converged(Duration::from_secs(30)).await;
    }
    gaps.sort();
    let row = json!({
        "storage": storage, "timeouts": label, "kills": gaps.len(),
        "p50_ms": pct(&gaps, 0.5), "p99_ms": pct(&gaps, 0.99), "max_ms": pct(&gaps, 1.0),
    });
    println!(
        "failover storage={storage} timeouts={label}: {} kills  p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        gaps.len(),
        pct(&gaps, 0.5),
        pct(&gaps, 0.99),
        pct(&gaps, 1.0)
    );
    Ok(row)
}

/// Writes `n` messages as fast as 64 senders can (bounded by 10 minutes).
async fn fill(cluster: &Cluster, n: usize) -> anyhow::Result<(usize, Duration)> {
    let (ok, _, _, elapsed, _) = closed_loop(cluster, 64, 600, n).await?;
    Ok((ok, elapsed))
}

async fn catchup(args: &Args, storage: bool) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        storage,
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let down = if leader == 5 { 4 } else { 5 };
    cluster.kill(down);
    let (written, _) = fill(&cluster, args.catchup).await?;
    // A steady load meanwhile: 5 s of it before the restart, then until the
    // replica has caught up; does catching up slow everyone else down?
    let load = SteadyLoad::start(&setup_users(&cluster).await?, CATCHUP_LOAD_SENDERS);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let leader_status = cluster
        .status(cluster.wait_leader(Duration::from_secs(30)).await, false)
        .await
        .ok_or_else(|| anyhow::anyhow!("leader status"))?;
    let target = leader_status.applied_index;
    let started = Instant::now();
    cluster.start_replica(down);
    loop {
        if let Some(s) = cluster.status(down, false).await {
            if s.applied_index >= target {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("replica did not catch up within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let (before, during, errors) = load.stop(started, started + took, true).await;
    // Another snapshot means the leader purged the log after the first one
    // before the replica could fetch it.
    let installs = std::fs::read_to_string(cluster.log_path(down))
        .map(|log| log.matches("snapshot installed").count())
        .unwrap_or(0);
    println!(
        "catch-up storage={storage}: {written} messages written while down; restarted replica reached index {target} in {:.2} s, installing {installs} snapshot(s)",
        took.as_secs_f64()
    );
    println!(
        "catch-up storage={storage}: {CATCHUP_LOAD_SENDERS} senders meanwhile: p50 {:.2} / p99 {:.2} / longest {:.0} ms in the 5 s before, p50 {:.2} / p99 {:.2} / longest {:.0} ms while catching up ({errors} errors)",
        pct(&before, 0.5),
        pct(&before, 0.99),
        pct(&before, 1.0),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 1.0),
    );
    if let Some(keep) = &args.keep {
        cluster.kill_all();
        keep_storage(&cluster, keep)?;
    }
    Ok(json!({
        "storage": storage,
        "messages": written,
        "index": target,
        "seconds": took.as_secs_f64(),
        "load_senders": CATCHUP_LOAD_SENDERS,
        "load_p99_before_ms": pct(&before, 0.99),
        "load_p99_during_ms": pct(&during, 0.99),
        "load_longest_during_ms": pct(&during, 1.0),
        "load_errors": errors,
        "snapshots_installed": installs,
    }))
}

/// Writes a restarted follower missed, in the restarts part.
const MISSED_PER_RESTART: usize = 1_000;

/// Restarts of a follower into a running cluster (`--only restarts`): each
/// round kills a follower (in turn), writes [`MISSED_PER_RESTART`] messages,
/// restarts it and waits until it has caught up, while 8 steady senders
/// run throughout. A restart should cost no election: the term must not
/// change, and no steady send should stall.
async fn follower_restarts(args: &Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let term_at = |s: Option<raftchat_proto::StatusReply>| s.map(|s| s.term).unwrap_or(0);
    let first_term = term_at(cluster.status(leader, false).await);
    let load = SteadyLoad::start(&setup_users(&cluster).await?, CATCHUP_LOAD_SENDERS);
    let started = Instant::now();
    let followers: Vec<u64> = (1..=5).filter(|id| *id != leader).collect();
    let mut catch_ups = Vec::new();
    for round in 0..args.restarts {
        let down = followers[round % followers.len()];
        cluster.kill(down);
        fill(&cluster, MISSED_PER_RESTART).await?;
        let target = cluster
            .status(leader, false)
            .await
            .map(|s| s.applied_index)
            .ok_or_else(|| anyhow::anyhow!("no status from leader {leader}"))?;
        let restarted = Instant::now();
        cluster.start_replica(down);
        while cluster
            .status(down, false)
            .await
            .is_none_or(|s| s.applied_index < target)
        {
            anyhow::ensure!(
                restarted.elapsed() < Duration::from_secs(60),
                "replica {down} did not catch up within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        catch_ups.push(restarted.elapsed());
    }
    let ended = Instant::now();
    let (_, during, errors) = load.stop(started, ended, false).await;
    let last = cluster.wait_leader(Duration::from_secs(30)).await;
    let last_term = term_at(cluster.status(last, false).await);
    if let Some(keep) = &args.keep {
        cluster.kill_all();
        keep_storage(&cluster, keep)?;
    }
    catch_ups.sort();
    let longest_catch_up = catch_ups.last().copied().unwrap_or_default();
    println!(
        "restarts: {} follower restarts, each after {MISSED_PER_RESTART} missed writes: term {first_term} -> {last_term} (leader {leader} -> {last}); caught up in median {:.2} s, longest {:.2} s; {CATCHUP_LOAD_SENDERS} senders meanwhile: p50 {:.2} / p99 {:.2} / longest {:.0} ms ({errors} errors)",
        args.restarts,
        catch_ups[catch_ups.len() / 2].as_secs_f64(),
        longest_catch_up.as_secs_f64(),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 1.0),
    );
    Ok(json!({
        "restarts": args.restarts,
        "missed_each": MISSED_PER_RESTART,
        "term_changes": last_term.saturating_sub(first_term),
        "load_p99_ms": pct(&during, 0.99),
        "load_longest_ms": pct(&during, 1.0),
        "load_errors": errors,
        "longest_catch_up_s": longest_catch_up.as_secs_f64(),
    }))
}

/// Senders of the steady load during a catch-up.
const CATCHUP_LOAD_SENDERS: usize = 8;

/// Closed-loop senders that note when each send started and how long it
/// took, until stopped (or for at most 10 minutes).
struct SteadyLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<SenderRecord>>,
}

/// One steady sender's (start, latency) of each acknowledged send, and its
/// error count.
type SenderRecord = (Vec<(Instant, Duration)>, usize);

impl SteadyLoad {
    fn start(client: &ChatClient, senders: usize) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..senders)
            .map(|_| {
                let (c, stop) = (client.clone(), stop.clone());
                tokio::spawn(async move {
                    let (body, target) = ("y".repeat(BODY_BYTES), Target::User("bob".into()));
                    let (mut samples, mut errors) = (Vec::new(), 0);
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(600)
                    {
                        let t = Instant::now();
                        match c.send(&target, &body).await {
                            Ok(_) => samples.push((t, t.elapsed())),
                            Err(_) => errors += 1,
                        }
                    }
                    (samples, errors)
                })
            })
            .collect();
        SteadyLoad { stop, tasks }
    }

    /// Stops; the sorted latencies of sends started before `from`, and of
    /// those started in `from..to`, and the error count. `per_second`
    /// prints each second's p99 from `from`.
    async fn stop(
        self,
        from: Instant,
        to: Instant,
        per_second: bool,
    ) -> (Vec<Duration>, Vec<Duration>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut before, mut during, mut errors) = (Vec::new(), Vec::new(), 0);
        let mut seconds: Vec<Vec<Duration>> = Vec::new();
        for task in self.tasks {
            let Ok((samples, e)) = task.await else {
                continue;
            };
            errors += e;
            for (t, latency) in samples {
                if t < from {
                    before.push(latency);
                } else if t < to {
                    during.push(latency);
                    let s = (t - from).as_secs() as usize;
                    if seconds.len() <= s {
                        seconds.resize(s + 1, Vec::new());
                    }
                    seconds[s].push(latency);
                }
            }
        }
        before.sort();
        during.sort();
        let by_second: Vec<String> = seconds
            .iter_mut()
            .map(|s| {
                s.sort();
                format!("{}:{:.0}/{:.0}", s.len(), pct(s, 0.99), pct(s, 1.0))
            })
            .collect();
        if per_second {
            println!(
                "per second from the restart (sends:p99/longest ms): {}",
                by_second.join(" ")
            );
        }
        (before, during, errors)
    }
}

/// Starts all five (stopped) replicas and times it to the first
/// acknowledged write: alice logs in and sends to bob.
async fn start_all_to_first_write(cluster: &mut Cluster) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for id in 1..=5 {
        cluster.start_replica(id);
    }
    let c = client(cluster)?;
    c.login("alice", "password").await?;
    c.send(&Target::User("bob".into()), "after cold restart")
        .await?;
    Ok(started.elapsed())
}

async fn cold_restart(args: &Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    cluster.wait_leader(Duration::from_secs(30)).await;
    let (written, fill_time) = fill(&cluster, args.cold).await?;
    cluster.wait_converged(Duration::from_secs(120)).await;
    let rss: u64 = cluster
        .running()
        .iter()
        .filter_map(|id| cluster.pid(*id))
        .map(rss_bytes)
        .sum();
    let disk: u64 = (1..=5).map(|id| dir_bytes(&cluster.storage_dir(id))).sum();
    cluster.kill_all();
    if let Some(keep) = &args.keep {
        keep_storage(&cluster, keep)?;
    }
    // Restart times vary by a factor of two from run to run on this VM
    // (how much of the memory the replicas fault in the host has yet to
    // back), so the restart is repeated and the median reported.
    let mut times = Vec::new();
    for round in 0..args.cold_restarts {
        if round > 0 {
            cluster.kill_all();
        }
        times.push(start_all_to_first_write(&mut cluster).await?);
    }
    let all: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    let max = times.last().map_or(0.0, |t| t.as_secs_f64());
    println!(
        "cold restart: {written} messages on disk (written in {:.1} s); first write after starting all five: median {median:.2} s, max {max:.2} s over {} restarts ({} s)",
        fill_time.as_secs_f64(),
        times.len(),
        all.join(", ")
    );
    println!(
        "per stored message: {:.0} disk bytes and {:.0} resident bytes per replica",
        disk as f64 / 5.0 / written.max(1) as f64,
        rss as f64 / 5.0 / written.max(1) as f64
    );
    Ok(json!({
        "messages": written,
        "seconds_to_first_write_median": median,
        "seconds_to_first_write_max": max,
        "seconds_to_first_write_all": all,
        "disk_bytes_per_message_per_replica": disk as f64 / 5.0 / written.max(1) as f64,
        "rss_bytes_per_message_per_replica": rss as f64 / 5.0 / written.max(1) as f64,
    }))
}

/// The leader and its term once they have held for two seconds: a fresh
/// cluster's first election is often followed by another, and senders
/// that found the first leader then had every write forwarded (a 1M fill
/// took twice as long).
async fn settled_leader(cluster: &Cluster) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0..30 {
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let term = cluster.status(leader, false).await.map_or(0, |s| s.term);
        if (leader, term) == last {
            break;
        }
        last = (leader, term);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    last
}

/// History at scale (`--only scale --messages N`): 64 senders write N
/// messages (one conversation) while every replica's resident memory is
/// sampled twice a second; then the slowest send, memory and disk per
/// replica, whether any election happened, and a cold restart of all five
/// to the first acknowledged write.
async fn scale(args: &Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    let (leader, term_before) = settled_leader(&cluster).await;
    let pids: Vec<u32> = (1..=5).filter_map(|id| cluster.pid(id)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                for pid in &pids {
                    peak = peak.max(rss_bytes(*pid));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            peak
        })
    };
    // Bounded by the count and by an hour.
    let (written, latencies, errors, fill_time, slowest) =
        closed_loop(&cluster, 64, 3600, args.messages).await?;
    done.store(true, Ordering::Relaxed);
    let peak_rss = sampler.await?;
    cluster.wait_converged(Duration::from_secs(300)).await;
    let mut term_after = 0;
    for id in 1..=5 {
        if let Some(s) = cluster.status(id, false).await {
            term_after = term_after.max(s.term);
        }
    }
    let rss: Vec<u64> = (1..=5)
        .filter_map(|id| cluster.pid(id))
        .map(rss_bytes)
        .collect();
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    let disk: u64 = (1..=5).map(|id| dir_bytes(&cluster.storage_dir(id))).sum();
    let breakdown = dir_breakdown(&cluster.storage_dir(leader));
    cluster.kill_all();
    if let Some(keep) = &args.keep {
        keep_storage(&cluster, keep)?;
    }
    let restart = start_all_to_first_write(&mut cluster).await?.as_secs_f64();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let longest = latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "scale: {written} messages by 64 senders in {:.1} s ({errors} errors); send p50 {:.2} ms, p99 {:.2} ms, longest {longest:.0} ms; term {term_before} -> {term_after}",
        fill_time.as_secs_f64(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
    );
    println!(
        "scale: resident memory per replica {:.0} MB at the end (largest), {:.0} MB peak during the fill; disk {:.0} bytes per message per replica; cold restart of all five to the first write {restart:.2} s",
        mb(max_rss),
        mb(peak_rss),
        disk as f64 / 5.0 / written.max(1) as f64,
    );
    println!("scale: storage of replica {leader} (the first leader): {breakdown}");
    let slowest: Vec<String> = slowest
        .iter()
        .map(|(took, at)| {
            format!(
                "{:.0} ms at {:.1} s",
                took.as_secs_f64() * 1000.0,
                at.as_secs_f64()
            )
        })
        .collect();
    println!("scale: slowest sends: {}", slowest.join(", "));
    Ok(json!({
        "messages": written,
        "fill_seconds": fill_time.as_secs_f64(),
        "errors": errors,
        "send_p50_ms": pct(&latencies, 0.5),
        "send_p99_ms": pct(&latencies, 0.99),
        "send_longest_ms": longest,
        "term_before": term_before,
        "term_after": term_after,
        "rss_bytes_per_replica_end_max": max_rss,
        "rss_bytes_per_replica_peak": peak_rss,
        "disk_bytes_per_message_per_replica": disk as f64 / 5.0 / written.max(1) as f64,
        "cold_restart_to_first_write_seconds": restart,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "machine: {cores} cores, kernel {}; 5 replicas on loopback, {BODY_BYTES}-byte messages",
        kernel.trim()
    );
    println!(
        "parameters: {} s per level, levels {:?}, {} kills, catch-up {}, cold {} x {} restarts, chatd flags {:?}",
        args.seconds,
        args.levels,
        args.kills,
        args.catchup,
        args.cold,
        args.cold_restarts,
        args.chatd_flags
    );
    let probe_dir = tempfile::tempdir()?;
    let (sync_one, sync_five) = fdatasync_p50_ms(probe_dir.path())?;
    drop(probe_dir);
    println!(
        "disk: 600-byte append + fdatasync p50 {sync_one:.3} ms (one writer), {sync_five:.3} ms (five at once)"
    );
    let mut out = json!({"machine": {
        "cores": cores,
        "kernel": kernel.trim(),
        "fdatasync_p50_ms_one_writer": sync_one,
        "fdatasync_p50_ms_five_writers": sync_five,
    }});
    if args.wants("throughput") {
        out["throughput"] = json!(throughput(&args, true).await?);
        if args.memory {
            out["throughput_memory"] = json!(throughput(&args, false).await?);
        }
    }
    if args.wants("tls") {
        out["tls_ab"] = json!(tls_ab(&args).await?);
    }
    if args.wants("paths") {
        out["paths"] = json!(paths(&args).await?);
    }
    if args.wants("etcd") {
        out["vs_etcd"] = json!(vs_etcd(&args).await?);
    }
    if args.wants("failover") {
        let mut rows = vec![failover(&args, true, &args.chatd_flags, "default").await?];
        let tight: Vec<String> = ["--heartbeat-ms", "15", "--election-timeout-ms", "50-100"]
            .into_iter()
            .map(String::from)
            .collect();
        rows.push(failover(&args, true, &tight, "tight (15 ms / 50-100 ms)").await?);
        if args.memory {
            rows.push(failover(&args, false, &args.chatd_flags, "default").await?);
        }
        out["failover"] = json!(rows);
    }
    if args.wants("catchup") {
        let mut rows = vec![catchup(&args, true).await?];
        if args.memory {
            rows.push(catchup(&args, false).await?);
        }
        out["catchup"] = json!(rows);
    }
    if args.wants("cold") {
        out["cold_restart"] = cold_restart(&args).await?;
    }
    if args.wants("restarts") {
        out["restarts"] = follower_restarts(&args).await?;
    }
    if args.wants("scale") {
        out["scale"] = scale(&args).await?;
    }
    if args.wants("search") {
        out["search"] = search::search(&args).await?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("results written to {path}");
    }
    Ok(())
}
