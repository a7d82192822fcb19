//! The message cursor: scrolling, selection and deletion of own messages.

use super::*;

impl App {
    /// Moves the message cursor by `delta` (negative = older); loads older
    /// history at the top, follows new messages at the bottom.
    pub(super) fn move_cursor(&mut self, delta: isize) -> Vec<Effect> {
        // The user moves: a jump to a search result still loading is off.
        self.view.jump_to = None;
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

    pub(super) fn toggle_mark(&mut self) {
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

    pub(super) fn ask_delete_messages(&mut self) {
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

    pub(super) fn confirm(&mut self) -> Vec<Effect> {
        match self.overlay.take() {
            Some(Overlay::Confirm(ConfirmKind::DeleteMessages(message_ids))) => {
                self.view.marked.clear();
                vec![Effect::DeleteMessages { message_ids }]
            }
            Some(Overlay::Confirm(ConfirmKind::Quit { .. })) => {
                self.should_quit = true;
                Vec::new()
            }
            Some(Overlay::Confirm(ConfirmKind::Logout { .. })) => self.log_out(),
            other => {
                self.overlay = other;
                Vec::new()
            }
        }
    }
}
