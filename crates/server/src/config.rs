//! `chatd`'s command line. Every flag also reads an environment variable, and
//! a bad value names the flag and the expected form.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use raftchat_proto::contract::{parse_host_port, parse_member};

/// A raftchat replica: one member of a Raft group that serves the chat API.
///
/// Start one per machine (or per terminal) with the same membership on every
/// replica; start order does not matter and a leader is elected as soon as a
/// majority is up.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatd", version, about, long_about = None)]
pub struct ChatdArgs {
    /// This replica's id (a positive integer, unique in the cluster).
    #[arg(long, env = "CHATD_SERVER_ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub server_id: u64,

    /// TCP port serving both the client API and replica-to-replica traffic.
    #[arg(long, env = "CHATD_PORT")]
    pub port: u16,

    /// The OTHER replicas, as `ID=HOST:PORT` separated by commas, e.g.
    /// `2=host2:7002,3=host3:7003`. Empty for a single-replica cluster.
    #[arg(long, env = "CHATD_REPLICA_URLS", value_parser = parse_replica_urls, default_value = "")]
    pub replica_urls: ReplicaUrls,

    /// Dial some replicas through another address than their `--replica-urls`
    /// entry, as `ID=HOST:PORT,...` (a proxy, tunnel or NAT hop). Only this
    /// replica's outgoing connections use it; the membership, and the leader
    /// address clients are told, keep the `--replica-urls` addresses.
    #[arg(long, env = "CHATD_REPLICA_ROUTES", value_parser = parse_replica_urls, default_value = "")]
    pub replica_routes: ReplicaUrls,

    /// Keep the vote, the log and the applied state (the history) in this
    /// directory (fsynced before any write is acknowledged). Without it
    /// everything is in memory and a restarted replica comes back empty
    /// and catches up from its peers.
    #[arg(long, env = "CHATD_SERVER_STORAGE")]
    pub server_storage: Option<PathBuf>,

    /// Address to listen on. Use 0.0.0.0 to accept connections from other
    /// machines (then TLS is required: --tls-cert, --tls-key, --tls-ca).
    #[arg(long, env = "CHATD_LISTEN", default_value = "127.0.0.1")]
    pub listen: IpAddr,

    /// `HOST:PORT` other replicas and clients use to reach this one
    /// (default: the listen address and port, or 127.0.0.1 when listening on
    /// all interfaces).
    #[arg(long, env = "CHATD_ADVERTISE_URL", value_parser = parse_host_port)]
    pub advertise_url: Option<String>,

    /// Leader heartbeat interval in milliseconds.
    #[arg(long, env = "CHATD_HEARTBEAT_MS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_ms: u64,

    /// Election timeout range `MIN-MAX` in milliseconds; a follower that hears
    /// no leader for a random time in this range starts an election. MIN must
    /// exceed the heartbeat interval.
    #[arg(long, env = "CHATD_ELECTION_TIMEOUT_MS", default_value = "80-160", value_parser = parse_range)]
    pub election_timeout_ms: MillisRange,

    /// Take a snapshot (and compact the log) every N applied entries; held
    /// while a follower catches up from a snapshot this replica sent.
    #[arg(long, env = "CHATD_SNAPSHOT_EVERY", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,

    /// How long a login session stays valid, in seconds.
    #[arg(long, env = "CHATD_SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_ttl_secs: u64,

    /// Log format: `human` or `json`. The level comes from RUST_LOG
    /// (default `info`).
    #[arg(long, env = "CHATD_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,

    /// Join an existing cluster instead of bootstrapping one: do not
    /// initialize the membership from --replica-urls; wait until the leader
    /// adds this replica (`chatctl members add ID=HOST:PORT`). Also the safe
    /// way to restart a memory-only replica of a running cluster.
    #[arg(long, env = "CHATD_JOIN")]
    pub join: bool,

    /// Serve Prometheus metrics as plain HTTP on this `HOST:PORT` (`GET
    /// /metrics`), e.g. `127.0.0.1:9100`. Off by default.
    #[arg(long, env = "CHATD_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// This replica's certificate (PEM), issued by `chatctl certs` for this
    /// replica's id. With --tls-key and --tls-ca, every connection, from
    /// clients and from peers, is TLS; peers must present their own replica
    /// certificate.
    #[arg(long, env = "CHATD_TLS_CERT", value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "CHATD_TLS_KEY", value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,

    /// The cluster CA (PEM; may hold several CAs while rotating). Peers',
    /// admins' and this replica's certificates must chain to it.
    #[arg(long, env = "CHATD_TLS_CA", value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,

    /// Allow plaintext on a non-loopback --listen address: passwords,
    /// session tokens and chat travel unencrypted, and anyone who reaches
    /// the port can act as a replica. Only for networks you fully trust.
    #[arg(long, env = "CHATD_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
}

/// Peer replicas by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaUrls(pub BTreeMap<u64, String>);

/// An inclusive range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MillisRange {
    pub min: u64,
    pub max: u64,
}

fn parse_replica_urls(s: &str) -> Result<ReplicaUrls, String> {
    let mut peers = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, url) = parse_member(item)?;
        if peers.insert(id, url).is_some() {
            return Err(format!("replica id {id} is listed twice"));
        }
    }
    Ok(ReplicaUrls(peers))
}
fn parse_range(s: &str) -> Result<MillisRange, String> {
    let (min, max) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}' is not MIN-MAX (e.g. 150-300)"))?;
    let min: u64 = min
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': MIN is not a number"))?;
    let max: u64 = max
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': MAX is not a number"))?;
    if min == 0 || max <= min {
        return Err(format!("'{s}': need 0 < MIN < MAX"));
    }
    Ok(MillisRange { min, max })
}

impl ChatdArgs {
    /// Checks what clap cannot: relations between flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.replica_urls.0.contains_key(&self.server_id) {
            return Err(format!(
                "--replica-urls lists this replica's own id {}; list only the other replicas",
                self.server_id
            ));
        }
        if self.tls_cert.is_none() && !self.listen.is_loopback() && !self.insecure_plaintext {
            return Err(format!(
                "--listen {} accepts connections from other machines, and without TLS anyone who \
                 reaches the port could read passwords and act as a replica. Give --tls-cert, \
                 --tls-key and --tls-ca (make them with `chatctl certs init`), or listen on \
                 127.0.0.1, or pass --insecure-plaintext on a network you fully trust",
                self.listen
            ));
        }
        if self.election_timeout_ms.min <= self.heartbeat_ms {
            return Err(format!(
                "--election-timeout-ms minimum ({}) must exceed --heartbeat-ms ({})",
                self.election_timeout_ms.min, self.heartbeat_ms
            ));
        }
        Ok(())
    }

    /// The URL peers and clients use for this replica.
    pub fn own_url(&self) -> String {
        match &self.advertise_url {
            Some(url) => url.clone(),
            None if self.listen.is_unspecified() => format!("127.0.0.1:{}", self.port),
            None => format!("{}:{}", self.listen, self.port),
        }
    }

    /// Every member, this replica included.
    pub fn members(&self) -> BTreeMap<u64, String> {
        let mut all = self.replica_urls.0.clone();
        all.insert(self.server_id, self.own_url());
        all
    }

    /// The TLS files, when TLS is on: (certificate, key, CA).
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path, &std::path::Path)> {
        Some((
            self.tls_cert.as_deref()?,
            self.tls_key.as_deref()?,
            self.tls_ca.as_deref()?,
        ))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ChatdArgs, clap::Error> {
        let mut all = vec!["chatd"];
        all.extend_from_slice(args);
        ChatdArgs::try_parse_from(all)
    }

    #[test]
    fn parses_full_command_line() {
        let a = parse(&[
            "--server-id",
            "1",
            "--port",
            "7001",
            "--replica-urls",
            "2=h2:7002, 3=h3:7003",
            "--election-timeout-ms",
            "200-400",
        ])
        .unwrap();
        assert_eq!(a.replica_urls.0.len(), 2);
        assert_eq!(a.replica_urls.0[&3], "h3:7003");
        assert_eq!(a.election_timeout_ms, MillisRange { min: 200, max: 400 });
        assert_eq!(a.members().len(), 3);
        assert_eq!(a.own_url(), "127.0.0.1:7001");
        a.validate().unwrap();
    }

    #[test]
    fn malformed_replica_urls_name_the_flag_and_form() {
        for bad in [
            "2h2:7002",
            "x=h:1",
            "2=h",
            "2=:7002",
            "2=h:0",
            "2=h:1,2=h:2",
        ] {
            let err = parse(&["--server-id", "1", "--port", "7001", "--replica-urls", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--replica-urls"), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_own_id_in_peers_and_bad_timeouts() {
        let a = parse(&["--server-id", "1", "--port", "1", "--replica-urls", "1=h:1"]).unwrap();
        assert!(a.validate().unwrap_err().contains("own id"));
        let a = parse(&["--server-id", "1", "--port", "1", "--heartbeat-ms", "500"]).unwrap();
        assert!(a.validate().unwrap_err().contains("--heartbeat-ms"));
        let err = parse(&[
            "--server-id",
            "1",
            "--port",
            "1",
            "--election-timeout-ms",
            "300-100",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--election-timeout-ms"), "{err}");
        assert!(parse(&["--server-id", "0", "--port", "1"]).is_err());
    }

    #[test]
    fn join_and_metrics_flags() {
        let a = parse(&["--server-id", "6", "--port", "1", "--join"]).unwrap();
        assert!(a.join);
        assert!(a.metrics_addr.is_none());
        let a = parse(&[
            "--server-id",
            "1",
            "--port",
            "1",
            "--metrics-addr",
            "127.0.0.1:9100",
        ])
        .unwrap();
        assert!(!a.join);
        assert_eq!(a.metrics_addr.unwrap().port(), 9100);
        let err = parse(&["--server-id", "1", "--port", "1", "--metrics-addr", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--metrics-addr"), "{err}");
    }

    #[test]
    fn plaintext_only_on_loopback_unless_insisted() {
        let a = parse(&["--server-id", "1", "--port", "1", "--listen", "0.0.0.0"]).unwrap();
        let err = a.validate().unwrap_err();
        assert!(
            err.contains("--tls-cert") && err.contains("--insecure-plaintext"),
            "{err}"
        );
        let a = parse(&["--server-id", "1", "--port", "1", "--listen", "::1"]).unwrap();
        a.validate().unwrap();
        let a = parse(&[
            "--server-id",
            "1",
            "--port",
            "1",
            "--listen",
            "0.0.0.0",
            "--insecure-plaintext",
        ])
        .unwrap();
        a.validate().unwrap();
        let a = parse(&[
            "--server-id",
            "1",
            "--port",
            "1",
            "--listen",
            "0.0.0.0",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--tls-ca",
            "ca",
        ])
        .unwrap();
        a.validate().unwrap();
        assert!(a.tls_files().is_some());
        // All three or none.
        let err = parse(&["--server-id", "1", "--port", "1", "--tls-cert", "c"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-key"), "{err}");
    }

    #[test]
    fn routes_stay_out_of_the_membership() {
        let a = parse(&[
            "--server-id",
            "1",
            "--port",
            "1",
            "--replica-urls",
            "2=h2:2",
            "--replica-routes",
            "2=127.0.0.1:9002,3=127.0.0.1:9003",
        ])
        .unwrap();
        a.validate().unwrap();
        assert_eq!(a.replica_routes.0[&2], "127.0.0.1:9002");
        // A route may name a replica that joins later (--join, AddReplica).
        assert_eq!(a.replica_routes.0[&3], "127.0.0.1:9003");
        assert_eq!(a.members()[&2], "h2:2", "routes stay out of the membership");
        let err = parse(&["--server-id", "1", "--port", "1", "--replica-routes", "2=h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--replica-routes"), "{err}");
    }
}
