//! Conversations and their members' read state; their messages are in the
//! [`Store`].
//!
//! Unread counts are kept per member and updated incrementally: a send bumps
//! each other member's count, marking read recounts only what stays unread,
//! a deletion decrements those who had the message unread. Nothing rescans a
//! whole conversation on the hot path.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::store::{Message, Store};
use crate::state::command::*;

/// 1-[`MAX_GROUP_NAME_LEN`] characters, not blank, and no control
/// characters (C0, DEL, C1): a name with ESC or a newline would rewrite or
/// break the terminal of everyone who lists it.
pub fn validate_group_name(name: &str) -> Result<(), ChatError> {
    let len = name.chars().count();
    if len == 0 || len > MAX_GROUP_NAME_LEN || name.trim().is_empty() {
        return Err(ChatError::invalid(format!(
            "group name must be 1-{MAX_GROUP_NAME_LEN} characters and not blank"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::invalid(
            "group name must not contain control characters (such as newlines or escapes)",
        ));
    }
    Ok(())
}

/// A group name looked up (not created) that is longer than any group's:
/// refused without echoing it (see `accounts::check_lookup_len`).
pub fn check_group_lookup_len(name: &str) -> Result<(), ChatError> {
    if name.chars().count() > MAX_GROUP_NAME_LEN {
        return Err(ChatError::invalid(format!(
            "group name is longer than {MAX_GROUP_NAME_LEN} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's username (names never change while the account exists).
    pub name: String,
    /// Every message with an id up to here counts as read.
    pub read_up_to: MessageId,
    /// Messages by others above `read_up_to`.
    pub unread: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub kind: ConversationKind,
    /// The group's name; empty for a direct conversation.
    pub name: String,
    /// A direct conversation's two participants as created, so it keeps its
    /// name after one of them deletes their account.
    pub pair: Vec<(UserId, String)>,
    pub members: BTreeMap<UserId, Member>,
    /// The newest message still present (0 = none).
    pub last_message_id: MessageId,
    /// Creation or the newest message's time.
    pub last_activity_ms: u64,
}

impl Conversation {
    pub fn member_ids(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }

    /// What a direct conversation is called for `user`: the other one's name.
    pub fn display_name(&self, user: UserId) -> &str {
        match self.kind {
            ConversationKind::Group => &self.name,
            ConversationKind::Direct => self
                .pair
                .iter()
                .find(|(id, _)| *id != user)
                .map_or("", |(_, n)| n.as_str()),
        }
    }
}

/// `conversation`'s messages by others than `user` with ids above `after`.
fn unread_after(
    store: &dyn Store,
    conversation: ConversationId,
    user: UserId,
    after: MessageId,
) -> impl Iterator<Item = MessageId> + '_ {
    store
        .messages(
            conversation,
            (Bound::Excluded(after), Bound::Unbounded),
            false,
        )
        .filter(move |(_, m)| m.sender_id != user)
        .map(|(id, _)| id)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversations {
    last_conversation_id: ConversationId,
    last_message_id: MessageId,
    by_id: BTreeMap<ConversationId, Conversation>,
    /// Lowercase group name -> id.
    groups: BTreeMap<String, ConversationId>,
    /// `(lower id, higher id)` -> direct conversation.
    directs: BTreeMap<(UserId, UserId), ConversationId>,
    /// Each user's conversations.
    by_user: BTreeMap<UserId, BTreeSet<ConversationId>>,
}

fn pair_key(a: UserId, b: UserId) -> (UserId, UserId) {
    (a.min(b), a.max(b))
}

impl Conversations {
    pub fn get(&self, id: ConversationId) -> Option<&Conversation> {
        self.by_id.get(&id)
    }

    /// The conversation if `user` is a member; NOT_FOUND / PERMISSION_DENIED.
    pub fn member_of(&self, id: ConversationId, user: UserId) -> Result<&Conversation, ChatError> {
        let c = self
            .by_id
            .get(&id)
            .ok_or_else(|| ChatError::not_found(format!("conversation {id} does not exist")))?;
        if !c.members.contains_key(&user) {
            return Err(ChatError::denied(format!(
                "you are not a member of conversation {id}"
            )));
        }
        Ok(c)
    }

    pub fn group_by_name(&self, name: &str) -> Option<ConversationId> {
        self.groups.get(&name.to_lowercase()).copied()
    }

    pub fn direct_between(&self, a: UserId, b: UserId) -> Option<ConversationId> {
        self.directs.get(&pair_key(a, b)).copied()
    }

    pub fn of_user(&self, user: UserId) -> impl Iterator<Item = ConversationId> + '_ {
        self.by_user.get(&user).into_iter().flatten().copied()
    }

    /// A message and its conversation, by id alone.
    pub fn home_of(store: &dyn Store, message: MessageId) -> Option<(ConversationId, Message)> {
        let conv = store.home(message)?;
        Some((conv, store.message(conv, message)?))
    }

    fn insert(&mut self, mut conv: Conversation, members: &[(UserId, String)]) -> ConversationId {
        self.last_conversation_id += 1;
        let id = self.last_conversation_id;
        for (user, name) in members {
            conv.members.insert(
                *user,
                Member {
                    name: name.clone(),
                    read_up_to: 0,
                    unread: 0,
                },
            );
            self.by_user.entry(*user).or_default().insert(id);
        }
        self.by_id.insert(id, conv);
        id
    }

    /// Creates a group; the caller checked the name is free.
    pub fn create_group(
        &mut self,
        name: &str,
        members: &[(UserId, String)],
        now: u64,
    ) -> ConversationId {
        let conv = Conversation {
            kind: ConversationKind::Group,
            name: name.to_owned(),
            pair: Vec::new(),
            members: BTreeMap::new(),
            last_message_id: 0,
            last_activity_ms: now,
        };
        let id = self.insert(conv, members);
        self.groups.insert(name.to_lowercase(), id);
        id
    }

    pub fn create_direct(
        &mut self,
        a: (UserId, String),
        b: (UserId, String),
        now: u64,
    ) -> ConversationId {
        let key = pair_key(a.0, b.0);
        let pair = vec![a, b];
        let conv = Conversation {
            kind: ConversationKind::Direct,
            name: String::new(),
            pair: pair.clone(),
            members: BTreeMap::new(),
            last_message_id: 0,
            last_activity_ms: now,
        };
        let id = self.insert(conv, &pair);
        self.directs.insert(key, id);
        id
    }

    /// Adds a member who starts with everything already sent marked read.
    pub fn add_member(&mut self, id: ConversationId, user: UserId, name: &str) {
        let Some(conv) = self.by_id.get_mut(&id) else {
            return;
        };
        let read_up_to = conv.last_message_id;
        conv.members.insert(
            user,
            Member {
                name: name.to_owned(),
                read_up_to,
                unread: 0,
            },
        );
        self.by_user.entry(user).or_default().insert(id);
    }

    /// Removes a member with their read state. A conversation left without
    /// members is removed with its messages. Returns the remaining members.
    pub fn remove_member(
        &mut self,
        store: &mut dyn Store,
        id: ConversationId,
        user: UserId,
    ) -> Vec<UserId> {
        if let Some(set) = self.by_user.get_mut(&user) {
            set.remove(&id);
            if set.is_empty() {
                self.by_user.remove(&user);
            }
        }
        let Some(conv) = self.by_id.get_mut(&id) else {
            return Vec::new();
        };
        conv.members.remove(&user);
        if !conv.members.is_empty() {
            return conv.member_ids();
        }
        if let Some(conv) = self.by_id.remove(&id) {
            store.remove_conversation(id);
            match conv.kind {
                ConversationKind::Group => {
                    self.groups.remove(&conv.name.to_lowercase());
                }
                ConversationKind::Direct => {
                    if let [(a, _), (b, _)] = conv.pair.as_slice() {
                        self.directs.remove(&pair_key(*a, *b));
                    }
                }
            }
        }
        Vec::new()
    }

    /// Appends a message. The sender's pointer moves to it (sending implies
    /// having read the conversation); every other member gets one more unread.
    #[allow(clippy::too_many_arguments)]
    pub fn post(
        &mut self,
        store: &mut dyn Store,
        id: ConversationId,
        sender_id: UserId,
        sender: &str,
        body: &str,
        (now, index): (u64, u64),
        reply_to: MessageId,
    ) -> Option<MessageView> {
        let conv = self.by_id.get_mut(&id)?;
        self.last_message_id += 1;
        let mid = self.last_message_id;
        let mut message = Message::new(sender_id, sender, body, now, index);
        message.ext.reply_to = reply_to;
        let view = message.view(id, mid);
        store.put_message(id, mid, message);
        conv.last_message_id = mid;
        conv.last_activity_ms = now;
        for (user, member) in conv.members.iter_mut() {
            if *user == sender_id {
                member.read_up_to = mid;
                member.unread = 0;
            } else {
                member.unread += 1;
            }
        }
        Some(view)
    }

    /// Moves `user`'s pointer forward to `up_to`, clamped to the newest
    /// message. Returns the new pointer if it moved.
    pub fn mark_read(
        &mut self,
        store: &dyn Store,
        id: ConversationId,
        user: UserId,
        up_to: MessageId,
    ) -> Option<MessageId> {
        let conv = self.by_id.get_mut(&id)?;
        let target = up_to.min(conv.last_message_id);
        let current = conv.members.get(&user)?.read_up_to;
        if target <= current {
            return None;
        }
        let unread = unread_after(store, id, user, target).count() as u64;
        let member = conv.members.get_mut(&user)?;
        member.read_up_to = target;
        member.unread = unread;
        Some(target)
    }

    /// Up to `limit` of `user`'s oldest unread messages in one conversation.
    pub fn oldest_unread(
        &self,
        store: &dyn Store,
        id: ConversationId,
        user: UserId,
        limit: usize,
    ) -> Vec<MessageId> {
        let Some(conv) = self.by_id.get(&id) else {
            return Vec::new();
        };
        let Some(member) = conv.members.get(&user) else {
            return Vec::new();
        };
        unread_after(store, id, user, member.read_up_to)
            .take(limit)
            .collect()
    }

    pub fn unread(&self, id: ConversationId, user: UserId) -> u64 {
        self.by_id
            .get(&id)
            .and_then(|c| c.members.get(&user))
            .map_or(0, |m| m.unread)
    }

    /// Removes a message entirely; members who had it unread lose one unread.
    /// Returns its conversation.
    pub fn delete_message(
        &mut self,
        store: &mut dyn Store,
        mid: MessageId,
    ) -> Option<ConversationId> {
        let (id, message) = Conversations::home_of(store, mid)?;
        let conv = self.by_id.get_mut(&id)?;
        store.remove_message(id, mid);
        if conv.last_message_id == mid {
            let older = (Bound::Unbounded, Bound::Excluded(mid));
            conv.last_message_id = store.messages(id, older, true).next().map_or(0, |(m, _)| m);
        }
        for (user, member) in conv.members.iter_mut() {
            if *user != message.sender_id && member.read_up_to < mid {
                member.unread = member.unread.saturating_sub(1);
            }
        }
        Some(id)
    }
}
