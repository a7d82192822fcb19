//! What a UI shows about the connection: which replica, which leader, how
//! fast, and whether the client is currently failing over.

use std::time::Duration;

/// A snapshot of the client's view of the cluster, published through
/// [`ChatClient::connection_state`](super::ChatClient::connection_state)
/// after every attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionState {
    /// The replica of the latest attempt (`host:port`).
    pub server: String,
    /// The latest leader hint seen: (node id, url).
    pub leader: Option<(u64, String)>,
    /// Round-trip time of the latest answered attempt.
    pub last_rtt: Option<Duration>,
    /// True when the latest attempt failed and the client is retrying.
    pub reconnecting: bool,
    /// While reconnecting: the replica that will be tried next.
    pub next_server: Option<String>,
    /// While reconnecting: why the latest attempt failed.
    pub last_error: Option<String>,
}
