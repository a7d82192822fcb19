//! Editing one of our messages and answering one: the two modes of the
//! compose box, and what the cluster says about our edits.
//!
//! While editing, the box holds the message's text and what it held
//! before is set aside (it stays the conversation's draft, on disk too);
//! leaving the mode brings it back. A reply keeps what is typed: leaving
//! the mode only forgets which message it answers.

use super::*;

/// What the compose box is doing besides writing a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeMode {
    /// The box holds our message `message_id`'s new text; Enter saves it.
    /// `draft` is what the box held before.
    Editing { message_id: u64, draft: String },
    /// The next message sent answers `message_id`, by `sender`, whose
    /// text was `text` (shown as a one-line quote).
    Replying {
        message_id: u64,
        sender: String,
        text: String,
    },
}

impl App {
    /// The open conversation's unsent text: what was set aside while
    /// editing, else the compose box.
    pub fn draft_text(&self) -> String {
        match &self.compose_mode {
            Some(ComposeMode::Editing { draft, .. }) => draft.clone(),
            _ => self.compose_body(),
        }
    }

    /// Leaves editing or replying (the draft back in the box); false if
    /// the box was in neither mode.
    pub(super) fn cancel_compose_mode(&mut self) -> bool {
        match self.compose_mode.take() {
            Some(ComposeMode::Editing { draft, .. }) => {
                self.compose = new_compose();
                self.compose.insert_str(draft);
                true
            }
            Some(ComposeMode::Replying { .. }) => true,
            None => false,
        }
    }

    /// `e` on a message: edit it, if it is one of ours the cluster has.
    pub(super) fn edit_selected(&mut self) {
        match self.cursor_entry() {
            Some(entry) if entry.is_own() && entry.id.is_some() => {
                let key = entry.key();
                self.start_edit(key);
            }
            Some(entry) if entry.is_own() => {
                self.notify_error("This message is not sent yet: it can be edited once it is.");
            }
            Some(_) => self.notify_error("Only your own messages can be edited."),
            None => self.notify("No message selected."),
        }
    }

    /// Up on an empty compose box: edit our newest sent message in the
    /// open conversation. With text in the box, Up moves its cursor a
    /// line up as usual.
    pub(super) fn edit_last(&mut self) {
        if !self.compose_body().is_empty() {
            self.compose.move_cursor(ratatui_textarea::CursorMove::Up);
            return;
        }
        let last = self.conversations.open().and_then(|c| {
            c.log
                .entries
                .iter()
                .rev()
                .find(|e| e.is_own() && e.id.is_some())
                .map(Entry::key)
        });
        match last {
            Some(key) => self.start_edit(key),
            None => self.notify("Nothing of yours to edit here yet."),
        }
    }

    /// Puts the text of our message `key` in the compose box for editing:
    /// the text of an edit that failed, if there is one, so it is not lost.
    fn start_edit(&mut self, key: EntryKey) {
        let Some((message_id, text)) = self.conversations.open().and_then(|c| {
            let entry = c.log.entries.get(c.log.position(key)?)?;
            let text = match &entry.edit_failed {
                Some((text, _)) => text.clone(),
                None => entry.text().to_string(),
            };
            Some((entry.id?, text))
        }) else {
            return;
        };
        // Editing another message while editing: the draft set aside stays.
        if matches!(self.compose_mode, Some(ComposeMode::Replying { .. })) {
            self.compose_mode = None;
        }
        let draft = match self.compose_mode.take() {
            Some(ComposeMode::Editing { draft, .. }) => draft,
            _ => self.compose_body(),
        };
        self.compose_mode = Some(ComposeMode::Editing { message_id, draft });
        self.compose = new_compose();
        self.compose.insert_str(text);
        self.focus = Focus::Compose;
    }

    /// `R` on a message: the next message sent answers it.
    pub(super) fn reply_to_selected(&mut self) {
        let Some((message_id, sender, text)) = self
            .cursor_entry()
            .and_then(|e| Some((e.id?, e.sender.clone(), e.text().to_string())))
        else {
            let text = if self.cursor_entry().is_some() {
                "This message is not sent yet: it can be answered once it is."
            } else {
                "No message selected."
            };
            self.notify_error(text);
            return;
        };
        if matches!(self.compose_mode, Some(ComposeMode::Editing { .. })) {
            self.cancel_compose_mode();
        }
        self.compose_mode = Some(ComposeMode::Replying {
            message_id,
            sender,
            text,
        });
        self.focus = Focus::Compose;
    }

    /// Enter while editing: sends the new text; the box gets its draft
    /// back. The message shows the new text, marked as being saved, until
    /// the cluster answers.
    pub(super) fn save_edit(&mut self, message_id: u64) -> Vec<Effect> {
        let body = self.compose_body();
        if body.trim().is_empty() {
            self.notify_error(
                "A message cannot be edited to nothing (Esc: cancel; d in the messages deletes).",
            );
            return Vec::new();
        }
        if self.refuse_too_long(&body, "save") {
            return Vec::new();
        }
        let Some(entry) = self
            .conversations
            .open_mut()
            .and_then(|c| c.log.find_id_mut(message_id))
        else {
            self.cancel_compose_mode();
            self.keep_in_compose(&body);
            self.notify_error(
                "That message is gone (deleted): your text is in the box, to send as a new one.",
            );
            return Vec::new();
        };
        entry.edit_failed = None;
        let unchanged = entry.text() == body;
        if !unchanged {
            entry.edit_pending = Some(body.clone());
        }
        self.cancel_compose_mode();
        if unchanged {
            self.notify("Nothing changed.");
            return Vec::new();
        }
        let request_id = self.new_request_id("e");
        vec![Effect::EditMessage {
            message_id,
            request_id,
            body,
        }]
    }

    /// The cluster saved our edit.
    pub(super) fn on_edit_saved(&mut self, message: &Message) {
        if let Some(entry) = self
            .conversations
            .by_id_mut(message.conversation_id)
            .and_then(|c| c.log.find_id_mut(message.id))
        {
            entry.edit_pending = None;
            entry.apply_change(message, false);
        }
    }

    /// The cluster refused our edit (or could not be reached): the
    /// message shows its old text again and keeps the new one for `e`.
    pub(super) fn on_edit_failed(&mut self, message_id: u64, body: String, error: &NetError) {
        if error.is_unavailable() {
            self.connection.quorum_lost = true;
        }
        let entry = self
            .conversations
            .list
            .iter_mut()
            .find_map(|c| c.log.find_id_mut(message_id));
        match entry {
            Some(entry) => {
                entry.edit_pending = None;
                entry.edit_failed = Some((body, error.message.clone()));
                self.notify_error(format!(
                    "Edit not saved: {error} (e on the message: try again, your text is kept)"
                ));
            }
            // The message is gone (deleted meanwhile): the text goes to
            // the compose box.
            None => {
                self.keep_in_compose(&body);
                self.notify_error(format!(
                    "Edit not saved: {error} (your text is in the compose box)"
                ));
            }
        }
    }

    /// Keeps `text` where it will be found: after what the compose box
    /// holds, or while editing, after the draft set aside.
    fn keep_in_compose(&mut self, text: &str) {
        let join = |before: &str| {
            if before.is_empty() {
                text.to_string()
            } else {
                format!("{before}\n{text}")
            }
        };
        match &mut self.compose_mode {
            Some(ComposeMode::Editing { draft, .. }) => *draft = join(draft),
            _ => {
                let kept = join(&self.compose_body());
                self.compose = new_compose();
                self.compose.insert_str(kept);
            }
        }
    }

    /// A message was edited or its reactions changed (anyone's).
    pub(super) fn on_message_changed(&mut self, message: &Message) {
        if let Some(entry) = self
            .conversations
            .by_id_mut(message.conversation_id)
            .and_then(|c| c.log.find_id_mut(message.id))
        {
            entry.apply_change(message, true);
        }
    }
}
