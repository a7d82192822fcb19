//! Keeping what was typed across runs: which saves the state calls for,
//! what an earlier run left behind, and per-conversation drafts.
//!
//! The state stays pure: it compares the outbox and the drafts with what
//! it last handed to the store and returns [`Effect::SaveOutbox`] /
//! [`Effect::SaveDrafts`] for the changes; `store.rs` writes them. The
//! outbox is saved on every change, before anything else the event calls
//! for (so before the send, and before the frame that shows it queued);
//! drafts at most every [`DRAFT_SAVE_MS`] while typing, and at once on
//! quit and sign-out.

use super::*;

/// Least time between two saves of the drafts while typing: a `kill -9`
/// loses at most about this much typing in the compose box.
pub const DRAFT_SAVE_MS: u64 = 500;

/// What the store was last told, for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    /// The user whose saved state has been read back. Nothing is saved
    /// before that, so the empty outbox of a fresh sign-in never
    /// overwrites what an earlier run left.
    pub user: Option<String>,
    /// The store can keep things (a state directory exists).
    pub available: bool,
    outbox: Vec<QueuedMessage>,
    drafts: Vec<Draft>,
    drafts_at_ms: u64,
}

impl App {
    /// The saves that bring the store up to date; drafts only if
    /// `force_drafts` or [`DRAFT_SAVE_MS`] passed since their last save.
    pub(super) fn persist(&mut self, force_drafts: bool) -> Vec<Effect> {
        let Some(user) = self.saved.user.clone().filter(|_| self.saved.available) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        let messages = self.outbox.queued();
        if messages != self.saved.outbox {
            self.saved.outbox = messages.clone();
            effects.push(Effect::SaveOutbox {
                user: user.clone(),
                messages,
            });
        }
        let drafts = self.current_drafts();
        let due =
            force_drafts || self.now_ms.saturating_sub(self.saved.drafts_at_ms) >= DRAFT_SAVE_MS;
        if drafts != self.saved.drafts && due {
            self.saved.drafts = drafts.clone();
            self.saved.drafts_at_ms = self.now_ms;
            effects.push(Effect::SaveDrafts { user, drafts });
        }
        effects
    }

    /// Every conversation's unsent text, the open one's compose box included.
    pub fn current_drafts(&self) -> Vec<Draft> {
        let open = self
            .conversations
            .open
            .clone()
            .map(|key| (key, self.draft_text()));
        let mut drafts: Vec<Draft> = self
            .drafts
            .iter()
            .map(|(key, text)| (key.clone(), text.clone()))
            .chain(open)
            .filter(|(_, text)| !text.is_empty())
            .map(|(key, text)| Draft {
                to: send_to(&key),
                text,
            })
            .collect();
        drafts.sort();
        drafts
    }

    /// Before the state of a session is dropped: its last saves go out
    /// first, then nothing more is saved until the next sign-in has read
    /// its own state back.
    pub(super) fn end_saving(&mut self) {
        let flush = self.persist(true);
        self.deferred.extend(flush);
        if self.saved.user.is_some() {
            self.deferred.push(Effect::CloseSaved);
        }
        self.saved = SavedState::default();
    }

    pub(super) fn on_store(&mut self, event: StoreEvent) {
        match event {
            StoreEvent::Loaded {
                user,
                outbox,
                drafts,
                problems,
                available,
            } => {
                if !self.me.as_ref().is_some_and(|me| is_me(&user, me)) {
                    return; // for a session that is over
                }
                self.saved = SavedState {
                    user: Some(user),
                    available,
                    outbox: outbox.clone(),
                    drafts: drafts.clone(),
                    drafts_at_ms: self.now_ms,
                };
                for message in outbox {
                    self.restore_queued(message);
                }
                for draft in drafts {
                    let key = conv_key(&draft.to);
                    self.drafts.entry(key).or_insert(draft.text);
                }
                match self.outbox.len() {
                    0 => {}
                    1 => self.notify("Sending the message that was waiting."),
                    n => self.notify(format!("Sending the {n} messages that were waiting.")),
                }
                if !problems.is_empty() {
                    self.notify_error(problems.join(" "));
                }
            }
            StoreEvent::SaveFailed { error } => {
                self.notify_error(format!(
                    "Could not save unsent text to disk ({error}): it is only in memory."
                ));
            }
        }
    }

    /// Puts a message an earlier run left back in the outbox, with its
    /// request id, unless it is there already (kept from a session that
    /// ended elsewhere).
    fn restore_queued(&mut self, message: QueuedMessage) {
        if self.outbox.contains_request(&message.request_id) {
            return;
        }
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        self.outbox.push(OutboxItem {
            local_id,
            request_id: message.request_id,
            conv: conv_key(&message.to),
            to: message.to,
            body: message.body,
            reply_to: message.reply_to,
            in_flight: false,
            retry_at_ms: 0,
        });
    }

    /// Shows every outbox message in its conversation: those an earlier
    /// run left have no line yet. A new direct conversation is drafted
    /// for one to a user we have no conversation with (the server's list
    /// merges it once the conversation exists); one for a conversation
    /// not listed yet waits for the list.
    pub(super) fn place_outbox_entries(&mut self) {
        let me = self.me().to_string();
        let unplaced: Vec<OutboxItem> = self
            .outbox
            .items()
            .filter(|item| self.conversations.key_of_local(item.local_id).is_none())
            .cloned()
            .collect();
        for item in unplaced {
            let mut key = item.conv.clone();
            if let ConvKey::NewDirect(peer) = &key {
                if let Some(existing) = self.conversations.direct_with(peer) {
                    let existing = existing.key.clone();
                    self.outbox.rekey(&key, &existing);
                    key = existing;
                } else if self.conversations.get(&key).is_none() {
                    let draft = Conversation::new_direct(peer, self.now_ms);
                    self.conversations.list.push(draft);
                    self.conversations.sort();
                }
            }
            let now = self.now_ms;
            let Some(conv) = self.conversations.get_mut(&key) else {
                continue;
            };
            let mut entry = Entry::pending(
                item.local_id,
                item.request_id.clone(),
                me.clone(),
                item.body.clone(),
                now,
            );
            entry.reply_to = item.reply_to;
            if item.in_flight {
                entry.advance(Delivery::Accepted);
            }
            conv.log.push_pending(entry);
        }
    }

    /// The compose box goes with the conversation: leaving one keeps its
    /// text as a draft, opening one brings its draft back.
    pub(super) fn switch_compose(&mut self, to: &ConvKey) {
        // An edit or reply belongs to the conversation being left.
        self.cancel_compose_mode();
        let text = self.compose_body();
        match self.conversations.open.clone() {
            Some(from) => {
                if text.is_empty() {
                    self.drafts.remove(&from);
                } else {
                    self.drafts.insert(from, text);
                }
                self.compose = new_compose();
            }
            // Nothing was open: text typed (or kept) meanwhile stays.
            None if !text.is_empty() => return,
            None => {}
        }
        if let Some(draft) = self.take_draft(to) {
            self.compose = new_compose();
            self.compose.insert_str(draft);
        }
    }

    /// The draft of `key`; for a direct conversation also one kept from
    /// before it existed (written to the user by name).
    fn take_draft(&mut self, key: &ConvKey) -> Option<String> {
        if let Some(text) = self.drafts.remove(key) {
            return Some(text);
        }
        let peer = self
            .conversations
            .get(key)
            .filter(|c| c.kind == ConversationKind::Direct)?
            .name
            .clone();
        let by_name = self
            .drafts
            .keys()
            .find(|k| matches!(k, ConvKey::NewDirect(p) if p.eq_ignore_ascii_case(&peer)))?
            .clone();
        self.drafts.remove(&by_name)
    }
}

/// Where a message or draft for `key` goes.
pub(super) fn send_to(key: &ConvKey) -> SendTo {
    match key {
        ConvKey::Id(id) => SendTo::Conversation(*id),
        ConvKey::NewDirect(peer) => SendTo::User(peer.clone()),
    }
}

fn conv_key(to: &SendTo) -> ConvKey {
    match to {
        SendTo::Conversation(id) => ConvKey::Id(*id),
        SendTo::User(peer) => ConvKey::NewDirect(peer.clone()),
    }
}
