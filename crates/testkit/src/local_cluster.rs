//! A local cluster of real `chatd` processes on loopback, for tests,
//! examples and benchmarks: start, SIGKILL, SIGTERM, SIGSTOP and restart
//! replicas, and wait for a leader or for convergence.
//!
//! Each replica's log goes to `replica-N.log` in the cluster's directory;
//! when a test panics the tail of every log is printed.
//!
//! Replicas run with TLS unless [`Options::tls`] is off: the cluster's
//! certificates (`chatctl certs init`) are in `certs/` of its directory;
//! [`Cluster::client_config`], [`Cluster::channel`] and
//! [`Cluster::chatctl_env`] hand clients the CA (and, for admin calls, the
//! admin certificate).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

use raftchat_client::ClientConfig;
use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::{StatusReply, StatusRequest};
use raftchat_tls::ClientTls;

/// How a test cluster is started.
#[derive(Debug, Clone)]
pub struct Options {
    pub replicas: u64,
    /// Keep state on disk (`--server-storage`).
    pub storage: bool,
    pub snapshot_every: Option<u64>,
    /// Start order of replica ids; default 1..=n.
    pub start_order: Option<Vec<u64>>,
    pub extra_args: Vec<String>,
    /// The `chatd` binary (default: [`crate::bins::path`]).
    pub chatd: Option<PathBuf>,
    /// `RUST_LOG` for the replicas.
    pub rust_log: String,
    /// Give every replica a Prometheus endpoint (`--metrics-addr`) on a free
    /// loopback port; see [`Cluster::metrics_addr`].
    pub metrics: bool,
    /// TLS on every connection, with certificates made for the cluster
    /// (the default; off only to measure what TLS costs).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            replicas: 5,
            storage: true,
            snapshot_every: None,
            start_order: None,
            extra_args: Vec::new(),
            chatd: None,
            rust_log: "info,openraft=error".into(),
            metrics: false,
            tls: true,
        }
    }
}

pub struct Replica {
    pub id: u64,
    pub port: u16,
    pub child: Option<Child>,
    /// Started with `--join`: waits to be added instead of bootstrapping.
    pub join: bool,
    /// The `--metrics-addr` port, when metrics are on.
    pub metrics_port: Option<u16>,
    /// Has run before: a restart.
    pub started_before: bool,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub opts: Options,
    pub replicas: BTreeMap<u64, Replica>,
    /// `(from, to)` → the address replica `from` dials to reach `to`
    /// (`--replica-routes`), e.g. a fault-injecting proxy. Unrouted pairs
    /// connect directly; clients always connect directly.
    pub routes: BTreeMap<(u64, u64), String>,
}

/// A free loopback port for a replica, never one this process handed out
/// before, and below the kernel's ephemeral range: a port from that range
/// can be taken by any outgoing connection while its replica is down, and a
/// restarted replica then failed to listen ("Address already in use").
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&p| p > 20_000)
        .unwrap_or(32_768);
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        let port = rng.gen_range(10_000..ephemeral_start);
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port below {ephemeral_start} that this process has not handed out");
}

impl Cluster {
    /// Starts every replica (in `opts.start_order`).
    pub fn start(opts: Options) -> Self {
        let mut cluster = Self::prepare(opts);
        let order = cluster
            .opts
            .start_order
            .clone()
            .unwrap_or_else(|| (1..=cluster.opts.replicas).collect());
        for id in order {
            cluster.start_replica(id);
        }
        cluster
    }

    /// Picks ports and a directory but starts nothing, so that routes can be
    /// set up (they need the replicas' ports) before the first start.
    pub fn prepare(opts: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut replicas = BTreeMap::new();
        for id in 1..=opts.replicas {
            replicas.insert(
                id,
                Replica {
                    id,
                    port: free_port(),
                    child: None,
                    join: false,
                    metrics_port: opts.metrics.then(free_port),
                    started_before: false,
                },
            );
        }
        let cluster = Self {
            dir,
            opts,
            replicas,
            routes: BTreeMap::new(),
        };
        if cluster.opts.tls {
            let urls = cluster
                .replicas
                .keys()
                .map(|id| (*id, cluster.url(*id)))
                .collect();
            raftchat_tls::issue::init(&cluster.certs_dir(), &urls).expect("issue certificates");
        }
        cluster
    }

    /// Where the cluster's certificates are (with [`Options::tls`]).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn load_tls(&self, admin: bool) -> Option<ClientTls> {
        if !self.opts.tls {
            return None;
        }
        let certs = self.certs_dir();
        let (cert, key) = (certs.join("admin.pem"), certs.join("admin.key"));
        let identity = admin.then_some((cert.as_path(), key.as_path()));
        Some(
            ClientTls::load(&certs.join("ca.pem"), identity, ["ca", "cert", "key"])
                .expect("client TLS"),
        )
    }

    /// A client configuration for `servers` of this cluster (TLS when on).
    pub fn client_config<S: Into<String>>(
        &self,
        servers: impl IntoIterator<Item = S>,
    ) -> ClientConfig {
        let mut config = ClientConfig::new(servers);
        config.tls = self.load_tls(false);
        config
    }

    /// A lazily connected gRPC channel to replica `id`, for raw calls;
    /// presents the admin certificate when `admin`.
    pub fn channel_as(&self, id: u64, admin: bool) -> tonic::transport::Channel {
        let tls = self.load_tls(admin);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://{}", self.url(id)))
                .expect("replica url")
                .connect_timeout(Duration::from_secs(1));
        match tls {
            Some(tls) => endpoint.tls_config(tls.grpc()).expect("TLS config"),
            None => endpoint,
        }
        .connect_lazy()
    }

    /// [`Cluster::channel_as`] without the admin certificate.
    pub fn channel(&self, id: u64) -> tonic::transport::Channel {
        self.channel_as(id, false)
    }

    /// Environment for a `chatctl` run against this cluster: the CA, and
    /// with `admin` the admin certificate.
    pub fn chatctl_env(&self, admin: bool) -> Vec<(&'static str, String)> {
        if !self.opts.tls {
            return Vec::new();
        }
        let certs = self.certs_dir();
        let path = |name: &str| certs.join(name).display().to_string();
        let mut env = vec![("CHAT_CA", path("ca.pem"))];
        if admin {
            env.push(("CHAT_CERT", path("admin.pem")));
            env.push(("CHAT_KEY", path("admin.key")));
        }
        env
    }

    pub fn url(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.replicas[&id].port)
    }

    pub fn urls(&self) -> Vec<String> {
        self.replicas.keys().map(|id| self.url(*id)).collect()
    }

    /// Creates and starts a new replica with `--join` (the next unused id):
    /// it waits until the leader adds it (`chatctl members add`). Returns
    /// its id.
    pub fn start_joining_replica(&mut self) -> u64 {
        let id = self.replicas.keys().max().copied().unwrap_or(0) + 1;
        self.replicas.insert(
            id,
            Replica {
                id,
                port: free_port(),
                child: None,
                join: true,
                metrics_port: self.opts.metrics.then(free_port),
                started_before: false,
            },
        );
        if self.opts.tls {
            raftchat_tls::issue::add_replica(&self.certs_dir(), id, &self.url(id))
                .expect("issue a certificate for the joining replica");
        }
        self.start_replica(id);
        id
    }

    /// `127.0.0.1:PORT` of a replica's Prometheus endpoint, when metrics
    /// are on.
    pub fn metrics_addr(&self, id: u64) -> Option<String> {
        self.replicas[&id]
            .metrics_port
            .map(|p| format!("127.0.0.1:{p}"))
    }

    pub fn storage_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("replica-{id}"))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("replica-{id}.log"))
    }

    /// The arguments `chatd` is started with.
    pub fn args(&self, id: u64) -> Vec<String> {
        let peers: Vec<String> = self
            .replicas
            .keys()
            .filter(|p| **p != id)
            .map(|p| format!("{p}={}", self.url(*p)))
            .collect();
        let mut args = vec![
            "--server-id".to_string(),
            id.to_string(),
            "--port".into(),
            self.replicas[&id].port.to_string(),
            "--listen".into(),
            "127.0.0.1".into(),
            "--replica-urls".into(),
            peers.join(","),
        ];
        let routes: Vec<String> = self
            .routes
            .iter()
            .filter(|((from, _), _)| *from == id)
            .map(|((_, to), addr)| format!("{to}={addr}"))
            .collect();
        if !routes.is_empty() {
            args.push("--replica-routes".into());
            args.push(routes.join(","));
        }
        if self.opts.storage {
            args.push("--server-storage".into());
            args.push(self.storage_dir(id).display().to_string());
        }
        // A memory-only replica comes back empty; it rejoins as the README
        // says to. Bootstrapping again would have it campaign with an empty
        // log, and the rejections (a greater log seen) add twice the
        // election timeout's maximum to its next election (openraft's
        // `smaller_log_timeout`).
        let replica = &self.replicas[&id];
        if replica.join || (!self.opts.storage && replica.started_before) {
            args.push("--join".into());
        }
        if let Some(addr) = self.metrics_addr(id) {
            args.push("--metrics-addr".into());
            args.push(addr);
        }
        if let Some(n) = self.opts.snapshot_every {
            args.push("--snapshot-every".into());
            args.push(n.to_string());
        }
        if self.opts.tls {
            let certs = self.certs_dir();
            for (flag, file) in [
                ("--tls-cert", format!("replica-{id}.pem")),
                ("--tls-key", format!("replica-{id}.key")),
                ("--tls-ca", "ca.pem".to_string()),
            ] {
                args.push(flag.into());
                args.push(certs.join(file).display().to_string());
            }
        }
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    pub fn start_replica(&mut self, id: u64) {
        assert!(
            self.replicas[&id].child.is_none(),
            "replica {id} is already running"
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("replica log file");
        let child = Command::new(self.chatd_path())
            .args(self.args(id))
            .env("RUST_LOG", &self.opts.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chatd");
        let replica = self.replicas.get_mut(&id).expect("replica");
        replica.child = Some(child);
        replica.started_before = true;
    }

    fn signal(&mut self, id: u64, sig: i32) -> Option<ExitStatus> {
        let child = self.replicas.get_mut(&id)?.child.take()?;
        let mut child = child;
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, sig) };
        child.wait().ok()
    }

    /// The `chatd` binary these replicas run.
    pub fn chatd_path(&self) -> PathBuf {
        chatd_path(self.opts.chatd.as_deref())
    }

    /// SIGKILL: the replica dies at once, mid-whatever.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, libc::SIGKILL);
    }

    /// SIGKILL of every running replica: the whole cluster dies at once.
    pub fn kill_all(&mut self) {
        for id in self.running() {
            self.kill(id);
        }
    }

    /// SIGTERM: a graceful stop; returns the exit status.
    pub fn terminate(&mut self, id: u64) -> Option<ExitStatus> {
        self.signal(id, libc::SIGTERM)
    }

    /// SIGSTOP / SIGCONT: freeze and thaw a replica without killing it.
    pub fn pause(&self, id: u64, paused: bool) {
        if let Some(child) = &self.replicas[&id].child {
            let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// The process id of a running replica.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.replicas[&id].child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.replicas[&id].child.is_some()
    }

    pub fn running(&self) -> Vec<u64> {
        self.replicas
            .values()
            .filter(|r| r.child.is_some())
            .map(|r| r.id)
            .collect()
    }

    /// One replica's status, or `None` when it does not answer.
    pub async fn status(&self, id: u64, with_digest: bool) -> Option<StatusReply> {
        let fut = async {
            let mut client = ClusterClient::new(self.channel(id));
            client
                .status(StatusRequest { with_digest })
                .await
                .ok()
                .map(|r| r.into_inner())
        };
        tokio::time::timeout(Duration::from_secs(2), fut)
            .await
            .ok()
            .flatten()
    }

    /// Waits until every running replica agrees on one leader; returns it.
    /// Panics (with the replicas' logs) after `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> u64 {
        match self.try_wait_leader(timeout).await {
            Ok(leader) => leader,
            Err(e) => panic!("{e}\n{}", self.logs_tail()),
        }
    }

    /// Like [`Cluster::wait_converged`], but an error instead of a panic.
    pub async fn try_wait_converged(&self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for id in self.running() {
                seen.push(
                    self.status(id, true)
                        .await
                        .map(|s| (s.applied_index, s.digest)),
                );
            }
            if let Some(Some(first)) = seen.first() {
                if seen.iter().all(|s| s.as_ref() == Some(first)) {
                    return Ok(first.1.clone());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "replicas did not converge within {timeout:?}: {seen:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Like [`Cluster::wait_leader`], but an error instead of a panic.
    pub async fn try_wait_leader(&self, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for id in self.running() {
                leaders.push(self.status(id, false).await.map(|s| s.leader_id));
            }
            if let Some(Some(first)) = leaders.first() {
                if *first != 0
                    && self.running().contains(first)
                    && leaders.iter().all(|l| *l == Some(*first))
                {
                    return Ok(*first);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no agreed leader within {timeout:?}: {leaders:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running replica has applied the same index and has
    /// the same state digest; returns the digest. Panics (with the replicas'
    /// logs) after `timeout`.
    pub async fn wait_converged(&self, timeout: Duration) -> String {
        match self.try_wait_converged(timeout).await {
            Ok(digest) => digest,
            Err(e) => panic!("{e}\n{}", self.logs_tail()),
        }
    }

    /// The last lines of every replica's log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut out = String::new();
        for id in self.replicas.keys() {
            let text = std::fs::read_to_string(self.log_path(*id)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(15);
            // A panic is the first thing to look at, and the lines after it
            // (peers failing to reach the dead task) would bury it.
            let panics: Vec<String> = lines[..start]
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("panicked at"))
                .take(3)
                .map(|(i, _)| lines[i..(i + 3).min(start)].join("\n"))
                .collect();
            if !panics.is_empty() {
                out.push_str(&format!(
                    "--- replica {id}: panics ---\n{}\n",
                    panics.join("\n")
                ));
            }
            out.push_str(&format!(
                "--- replica {id} ---\n{}\n",
                lines[start..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail());
        }
        self.kill_all();
    }
}

/// Finds `chatd`: an explicit path, else [`crate::bins::path`] (`CHATD_BIN`,
/// or the workspace's own, built if needed).
pub fn chatd_path(explicit: Option<&std::path::Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => crate::bins::path("chatd"),
    }
}
