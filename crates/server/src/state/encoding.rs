//! How a [`ChatState`] is written into snapshots, and read back on two
//! threads.
//!
//! The fields go in declaration order, as a derive would write them, except
//! that the conversations (the messages: most of a large state) are a byte
//! section of their own. Reading spawns a thread for that section as soon
//! as it is reached and decodes the remaining fields (above all the
//! remembered request ids) on the calling one meanwhile. A cold restart
//! spends most of its time in this decode, mostly faulting in fresh memory,
//! and both halves of that work run at once on two cores.
//!
//! The recorded replica incarnations come last. Older layouts still read:
//! [`ChatState::deserialize_without_replicas`] (format 4: no incarnations)
//! and [`ChatState::deserialize_previous_layout`] (every field inline, as
//! snapshot data carried it before its format byte, see
//! `storage::state_store`), so storage written by earlier releases
//! restores.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{self, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{text, Accounts, ChatState, Conversations, Dedup, Presence, Sessions};

const FIELDS: usize = 9;
/// Fields of the layouts written before replica incarnations.
const FIELDS_WITHOUT_REPLICAS: usize = 8;

impl Serialize for ChatState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let conversations = postcard::to_stdvec(&self.conversations)
            .map_err(|e| ser::Error::custom(format!("conversations: {e}")))?;
        let mut t = serializer.serialize_tuple(FIELDS)?;
        t.serialize_element(&self.now_ms)?;
        t.serialize_element(&self.event_seq)?;
        t.serialize_element(&self.accounts)?;
        t.serialize_element(&self.sessions)?;
        t.serialize_element(&Section(&conversations))?;
        t.serialize_element(&self.presence)?;
        t.serialize_element(&self.dedup)?;
        t.serialize_element(&self.history)?;
        t.serialize_element(&self.replicas)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for ChatState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(
            FIELDS,
            ChatStateVisitor {
                conversations_inline: false,
                with_replicas: true,
            },
        )
    }
}

impl ChatState {
    /// Reads format 4: the current layout without the replica
    /// incarnations at its end.
    pub fn deserialize_without_replicas<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(
            FIELDS_WITHOUT_REPLICAS,
            ChatStateVisitor {
                conversations_inline: false,
                with_replicas: false,
            },
        )
    }

    /// Reads the previous layout: the same fields, the conversations
    /// inline (decoded on the calling thread).
    pub fn deserialize_previous_layout<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(
            FIELDS_WITHOUT_REPLICAS,
            ChatStateVisitor {
                conversations_inline: true,
                with_replicas: false,
            },
        )
    }
}

struct ChatStateVisitor {
    conversations_inline: bool,
    with_replicas: bool,
}

fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
    field: &'static str,
) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::custom(format!("chat state ends before its {field}")))
}

impl<'de> Visitor<'de> for ChatStateVisitor {
    type Value = ChatState;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat state")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChatState, A::Error> {
        let now_ms = next(&mut seq, "clock")?;
        let event_seq = next(&mut seq, "event counter")?;
        let accounts: Accounts = next(&mut seq, "accounts")?;
        let sessions: Sessions = next(&mut seq, "sessions")?;
        let rest = |seq: &mut A| -> Result<(Presence, Dedup, [u8; 32]), A::Error> {
            Ok((
                next(seq, "presence")?,
                next(seq, "remembered request ids")?,
                next(seq, "history digest")?,
            ))
        };
        let (conversations, (presence, dedup, history)) = if self.conversations_inline {
            let conversations: Conversations = next(&mut seq, "conversations")?;
            (conversations, rest(&mut seq)?)
        } else {
            let section: &[u8] = next(&mut seq, "conversations")?;
            let decode_conversations = || postcard::from_bytes::<Conversations>(section);
            // The messages' text borrows from the same backing there.
            let backing = text::current_backing();
            std::thread::scope(|scope| {
                // A thread that cannot be spawned only costs the overlap.
                let spawned = std::thread::Builder::new()
                    .name("decode-conversations".into())
                    .spawn_scoped(scope, move || {
                        text::borrowing_from(backing, decode_conversations)
                    })
                    .ok();
                let rest = rest(&mut seq);
                let conversations = match spawned {
                    Some(thread) => thread
                        .join()
                        .map_err(|_| de::Error::custom("decoding the conversations panicked"))?,
                    None => decode_conversations(),
                }
                .map_err(|e| de::Error::custom(format!("conversations: {e}")))?;
                Ok::<_, A::Error>((conversations, rest?))
            })?
        };
        let replicas = if self.with_replicas {
            next(&mut seq, "replica incarnations")?
        } else {
            Default::default()
        };
        Ok(ChatState {
            replicas,
            now_ms,
            event_seq,
            accounts,
            sessions,
            conversations,
            presence,
            dedup,
            history,
        })
    }
}

/// Bytes holding a nested postcard encoding, written as one byte string.
/// Read back as `&[u8]`, borrowed from the input: snapshots are always
/// decoded from a slice.
struct Section<'a>(&'a [u8]);

impl Serialize for Section<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[cfg(test)]
impl ChatState {
    /// This state in the previous layout, as
    /// [`deserialize_previous_layout`](Self::deserialize_previous_layout) reads it.
    pub fn legacy_encoding(&self) -> Vec<u8> {
        postcard::to_allocvec(&(
            self.now_ms,
            self.event_seq,
            &self.accounts,
            &self.sessions,
            &self.conversations,
            &self.presence,
            &self.dedup,
            &self.history,
        ))
        .expect("a chat state always encodes")
    }
}
