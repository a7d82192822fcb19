//! Mapping between state-machine views and the wire types, and between our
//! errors and gRPC statuses: the one place where a state-machine type
//! becomes a wire type.
//!
//! Each boundary has one type for a message: `state::conversations::Message`
//! is how the state stores it (keyed by id, text possibly borrowed from a
//! snapshot), [`MessageView`] is what the state machine answers and emits
//! (owned, with its id and conversation), `proto::Message` is what goes on
//! the wire. Clients (`raftchat-client`, `chatctl`, `chat-tui`) use the
//! wire type as it is.

use tonic::metadata::MetadataValue;
use tonic::{Response, Status};

use crate::api::proto;
use crate::raft::consensus::Consensus;
use crate::raft::network::RemoteFailure;
use crate::state::command::{
    AccountView, ChatError, ConversationKind, ConversationView, ErrorKind, MessageView,
};

pub fn account(a: AccountView) -> proto::Account {
    proto::Account {
        id: a.id,
        username: a.username,
        online: a.online,
        last_seen_ms: a.last_seen_ms,
        created_ms: a.created_ms,
    }
}

pub fn message(m: MessageView) -> proto::Message {
    proto::Message {
        id: m.id,
        conversation_id: m.conversation,
        sender_id: m.sender_id,
        sender: m.sender,
        body: m.body,
        sent_ms: m.sent_ms,
        index: m.index,
        edited_at_ms: m.edited_at_ms,
        reply_to: m.reply_to,
        reactions: m
            .reactions
            .into_iter()
            .map(|r| proto::Reaction {
                emoji: r.emoji,
                users: r.users,
            })
            .collect(),
    }
}

pub fn conversation(c: ConversationView) -> proto::Conversation {
    proto::Conversation {
        id: c.id,
        kind: match c.kind {
            ConversationKind::Direct => proto::ConversationKind::Direct,
            ConversationKind::Group => proto::ConversationKind::Group,
        } as i32,
        name: c.name,
        members: c.members,
        unread: c.unread,
        last_message_id: c.last_message_id,
        last_activity_ms: c.last_activity_ms,
        read_up_to: c.read_up_to,
    }
}

pub fn chat_error(e: ChatError) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message),
        ErrorKind::Unauthenticated => Status::unauthenticated(e.message),
        ErrorKind::PermissionDenied => Status::permission_denied(e.message),
        ErrorKind::NotFound => Status::not_found(e.message),
        ErrorKind::AlreadyExists => Status::already_exists(e.message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(e.message),
    }
}

pub fn remote_failure(e: RemoteFailure) -> Status {
    match e {
        RemoteFailure::NotLeader(_) => Status::unavailable("leadership is changing; retry"),
        RemoteFailure::Unavailable(msg) => Status::unavailable(msg),
    }
}

/// Adds the `x-raft-leader-id` / `x-raft-leader-url` hint.
pub fn add_leader(consensus: &Consensus, metadata: &mut tonic::metadata::MetadataMap) {
    if let Some((id, url)) = consensus.leader() {
        metadata.insert("x-raft-leader-id", MetadataValue::from(id));
        if let Ok(v) = MetadataValue::try_from(url.as_str()) {
            metadata.insert("x-raft-leader-url", v);
        }
    }
}

/// Wraps a reply or an error with the leader hint.
pub fn respond<T>(consensus: &Consensus, result: Result<T, Status>) -> Result<Response<T>, Status> {
    match result {
        Ok(v) => {
            let mut r = Response::new(v);
            add_leader(consensus, r.metadata_mut());
            Ok(r)
        }
        Err(mut s) => {
            add_leader(consensus, s.metadata_mut());
            Err(s)
        }
    }
}
