//! Results and notifications from the network layer.

use super::*;

impl App {
    pub(super) fn on_net(&mut self, event: NetEvent) -> Vec<Effect> {
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
                // Not again and again: a jump to a search result stops.
                self.view.jump_to = None;
                self.note_failure("load history", &error);
            }
            NetEvent::Sent { local_id, message } => return self.on_sent(local_id, message),
            NetEvent::SendFailed { local_id, error } => self.on_send_failed(local_id, error),
            NetEvent::MessageArrived(message) => return self.on_message(message),
            NetEvent::MessageChanged(message) => self.on_message_changed(&message),
            NetEvent::EditSaved(message) => self.on_edit_saved(&message),
            NetEvent::EditFailed {
                message_id,
                body,
                error,
            } => self.on_edit_failed(message_id, body, &error),
            NetEvent::MessagesDeleted {
                conversation_id,
                message_ids,
            } => return self.on_deleted(conversation_id, &message_ids),
            NetEvent::ReadReceipt {
                conversation_id,
                reader,
                up_to,
            } => self.on_read_receipt(conversation_id, &reader, up_to),
            NetEvent::Membership {
                conversation,
                user,
                change,
            } => return self.on_membership(conversation, &user, &change),
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
            NetEvent::SearchResults {
                conversation_id,
                query,
                before,
                messages,
                more,
            } => self.on_search_results(conversation_id, &query, before, messages, more),
            NetEvent::Typing {
                conversation_id,
                user,
                expires_in_ms,
            } => self.on_typing(conversation_id, &user, expires_in_ms),
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
            // A stream of a session that already ended: nothing to do.
            NetEvent::SubscriptionFailed(_) if self.screen != Screen::Chat => {}
            NetEvent::SubscriptionFailed(error) => {
                if error.kind == ErrorKind::Unauthenticated {
                    self.session_ended();
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
            NetEvent::Answer { server, rtt } => {
                self.connection.observe_answer(&server, rtt, self.now_ms);
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
            NetEvent::AccountCount {
                pattern,
                count,
                complete,
            } => {
                if let Some(Overlay::Accounts(browser)) = &mut self.overlay {
                    if browser.searched == pattern {
                        browser.total = count.map(|n| (n, complete));
                    }
                }
            }
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
            NetEvent::AccountDeleted => {
                // Nothing of it can ever be sent: the saved copy goes too.
                self.outbox.clear();
                self.drafts.clear();
                self.compose = new_compose();
                self.sign_out(Some("Your account was deleted."));
                // Ends the local session: stream, pending sends, token.
                return vec![Effect::Logout];
            }
            NetEvent::Failed { op, error } => self.on_failed(&op, error),
        }
        Vec::new()
    }

    pub(super) fn note_failure(&mut self, op: &str, error: &NetError) {
        if error.is_unavailable() {
            self.connection.quorum_lost = true;
        }
        self.notify_error(format!("Could not {op}: {error}"));
    }

    pub(super) fn on_failed(&mut self, op: &str, error: NetError) {
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
        match &mut self.overlay {
            Some(Overlay::Accounts(browser)) => browser.loading = false,
            Some(Overlay::Search(panel)) => panel.loading = false,
            _ => {}
        }
        self.note_failure(op, &error);
    }

    /// Events were lost: reload the conversation list and the open history.
    pub(super) fn resync(&mut self) -> Vec<Effect> {
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
