//! A subscription that survives replica failures.
//!
//! The stream remembers the `seq` of the last event delivered. When the
//! server stream breaks, ends, or goes quiet on a replica that no longer
//! answers or no longer knows a leader, it reconnects to another replica
//! with `after_seq` = that cursor, so the consumer sees every event exactly
//! once, in order. Events at or below the cursor are dropped defensively.

use std::collections::VecDeque;

use futures::Stream;
use tokio::time::Instant;
use tonic::{Request, Streaming};

use raftchat_proto::event::Kind;
use raftchat_proto::{Event, StatusRequest, SubscribeRequest};

use super::handle::{GrpcChat, GrpcCluster};
use super::retry::{describe_failure, is_retryable, is_transport, no_answer, Backoff};
use super::servers::{human_duration, leader_hint};
use super::{ChatClient, ClientError};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionItem {
    /// An event for the caller (message, deletion, read receipt, membership
    /// or presence change, typing notice). Never `Live` or `Resync`: those
    /// become the variants below. A typing notice is not a position: it is
    /// never replayed after a reconnection and does not move the cursor.
    Event(Event),
    /// The stream is live on `server`; `seq` is the newest event position
    /// there. Sent after every (re)connection.
    Live {
        /// The replica serving the stream.
        server: String,
        /// The current event position on that replica.
        seq: u64,
    },
    /// The stream broke; the subscription is moving to `server`. Nothing is
    /// lost: it resumes after the last event delivered.
    Reconnecting {
        /// The replica tried next.
        server: String,
        /// Consecutive failed attempts so far (1 for the first).
        attempt: u32,
        /// Why the previous replica was abandoned.
        error: String,
    },
    /// Events were missed for good (the cursor is older than the replicas
    /// remember). Reload conversations and history; the subscription has
    /// already restarted from "now" and continues.
    Resync {
        /// The oldest event position the replica still had.
        oldest_seq: u64,
    },
    /// The subscription ended because of an error retrying cannot fix (for
    /// example an expired session: `UNAUTHENTICATED`). Nothing follows.
    Failed(ClientError),
}

impl ChatClient {
    /// The caller's events, kept alive across replica failures until the
    /// stream is dropped (or a [`SubscriptionItem::Failed`] ends it).
    ///
    /// `after_seq` resumes after a known event; `None` starts from now.
    /// Requires a login.
    pub fn subscribe(
        &self,
        after_seq: Option<u64>,
    ) -> impl Stream<Item = SubscriptionItem> + Send + 'static {
        let state = Subscription {
            client: self.clone(),
            last_seq: after_seq,
            stream: None,
            out: VecDeque::new(),
            attempt: 0,
            backoff: Backoff::for_subscriptions(),
            resync: None,
            finished: false,
        };
        futures::stream::unfold(state, Subscription::next_item)
    }
}

/// Whether a subscription error means "stop" rather than "try elsewhere".
///
/// Unlike a unary call, a subscription is meant to outlive transient
/// trouble, so only errors that another replica or a later attempt cannot
/// fix end it: a bad or expired session, a deleted account, a malformed
/// request, or a server without the RPC. Anything else (including
/// `FAILED_PRECONDITION` / `OUT_OF_RANGE` from a replica that lags behind
/// the cursor) moves on to another replica.
fn is_fatal(status: &tonic::Status) -> bool {
    use tonic::Code;
    !is_retryable(status)
        && matches!(
            status.code(),
            Code::Unauthenticated
                | Code::PermissionDenied
                | Code::NotFound
                | Code::InvalidArgument
                | Code::Unimplemented
        )
}

/// The state machine behind [`ChatClient::subscribe`].
struct Subscription {
    client: ChatClient,
    /// The resume cursor: the last event seq delivered (or the `Live`
    /// position of a fresh stream).
    last_seq: Option<u64>,
    /// The open stream and the index of its replica.
    stream: Option<(usize, Streaming<Event>)>,
    /// Items ready for the consumer.
    out: VecDeque<SubscriptionItem>,
    /// Consecutive failed connection attempts.
    attempt: u32,
    backoff: Backoff,
    /// Set when the server asked for a resync: reported to the consumer once
    /// the fresh stream is open, so nothing between reload and stream is lost.
    resync: Option<u64>,
    finished: bool,
}

impl Subscription {
    async fn next_item(mut self) -> Option<(SubscriptionItem, Self)> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some((item, self));
            }
            if self.finished {
                return None;
            }
            match self.stream.take() {
                None => self.connect().await,
                Some((index, stream)) => self.pump(index, stream).await,
            }
        }
    }

    /// Opens a stream on the current replica (after a backoff if the last
    /// attempt failed).
    async fn connect(&mut self) {
        if self.attempt > 0 {
            tokio::time::sleep(self.backoff.next_pause()).await;
        }
        let client = &self.client;
        let index = client.current_index();
        let server = client.server(index);
        let after_seq = if self.resync.is_some() {
            None
        } else {
            self.last_seq
        };
        let mut request = Request::new(SubscribeRequest { after_seq });
        if let Err(err) = client.authorize(&mut request) {
            return self.fail_for_good(err);
        }
        // No grpc-timeout on the request: it would cut the stream. Only the
        // wait for the response headers is bounded.
        let timeout = client.config().rpc_timeout;
        let sent = Instant::now();
        let mut stub = GrpcChat::new(server.channel());
        match tokio::time::timeout(timeout, stub.subscribe(request)).await {
            Ok(Ok(response)) => {
                client.note_answer(index, sent.elapsed(), leader_hint(response.metadata()));
                self.attempt = 0;
                self.backoff.reset();
                if let Some(oldest_seq) = self.resync.take() {
                    self.last_seq = None;
                    self.out.push_back(SubscriptionItem::Resync { oldest_seq });
                }
                self.stream = Some((index, response.into_inner()));
            }
            Ok(Err(status)) if is_fatal(&status) => {
                client.note_answer(index, sent.elapsed(), leader_hint(status.metadata()));
                self.fail_for_good(status.into());
            }
            Ok(Err(status)) => {
                if is_transport(&status) {
                    server.reset();
                }
                let hint = leader_hint(status.metadata());
                let why = describe_failure(&status, timeout, server.plaintext);
                self.move_on(index, hint, why);
            }
            Err(_elapsed) => {
                server.reset();
                self.move_on(index, None, no_answer(timeout));
            }
        }
    }

    /// Waits for the next event on an open stream; probes the replica when
    /// the stream has been quiet for a while.
    async fn pump(&mut self, index: usize, mut stream: Streaming<Event>) {
        let quiet = self.client.config().subscription_probe_interval;
        match tokio::time::timeout(quiet, stream.message()).await {
            Ok(Ok(Some(event))) => {
                if self.deliver(index, event) {
                    self.stream = Some((index, stream));
                }
            }
            Ok(Ok(None)) => {
                self.move_on(index, None, "the server closed the stream".to_string());
            }
            Ok(Err(status)) if is_fatal(&status) => {
                self.fail_for_good(status.into());
            }
            Ok(Err(status)) => {
                if is_transport(&status) {
                    self.client.server(index).reset();
                }
                let hint = leader_hint(status.metadata());
                let why = describe_failure(&status, quiet, self.client.server(index).plaintext);
                self.move_on(index, hint, why);
            }
            Err(_quiet) => match self.probe(index).await {
                Ok(()) => self.stream = Some((index, stream)),
                Err(error) => self.move_on(index, None, error),
            },
        }
    }

    /// Hands one event to the consumer; returns false when the stream must
    /// be reopened (after a `Resync`).
    fn deliver(&mut self, index: usize, event: Event) -> bool {
        match &event.kind {
            Some(Kind::Live(live)) => {
                if self.last_seq.is_none() {
                    self.last_seq = Some(live.seq);
                }
                let server = self.client.server(index).addr.clone();
                self.out.push_back(SubscriptionItem::Live {
                    server,
                    seq: live.seq,
                });
                true
            }
            Some(Kind::Resync(resync)) => {
                if self.last_seq.is_none() && self.resync.is_none() {
                    // Already a fresh stream: just tell the consumer.
                    self.out.push_back(SubscriptionItem::Resync {
                        oldest_seq: resync.oldest_seq,
                    });
                    return true;
                }
                // Reopen from "now" on the same replica; the consumer is told
                // once the new stream is open (see `connect`).
                self.resync = Some(resync.oldest_seq);
                false
            }
            // Ephemeral: never a duplicate, and not a position.
            Some(Kind::Typing(_)) => {
                self.out.push_back(SubscriptionItem::Event(event));
                true
            }
            _ => {
                if self.last_seq.is_some_and(|last| event.seq <= last) {
                    return true; // a duplicate after a reconnection
                }
                self.last_seq = Some(event.seq);
                self.out.push_back(SubscriptionItem::Event(event));
                true
            }
        }
    }

    /// Checks that a quiet replica is still alive and part of a working
    /// cluster (knows a leader). Uses the stream's own connection, so a
    /// frozen replica shows up as a timeout.
    async fn probe(&self, index: usize) -> Result<(), String> {
        let client = &self.client;
        let server = client.server(index);
        let timeout = client.config().rpc_timeout;
        let mut request = Request::new(StatusRequest { with_digest: false });
        request.set_timeout(timeout);
        let mut stub = GrpcCluster::new(server.channel());
        match tokio::time::timeout(timeout, stub.status(request)).await {
            Ok(Ok(reply)) => {
                let status = reply.into_inner();
                if status.leader_id == 0 {
                    Err(format!("{} does not know a leader", server.addr))
                } else {
                    client.note_hint(Some((status.leader_id, status.leader_url)));
                    Ok(())
                }
            }
            Ok(Err(status)) => {
                if is_transport(&status) {
                    server.reset();
                }
                Err(format!(
                    "{} failed a status check: {}",
                    server.addr,
                    describe_failure(&status, timeout, server.plaintext)
                ))
            }
            Err(_elapsed) => {
                server.reset();
                Err(format!(
                    "{} did not answer a status check within {}",
                    server.addr,
                    human_duration(timeout)
                ))
            }
        }
    }

    /// Abandons replica `index` and tells the consumer where we go next.
    fn move_on(&mut self, index: usize, hint: Option<(u64, String)>, error: String) {
        self.stream = None;
        self.attempt = self.attempt.saturating_add(1);
        let next = self.client.note_failure(index, hint, &[index], &error);
        self.out.push_back(SubscriptionItem::Reconnecting {
            server: self.client.server(next).addr.clone(),
            attempt: self.attempt,
            error,
        });
    }

    fn fail_for_good(&mut self, error: ClientError) {
        self.stream = None;
        self.finished = true;
        self.out.push_back(SubscriptionItem::Failed(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;
    use raftchat_proto::{Live, Message, Resync};

    fn subscription(after: Option<u64>) -> Subscription {
        let client = ChatClient::new(ClientConfig::new(["127.0.0.1:1"])).unwrap();
        Subscription {
            client,
            last_seq: after,
            stream: None,
            out: VecDeque::new(),
            attempt: 0,
            backoff: Backoff::for_subscriptions(),
            resync: None,
            finished: false,
        }
    }

    fn message(seq: u64) -> Event {
        Event {
            seq,
            index: seq,
            kind: Some(Kind::Message(Message::default())),
        }
    }

    fn live(seq: u64) -> Event {
        Event {
            seq,
            index: 0,
            kind: Some(Kind::Live(Live { seq })),
        }
    }

    fn seqs(sub: &Subscription) -> Vec<u64> {
        sub.out
            .iter()
            .filter_map(|item| match item {
                SubscriptionItem::Event(e) => Some(e.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_unfixable_errors_end_a_subscription() {
        assert!(is_fatal(&tonic::Status::unauthenticated("expired")));
        assert!(is_fatal(&tonic::Status::not_found("account deleted")));
        assert!(!is_fatal(&tonic::Status::unavailable("no leader")));
        assert!(!is_fatal(&tonic::Status::failed_precondition(
            "cursor ahead"
        )));
        assert!(!is_fatal(&tonic::Status::internal("oops")));
    }

    #[test]
    fn duplicates_after_a_resume_are_dropped() {
        let mut sub = subscription(Some(5));
        for seq in [4, 5, 6, 6, 7] {
            assert!(sub.deliver(0, message(seq)));
        }
        assert_eq!(seqs(&sub), vec![6, 7]);
        assert_eq!(sub.last_seq, Some(7));
    }

    #[test]
    fn live_sets_the_cursor_of_a_fresh_stream_only() {
        let mut sub = subscription(None);
        assert!(sub.deliver(0, live(10)));
        assert_eq!(sub.last_seq, Some(10));
        assert!(matches!(
            sub.out.back(),
            Some(SubscriptionItem::Live { seq: 10, .. })
        ));

        let mut resumed = subscription(Some(3));
        assert!(resumed.deliver(0, live(10)));
        assert_eq!(resumed.last_seq, Some(3), "backlog 4..=10 must still come");
    }

    #[test]
    fn resync_reopens_from_now_and_is_reported_later() {
        let mut sub = subscription(Some(3));
        let event = Event {
            seq: 0,
            index: 0,
            kind: Some(Kind::Resync(Resync { oldest_seq: 100 })),
        };
        assert!(
            !sub.deliver(0, event.clone()),
            "the stream must be reopened"
        );
        assert_eq!(sub.resync, Some(100));
        assert!(sub.out.is_empty());

        let mut fresh = subscription(None);
        assert!(fresh.deliver(0, event));
        assert_eq!(
            fresh.out.back(),
            Some(&SubscriptionItem::Resync { oldest_seq: 100 })
        );
    }

    #[test]
    fn move_on_rotates_and_reports() {
        let client = ChatClient::new(ClientConfig::new(["127.0.0.1:1", "127.0.0.1:2"])).unwrap();
        let mut sub = subscription(None);
        sub.client = client;
        sub.move_on(0, None, "boom".into());
        assert_eq!(
            sub.out.back(),
            Some(&SubscriptionItem::Reconnecting {
                server: "127.0.0.1:2".into(),
                attempt: 1,
                error: "boom".into()
            })
        );
        assert_eq!(sub.client.current_server(), "127.0.0.1:2");
        assert!(sub.client.connection_state().borrow().reconnecting);
    }
}
