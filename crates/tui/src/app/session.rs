//! Signing in, creating an account, signing out, and a session that ended
//! elsewhere.

use super::*;
use raftchat_proto::contract::MIN_PASSWORD_CHARS;

impl App {
    pub(super) fn submit_sign_in(&mut self, create: bool) -> Vec<Effect> {
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
        if create && password.chars().count() < MIN_PASSWORD_CHARS {
            // The server says the same; saying it here saves a round trip.
            self.sign_in.field = Field::Password;
            self.sign_in.error = Some(format!(
                "Choose a password of at least {MIN_PASSWORD_CHARS} characters."
            ));
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

    pub(super) fn signed_in(&mut self, username: String) -> Vec<Effect> {
        self.sign_in.pending = None;
        self.sign_in.error = None;
        self.sign_in.clear_password();
        self.me = Some(username.clone());
        self.screen = Screen::Chat;
        self.focus = Focus::Sidebar;
        self.conversations = Conversations::default();
        self.view = MessageView::default();
        self.connection.quorum_lost = false;
        // Usernames are unique ignoring case.
        if let Some(parked) = self.parked.take().filter(|p| {
            self.me
                .as_ref()
                .is_some_and(|me| p.user.eq_ignore_ascii_case(me))
        }) {
            self.outbox = parked.outbox;
            self.drafts = parked.drafts;
            match self.outbox.len() {
                0 => {}
                1 => self.notify("Sending the message that was waiting."),
                n => self.notify(format!("Sending the {n} messages that were waiting.")),
            }
        }
        // What an earlier run left unsent (answered before the next frame).
        vec![
            Effect::LoadSaved { user: username },
            Effect::LoadConversations,
            Effect::Subscribe,
        ]
    }

    pub(super) fn sign_in_failed(&mut self, error: NetError) {
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

    /// The session ended elsewhere (a password change, a log-out on
    /// another device, expiry): back to sign-in, keeping the messages
    /// waiting to be sent and the compose box for the same user's next
    /// sign-in.
    pub(super) fn session_ended(&mut self) {
        // Saved as it stands, before it is moved aside (saving after would
        // write an empty outbox over it).
        self.end_saving();
        // What was being edited is not kept: the draft set aside is.
        self.cancel_compose_mode();
        let waiting = self.outbox.len();
        let drafted = !self.compose_body().trim().is_empty();
        let mut info = "Your session ended (password changed, signed out elsewhere, or expired): \
                        sign in again."
            .to_string();
        if let Some(user) = self.me.clone().filter(|_| waiting > 0 || drafted) {
            let mut outbox = std::mem::take(&mut self.outbox);
            outbox.reset();
            let mut drafts = self.drafts.clone();
            if let Some(open) = self.conversations.open.clone().filter(|_| drafted) {
                drafts.insert(open, self.compose_body());
            }
            self.parked = Some(Parked {
                user,
                outbox,
                drafts,
            });
            let messages = match waiting {
                0 => String::new(),
                1 => "1 message waiting to be sent".to_string(),
                n => format!("{n} messages waiting to be sent"),
            };
            info.push_str(&match (messages.is_empty(), drafted) {
                (true, _) => " Your draft is kept.".to_string(),
                (false, true) => format!(" {messages} and your draft are kept."),
                (false, false) => format!(" {messages} are kept."),
            });
        }
        self.sign_out(Some(&info));
    }

    /// Back to the sign-in screen; everything of the session is dropped
    /// (what is unsent stays saved on disk for the same user's next
    /// sign-in).
    pub(super) fn sign_out(&mut self, info: Option<&str>) {
        self.end_saving();
        self.screen = Screen::SignIn;
        self.me = None;
        self.overlay = None;
        self.focus = Focus::Sidebar;
        self.conversations = Conversations::default();
        self.view = MessageView::default();
        self.outbox.clear();
        self.compose = new_compose();
        self.compose_mode = None;
        self.drafts.clear();
        self.presence.clear();
        self.connection.stream = StreamLink::Off;
        self.sign_in.pending = None;
        self.sign_in.clear_password();
        self.sign_in.field = Field::Password;
        self.sign_in.info = info.map(str::to_string);
    }
}

/// What a session that ended elsewhere left unsent: given back when the
/// same user signs in again (another user's sign-in drops it; it is on
/// disk too, when the store works). The outbox keeps its request ids,
/// which the cluster remembers per account, so a message that did get
/// through before is not stored twice.
#[derive(Debug, Clone)]
pub struct Parked {
    user: String,
    outbox: Outbox,
    drafts: HashMap<ConvKey, String>,
}
