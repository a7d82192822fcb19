//! Composing and sending: the outbox, delivery marks, retries.

use raftchat_proto::contract::MAX_BODY_BYTES;

use super::*;

impl App {
    /// Whether `body` is over the server's limit, saying so if it is: the
    /// server would refuse it, and no retry could help, so the text stays
    /// in the box to be shortened and `again` (sent, saved) after.
    pub(super) fn refuse_too_long(&mut self, body: &str, again: &str) -> bool {
        if body.len() <= MAX_BODY_BYTES {
            return false;
        }
        self.notify_error(format!(
            "The message is {} bytes; the limit is {MAX_BODY_BYTES}. Shorten it and {again} again.",
            body.len()
        ));
        true
    }

    /// A fresh request id for a write other than a send (`kind`: `e` an
    /// edit, `r` a reaction), unique for this run like a send's.
    pub(super) fn new_request_id(&mut self, kind: &str) -> String {
        let n = self.next_local_id;
        self.next_local_id += 1;
        format!("{}-{kind}{n}", self.config.request_prefix)
    }

    pub(super) fn send_compose(&mut self) -> Vec<Effect> {
        let body = self.compose_body();
        if body.trim().is_empty() {
            return Vec::new();
        }
        if self.refuse_too_long(&body, "send") {
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
        let reply_to = match self.compose_mode.take() {
            Some(ComposeMode::Replying { message_id, .. }) => message_id,
            other => {
                self.compose_mode = other;
                0
            }
        };
        if let Some(conv) = self.conversations.get_mut(&key) {
            let mut entry = Entry::pending(local_id, request_id.clone(), me, body.clone(), now);
            entry.reply_to = reply_to;
            conv.log.push_pending(entry);
            conv.last_activity_ms = conv.last_activity_ms.max(now);
        }
        self.conversations.sort();
        self.outbox.push(OutboxItem {
            local_id,
            request_id,
            conv: key,
            to,
            body,
            reply_to,
            in_flight: false,
            retry_at_ms: 0,
        });
        self.compose = new_compose();
        self.view.anchor = None;
        Vec::new()
    }

    /// Sends the head of the outbox when it is due; its mark becomes Accepted.
    pub(super) fn pump_outbox(&mut self) -> Vec<Effect> {
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
            reply_to: item.reply_to,
        }]
    }

    pub(super) fn on_sent(&mut self, local_id: u64, message: Message) -> Vec<Effect> {
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
            if let Some(text) = self.drafts.remove(&from) {
                self.drafts
                    .entry(ConvKey::Id(message.conversation_id))
                    .or_insert(text);
            }
            if !existed {
                effects.push(Effect::LoadConversations);
            }
            // Until its history is loaded, nothing in it counts as read.
            let real = ConvKey::Id(message.conversation_id);
            if self.conversations.open.as_ref() == Some(&real) {
                effects.extend(self.load_if_needed(&real));
            }
        }
        if let Some(conv) = self.conversations.by_id_mut(message.conversation_id) {
            conv.log.commit_local(local_id, &message);
            conv.note_message(&message);
        }
        self.conversations.sort();
        effects
    }

    pub(super) fn on_send_failed(&mut self, local_id: u64, error: NetError) {
        // Its session ended (a retry could never work): it waits for the
        // next sign-in instead.
        // (`session_ended` takes the whole outbox, this one included.)
        if error.kind == ErrorKind::Unauthenticated && self.outbox.contains(local_id) {
            self.session_ended();
            return;
        }
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
    pub(super) fn retry_failed(&mut self) -> Vec<Effect> {
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
            reply_to: entry.reply_to,
            in_flight: false,
            retry_at_ms: 0,
        };
        if !self.outbox.contains(local_id) {
            self.outbox.push(item);
        }
        Vec::new()
    }
}
