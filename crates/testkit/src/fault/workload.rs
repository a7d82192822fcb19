//! The clients: users sending uniquely-bodied messages (some of them
//! replies) into a few direct conversations and groups, reading histories,
//! marking read, reacting, editing and deleting their own messages, each through its own preferred replica,
//! recording every operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use raftchat_client::{new_request_id, ChatClient, ClientConfig, ClientError, Target};

use super::history::{Clock, Op, Outcome, Request, Seen, EDIT_MARK};

/// Messages per history read: the newest page.
pub const READ_LIMIT: u32 = 100;
/// Attempts of one logical send (retries reuse the request id).
const SEND_ATTEMPTS: u32 = 3;

/// Client timing. The defaults keep a call's worst case (a few seconds)
/// well below the nemesis's fault durations, so outcomes stay informative.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub rpc_timeout: Duration,
    pub call_deadline: Duration,
    /// Pause between a client's operations: uniform in `0..=think`.
    pub think: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            rpc_timeout: Duration::from_millis(1000),
            call_deadline: Duration::from_secs(4),
            think: Duration::from_millis(20),
        }
    }
}

/// The users and conversations every client works in.
#[derive(Debug, Clone)]
pub struct Setup {
    /// User names by client index (`u0`, `u1`, ...).
    pub users: Vec<String>,
    /// Conversation id → its members (client indexes).
    pub conversations: BTreeMap<u64, Vec<usize>>,
}

impl Setup {
    pub fn password(user: &str) -> String {
        format!("password-{user}")
    }

    /// The conversations client `k` belongs to.
    pub fn conversations_of(&self, k: usize) -> Vec<u64> {
        self.conversations
            .iter()
            .filter(|(_, members)| members.contains(&k))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A client for `base`'s servers (and TLS), trying the `first`-th first
/// (clients spread over the replicas this way).
pub fn client(
    base: &ClientConfig,
    first: usize,
    timing: &Timing,
) -> Result<ChatClient, ClientError> {
    let mut config = base.clone();
    let n = config.servers.len().max(1);
    config.servers.rotate_left(first % n);
    config.rpc_timeout = timing.rpc_timeout;
    config.write_deadline = timing.call_deadline;
    config.connect_timeout = Duration::from_millis(300);
    ChatClient::new(config)
}

/// Records operations of one client.
pub struct Recorder {
    pub client: usize,
    pub user: String,
    clock: Clock,
    next: u64,
    pub ops: Vec<Op>,
}

impl Recorder {
    pub fn new(client: usize, user: String, clock: Clock) -> Self {
        Self {
            client,
            user,
            clock,
            next: 0,
            ops: Vec::new(),
        }
    }

    pub fn now(&self) -> super::history::Micros {
        self.clock.now()
    }

    /// Records an operation invoked at `invoke` that just completed.
    pub fn push(&mut self, request: Request, invoke: super::history::Micros, outcome: Outcome) {
        let complete = self.clock.now();
        self.next += 1;
        self.ops.push(Op {
            id: (self.client as u64) << 32 | self.next,
            client: self.client,
            user: self.user.clone(),
            invoke,
            complete,
            request,
            outcome,
        });
    }

    /// Runs `call`, recording its request, times and outcome.
    pub async fn record<F, Fut>(&mut self, request: Request, call: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, ClientError>>,
    {
        let invoke = self.clock.now();
        let outcome = match call().await {
            Ok(o) => o,
            Err(e) => Outcome::from_error(&e),
        };
        self.push(request, invoke, outcome.clone());
        outcome
    }
}

fn seen(m: &raftchat_proto::Message) -> Seen {
    Seen::of_message(m)
}

/// Records `call` as `request(attempt)`, retrying an unknown outcome (the
/// call keeps its request id) up to [`SEND_ATTEMPTS`] times, fewer once
/// `stop` is set. `call` answers with the message it sent or changed.
async fn retried<Fut>(
    rec: &mut Recorder,
    stop: &AtomicBool,
    request: impl Fn(u32) -> Request,
    call: impl Fn() -> Fut,
) -> Outcome
where
    Fut: std::future::Future<Output = Result<Option<raftchat_proto::Message>, ClientError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = rec
            .record(request(attempt), || async {
                let message = call()
                    .await?
                    .ok_or_else(|| ClientError::missing_field("message"))?;
                Ok(Outcome::Sent {
                    message: seen(&message),
                })
            })
            .await;
        let retry = matches!(outcome, Outcome::Unknown { .. })
            && attempt < SEND_ATTEMPTS
            && !stop.load(Ordering::Relaxed);
        if !retry {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `body` to `conv`, as an answer to `reply_to` unless it is 0
/// (see [`retried`]).
pub async fn send(
    rec: &mut Recorder,
    client: &ChatClient,
    (conv, reply_to): (u64, u64),
    body: String,
    stop: &AtomicBool,
) -> Outcome {
    let request_id = &new_request_id();
    let body = &body;
    retried(
        rec,
        stop,
        |attempt| Request::Send {
            conv,
            body: body.clone(),
            request_id: request_id.clone(),
            attempt,
            reply_to,
        },
        || async move {
            let target = Target::Conversation(conv);
            Ok(client
                .send_reply_with_request_id(&target, body, reply_to, request_id)
                .await?
                .message)
        },
    )
    .await
}

/// Edits message `id` to `text` (see [`retried`]).
pub async fn edit(
    rec: &mut Recorder,
    client: &ChatClient,
    (conv, id): (u64, u64),
    text: String,
    stop: &AtomicBool,
) -> Outcome {
    let request_id = &new_request_id();
    let text = &text;
    retried(
        rec,
        stop,
        |attempt| Request::Edit {
            conv,
            id,
            text: text.clone(),
            request_id: request_id.clone(),
            attempt,
        },
        || async move {
            Ok(client
                .edit_message_with_request_id(id, text, request_id)
                .await?
                .message)
        },
    )
    .await
}

/// Toggles reaction `emoji` to message `id` (see [`retried`]).
pub async fn react(
    rec: &mut Recorder,
    client: &ChatClient,
    (conv, id): (u64, u64),
    emoji: &str,
    stop: &AtomicBool,
) -> Outcome {
    let request_id = &new_request_id();
    retried(
        rec,
        stop,
        |attempt| Request::React {
            conv,
            id,
            emoji: emoji.to_string(),
            request_id: request_id.clone(),
            attempt,
        },
        || async move {
            Ok(client
                .react_with_request_id(id, emoji, request_id)
                .await?
                .message)
        },
    )
    .await
}

/// The newest page of a conversation.
pub async fn read(rec: &mut Recorder, client: &ChatClient, conv: u64, limit: u32) -> Outcome {
    rec.record(Request::Read { conv, limit }, || async {
        let reply = client
            .history(&Target::Conversation(conv), 0, limit)
            .await?;
        Ok(Outcome::Page {
            messages: reply.messages.iter().map(seen).collect(),
            more: reply.more,
        })
    })
    .await
}

/// One client's loop until `stop`.
pub struct Worker {
    pub rec: Recorder,
    pub client: ChatClient,
    pub convs: Vec<u64>,
    pub rng: StdRng,
    pub timing: Timing,
    /// This client's acknowledged messages not yet deleted: (conv, id,
    /// body as sent).
    own: Vec<(u64, u64, String)>,
    /// Newest message id seen per conversation, for mark-read.
    newest: BTreeMap<u64, u64>,
    sent: u64,
    edited: u64,
}

impl Worker {
    pub fn new(
        rec: Recorder,
        client: ChatClient,
        convs: Vec<u64>,
        seed: u64,
        timing: Timing,
    ) -> Self {
        Self {
            rng: StdRng::seed_from_u64(
                seed ^ (rec.client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            rec,
            client,
            convs,
            timing,
            own: Vec::new(),
            newest: BTreeMap::new(),
            sent: 0,
            edited: 0,
        }
    }

    /// Runs operations until `stop` is set; returns the recorded history.
    pub async fn run(mut self, stop: Arc<AtomicBool>) -> Vec<Op> {
        while !stop.load(Ordering::Relaxed) {
            self.step(&stop).await;
            let think = self.timing.think.as_millis() as u64;
            let pause = self.rng.gen_range(0..=think);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        self.rec.ops
    }

    async fn step(&mut self, stop: &AtomicBool) {
        let conv = self.convs[self.rng.gen_range(0..self.convs.len())];
        let roll: u32 = self.rng.gen_range(0..100);
        if roll < 55 {
            self.sent += 1;
            let body = format!("{}-{}", self.rec.user, self.sent);
            // A quarter answer the newest message seen there (which may
            // have been deleted since: NOT_FOUND).
            let reply_to = match self.newest.get(&conv) {
                Some(&id) if self.rng.gen_ratio(1, 4) => id,
                _ => 0,
            };
            let outcome = send(&mut self.rec, &self.client, (conv, reply_to), body, stop).await;
            if let Outcome::Sent { message } = outcome {
                self.own.push((conv, message.id, message.body));
                self.note(conv, message.id);
            }
        } else if roll < 77 {
            if let Outcome::Page { messages, .. } =
                read(&mut self.rec, &self.client, conv, READ_LIMIT).await
            {
                if let Some(m) = messages.first() {
                    self.note(conv, m.id);
                }
            }
        } else if roll < 81 {
            // The newest message seen there, often someone else's.
            let Some(&id) = self.newest.get(&conv) else {
                return;
            };
            let emoji = if self.rng.gen_bool(0.5) { "+1" } else { "ok" };
            react(&mut self.rec, &self.client, (conv, id), emoji, stop).await;
        } else if roll < 85 {
            let Some(&up_to) = self.newest.get(&conv) else {
                return;
            };
            let client = &self.client;
            self.rec
                .record(Request::MarkRead { conv, up_to }, || async move {
                    client.mark_read(conv, up_to).await.map(|()| Outcome::Done)
                })
                .await;
        } else if roll < 93 {
            if self.own.is_empty() {
                return;
            }
            let (conv, id, body) = self.own[self.rng.gen_range(0..self.own.len())].clone();
            self.edited += 1;
            // Unique per edit: the body as sent, then this client's count.
            let text = format!("{body}{EDIT_MARK}e{}", self.edited);
            edit(&mut self.rec, &self.client, (conv, id), text, stop).await;
        } else if !self.own.is_empty() {
            let (conv, id, _) = self.own.swap_remove(self.rng.gen_range(0..self.own.len()));
            let client = &self.client;
            self.rec
                .record(
                    Request::Delete {
                        conv,
                        ids: vec![id],
                    },
                    || async move { client.delete_messages(&[id]).await.map(|_| Outcome::Done) },
                )
                .await;
        }
    }

    fn note(&mut self, conv: u64, id: u64) {
        let newest = self.newest.entry(conv).or_insert(0);
        *newest = (*newest).max(id);
    }
}
