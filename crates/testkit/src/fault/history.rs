//! The record of a run: every client operation with its invocation and
//! completion times and its outcome, and every nemesis event. Written as
//! JSON lines so a failed run can be studied (and re-run from its seed).

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// Microseconds since the start of the run, on the monotonic clock.
pub type Micros = u64;

/// The run's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// One attempt of a logical send; retries after an unknown outcome reuse
    /// the request id (and the body) with `attempt` counting up.
    Send {
        conv: u64,
        body: String,
        request_id: String,
        attempt: u32,
        /// The message it answers; 0 = none.
        #[serde(default, skip_serializing_if = "is_zero")]
        reply_to: u64,
    },
    /// The newest page (`limit` messages) of a conversation's history.
    Read {
        conv: u64,
        limit: u32,
    },
    MarkRead {
        conv: u64,
        up_to: u64,
    },
    /// Deletes the client's own messages (by id) in `conv`.
    Delete {
        conv: u64,
        ids: Vec<u64>,
    },
    /// One attempt of a logical edit of the client's own message `id`:
    /// `text` is the sent body, [`EDIT_MARK`] and a suffix unique to this
    /// edit. Retries reuse the request id, like sends.
    Edit {
        conv: u64,
        id: u64,
        text: String,
        request_id: String,
        attempt: u32,
    },
    /// One attempt of toggling the client's reaction `emoji` to message
    /// `id`; retries reuse the request id.
    React {
        conv: u64,
        id: u64,
        emoji: String,
        request_id: String,
        attempt: u32,
    },
}

/// Separates a message's sent body from the suffix an edit added; bodies
/// never contain it.
pub const EDIT_MARK: char = '~';

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Send { .. } => "send",
            Request::Read { .. } => "read",
            Request::MarkRead { .. } => "mark_read",
            Request::Delete { .. } => "delete",
            Request::Edit { .. } => "edit",
            Request::React { .. } => "react",
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Read { .. })
    }
}

/// A message as a reply showed it: its body as sent, and the suffix of the
/// edit whose text it showed, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub id: u64,
    pub body: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub edit: String,
    /// Its reactions: each emoji with who reacted, as the server lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<(String, Vec<String>)>,
    /// The message it answers; 0 = none.
    #[serde(skip_serializing_if = "is_zero")]
    pub reply_to: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Seen {
    /// A message showing `text`: split at [`EDIT_MARK`].
    pub fn of(id: u64, text: &str) -> Seen {
        let (body, edit) = text.split_once(EDIT_MARK).unwrap_or((text, ""));
        Seen {
            id,
            body: body.to_string(),
            edit: edit.to_string(),
            reactions: Vec::new(),
            reply_to: 0,
        }
    }

    /// A message as the server returned it.
    pub fn of_message(m: &raftchat_proto::Message) -> Seen {
        Seen {
            reactions: m
                .reactions
                .iter()
                .map(|r| (r.emoji.clone(), r.users.clone()))
                .collect(),
            reply_to: m.reply_to,
            ..Seen::of(m.id, &m.body)
        }
    }

    /// The emoji `user` reacted with, if any.
    pub fn reaction_of(&self, user: &str) -> Option<&str> {
        self.reactions
            .iter()
            .find(|(_, users)| users.iter().any(|u| u == user))
            .map(|(emoji, _)| emoji.as_str())
    }

    /// The text it showed.
    pub fn text(&self) -> String {
        if self.edit.is_empty() {
            self.body.clone()
        } else {
            format!("{}{EDIT_MARK}{}", self.body, self.edit)
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A send (or an edit) was applied; the message as it then was.
    Sent { message: Seen },
    /// A history page, newest first; `more` when older messages exist.
    Page { messages: Vec<Seen>, more: bool },
    /// Any other write succeeded.
    Done,
    /// The server answered with an error: the operation did not take
    /// effect.
    Failed { error: String },
    /// No answer in time (or `UNAVAILABLE`): it may or may not take effect.
    Unknown { error: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        !matches!(self, Outcome::Failed { .. } | Outcome::Unknown { .. })
    }

    /// Whether the operation may have taken effect.
    pub fn may_have_applied(&self) -> bool {
        !matches!(self, Outcome::Failed { .. })
    }

    /// The outcome of a client error. `UNAVAILABLE` and deadline errors say
    /// nothing about whether a write was applied (an earlier attempt may
    /// have committed); any other status is the server's definite answer.
    pub fn from_error(err: &raftchat_client::ClientError) -> Self {
        use tonic::Code;
        let error = err.to_string();
        match err.code {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                Outcome::Unknown { error }
            }
            _ => Outcome::Failed { error },
        }
    }
}

/// One operation: who, what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    /// Unique within the run, in completion order per client.
    pub id: u64,
    pub client: usize,
    pub user: String,
    pub invoke: Micros,
    pub complete: Micros,
    #[serde(flatten)]
    pub request: Request,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Something the nemesis did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NemesisEvent {
    pub at: Micros,
    /// The fault kind (for counting): `kill`, `pause`, `partition`, ...
    pub kind: String,
    pub detail: String,
}

/// One line of the history file.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Run {
        seed: u64,
        detail: &'a str,
    },
    Op(&'a Op),
    Nemesis(&'a NemesisEvent),
    Final {
        replica: u64,
        conv: u64,
        messages: &'a [Seen],
    },
}

/// Everything a run recorded, ready for the checker and the history file.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub seed: u64,
    /// The configuration and schedule, human-readable.
    pub describe: String,
    pub ops: Vec<Op>,
    pub nemesis: Vec<NemesisEvent>,
}

impl History {
    /// Writes the history as JSON lines: a header, every operation and
    /// nemesis event in time order, then each replica's final histories.
    pub fn write_jsonl(
        &self,
        path: &Path,
        finals: &std::collections::BTreeMap<u64, std::collections::BTreeMap<u64, Vec<Seen>>>,
    ) -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        let mut write = |line: &Line| -> io::Result<()> {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")
        };
        write(&Line::Run {
            seed: self.seed,
            detail: &self.describe,
        })?;
        let mut ops: Vec<&Op> = self.ops.iter().collect();
        ops.sort_by_key(|o| (o.invoke, o.id));
        let mut nemesis = self.nemesis.iter().peekable();
        for op in ops {
            while let Some(event) = nemesis.next_if(|e| e.at <= op.invoke) {
                write(&Line::Nemesis(event))?;
            }
            write(&Line::Op(op))?;
        }
        for event in nemesis {
            write(&Line::Nemesis(event))?;
        }
        for (replica, convs) in finals {
            for (conv, messages) in convs {
                write(&Line::Final {
                    replica: *replica,
                    conv: *conv,
                    messages,
                })?;
            }
        }
        out.flush()
    }
}
