//! The application state and its one transition function, [`App::update`].
//!
//! `update` is pure: no I/O and no clock (time arrives in
//! [`AppEvent::Tick`]). Whatever needs the network is returned as
//! [`Effect`]s for `net.rs` to carry out; their results come back as
//! [`NetEvent`]s. That makes every behaviour testable by feeding events.

mod accounts;
mod connection;
mod conversations;
mod outbox;
mod sign_in;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use ratatui_textarea::TextArea;

pub use accounts::{AccountsBrowser, PAGE_SIZE};
pub use connection::{Connection, LinkState, StreamLink, LEADER_CHANGE_SHOWN_MS};
pub use conversations::{
    is_me, ConvKey, Conversation, Conversations, Delivery, Entry, EntryKey, MessageLog,
};
pub use outbox::{Outbox, OutboxItem};
pub use sign_in::{Field, Pending, SignInForm};

use super::event::{AppEvent, Effect, NetEvent, SendTo};
use super::keys::{self, Action, Context};
use super::model::{
    AccountInfo, ChatMessage, ConversationInfo, ConversationKind, ErrorKind, NetError,
    ReplicaReport,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Prefix of every request id: unique per client run, so ids built
    /// from it and a local counter never collide with another client's.
    pub request_prefix: String,
    /// Local time offset used to print times and day separators.
    pub utc_offset_secs: i64,
    /// Pre-filled user name (`--user`).
    pub user: Option<String>,
    /// The configured replicas, shown in the cluster panel before any poll.
    pub servers: Vec<String>,
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
    Help { scroll: u16 },
    Accounts(AccountsBrowser),
    Confirm(ConfirmKind),
    Prompt(Prompt),
}

/// What a yes/no dialog is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    DeleteMessages(Vec<u64>),
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
    pub compose: TextArea<'static>,
    pub presence: HashMap<String, Presence>,
    pub connection: Connection,
    pub cluster: Vec<ReplicaReport>,
    pub notice: Option<Notice>,
    pub should_quit: bool,
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
            presence: HashMap::new(),
            connection: Connection::default(),
            cluster,
            notice: None,
            should_quit: false,
            next_local_id: 1,
        }
    }

    /// The single state transition: applies `event`, returns the network
    /// work it calls for.
    pub fn update(&mut self, event: AppEvent) -> Vec<Effect> {
        let mut effects = match event {
            AppEvent::Key(key) => self.on_key(key),
            AppEvent::Mouse(mouse) => self.on_mouse(mouse),
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
                Vec::new()
            }
            AppEvent::Net(net) => self.on_net(net),
        };
        if self.screen == Screen::Chat {
            effects.extend(self.open_first_if_none());
            effects.extend(self.pump_outbox());
            effects.extend(self.mark_shown_read());
        }
        effects
    }

    /// Key contexts in force, most specific first (see `keys.rs`).
    pub fn contexts(&self) -> Vec<Context> {
        let mut contexts = match &self.overlay {
            Some(Overlay::Help { .. }) => vec![Context::Help],
            Some(Overlay::Confirm(_)) => vec![Context::Confirm],
            Some(Overlay::Prompt(_)) => vec![Context::Prompt],
            Some(Overlay::Accounts(b)) if b.list_focused => vec![Context::AccountsList],
            Some(Overlay::Accounts(_)) => vec![Context::AccountsSearch],
            None => match (self.screen, self.focus) {
                (Screen::SignIn, _) => vec![Context::SignIn],
                (Screen::Chat, Focus::Sidebar) => vec![Context::Sidebar, Context::Navigation],
                (Screen::Chat, Focus::Messages) => vec![Context::Messages, Context::Navigation],
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

    // ------------------------------------------------------------ input

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if let Some(action) = keys::resolve(&self.contexts(), &key) {
            return self.perform(action);
        }
        // Unbound keys type into the focused text field, if any.
        if let Some(field) = self.text_field_mut() {
            field.input(key);
            if self.screen == Screen::SignIn {
                self.sign_in.error = None;
            }
        }
        Vec::new()
    }

    fn on_mouse(&mut self, mouse: MouseEvent) -> Vec<Effect> {
        let delta = match mouse.kind {
            MouseEventKind::ScrollUp => -1,
            MouseEventKind::ScrollDown => 1,
            _ => return Vec::new(),
        };
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) => {
                *scroll = scroll.saturating_add_signed(i16::try_from(delta).unwrap_or(0));
                Vec::new()
            }
            Some(Overlay::Accounts(browser)) => {
                browser.move_selection(delta);
                Vec::new()
            }
            Some(_) => Vec::new(),
            None if self.screen == Screen::Chat => self.move_cursor(delta * WHEEL_MESSAGES),
            None => Vec::new(),
        }
    }

    fn on_paste(&mut self, text: &str) {
        let multi_line = self.overlay.is_none() && self.focus == Focus::Compose;
        let text = if multi_line {
            text.replace("\r\n", "\n")
        } else {
            text.replace(['\r', '\n'], "")
        };
        if let Some(field) = self.text_field_mut() {
            field.insert_str(text);
        }
    }

    /// The text field that receives typing, if one has focus.
    fn text_field_mut(&mut self) -> Option<&mut TextArea<'static>> {
        match &mut self.overlay {
            Some(Overlay::Accounts(browser)) if !browser.list_focused => Some(&mut browser.pattern),
            Some(Overlay::Prompt(prompt)) if !prompt.busy => Some(&mut prompt.input),
            Some(_) => None,
            None => match self.screen {
                Screen::SignIn if self.sign_in.pending.is_none() => Some(self.sign_in.field_mut()),
                Screen::SignIn => None,
                Screen::Chat if self.focus == Focus::Compose => Some(&mut self.compose),
                Screen::Chat => None,
            },
        }
    }

    /// Carries out a bound action in the current context.
    fn perform(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.should_quit = true;
                Vec::new()
            }
            Action::ToggleHelp => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help { .. }) => None,
                    None => Some(Overlay::Help { scroll: 0 }),
                    ref other => other.clone(),
                };
                Vec::new()
            }
            Action::ToggleCluster => {
                self.show_cluster = !self.show_cluster;
                Vec::new()
            }
            Action::FocusNext | Action::FocusPrev => {
                self.cycle_focus(action == Action::FocusNext);
                Vec::new()
            }
            Action::OpenAccounts => self.open_accounts(),
            Action::Logout => {
                self.sign_out(Some("Signed out."));
                vec![Effect::Logout]
            }
            Action::DeleteAccount => {
                self.overlay = Some(Overlay::Prompt(Prompt::new(
                    PromptKind::DeleteAccountPassword,
                )));
                Vec::new()
            }
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.move_cursor(-PAGE_MESSAGES),
            Action::PageDown => self.move_cursor(PAGE_MESSAGES),
            Action::Top => self.move_cursor(isize::MIN / 2),
            Action::Bottom => {
                self.view.anchor = None;
                Vec::new()
            }
            Action::Back => {
                match self.overlay {
                    Some(_) => self.overlay = None,
                    None => self.focus = Focus::Messages,
                }
                Vec::new()
            }
            Action::FocusCompose => {
                self.focus = Focus::Compose;
                Vec::new()
            }
            Action::Send => self.send_compose(),
            Action::Newline => {
                self.compose.insert_newline();
                Vec::new()
            }
            Action::ToggleMark => {
                self.toggle_mark();
                Vec::new()
            }
            Action::DeleteMessages => {
                self.ask_delete_messages();
                Vec::new()
            }
            Action::Retry => self.retry_failed(),
            Action::SignIn => self.submit_sign_in(false),
            Action::CreateAccount => self.submit_sign_in(true),
            Action::Search => self.search_accounts(true),
            Action::NextPage => self.accounts_page(true),
            Action::PrevPage => self.accounts_page(false),
            Action::StartDirect => self.start_direct(),
            Action::NewGroup => {
                self.ask_group_name();
                Vec::new()
            }
            Action::AddMember => self.add_members(),
            Action::EditPattern => {
                if let Some(Overlay::Accounts(browser)) = &mut self.overlay {
                    browser.list_focused = false;
                }
                Vec::new()
            }
            Action::Confirm => self.confirm(),
            Action::Cancel => {
                self.overlay = None;
                Vec::new()
            }
            Action::Submit => self.submit_prompt(),
        }
    }

    fn cycle_focus(&mut self, forward: bool) {
        match &mut self.overlay {
            Some(Overlay::Accounts(browser)) => browser.list_focused = !browser.list_focused,
            Some(_) => {}
            None if self.screen == Screen::SignIn => self.sign_in.toggle_field(),
            None => {
                self.focus = match (self.focus, forward) {
                    (Focus::Sidebar, true) | (Focus::Compose, false) => Focus::Messages,
                    (Focus::Messages, true) | (Focus::Sidebar, false) => Focus::Compose,
                    (Focus::Compose, true) | (Focus::Messages, false) => Focus::Sidebar,
                }
            }
        }
    }

    /// Up/Down by one, in whatever list has focus.
    fn step(&mut self, delta: isize) -> Vec<Effect> {
        match &mut self.overlay {
            Some(Overlay::Help { scroll }) => {
                *scroll = scroll.saturating_add_signed(i16::try_from(delta).unwrap_or(0));
                Vec::new()
            }
            Some(Overlay::Accounts(browser)) => {
                browser.move_selection(delta);
                Vec::new()
            }
            Some(_) => Vec::new(),
            None if self.focus == Focus::Sidebar => self.select_conversation(delta),
            None => self.move_cursor(delta),
        }
    }

    // ------------------------------------------------------------ sign in

    fn submit_sign_in(&mut self, create: bool) -> Vec<Effect> {
        if self.sign_in.pending.is_some() {
            return Vec::new();
        }
        let username = self.sign_in.username_text();
        let password = self.sign_in.password_text();
        if username.is_empty() {
            self.sign_in.field = Field::Username;
            self.sign_in.error = Some("Enter a user name.".into());
            return Vec::new();
        }
        if password.is_empty() {
            self.sign_in.field = Field::Password;
            if !create && self.sign_in.field == Field::Password {
                self.sign_in.error = Some("Enter your password.".into());
            }
            return Vec::new();
        }
        self.sign_in.error = None;
        self.sign_in.info = None;
        if create {
            self.sign_in.pending = Some(Pending::Creating);
            vec![Effect::CreateAccount { username, password }]
        } else {
            self.sign_in.pending = Some(Pending::SigningIn);
            vec![Effect::SignIn { username, password }]
        }
    }

    fn signed_in(&mut self, username: String) -> Vec<Effect> {
        self.sign_in.pending = None;
        self.sign_in.error = None;
        self.sign_in.clear_password();
        self.me = Some(username);
        self.screen = Screen::Chat;
        self.focus = Focus::Sidebar;
        self.conversations = Conversations::default();
        self.view = MessageView::default();
        self.connection.quorum_lost = false;
        vec![Effect::LoadConversations, Effect::Subscribe]
    }

    fn sign_in_failed(&mut self, error: NetError) {
        let creating = self.sign_in.pending == Some(Pending::Creating);
        self.sign_in.pending = None;
        self.sign_in.error = Some(match error.kind {
            ErrorKind::Unavailable => {
                self.connection.quorum_lost = true;
                format!("No quorum: the cluster cannot serve this right now. ({error})")
            }
            ErrorKind::AlreadyExists if creating => "That name is taken.".to_string(),
            ErrorKind::Unauthenticated | ErrorKind::NotFound if !creating => {
                "Wrong user name or password.".to_string()
            }
            _ => error.message,
        });
    }

    /// Back to the sign-in screen; everything of the session is dropped.
    fn sign_out(&mut self, info: Option<&str>) {
        self.screen = Screen::SignIn;
        self.me = None;
        self.overlay = None;
        self.focus = Focus::Sidebar;
        self.conversations = Conversations::default();
        self.view = MessageView::default();
        self.outbox.clear();
        self.compose = new_compose();
        self.presence.clear();
        self.connection.stream = StreamLink::Off;
        self.sign_in.pending = None;
        self.sign_in.clear_password();
        self.sign_in.field = Field::Password;
        self.sign_in.info = info.map(str::to_string);
    }

    // ------------------------------------------------------------ conversations

    fn me(&self) -> &str {
        self.me.as_deref().unwrap_or_default()
    }

    /// Opens `key`, loading its history the first time.
    fn open_conversation(&mut self, key: ConvKey) -> Vec<Effect> {
        if self.conversations.open.as_ref() != Some(&key) {
            self.view = MessageView::default();
        }
        self.conversations.open = Some(key.clone());
        self.load_if_needed(&key)
    }

    fn load_if_needed(&mut self, key: &ConvKey) -> Vec<Effect> {
        match self.conversations.get_mut(key) {
            Some(conv) if !conv.log.loaded && !conv.log.loading => {
                let Some(id) = conv.id() else {
                    return Vec::new();
                };
                conv.log.loading = true;
                vec![Effect::LoadHistory {
                    conversation_id: id,
                    before: 0,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Opens the most recent conversation when none is open, e.g. when the
    /// first one appears.
    fn open_first_if_none(&mut self) -> Vec<Effect> {
        if self.conversations.open.is_some() {
            return Vec::new();
        }
        match self.conversations.list.first().map(|c| c.key.clone()) {
            Some(first) => self.open_conversation(first),
            None => Vec::new(),
        }
    }

    fn select_conversation(&mut self, delta: isize) -> Vec<Effect> {
        let list = &self.conversations.list;
        if list.is_empty() {
            return Vec::new();
        }
        let current = self.conversations.open_index().unwrap_or(0);
        let next = current.saturating_add_signed(delta).min(list.len() - 1);
        let key = list[next].key.clone();
        self.open_conversation(key)
    }

    fn on_conversations(&mut self, list: Vec<ConversationInfo>) -> Vec<Effect> {
        self.conversations.list.retain(|c| match c.key {
            ConvKey::Id(id) => list.iter().any(|info| info.id == id),
            ConvKey::NewDirect(_) => true,
        });
        for info in &list {
            self.conversations.upsert(info, true);
        }
        if self
            .conversations
            .open
            .as_ref()
            .is_some_and(|k| self.conversations.get(k).is_none())
        {
            self.conversations.open = None;
        }
        let mut effects = match self.conversations.open.clone() {
            Some(key) => self.load_if_needed(&key),
            None => self.open_first_if_none(),
        };
        let unknown: Vec<String> = self
            .conversations
            .list
            .iter()
            .filter(|c| c.kind == ConversationKind::Direct)
            .map(|c| c.name.clone())
            .filter(|name| !self.presence.contains_key(name))
            .collect();
        if !unknown.is_empty() {
            effects.push(Effect::LookupPresence { usernames: unknown });
        }
        effects
    }

    fn on_history(
        &mut self,
        info: ConversationInfo,
        messages: Vec<ChatMessage>,
        more: bool,
        before: u64,
    ) {
        self.conversations.upsert(&info, true);
        let me = self.me().to_string();
        let Some(conv) = self.conversations.by_id_mut(info.id) else {
            return;
        };
        for message in &messages {
            conv.log.insert_committed(message, &me);
            conv.note_message(message);
        }
        conv.log.loading = false;
        if before == 0 {
            conv.log.loaded = true;
            conv.log.more = more;
        } else {
            conv.log.more = more;
        }
    }

    fn on_message(&mut self, message: ChatMessage) -> Vec<Effect> {
        let me = self.me().to_string();
        let mut effects = Vec::new();
        if self
            .conversations
            .by_id_mut(message.conversation_id)
            .is_none()
        {
            // A conversation we have not heard of (someone wrote to us first).
            self.conversations
                .list
                .push(Conversation::from_info(&ConversationInfo {
                    id: message.conversation_id,
                    kind: ConversationKind::Direct,
                    name: message.sender.clone(),
                    members: Vec::new(),
                    unread: 0,
                    last_message_id: 0,
                    last_activity_ms: message.sent_ms,
                    read_up_to: 0,
                }));
            effects.push(Effect::LoadConversations);
        }
        if let Some(conv) = self.conversations.by_id_mut(message.conversation_id) {
            // A conversation listed after this message was applied already
            // counts it as unread: only newer messages add to the count.
            let already_counted = message.id <= conv.last_message_id;
            let is_new = conv.log.insert_committed(&message, &me);
            conv.note_message(&message);
            if is_new
                && !already_counted
                && !is_me(&message.sender, &me)
                && message.id > conv.read_up_to
            {
                conv.unread = conv.unread.saturating_add(1);
            }
        }
        self.conversations.sort();
        // A commit seen means the cluster works again: resend promptly.
        self.connection.quorum_lost = false;
        self.outbox.hurry();
        effects
    }

    fn on_deleted(&mut self, conversation_id: u64, ids: &[u64]) {
        if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
            conv.log.remove_ids(ids);
        }
        self.view.marked.retain(|id| !ids.contains(id));
        if let Some(EntryKey::Server(id)) = self.view.anchor {
            if ids.contains(&id) {
                self.view.anchor = None;
            }
        }
        let open = self.conversations.open.clone();
        if let Some(conv) = open.and_then(|key| self.conversations.get(&key).cloned()) {
            if conv
                .log
                .position(self.view.anchor.unwrap_or(EntryKey::Local(0)))
                .is_none()
            {
                self.view.anchor = None;
            }
        }
    }

    fn on_read_receipt(&mut self, conversation_id: u64, reader: &str, up_to: u64) {
        let me = self.me().to_string();
        if !is_me(reader, &me) {
            return;
        }
        if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
            if up_to > conv.read_up_to {
                conv.read_up_to = up_to;
                conv.unread = if up_to >= conv.last_message_id {
                    0
                } else {
                    conv.log.unread_after(up_to, &me).min(conv.unread)
                };
            }
        }
    }

    fn on_membership(&mut self, info: ConversationInfo, user: &str, change: &str) {
        let me = self.me().to_string();
        let gone = matches!(change, "left" | "account_deleted");
        if gone && is_me(user, &me) {
            self.conversations.list.retain(|c| c.id() != Some(info.id));
            if self.conversations.open == Some(ConvKey::Id(info.id)) {
                self.conversations.open = None;
                self.view = MessageView::default();
            }
            return;
        }
        self.conversations.upsert(&info, false);
        if gone {
            self.notify(format!("{user} left {}", info.name));
        }
    }

    /// Marks what the message pane shows as read ("read when shown").
    fn mark_shown_read(&mut self) -> Vec<Effect> {
        if self.overlay.is_some() {
            return Vec::new();
        }
        let anchor = self.view.anchor;
        let me = self.me().to_string();
        let Some(conv) = self.conversations.open_mut() else {
            return Vec::new();
        };
        let Some(conversation_id) = conv.id() else {
            return Vec::new();
        };
        if !conv.log.loaded || conv.log.entries.is_empty() {
            return Vec::new();
        }
        let bottom = match anchor {
            None => conv.log.entries.len() - 1,
            Some(key) => conv.log.position(key).unwrap_or(conv.log.entries.len() - 1),
        };
        let shown_up_to = conv.log.newest_id_through(bottom);
        if shown_up_to <= conv.read_up_to {
            return Vec::new();
        }
        conv.read_up_to = shown_up_to;
        conv.unread = if anchor.is_none() && shown_up_to >= conv.last_message_id {
            0
        } else {
            conv.log.unread_after(shown_up_to, &me)
        };
        vec![Effect::MarkRead {
            conversation_id,
            up_to: shown_up_to,
        }]
    }

    // ------------------------------------------------------------ messages pane

    /// Moves the message cursor by `delta` (negative = older); loads older
    /// history at the top, follows new messages at the bottom.
    fn move_cursor(&mut self, delta: isize) -> Vec<Effect> {
        let anchor = self.view.anchor;
        let Some(conv) = self.conversations.open_mut() else {
            return Vec::new();
        };
        let len = conv.log.entries.len();
        if len == 0 {
            return Vec::new();
        }
        let current = anchor
            .and_then(|key| conv.log.position(key))
            .unwrap_or(len - 1);
        let target = current.saturating_add_signed(delta).min(len - 1);
        let mut effects = Vec::new();
        if target == len - 1 && delta > 0 {
            self.view.anchor = None;
        } else {
            self.view.anchor = Some(conv.log.entries[target].key());
        }
        if target == 0 && delta < 0 && conv.log.more && !conv.log.loading {
            if let (Some(id), Some(oldest)) = (conv.id(), conv.log.oldest_id()) {
                conv.log.loading = true;
                effects.push(Effect::LoadHistory {
                    conversation_id: id,
                    before: oldest,
                });
            }
        }
        effects
    }

    /// The entry under the message cursor.
    pub fn cursor_entry(&self) -> Option<&Entry> {
        let conv = self.conversations.open()?;
        match self.view.anchor {
            None => conv.log.entries.last(),
            Some(key) => conv.log.position(key).and_then(|i| conv.log.entries.get(i)),
        }
    }

    fn toggle_mark(&mut self) {
        if let Some(Overlay::Accounts(browser)) = &mut self.overlay {
            browser.toggle_mark();
            return;
        }
        let Some(id) = self
            .cursor_entry()
            .filter(|e| e.is_own())
            .and_then(|e| e.id)
        else {
            self.notify_error("Only your own sent messages can be marked.");
            return;
        };
        if let Some(pos) = self.view.marked.iter().position(|m| *m == id) {
            self.view.marked.remove(pos);
        } else {
            self.view.marked.push(id);
        }
    }

    fn ask_delete_messages(&mut self) {
        let ids = if self.view.marked.is_empty() {
            self.cursor_entry()
                .filter(|e| e.is_own())
                .and_then(|e| e.id)
                .map(|id| vec![id])
                .unwrap_or_default()
        } else {
            self.view.marked.clone()
        };
        if ids.is_empty() {
            self.notify_error("Select one of your own sent messages first.");
            return;
        }
        self.overlay = Some(Overlay::Confirm(ConfirmKind::DeleteMessages(ids)));
    }

    fn confirm(&mut self) -> Vec<Effect> {
        match self.overlay.take() {
            Some(Overlay::Confirm(ConfirmKind::DeleteMessages(message_ids))) => {
                self.view.marked.clear();
                vec![Effect::DeleteMessages { message_ids }]
            }
            other => {
                self.overlay = other;
                Vec::new()
            }
        }
    }

    // ------------------------------------------------------------ sending

    fn send_compose(&mut self) -> Vec<Effect> {
        let body = self.compose.lines().join("\n");
        if body.trim().is_empty() {
            return Vec::new();
        }
        let Some(key) = self.conversations.open.clone() else {
            self.notify_error("Open a conversation first (a: accounts, to start one).");
            return Vec::new();
        };
        let to = match &key {
            ConvKey::Id(id) => SendTo::Conversation(*id),
            ConvKey::NewDirect(peer) => SendTo::User(peer.clone()),
        };
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        let request_id = format!("{}-{local_id}", self.config.request_prefix);
        let me = self.me().to_string();
        let now = self.now_ms;
        if let Some(conv) = self.conversations.get_mut(&key) {
            conv.log.push_pending(Entry {
                id: None,
                local_id: Some(local_id),
                request_id: Some(request_id.clone()),
                sender: me,
                body: body.clone(),
                sent_ms: now,
                delivery: Some(Delivery::Queued),
                failed: None,
            });
            conv.last_activity_ms = conv.last_activity_ms.max(now);
        }
        self.conversations.sort();
        self.outbox.push(OutboxItem {
            local_id,
            request_id,
            conv: key,
            to,
            body,
            in_flight: false,
            retry_at_ms: 0,
        });
        self.compose = new_compose();
        self.view.anchor = None;
        Vec::new()
    }

    /// Sends the head of the outbox when it is due; its mark becomes Accepted.
    fn pump_outbox(&mut self) -> Vec<Effect> {
        let Some(item) = self.outbox.take_due(self.now_ms).cloned() else {
            return Vec::new();
        };
        if let Some(entry) = self
            .conversations
            .get_mut(&item.conv)
            .and_then(|c| c.log.find_local_mut(item.local_id))
        {
            entry.advance(Delivery::Accepted);
        }
        vec![Effect::Send {
            local_id: item.local_id,
            request_id: item.request_id,
            to: item.to,
            body: item.body,
        }]
    }

    fn on_sent(&mut self, local_id: u64, message: ChatMessage) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.outbox.remove(local_id);
        self.connection.quorum_lost = false;
        if let Some(ConvKey::NewDirect(peer)) = self.conversations.key_of_local(local_id) {
            let from = ConvKey::NewDirect(peer.clone());
            let existed = self
                .conversations
                .by_id_mut(message.conversation_id)
                .is_some();
            self.conversations
                .adopt_draft(&peer, message.conversation_id);
            self.outbox
                .rekey(&from, &ConvKey::Id(message.conversation_id));
            if !existed {
                effects.push(Effect::LoadConversations);
            }
        }
        if let Some(conv) = self.conversations.by_id_mut(message.conversation_id) {
            conv.log.commit_local(local_id, &message);
            conv.note_message(&message);
        }
        self.conversations.sort();
        effects
    }

    fn on_send_failed(&mut self, local_id: u64, error: NetError) {
        if error.is_unavailable() {
            // Keep its place; resend later with the same request id.
            self.connection.quorum_lost = true;
            self.outbox
                .postpone(local_id, self.now_ms.saturating_add(SEND_RETRY_MS));
            return;
        }
        self.outbox.remove(local_id);
        if let Some(key) = self.conversations.key_of_local(local_id) {
            if let Some(entry) = self
                .conversations
                .get_mut(&key)
                .and_then(|c| c.log.find_local_mut(local_id))
            {
                entry.failed = Some(error.message.clone());
            }
        }
        self.notify_error(format!("Message not sent: {error} (r: retry)"));
    }

    /// Puts a failed message back in the outbox with its original request id.
    fn retry_failed(&mut self) -> Vec<Effect> {
        let under_cursor = self
            .cursor_entry()
            .filter(|e| e.failed.is_some())
            .and_then(|e| e.local_id);
        let newest_failed = self.conversations.open().and_then(|c| {
            c.log
                .entries
                .iter()
                .rev()
                .find(|e| e.failed.is_some())
                .and_then(|e| e.local_id)
        });
        let Some(local_id) = under_cursor.or(newest_failed) else {
            self.notify("No failed message to retry here.");
            return Vec::new();
        };
        let Some(key) = self.conversations.key_of_local(local_id) else {
            return Vec::new();
        };
        let to = match &key {
            ConvKey::Id(id) => SendTo::Conversation(*id),
            ConvKey::NewDirect(peer) => SendTo::User(peer.clone()),
        };
        let Some(entry) = self
            .conversations
            .get_mut(&key)
            .and_then(|c| c.log.find_local_mut(local_id))
        else {
            return Vec::new();
        };
        entry.failed = None;
        let item = OutboxItem {
            local_id,
            request_id: entry.request_id.clone().unwrap_or_default(),
            conv: key,
            to,
            body: entry.body.clone(),
            in_flight: false,
            retry_at_ms: 0,
        };
        if !self.outbox.contains(local_id) {
            self.outbox.push(item);
        }
        Vec::new()
    }

    // ------------------------------------------------------------ accounts

    fn open_accounts(&mut self) -> Vec<Effect> {
        self.overlay = Some(Overlay::Accounts(AccountsBrowser::new()));
        self.search_accounts(true)
    }

    /// Runs the pattern search from the first page (`restart`) or reloads
    /// the current page.
    fn search_accounts(&mut self, restart: bool) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return Vec::new();
        };
        if restart {
            browser.searched = browser.pattern_text();
            browser.page_cursors = vec![String::new()];
            browser.marked.clear();
        }
        browser.loading = true;
        vec![Effect::ListAccounts {
            pattern: browser.searched.clone(),
            after: browser.current_after(),
            limit: PAGE_SIZE,
        }]
    }

    fn accounts_page(&mut self, forward: bool) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return Vec::new();
        };
        if forward {
            if browser.next_after.is_empty() {
                return Vec::new();
            }
            browser.page_cursors.push(browser.next_after.clone());
        } else {
            if browser.page_cursors.len() <= 1 {
                return Vec::new();
            }
            browser.page_cursors.pop();
        }
        self.search_accounts(false)
    }

    fn on_accounts(
        &mut self,
        pattern: &str,
        after: &str,
        accounts: Vec<AccountInfo>,
        next_after: String,
    ) {
        for account in &accounts {
            self.presence.insert(
                account.username.clone(),
                Presence {
                    online: account.online,
                    last_seen_ms: account.last_seen_ms,
                },
            );
        }
        let Some(Overlay::Accounts(browser)) = &mut self.overlay else {
            return;
        };
        if !browser.expects(pattern, after) {
            return; // a stale page
        }
        browser.results = accounts;
        browser.next_after = next_after;
        browser.selected = 0;
        browser.loading = false;
        if !browser.results.is_empty() && browser.page_number() == 1 && after.is_empty() {
            browser.list_focused = browser.list_focused || !browser.searched.is_empty();
        }
    }

    fn start_direct(&mut self) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return Vec::new();
        };
        let Some(peer) = browser.selected_account().map(|a| a.username.clone()) else {
            return Vec::new();
        };
        if is_me(&peer, self.me()) {
            self.notify_error("That is you.");
            return Vec::new();
        }
        self.overlay = None;
        self.focus = Focus::Compose;
        let key = match self.conversations.direct_with(&peer) {
            Some(existing) => existing.key.clone(),
            None => {
                let draft = Conversation::new_direct(&peer, self.now_ms);
                let key = draft.key.clone();
                self.conversations.list.push(draft);
                self.conversations.sort();
                key
            }
        };
        self.open_conversation(key)
    }

    fn ask_group_name(&mut self) {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return;
        };
        let me = self.me().to_string();
        let members: Vec<String> = browser
            .chosen()
            .into_iter()
            .filter(|m| !is_me(m, &me))
            .collect();
        self.overlay = Some(Overlay::Prompt(Prompt::new(PromptKind::GroupName {
            members,
        })));
    }

    fn add_members(&mut self) -> Vec<Effect> {
        let Some(Overlay::Accounts(browser)) = &self.overlay else {
            return Vec::new();
        };
        let chosen = browser.chosen();
        let Some(conversation_id) = self
            .conversations
            .open()
            .filter(|c| c.kind == ConversationKind::Group)
            .and_then(Conversation::id)
        else {
            self.notify_error("Open a group first, then add members to it.");
            return Vec::new();
        };
        self.overlay = None;
        chosen
            .into_iter()
            .map(|username| Effect::AddMember {
                conversation_id,
                username,
            })
            .collect()
    }

    fn submit_prompt(&mut self) -> Vec<Effect> {
        let Some(Overlay::Prompt(prompt)) = &mut self.overlay else {
            return Vec::new();
        };
        if prompt.busy {
            return Vec::new();
        }
        let text = prompt.text();
        if text.trim().is_empty() {
            prompt.error = Some("This cannot be empty.".into());
            return Vec::new();
        }
        match prompt.kind.clone() {
            PromptKind::GroupName { members } => {
                self.overlay = None;
                self.notify("Creating the group…");
                vec![Effect::CreateGroup {
                    name: text.trim().to_string(),
                    members,
                }]
            }
            PromptKind::DeleteAccountPassword => {
                prompt.busy = true;
                prompt.error = None;
                vec![Effect::DeleteAccount { password: text }]
            }
        }
    }

    // ------------------------------------------------------------ network results

    fn on_net(&mut self, event: NetEvent) -> Vec<Effect> {
        match event {
            NetEvent::SignedIn { username } => return self.signed_in(username),
            NetEvent::SignInFailed(error) => self.sign_in_failed(error),
            NetEvent::Conversations(list) => return self.on_conversations(list),
            NetEvent::History {
                conversation,
                messages,
                more,
                before,
            } => self.on_history(conversation, messages, more, before),
            NetEvent::HistoryFailed {
                conversation_id,
                error,
            } => {
                if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
                    conv.log.loading = false;
                }
                self.note_failure("load history", &error);
            }
            NetEvent::Sent { local_id, message } => return self.on_sent(local_id, message),
            NetEvent::SendFailed { local_id, error } => self.on_send_failed(local_id, error),
            NetEvent::MessageArrived(message) => return self.on_message(message),
            NetEvent::MessagesDeleted {
                conversation_id,
                message_ids,
            } => self.on_deleted(conversation_id, &message_ids),
            NetEvent::ReadReceipt {
                conversation_id,
                reader,
                up_to,
            } => self.on_read_receipt(conversation_id, &reader, up_to),
            NetEvent::Membership {
                conversation,
                user,
                change,
            } => self.on_membership(conversation, &user, &change),
            NetEvent::Presence {
                user,
                online,
                last_seen_ms,
            } => {
                self.presence.insert(
                    user,
                    Presence {
                        online,
                        last_seen_ms,
                    },
                );
            }
            NetEvent::SubscriptionLive { server } => {
                self.connection.stream = StreamLink::Live { server };
                self.outbox.hurry();
            }
            NetEvent::SubscriptionReconnecting {
                server,
                attempt,
                error,
            } => {
                self.connection.stream = StreamLink::Reconnecting {
                    server,
                    attempt,
                    error,
                };
            }
            NetEvent::Resync => return self.resync(),
            NetEvent::SubscriptionFailed(error) => {
                if error.kind == ErrorKind::Unauthenticated {
                    self.sign_out(Some("Your session expired: sign in again."));
                } else {
                    self.connection.stream = StreamLink::Off;
                    self.notify_error(format!("Live updates stopped: {error}"));
                }
            }
            NetEvent::Connection(info) => {
                let was_reconnecting = self
                    .connection
                    .info
                    .as_ref()
                    .is_some_and(|i| i.reconnecting);
                let recovered = was_reconnecting && !info.reconnecting;
                self.connection.observe(info, self.now_ms);
                if recovered {
                    self.outbox.hurry();
                }
            }
            NetEvent::Cluster(reports) => {
                let had_quorum = !self.connection.quorum_lost;
                self.connection.observe_cluster(&reports, self.now_ms);
                self.cluster = reports;
                if !had_quorum && !self.connection.quorum_lost {
                    self.outbox.hurry();
                }
            }
            NetEvent::Accounts {
                pattern,
                after,
                accounts,
                next_after,
            } => self.on_accounts(&pattern, &after, accounts, next_after),
            NetEvent::Presences(accounts) => {
                for account in accounts {
                    self.presence.insert(
                        account.username,
                        Presence {
                            online: account.online,
                            last_seen_ms: account.last_seen_ms,
                        },
                    );
                }
            }
            NetEvent::GroupCreated(info) => {
                self.conversations.upsert(&info, true);
                self.notify(format!("Group {} created.", info.name));
                self.focus = Focus::Compose;
                return self.open_conversation(ConvKey::Id(info.id));
            }
            NetEvent::MemberAdded {
                conversation_id,
                username,
            } => {
                let group = self
                    .conversations
                    .by_id_mut(conversation_id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                self.notify(format!("Added {username} to {group}."));
            }
            NetEvent::MessagesDeletedByMe { deleted } => {
                self.notify(format!("Deleted {deleted} message(s)."));
            }
            NetEvent::AccountDeleted => self.sign_out(Some("Your account was deleted.")),
            NetEvent::Failed { op, error } => self.on_failed(&op, error),
        }
        Vec::new()
    }

    fn note_failure(&mut self, op: &str, error: &NetError) {
        if error.is_unavailable() {
            self.connection.quorum_lost = true;
        }
        self.notify_error(format!("Could not {op}: {error}"));
    }

    fn on_failed(&mut self, op: &str, error: NetError) {
        if let Some(Overlay::Prompt(prompt)) = &mut self.overlay {
            if prompt.kind == PromptKind::DeleteAccountPassword && op == "delete account" {
                prompt.busy = false;
                prompt.error = Some(match error.kind {
                    ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => {
                        "Wrong password.".to_string()
                    }
                    _ => error.message.clone(),
                });
                if error.is_unavailable() {
                    self.connection.quorum_lost = true;
                }
                return;
            }
        }
        if let Some(Overlay::Accounts(browser)) = &mut self.overlay {
            browser.loading = false;
        }
        self.note_failure(op, &error);
    }

    /// Events were lost: reload the conversation list and the open history.
    fn resync(&mut self) -> Vec<Effect> {
        for conv in &mut self.conversations.list {
            if conv.id().is_some() {
                conv.log.loaded = false;
                conv.log.loading = false;
            }
        }
        let mut effects = vec![Effect::LoadConversations];
        if let Some(key) = self.conversations.open.clone() {
            effects.extend(self.load_if_needed(&key));
        }
        effects
    }
}
