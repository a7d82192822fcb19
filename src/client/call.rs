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
use super::retry::{is_retryable, is_transport, Backoff};
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
        let started = Instant::now();
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
            let attempt = tokio::time::timeout(budget, rpc(GrpcChat::new(server.channel()), request));
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
                    (leader_hint(status.metadata()), ClientError::from(status).to_string())
                }
                Err(_elapsed) => {
                    server.reset();
                    (None, format!("no answer within {}", human_duration(budget)))
                }
            };

            if !everyone.contains(&index) {
                everyone.push(index);
            }
            tried.push(index);
            if tried.len() >= self.inner.servers.len() {
                tried.clear();
            }
            self.note_failure(index, hint, &tried, &error);
            last = Some(LastFailure {
                server: server.addr.clone(),
                message: error,
            });

            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.next_pause().min(left)).await;
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
