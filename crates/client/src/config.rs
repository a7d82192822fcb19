//! Client settings: which replicas to talk to and how long to wait for them.

use std::time::Duration;

use raftchat_tls::ClientTls;

/// The replicas used when nothing else is configured (a local five-node cluster).
pub const DEFAULT_SERVERS: &str =
    "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005";

/// How a [`ChatClient`](super::ChatClient) reaches the cluster.
///
/// Every field has a sensible default (see [`ClientConfig::new`]); tweak the
/// public fields directly when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Replica addresses as `host:port` (an `http://` prefix is accepted too).
    /// The first one is tried first.
    pub servers: Vec<String>,
    /// Time allowed for ONE attempt of one RPC against one replica (default 2 s).
    /// A replica that does not answer in time is treated as down and the call
    /// moves on to the next one.
    pub rpc_timeout: Duration,
    /// Total budget of one call across all its retries (default 10 s). It
    /// bounds reads as well as writes: no call ever takes longer than this.
    pub write_deadline: Duration,
    /// Time allowed to open a TCP connection to a replica (default 500 ms).
    pub connect_timeout: Duration,
    /// HTTP/2 ping interval on every connection (default 1 s). Pings are what
    /// reveal a replica that went silent (frozen process, dropped packets)
    /// while a subscription stream is idle.
    pub keepalive_interval: Duration,
    /// How long a ping may stay unanswered before the connection is
    /// considered dead (default 2 s).
    pub keepalive_timeout: Duration,
    /// A subscription that has been quiet this long (default 3 s) checks
    /// that its replica still answers and still knows a leader; otherwise it
    /// moves to another replica (a partitioned replica would otherwise keep
    /// the stream open while receiving nothing).
    pub subscription_probe_interval: Duration,
    /// TLS to the replicas: the cluster CA, and a certificate for admin
    /// commands. `None` speaks plaintext, which replicas accept only on
    /// loopback (or with `--insecure-plaintext`).
    pub tls: Option<ClientTls>,
}

impl ClientConfig {
    /// A configuration for `servers` with the default timeouts.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            rpc_timeout: Duration::from_secs(2),
            write_deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_millis(500),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            subscription_probe_interval: Duration::from_secs(3),
            tls: None,
        }
    }

    /// A configuration from a comma-separated list such as
    /// `"127.0.0.1:7001, 127.0.0.1:7002"` (blank entries are ignored).
    pub fn from_list(list: &str) -> Self {
        Self::new(parse_server_list(list))
    }
}

impl Default for ClientConfig {
    /// The local five-replica cluster of [`DEFAULT_SERVERS`].
    fn default() -> Self {
        Self::from_list(DEFAULT_SERVERS)
    }
}

/// Splits a comma-separated server list, trimming blanks.
pub fn parse_server_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_list_is_split_and_trimmed() {
        assert_eq!(
            parse_server_list(" a:1, b:2 ,,c:3 "),
            vec!["a:1".to_string(), "b:2".into(), "c:3".into()]
        );
        assert!(parse_server_list(" , ").is_empty());
    }

    #[test]
    fn defaults_are_the_local_cluster() {
        let config = ClientConfig::default();
        assert_eq!(config.servers.len(), 5);
        assert_eq!(config.rpc_timeout, Duration::from_secs(2));
        assert_eq!(config.write_deadline, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_millis(500));
    }
}
