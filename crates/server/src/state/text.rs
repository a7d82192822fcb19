//! Message text: an owned string, or a slice of immutable shared bytes.
//!
//! Text that `apply` writes is owned. Storage restores a snapshot's
//! messages as slices of the mapped snapshot file instead of copies (see
//! `storage::snapshot_state`, which also implements `Deserialize` for
//! [`Text`]). Either way a `Text` reads as a `&str`, compares and encodes as
//! the string it reads, so the state machine never sees the difference.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

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

    /// `s` as a slice of `backing`, if it lies inside it and is not empty.
    pub fn borrowed(backing: &Arc<Backing>, s: &str) -> Option<Text> {
        let bytes = backing.bytes();
        let start = (s.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
        let len = u32::try_from(s.len()).ok()?;
        (start + s.len() <= bytes.len() && !s.is_empty()).then(|| {
            Text(Repr::Borrowed {
                backing: backing.clone(),
                start,
                len,
            })
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
