//! The failover engine behind every unary call.
//!
//! One call = a loop of attempts. Each attempt goes to the current replica,
//! bounded by `rpc_timeout` (and by what is left of the call's deadline).
//! A timeout, a transport error or `UNAVAILABLE` moves the client to another
//! replica (the leader when a hint names one) and retries after a short
//! backoff; any other answer is returned at once. The request message is
//! built once, so a write keeps its `request_id` across retries and the
//! cluster applies it at most once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::handle::GrpcChat;
use super::retry::{describe_failure, is_retryable, is_transport, no_answer, Backoff};
use super::servers::{human_duration, leader_hint};
use super::{ChatClient, ClientError};

/// What the latest failed attempt said, for the final error message.
struct LastFailure {
    server: String,
    message: String,
}

impl ChatClient {
    /// Runs `rpc` with failover until it gets an answer or the call's
    /// deadline (`write_deadline`) passes.
    ///
    /// `op` names the call in error messages; `message` is cloned for every
    /// attempt; `rpc` performs one attempt on the given stub.
    pub(crate) async fn unary<M, R, F, Fut>(
        &self,
        op: &'static str,
        message: M,
        rpc: F,
    ) -> Result<R, ClientError>
    where
        M: Clone,
        F: Fn(GrpcChat, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        self.unary_from(Instant::now(), op, message, rpc).await
    }

    /// [`ChatClient::unary`] for a call that began at `started` (an earlier
    /// attempt by other means counts against its deadline).
    pub(crate) async fn unary_from<M, R, F, Fut>(
        &self,
        started: Instant,
        op: &'static str,
        message: M,
        rpc: F,
    ) -> Result<R, ClientError>
    where
        M: Clone,
        F: Fn(GrpcChat, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let deadline = started + self.config().write_deadline;
        let mut backoff = Backoff::for_calls();
        let mut tried: Vec<usize> = Vec::new();
        let mut everyone: Vec<usize> = Vec::new();
        let mut last: Option<LastFailure> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(self.give_up(op, started.elapsed(), &everyone, last));
            }
            let index = self.current_index();
            let server = self.server(index);
            let budget = self.config().rpc_timeout.min(deadline - now);
            let mut request = Request::new(message.clone());
            request.set_timeout(budget);
            self.authorize(&mut request)?;

            let sent = Instant::now();
            let attempt =
                tokio::time::timeout(budget, rpc(GrpcChat::new(server.channel()), request));
            let (hint, error) = match attempt.await {
                Ok(Ok(response)) => {
                    self.note_answer(index, sent.elapsed(), leader_hint(response.metadata()));
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) if !is_retryable(&status) => {
                    self.note_answer(index, sent.elapsed(), leader_hint(status.metadata()));
                    return Err(ClientError::from(status));
                }
                Ok(Err(status)) => {
                    if is_transport(&status) {
                        server.reset();
                    }
                    (
                        leader_hint(status.metadata()),
                        describe_failure(&status, budget, server.plaintext),
                    )
                }
                Err(_elapsed) => {
                    server.reset();
                    (None, no_answer(budget))
                }
            };

            if !everyone.contains(&index) {
                everyone.push(index);
            }
            tried.push(index);
            // Another replica may answer at once (a dead one is no reason
            // to wait); pause only once every replica failed this round.
            let round_done = tried.len() >= self.inner.servers.len();
            if round_done {
                tried.clear();
            }
            self.note_failure(index, hint, &tried, &error);
            last = Some(LastFailure {
                server: server.addr.clone(),
                message: error,
            });

            if round_done {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.next_pause().min(left)).await;
            }
        }
    }

    /// The error of a call whose deadline passed: `UNAVAILABLE`, naming the
    /// replicas tried and the last failure.
    fn give_up(
        &self,
        op: &str,
        elapsed: Duration,
        tried: &[usize],
        last: Option<LastFailure>,
    ) -> ClientError {
        let tried: Vec<&str> = tried
            .iter()
            .map(|&i| self.server(i).addr.as_str())
            .collect();
        let tried = if tried.is_empty() {
            "none".to_string()
        } else {
            tried.join(", ")
        };
        let last = match last {
            Some(last) => format!("; last error from {}: {}", last.server, last.message),
            None => String::new(),
        };
        ClientError::new(
            tonic::Code::Unavailable,
            format!(
                "no quorum: {op} did not complete within {} (tried {tried}){last}",
                human_duration(elapsed)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::net::TcpListener;

    use crate::{ChatClient, ClientConfig, SubscriptionItem};

    /// Addresses nobody listens on: bind, note the port, close.
    async fn dead_addresses(n: usize) -> Vec<String> {
        let mut addrs = Vec::new();
        for _ in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap().to_string());
        }
        addrs
    }

    fn quick(servers: Vec<String>) -> ClientConfig {
        let mut config = ClientConfig::new(servers);
        config.rpc_timeout = Duration::from_millis(200);
        config.write_deadline = Duration::from_millis(600);
        config.connect_timeout = Duration::from_millis(100);
        config
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn calls_can_be_spawned() {
        // UIs run calls on spawned tasks: every call future must be Send.
        let client = ChatClient::new(ClientConfig::default()).unwrap();
        let target = "bob".parse().unwrap();
        assert_send(&client.send(&target, "hi"));
        assert_send(&client.login("a", "b"));
        assert_send(&client.history(&target, 0, 10));
        assert_send(&client.cluster_status(true));
        assert_send(&client.find_conversation(&target));
        fn assert_sync<T: Send + Sync + Clone>(_: &T) {}
        assert_sync(&client);
    }

    #[tokio::test]
    async fn an_unreachable_cluster_fails_with_unavailable_within_the_deadline() {
        let servers = dead_addresses(3).await;
        let client = ChatClient::new(quick(servers.clone())).unwrap();
        let started = std::time::Instant::now();
        let err = client.list_accounts("", "", 0).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        assert!(err.is_unavailable(), "{err}");
        assert!(err.message.starts_with("no quorum: list accounts"), "{err}");
        for server in &servers {
            assert!(err.message.contains(server.as_str()), "{err}");
        }
        assert!(client.connection_state().borrow().reconnecting);
    }

    #[tokio::test]
    async fn a_silent_server_cannot_hang_a_call() {
        // Accepts connections but never says a word.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap().to_string();
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = ChatClient::new(quick(vec![silent.clone()])).unwrap();
        let started = std::time::Instant::now();
        let err = client
            .send(&"bob".parse().unwrap(), "hi")
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        assert!(err.is_unavailable(), "{err}");
        assert!(err.message.contains("no answer within"), "{err}");

        // Logged in, a send goes over the send stream first; a silent
        // stream's wait counts against the same deadline.
        client.set_token(Some("token".into()));
        let started = std::time::Instant::now();
        let err = client
            .send(&"bob".parse().unwrap(), "hi")
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        assert!(err.is_unavailable(), "{err}");
        keep.abort();
    }

    #[tokio::test]
    async fn a_subscription_keeps_reconnecting_across_replicas() {
        let servers = dead_addresses(2).await;
        let client = ChatClient::new(quick(servers.clone())).unwrap();
        let items: Vec<SubscriptionItem> = client.subscribe(Some(7)).take(3).collect().await;
        let targets: Vec<&str> = items
            .iter()
            .map(|item| match item {
                SubscriptionItem::Reconnecting { server, .. } => server.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(targets, vec![&servers[1], &servers[0], &servers[1]]);
    }
}
