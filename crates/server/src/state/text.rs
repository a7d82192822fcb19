//! Message text: owned, or borrowed from the snapshot it was restored from.
//!
//! A cold restart used to copy every message's body and sender name out of
//! the snapshot into fresh heap memory: most of the memory a restore
//! touches, and on a VM faulting in fresh memory was over half of the
//! decode's time (BENCHMARKS.md). Decoding inside [`borrowing_from`] a
//! snapshot file's mapping, a [`Text`] instead points into that mapping,
//! which the snapshot's checksum has just read into the page cache, and
//! keeps it mapped while any message refers to it. Text that `apply`
//! writes is owned, as before. Either way a `Text` reads as a `&str` and
//! encodes as a string, so the snapshot format does not change.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that never change while mapped, such as a snapshot file's mapping
/// (snapshot files are replaced, never modified in place).
pub struct Backing(Box<dyn AsRef<[u8]> + Send + Sync>);

impl Backing {
    pub fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Arc<Backing> {
        Arc::new(Backing(Box::new(bytes)))
    }

    pub fn bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// A string: a message's body or its sender's name.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Box<str>),
    /// `len` bytes at `start` in `backing`, checked to be UTF-8 when decoded.
    Borrowed {
        backing: Arc<Backing>,
        start: usize,
        len: u32,
    },
}

/// What a borrowed text reads as if its backing no longer holds UTF-8
/// there, which only a file changed behind this process's back can cause.
const DAMAGED: &str = "\u{FFFD}";

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
pub fn current_backing() -> Option<Arc<Backing>> {
    BACKING.with(|b| b.borrow().clone())
}

impl Text {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Owned(s) => s,
            Repr::Borrowed {
                backing,
                start,
                len,
            } => backing
                .bytes()
                .get(*start..*start + *len as usize)
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .unwrap_or(DAMAGED),
        }
    }

    /// Whether this text points into a snapshot's mapping.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Repr::Borrowed { .. })
    }

    /// `s`, borrowed if it lies in this thread's backing, else copied.
    fn decoded(s: &str) -> Text {
        BACKING.with(|b| {
            let backing = b.borrow();
            let Some(backing) = backing.as_ref() else {
                return Text::from(s);
            };
            let bytes = backing.bytes();
            let base = bytes.as_ptr() as usize;
            let at = s.as_ptr() as usize;
            match (at.checked_sub(base), u32::try_from(s.len())) {
                (Some(start), Ok(len)) if start + s.len() <= bytes.len() && !s.is_empty() => {
                    Text(Repr::Borrowed {
                        backing: backing.clone(),
                        start,
                        len,
                    })
                }
                _ => Text::from(s),
            }
        })
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Repr::Owned(s.into()))
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
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
        Ok(Text::decoded(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
