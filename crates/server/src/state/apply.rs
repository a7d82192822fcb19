//! The command handlers. Each one validates everything first and mutates
//! only once nothing can fail, so a refused command changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::state::command::*;

use super::accounts::validate_password_hash;
use super::conversations::validate_group_name;
use super::presence::Transition;
use super::sessions::expired;
use super::store::Reaction;
use super::{ChatState, Conversations, Emitter};

/// Most ids `ReadUnread` returns or `DeleteMessages` accepts at once.
const MAX_BATCH_IDS: usize = 1000;

/// A message text: not empty, at most [`MAX_BODY_BYTES`].
pub fn validate_body(body: &str) -> Result<(), ChatError> {
    if body.is_empty() {
        return Err(ChatError::invalid("message body is empty"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ChatError::invalid(format!(
            "message body is {} bytes; the limit is {MAX_BODY_BYTES} bytes",
            body.len()
        )));
    }
    Ok(())
}

impl ChatState {
    pub(super) fn apply_command(
        &mut self,
        out: &mut Emitter<'_>,
        command: &Command,
    ) -> CommandResult {
        match command {
            Command::CreateAccount {
                username,
                password_hash,
            } => self.create_account(username, password_hash),
            Command::CreateSession {
                username,
                verified_hash,
                token_hash,
                expires_ms,
            } => self.create_session(username, verified_hash, token_hash, *expires_ms),
            Command::EndSession { session } => {
                let user = self.auth(session)?;
                self.sessions.remove(session);
                self.sessions_ended(out, user, vec![*session]);
                Ok(Outcome::Done)
            }
            Command::ChangePassword {
                session,
                verified_hash,
                new_hash,
            } => self.change_password(out, session, verified_hash, new_hash),
            Command::DeleteAccount {
                session,
                verified_hash,
            } => self.delete_account(out, session, verified_hash),
            Command::Send {
                session,
                target,
                body,
            } => self.send(out, session, target, body, 0),
            Command::SendReply {
                session,
                target,
                body,
                reply_to,
            } => self.send(out, session, target, body, *reply_to),
            Command::CreateGroup {
                session,
                name,
                members,
            } => self.create_group(out, session, name, members),
            Command::AddMember {
                session,
                conversation,
                username,
            } => self.add_member(out, session, *conversation, username),
            Command::LeaveGroup {
                session,
                conversation,
            } => self.leave_group(out, session, *conversation),
            Command::MarkRead {
                session,
                conversation,
                up_to,
            } => {
                let user = self.auth(session)?;
                self.conversations.member_of(*conversation, user)?;
                self.mark_read(out, *conversation, user, *up_to);
                Ok(Outcome::Done)
            }
            Command::ReadUnread {
                session,
                conversation,
                limit,
            } => self.read_unread(out, session, *conversation, *limit),
            Command::DeleteMessages { session, ids } => self.delete_messages(out, session, ids),
            Command::EditMessage { session, id, body } => {
                self.edit_message(out, session, *id, body)
            }
            Command::React { session, id, emoji } => self.react(out, session, *id, emoji),
            Command::SubscriptionOpened {
                replica,
                subscription,
                session,
            } => {
                let user = self.auth(session)?;
                let lease = self.now_ms.saturating_add(PRESENCE_LEASE_MS);
                let flips = self.presence.open(*replica, *subscription, user, lease);
                self.presence_changed(out, flips);
                Ok(Outcome::Done)
            }
            Command::SubscriptionClosed {
                replica,
                subscription,
            } => {
                let flips = self.presence.remove((*replica, *subscription));
                self.presence_changed(out, flips);
                Ok(Outcome::Done)
            }
            Command::PresenceLease { replica, until_ms } => {
                self.presence.set_lease(*replica, *until_ms);
                Ok(Outcome::Done)
            }
            Command::ReplicaStarted { replica } => {
                let flips = self.presence.drop_replica(*replica);
                self.presence_changed(out, flips);
                Ok(Outcome::Done)
            }
            // Lease expiry already ran at the start of the batch.
            Command::Tick => Ok(Outcome::Done),
            Command::SetRules { version } => {
                if *version > self.rules {
                    self.rules = *version;
                    self.rules_since_ms = self.now_ms;
                }
                Ok(Outcome::Done)
            }
            Command::RecordIncarnation {
                replica,
                incarnation,
                replace,
            } => match self.replicas.get(replica) {
                Some(known) if known != incarnation && !*replace => {
                    Err(ChatError::precondition(format!(
                        "replica {replica} is recorded with other storage: a replica whose \
                         storage was wiped must be removed and added back with --join"
                    )))
                }
                _ => {
                    self.replicas.insert(*replica, *incarnation);
                    Ok(Outcome::Done)
                }
            },
        }
    }

    /// The session's user at state time.
    fn auth(&self, session: &TokenHash) -> Result<UserId, ChatError> {
        self.sessions.check(session, self.now_ms)
    }

    fn name_of(&self, user: UserId) -> Result<String, ChatError> {
        // A valid session always belongs to an existing account; treat a
        // dangling one as expired rather than panicking.
        self.accounts
            .name(user)
            .map(str::to_owned)
            .ok_or_else(expired)
    }

    fn account_outcome(&self, user: UserId) -> Result<AccountView, ChatError> {
        self.account(user).ok_or_else(expired)
    }

    /// Drops the subscriptions of replicas whose lease has passed.
    pub(super) fn expire_leases(&mut self, out: &mut Emitter<'_>) {
        for replica in self.presence.expired(self.now_ms) {
            let flips = self.presence.drop_replica(replica);
            self.presence_changed(out, flips);
        }
    }

    /// Stamps `last_seen` and tells the user and their contacts.
    fn presence_changed(
        &mut self,
        out: &mut Emitter<'_>,
        flips: impl IntoIterator<Item = Transition>,
    ) {
        for (user, online) in flips {
            let now = self.now_ms;
            let Some(account) = self.accounts.get_mut(user) else {
                continue;
            };
            account.last_seen_ms = now;
            let name = account.username.clone();
            let mut recipients = BTreeSet::from([user]);
            for conv in self.conversations.of_user(user) {
                if let Some(c) = self.conversations.get(conv) {
                    recipients.extend(c.members.keys().copied());
                }
            }
            self.emit(
                out,
                recipients.into_iter().collect(),
                EventKind::Presence {
                    user: name,
                    online,
                    last_seen_ms: now,
                },
            );
        }
    }

    fn create_account(&mut self, username: &str, password_hash: &str) -> CommandResult {
        let id = self.accounts.create(username, password_hash, self.now_ms)?;
        Ok(Outcome::Account(self.account_outcome(id)?))
    }

    fn create_session(
        &mut self,
        username: &str,
        verified_hash: &str,
        token: &TokenHash,
        expires_ms: u64,
    ) -> CommandResult {
        let wrong = || ChatError::unauthenticated("wrong username or password");
        let user = self.accounts.find(username).ok_or_else(wrong)?;
        let account = self.accounts.get(user).ok_or_else(wrong)?;
        if account.password_hash != verified_hash {
            return Err(wrong());
        }
        if self.sessions.contains(token) {
            return Err(ChatError::exists(
                "session token already in use; log in again",
            ));
        }
        self.sessions.purge_expired(user, self.now_ms);
        self.sessions.insert(*token, user, expires_ms);
        Ok(Outcome::Session {
            account: self.account_outcome(user)?,
            unread: self.total_unread(user),
            expires_ms,
        })
    }

    fn change_password(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        verified: &str,
        new_hash: &str,
    ) -> CommandResult {
        validate_password_hash(new_hash)?;
        let user = self.auth(session)?;
        let account = self.accounts.get_mut(user).ok_or_else(expired)?;
        if account.password_hash != verified {
            return Err(ChatError::unauthenticated("wrong password"));
        }
        account.password_hash = new_hash.to_owned();
        let ended = self.sessions.revoke_all(user, Some(session));
        self.sessions_ended(out, user, ended);
        Ok(Outcome::Done)
    }

    fn delete_account(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        verified: &str,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let name = self.name_of(user)?;
        if self
            .accounts
            .get(user)
            .is_none_or(|a| a.password_hash != verified)
        {
            return Err(ChatError::unauthenticated("wrong password"));
        }
        // Offline first, while the contacts still share conversations.
        if self.presence.drop_user(user) {
            self.presence_changed(out, [(user, false)]);
        }
        let ended = self.sessions.revoke_all(user, None);
        self.sessions_ended(out, user, ended);
        let convs: Vec<ConversationId> = self.conversations.of_user(user).collect();
        for conv in convs {
            let remaining = self
                .conversations
                .remove_member(&mut *self.store, conv, user);
            if !remaining.is_empty() {
                let kind = EventKind::Membership {
                    conversation: conv,
                    user: name.clone(),
                    change: MembershipChange::AccountDeleted,
                };
                self.emit(out, remaining, kind);
            }
        }
        self.accounts.remove(user);
        Ok(Outcome::Done)
    }

    fn send(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        target: &Target,
        body: &str,
        reply_to: MessageId,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let sender = self.name_of(user)?;
        validate_body(body)?;
        // Where the original is, checked against the conversation below
        // (before a first direct message creates one).
        let original_home = match reply_to {
            0 => None,
            id => Some(self.store.home(id).ok_or_else(|| {
                ChatError::not_found(format!("reply_to: message {id} does not exist"))
            })?),
        };
        let not_here = || {
            ChatError::invalid(format!(
                "reply_to: message {reply_to} is not in this conversation"
            ))
        };
        let conv = match target {
            Target::User(name) => {
                let peer = self.accounts.require(name)?;
                if peer == user {
                    return Err(ChatError::invalid("you cannot send a message to yourself"));
                }
                match self.conversations.direct_between(user, peer) {
                    Some(conv) => conv,
                    None if original_home.is_some() => return Err(not_here()),
                    None => {
                        let peer_name = self.name_of(peer)?;
                        let conv = self.conversations.create_direct(
                            (user, sender.clone()),
                            (peer, peer_name),
                            self.now_ms,
                        );
                        let kind = EventKind::Membership {
                            conversation: conv,
                            user: sender.clone(),
                            change: MembershipChange::Created,
                        };
                        let mut both = vec![user, peer];
                        both.sort_unstable();
                        self.emit(out, both, kind);
                        conv
                    }
                }
            }
            Target::Group(_) => self.resolve(user, target)?,
            Target::Conversation(id) => {
                let c = self.conversations.member_of(*id, user)?;
                if c.kind == ConversationKind::Direct && c.members.len() < 2 {
                    return Err(ChatError::not_found(format!(
                        "'{}' has deleted their account",
                        c.display_name(user)
                    )));
                }
                *id
            }
        };
        if original_home.is_some_and(|home| home != conv) {
            return Err(not_here());
        }
        let view = self
            .conversations
            .post(
                &mut *self.store,
                conv,
                user,
                &sender,
                body,
                (self.now_ms, out.index),
                reply_to,
            )
            .ok_or_else(|| ChatError::not_found(format!("conversation {conv} does not exist")))?;
        let members = self
            .conversations
            .get(conv)
            .map(|c| c.member_ids())
            .unwrap_or_default();
        self.emit(out, members, EventKind::Message(view.clone()));
        Ok(Outcome::Sent(view))
    }

    fn create_group(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        name: &str,
        members: &[String],
    ) -> CommandResult {
        let user = self.auth(session)?;
        let creator = self.name_of(user)?;
        validate_group_name(name)?;
        if self.conversations.group_by_name(name).is_some() {
            return Err(ChatError::exists(format!(
                "a group named '{name}' already exists"
            )));
        }
        let mut ids = BTreeMap::from([(user, creator.clone())]);
        for member in members {
            let id = self.accounts.require(member)?;
            ids.insert(id, self.name_of(id)?);
        }
        let list: Vec<(UserId, String)> = ids.into_iter().collect();
        let conv = self.conversations.create_group(name, &list, self.now_ms);
        let kind = EventKind::Membership {
            conversation: conv,
            user: creator,
            change: MembershipChange::Created,
        };
        self.emit(out, list.iter().map(|(id, _)| *id).collect(), kind);
        self.conversation(user, conv).map(Outcome::Conversation)
    }

    fn add_member(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        conv: ConversationId,
        username: &str,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let c = self.conversations.member_of(conv, user)?;
        if c.kind != ConversationKind::Group {
            return Err(ChatError::precondition(
                "cannot add members to a direct conversation",
            ));
        }
        let new = self.accounts.require(username)?;
        let new_name = self.name_of(new)?;
        if c.members.contains_key(&new) {
            return Err(ChatError::exists(format!(
                "'{new_name}' is already a member of '{}'",
                c.name
            )));
        }
        self.conversations.add_member(conv, new, &new_name);
        let members = self
            .conversations
            .get(conv)
            .map(|c| c.member_ids())
            .unwrap_or_default();
        let kind = EventKind::Membership {
            conversation: conv,
            user: new_name,
            change: MembershipChange::Joined,
        };
        self.emit(out, members, kind);
        Ok(Outcome::Done)
    }

    fn leave_group(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        conv: ConversationId,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let name = self.name_of(user)?;
        let c = self.conversations.member_of(conv, user)?;
        if c.kind != ConversationKind::Group {
            return Err(ChatError::precondition(
                "cannot leave a direct conversation",
            ));
        }
        let recipients = c.member_ids();
        self.conversations
            .remove_member(&mut *self.store, conv, user);
        let kind = EventKind::Membership {
            conversation: conv,
            user: name,
            change: MembershipChange::Left,
        };
        self.emit(out, recipients, kind);
        Ok(Outcome::Done)
    }

    /// Moves a member's read pointer forward; a receipt goes to all members
    /// when it moved.
    fn mark_read(
        &mut self,
        out: &mut Emitter<'_>,
        conv: ConversationId,
        user: UserId,
        up_to: MessageId,
    ) {
        let Some(moved) = self
            .conversations
            .mark_read(&*self.store, conv, user, up_to)
        else {
            return;
        };
        let reader = self.accounts.name(user).unwrap_or_default().to_owned();
        let members = self
            .conversations
            .get(conv)
            .map(|c| c.member_ids())
            .unwrap_or_default();
        self.emit(
            out,
            members,
            EventKind::ReadReceipt {
                conversation: conv,
                reader,
                up_to: moved,
            },
        );
    }

    fn read_unread(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let limit = limit as usize;
        if limit == 0 || limit > MAX_BATCH_IDS {
            return Err(ChatError::invalid(format!(
                "limit must be between 1 and {MAX_BATCH_IDS}"
            )));
        }
        let convs: Vec<ConversationId> = match conversation {
            Some(id) => {
                self.conversations.member_of(id, user)?;
                vec![id]
            }
            None => self.conversations.of_user(user).collect(),
        };
        // Each conversation contributes at most `limit`; merge by id.
        let mut picked: Vec<(MessageId, ConversationId)> = convs
            .iter()
            .flat_map(|&c| {
                self.conversations
                    .oldest_unread(&*self.store, c, user, limit)
                    .into_iter()
                    .map(move |m| (m, c))
            })
            .collect();
        picked.sort_unstable();
        picked.truncate(limit);
        let messages: Vec<MessageView> = picked
            .iter()
            .filter_map(|&(m, c)| Some(self.store.message(c, m)?.view(c, m)))
            .collect();
        let mut newest: BTreeMap<ConversationId, MessageId> = BTreeMap::new();
        for &(m, c) in &picked {
            newest.insert(c, m);
        }
        for (c, m) in newest {
            self.mark_read(out, c, user, m);
        }
        let remaining = convs
            .iter()
            .map(|&c| self.conversations.unread(c, user))
            .sum();
        Ok(Outcome::Messages {
            messages,
            remaining,
        })
    }

    fn delete_messages(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        ids: &[MessageId],
    ) -> CommandResult {
        let user = self.auth(session)?;
        if ids.is_empty() || ids.len() > MAX_BATCH_IDS {
            return Err(ChatError::invalid(format!(
                "give between 1 and {MAX_BATCH_IDS} message ids"
            )));
        }
        let ids: BTreeSet<MessageId> = ids.iter().copied().collect();
        for &id in &ids {
            let (_, message) = Conversations::home_of(&*self.store, id)
                .ok_or_else(|| ChatError::not_found(format!("message {id} does not exist")))?;
            if message.sender_id != user {
                return Err(ChatError::denied(format!("message {id} is not yours")));
            }
        }
        let mut by_conv: BTreeMap<ConversationId, Vec<MessageId>> = BTreeMap::new();
        for &id in &ids {
            if let Some(conv) = self.conversations.delete_message(&mut *self.store, id) {
                by_conv.entry(conv).or_default().push(id);
            }
        }
        for (conv, deleted) in by_conv {
            let members = self
                .conversations
                .get(conv)
                .map(|c| c.member_ids())
                .unwrap_or_default();
            let kind = EventKind::MessagesDeleted {
                conversation: conv,
                ids: deleted,
            };
            self.emit(out, members, kind);
        }
        Ok(Outcome::Deleted(ids.len() as u32))
    }

    fn edit_message(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        id: MessageId,
        body: &str,
    ) -> CommandResult {
        let user = self.auth(session)?;
        validate_body(body)?;
        // A deleted message is gone from the store: NOT_FOUND, like one
        // that never existed.
        let (conv, mut message) = Conversations::home_of(&*self.store, id)
            .ok_or_else(|| ChatError::not_found(format!("message {id} does not exist")))?;
        if message.sender_id != user {
            return Err(ChatError::denied(format!(
                "message {id} is not yours; you can edit only your own messages"
            )));
        }
        // Still a member: one who left a group cannot rewrite it.
        let members = self.conversations.member_of(conv, user)?.member_ids();
        message.body = body.to_owned();
        // 0 means "never edited"; state time is 0 only before any entry.
        message.ext.edited_at_ms = self.now_ms.max(1);
        let view = message.view(conv, id);
        self.store.update_message(conv, id, message);
        self.emit(out, members, EventKind::Edited(view.clone()));
        Ok(Outcome::Changed(view))
    }

    fn react(
        &mut self,
        out: &mut Emitter<'_>,
        session: &TokenHash,
        id: MessageId,
        emoji: &str,
    ) -> CommandResult {
        let user = self.auth(session)?;
        let name = self.name_of(user)?;
        validate_emoji(emoji)?;
        let (conv, mut message) = Conversations::home_of(&*self.store, id)
            .ok_or_else(|| ChatError::not_found(format!("message {id} does not exist")))?;
        let members = self
            .conversations
            .member_of(conv, user)
            .map_err(|_| ChatError::denied(format!("message {id} is not in your conversations")))?
            .member_ids();
        let reactions = &mut message.ext.reactions;
        match reactions.binary_search_by_key(&user, |r| r.user) {
            Ok(at) if reactions[at].emoji == emoji => {
                reactions.remove(at);
            }
            Ok(at) => reactions[at].emoji = emoji.to_owned(),
            Err(at) => reactions.insert(
                at,
                Reaction {
                    user,
                    name,
                    emoji: emoji.to_owned(),
                },
            ),
        }
        let view = message.view(conv, id);
        self.store.update_message(conv, id, message);
        self.emit(out, members, EventKind::Reacted(view.clone()));
        Ok(Outcome::Changed(view))
    }
}

/// A reaction: 1-[`MAX_EMOJI_BYTES`] bytes, no control characters and no
/// whitespace (it is shown on one line under a message).
pub fn validate_emoji(emoji: &str) -> Result<(), ChatError> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(ChatError::invalid(format!(
            "a reaction must be 1-{MAX_EMOJI_BYTES} bytes"
        )));
    }
    if emoji.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ChatError::invalid(
            "a reaction must not contain control characters or spaces",
        ));
    }
    Ok(())
}
