//! `chatctl members`: list, add and remove replicas.
//!
//! Membership calls are admin calls outside the chat client's retry engine:
//! they may legitimately take as long as a new replica needs to catch up, and
//! they are not idempotent in general. So this module asks the configured
//! replicas one after another and stops at the first real answer: any
//! replica will do, because followers hand the change to the leader. Only
//! UNAVAILABLE or an unreachable replica moves on to the next one.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use tonic::transport::Endpoint;
use tonic::{Request, Status};

use raftchat_client::{code_name, ClientConfig};
use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::{
    AddReplicaRequest, ListReplicasRequest, MembershipReply, RemoveReplicaRequest,
};

use super::args::MembersCommand;
use super::output::Output;
use super::sanitize::escape_line;
use super::table::Table;

/// Extra time an add gets on top of the catch-up wait (two membership log
/// entries must commit).
const ADD_SLACK: Duration = Duration::from_secs(30);

/// Runs one `chatctl members` command.
pub async fn run(config: &ClientConfig, out: Output, action: MembersCommand) -> Result<()> {
    let reply = match action {
        MembersCommand::List => {
            call(config, config.rpc_timeout, |mut c, t| async move {
                c.list_replicas(request(ListReplicasRequest {}, t)).await
            })
            .await?
        }
        MembersCommand::Add {
            member: (id, url),
            catch_up_secs,
        } => {
            let catch_up = Duration::from_secs(catch_up_secs.max(1));
            let message = AddReplicaRequest {
                id,
                url,
                catch_up_timeout_ms: catch_up.as_millis() as u64,
            };
            call(config, catch_up + ADD_SLACK, move |mut c, t| {
                let message = message.clone();
                async move { c.add_replica(request(message, t)).await }
            })
            .await?
        }
        MembersCommand::Remove { id } => {
            call(config, ADD_SLACK, move |mut c, t| async move {
                c.remove_replica(request(RemoveReplicaRequest { id }, t))
                    .await
            })
            .await?
        }
    };
    print(out, &reply)
}

fn request<T>(message: T, timeout: Duration) -> Request<T> {
    let mut req = Request::new(message);
    req.set_timeout(timeout);
    req
}

/// Tries each configured replica in turn (for at most `write_deadline`
/// overall, or one `per_call` when that is longer) until one answers with
/// anything but UNAVAILABLE.
async fn call<F, Fut>(config: &ClientConfig, per_call: Duration, rpc: F) -> Result<MembershipReply>
where
    F: Fn(ClusterClient<tonic::transport::Channel>, Duration) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<MembershipReply>, Status>>,
{
    let deadline = tokio::time::Instant::now() + config.write_deadline.max(per_call);
    let mut last = String::from("no replica configured (--servers)");
    loop {
        for server in &config.servers {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("UNAVAILABLE: no replica completed the call; last error: {last}");
            }
            let budget = per_call.min(left);
            let addr = server.split_once("://").map_or(server.as_str(), |(_, a)| a);
            let endpoint = match endpoint(config, addr) {
                Ok(e) => e,
                Err(e) => bail!("INVALID_ARGUMENT: bad server address {addr}: {e}"),
            };
            let channel = match endpoint.connect().await {
                Ok(ch) => ch,
                Err(e) => {
                    last = format!("{addr}: cannot connect: {e}");
                    continue;
                }
            };
            match tokio::time::timeout(budget, rpc(ClusterClient::new(channel), budget)).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                    last = format!("{addr}: {}", status.message());
                }
                Ok(Err(status)) => bail!("{}: {}", code_name(status.code()), status.message()),
                Err(_) => last = format!("{addr}: no answer within {budget:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An endpoint for `addr`, over TLS (presenting `--cert`) when `--ca` is set.
fn endpoint(config: &ClientConfig, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(config.connect_timeout);
    match &config.tls {
        Some(tls) => endpoint.tls_config(tls.grpc()),
        None => Ok(endpoint),
    }
}

fn print(out: Output, reply: &MembershipReply) -> Result<()> {
    if out.is_json() {
        let members: Vec<_> = reply
            .members
            .iter()
            .map(|m| json!({"id": m.id, "url": m.url, "role": m.role, "leader": m.id == reply.leader_id}))
            .collect();
        return out.object(&json!({
            "members": members,
            "leader_id": reply.leader_id,
            "log_index": reply.log_index,
            "outcome": reply.outcome,
        }));
    }
    if !reply.outcome.is_empty() {
        out.text(&escape_line(&reply.outcome))?;
    }
    let mut table = Table::new(["ID", "URL", "ROLE", "LEADER"]);
    for m in &reply.members {
        let leader = if m.id == reply.leader_id { "*" } else { "" };
        table.row([
            m.id.to_string(),
            m.url.clone(),
            m.role.clone(),
            leader.into(),
        ]);
    }
    out.text(&table.render())
}
