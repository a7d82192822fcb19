//! The configured replicas, their lazily-opened connections, and which one
//! the client is currently using.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::{ClientConfig, ClientError};

/// Response metadata naming the leader's node id.
pub const LEADER_ID_HEADER: &str = "x-raft-leader-id";
/// Response metadata naming the leader's url.
pub const LEADER_URL_HEADER: &str = "x-raft-leader-url";

/// One replica: its address and a connection opened on first use.
pub(crate) struct Server {
    /// The address as configured (`host:port`), used in messages.
    pub(crate) addr: String,
    /// `addr` normalised for comparison with leader-hint urls.
    key: String,
    endpoint: Endpoint,
    channel: Mutex<Option<Channel>>,
    /// Speaks plaintext (no `--ca`): a closed connection may be a TLS
    /// replica refusing it, which failures then say.
    pub(crate) plaintext: bool,
}

impl Server {
    /// Validates the address and prepares (but does not open) its endpoint.
    pub(crate) fn new(addr: &str, config: &ClientConfig) -> Result<Self, ClientError> {
        let addr = addr.trim();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = match addr.split_once("://") {
            Some((_, rest)) => format!("{scheme}://{rest}"),
            None => format!("{scheme}://{addr}"),
        };
        let endpoint = Endpoint::from_shared(url)
            .map_err(|err| {
                ClientError::new(
                    tonic::Code::InvalidArgument,
                    format!("bad server address '{addr}': {err}"),
                )
            })?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(true);
        let endpoint = match &config.tls {
            Some(tls) => endpoint.tls_config(tls.grpc()).map_err(|err| {
                ClientError::new(
                    tonic::Code::InvalidArgument,
                    format!("cannot use TLS with '{addr}': {err}"),
                )
            })?,
            None => endpoint,
        };
        Ok(Self {
            addr: addr.to_string(),
            key: normalize(addr),
            endpoint,
            channel: Mutex::new(None),
            plaintext: config.tls.is_none(),
        })
    }

    /// The connection, opened lazily. Cloning a `Channel` is cheap; all
    /// clones share one HTTP/2 connection.
    pub(crate) fn channel(&self) -> Channel {
        lock(&self.channel)
            .get_or_insert_with(|| self.endpoint.connect_lazy())
            .clone()
    }

    /// Forgets the connection so the next call dials afresh. Used after a
    /// timeout or transport error: a half-dead connection (silent peer) could
    /// otherwise be reused until HTTP/2 keepalive notices.
    pub(crate) fn reset(&self) {
        *lock(&self.channel) = None;
    }
}

/// How long after a replica failed a call the client will not move to it
/// just because a hint names it leader: a leader the client cannot reach
/// (while other replicas can) must not cost every call a timeout.
pub(crate) const FOLLOW_LEADER_COOLDOWN: Duration = Duration::from_secs(5);

/// Which replica calls go to, and the latest leader hint.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    pub(crate) current: usize,
    pub(crate) leader: Option<(u64, String)>,
    /// The replica that last failed a call, and when.
    pub(crate) last_failed: Option<(usize, Instant)>,
}

impl Routing {
    /// After replica `answered` answered with leader hint `hint`: moves the
    /// client to the hinted leader when it is another configured replica that
    /// has not failed recently. Writes then skip a forwarding hop (one gRPC
    /// round trip on the follower, and its CPU), and reads are served where
    /// the read index is known without asking.
    pub(crate) fn follow_leader(
        &mut self,
        servers: &[Server],
        answered: usize,
        hint: Option<&(u64, String)>,
    ) {
        let Some(leader) = hint.and_then(|(_, url)| index_of(servers, url)) else {
            return;
        };
        let shunned = self
            .last_failed
            .is_some_and(|(failed, at)| failed == leader && at.elapsed() < FOLLOW_LEADER_COOLDOWN);
        if self.current == answered && leader != answered && !shunned {
            self.current = leader;
        }
    }
}

/// Locks a mutex, ignoring poisoning: the guarded data (indices, options)
/// is always left consistent, so a panic elsewhere must not take the client
/// down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `host:port` in lower case, without scheme or trailing slash, so that
/// `http://127.0.0.1:7001/` and `127.0.0.1:7001` compare equal.
pub(crate) fn normalize(addr: &str) -> String {
    let addr = addr.trim();
    let addr = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    addr.trim_end_matches('/').to_lowercase()
}

/// The index of the configured server a leader-hint url names, if any.
pub(crate) fn index_of(servers: &[Server], url: &str) -> Option<usize> {
    let key = normalize(url);
    if key.is_empty() {
        return None;
    }
    servers.iter().position(|s| s.key == key)
}

/// The leader hint of a response or error: `(id, url)`. Id 0 means "unknown"
/// and is ignored; a missing url gives an empty string.
pub(crate) fn leader_hint(metadata: &MetadataMap) -> Option<(u64, String)> {
    let id = metadata
        .get(LEADER_ID_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&id| id != 0)?;
    let url = metadata
        .get(LEADER_URL_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    Some((id, url))
}

/// Picks the replica to try after `failed` did not answer.
///
/// Preference: the leader (fresh `hint`, else the one remembered) when it is
/// configured and not yet tried in this round; otherwise the next replica in
/// order. `tried` lists replicas already attempted in this round; it keeps
/// two replicas that name each other as leader from ping-ponging forever.
pub(crate) fn pick_next(
    servers: &[Server],
    failed: usize,
    leader: Option<&(u64, String)>,
    tried: &[usize],
) -> usize {
    let hinted = leader
        .and_then(|(_, url)| index_of(servers, url))
        .filter(|&i| i != failed && !tried.contains(&i));
    hinted.unwrap_or((failed + 1) % servers.len().max(1))
}

/// The duration formatted for humans: `500 ms`, `2.0 s`.
pub(crate) fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(addrs: &[&str]) -> Vec<Server> {
        let config = ClientConfig::new(addrs.iter().copied());
        addrs
            .iter()
            .map(|a| Server::new(a, &config).unwrap())
            .collect()
    }

    #[test]
    fn urls_and_addresses_normalise_alike() {
        assert_eq!(normalize("http://127.0.0.1:7001/"), "127.0.0.1:7001");
        assert_eq!(normalize(" LocalHost:1 "), "localhost:1");
        let list = servers(&["a:1", "b:2", "c:3"]);
        assert_eq!(index_of(&list, "http://b:2"), Some(1));
        assert_eq!(index_of(&list, "d:4"), None);
        assert_eq!(index_of(&list, ""), None);
    }

    #[test]
    fn bad_addresses_are_rejected() {
        let config = ClientConfig::new(["a b:1"]);
        assert!(Server::new("a b:1", &config).is_err());
    }

    #[test]
    fn an_answer_naming_another_leader_moves_the_client_there() {
        let list = servers(&["a:1", "b:2", "c:3"]);
        let leader = (3, "http://c:3".to_string());
        let mut routing = Routing::default();
        routing.follow_leader(&list, 0, Some(&leader));
        assert_eq!(routing.current, 2);
        // An answer from a replica the client already left changes nothing.
        routing.follow_leader(&list, 1, Some(&(2, "b:2".to_string())));
        assert_eq!(routing.current, 2);
        // A hint naming an unconfigured replica, or none: stay.
        routing.follow_leader(&list, 2, Some(&(9, "z:9".to_string())));
        routing.follow_leader(&list, 2, None);
        assert_eq!(routing.current, 2);
        // A leader that just failed a call is not followed back at once.
        let mut routing = Routing {
            current: 1,
            last_failed: Some((2, Instant::now())),
            ..Routing::default()
        };
        routing.follow_leader(&list, 1, Some(&leader));
        assert_eq!(routing.current, 1);
        routing.last_failed = Some((2, Instant::now() - FOLLOW_LEADER_COOLDOWN));
        routing.follow_leader(&list, 1, Some(&leader));
        assert_eq!(routing.current, 2);
    }

    #[test]
    fn next_server_prefers_an_untried_leader() {
        let list = servers(&["a:1", "b:2", "c:3"]);
        let leader = (3, "http://c:3".to_string());
        assert_eq!(pick_next(&list, 0, Some(&leader), &[0]), 2);
        // Leader already tried this round: plain rotation.
        assert_eq!(pick_next(&list, 0, Some(&leader), &[0, 2]), 1);
        // The failed server itself is the leader: rotate.
        assert_eq!(pick_next(&list, 2, Some(&leader), &[2]), 0);
        // Unknown leader url: rotate.
        let stranger = (9, "z:9".to_string());
        assert_eq!(pick_next(&list, 1, Some(&stranger), &[1]), 2);
        assert_eq!(pick_next(&list, 2, None, &[]), 0);
    }

    #[test]
    fn leader_hint_reads_both_headers() {
        let mut md = MetadataMap::new();
        assert_eq!(leader_hint(&md), None);
        md.insert(LEADER_ID_HEADER, "3".parse().unwrap());
        assert_eq!(leader_hint(&md), Some((3, String::new())));
        md.insert(LEADER_URL_HEADER, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(leader_hint(&md), Some((3, "127.0.0.1:7003".into())));
        md.insert(LEADER_ID_HEADER, "0".parse().unwrap());
        assert_eq!(leader_hint(&md), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(500)), "500 ms");
        assert_eq!(human_duration(Duration::from_secs(10)), "10.0 s");
    }
}
