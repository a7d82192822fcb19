//! What goes into the replicated log, and what applying it returns.
//!
//! Every replica applies the same [`Batch`]es in the same order, so everything
//! nondeterministic (wall-clock time, password hashes, session tokens, the
//! proposing replica's id) is decided *before* proposal and written into the
//! entry. The state machine (`crate::state`) only ever reads these values.

use serde::{Deserialize, Serialize};

/// Ids handed out by the state machine; monotonic and never reused.
pub type UserId = u64;
pub type ConversationId = u64;
pub type MessageId = u64;

/// SHA-256 of a session token. Only the hash is replicated, so a leaked log or
/// snapshot does not leak usable tokens.
pub type TokenHash = [u8; 32];

/// A client-generated id that makes a write idempotent across retries and
/// replicas. Bounded to [`MAX_REQUEST_ID_LEN`] bytes by the services.
pub type RequestId = String;

pub const MAX_REQUEST_ID_LEN: usize = 64;
pub const MAX_USERNAME_LEN: usize = 32;
pub const MAX_BODY_BYTES: usize = 4096;
pub const MAX_GROUP_NAME_LEN: usize = 64;
/// Longest password hash `apply` stores. An argon2id PHC string with the
/// default parameters is under 100 bytes; the rest is room for stronger
/// parameters, not for payloads.
pub const MAX_PASSWORD_HASH_LEN: usize = 256;
/// How long a `SubscriptionOpened` keeps its replica's presence lease alive
/// when no `PresenceLease` renews it. Replicas renew every third of this.
pub const PRESENCE_LEASE_MS: u64 = 9_000;
/// How long the state machine remembers a request id (by entry timestamp).
pub const DEDUP_WINDOW_MS: u64 = 15 * 60 * 1000;

/// The payload of one log entry: every proposal gathered while the previous
/// entry was being appended, stamped once with the leader's clock.
///
/// `ts_ms` is the proposer's wall clock (Unix ms). The state machine clamps it
/// so that applied time never goes backwards across leader changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Batch {
    pub ts_ms: u64,
    pub proposals: Vec<Proposal>,
}

/// One client write (or one replica housekeeping action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// `None` for housekeeping commands that need no deduplication.
    pub request_id: Option<RequestId>,
    pub command: Command,
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The direct conversation with this user (created on first message).
    User(String),
    /// The group with this name (case-insensitive).
    Group(String),
    Conversation(ConversationId),
}

/// A state-machine command. Commands that act for a user carry the hash of
/// the session token; the state machine resolves and checks it at the entry's
/// timestamp, so a revoked or expired session is refused deterministically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `password_hash` is an argon2id PHC string computed by the receiving
    /// replica.
    CreateAccount {
        username: String,
        password_hash: String,
    },
    /// Opens a session. The receiving replica verified the password against
    /// `verified_hash`; apply refuses if the account's hash has changed since.
    CreateSession {
        username: String,
        verified_hash: String,
        token_hash: TokenHash,
        expires_ms: u64,
    },
    EndSession {
        session: TokenHash,
    },
    ChangePassword {
        session: TokenHash,
        verified_hash: String,
        new_hash: String,
    },
    DeleteAccount {
        session: TokenHash,
        verified_hash: String,
    },
    Send {
        session: TokenHash,
        target: Target,
        body: String,
    },
    CreateGroup {
        session: TokenHash,
        name: String,
        members: Vec<String>,
    },
    AddMember {
        session: TokenHash,
        conversation: ConversationId,
        username: String,
    },
    LeaveGroup {
        session: TokenHash,
        conversation: ConversationId,
    },
    /// Marks every message up to and including `up_to` read.
    MarkRead {
        session: TokenHash,
        conversation: ConversationId,
        up_to: MessageId,
    },
    /// Returns the oldest `limit` unread messages (in one conversation, or
    /// across all when `conversation` is `None`) and marks them read.
    ReadUnread {
        session: TokenHash,
        conversation: Option<ConversationId>,
        limit: u32,
    },
    DeleteMessages {
        session: TokenHash,
        ids: Vec<MessageId>,
    },
    /// A client opened a live subscription on `replica`.
    SubscriptionOpened {
        replica: u64,
        subscription: u64,
        session: TokenHash,
    },
    SubscriptionClosed {
        replica: u64,
        subscription: u64,
    },
    /// `replica` still holds its subscriptions until `until_ms`. Subscriptions
    /// of a replica whose lease has passed (at some entry's timestamp) are
    /// dropped, which is how presence recovers from a dead replica.
    PresenceLease {
        replica: u64,
        until_ms: u64,
    },
    /// `replica` (re)started: every subscription it held before is gone.
    ReplicaStarted {
        replica: u64,
    },
    /// No-op carrying only the batch timestamp; the leader proposes it to let
    /// expired presence leases take effect when nothing else is written.
    Tick,
    /// `replica` runs on the storage `incarnation` (see
    /// `server::incarnation`). Another incarnation already recorded for it
    /// is replaced only when `replace` (the replica was started with
    /// `--join`); otherwise the command is refused and the replica stops.
    RecordIncarnation {
        replica: u64,
        incarnation: Incarnation,
        replace: bool,
    },
    /// Raises the state machine's rules to `version` (never lowers them):
    /// behaviour that changed between releases changes at this entry, so
    /// that every replica applies the log before it the old way and the
    /// log after it the new way, whatever checkpoint it replays from. See
    /// [`crate::state::RULES`].
    SetRules {
        version: u32,
    },
    /// Replaces the text of one of the caller's own messages; it keeps its
    /// id and place, and is marked edited at the entry's state time.
    EditMessage {
        session: TokenHash,
        id: MessageId,
        body: String,
    },
    /// `Send` of a message that answers `reply_to`, a message of the same
    /// conversation. (A new command, so that `Send` entries already in
    /// logs keep their encoding.)
    SendReply {
        session: TokenHash,
        target: Target,
        body: String,
        reply_to: MessageId,
    },
    /// Toggles the caller's reaction to message `id` (of a conversation
    /// they belong to): adds `emoji`, removes it if it is already theirs,
    /// or replaces their other one.
    React {
        session: TokenHash,
        id: MessageId,
        emoji: String,
    },
}

/// Longest reaction, in bytes (an emoji with skin tone and joiners fits).
pub const MAX_EMOJI_BYTES: usize = 32;

/// A replica storage's random id.
pub type Incarnation = [u8; 16];

/// Error classes that map one-to-one onto gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
}

/// A refused command. Deterministic: every replica produces the same error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ChatError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ChatError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }
}

/// What an applied command returns to its proposer.
pub type CommandResult = Result<Outcome, ChatError>;

/// A user account as seen by clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: UserId,
    pub username: String,
    pub online: bool,
    pub last_seen_ms: u64,
    pub created_ms: u64,
}

/// A message as the state machine answers and emits it (converted to the
/// wire type only in `api::convert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender_id: UserId,
    pub sender: String,
    pub body: String,
    pub sent_ms: u64,
    /// Log index of the entry that committed the message.
    pub index: u64,
    /// State time of its last edit; 0 = never edited.
    pub edited_at_ms: u64,
    /// The message it answers (same conversation); 0 = none.
    pub reply_to: MessageId,
    /// Reactions by emoji.
    pub reactions: Vec<ReactionView>,
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionView {
    pub emoji: String,
    /// Who reacted with it (names as they were), by user id.
    pub users: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A conversation as seen by one of its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// Group name, or the peer's username for a direct conversation.
    pub name: String,
    pub members: Vec<String>,
    pub unread: u64,
    pub last_message_id: MessageId,
    pub last_activity_ms: u64,
    pub read_up_to: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Account(AccountView),
    Session {
        account: AccountView,
        unread: u64,
        expires_ms: u64,
    },
    Sent(MessageView),
    Conversation(ConversationView),
    Messages {
        messages: Vec<MessageView>,
        remaining: u64,
    },
    Deleted(u32),
    /// A message as it is after the command changed it (an edit).
    Changed(MessageView),
}

/// A user-visible event produced by applying a command. The state machine
/// numbers events with a replicated counter, so `seq` is identical on every
/// replica and serves as the subscription resume cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    pub seq: u64,
    pub index: u64,
    /// Users who should receive it.
    pub recipients: Vec<UserId>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Message(MessageView),
    MessagesDeleted {
        conversation: ConversationId,
        ids: Vec<MessageId>,
    },
    ReadReceipt {
        conversation: ConversationId,
        reader: String,
        up_to: MessageId,
    },
    /// The subscription service renders each recipient's current view of
    /// `conversation` from the state when it sends the event.
    Membership {
        conversation: ConversationId,
        user: String,
        change: MembershipChange,
    },
    Presence {
        user: String,
        online: bool,
        last_seen_ms: u64,
    },
    /// These sessions of the recipient ended at this entry (log-out,
    /// password change, account deletion): a subscription opened with one
    /// of them ends here, before any later event. Never sent to clients.
    SessionsEnded {
        sessions: Vec<TokenHash>,
    },
    /// A message changed in place (an edit): the message as it is now.
    Edited(MessageView),
    /// A message's reactions changed: the message as it is now.
    Reacted(MessageView),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    Created,
    Joined,
    Left,
    AccountDeleted,
}

impl MembershipChange {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipChange::Created => "created",
            MembershipChange::Joined => "joined",
            MembershipChange::Left => "left",
            MembershipChange::AccountDeleted => "account_deleted",
        }
    }
}
