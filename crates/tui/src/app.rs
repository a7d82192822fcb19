//! The application state and its one transition function, [`App::update`].
//!
//! `update` is pure: no I/O and no clock (time arrives in
//! [`AppEvent::Tick`]). Whatever needs the network is returned as
//! [`Effect`]s for `net.rs` to carry out; their results come back as
//! [`NetEvent`]s. That makes every behaviour testable by feeding events.
//!
//! State types live in their own files (`conversations`, `outbox`,
//! `connection`, `sign_in`, `accounts`); the transitions are split by
//! concern into `impl App` blocks: `input` (keys → actions), `session`,
//! `chat` (server data, read-when-shown), `scroll`, `sending`,
//! `compose_mode` (editing and replying), `reactions` (the picker),
//! `typing` (typing notices, both ways), `search` (`/` in a conversation),
//! `browse` (accounts browser) and
//! `network` (dispatch of [`NetEvent`]s).

mod accounts;
mod browse;
mod chat;
mod compose_mode;
mod connection;
mod conversations;
mod input;
mod network;
mod outbox;
mod persist;
mod reactions;
mod scroll;
mod search;
mod sending;
mod session;
mod sign_in;
#[cfg(test)]
mod tests;
mod typing;

use std::collections::HashMap;

use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use ratatui_textarea::TextArea;

pub use accounts::AccountsBrowser;
pub use compose_mode::ComposeMode;
pub use connection::{Connection, LinkState, StreamLink, LEADER_CHANGE_SHOWN_MS, SILENCE_MS};
pub use conversations::{
    is_me, mentions, ConvKey, Conversation, Conversations, Delivery, Entry, EntryKey, MessageLog,
    Note,
};
pub use outbox::{Outbox, OutboxItem};
pub use persist::{SavedState, DRAFT_SAVE_MS};
pub use reactions::{ReactPicker, COMMON_EMOJI};
pub use search::{SearchPanel, SEARCH_PAGE};
pub use sign_in::{Field, Pending, SignInForm};
pub use typing::{typing_label, Typist, TYPING_REPEAT_MS};

use super::event::{AppEvent, Draft, Effect, NetEvent, QueuedMessage, SendTo, StoreEvent};
use super::keys::{self, Action, Context};
use super::model::{
    AccountInfo, ConversationInfo, ConversationKind, ErrorKind, Message, NetError, ReplicaReport,
};

/// Pause before resending a message after the cluster was unavailable.
pub const SEND_RETRY_MS: u64 = 2_000;
/// How long a notice stays on screen.
pub const NOTICE_MS: u64 = 8_000;
/// Messages moved by PgUp/PgDn.
const PAGE_MESSAGES: isize = 10;
/// Messages moved by one mouse-wheel notch.
const WHEEL_MESSAGES: isize = 3;
/// Messages per history page.
pub const HISTORY_PAGE: u32 = 50;

/// Fixed inputs of the state, chosen by the caller (fixed in tests).
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// Prefix of every request id: unique per client run, so ids built
    /// from it and a local counter never collide with another client's.
    pub request_prefix: String,
    /// The time zone times and day separators are shown in.
    pub time_zone: jiff::tz::TimeZone,
    /// Pre-filled user name (`--user`).
    pub user: Option<String>,
    /// The configured replicas, shown in the cluster panel before any poll.
    pub servers: Vec<String>,
    /// Capture the mouse at start (clicks, wheel); off lets the terminal
    /// select text.
    pub mouse: bool,
    /// The key bindings in force (the table, with the config's overrides).
    pub keymap: keys::Keymap,
    pub theme: crate::ui::Theme,
    /// Ring the terminal bell for a message outside the open conversation
    /// (or one mentioning us in a group).
    pub bell: bool,
    /// Announce such a message on the desktop too.
    pub notify: crate::config::Notify,
}

impl AppConfig {
    /// The defaults for `servers`: UTC, nobody pre-filled, mouse on, the
    /// default keys and theme, the bell on, no desktop notifications.
    pub fn new(request_prefix: impl Into<String>, servers: Vec<String>) -> Self {
        Self {
            request_prefix: request_prefix.into(),
            time_zone: jiff::tz::TimeZone::UTC,
            user: None,
            servers,
            mouse: true,
            keymap: keys::Keymap::default(),
            theme: crate::ui::Theme::DARK,
            bell: true,
            notify: crate::config::Notify::Off,
        }
    }
}

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    SignIn,
    Chat,
}

/// Which pane of the chat screen has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Sidebar,
    Messages,
    Compose,
}

/// A modal layer over the screen.
#[derive(Debug, Clone)]
pub enum Overlay {
    Help {
        scroll: u16,
    },
    Accounts(AccountsBrowser),
    Confirm(ConfirmKind),
    Prompt(Prompt),
    /// The reaction picker over a message.
    React(ReactPicker),
    /// Searching the open conversation (`/`).
    Search(SearchPanel),
}

/// What a yes/no dialog is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    DeleteMessages(Vec<u64>),
    /// Quit with messages still waiting to be sent.
    Quit {
        waiting: usize,
    },
    /// Log out with messages still waiting to be sent.
    Logout {
        waiting: usize,
    },
}

/// What a one-line question is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKind {
    GroupName { members: Vec<String> },
    DeleteAccountPassword,
}

/// A one-line question.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub kind: PromptKind,
    pub input: TextArea<'static>,
    pub error: Option<String>,
    pub busy: bool,
}

impl Prompt {
    fn new(kind: PromptKind) -> Self {
        let mut input = TextArea::default();
        if kind == PromptKind::DeleteAccountPassword {
            input.set_mask_char('•');
        }
        Self {
            kind,
            input,
            error: None,
            busy: false,
        }
    }

    pub fn text(&self) -> String {
        self.input.lines().concat()
    }
}

/// A transient line for the user (errors in red).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
    pub at_ms: u64,
}

/// Where the message pane is scrolled to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageView {
    /// The message at the bottom of the view (the cursor); `None` follows
    /// the newest message as it arrives.
    pub anchor: Option<EntryKey>,
    /// Own committed messages marked for deletion (server ids).
    pub marked: Vec<u64>,
    /// The first message that was unread when the conversation was
    /// opened: a "new messages" line is drawn above it.
    pub new_from: Option<u64>,
    /// Opened with unread messages: the cursor goes to the first of them
    /// once the history is loaded, so that only what is shown is read.
    pub jump_to_unread: bool,
    /// The newest message drawn whole, reported after each frame: below
    /// the cursor when the pane is filled from the top.
    pub shown_up_to: u64,
    /// A search result to put the cursor on once its history page is
    /// loaded (see `search`).
    pub jump_to: Option<u64>,
}

/// Presence of an account, as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    pub online: bool,
    pub last_seen_ms: u64,
}

/// The whole state of the terminal client.
#[derive(Debug, Clone)]
pub struct App {
    pub config: AppConfig,
    pub now_ms: u64,
    /// Tick counter: drives the spinner.
    pub ticks: u64,
    pub screen: Screen,
    pub focus: Focus,
    pub overlay: Option<Overlay>,
    pub show_cluster: bool,
    pub sign_in: SignInForm,
    /// The signed-in user.
    pub me: Option<String>,
    pub conversations: Conversations,
    pub view: MessageView,
    pub outbox: Outbox,
    /// The compose box of the open conversation.
    pub compose: TextArea<'static>,
    /// Editing one of our messages or answering one (see `compose_mode`).
    pub compose_mode: Option<ComposeMode>,
    /// Unsent text of the other conversations, back in the compose box
    /// when one is opened again.
    pub drafts: HashMap<ConvKey, String>,
    /// What the local store was last told (see `persist`).
    pub saved: SavedState,
    pub presence: HashMap<String, Presence>,
    pub connection: Connection,
    pub cluster: Vec<ReplicaReport>,
    pub notice: Option<Notice>,
    pub should_quit: bool,
    /// The terminal's size, once known (mouse clicks, page sizes).
    pub size: Option<ratatui::layout::Rect>,
    /// The terminal loop captures the mouse while this is set.
    pub mouse_capture: bool,
    /// Ctrl-Z: the terminal loop stops the process (job control) and
    /// redraws when it is resumed; it clears this.
    pub suspend_requested: bool,
    /// What a session that ended elsewhere left unsent (see
    /// `session::Parked`).
    parked: Option<session::Parked>,
    /// The conversation and time of the last typing notice sent while
    /// the user keeps typing there (see `typing`).
    typing_sent: Option<(u64, u64)>,
    /// Saves to hand out before the effects of the event being handled
    /// (those of a session that just ended, before its state is dropped).
    deferred: Vec<Effect>,
    next_local_id: u64,
}

fn new_compose() -> TextArea<'static> {
    let mut compose = TextArea::default();
    compose.set_placeholder_text("Write a message (Enter: send, Alt+Enter: new line)");
    compose
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        let sign_in = SignInForm::new(config.user.as_deref());
        let mouse_capture = config.mouse;
        let cluster = config
            .servers
            .iter()
            .map(|server| ReplicaReport {
                server: server.clone(),
                status: Err("not polled yet".to_string()),
            })
            .collect();
        Self {
            config,
            now_ms: 0,
            ticks: 0,
            screen: Screen::SignIn,
            focus: Focus::Sidebar,
            overlay: None,
            show_cluster: false,
            sign_in,
            me: None,
            conversations: Conversations::default(),
            view: MessageView::default(),
            outbox: Outbox::default(),
            compose: new_compose(),
            compose_mode: None,
            drafts: HashMap::new(),
            saved: SavedState::default(),
            presence: HashMap::new(),
            connection: Connection::default(),
            cluster,
            notice: None,
            should_quit: false,
            size: None,
            mouse_capture,
            suspend_requested: false,
            parked: None,
            typing_sent: None,
            deferred: Vec::new(),
            next_local_id: 1,
        }
    }

    /// The single state transition: applies `event`, returns the network
    /// work it calls for.
    pub fn update(&mut self, event: AppEvent) -> Vec<Effect> {
        // Typing is what keys and pastes do to the compose box.
        let compose_before =
            matches!(event, AppEvent::Key(_) | AppEvent::Paste(_)).then(|| self.compose_snapshot());
        let mut effects = match event {
            AppEvent::Key(key) => self.on_key(key),
            AppEvent::Mouse(mouse) => self.on_mouse(mouse),
            AppEvent::Shown {
                conversation_id,
                up_to,
            } => {
                if self.conversations.open().and_then(Conversation::id) == Some(conversation_id) {
                    self.view.shown_up_to = self.view.shown_up_to.max(up_to);
                }
                Vec::new()
            }
            AppEvent::Resize { width, height } => {
                self.size = Some(ratatui::layout::Rect::new(0, 0, width, height));
                Vec::new()
            }
            AppEvent::Paste(text) => {
                self.on_paste(&text);
                Vec::new()
            }
            AppEvent::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.ticks = self.ticks.wrapping_add(1);
                if self
                    .notice
                    .as_ref()
                    .is_some_and(|n| self.now_ms.saturating_sub(n.at_ms) > NOTICE_MS)
                {
                    self.notice = None;
                }
                self.expire_typing();
                Vec::new()
            }
            AppEvent::Net(net) => self.on_net(net),
            AppEvent::Store(event) => {
                self.on_store(event);
                Vec::new()
            }
        };
        if self.screen == Screen::Chat {
            effects.extend(self.open_first_if_none());
            self.place_outbox_entries();
            effects.extend(self.pump_outbox());
            self.jump_to_first_unread();
            effects.extend(self.continue_jump());
            effects.extend(self.mark_shown_read());
            effects.extend(self.typing_notice(compose_before));
        }
        // Saves go first: a message is on disk before it is sent, and
        // before the next frame shows it as queued.
        let mut first = std::mem::take(&mut self.deferred);
        first.extend(self.persist(self.should_quit));
        first.extend(effects);
        first
    }

    /// Key contexts in force, most specific first (see `keys.rs`).
    pub fn contexts(&self) -> Vec<Context> {
        let mut contexts = match &self.overlay {
            Some(Overlay::Help { .. }) => vec![Context::Help],
            Some(Overlay::Confirm(_)) => vec![Context::Confirm],
            Some(Overlay::Prompt(_)) => vec![Context::Prompt],
            Some(Overlay::React(_)) => vec![Context::React],
            Some(Overlay::Search(panel)) if panel.list_focused => vec![Context::SearchResults],
            Some(Overlay::Search(_)) => vec![Context::SearchQuery],
            Some(Overlay::Accounts(b)) if b.list_focused => vec![Context::AccountsList],
            Some(Overlay::Accounts(_)) => vec![Context::AccountsSearch],
            None => match (self.screen, self.focus) {
                (Screen::SignIn, _) => vec![Context::SignIn],
                (Screen::Chat, Focus::Sidebar) => vec![Context::Sidebar, Context::Navigation],
                (Screen::Chat, Focus::Messages) => vec![Context::Messages, Context::Navigation],
                (Screen::Chat, Focus::Compose)
                    if matches!(self.compose_mode, Some(ComposeMode::Editing { .. })) =>
                {
                    vec![Context::Editing, Context::Compose]
                }
                (Screen::Chat, Focus::Compose) => vec![Context::Compose],
            },
        };
        contexts.push(Context::Global);
        contexts
    }

    /// Unread messages across all conversations.
    pub fn total_unread(&self) -> u64 {
        self.conversations.total_unread()
    }

    /// The terminal window title.
    pub fn terminal_title(&self) -> String {
        let who = self
            .me
            .as_ref()
            .map(|me| format!(" — {me}"))
            .unwrap_or_default();
        match self.total_unread() {
            0 => format!("raftchat{who}"),
            n => format!("({n}) raftchat{who}"),
        }
    }

    /// The compose box's text as it would be sent.
    pub fn compose_body(&self) -> String {
        self.compose.lines().join("\n")
    }

    pub fn link_state(&self) -> LinkState {
        self.connection.state(self.now_ms)
    }

    fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: false,
            at_ms: self.now_ms,
        });
    }

    fn notify_error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: true,
            at_ms: self.now_ms,
        });
    }
}
