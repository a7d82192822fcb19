//! How chat objects look in chatctl's output: one line of text, or one JSON
//! object (built with `serde_json::json!`, so field names are stable and
//! independent of the generated proto types).
//!
//! Every server-provided string in a text line goes through
//! [`super::sanitize`]: names as single lines, bodies with their
//! continuation lines indented so they cannot pass for lines of ours.

use serde_json::{json, Value};

use raftchat_client::{Account, Conversation, ConversationKind, Event, Message};
use raftchat_proto::event::Kind;

use super::sanitize::{escape_line, with_body};
use super::time::format_ms;

/// A conversation's display name, escaped: `#team` for a group, the peer
/// for a direct conversation.
pub fn conversation_name(conversation: &Conversation) -> String {
    let name = escape_line(&conversation.name);
    match conversation.kind() {
        ConversationKind::Group => format!("#{name}"),
        _ if peer_deleted(conversation) => format!("{name} (deleted)"),
        _ => name.into_owned(),
    }
}

/// A direct conversation whose peer deleted their account: the peer is no
/// longer among its members (it is still readable, by `id:N`).
pub fn peer_deleted(conversation: &Conversation) -> bool {
    conversation.kind() == ConversationKind::Direct
        && !conversation.members.is_empty()
        && !conversation
            .members
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&conversation.name))
}

/// Names (members, users) joined with `separator`, each escaped.
pub fn join_names(names: &[String], separator: &str) -> String {
    names
        .iter()
        .map(|n| escape_line(n))
        .collect::<Vec<_>>()
        .join(separator)
}

/// `group`, `direct` or `unknown`.
pub fn kind_name(conversation: &Conversation) -> &'static str {
    match conversation.kind() {
        ConversationKind::Group => "group",
        ConversationKind::Direct => "direct",
        ConversationKind::Unspecified => "unknown",
    }
}

/// `[id] time [(edited time)]  sender: body`; further lines of the body are indented
/// under its first one.
pub fn message_line(message: &Message) -> String {
    message_line_after("", message)
}

/// [`message_line`] after `lead` (e.g. `(conversation 3) `), which the
/// body's further lines are indented past too.
pub fn message_line_after(lead: &str, message: &Message) -> String {
    // The edit mark is ours, before the body, where a body cannot forge it.
    let edited = match message.edited_at_ms {
        0 => String::new(),
        at => format!(" (edited {})", format_ms(at)),
    };
    let head = format!(
        "{lead}[{}] {}{edited}  {}: ",
        message.id,
        format_ms(message.sent_ms),
        escape_line(&message.sender),
    );
    with_body(head, &message.body)
}

/// Longest quote of an original, in characters.
const QUOTE_CHARS: usize = 60;

/// The line shown above a reply: `  > [5] alice: first line of the
/// original…`, or `  > [5] deleted message`. Indented, so it never passes
/// for a message line; escaped, one line.
pub fn quote_line(id: u64, original: Option<&Message>) -> String {
    let Some(original) = original else {
        return format!("  > [{id}] deleted message");
    };
    let first = original.body.lines().next().unwrap_or("");
    let mut text: String = first.chars().take(QUOTE_CHARS).collect();
    if text.len() < original.body.len() {
        text.push('…');
    }
    format!(
        "  > [{id}] {}: {}",
        escape_line(&original.sender),
        escape_line(&text)
    )
}

/// The line shown under a message with reactions: `  👍 2 (alice, bob)
/// · 🎉 1 (carol)`. Indented and escaped.
pub fn reactions_line(message: &Message) -> String {
    let parts: Vec<String> = message
        .reactions
        .iter()
        .map(|r| {
            format!(
                "{} {} ({})",
                escape_line(&r.emoji),
                r.users.len(),
                join_names(&r.users, ", ")
            )
        })
        .collect();
    format!("  {}", parts.join(" · "))
}

/// A message as JSON.
pub fn message_json(message: &Message) -> Value {
    json!({
        "id": message.id,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "sender": message.sender,
        "body": message.body,
        "sent_ms": message.sent_ms,
        "index": message.index,
        "edited_at_ms": message.edited_at_ms,
        "reply_to": message.reply_to,
        "reactions": message
            .reactions
            .iter()
            .map(|r| json!({ "emoji": r.emoji, "count": r.users.len(), "users": r.users }))
            .collect::<Vec<_>>(),
    })
}

/// An account as JSON.
pub fn account_json(account: &Account) -> Value {
    json!({
        "id": account.id,
        "username": account.username,
        "online": account.online,
        "last_seen_ms": account.last_seen_ms,
        "created_ms": account.created_ms,
    })
}

/// A conversation as JSON.
pub fn conversation_json(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id,
        "kind": kind_name(conversation),
        "name": conversation.name,
        "peer_deleted": peer_deleted(conversation),
        "members": conversation.members,
        "unread": conversation.unread,
        "last_message_id": conversation.last_message_id,
        "last_activity_ms": conversation.last_activity_ms,
        "read_up_to": conversation.read_up_to,
    })
}

/// One line describing an event, prefixed by its sequence number.
pub fn event_line(event: &Event) -> String {
    let seq = format!("[{}] ", event.seq);
    let what = match &event.kind {
        Some(kind @ (Kind::Message(m) | Kind::Edited(m))) => {
            let verb = match kind {
                Kind::Edited(_) => "edited message",
                _ => "message",
            };
            // Whole line at once, so the body's further lines align under
            // its first one.
            let head = format!(
                "{seq}{verb} {} in conversation {} from {}: ",
                m.id,
                m.conversation_id,
                escape_line(&m.sender)
            );
            return with_body(head, &m.body);
        }
        Some(Kind::Reacted(m)) => format!(
            "reactions to message {} in conversation {}: {}",
            m.id,
            m.conversation_id,
            match reactions_line(m).trim() {
                "" => "none".to_string(),
                line => line.to_string(),
            }
        ),
        Some(Kind::Deleted(d)) => format!(
            "deleted messages {} in conversation {}",
            join_ids(&d.message_ids),
            d.conversation_id
        ),
        Some(Kind::Read(r)) => format!(
            "{} read conversation {} up to message {}",
            escape_line(&r.reader),
            r.conversation_id,
            r.up_to
        ),
        Some(Kind::Membership(m)) => {
            let conversation = m.conversation.clone().unwrap_or_default();
            // A direct conversation's name is one peer's view of it; its
            // members say who it is between.
            let peer = conversation
                .members
                .iter()
                .find(|member| **member != m.user);
            match peer {
                Some(peer)
                    if conversation.kind() == ConversationKind::Direct && m.change == "created" =>
                {
                    format!(
                        "{} started a direct conversation with {} (conversation {})",
                        escape_line(&m.user),
                        escape_line(peer),
                        conversation.id
                    )
                }
                _ => format!(
                    "{} {} {} (conversation {})",
                    escape_line(&m.user),
                    escape_line(&m.change),
                    conversation_name(&conversation),
                    conversation.id
                ),
            }
        }
        Some(Kind::Presence(p)) if p.online => format!("{} is online", escape_line(&p.user)),
        Some(Kind::Presence(p)) => format!(
            "{} went offline (last seen {})",
            escape_line(&p.user),
            format_ms(p.last_seen_ms)
        ),
        Some(Kind::Resync(r)) => format!("resync needed (oldest event {})", r.oldest_seq),
        Some(Kind::Live(l)) => format!("live at {}", l.seq),
        Some(Kind::Typing(t)) => format!(
            "{} is typing in conversation {}",
            escape_line(&t.user),
            t.conversation_id
        ),
        None => "unknown event (newer server?)".to_string(),
    };
    format!("{seq}{what}")
}

/// An event as JSON: `{"type": ..., "seq": ..., "index": ..., ...}`.
pub fn event_json(event: &Event) -> Value {
    let (kind, body) = match &event.kind {
        Some(Kind::Message(m)) => ("message", json!({ "message": message_json(m) })),
        Some(Kind::Edited(m)) => ("edited", json!({ "message": message_json(m) })),
        Some(Kind::Reacted(m)) => ("reacted", json!({ "message": message_json(m) })),
        Some(Kind::Deleted(d)) => (
            "deleted",
            json!({ "conversation_id": d.conversation_id, "message_ids": d.message_ids }),
        ),
        Some(Kind::Read(r)) => (
            "read",
            json!({ "conversation_id": r.conversation_id, "reader": r.reader, "up_to": r.up_to }),
        ),
        Some(Kind::Membership(m)) => (
            "membership",
            json!({
                "user": m.user,
                "change": m.change,
                "conversation": m.conversation.as_ref().map(conversation_json),
            }),
        ),
        Some(Kind::Presence(p)) => (
            "presence",
            json!({ "user": p.user, "online": p.online, "last_seen_ms": p.last_seen_ms }),
        ),
        Some(Kind::Resync(r)) => ("resync", json!({ "oldest_seq": r.oldest_seq })),
        Some(Kind::Live(l)) => ("live", json!({ "live_seq": l.seq })),
        Some(Kind::Typing(t)) => (
            "typing",
            json!({
                "conversation_id": t.conversation_id,
                "user": t.user,
                "expires_in_ms": t.expires_in_ms,
            }),
        ),
        None => ("unknown", json!({})),
    };
    let mut value = json!({ "type": kind, "seq": event.seq, "index": event.index });
    if let (Some(out), Value::Object(fields)) = (value.as_object_mut(), body) {
        out.extend(fields);
    }
    value
}

/// `1, 2, 3`.
pub fn join_ids(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftchat_proto::{MembershipChanged, MessagesDeleted, PresenceChanged, TypingNotice};

    fn message() -> Message {
        Message {
            id: 5,
            conversation_id: 3,
            sender_id: 1,
            sender: "alice".into(),
            body: "hi".into(),
            sent_ms: 1_795_423_932_000,
            index: 40,
            edited_at_ms: 0,
            reply_to: 0,
            reactions: Vec::new(),
        }
    }

    #[test]
    fn message_renderings() {
        crate::time::show_in_utc(true);
        assert_eq!(
            message_line(&message()),
            "[5] 2026-11-23 08:52:12 +00:00  alice: hi"
        );
        let value = message_json(&message());
        assert_eq!(value["sender"], "alice");
        assert_eq!(value["conversation_id"], 3);
        assert_eq!(value["edited_at_ms"], 0);
        let edited = Message {
            body: "hi\x1b[2J".into(),
            edited_at_ms: 1_795_423_992_000,
            ..message()
        };
        assert_eq!(
            message_line(&edited),
            "[5] 2026-11-23 08:52:12 +00:00 (edited 2026-11-23 08:53:12 +00:00)  alice: hi\\x1b[2J"
        );
        assert_eq!(message_json(&edited)["edited_at_ms"], 1_795_423_992_000u64);
        let event = Event {
            seq: 12,
            index: 41,
            kind: Some(Kind::Edited(edited)),
        };
        assert_eq!(
            event_line(&event),
            "[12] edited message 5 in conversation 3 from alice: hi\\x1b[2J"
        );
        assert_eq!(event_json(&event)["type"], "edited");
        assert_eq!(
            event_json(&event)["message"]["edited_at_ms"],
            1_795_423_992_000u64
        );
    }

    #[test]
    fn reply_quotes() {
        let long = Message {
            body: format!("{}\nsecond line", "x".repeat(70)),
            sender: "al\x1bice".into(),
            ..message()
        };
        assert_eq!(
            quote_line(5, Some(&long)),
            format!("  > [5] al\\x1bice: {}…", "x".repeat(60))
        );
        assert_eq!(quote_line(5, Some(&message())), "  > [5] alice: hi");
        assert_eq!(quote_line(5, None), "  > [5] deleted message");
        let evil = Message {
            body: "\x1b[2J".into(),
            ..message()
        };
        assert_eq!(quote_line(5, Some(&evil)), "  > [5] alice: \\x1b[2J");
        let reply = Message {
            reply_to: 4,
            ..message()
        };
        assert_eq!(message_json(&reply)["reply_to"], 4);
    }

    #[test]
    fn reaction_renderings() {
        use raftchat_proto::Reaction;
        let m = Message {
            reactions: vec![
                Reaction {
                    emoji: "👍".into(),
                    users: vec!["alice".into(), "b\x1bob".into()],
                },
                Reaction {
                    emoji: "\x07".into(),
                    users: vec!["carol".into()],
                },
            ],
            ..message()
        };
        assert_eq!(
            reactions_line(&m),
            "  👍 2 (alice, b\\x1bob) · \\x07 1 (carol)"
        );
        let value = message_json(&m);
        assert_eq!(value["reactions"][0]["count"], 2);
        assert_eq!(value["reactions"][0]["users"][1], "b\x1bob");
        let event = Event {
            seq: 3,
            index: 4,
            kind: Some(Kind::Reacted(m)),
        };
        assert!(event_line(&event).starts_with("[3] reactions to message 5 in conversation 3:"));
        assert_eq!(event_json(&event)["type"], "reacted");
    }

    #[test]
    fn event_renderings() {
        let event = Event {
            seq: 9,
            index: 40,
            kind: Some(Kind::Message(message())),
        };
        assert_eq!(
            event_line(&event),
            "[9] message 5 in conversation 3 from alice: hi"
        );
        let value = event_json(&event);
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 9);
        assert_eq!(value["message"]["body"], "hi");

        let deleted = Event {
            seq: 10,
            index: 41,
            kind: Some(Kind::Deleted(MessagesDeleted {
                conversation_id: 3,
                message_ids: vec![5, 6],
            })),
        };
        assert_eq!(
            event_line(&deleted),
            "[10] deleted messages 5, 6 in conversation 3"
        );
        assert_eq!(event_json(&deleted)["message_ids"], json!([5, 6]));

        let presence = Event {
            seq: 11,
            index: 42,
            kind: Some(Kind::Presence(PresenceChanged {
                user: "bob".into(),
                online: true,
                last_seen_ms: 0,
            })),
        };
        assert_eq!(event_line(&presence), "[11] bob is online");

        let typing = Event {
            seq: 11,
            index: 0,
            kind: Some(Kind::Typing(TypingNotice {
                conversation_id: 3,
                user: "bob\x1b[2J".into(),
                expires_in_ms: 5000,
            })),
        };
        assert_eq!(
            event_line(&typing),
            "[11] bob\\x1b[2J is typing in conversation 3"
        );
        let value = event_json(&typing);
        assert_eq!(value["type"], "typing");
        assert_eq!(value["user"], "bob\x1b[2J");
        assert_eq!(value["expires_in_ms"], 5000);
    }

    #[test]
    fn server_text_is_escaped_in_lines() {
        crate::time::show_in_utc(true);
        let evil = Message {
            sender: "eve\x1b]0;t\x07".into(),
            body: "\x1b[2Jok\n[999] 2026-12-02 17:00:00  carol: I approve".into(),
            ..message()
        };
        let line = message_line(&evil);
        assert_eq!(
            line,
            format!(
                "[5] 2026-11-23 08:52:12 +00:00  eve\\x1b]0;t\\x07: \\x1b[2Jok\n{}[999] 2026-12-02 17:00:00  carol: I approve",
                " ".repeat(49)
            )
        );
        let lead = message_line_after("(conversation 3) ", &evil);
        let second = lead.lines().nth(1).unwrap_or_default();
        assert!(second.starts_with(&" ".repeat(66)), "{second:?}");

        let event = Event {
            seq: 9,
            index: 40,
            kind: Some(Kind::Message(evil)),
        };
        let line = event_line(&event);
        assert!(!line.contains('\x1b'), "{line:?}");
        let indent = "[9] message 5 in conversation 3 from eve\\x1b]0;t\\x07: ".len();
        assert_eq!(
            line.lines().nth(1).map(|l| l.len() - l.trim_start().len()),
            Some(indent)
        );

        let presence = Event {
            seq: 1,
            index: 1,
            kind: Some(Kind::Presence(PresenceChanged {
                user: "bob\nmallory".into(),
                online: true,
                last_seen_ms: 0,
            })),
        };
        assert_eq!(event_line(&presence), "[1] bob\\nmallory is online");
    }

    #[test]
    fn a_new_direct_conversation_names_both_people() {
        let event = |name: &str| Event {
            seq: 7,
            kind: Some(Kind::Membership(MembershipChanged {
                conversation: Some(Conversation {
                    id: 3,
                    kind: ConversationKind::Direct as i32,
                    name: name.into(),
                    members: vec!["alice".into(), "bob".into()],
                    ..Default::default()
                }),
                user: "alice".into(),
                change: "created".into(),
            })),
            ..Default::default()
        };
        // Whichever peer's view the name is.
        for name in ["alice", "bob"] {
            assert_eq!(
                event_line(&event(name)),
                "[7] alice started a direct conversation with bob (conversation 3)"
            );
        }
    }

    #[test]
    fn conversation_names() {
        let group = Conversation {
            kind: ConversationKind::Group as i32,
            name: "team".into(),
            ..Default::default()
        };
        assert_eq!(conversation_name(&group), "#team");
        assert_eq!(conversation_json(&group)["kind"], "group");
        let evil = Conversation {
            name: "te\u{202e}am\r".into(),
            ..group
        };
        assert_eq!(conversation_name(&evil), "#te\\u{202e}am\\r");
        assert_eq!(conversation_json(&evil)["name"], "te\u{202e}am\r");
    }
}
