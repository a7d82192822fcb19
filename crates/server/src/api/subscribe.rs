//! `Subscribe`: a user's events, streamed from the applied-event ring.
//!
//! The stream first replays what the subscriber missed (everything after its
//! cursor that this replica still holds), then sends `Live`, then follows new
//! events as they are applied. A cursor older than the ring gets `Resync`.
//! The stream ends when the client goes away, its session ends, or the
//! replica shuts down; while it lives, the user counts as online. Typing
//! notices (`api::typing`) join the stream while it waits for events; they
//! are not in the ring and are never replayed.
//!
//! A cursor beyond the newest event (no event of this cluster had it: a
//! client of another, or of a wiped cluster, or a forged request) also gets
//! `Resync`, with the stream's `seq` naming the current position: the
//! client library then reopens from "now" and tells its consumer to
//! reload, rather than waiting forever for events that will never come.
//!
//! One session holds at most [`MAX_STREAMS_PER_SESSION`] streams on a
//! replica: each stream costs a task, a buffer and two log entries
//! (opened, closed), so an unbounded number is a denial of service.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};

use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::api::chat_service::{until_shutdown, ServiceContext};
use crate::api::convert;
use crate::api::proto::{self, event};
use crate::api::typing;
use crate::raft::consensus::now_ms;
use crate::raft::typing::TypingNotice;
use crate::state::command::{ChatEvent, EventKind, TokenHash, UserId};
use crate::state::ChatState;

/// Events read from the ring per wake-up.
const CHUNK: usize = 1024;

/// Most concurrent `Subscribe` streams of one session on one replica.
/// Clients need one (a few while reconnecting); 8 leaves room for several
/// windows sharing a login.
pub const MAX_STREAMS_PER_SESSION: usize = 8;

type Item = Result<proto::Event, Status>;

/// Open streams per session on this replica.
#[derive(Default)]
pub struct StreamCounts(Mutex<HashMap<TokenHash, usize>>);

/// One session's place among its streams; given back when dropped.
pub struct Slot {
    counts: Arc<StreamCounts>,
    session: TokenHash,
}

impl StreamCounts {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, usize>> {
        // Each update is a single insert or remove: ignore poisoning.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more stream of `session`, or `RESOURCE_EXHAUSTED`.
    pub fn reserve(self: &Arc<Self>, session: TokenHash, max: usize) -> Result<Slot, Status> {
        let mut counts = self.counts();
        let n = counts.entry(session).or_insert(0);
        if *n >= max {
            return Err(Status::resource_exhausted(format!(
                "this session already has {max} subscriptions open on this replica; close one first"
            )));
        }
        *n += 1;
        Ok(Slot {
            counts: self.clone(),
            session,
        })
    }

    /// Open streams of `session`.
    pub fn open(&self, session: &TokenHash) -> usize {
        self.counts().get(session).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts();
        if let Some(n) = counts.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.session);
            }
        }
    }
}

/// A stream place for `session` on this replica (one replica per process).
pub fn reserve(session: TokenHash) -> Result<Slot, Status> {
    static COUNTS: LazyLock<Arc<StreamCounts>> = LazyLock::new(Arc::default);
    COUNTS.reserve(session, MAX_STREAMS_PER_SESSION)
}

/// Serves one subscription; `slot` is held until the stream ends.
pub fn stream(
    ctx: Arc<ServiceContext>,
    slot: Slot,
    user: UserId,
    after: Option<u64>,
) -> Pin<Box<dyn Stream<Item = Item> + Send>> {
    let (tx, rx) = mpsc::channel(256);
    let session = slot.session;
    tokio::spawn(async move {
        let _slot = slot;
        let _online = ctx.presence.open(session);
        let _counted = crate::metrics::Live::subscription();
        if let Err(reason) = pump(&ctx, &tx, session, user, after).await {
            tracing::debug!(user, %reason, "subscription ended");
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Feeds `tx` until the subscriber or the replica goes away.
async fn pump(
    ctx: &ServiceContext,
    tx: &mpsc::Sender<Item>,
    session: TokenHash,
    user: UserId,
    after: Option<u64>,
) -> Result<(), String> {
    let mut wake = ctx.hub.watch();
    let mut typing = ctx.typing.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let mut cursor = after.unwrap_or_else(|| ctx.hub.latest());
    let mut live_sent = false;
    // The newest position the client has seen (what it would resume
    // from): typing events carry it, so no client takes one for news.
    let mut delivered = after;
    loop {
        match ctx.hub.since(cursor, CHUNK) {
            Err(resync) => {
                if cursor > ctx.hub.latest() {
                    tracing::debug!(user, cursor, "subscription cursor beyond the newest event");
                }
                cursor = ctx.hub.latest();
                let ev = proto::Event {
                    seq: cursor,
                    index: 0,
                    kind: Some(event::Kind::Resync(proto::Resync {
                        oldest_seq: resync.oldest_seq,
                    })),
                };
                send(tx, Ok(ev)).await?;
                continue;
            }
            Ok(events) => {
                let caught_up = events.len() < CHUNK;
                let mut ended = false;
                let mut mine = Vec::new();
                {
                    let guard = ctx.state.read().unwrap_or_else(|e| e.into_inner());
                    for e in events.iter().filter(|e| e.recipients.contains(&user)) {
                        match &e.kind {
                            // Nothing after the end of this stream's session.
                            EventKind::SessionsEnded { sessions } => {
                                if sessions.contains(&session) {
                                    ended = true;
                                    break;
                                }
                            }
                            _ => mine.extend(render(&guard.chat, user, e)),
                        }
                    }
                    // Unused once the stream has ended.
                    cursor = events.last().map_or(cursor, |e| e.seq);
                }
                for ev in mine {
                    delivered = Some(ev.seq);
                    send(tx, Ok(ev)).await?;
                }
                if ended {
                    let _ = tx
                        .send(Err(Status::unauthenticated(
                            "session ended: logged out, password changed or account deleted; log in again",
                        )))
                        .await;
                    return Err("session ended".into());
                }
                if !caught_up {
                    continue;
                }
            }
        }
        // Caught up: a revoked session ends the stream.
        let authorized = {
            let guard = ctx.state.read().unwrap_or_else(|e| e.into_inner());
            guard.chat.authenticate(&session, now_ms())
        };
        if let Err(e) = authorized {
            let _ = tx.send(Err(Status::unauthenticated(e.message))).await;
            return Err("session ended".into());
        }
        if !live_sent {
            live_sent = true;
            delivered.get_or_insert(cursor);
            let ev = proto::Event {
                seq: cursor,
                index: 0,
                kind: Some(event::Kind::Live(proto::Live { seq: cursor })),
            };
            send(tx, Ok(ev)).await?;
        }
        tokio::select! {
            changed = wake.changed() => changed.map_err(|_| "event hub closed".to_string())?,
            notice = typing.recv() => match notice {
                Ok(notice) => {
                    if let Some(ev) = typing_event(ctx, user, notice, delivered.unwrap_or(cursor)) {
                        send(tx, Ok(ev)).await?;
                    }
                }
                // Missed notices are replaced by the next ones.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err("typing relay closed".into()),
            },
            () = until_shutdown(&mut shutdown) => {
                let _ = tx.send(Err(Status::unavailable("replica is shutting down"))).await;
                return Err("shutting down".into());
            }
            _ = tx.closed() => return Err("client went away".into()),
        }
    }
}

/// The `typing` event for `user`, if `notice` is for them: another
/// member typing in one of their conversations. `seq` is the last one the
/// client saw, so a typing event never moves a client's cursor (and a
/// client that predates typing events drops it as a duplicate).
fn typing_event(
    ctx: &ServiceContext,
    user: UserId,
    notice: TypingNotice,
    seen: u64,
) -> Option<proto::Event> {
    if notice.user == user {
        return None;
    }
    let guard = ctx.state.read().unwrap_or_else(|e| e.into_inner());
    let chat = &guard.chat;
    if !chat.is_member(user, notice.conversation)
        || !chat.is_member(notice.user, notice.conversation)
    {
        return None;
    }
    let typist = chat.username(notice.user)?;
    Some(proto::Event {
        seq: seen,
        index: 0,
        kind: Some(event::Kind::Typing(proto::TypingNotice {
            conversation_id: notice.conversation,
            user: typist.to_string(),
            expires_in_ms: typing::EXPIRES_MS,
        })),
    })
}

async fn send(tx: &mpsc::Sender<Item>, item: Item) -> Result<(), String> {
    tx.send(item)
        .await
        .map_err(|_| "client went away".to_string())
}

/// The wire form of an event for one recipient; `None` for an event that
/// is not for clients.
fn render(state: &ChatState, user: UserId, e: &ChatEvent) -> Option<proto::Event> {
    let kind = match &e.kind {
        EventKind::Message(m) => event::Kind::Message(convert::message(m.clone())),
        EventKind::Edited(m) => event::Kind::Edited(convert::message(m.clone())),
        EventKind::Reacted(m) => event::Kind::Reacted(convert::message(m.clone())),
        EventKind::MessagesDeleted { conversation, ids } => {
            event::Kind::Deleted(proto::MessagesDeleted {
                conversation_id: *conversation,
                message_ids: ids.clone(),
            })
        }
        EventKind::ReadReceipt {
            conversation,
            reader,
            up_to,
        } => event::Kind::Read(proto::ReadReceipt {
            conversation_id: *conversation,
            reader: reader.clone(),
            up_to: *up_to,
        }),
        EventKind::Membership {
            conversation,
            user: who,
            change,
        } => {
            // The recipient's current view; after leaving, just the id.
            let view = state
                .conversation(user, *conversation)
                .map(convert::conversation)
                .unwrap_or(proto::Conversation {
                    id: *conversation,
                    ..Default::default()
                });
            event::Kind::Membership(proto::MembershipChanged {
                conversation: Some(view),
                user: who.clone(),
                change: change.as_str().to_string(),
            })
        }
        EventKind::Presence {
            user: who,
            online,
            last_seen_ms,
        } => event::Kind::Presence(proto::PresenceChanged {
            user: who.clone(),
            online: *online,
            last_seen_ms: *last_seen_ms,
        }),
        // For the stream itself (see `pump`), not for the client.
        EventKind::SessionsEnded { .. } => return None,
    };
    Some(proto::Event {
        seq: e.seq,
        index: e.index,
        kind: Some(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_per_session_are_capped_and_given_back() {
        let counts = Arc::new(StreamCounts::default());
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let held: Vec<Slot> = (0..3).map(|_| counts.reserve(a, 3).unwrap()).collect();
        let refused = counts.reserve(a, 3).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("3 subscriptions"), "{refused}");
        // Another session is not affected.
        let other = counts.reserve(b, 3).unwrap();
        drop(held);
        assert_eq!(counts.open(&a), 0);
        assert!(counts.counts().get(&a).is_none(), "no entry left behind");
        let _again = counts.reserve(a, 3).unwrap();
        drop(other);
        assert_eq!(counts.open(&b), 0);
    }
}
