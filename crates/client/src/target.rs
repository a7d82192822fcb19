//! Who a message goes to, or whose conversation to open.

use std::fmt;

use raftchat_proto::{
    history_request, search_request, send_message_request, Conversation, ConversationKind,
};

use super::ClientError;

/// A conversation partner: a user (direct conversation), a group by name, or
/// a conversation by id.
///
/// Humans write a group with a leading `#` (`#team`); see [`Target::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The direct conversation with this user.
    User(String),
    /// The group with this name.
    Group(String),
    /// A conversation by id, as found in [`Conversation::id`].
    Conversation(u64),
}

impl Target {
    /// Parses the human form: `#name` is a group, `id:N` the conversation
    /// with id N (which still works after the peer deleted their account),
    /// anything else a user name (user names cannot hold `:`). Surrounding
    /// blanks are ignored; an empty name is an error.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let text = text.trim();
        if let Some(id) = text.strip_prefix("id:") {
            return id.trim().parse().map(Self::Conversation).map_err(|_| {
                ClientError::new(
                    tonic::Code::InvalidArgument,
                    format!("'{text}': expected a conversation id after 'id:', e.g. id:7"),
                )
            });
        }
        if let Some(group) = text.strip_prefix('#') {
            let group = group.trim();
            if group.is_empty() {
                return Err(ClientError::new(
                    tonic::Code::InvalidArgument,
                    "a group needs a name after '#'",
                ));
            }
            return Ok(Self::Group(group.to_string()));
        }
        if text.is_empty() {
            return Err(ClientError::new(
                tonic::Code::InvalidArgument,
                "expected a user name or #group",
            ));
        }
        Ok(Self::User(text.to_string()))
    }

    /// The `to` field of a `SendMessageRequest`.
    pub fn to_send(&self) -> send_message_request::To {
        match self {
            Self::User(name) => send_message_request::To::User(name.clone()),
            Self::Group(name) => send_message_request::To::Group(name.clone()),
            Self::Conversation(id) => send_message_request::To::ConversationId(*id),
        }
    }

    /// The `with` field of a `HistoryRequest`.
    pub fn to_history(&self) -> history_request::With {
        match self {
            Self::User(name) => history_request::With::User(name.clone()),
            Self::Group(name) => history_request::With::Group(name.clone()),
            Self::Conversation(id) => history_request::With::ConversationId(*id),
        }
    }

    /// The `in` field of a `SearchRequest`.
    pub fn to_search(&self) -> search_request::In {
        match self {
            Self::User(name) => search_request::In::User(name.clone()),
            Self::Group(name) => search_request::In::Group(name.clone()),
            Self::Conversation(id) => search_request::In::ConversationId(*id),
        }
    }

    /// Whether `conversation` is the one this target names. User and group
    /// names compare case-insensitively, like the server's account names.
    pub fn matches(&self, conversation: &Conversation) -> bool {
        let kind = conversation.kind();
        match self {
            Self::User(name) => {
                kind == ConversationKind::Direct && same_name(&conversation.name, name)
            }
            Self::Group(name) => {
                kind == ConversationKind::Group && same_name(&conversation.name, name)
            }
            Self::Conversation(id) => conversation.id == *id,
        }
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

impl fmt::Display for Target {
    /// The human form accepted by [`Target::parse`] (`bob`, `#team`), or
    /// `conversation 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(name) => f.write_str(name),
            Self::Group(name) => write!(f, "#{name}"),
            Self::Conversation(id) => write!(f, "conversation {id}"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_prefix_means_group() {
        assert_eq!(
            Target::parse("#team").unwrap(),
            Target::Group("team".into())
        );
        assert_eq!(
            Target::parse(" # team ").unwrap(),
            Target::Group("team".into())
        );
        assert_eq!(Target::parse("bob").unwrap(), Target::User("bob".into()));
    }

    #[test]
    fn id_prefix_means_a_conversation_id() {
        assert_eq!(Target::parse("id:7").unwrap(), Target::Conversation(7));
        assert_eq!(Target::parse(" id: 12 ").unwrap(), Target::Conversation(12));
        let err = Target::parse("id:bob").unwrap_err();
        assert!(err.is_invalid_argument(), "{err}");
        assert!(err.to_string().contains("id:7"), "{err}");
    }

    #[test]
    fn empty_names_are_rejected() {
        assert!(Target::parse("#").unwrap_err().is_invalid_argument());
        assert!(Target::parse("  ").unwrap_err().is_invalid_argument());
    }

    #[test]
    fn display_round_trips() {
        for text in ["bob", "#team"] {
            assert_eq!(Target::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn matches_kind_and_name_case_insensitively() {
        let direct = Conversation {
            id: 3,
            kind: ConversationKind::Direct as i32,
            name: "Bob".into(),
            ..Default::default()
        };
        let group = Conversation {
            id: 4,
            kind: ConversationKind::Group as i32,
            name: "team".into(),
            ..Default::default()
        };
        assert!(Target::User("bob".into()).matches(&direct));
        assert!(!Target::Group("bob".into()).matches(&direct));
        assert!(Target::Group("TEAM".into()).matches(&group));
        assert!(Target::Conversation(4).matches(&group));
        assert!(!Target::Conversation(4).matches(&direct));
    }

    #[test]
    fn proto_conversions() {
        assert_eq!(
            Target::Group("g".into()).to_send(),
            send_message_request::To::Group("g".into())
        );
        assert_eq!(
            Target::Conversation(9).to_history(),
            history_request::With::ConversationId(9)
        );
    }
}
