//! The [`ChatClient`] handle: shared state (replicas, routing, session) and
//! the bookkeeping every call does after each attempt.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use super::servers::{lock, pick_next, Routing, Server};
use super::{ClientConfig, ClientError, ConnectionState};

/// The generated gRPC stub for the Chat service over one replica's channel.
pub(crate) type GrpcChat = raftchat_proto::chat_client::ChatClient<Channel>;
/// The generated gRPC stub for the Cluster service over one replica's channel.
pub(crate) type GrpcCluster = raftchat_proto::cluster_client::ClusterClient<Channel>;

/// A fault-tolerant client of a raftchat cluster.
///
/// Cheap to clone: clones share connections, the session token and the
/// routing state, so a UI can hand one to each task. Calls go to the current
/// replica and fail over to the others (see the module docs for the policy).
///
/// Connections open lazily on first use, so [`ChatClient::new`] needs no
/// network, but calls must run inside a Tokio runtime.
#[derive(Clone)]
pub struct ChatClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) servers: Vec<Server>,
    routing: Mutex<Routing>,
    token: Mutex<Option<String>>,
    state: watch::Sender<ConnectionState>,
    /// Where sends go first (see [`super::send_stream`]).
    pub(crate) send_stream: super::send_stream::Slot,
}

impl ChatClient {
    /// A client for the replicas in `config`. Fails only on an empty server
    /// list or an address that is not a valid `host:port`.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if config.servers.is_empty() {
            return Err(ClientError::new(
                tonic::Code::InvalidArgument,
                "no servers configured",
            ));
        }
        let servers = config
            .servers
            .iter()
            .map(|addr| Server::new(addr, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let initial = ConnectionState {
            server: servers[0].addr.clone(),
            ..ConnectionState::default()
        };
        let (state, _) = watch::channel(initial);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                servers,
                routing: Mutex::new(Routing::default()),
                token: Mutex::new(None),
                state,
                send_stream: Mutex::new(None),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The configured replica addresses, in order.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.iter().map(|s| s.addr.clone()).collect()
    }

    /// The replica the next call goes to first (`host:port`).
    pub fn current_server(&self) -> String {
        self.inner.servers[self.current_index()].addr.clone()
    }

    /// The latest leader hint seen in any response: (node id, url).
    pub fn leader(&self) -> Option<(u64, String)> {
        lock(&self.inner.routing).leader.clone()
    }

    /// A live view of the connection (replica, leader, RTT, failover in
    /// progress) for status bars. Updated after every attempt.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// The session token, once logged in.
    pub fn token(&self) -> Option<String> {
        lock(&self.inner.token).clone()
    }

    /// Installs (or clears) a session token obtained elsewhere, e.g. to
    /// share one login between several clients in a benchmark.
    pub fn set_token(&self, token: Option<String>) {
        *lock(&self.inner.token) = token;
    }

    /// Whether a session token is held.
    pub fn is_logged_in(&self) -> bool {
        lock(&self.inner.token).is_some()
    }

    pub(crate) fn current_index(&self) -> usize {
        lock(&self.inner.routing).current
    }

    pub(crate) fn server(&self, index: usize) -> &Server {
        &self.inner.servers[index]
    }

    /// Adds `authorization: Bearer <token>` when logged in.
    pub(crate) fn authorize<M>(&self, request: &mut Request<M>) -> Result<(), ClientError> {
        if let Some(token) = self.token() {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                ClientError::new(
                    tonic::Code::InvalidArgument,
                    "the session token contains characters not allowed in metadata",
                )
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(())
    }

    /// Records a leader hint without judging the replica.
    pub(crate) fn note_hint(&self, hint: Option<(u64, String)>) {
        if let Some(hint) = hint {
            lock(&self.inner.routing).leader = Some(hint.clone());
            self.inner.state.send_modify(|s| s.leader = Some(hint));
        }
    }

    /// Records that replica `index` answered (successfully or with a real
    /// error) after `rtt`, and follows a hint to the leader (see
    /// [`Routing::follow_leader`]).
    pub(crate) fn note_answer(&self, index: usize, rtt: Duration, hint: Option<(u64, String)>) {
        let leader = {
            let mut routing = lock(&self.inner.routing);
            routing.follow_leader(&self.inner.servers, index, hint.as_ref());
            if hint.is_some() {
                routing.leader = hint;
            }
            routing.leader.clone()
        };
        let server = self.server(index).addr.clone();
        self.inner.state.send_modify(|s| {
            s.server = server;
            s.leader = leader;
            s.last_rtt = Some(rtt);
            s.reconnecting = false;
            s.next_server = None;
            s.last_error = None;
        });
    }

    /// Records that replica `failed` could not serve a call and moves the
    /// client to another replica; returns the index to try next.
    ///
    /// If another task already moved away from `failed`, its choice stands,
    /// so concurrent failures do not skip healthy replicas.
    pub(crate) fn note_failure(
        &self,
        failed: usize,
        hint: Option<(u64, String)>,
        tried: &[usize],
        error: &str,
    ) -> usize {
        let (next, leader) = {
            let mut routing = lock(&self.inner.routing);
            if hint.is_some() {
                routing.leader = hint;
            }
            routing.last_failed = Some((failed, std::time::Instant::now()));
            if routing.current == failed {
                routing.current =
                    pick_next(&self.inner.servers, failed, routing.leader.as_ref(), tried);
            }
            (routing.current, routing.leader.clone())
        };
        let server = self.server(failed).addr.clone();
        let next_server = self.server(next).addr.clone();
        let error = error.to_string();
        self.inner.state.send_modify(|s| {
            s.server = server;
            s.leader = leader;
            s.reconnecting = true;
            s.next_server = Some(next_server);
            s.last_error = Some(error);
        });
        next
    }
}

impl fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatClient")
            .field("servers", &self.servers())
            .field("current", &self.current_server())
            .field("leader", &self.leader())
            .field("logged_in", &self.is_logged_in())
            .finish()
    }
}
