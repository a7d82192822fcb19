//! Typing notices, both ways.
//!
//! Out: while the user changes the text of a new message or a reply in a
//! conversation's compose box, [`Effect::Typing`] goes out on the first
//! change and then at most every [`TYPING_REPEAT_MS`] while the text keeps
//! changing. Not while editing one of our messages, not for an empty box,
//! and nothing is sent when typing stops: the others forget the notice
//! after its expiry or at our next message.
//!
//! In: a notice of someone else shows in its conversation until
//! `expires_in_ms` after it (by the app's clock, [`AppEvent::Tick`]) or
//! until that user's next message there.

use super::*;

/// Least time between two notices for one conversation while typing (the
/// server relays them with an expiry of 5 s).
pub const TYPING_REPEAT_MS: u64 = 3_000;
/// The longest a notice is shown, whatever expiry it carries.
const TYPING_SHOWN_MAX_MS: u64 = 60_000;

/// Someone typing in a conversation, as their last notice said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub user: String,
    /// Shown while the clock is before this (Unix ms).
    pub until_ms: u64,
}

/// What the compose box held before an input event: whose box, whether
/// it was editing a message, and its text.
pub(super) type ComposeSnapshot = (Option<ConvKey>, bool, String);

/// "bob is typing…", "bob and carol are typing…", "3 people are
/// typing…" (`None` for nobody). Names are as given: the caller makes
/// them safe to print.
pub fn typing_label(users: &[&str]) -> Option<String> {
    match users {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [one, two] => Some(format!("{one} and {two} are typing…")),
        more => Some(format!("{} people are typing…", more.len())),
    }
}

impl Conversation {
    /// Who is typing here at `now_ms`, in the order they started.
    pub fn typing_at(&self, now_ms: u64) -> Vec<&str> {
        self.typing
            .iter()
            .filter(|t| t.until_ms > now_ms)
            .map(|t| t.user.as_str())
            .collect()
    }
}

impl App {
    /// The line for the open conversation: who is typing there now.
    pub fn typing_label(&self) -> Option<String> {
        let conv = self.conversations.open()?;
        typing_label(&conv.typing_at(self.now_ms))
    }

    /// A notice arrived: `user` types in `conversation_id`.
    pub(super) fn on_typing(&mut self, conversation_id: u64, user: &str, expires_in_ms: u32) {
        if is_me(user, self.me()) {
            return;
        }
        let until_ms = self
            .now_ms
            .saturating_add(u64::from(expires_in_ms).min(TYPING_SHOWN_MAX_MS));
        let Some(conv) = self.conversations.by_id_mut(conversation_id) else {
            return;
        };
        match conv.typing.iter_mut().find(|t| is_me(&t.user, user)) {
            Some(typist) => typist.until_ms = until_ms,
            None => conv.typing.push(Typist {
                user: user.to_string(),
                until_ms,
            }),
        }
    }

    /// `sender`'s message arrived in `conversation_id`: they stopped.
    pub(super) fn typing_stopped(&mut self, conversation_id: u64, sender: &str) {
        if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
            conv.typing.retain(|t| !is_me(&t.user, sender));
        }
    }

    /// Forgets the notices that expired (on every tick).
    pub(super) fn expire_typing(&mut self) {
        let now = self.now_ms;
        for conv in &mut self.conversations.list {
            conv.typing.retain(|t| t.until_ms > now);
        }
    }

    /// The compose box as typing notices see it.
    pub(super) fn compose_snapshot(&self) -> ComposeSnapshot {
        (
            self.conversations.open.clone(),
            matches!(self.compose_mode, Some(ComposeMode::Editing { .. })),
            self.compose_body(),
        )
    }

    /// After an event: a notice if the user changed the text of a new
    /// message (or reply) in the box of an existing conversation since
    /// `before` (taken before a key or paste; `None` for other events)
    /// and none went out for it in the last [`TYPING_REPEAT_MS`].
    pub(super) fn typing_notice(&mut self, before: Option<ComposeSnapshot>) -> Vec<Effect> {
        let (key, editing, text) = self.compose_snapshot();
        let id = match &key {
            Some(ConvKey::Id(id)) if !editing && !text.is_empty() => Some(*id),
            _ => None,
        };
        // Emptied, sent, switched away or editing: the next change starts
        // afresh (with a notice at once).
        if self.typing_sent.is_some_and(|(sent, _)| Some(sent) != id) {
            self.typing_sent = None;
        }
        let Some(id) = id else {
            return Vec::new();
        };
        let typed = before.is_some_and(|(was_key, was_editing, was_text)| {
            was_key == key && !was_editing && was_text != text
        });
        let recent = self
            .typing_sent
            .is_some_and(|(_, at)| self.now_ms.saturating_sub(at) < TYPING_REPEAT_MS);
        if !typed || recent {
            return Vec::new();
        }
        self.typing_sent = Some((id, self.now_ms));
        vec![Effect::Typing {
            conversation_id: id,
        }]
    }
}
