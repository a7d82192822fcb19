//! Messaging commands: send, read, history, search, conversations,
//! mark-read, delete-messages, edit, react, typing. Each runs inside a
//! `--as USER` session.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use raftchat_client::{ChatClient, ClientError, Conversation, Message, SearchReply, Target};

use super::output::Output;
use super::render::{
    conversation_json, conversation_name, join_ids, join_names, kind_name, message_json,
    message_line, message_line_after, quote_line, reactions_line,
};
use super::sanitize::escape_line;
use super::table::Table;
use super::time::format_ms;

/// `send --as USER [--reply-to ID] TO TEXT...`.
pub async fn send(
    client: &ChatClient,
    out: Output,
    to: &Target,
    text: &str,
    reply_to: u64,
) -> Result<()> {
    let reply = client.send_reply(to, text, reply_to).await?;
    let message = reply
        .message
        .ok_or_else(|| ClientError::missing_field("message"))?;
    out.either(
        || {
            format!(
                "sent message {} to {} (conversation {})",
                message.id,
                escape_line(&to.to_string()),
                message.conversation_id
            )
        },
        || message_json(&message),
    )
}

/// `read --as USER [--with T] [--limit N]`: the oldest unread messages,
/// which the server then marks read.
pub async fn read(
    client: &ChatClient,
    out: Output,
    with: Option<&Target>,
    limit: u32,
) -> Result<()> {
    let conversation_id = match with {
        Some(target) => client.find_conversation(target).await?.id,
        None => 0,
    };
    let reply = client.read_unread(conversation_id, limit).await?;
    if out.is_json() {
        for message in &reply.messages {
            out.object(&message_json(message))?;
        }
        return out.object(&json!({ "remaining": reply.remaining }));
    }
    if reply.messages.is_empty() {
        return out.text("no unread messages");
    }
    let names = if conversation_id == 0 {
        conversation_names(client).await
    } else {
        BTreeMap::new()
    };
    for message in &reply.messages {
        if conversation_id == 0 {
            out.text(&message_line_after(&lead(&names, message), message))?;
        } else {
            out.text(&message_line(message))?;
        }
    }
    if reply.remaining > 0 {
        out.text(&format!("{} more unread", reply.remaining))?;
    }
    Ok(())
}

/// The caller's conversations' names (the peer, or #group) by id, to lead
/// messages of several conversations; empty if the list cannot be had.
async fn conversation_names(client: &ChatClient) -> BTreeMap<u64, String> {
    match client.list_conversations().await {
        Ok(list) => list
            .conversations
            .iter()
            .map(|c| (c.id, conversation_name(c)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// `(name) ` or `(conversation N) ` before a message of several
/// conversations' (see [`conversation_names`]).
fn lead(names: &BTreeMap<u64, String>, message: &Message) -> String {
    match names.get(&message.conversation_id) {
        Some(name) => format!("({name}) "),
        None => format!("(conversation {}) ", message.conversation_id),
    }
}

/// `search --as USER [--with T] [--before ID] [--limit N] QUERY`: one page
/// of matches, newest first like any search result, each led by its
/// conversation when all were searched.
pub async fn search(
    client: &ChatClient,
    out: Output,
    with: Option<&Target>,
    query: &str,
    before: u64,
    limit: u32,
) -> Result<()> {
    let reply = client.search(with, query, before, limit).await?;
    if out.is_json() {
        for message in &reply.messages {
            out.object(&message_json(message))?;
        }
        if let (true, Some(last)) = (reply.more, reply.messages.last()) {
            out.object(&json!({ "more": true, "before": last.id }))?;
        }
        return Ok(());
    }
    let names = match with {
        None if !reply.messages.is_empty() => Some(conversation_names(client).await),
        _ => None,
    };
    out.text(&search_text(&reply, names.as_ref()))
}

/// A search page as [`search`] prints it: each match on its line(s),
/// newest first, led by its conversation's name when `names` is given
/// (all conversations searched); then how to page on, if more remain.
pub fn search_text(reply: &SearchReply, names: Option<&BTreeMap<u64, String>>) -> String {
    if reply.messages.is_empty() {
        return "no matching messages".into();
    }
    let mut lines: Vec<String> = reply
        .messages
        .iter()
        .map(|message| match names {
            Some(names) => message_line_after(&lead(names, message), message),
            None => message_line(message),
        })
        .collect();
    if let (true, Some(last)) = (reply.more, reply.messages.last()) {
        lines.push(format!("(older matches: --before {})", last.id));
    }
    lines.join("\n")
}

/// `history --as USER --with T [--before ID] [--limit N]`: one page, shown
/// oldest first so it reads like a chat.
pub async fn history(
    client: &ChatClient,
    out: Output,
    with: &Target,
    before: u64,
    limit: u32,
) -> Result<()> {
    let reply = client.history(with, before, limit).await?;
    let oldest = reply.messages.last().map(|m| m.id);
    if out.is_json() {
        for message in reply.messages.iter().rev() {
            out.object(&message_json(message))?;
        }
        if let (true, Some(oldest)) = (reply.more, oldest) {
            out.object(&json!({ "more": true, "before": oldest }))?;
        }
        return Ok(());
    }
    if let Some(conversation) = &reply.conversation {
        out.text(&format!(
            "{} (conversation {}, members: {})",
            conversation_name(conversation),
            conversation.id,
            join_names(&conversation.members, ", ")
        ))?;
    }
    if let (true, Some(oldest)) = (reply.more, oldest) {
        out.text(&format!("(older messages: --before {oldest})"))?;
    }
    if reply.messages.is_empty() {
        return out.text("no messages");
    }
    // The messages replies answer: in the page, or looked up (one call
    // each); absent = deleted.
    let mut originals: BTreeMap<u64, Option<Message>> = reply
        .messages
        .iter()
        .map(|m| (m.id, Some(m.clone())))
        .collect();
    for message in &reply.messages {
        let id = message.reply_to;
        if id == 0 || originals.contains_key(&id) {
            continue;
        }
        let page = client.history(with, id.saturating_add(1), 1).await?;
        let found = page.messages.into_iter().find(|m| m.id == id);
        originals.insert(id, found);
    }
    for message in reply.messages.iter().rev() {
        if message.reply_to != 0 {
            let original = originals.get(&message.reply_to).and_then(Option::as_ref);
            out.text(&quote_line(message.reply_to, original))?;
        }
        out.text(&message_line(message))?;
        if !message.reactions.is_empty() {
            out.text(&reactions_line(message))?;
        }
    }
    Ok(())
}

/// `conversations --as USER`.
pub async fn conversations(client: &ChatClient, out: Output) -> Result<()> {
    let reply = client.list_conversations().await?;
    if out.is_json() {
        for conversation in &reply.conversations {
            out.object(&conversation_json(conversation))?;
        }
        return out.object(&json!({ "total_unread": reply.total_unread }));
    }
    out.text(&conversations_table(&reply.conversations))?;
    out.text(&format!("{} unread in total", reply.total_unread))
}

/// Id, kind, name, unread count, last activity and members.
pub fn conversations_table(conversations: &[Conversation]) -> String {
    let mut table = Table::new(["ID", "KIND", "NAME", "UNREAD", "LAST ACTIVITY", "MEMBERS"]);
    for conversation in conversations {
        table.row([
            conversation.id.to_string(),
            kind_name(conversation).to_string(),
            conversation_name(conversation),
            conversation.unread.to_string(),
            format_ms(conversation.last_activity_ms),
            join_names(&conversation.members, ","),
        ]);
    }
    table.render()
}

/// `mark-read --as USER --with T [--up-to ID]` (default: the newest message).
pub async fn mark_read(
    client: &ChatClient,
    out: Output,
    with: &Target,
    up_to: Option<u64>,
) -> Result<()> {
    let conversation = client.find_conversation(with).await?;
    let up_to = up_to.unwrap_or(conversation.last_message_id);
    if up_to == 0 {
        return out.either(
            || {
                format!(
                    "{}: no messages to mark read",
                    escape_line(&with.to_string())
                )
            },
            || json!({ "conversation_id": conversation.id, "up_to": 0 }),
        );
    }
    client.mark_read(conversation.id, up_to).await?;
    out.either(
        || {
            format!(
                "{}: marked read up to message {up_to}",
                escape_line(&with.to_string())
            )
        },
        || json!({ "conversation_id": conversation.id, "up_to": up_to }),
    )
}

/// `delete-messages --as USER ID...`.
pub async fn delete_messages(client: &ChatClient, out: Output, ids: &[u64]) -> Result<()> {
    let reply = client.delete_messages(ids).await?;
    out.either(
        || {
            format!(
                "deleted {} of {} message(s): {}",
                reply.deleted,
                ids.len(),
                join_ids(ids)
            )
        },
        || json!({ "deleted": reply.deleted, "requested": ids }),
    )
}

/// `edit --as USER ID TEXT...`.
pub async fn edit(client: &ChatClient, out: Output, id: u64, text: &str) -> Result<()> {
    let reply = client.edit_message(id, text).await?;
    let message = reply
        .message
        .ok_or_else(|| ClientError::missing_field("message"))?;
    out.either(
        || {
            format!(
                "edited message {} (conversation {})",
                message.id, message.conversation_id
            )
        },
        || message_json(&message),
    )
}

/// `typing --as USER TO`: one typing notice.
pub async fn typing(client: &ChatClient, out: Output, to: &Target) -> Result<()> {
    let conversation = client.find_conversation(to).await?;
    client.typing(conversation.id).await?;
    out.either(
        || {
            format!(
                "told {} you are typing (conversation {})",
                escape_line(&conversation_name(&conversation)),
                conversation.id
            )
        },
        || json!({ "typing": true, "conversation_id": conversation.id }),
    )
}

/// `react --as USER ID EMOJI`: says whether the reaction is now on or off.
pub async fn react(client: &ChatClient, out: Output, id: u64, emoji: &str, me: &str) -> Result<()> {
    let reply = client.react(id, emoji).await?;
    let message = reply
        .message
        .ok_or_else(|| ClientError::missing_field("message"))?;
    let on = message
        .reactions
        .iter()
        .any(|r| r.emoji == emoji && r.users.iter().any(|u| u.eq_ignore_ascii_case(me)));
    out.either(
        || {
            let what = if on { "reacted" } else { "removed reaction" };
            format!("{what} {} on message {}", escape_line(emoji), message.id)
        },
        || message_json(&message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftchat_client::ConversationKind;

    #[test]
    fn search_results_are_newest_first_escaped_and_led_by_their_conversation() {
        crate::time::show_in_utc(true);
        let message = |id: u64, conversation_id: u64, sender: &str, body: &str| Message {
            id,
            conversation_id,
            sender: sender.into(),
            body: body.into(),
            sent_ms: 1_795_423_932_000,
            ..Default::default()
        };
        let reply = SearchReply {
            messages: vec![
                message(9, 4, "bob", "the Straße\x1b[2Jis long"),
                message(7, 3, "alice", "STRASSE\nsecond line"),
            ],
            more: true,
        };
        let names: BTreeMap<u64, String> = [(4, "#team".to_string())].into();
        // The body's control characters are escaped; its further lines
        // are indented past the lead.
        let indent = " ".repeat("(conversation 3) [7] 2026-11-23 08:52:12 +00:00  alice: ".len());
        assert_eq!(
            search_text(&reply, Some(&names)),
            format!(
                "(#team) [9] 2026-11-23 08:52:12 +00:00  bob: the Straße\\x1b[2Jis long\n\
                 (conversation 3) [7] 2026-11-23 08:52:12 +00:00  alice: STRASSE\n\
                 {indent}second line\n\
                 (older matches: --before 7)"
            )
        );
        let one = SearchReply {
            messages: vec![message(9, 4, "bob", "hi")],
            more: false,
        };
        assert_eq!(
            search_text(&one, None),
            "[9] 2026-11-23 08:52:12 +00:00  bob: hi"
        );
        let none = SearchReply::default();
        assert_eq!(search_text(&none, None), "no matching messages");
    }

    #[test]
    fn conversations_table_names_groups_with_a_hash() {
        crate::time::show_in_utc(true);
        let conversations = [
            Conversation {
                id: 4,
                kind: ConversationKind::Group as i32,
                name: "team".into(),
                members: vec!["alice".into(), "bob".into()],
                unread: 2,
                last_activity_ms: 1_795_423_932_000,
                ..Default::default()
            },
            Conversation {
                id: 3,
                kind: ConversationKind::Direct as i32,
                name: "bob".into(),
                members: vec!["alice".into(), "bob".into()],
                ..Default::default()
            },
            Conversation {
                id: 2,
                kind: ConversationKind::Direct as i32,
                name: "carol".into(),
                members: vec!["alice".into()],
                ..Default::default()
            },
        ];
        assert_eq!(
            conversations_table(&conversations),
            "ID  KIND    NAME             UNREAD  LAST ACTIVITY               MEMBERS\n\
             4   group   #team            2       2026-11-23 08:52:12 +00:00  alice,bob\n\
             3   direct  bob              0       never                       alice,bob\n\
             2   direct  carol (deleted)  0       never                       alice\n"
        );
    }
}
