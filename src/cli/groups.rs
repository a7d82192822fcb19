//! `group create|add|leave`. Groups are named by humans but addressed by
//! conversation id on the wire, so add/leave resolve the name first.

use anyhow::Result;
use serde_json::json;

use crate::client::{ChatClient, ClientError, Target};

use super::output::Output;
use super::render::conversation_json;

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
                conversation.name,
                conversation.id,
                conversation.members.join(", ")
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
        || format!("added {member} to #{name}"),
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
        || format!("left #{name}"),
        || json!({ "conversation_id": conversation.id, "left": true }),
    )
}
