//! Conversations and their messages as the server reports them; "read when shown".

use super::*;

impl App {
    pub(super) fn me(&self) -> &str {
        self.me.as_deref().unwrap_or_default()
    }

    /// Opens `key`, loading its history the first time; with unread
    /// messages, the cursor goes to the first of them.
    pub(super) fn open_conversation(&mut self, key: ConvKey) -> Vec<Effect> {
        if self.conversations.open.as_ref() != Some(&key) {
            self.switch_compose(&key);
            let unread = self.conversations.get(&key).is_some_and(|c| c.unread > 0);
            self.view = MessageView {
                jump_to_unread: unread,
                ..MessageView::default()
            };
        }
        self.conversations.open = Some(key.clone());
        self.conversations.highlighted = None;
        self.load_if_needed(&key)
    }

    /// Opens the conversation under the sidebar's cursor.
    pub(super) fn open_highlighted(&mut self) -> Vec<Effect> {
        match self.conversations.highlighted.take() {
            Some(key) => self.open_conversation(key),
            None => Vec::new(),
        }
    }

    /// Opens the next conversation (after the open one, round the list)
    /// with unread messages.
    pub(super) fn open_next_unread(&mut self) -> Vec<Effect> {
        let list = &self.conversations.list;
        let open = self.conversations.open_index();
        let start = open.map_or(0, |i| i + 1);
        let next = (0..list.len())
            .map(|step| (start + step) % list.len())
            .find(|&i| list[i].unread > 0 && Some(i) != open);
        match next {
            Some(i) => {
                let key = list[i].key.clone();
                self.focus = Focus::Messages;
                self.open_conversation(key)
            }
            None => {
                self.notify("No other conversation has unread messages.");
                Vec::new()
            }
        }
    }

    /// Puts the cursor on the first unread message of a conversation just
    /// opened, once its history is there, and marks where the new messages
    /// start.
    pub(super) fn jump_to_first_unread(&mut self) {
        if !self.view.jump_to_unread {
            return;
        }
        let Some(conv) = self.conversations.open() else {
            return;
        };
        if !conv.log.loaded {
            return;
        }
        self.view.jump_to_unread = false;
        let entries = &conv.log.entries;
        let Some(first) = entries
            .iter()
            .position(|e| !e.is_own() && e.id.is_some_and(|id| id > conv.read_up_to))
        else {
            return;
        };
        self.view.new_from = entries[first].id;
        if first + 1 < entries.len() {
            self.view.anchor = Some(entries[first].key());
        }
    }

    pub(super) fn load_if_needed(&mut self, key: &ConvKey) -> Vec<Effect> {
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
    pub(super) fn open_first_if_none(&mut self) -> Vec<Effect> {
        if self.conversations.open.is_some() {
            return Vec::new();
        }
        match self.conversations.list.first().map(|c| c.key.clone()) {
            Some(first) => self.open_conversation(first),
            None => Vec::new(),
        }
    }

    /// Moves the sidebar's cursor; what it passes is not opened (`Enter`
    /// opens it).
    pub(super) fn select_conversation(&mut self, delta: isize) -> Vec<Effect> {
        let list = &self.conversations.list;
        if list.is_empty() {
            return Vec::new();
        }
        let current = self.conversations.cursor_index().unwrap_or(0);
        let next = current.saturating_add_signed(delta).min(list.len() - 1);
        let key = list[next].key.clone();
        self.conversations.highlighted =
            (self.conversations.open.as_ref() != Some(&key)).then_some(key);
        Vec::new()
    }

    pub(super) fn on_conversations(&mut self, list: Vec<ConversationInfo>) -> Vec<Effect> {
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
        effects.extend(self.lookup_unknown_presence());
        effects
    }

    /// Asks for the presence of every direct-conversation peer not known yet.
    fn lookup_unknown_presence(&self) -> Vec<Effect> {
        let unknown: Vec<String> = self
            .conversations
            .list
            .iter()
            .filter(|c| c.kind == ConversationKind::Direct)
            .map(|c| c.name.clone())
            .filter(|name| !self.presence.contains_key(name))
            .collect();
        if unknown.is_empty() {
            return Vec::new();
        }
        vec![Effect::LookupPresence { usernames: unknown }]
    }

    pub(super) fn on_history(
        &mut self,
        info: ConversationInfo,
        messages: Vec<Message>,
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
            conv.note_mention(message, &me);
        }
        conv.log.loading = false;
        if before == 0 {
            conv.log.loaded = true;
            conv.log.more = more;
        } else {
            conv.log.more = more;
        }
    }

    pub(super) fn on_message(&mut self, message: Message) -> Vec<Effect> {
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
        let open = self.conversations.open.clone();
        let mut alert = None;
        if let Some(conv) = self.conversations.by_id_mut(message.conversation_id) {
            // A conversation listed after this message was applied already
            // counts it as unread: only newer messages add to the count.
            let already_counted = message.id <= conv.last_message_id;
            let is_new = conv.log.insert_committed(&message, &me);
            conv.note_message(&message);
            let named = conv.note_mention(&message, &me);
            if is_new
                && !already_counted
                && !is_me(&message.sender, &me)
                && message.id > conv.read_up_to
            {
                conv.unread = conv.unread.saturating_add(1);
                // A mention in a group calls for us even in the open
                // conversation: the screen may not be watched.
                if named {
                    alert = Some(format!(
                        "{} mentioned you in #{}",
                        message.sender, conv.name
                    ));
                } else if open.as_ref() != Some(&conv.key) {
                    alert = Some(match conv.kind {
                        ConversationKind::Group => {
                            format!("New message from {} in #{}", message.sender, conv.name)
                        }
                        ConversationKind::Direct => format!("New message from {}", message.sender),
                    });
                }
            }
        }
        if let Some(text) = alert {
            effects.extend(self.alert(text));
        }
        self.conversations.sort();
        // A commit seen means the cluster works again: resend promptly.
        self.connection.quorum_lost = false;
        self.outbox.hurry();
        effects
    }

    /// A new message outside the open conversation, or one mentioning us:
    /// the bell and a desktop notification, as configured (`text` says
    /// who, never what).
    fn alert(&self, text: String) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.config.bell {
            effects.push(Effect::Bell);
        }
        if self.config.notify != crate::config::Notify::Off {
            effects.push(Effect::Notify {
                how: self.config.notify,
                title: "raftchat".to_string(),
                body: text,
            });
        }
        effects
    }

    /// Messages were deleted for everyone. Unread counts may include them:
    /// the server's counts are fetched again when that is possible.
    pub(super) fn on_deleted(&mut self, conversation_id: u64, ids: &[u64]) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
            conv.log.remove_ids(ids);
            if conv.unread > 0 {
                effects.push(Effect::LoadConversations);
            }
        }
        self.view.marked.retain(|id| !ids.contains(id));
        let anchor_gone = self.view.anchor.is_some_and(|key| {
            self.conversations
                .open()
                .is_none_or(|c| c.log.position(key).is_none())
        });
        if anchor_gone {
            self.view.anchor = None;
        }
        effects
    }

    pub(super) fn on_read_receipt(&mut self, conversation_id: u64, reader: &str, up_to: u64) {
        let me = self.me().to_string();
        if !is_me(reader, &me) {
            // Someone else read: "seen" under our messages up to there.
            if let Some(conv) = self.conversations.by_id_mut(conversation_id) {
                let seen = conv.seen.entry(reader.to_string()).or_default();
                *seen = (*seen).max(up_to);
            }
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

    pub(super) fn on_membership(
        &mut self,
        info: ConversationInfo,
        user: &str,
        change: &str,
    ) -> Vec<Effect> {
        let me = self.me().to_string();
        let gone = matches!(change, "left" | "account_deleted");
        if gone && is_me(user, &me) {
            self.conversations.list.retain(|c| c.id() != Some(info.id));
            if self.conversations.open == Some(ConvKey::Id(info.id)) {
                self.conversations.open = None;
                self.view = MessageView::default();
            }
            return Vec::new();
        }
        self.conversations.upsert(&info, false);
        if gone {
            self.notify(format!("{user} left {}", info.name));
        }
        let text = match change {
            "created" if info.kind == ConversationKind::Group => {
                Some(format!("{user} created #{}", info.name))
            }
            "joined" => Some(format!("{user} joined")),
            "left" => Some(format!("{user} left")),
            "account_deleted" => Some(format!("{user} deleted their account")),
            _ => None,
        };
        let now = self.now_ms;
        if let (Some(text), Some(conv)) = (text, self.conversations.by_id_mut(info.id)) {
            conv.notes.push(Note {
                after_id: conv.last_message_id,
                text,
                at_ms: now,
            });
        }
        // Someone wrote to us first: the direct conversation arrives here,
        // before its first message, and its peer's presence is not known.
        self.lookup_unknown_presence()
    }

    /// Marks what the message pane shows as read ("read when shown").
    pub(super) fn mark_shown_read(&mut self) -> Vec<Effect> {
        if self.overlay.is_some() {
            return Vec::new();
        }
        let anchor = self.view.anchor;
        let shown_below = self.view.shown_up_to;
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
        let shown_up_to = conv.log.newest_id_through(bottom).max(
            // Only ids loaded here: a report of an older frame could name
            // a message since deleted, never one not drawn.
            shown_below.min(conv.log.newest_id_through(conv.log.entries.len() - 1)),
        );
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
}
