//! `group create|add|leave`. Groups are named by humans but addressed by
//! conversation id on the wire, so add/leave resolve the name first.

use anyhow::Result;
use serde_json::json;

use raftchat_client::{ChatClient, ClientError, Target};

use super::output::Output;
use super::render::{conversation_json, join_names};
use super::sanitize::escape_line;

/// `group create --as USER NAME [MEMBER...]`.
pub async fn create(
    client: &ChatClient,
    out: Output,
    name: &str,
    members: &[String],
) -> Result<()> {
    let reply = client.create_group(name, members).await?;
    let conversation = reply
        .conversation
        .ok_or_else(|| ClientError::missing_field("conversation"))?;
    out.either(
        || {
            format!(
                "created group #{} (conversation {}) with {}",
                escape_line(&conversation.name),
                conversation.id,
                join_names(&conversation.members, ", ")
            )
        },
        || conversation_json(&conversation),
    )
}

/// `group add --as USER NAME MEMBER`.
pub async fn add(client: &ChatClient, out: Output, name: &str, member: &str) -> Result<()> {
    let conversation = client
        .find_conversation(&Target::Group(name.into()))
        .await?;
    client.add_member(conversation.id, member).await?;
    out.either(
        || format!("added {} to #{}", escape_line(member), escape_line(name)),
        || json!({ "conversation_id": conversation.id, "added": member }),
    )
}

/// `group leave --as USER NAME`.
pub async fn leave(client: &ChatClient, out: Output, name: &str) -> Result<()> {
    let conversation = client
        .find_conversation(&Target::Group(name.into()))
        .await?;
    client.leave_group(conversation.id).await?;
    out.either(
        || format!("left #{}", escape_line(name)),
        || json!({ "conversation_id": conversation.id, "left": true }),
    )
}
