//! Plain data the UI works with.
//!
//! A message is the client library's own [`Message`] and the connection its
//! [`ConnectionState`]: plain structs already, so the UI takes them as they
//! are. The types below exist because the UI needs another shape (a
//! conversation kind as an enum, a status or its error, a classified
//! failure); `net.rs` converts replies into them. Nothing here needs a
//! cluster, so state, rendering and tests are built from plain values.

pub use raftchat_client::{ConnectionState, Message};
/// One emoji's reactions to a [`Message`], as the server reports them.
pub use raftchat_proto::Reaction;

/// Whether a conversation is between two people or a named group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// A direct conversation; its name is the peer's user name.
    Direct,
    /// A group; its name is the group's name.
    Group,
}

/// One of the user's conversations as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    pub id: u64,
    pub kind: ConversationKind,
    /// The group's name, or the peer's user name for a direct conversation.
    pub name: String,
    pub members: Vec<String>,
    pub unread: u64,
    pub last_message_id: u64,
    /// Unix milliseconds.
    pub last_activity_ms: u64,
    /// The newest message id the user has read.
    pub read_up_to: u64,
}

/// An account as listed by the accounts browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub username: String,
    pub online: bool,
    /// Unix milliseconds; 0 when never seen.
    pub last_seen_ms: u64,
}

/// What one replica says about itself (`Cluster.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaStatus {
    pub id: u64,
    pub url: String,
    /// "leader", "follower", "candidate", "learner", "shutdown".
    pub role: String,
    pub term: u64,
    /// 0 when the replica knows no leader.
    pub leader_id: u64,
    pub leader_url: String,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Whether the replica sees a working quorum; `None` from replicas too
    /// old to say.
    pub has_quorum: Option<bool>,
}

impl ReplicaStatus {
    /// The role as the cluster panel shows it: marked when the replica sees
    /// no quorum (a leader cut off from its majority still says "leader").
    pub fn role_label(&self) -> String {
        match self.has_quorum {
            Some(false) => format!("{} (no quorum)", self.role),
            _ => self.role.clone(),
        }
    }
}

/// One configured replica and its answer to a status query, or why it gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The address as configured (`host:port`).
    pub server: String,
    pub status: Result<ReplicaStatus, String>,
}

/// The classes of failure the UI reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No quorum / no replica answered in time: worth retrying later.
    Unavailable,
    /// Wrong password, or the session is gone.
    Unauthenticated,
    AlreadyExists,
    NotFound,
    PermissionDenied,
    InvalidArgument,
    Other,
}

/// A failed network call, classified, with the server's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub kind: ErrorKind,
    pub message: String,
}

impl NetError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying later (same request id) may succeed.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
