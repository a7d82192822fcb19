//! The messages between the outside world and [`App::update`](super::app::App::update):
//! [`AppEvent`]s come in (keys, clock ticks, network results) and
//! [`Effect`]s go out (requests for the network layer).

use crossterm::event::{KeyEvent, MouseEvent};

use super::model::{
    AccountInfo, ConnectionState, ConversationInfo, Message, NetError, ReplicaReport,
};

/// Everything that can change the application state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// Bracketed paste into whatever text field has focus.
    Paste(String),
    /// The newest message of conversation `conversation_id` the last frame
    /// showed whole (`ui::shown_up_to`), for "read when shown".
    Shown {
        conversation_id: u64,
        up_to: u64,
    },
    /// The terminal's size, at start and after every change.
    Resize {
        width: u16,
        height: u16,
    },
    /// The clock: the only source of "now" for the state (spinner, timers).
    Tick {
        now_ms: u64,
    },
    Net(NetEvent),
    /// The outcome of a [`Effect::LoadSaved`] or a failed save (`store.rs`).
    Store(StoreEvent),
}

/// One of the user's own messages waiting to be committed, as kept on
/// disk between runs: its request id goes with it, so a resend after a
/// restart is applied once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub request_id: String,
    pub to: SendTo,
    pub body: String,
    /// The message it answers (0 = none).
    pub reply_to: u64,
}

/// Unsent text of the compose box of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Draft {
    pub to: SendTo,
    pub text: String,
}

/// What the local store (`store.rs`) reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// What an earlier run left unsent for `user`. `problems` are files
    /// that could not be read (set aside) or a store that cannot be used.
    Loaded {
        user: String,
        outbox: Vec<QueuedMessage>,
        drafts: Vec<Draft>,
        problems: Vec<String>,
        /// Whether later saves can work (a state directory is known).
        available: bool,
    },
    /// A save failed: the state is only in memory now.
    SaveFailed { error: String },
}

/// A result or notification from the network layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    SignedIn {
        username: String,
    },
    SignInFailed(NetError),
    Conversations(Vec<ConversationInfo>),
    /// A page of history, oldest first, loaded for `before` (0 = newest page).
    History {
        conversation: ConversationInfo,
        messages: Vec<Message>,
        more: bool,
        before: u64,
    },
    HistoryFailed {
        conversation_id: u64,
        error: NetError,
    },
    /// The cluster committed the outbox message `local_id`.
    Sent {
        local_id: u64,
        message: Message,
    },
    SendFailed {
        local_id: u64,
        error: NetError,
    },
    /// A message arrived on the subscription (ours included).
    MessageArrived(Message),
    /// A message was edited or its reactions changed (the subscription's
    /// `edited` and `reacted` events): the message as it is now.
    MessageChanged(Message),
    /// The cluster committed our edit: the message as the edit left it.
    EditSaved(Message),
    /// Our edit of `message_id` to `body` failed for good.
    EditFailed {
        message_id: u64,
        body: String,
        error: NetError,
    },
    MessagesDeleted {
        conversation_id: u64,
        message_ids: Vec<u64>,
    },
    ReadReceipt {
        conversation_id: u64,
        reader: String,
        up_to: u64,
    },
    /// A conversation was created, joined or left (`change` as on the wire).
    Membership {
        conversation: ConversationInfo,
        user: String,
        change: String,
    },
    Presence {
        user: String,
        online: bool,
        last_seen_ms: u64,
    },
    /// A page of the messages of `conversation_id` matching `query`,
    /// newest first, asked for with `before`.
    SearchResults {
        conversation_id: u64,
        query: String,
        before: u64,
        messages: Vec<Message>,
        more: bool,
    },
    /// `user` is typing in `conversation_id`: show it for `expires_in_ms`
    /// unless their message comes first.
    Typing {
        conversation_id: u64,
        user: String,
        expires_in_ms: u32,
    },
    /// The subscription is live on `server`.
    SubscriptionLive {
        server: String,
    },
    /// The subscription broke and is moving to `server`.
    SubscriptionReconnecting {
        server: String,
        attempt: u32,
        error: String,
    },
    /// Events were missed for good: reload everything.
    Resync,
    /// The subscription ended for good (e.g. the session expired).
    SubscriptionFailed(NetError),
    Connection(ConnectionState),
    Cluster(Vec<ReplicaReport>),
    /// The replica in use answered a probe in `rtt`, or did not (`None`).
    Answer {
        server: String,
        rtt: Option<std::time::Duration>,
    },
    Accounts {
        pattern: String,
        after: String,
        accounts: Vec<AccountInfo>,
        next_after: String,
    },
    /// How many accounts match `pattern`: `None` if counting failed;
    /// `complete` false when counting stopped at a cap (so "at least").
    AccountCount {
        pattern: String,
        count: Option<u64>,
        complete: bool,
    },
    /// Presence of specific accounts, looked up once for direct conversations.
    Presences(Vec<AccountInfo>),
    GroupCreated(ConversationInfo),
    MemberAdded {
        conversation_id: u64,
        username: String,
    },
    MessagesDeletedByMe {
        deleted: u32,
    },
    AccountDeleted,
    /// Some other call failed; `op` names it for the user.
    Failed {
        op: String,
        error: NetError,
    },
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SendTo {
    Conversation(u64),
    /// A direct message to a user we have no conversation with yet.
    User(String),
}

/// A request from the state to the network layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    SignIn {
        username: String,
        password: String,
    },
    /// Create the account, then sign in.
    CreateAccount {
        username: String,
        password: String,
    },
    Subscribe,
    LoadConversations,
    LoadHistory {
        conversation_id: u64,
        before: u64,
    },
    /// `request_id` is fixed per message, so retries are applied once.
    Send {
        local_id: u64,
        request_id: String,
        to: SendTo,
        body: String,
        /// The message it answers (0 = none).
        reply_to: u64,
    },
    /// Replace the text of our message `message_id` (answered by
    /// `EditSaved` or `EditFailed`).
    EditMessage {
        message_id: u64,
        request_id: String,
        body: String,
    },
    /// Toggle our reaction `emoji` on `message_id` (the change arrives as
    /// `MessageChanged`; a failure as `Failed`).
    React {
        message_id: u64,
        request_id: String,
        emoji: String,
    },
    MarkRead {
        conversation_id: u64,
        up_to: u64,
    },
    /// Find the messages of `conversation_id` containing `query`, the
    /// page below `before` (0 = the newest); answered by `SearchResults`
    /// or `Failed`.
    SearchMessages {
        conversation_id: u64,
        query: String,
        before: u64,
    },
    /// Tell the other members we are typing in `conversation_id`. Best
    /// effort: nothing answers it, a failure is dropped.
    Typing {
        conversation_id: u64,
    },
    DeleteMessages {
        message_ids: Vec<u64>,
    },
    ListAccounts {
        pattern: String,
        after: String,
        limit: u32,
    },
    LookupPresence {
        usernames: Vec<String>,
    },
    /// Count the accounts matching `pattern` (answered by `AccountCount`).
    CountAccounts {
        pattern: String,
    },
    CreateGroup {
        name: String,
        members: Vec<String>,
    },
    AddMember {
        conversation_id: u64,
        username: String,
    },
    Logout,
    DeleteAccount {
        password: String,
    },
    /// Read what an earlier run left unsent for `user` (answered at once
    /// with [`StoreEvent::Loaded`]).
    LoadSaved {
        user: String,
    },
    /// Replace `user`'s saved outbox; carried out before the next frame
    /// is drawn, so a message is on disk before it shows as queued.
    SaveOutbox {
        user: String,
        messages: Vec<QueuedMessage>,
    },
    /// Replace `user`'s saved drafts.
    SaveDrafts {
        user: String,
        drafts: Vec<Draft>,
    },
    /// The session is over: let another chat-tui keep the user's files.
    CloseSaved,
    /// Ring the terminal bell.
    Bell,
    /// Announce on the desktop.
    Notify {
        how: crate::config::Notify,
        title: String,
        body: String,
    },
}

impl Effect {
    /// Whether it is for the terminal and desktop (`alert.rs`).
    pub fn is_alert(&self) -> bool {
        matches!(self, Effect::Bell | Effect::Notify { .. })
    }
}
