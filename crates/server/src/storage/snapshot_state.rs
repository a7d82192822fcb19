//! How a [`ChatState`] is written into snapshots, and read back fast: on
//! two threads, with message text borrowed from the snapshot's mapping.
//!
//! This is restart-speed machinery, kept out of the pure state machine:
//! `state` only defines the data; this module alone knows the layout, the
//! threads and the thread-local below.
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
//! [`deserialize_without_replicas`] (format 4: no incarnations) and
//! [`deserialize_previous_layout`] (every field inline, as snapshot data
//! carried it before its format byte, see `storage::state_store`), so
//! storage written by earlier releases restores.
//!
//! # Borrowed text
//!
//! A cold restart used to copy every message's body and sender name out of
//! the snapshot into fresh heap memory: most of the memory a restore
//! touches, and on a VM faulting in fresh memory was over half of the
//! decode's time (BENCHMARKS.md). Decoding inside [`borrowing_from`] a
//! snapshot file's mapping, a [`Text`] instead points into that mapping,
//! which the snapshot's checksum has just read into the page cache, and
//! keeps it mapped while any message refers to it. The snapshot format does
//! not change.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{self, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::state::text::{Backing, Text};
use crate::state::{Accounts, ChatState, Conversations, Dedup, Presence, Sessions};

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

/// Reads format 4: the current layout without the replica incarnations at
/// its end.
pub fn deserialize_without_replicas<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ChatState, D::Error> {
    deserializer.deserialize_tuple(
        FIELDS_WITHOUT_REPLICAS,
        ChatStateVisitor {
            conversations_inline: false,
            with_replicas: false,
        },
    )
}

/// Reads the previous layout: the same fields, the conversations inline
/// (decoded on the calling thread).
pub fn deserialize_previous_layout<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ChatState, D::Error> {
    deserializer.deserialize_tuple(
        FIELDS_WITHOUT_REPLICAS,
        ChatStateVisitor {
            conversations_inline: true,
            with_replicas: false,
        },
    )
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
            let backing = current_backing();
            std::thread::scope(|scope| {
                // A thread that cannot be spawned only costs the overlap.
                let spawned = std::thread::Builder::new()
                    .name("decode-conversations".into())
                    .spawn_scoped(scope, move || borrowing_from(backing, decode_conversations))
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

thread_local! {
    static BACKING: RefCell<Option<Arc<Backing>>> = const { RefCell::new(None) };
}

/// Runs `decode` on this thread with every decoded [`Text`] that lies in
/// `backing` borrowed from it instead of copied.
pub fn borrowing_from<R>(backing: Option<Arc<Backing>>, decode: impl FnOnce() -> R) -> R {
    /// Puts the previous backing back, even if `decode` panics.
    struct Restore(Option<Arc<Backing>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            BACKING.with(|b| *b.borrow_mut() = previous);
        }
    }
    let _restore = Restore(BACKING.with(|b| b.replace(backing)));
    decode()
}

/// The backing this thread decodes from, to hand to a helper thread.
fn current_backing() -> Option<Arc<Backing>> {
    BACKING.with(|b| b.borrow().clone())
}

/// `s`, borrowed if it lies in this thread's backing, else copied.
fn decoded(s: &str) -> Text {
    BACKING.with(|b| {
        b.borrow()
            .as_ref()
            .and_then(|backing| Text::borrowed(backing, s))
            .unwrap_or_else(|| Text::from(s))
    })
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text, E> {
        Ok(decoded(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::from(s))
    }
}

/// `state` in the previous layout, as [`deserialize_previous_layout`] reads
/// it.
#[cfg(test)]
pub fn legacy_encoding(state: &ChatState) -> Vec<u8> {
    postcard::to_allocvec(&(
        state.now_ms,
        state.event_seq,
        &state.accounts,
        &state.sessions,
        &state.conversations,
        &state.presence,
        &state.dedup,
        &state.history,
    ))
    .expect("a chat state always encodes")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::state::tests::{replay, script};

    #[derive(Serialize, Deserialize)]
    struct Pair(Text, Text);

    #[test]
    fn text_inside_the_backing_is_borrowed_and_reads_the_same() {
        let encoded = postcard::to_allocvec(&("hello", "")).unwrap();
        let backing = Backing::new(encoded.clone());
        let decoded: Pair = borrowing_from(Some(backing.clone()), || {
            postcard::from_bytes(backing.bytes()).unwrap()
        });
        // Text outside the backing's bytes is copied, even while borrowing.
        let copied: Pair = borrowing_from(Some(backing.clone()), || {
            postcard::from_bytes(&encoded).unwrap()
        });
        assert!(!copied.0.is_borrowed());
        assert!(decoded.0.is_borrowed());
        assert_eq!(decoded.0, "hello");
        assert!(!decoded.1.is_borrowed(), "empty text needs no backing");
        assert_eq!(decoded.1, "");
        // The borrow keeps the backing alive, and encodes as the string it reads.
        drop(backing);
        assert_eq!(postcard::to_allocvec(&decoded).unwrap(), encoded);
        // Outside `borrowing_from`, text is owned.
        let owned: Pair = postcard::from_bytes(&encoded).unwrap();
        assert!(!owned.0.is_borrowed());
        assert!(current_backing().is_none());
    }

    #[test]
    fn conversations_are_a_nested_section() {
        let (s, _, _) = replay(&script("sections"));
        let bytes = postcard::to_allocvec(&s).unwrap();
        // Whatever else changes, the conversations' own encoding appears whole
        // inside the state's, so a restore can hand it to another thread.
        let section = postcard::to_allocvec(&s.conversations).unwrap();
        assert!(
            section.windows(8).any(|w| w == b"sections"),
            "holds the message"
        );
        assert!(bytes.windows(section.len()).any(|w| w == section));
        // A truncated state is an error, not a panic or a partial state.
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(postcard::from_bytes::<ChatState>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn the_previous_layout_still_decodes() {
        let (s, _, _) = replay(&script("legacy"));
        let bytes = legacy_encoding(&s);
        assert_ne!(bytes, postcard::to_allocvec(&s).unwrap());
        let back =
            deserialize_previous_layout(&mut postcard::Deserializer::from_bytes(&bytes)).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn restored_message_text_borrows_from_the_snapshot() {
        let (s, _, _) = replay(&script("borrowed"));
        let texts = |state: &ChatState| -> Vec<(bool, String)> {
            let conversations = state.conversations.by_id_for_tests();
            conversations
                .flat_map(|c| c.messages.values())
                .flat_map(|m| [&m.sender, &m.body])
                .map(|t| (t.is_borrowed(), t.to_string()))
                .collect()
        };
        let owned = texts(&s);
        assert!(owned.iter().any(|(_, t)| t == "borrowed"));
        assert!(owned.iter().all(|(borrowed, _)| !borrowed));
        // Both layouts, the current one decoding its messages on a second
        // thread: every text points into the backing, and reads the same.
        let current = postcard::to_allocvec(&s).unwrap();
        for (legacy, bytes) in [(false, current.clone()), (true, legacy_encoding(&s))] {
            let backing = Backing::new(bytes);
            let back: ChatState = borrowing_from(Some(backing.clone()), || {
                let mut de = postcard::Deserializer::from_bytes(backing.bytes());
                if legacy {
                    deserialize_previous_layout(&mut de)
                } else {
                    ChatState::deserialize(&mut de)
                }
            })
            .unwrap();
            drop(backing);
            assert_eq!(back, s, "legacy layout: {legacy}");
            let restored = texts(&back);
            assert!(
                restored.iter().all(|(borrowed, _)| *borrowed),
                "{restored:?}"
            );
            let strings =
                |v: &[(bool, String)]| v.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
            assert_eq!(strings(&restored), strings(&owned));
            assert_eq!(postcard::to_allocvec(&back).unwrap(), current);
        }
    }
}
