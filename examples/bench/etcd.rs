//! The anchor: a five-member etcd on the same machine, for the bench's
//! `--only etcd` part. It runs Debian's `etcd-server` (`/usr/bin/etcd`, or
//! `ETCD_BIN`) on loopback ports, plaintext, with a data directory each,
//! and sends one `Put` per message to the leader over etcd's own gRPC API.
//!
//! The two messages of etcd's API this needs are written here by hand
//! (prost derives; the field numbers are etcd's `rpc.proto`), rather than
//! pulling in an etcd client crate built on another tonic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftchat_testkit::local_cluster::free_port;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// `etcdserverpb.PutRequest`: only the fields a put of a value needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `etcdserverpb.PutResponse`, whose fields the bench does not read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {}

/// `etcdserverpb.StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// `etcdserverpb.ResponseHeader`: who answered.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
}

/// `etcdserverpb.StatusResponse`: who answered, and who leads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

/// The etcd binary: `ETCD_BIN`, else Debian's.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    path.is_file().then_some(path)
}

/// What `binary --version` says of itself, e.g. "etcd 3.4.23".
pub fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text.lines().next()?.to_string();
            Some(line.replace(" Version:", ""))
        })
        .unwrap_or_else(|| "etcd".into())
}

/// Five etcd members on loopback, stopped (SIGKILL, by PID) on drop.
pub struct EtcdCluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    /// The member that led once the cluster was up.
    leader: usize,
    dir: tempfile::TempDir,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl EtcdCluster {
    /// Starts five members with `binary` and waits until one leads.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let ports: Vec<(u16, u16)> = (0..5).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut cluster = Self {
            children: Vec::new(),
            client_ports: ports.iter().map(|(client, _)| *client).collect(),
            leader: 0,
            dir: tempfile::tempdir()?,
        };
        let dir = cluster.dir.path().to_path_buf();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.join(format!("m{i}.log")))?;
            let child = Command::new(binary)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "raftchat-bench"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
            cluster.children.push(child);
        }
        cluster.leader = cluster.find_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn channel(&self, member: usize) -> anyhow::Result<Channel> {
        let url = format!("http://127.0.0.1:{}", self.client_ports[member]);
        Ok(Channel::from_shared(url)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy())
    }

    /// The index of the member that leads, once one does.
    async fn find_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            for member in 0..self.client_ports.len() {
                if let Ok(status) = status(self.channel(member)?).await {
                    let me = status.header.map_or(0, |h| h.member_id);
                    if status.leader != 0 && status.leader == me {
                        return Ok(member);
                    }
                }
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "no etcd member leads after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new connection to the member that led at start.
    pub fn leader_channel(&self) -> anyhow::Result<Channel> {
        self.channel(self.leader)
    }
}

async fn status(channel: Channel) -> anyhow::Result<StatusResponse> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let reply = tokio::time::timeout(
        Duration::from_secs(1),
        grpc.unary(
            tonic::Request::new(StatusRequest {}),
            PathAndQuery::from_static("/etcdserverpb.Maintenance/Status"),
            tonic_prost::ProstCodec::<StatusRequest, StatusResponse>::default(),
        ),
    )
    .await??;
    Ok(reply.into_inner())
}

/// One `Put` of `value` under `key`; whether etcd acknowledged it.
pub async fn put(channel: &Channel, key: Vec<u8>, value: Vec<u8>) -> bool {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if grpc.ready().await.is_err() {
        return false;
    }
    grpc.unary(
        tonic::Request::new(PutRequest { key, value }),
        PathAndQuery::from_static("/etcdserverpb.KV/Put"),
        tonic_prost::ProstCodec::<PutRequest, PutResponse>::default(),
    )
    .await
    .is_ok()
}
