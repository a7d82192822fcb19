//! `chatctl status`: one row per replica, plus warnings that matter when
//! debugging a cluster (unreachable replicas, diverging state digests).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use raftchat_client::{ChatClient, ServerStatus};

use super::output::Output;
use super::sanitize::escape_line;
use super::table::Table;
use super::time::format_uptime;

/// Digests are shown shortened to this many characters in the table.
const SHORT_DIGEST: usize = 12;

/// Queries every replica (with digests) and prints the result. Fails when
/// no replica answered, or when none has a working quorum (writes and
/// reads fail until a majority is back).
pub async fn status(client: &ChatClient, out: Output) -> Result<()> {
    let statuses = client.cluster_status(true).await;
    if out.is_json() {
        for status in &statuses {
            out.object(&status_json(status))?;
        }
    } else {
        out.text(&status_table(&statuses))?;
        for line in footnotes(&statuses) {
            out.text(&line)?;
        }
    }
    if statuses.iter().all(|s| s.result.is_err()) {
        bail!("UNAVAILABLE: no replica answered");
    }
    if no_quorum(&statuses) {
        bail!(
            "UNAVAILABLE: no replica has a working quorum: a majority of the replicas is down \
             or cut off, and writes and reads fail until it is back"
        );
    }
    Ok(())
}

/// Whether the replicas that answered all say the group has no quorum
/// (replicas too old to say are not counted).
fn no_quorum(statuses: &[ServerStatus]) -> bool {
    let said: Vec<bool> = statuses
        .iter()
        .filter_map(|s| s.result.as_ref().ok()?.has_quorum)
        .collect();
    !said.is_empty() && !said.contains(&true)
}

/// The role column: the Raft role, marked when the replica sees no quorum.
fn role_label(reply: &raftchat_client::StatusReply) -> String {
    match reply.has_quorum {
        // A removed replica has no quorum of its own to speak of.
        Some(false) if reply.role != "removed" => format!("{} (no quorum)", reply.role),
        _ => reply.role.clone(),
    }
}

/// The replica table: id, url, role, term, leader, commit, applied, digest.
pub fn status_table(statuses: &[ServerStatus]) -> String {
    let mut table = Table::new([
        "ID", "URL", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "DIGEST", "UPTIME",
    ]);
    // Replicas that did not answer: a leader among them is likely dead
    // (the others learn it only at their next election timeout).
    let silent: Vec<&str> = statuses
        .iter()
        .filter(|s| s.result.is_err())
        .map(|s| s.server.as_str())
        .collect();
    for status in statuses {
        match &status.result {
            Ok(reply) => table.row([
                reply.id.to_string(),
                if reply.url.is_empty() {
                    status.server.clone()
                } else {
                    reply.url.clone()
                },
                role_label(reply),
                reply.term.to_string(),
                if reply.leader_id == 0 {
                    "-".to_string()
                } else if silent.contains(&reply.leader_url.as_str()) {
                    format!("{} (no answer)", reply.leader_id)
                } else {
                    reply.leader_id.to_string()
                },
                reply.commit_index.to_string(),
                reply.applied_index.to_string(),
                short_digest(&reply.digest),
                format_uptime(reply.uptime_ms),
            ]),
            Err(_) => table.row(["-", &status.server, "unreachable"]),
        }
    }
    table.render()
}

/// Why replicas were unreachable, and any replicas that applied the same
/// log prefix yet report different digests (they have diverged: a bug).
/// Each note is escaped as one line: errors and digests come from afar.
pub fn footnotes(statuses: &[ServerStatus]) -> Vec<String> {
    let mut notes: Vec<String> = statuses
        .iter()
        .filter_map(|s| match &s.result {
            Err(error) => Some(format!("{}: {error}", s.server)),
            Ok(_) => None,
        })
        .collect();
    let mut by_applied: BTreeMap<u64, BTreeMap<&str, Vec<u64>>> = BTreeMap::new();
    for reply in statuses.iter().filter_map(|s| s.result.as_ref().ok()) {
        if !reply.digest.is_empty() {
            by_applied
                .entry(reply.applied_index)
                .or_default()
                .entry(reply.digest.as_str())
                .or_default()
                .push(reply.id);
        }
    }
    for (applied, digests) in by_applied {
        if digests.len() > 1 {
            let groups: Vec<String> = digests
                .iter()
                .map(|(digest, ids)| format!("{ids:?} {}", short_digest(digest)))
                .collect();
            notes.push(format!(
                "WARNING: replicas at applied index {applied} disagree: {}",
                groups.join(" vs ")
            ));
        }
    }
    notes
        .into_iter()
        .map(|note| escape_line(&note).into_owned())
        .collect()
}

/// The first characters of a digest, `-` when there is none.
fn short_digest(digest: &str) -> String {
    if digest.is_empty() {
        "-".to_string()
    } else {
        digest.chars().take(SHORT_DIGEST).collect()
    }
}

/// One replica as JSON; unreachable ones carry `"reachable": false` and
/// the error.
pub fn status_json(status: &ServerStatus) -> Value {
    match &status.result {
        Ok(reply) => json!({
            "server": status.server,
            "reachable": true,
            "id": reply.id,
            "url": reply.url,
            "role": reply.role,
            "has_quorum": reply.has_quorum,
            "term": reply.term,
            "leader_id": reply.leader_id,
            "leader_url": reply.leader_url,
            "commit_index": reply.commit_index,
            "applied_index": reply.applied_index,
            "last_log_index": reply.last_log_index,
            "snapshot_index": reply.snapshot_index,
            "digest": reply.digest,
            "persistent": reply.persistent,
            "uptime_ms": reply.uptime_ms,
            "members": reply.members.iter()
                .map(|m| json!({ "id": m.id, "url": m.url }))
                .collect::<Vec<_>>(),
            "peers": reply.peers.iter()
                .map(|p| json!({
                    "id": p.id,
                    "match_index": p.has_match.then_some(p.match_index),
                    "last_contact_ms": (p.last_contact_ms >= 0).then_some(p.last_contact_ms),
                }))
                .collect::<Vec<_>>(),
        }),
        Err(error) => json!({
            "server": status.server,
            "reachable": false,
            "error": error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftchat_client::StatusReply;

    fn up(id: u64, role: &str, applied: u64, digest: &str) -> ServerStatus {
        ServerStatus {
            server: format!("127.0.0.1:700{id}"),
            result: Ok(StatusReply {
                id,
                url: format!("127.0.0.1:700{id}"),
                role: role.into(),
                term: 4,
                leader_id: 1,
                commit_index: applied,
                applied_index: applied,
                digest: digest.into(),
                uptime_ms: 65_000,
                ..Default::default()
            }),
        }
    }

    fn down(id: u64) -> ServerStatus {
        ServerStatus {
            server: format!("127.0.0.1:700{id}"),
            result: Err("no answer within 2.0 s".into()),
        }
    }

    #[test]
    fn table_shows_every_replica() {
        let table = status_table(&[up(1, "leader", 57, "0123456789abcdef"), down(2)]);
        assert_eq!(
            table,
            "ID  URL             ROLE         TERM  LEADER  COMMIT  APPLIED  DIGEST        UPTIME\n\
             1   127.0.0.1:7001  leader       4     1       57      57       0123456789ab  1m5s\n\
             -   127.0.0.1:7002  unreachable\n"
        );
    }

    #[test]
    fn a_leader_that_does_not_answer_is_marked() {
        let mut follower = up(2, "follower", 57, "aaaa");
        if let Ok(reply) = &mut follower.result {
            reply.leader_url = "127.0.0.1:7001".into();
        }
        let table = status_table(&[down(1), follower.clone()]);
        assert!(table.contains("1 (no answer)"), "{table}");
        let table = status_table(&[up(1, "leader", 57, "aaaa"), follower]);
        assert!(!table.contains("no answer"), "{table}");
    }

    #[test]
    fn footnotes_explain_failures_and_divergence() {
        let notes = footnotes(&[
            up(1, "leader", 57, "aaaa"),
            up(2, "follower", 57, "bbbb"),
            up(3, "follower", 50, "cccc"),
            down(4),
        ]);
        assert_eq!(
            notes,
            vec![
                "127.0.0.1:7004: no answer within 2.0 s".to_string(),
                "WARNING: replicas at applied index 57 disagree: [1] aaaa vs [2] bbbb".into(),
            ]
        );
        assert!(footnotes(&[up(1, "leader", 5, "x"), up(2, "follower", 5, "x")]).is_empty());
    }

    #[test]
    fn a_replica_without_quorum_is_marked_and_fails_the_command() {
        let mut lonely = up(1, "leader", 57, "aaaa");
        if let Ok(reply) = &mut lonely.result {
            reply.has_quorum = Some(false);
        }
        let table = status_table(&[lonely.clone(), down(2)]);
        assert!(table.contains("leader (no quorum)"), "{table}");
        assert!(no_quorum(&[lonely.clone(), down(2)]));
        let mut fine = up(2, "follower", 57, "aaaa");
        if let Ok(reply) = &mut fine.result {
            reply.has_quorum = Some(true);
        }
        assert!(!no_quorum(&[lonely, fine]));
        // Replicas that do not say (older releases) are not judged.
        assert!(!no_quorum(&[up(3, "leader", 5, "x")]));
    }

    #[test]
    fn json_marks_reachability() {
        assert_eq!(status_json(&down(2))["reachable"], false);
        let value = status_json(&up(1, "leader", 3, "d"));
        assert_eq!(value["role"], "leader");
        assert_eq!(value["applied_index"], 3);
    }
}
