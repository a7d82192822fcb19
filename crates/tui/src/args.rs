//! Command-line arguments of `chat-tui`.

use std::path::PathBuf;
use std::time::Duration;

use raftchat_client::ClientConfig;

/// The local five-replica cluster.
pub const DEFAULT_SERVERS: &str =
    "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005";

/// The raftchat terminal client.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "chat-tui", version, about)]
pub struct Args {
    /// Replica addresses, comma-separated (host:port).
    #[arg(long, env = "CHAT_SERVERS", default_value = DEFAULT_SERVERS)]
    pub servers: String,
    /// User name to pre-fill on the sign-in screen.
    #[arg(long)]
    pub user: Option<String>,
    /// Time allowed for one attempt against one replica, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// The cluster's CA certificate (PEM): talk TLS to the replicas and
    /// accept only replicas whose certificate it signed.
    #[arg(long, env = "CHAT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Start without mouse capture, so the terminal selects text (M or F3
    /// turns it on and off).
    #[arg(long)]
    pub no_mouse: bool,
}

impl Args {
    /// The server list, trimmed, blanks dropped.
    pub fn server_list(&self) -> Vec<String> {
        self.servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The client configuration these flags ask for; an unreadable `--ca`
    /// is an error naming the flag.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new(self.server_list());
        config.rpc_timeout = self.timeout();
        if let Some(ca) = &self.ca {
            config.tls = Some(raftchat_tls::ClientTls::load(
                ca,
                None,
                ["--ca", "--cert", "--key"],
            )?);
        }
        Ok(config)
    }
}
