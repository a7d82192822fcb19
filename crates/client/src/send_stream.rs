//! Sends over one long-lived `SendStream` per client.
//!
//! A unary `SendMessage` costs an HTTP/2 call per message on both ends:
//! headers, trailers and, measured, two or three socket writes each way.
//! A logged-in [`ChatClient`] instead writes each message into its send
//! stream to the current replica and waits for the answer there, up to
//! `rpc_timeout`; concurrent sends from clones of one client share the
//! stream, and answers that are ready together arrive in one read.
//!
//! The stream is only a faster first attempt. Anything but an answer — not
//! logged in, the stream refused, broken or silent, or `UNAVAILABLE` —
//! hands the send to the unary failover engine ([`ChatClient::unary_from`])
//! with the same request id, so the failover policy in the module docs still
//! holds, and a message that reached the cluster over the stream and again
//! over the fallback is applied once.
//!
//! The stream follows the client: it is reopened when the current replica or
//! the session token changes, while the old one delivers its outstanding
//! answers and closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use super::handle::{GrpcChat, Inner};
use super::retry::is_retryable;
use super::servers::{leader_hint, lock};
use super::ChatClient;
use raftchat_proto::{send_stream_reply, SendMessageReply, SendMessageRequest, SendStreamReply};

type Answer = Result<SendMessageReply, Status>;

/// The client's current send stream, if one is open.
pub(crate) type Slot = Mutex<Option<SendStream>>;

/// One open `SendStream` call and the sends waiting for its answers.
pub(crate) struct SendStream {
    server: usize,
    token: String,
    requests: mpsc::UnboundedSender<SendMessageRequest>,
    waiting: Arc<Mutex<Waiting>>,
    reader: AbortHandle,
}

/// Sends written to a stream and not yet answered, by request id.
#[derive(Default)]
struct Waiting {
    /// The stream has ended: nothing more will be answered.
    closed: bool,
    answers: HashMap<String, oneshot::Sender<Answer>>,
}

impl Waiting {
    /// Ends the stream for its waiters: dropping their senders tells each
    /// to fall back.
    fn close(&mut self) {
        self.closed = true;
        self.answers.clear();
    }
}

impl ChatClient {
    /// Tries `message` over the send stream to the current replica.
    /// `None` when the stream could not answer and the caller should fall
    /// back to a unary call; otherwise the answer, or the error a replica
    /// gave for this message (possibly retryable).
    pub(crate) async fn send_over_stream(&self, message: &SendMessageRequest) -> Option<Answer> {
        let index = self.current_index();
        let token = self.token()?;
        let (answer, waiting) = self.enqueue(index, token, message)?;
        let sent = Instant::now();
        match tokio::time::timeout(self.config().rpc_timeout, answer).await {
            Ok(Ok(answer)) => {
                let replied = match &answer {
                    Ok(_) => true,
                    Err(status) => !is_retryable(status),
                };
                if replied {
                    self.note_answer(index, sent.elapsed(), None);
                }
                Some(answer)
            }
            // The stream ended without answering this send.
            Ok(Err(_closed)) => None,
            Err(_elapsed) => {
                // A silent stream: give it up (its other waiters fall back
                // too) and let the fallback's own attempt judge the replica.
                let mut slot = lock(&self.inner.send_stream);
                if slot
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(&s.waiting, &waiting))
                {
                    if let Some(stream) = slot.take() {
                        stream.abandon();
                    }
                } else {
                    // Already replaced: just stop waiting on the old one.
                    lock(&waiting).answers.remove(&message.request_id);
                }
                None
            }
        }
    }

    /// Writes `message` into the stream to replica `index` for `token`,
    /// opening one if needed, and returns where its answer will arrive and
    /// the stream's waiting list.
    fn enqueue(
        &self,
        index: usize,
        token: String,
        message: &SendMessageRequest,
    ) -> Option<(oneshot::Receiver<Answer>, Arc<Mutex<Waiting>>)> {
        let mut slot = lock(&self.inner.send_stream);
        let usable = slot
            .as_ref()
            .is_some_and(|s| s.server == index && s.token == token && !lock(&s.waiting).closed);
        if !usable {
            // The old stream (if any) closes once its answers are in.
            *slot = Some(SendStream::open(self, index, token)?);
        }
        let stream = slot.as_ref()?;
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = lock(&stream.waiting);
            if waiting.closed {
                return None;
            }
            waiting.answers.insert(message.request_id.clone(), tx);
        }
        if stream.requests.send(message.clone()).is_err() {
            lock(&stream.waiting).answers.remove(&message.request_id);
            return None;
        }
        Some((rx, stream.waiting.clone()))
    }
}

impl SendStream {
    /// Opens a stream to replica `index` with `token`; its answers are read
    /// on a task that holds the client only weakly, so dropping every clone
    /// of the client closes the stream.
    fn open(client: &ChatClient, index: usize, token: String) -> Option<Self> {
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).ok()?;
        let (requests, outgoing) = mpsc::unbounded_channel();
        let mut request = Request::new(UnboundedReceiverStream::new(outgoing));
        request.metadata_mut().insert("authorization", bearer);
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let grpc = GrpcChat::new(client.server(index).channel());
        let reader = tokio::spawn(read_answers(
            grpc,
            request,
            waiting.clone(),
            Arc::downgrade(&client.inner),
            index,
        ))
        .abort_handle();
        Some(Self {
            server: index,
            token,
            requests,
            waiting,
            reader,
        })
    }

    /// Stops reading at once; every waiter falls back.
    fn abandon(self) {
        self.reader.abort();
        lock(&self.waiting).close();
    }
}

/// Opens the call and hands each answer to its waiter until the stream ends.
async fn read_answers(
    mut grpc: GrpcChat,
    request: Request<UnboundedReceiverStream<SendMessageRequest>>,
    waiting: Arc<Mutex<Waiting>>,
    client: Weak<Inner>,
    index: usize,
) {
    let opened = Instant::now();
    if let Ok(response) = grpc.send_stream(request).await {
        if let Some(inner) = client.upgrade() {
            // Follows the leader hint, so the next send opens a stream there.
            let hint = leader_hint(response.metadata());
            ChatClient { inner }.note_answer(index, opened.elapsed(), hint);
        }
        let mut answers = response.into_inner();
        while let Ok(Some(reply)) = answers.message().await {
            let waiter = lock(&waiting).answers.remove(&reply.request_id);
            if let Some(waiter) = waiter {
                // The waiter may have timed out and gone: nothing to do.
                let _ = waiter.send(answer(reply));
            }
        }
    }
    lock(&waiting).close();
}

fn answer(reply: SendStreamReply) -> Answer {
    match reply.result {
        Some(send_stream_reply::Result::Message(message)) => Ok(SendMessageReply {
            message: Some(message),
        }),
        Some(send_stream_reply::Result::Error(error)) => {
            Err(Status::new(Code::from(error.code), error.message))
        }
        None => Err(Status::internal("the replica answered a send with nothing")),
    }
}
