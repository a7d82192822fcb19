//! Command-line arguments of `chat-tui`.

use std::path::PathBuf;
use std::time::Duration;

use raftchat_client::ClientConfig;

/// The local five-replica cluster.
pub const DEFAULT_SERVERS: &str =
    "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005";

/// The raftchat terminal client. Settings not given here come from the
/// config file ($XDG_CONFIG_HOME/raftchat/config.toml), else defaults.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "chat-tui", version, about)]
pub struct Args {
    /// Replica addresses, comma-separated (host:port) [default: the five
    /// local ports 127.0.0.1:7001-7005, unless the config file says].
    #[arg(long, env = "CHAT_SERVERS")]
    pub servers: Option<String>,
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
    /// The config file to read instead of
    /// $XDG_CONFIG_HOME/raftchat/config.toml (which may be absent).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Args {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// The client configuration for `servers` and `ca`; an unreadable CA is an
/// error naming the flag.
pub fn client_config(
    servers: &[String],
    ca: Option<&PathBuf>,
    timeout: Duration,
) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new(servers.to_vec());
    config.rpc_timeout = timeout;
    if let Some(ca) = ca {
        config.tls = Some(raftchat_tls::ClientTls::load(
            ca,
            None,
            ["--ca", "--cert", "--key"],
        )?);
    }
    Ok(config)
}
