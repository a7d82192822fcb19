//! `Subscribe`: a user's events, streamed from the applied-event ring.
//!
//! The stream first replays what the subscriber missed (everything after its
//! cursor that this replica still holds), then sends `Live`, then follows new
//! events as they are applied. A cursor older than the ring gets `Resync`.
//! The stream ends when the client goes away, its session ends, or the
//! replica shuts down; while it lives, the user counts as online.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::proto::{self, event};
use crate::server::chat_service::{until_shutdown, ServiceContext};
use crate::server::command::{ChatEvent, EventKind, TokenHash, UserId};
use crate::server::consensus::now_ms;
use crate::server::convert;
use crate::server::state::ChatState;

/// Events read from the ring per wake-up.
const CHUNK: usize = 1024;

type Item = Result<proto::Event, Status>;

pub fn stream(
    ctx: Arc<ServiceContext>,
    session: TokenHash,
    user: UserId,
    after: Option<u64>,
) -> Pin<Box<dyn Stream<Item = Item> + Send>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _online = ctx.presence.open(session);
        let _counted = crate::server::metrics::Live::subscription();
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
    let mut shutdown = ctx.shutdown.clone();
    let mut cursor = after.unwrap_or_else(|| ctx.hub.latest());
    let mut live_sent = false;
    loop {
        match ctx.hub.since(cursor, CHUNK) {
            Err(resync) => {
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
                let mine: Vec<proto::Event> = {
                    let guard = ctx.state.read().unwrap_or_else(|e| e.into_inner());
                    events
                        .iter()
                        .inspect(|e| cursor = e.seq)
                        .filter(|e| e.recipients.contains(&user))
                        .map(|e| render(&guard.chat, user, e))
                        .collect()
                };
                for ev in mine {
                    send(tx, Ok(ev)).await?;
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
            let ev = proto::Event {
                seq: cursor,
                index: 0,
                kind: Some(event::Kind::Live(proto::Live { seq: cursor })),
            };
            send(tx, Ok(ev)).await?;
        }
        tokio::select! {
            changed = wake.changed() => changed.map_err(|_| "event hub closed".to_string())?,
            () = until_shutdown(&mut shutdown) => {
                let _ = tx.send(Err(Status::unavailable("replica is shutting down"))).await;
                return Err("shutting down".into());
            }
            _ = tx.closed() => return Err("client went away".into()),
        }
    }
}

async fn send(tx: &mpsc::Sender<Item>, item: Item) -> Result<(), String> {
    tx.send(item)
        .await
        .map_err(|_| "client went away".to_string())
}

/// The wire form of an event for one recipient.
fn render(state: &ChatState, user: UserId, e: &ChatEvent) -> proto::Event {
    let kind = match &e.kind {
        EventKind::Message(m) => event::Kind::Message(convert::message(m.clone())),
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
    };
    proto::Event {
        seq: e.seq,
        index: e.index,
        kind: Some(kind),
    }
}
