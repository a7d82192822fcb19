//! One method per Chat RPC. Writes get a fresh request id here, before the
//! first attempt, so every retry of the same call carries the same id.

use tonic::Code;

use raftchat_proto::{
    AddMemberRequest, ChangePasswordRequest, Conversation, CreateAccountReply,
    CreateAccountRequest, CreateGroupReply, CreateGroupRequest, DeleteAccountRequest,
    DeleteMessagesReply, DeleteMessagesRequest, EditMessageReply, EditMessageRequest, HistoryReply,
    HistoryRequest, LeaveGroupRequest, ListAccountsReply, ListAccountsRequest,
    ListConversationsReply, ListConversationsRequest, LoginReply, LoginRequest, LogoutRequest,
    MarkReadRequest, ReactReply, ReactRequest, ReadUnreadReply, ReadUnreadRequest, SearchReply,
    SearchRequest, SendMessageReply, SendMessageRequest, TypingRequest,
};

use super::retry::{is_retryable, new_request_id};
use super::{ChatClient, ClientError, Target};

impl ChatClient {
    /// Creates an account. Does not log in.
    pub async fn create_account(
        &self,
        username: &str,
        password: &str,
    ) -> Result<CreateAccountReply, ClientError> {
        let message = CreateAccountRequest {
            request_id: new_request_id(),
            username: username.to_string(),
            password: password.to_string(),
        };
        self.unary("create account", message, |mut c, r| async move {
            c.create_account(r).await
        })
        .await
    }

    /// Logs in and keeps the session token for the following calls (on
    /// every replica).
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginReply, ClientError> {
        let message = LoginRequest {
            request_id: new_request_id(),
            username: username.to_string(),
            password: password.to_string(),
        };
        let reply = self
            .unary("login", message, |mut c, r| async move { c.login(r).await })
            .await?;
        if reply.token.is_empty() {
            return Err(ClientError::missing_field("session token"));
        }
        self.set_token(Some(reply.token.clone()));
        Ok(reply)
    }

    /// Ends the session. The local token is dropped even if the server could
    /// not be told (the session then simply expires).
    pub async fn logout(&self) -> Result<(), ClientError> {
        let message = LogoutRequest {
            request_id: new_request_id(),
        };
        let result = self
            .unary(
                "logout",
                message,
                |mut c, r| async move { c.logout(r).await },
            )
            .await;
        self.set_token(None);
        result.map(drop)
    }

    /// Changes the logged-in account's password.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), ClientError> {
        let message = ChangePasswordRequest {
            request_id: new_request_id(),
            old_password: old.to_string(),
            new_password: new.to_string(),
        };
        self.unary("change password", message, |mut c, r| async move {
            c.change_password(r).await
        })
        .await
        .map(drop)
    }

    /// Deletes the logged-in account (the password is asked again) and
    /// forgets the session.
    pub async fn delete_account(&self, password: &str) -> Result<(), ClientError> {
        let message = DeleteAccountRequest {
            request_id: new_request_id(),
            password: password.to_string(),
        };
        self.unary("delete account", message, |mut c, r| async move {
            c.delete_account(r).await
        })
        .await?;
        self.set_token(None);
        Ok(())
    }

    /// Accounts whose name matches `pattern` (`*`, `?`; empty = all), after
    /// the name `after` (empty = from the start), at most `limit` (0 = the
    /// server's default). Pass `reply.next_after` to get the next page.
    pub async fn list_accounts(
        &self,
        pattern: &str,
        after: &str,
        limit: u32,
    ) -> Result<ListAccountsReply, ClientError> {
        let message = ListAccountsRequest {
            pattern: pattern.to_string(),
            after: after.to_string(),
            limit,
        };
        self.unary("list accounts", message, |mut c, r| async move {
            c.list_accounts(r).await
        })
        .await
    }

    /// Sends `body` to a user, a group or a conversation.
    pub async fn send(&self, to: &Target, body: &str) -> Result<SendMessageReply, ClientError> {
        self.send_with_request_id(to, body, &new_request_id()).await
    }

    /// Sends with a request id the caller chose (see [`new_request_id`]):
    /// calling again with the same id — even much later, on another client,
    /// through another replica — returns the original message instead of
    /// sending a second one. This is how a UI sends a queued message exactly
    /// once across restarts of its own retry loop.
    pub async fn send_with_request_id(
        &self,
        to: &Target,
        body: &str,
        request_id: &str,
    ) -> Result<SendMessageReply, ClientError> {
        self.send_reply_with_request_id(to, body, 0, request_id)
            .await
    }

    /// Sends `body` to `to` as an answer to message `reply_to` (of the same
    /// conversation; 0 = none).
    pub async fn send_reply(
        &self,
        to: &Target,
        body: &str,
        reply_to: u64,
    ) -> Result<SendMessageReply, ClientError> {
        self.send_reply_with_request_id(to, body, reply_to, &new_request_id())
            .await
    }

    /// [`send_reply`](Self::send_reply) with a request id the caller chose
    /// (see [`send_with_request_id`](Self::send_with_request_id)).
    pub async fn send_reply_with_request_id(
        &self,
        to: &Target,
        body: &str,
        reply_to: u64,
        request_id: &str,
    ) -> Result<SendMessageReply, ClientError> {
        let message = SendMessageRequest {
            request_id: request_id.to_string(),
            to: Some(to.to_send()),
            body: body.to_string(),
            reply_to,
        };
        let started = tokio::time::Instant::now();
        match self.send_over_stream(&message).await {
            Some(Ok(reply)) => return Ok(reply),
            Some(Err(status)) if !is_retryable(&status) => return Err(ClientError::from(status)),
            // No stream, or it could not answer: the failover engine takes
            // over with the same request id.
            _ => {}
        }
        self.unary_from(started, "send", message, |mut c, r| async move {
            c.send_message(r).await
        })
        .await
    }

    /// Creates a group named `name` with the caller and `members` in it.
    pub async fn create_group(
        &self,
        name: &str,
        members: &[String],
    ) -> Result<CreateGroupReply, ClientError> {
        let message = CreateGroupRequest {
            request_id: new_request_id(),
            name: name.to_string(),
            members: members.to_vec(),
        };
        self.unary("create group", message, |mut c, r| async move {
            c.create_group(r).await
        })
        .await
    }

    /// Adds `username` to the group conversation `conversation_id`.
    pub async fn add_member(
        &self,
        conversation_id: u64,
        username: &str,
    ) -> Result<(), ClientError> {
        let message = AddMemberRequest {
            request_id: new_request_id(),
            conversation_id,
            username: username.to_string(),
        };
        self.unary("add member", message, |mut c, r| async move {
            c.add_member(r).await
        })
        .await
        .map(drop)
    }

    /// Leaves the group conversation `conversation_id`.
    pub async fn leave_group(&self, conversation_id: u64) -> Result<(), ClientError> {
        let message = LeaveGroupRequest {
            request_id: new_request_id(),
            conversation_id,
        };
        self.unary("leave group", message, |mut c, r| async move {
            c.leave_group(r).await
        })
        .await
        .map(drop)
    }

    /// The caller's conversations, most recent activity first, with unread
    /// counts.
    pub async fn list_conversations(&self) -> Result<ListConversationsReply, ClientError> {
        self.unary(
            "list conversations",
            ListConversationsRequest {},
            |mut c, r| async move { c.list_conversations(r).await },
        )
        .await
    }

    /// A page of the conversation with `with`, newest first: messages with an
    /// id below `before` (0 = from the newest), at most `limit` (0 = the
    /// server's default). `reply.more` says whether older messages exist.
    pub async fn history(
        &self,
        with: &Target,
        before: u64,
        limit: u32,
    ) -> Result<HistoryReply, ClientError> {
        let message = HistoryRequest {
            with: Some(with.to_history()),
            before,
            limit,
        };
        self.unary(
            "history",
            message,
            |mut c, r| async move { c.history(r).await },
        )
        .await
    }

    /// Messages whose text contains `query` (case-insensitive), newest
    /// first: in the conversation `scope` names, or in all of the caller's
    /// conversations when `None`. Only ids below `before` (0 = from the
    /// newest); `limit` 0 means the server's default (20), at most 100.
    /// `more` says whether older matches remain: page on with `before` =
    /// the last message's id.
    pub async fn search(
        &self,
        scope: Option<&Target>,
        query: &str,
        before: u64,
        limit: u32,
    ) -> Result<SearchReply, ClientError> {
        let message = SearchRequest {
            r#in: scope.map(Target::to_search),
            query: query.to_string(),
            before,
            limit,
        };
        self.unary(
            "search",
            message,
            |mut c, r| async move { c.search(r).await },
        )
        .await
    }

    /// Delivers the oldest `limit` unread messages of `conversation_id`
    /// (0 = all conversations), oldest first, and marks them read.
    pub async fn read_unread(
        &self,
        conversation_id: u64,
        limit: u32,
    ) -> Result<ReadUnreadReply, ClientError> {
        let message = ReadUnreadRequest {
            request_id: new_request_id(),
            conversation_id,
            limit,
        };
        self.unary("read unread", message, |mut c, r| async move {
            c.read_unread(r).await
        })
        .await
    }

    /// Marks the messages of `conversation_id` up to the id `up_to` as read.
    pub async fn mark_read(&self, conversation_id: u64, up_to: u64) -> Result<(), ClientError> {
        let message = MarkReadRequest {
            request_id: new_request_id(),
            conversation_id,
            up_to,
        };
        self.unary("mark read", message, |mut c, r| async move {
            c.mark_read(r).await
        })
        .await
        .map(drop)
    }

    /// Tells the other members of `conversation_id` that the caller is
    /// typing there. Nothing is stored; they see it for a few seconds
    /// (`TypingNotice::expires_in_ms`). Call it again every 3 s while the
    /// user keeps typing; calls closer than 1 s apart are dropped by the
    /// server.
    pub async fn typing(&self, conversation_id: u64) -> Result<(), ClientError> {
        let message = TypingRequest { conversation_id };
        self.unary("typing notice", message, |mut c, r| async move {
            c.typing(r).await
        })
        .await
        .map(drop)
    }

    /// Deletes the caller's own messages, for everyone.
    pub async fn delete_messages(
        &self,
        message_ids: &[u64],
    ) -> Result<DeleteMessagesReply, ClientError> {
        let message = DeleteMessagesRequest {
            request_id: new_request_id(),
            message_ids: message_ids.to_vec(),
        };
        self.unary("delete messages", message, |mut c, r| async move {
            c.delete_messages(r).await
        })
        .await
    }

    /// Replaces the text of one of the caller's own messages (it keeps its
    /// id and place, and gets `edited_at_ms`). Retries carry the same
    /// request id, so the edit applies once.
    pub async fn edit_message(
        &self,
        message_id: u64,
        body: &str,
    ) -> Result<EditMessageReply, ClientError> {
        self.edit_message_with_request_id(message_id, body, &new_request_id())
            .await
    }

    /// [`edit_message`](Self::edit_message) with a request id the caller
    /// chose: calling again with the same id returns the original result
    /// instead of editing again.
    pub async fn edit_message_with_request_id(
        &self,
        message_id: u64,
        body: &str,
        request_id: &str,
    ) -> Result<EditMessageReply, ClientError> {
        let message = EditMessageRequest {
            request_id: request_id.to_string(),
            message_id,
            body: body.to_string(),
        };
        self.unary("edit message", message, |mut c, r| async move {
            c.edit_message(r).await
        })
        .await
    }

    /// Toggles the caller's reaction `emoji` to a message: the same emoji
    /// again removes it, another replaces it. Retries carry the same
    /// request id, so it toggles once.
    pub async fn react(&self, message_id: u64, emoji: &str) -> Result<ReactReply, ClientError> {
        self.react_with_request_id(message_id, emoji, &new_request_id())
            .await
    }

    /// [`react`](Self::react) with a request id the caller chose: calling
    /// again with the same id returns the original result instead of
    /// toggling again.
    pub async fn react_with_request_id(
        &self,
        message_id: u64,
        emoji: &str,
        request_id: &str,
    ) -> Result<ReactReply, ClientError> {
        let message = ReactRequest {
            request_id: request_id.to_string(),
            message_id,
            emoji: emoji.to_string(),
        };
        self.unary("react", message, |mut c, r| async move { c.react(r).await })
            .await
    }

    /// The caller's conversation that `target` names, found through
    /// [`list_conversations`](Self::list_conversations). `NOT_FOUND` when
    /// there is none; `FAILED_PRECONDITION` when a group name is ambiguous.
    pub async fn find_conversation(&self, target: &Target) -> Result<Conversation, ClientError> {
        let reply = self.list_conversations().await?;
        pick_conversation(reply.conversations, target)
    }
}

/// The single conversation among `conversations` that `target` names.
pub(crate) fn pick_conversation(
    conversations: Vec<Conversation>,
    target: &Target,
) -> Result<Conversation, ClientError> {
    let mut found: Vec<Conversation> = conversations
        .into_iter()
        .filter(|c| target.matches(c))
        .collect();
    match found.len() {
        0 => Err(ClientError::new(
            Code::NotFound,
            format!("no conversation with {target}"),
        )),
        1 => Ok(found.remove(0)),
        _ => {
            let ids: Vec<String> = found.iter().map(|c| c.id.to_string()).collect();
            Err(ClientError::new(
                Code::FailedPrecondition,
                format!(
                    "{target} is ambiguous: conversations {} match",
                    ids.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftchat_proto::ConversationKind;

    fn conversation(id: u64, kind: ConversationKind, name: &str) -> Conversation {
        Conversation {
            id,
            kind: kind as i32,
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn picks_the_single_match() {
        let list = vec![
            conversation(1, ConversationKind::Direct, "bob"),
            conversation(2, ConversationKind::Group, "bob"),
        ];
        let found = pick_conversation(list.clone(), &Target::Group("bob".into())).unwrap();
        assert_eq!(found.id, 2);
        let found = pick_conversation(list, &Target::User("BOB".into())).unwrap();
        assert_eq!(found.id, 1);
    }

    #[test]
    fn reports_missing_and_ambiguous_targets() {
        let list = vec![
            conversation(1, ConversationKind::Group, "team"),
            conversation(2, ConversationKind::Group, "team"),
        ];
        let err = pick_conversation(list.clone(), &Target::User("zed".into())).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.message, "no conversation with zed");
        let err = pick_conversation(list, &Target::Group("team".into())).unwrap_err();
        assert_eq!(err.code, Code::FailedPrecondition);
        assert!(err.message.contains("1, 2"));
    }
}
