//! The bytes of a snapshot, as sent to a follower and (memory mode) kept in
//! RAM, and the *applied blob* a disk-mode checkpoint stores next to the
//! history.
//!
//! ```text
//! snapshot data  = format byte (6) ++ applied blob ++ records
//! applied blob   = postcard (last_applied, membership) ++ postcard core bytes
//! records        = one postcard `Record` after another, to the end
//! ```
//!
//! The core is `ChatState::encode_core`; the records are the history store's
//! ([`Store::records`](crate::state::store::Store::records) order). Data of
//! formats 1-5 (whole-state layouts of earlier releases) is refused with a
//! message saying what to do.
//!
//! Reading is streamed: a snapshot of millions of messages is never whole in
//! RAM on the receiving side.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;

use super::raft_types::{LogId, StoredMembership};
use super::state_store::AppliedState;
use crate::state::store::{MemoryStore, Record};
use crate::state::ChatState;

/// The first byte of snapshot data in the current format.
pub const DATA_FORMAT: u8 = 6;

/// An applied blob's parts.
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub core: Vec<u8>,
}

impl Applied {
    /// The parts of `state` (encodes its core).
    pub fn of(state: &AppliedState) -> Result<Applied, postcard::Error> {
        Ok(Applied {
            last_applied: state.last_applied,
            membership: state.membership.clone(),
            core: state.chat.encode_core()?,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let out = postcard::to_stdvec(&(&self.last_applied, &self.membership))?;
        postcard::to_extend(self.core.as_slice(), out)
    }

    pub fn decode(blob: &[u8]) -> Result<Applied, String> {
        let mut reader = Reader::new(blob);
        reader.applied()
    }
}

/// Writes snapshot data: `applied` is an encoded [`Applied`]. Returns the
/// bytes written.
pub fn write<E: Into<io::Error>>(
    out: &mut impl Write,
    applied: &[u8],
    records: impl Iterator<Item = Result<Record, E>>,
) -> io::Result<u64> {
    out.write_all(&[DATA_FORMAT])?;
    out.write_all(applied)?;
    let mut written = 1 + applied.len() as u64;
    let mut bytes = Vec::new();
    for record in records {
        bytes.clear();
        bytes = postcard::to_extend(&record.map_err(Into::into)?, bytes).map_err(invalid)?;
        out.write_all(&bytes)?;
        written += bytes.len() as u64;
    }
    Ok(written)
}

/// The whole state as snapshot data, in RAM (memory mode).
pub fn encode(state: &AppliedState) -> io::Result<Vec<u8>> {
    let applied = Applied::of(state)
        .map_err(invalid)?
        .encode()
        .map_err(invalid)?;
    let mut out = Vec::new();
    let records = state.chat.store().records().map(Ok::<_, io::Error>);
    write(&mut out, &applied, records)?;
    Ok(out)
}

/// The state that snapshot data holds, over a [`MemoryStore`].
pub fn decode(data: &[u8]) -> Result<AppliedState, String> {
    let mut reader = Reader::new(data);
    let applied = reader.start()?;
    let store = MemoryStore::from_records(reader.records().collect::<Result<Vec<_>, _>>()?);
    let chat = ChatState::from_core(&applied.core, Box::new(store))
        .map_err(|e| format!("snapshot core: {e}"))?;
    Ok(AppliedState {
        last_applied: applied.last_applied,
        membership: applied.membership,
        chat,
    })
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads snapshot data from a stream, one value at a time.
pub struct Reader<R> {
    input: R,
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    at: usize,
    eof: bool,
}

/// The most one value may take: a record is a few KiB, the core grows
/// with users and conversations.
const MAX_VALUE: usize = 1 << 30;

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader {
            input,
            buf: Vec::new(),
            at: 0,
            eof: false,
        }
    }

    /// Checks the format byte and reads the applied blob.
    pub fn start(&mut self) -> Result<Applied, String> {
        let [format] = self.take(|b| match b.split_first() {
            Some((&f, rest)) => Ok(([f], rest)),
            None => Err(postcard::Error::DeserializeUnexpectedEnd),
        })?;
        if format != DATA_FORMAT {
            return Err(format!(
                "snapshot data format {format} was written by an earlier chatd (this one reads \
                 format {DATA_FORMAT}); start this replica with an empty --server-storage \
                 directory and let it catch up from the others"
            ));
        }
        self.applied()
    }

    fn applied(&mut self) -> Result<Applied, String> {
        let (last_applied, membership) = self
            .next::<(Option<LogId>, StoredMembership)>()
            .map_err(|e| format!("snapshot header: {e}"))?;
        let core = self
            .take(|b| {
                postcard::take_from_bytes::<&[u8]>(b).map(|(core, rest)| (core.to_vec(), rest))
            })
            .map_err(|e| format!("snapshot core: {e}"))?;
        Ok(Applied {
            last_applied,
            membership,
            core,
        })
    }

    /// The records, after [`start`](Self::start); ends after an error.
    pub fn records(&mut self) -> impl Iterator<Item = Result<Record, String>> + '_ {
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let next = match self.at_end() {
                Ok(true) => return None,
                Ok(false) => self
                    .next::<Record>()
                    .map_err(|e| format!("snapshot record: {e}")),
                Err(e) => Err(format!("reading the snapshot: {e}")),
            };
            failed = next.is_err();
            Some(next)
        })
    }

    fn at_end(&mut self) -> io::Result<bool> {
        if self.at == self.buf.len() && !self.eof {
            self.fill()?;
        }
        Ok(self.at == self.buf.len())
    }

    fn next<T: DeserializeOwned>(&mut self) -> Result<T, String> {
        self.take(|b| postcard::take_from_bytes::<T>(b))
    }

    /// Decodes one value with `decode`, reading more input while it runs
    /// short.
    fn take<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> postcard::Result<(T, &[u8])>,
    ) -> Result<T, String> {
        loop {
            match decode(&self.buf[self.at..]) {
                Ok((value, rest)) => {
                    self.at = self.buf.len() - rest.len();
                    return Ok(value);
                }
                Err(postcard::Error::DeserializeUnexpectedEnd) if !self.eof => {
                    if self.buf.len() - self.at > MAX_VALUE {
                        return Err(format!("a value longer than {MAX_VALUE} bytes"));
                    }
                    self.fill()
                        .map_err(|e| format!("reading the snapshot: {e}"))?;
                }
                Err(postcard::Error::DeserializeUnexpectedEnd) => {
                    return Err("the data ends inside a value".into())
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reads more input after the unread bytes (at least doubling what is
    /// unread, so a long value takes few reads).
    fn fill(&mut self) -> io::Result<()> {
        self.buf.drain(..self.at);
        self.at = 0;
        let unread = self.buf.len();
        let want = (unread * 2).max(64 << 10);
        self.buf.resize(want, 0);
        let mut filled = unread;
        while filled < want {
            match self.input.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(filled);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(filled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data` a few bytes at a time, as a socket or a file might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_read_in_small_pieces_decodes_like_the_bytes() {
        use crate::state::store::{Message, Store};
        let mut store = MemoryStore::default();
        for id in 1..=500u64 {
            let mut message =
                Message::new(1, "ann", &"x".repeat((id as usize * 37) % 3000), id, id);
            // Some edited: their records are the extended variant.
            if id % 7 == 0 {
                message.ext.edited_at_ms = id + 1;
            }
            if id % 5 == 0 {
                message.ext.reply_to = id - 1;
            }
            store.put_message(id % 4, id, message);
        }
        let state = AppliedState {
            last_applied: None,
            membership: StoredMembership::default(),
            chat: ChatState::with_store(Box::new(store)),
        };
        let data = encode(&state).unwrap();
        let mut reader = Reader::new(Trickle(&data));
        let applied = reader.start().unwrap();
        let records: Vec<Record> = reader.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 500);
        assert!(records.into_iter().eq(state.chat.store().records()));
        assert_eq!(applied.core, state.chat.encode_core().unwrap());

        // Cut short inside a record: an error, not a shorter history.
        let mut reader = Reader::new(Trickle(&data[..data.len() - 5]));
        reader.start().unwrap();
        let last = reader.records().last().unwrap();
        assert!(last.unwrap_err().contains("ends inside"));

        let mut older = data.clone();
        older[0] = 5;
        let err = Reader::new(older.as_slice()).start().err().unwrap();
        assert!(err.contains("format 5"), "{err}");
    }
}
