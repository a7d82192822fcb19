//! `watch --as USER [--after SEQ]`: the event stream, one line per event,
//! until Ctrl-C. Reconnections are reported (stderr in text mode, JSON
//! lines in JSON mode) but never interrupt the stream.

use anyhow::Result;
use futures::StreamExt;
use serde_json::json;

use raftchat_client::{ChatClient, SubscriptionItem};

use super::output::Output;
use super::render::{event_json, event_line};

/// Prints events until Ctrl-C (success) or a fatal stream error.
pub async fn watch(client: &ChatClient, out: Output, after: Option<u64>) -> Result<()> {
    let events = client.subscribe(after);
    let mut events = std::pin::pin!(events);
    let interrupted = tokio::signal::ctrl_c();
    let mut interrupted = std::pin::pin!(interrupted);
    loop {
        let item = tokio::select! {
            item = events.next() => item,
            _ = &mut interrupted => return Ok(()),
        };
        match item {
            Some(SubscriptionItem::Failed(err)) => return Err(err.into()),
            Some(item) => show(out, &item)?,
            None => return Ok(()),
        }
    }
}

fn show(out: Output, item: &SubscriptionItem) -> Result<()> {
    match item {
        SubscriptionItem::Event(event) => out.either(|| event_line(event), || event_json(event)),
        SubscriptionItem::Live { server, seq } => notice(
            out,
            format!("live on {server} at seq {seq}"),
            || json!({ "type": "live", "server": server, "seq": seq }),
        ),
        SubscriptionItem::Reconnecting {
            server,
            attempt,
            error,
        } => notice(
            out,
            format!("reconnecting to {server} (attempt {attempt}): {error}"),
            || json!({ "type": "reconnecting", "server": server, "attempt": attempt, "error": error }),
        ),
        SubscriptionItem::Resync { oldest_seq } => notice(
            out,
            format!(
                "events were missed (oldest kept is {oldest_seq}); reload, continuing from now"
            ),
            || json!({ "type": "resync", "oldest_seq": oldest_seq }),
        ),
        SubscriptionItem::Failed(err) => Err(err.clone().into()),
    }
}

/// Stream status: a stderr remark for humans, a JSON line for programs.
fn notice(out: Output, text: String, json: impl FnOnce() -> serde_json::Value) -> Result<()> {
    if out.is_json() {
        out.object(&json())
    } else {
        out.notice(&text);
        Ok(())
    }
}
