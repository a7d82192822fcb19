//! Changing the replica set while the cluster keeps serving.
//!
//! Adding a replica is two steps, both through the log: it joins as a
//! *learner* (it receives the log but does not vote, so a slow or empty
//! newcomer cannot stall commits), and once it has caught up it is promoted
//! to *voter* by openraft's joint consensus (the old and new voter sets must
//! both agree during the switch, so there is never a moment with two
//! possible majorities). Removing a voter is one joint-consensus change.
//!
//! Only the leader can change membership. A follower that receives an admin
//! call forwards it to the leader once (marked with [`FORWARDED`] so it can
//! never loop), so operators may point `chatctl members` at any replica.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, ChangeMembers, Membership};
use tonic::{Request, Status};

use crate::raft::consensus::Consensus;
use crate::storage::raft_types::{NodeId, TypeConfig};
use raftchat_proto::cluster_client::ClusterClient;
use raftchat_proto::{self as proto, AddReplicaRequest, MembershipReply, RemoveReplicaRequest};

/// Metadata marking an admin call a follower forwarded to the leader.
pub const FORWARDED: &str = "x-raftchat-forwarded";

/// Default time a new replica gets to catch up before promotion.
const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);

/// Time allowed for a forwarded call on top of its own work (a membership
/// change commits two log entries; the catch-up wait is added for adds).
const FORWARD_SLACK: Duration = Duration::from_secs(30);

/// Whether `req` was already forwarded by a follower.
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED)
}

/// The membership as this replica sees it.
pub fn view(consensus: &Consensus, outcome: impl Into<String>) -> MembershipReply {
    let m = consensus.metrics();
    let log_index = m.membership_config.log_id().as_ref().map_or(0, |l| l.index);
    describe(
        m.membership_config.membership(),
        log_index,
        m.current_leader.unwrap_or(0),
        outcome.into(),
    )
}

/// The membership a change committed, from openraft's answer to it: the
/// metrics may not show it yet when the answer arrives.
fn changed(
    consensus: &Consensus,
    response: &ClientWriteResponse<TypeConfig>,
    outcome: String,
) -> MembershipReply {
    match &response.membership {
        Some(membership) => describe(
            membership,
            response.log_id.index,
            consensus.metrics().current_leader.unwrap_or(0),
            outcome,
        ),
        None => view(consensus, outcome),
    }
}

fn describe(
    membership: &Membership<NodeId, BasicNode>,
    log_index: u64,
    leader_id: NodeId,
    outcome: String,
) -> MembershipReply {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    MembershipReply {
        members: membership
            .nodes()
            .map(|(id, node)| proto::Member {
                id: *id,
                url: node.addr.clone(),
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
            })
            .collect(),
        leader_id,
        log_index,
        outcome,
    }
}

/// Where an admin call must run.
pub enum Route {
    /// This replica is the leader: do it here.
    Here,
    /// Forward to the leader at this URL.
    Leader(String),
}

/// Decides where an admin call runs; a forwarded call that reaches a
/// non-leader fails (leadership moved while it travelled) instead of hopping
/// again.
pub fn route(consensus: &Consensus, forwarded: bool) -> Result<Route, Status> {
    if consensus.is_leader() {
        return Ok(Route::Here);
    }
    match consensus.leader() {
        // Dialled like any replica-to-replica traffic (`--replica-routes`).
        Some((id, url)) if !url.is_empty() && !forwarded => {
            Ok(Route::Leader(consensus.peers.route(id, &url).to_string()))
        }
        Some(_) => Err(Status::unavailable(
            "leadership is changing; retry the membership change shortly",
        )),
        None => Err(Status::unavailable(
            "no leader: an election is in progress or there is no quorum; membership cannot \
             change without a quorum",
        )),
    }
}

/// A Cluster client to the leader for forwarding, over the shared peer
/// channel.
pub fn leader_client(
    consensus: &Consensus,
    url: &str,
) -> Result<ClusterClient<tonic::transport::Channel>, Status> {
    Ok(ClusterClient::new(consensus.peers.channel(url)?))
}

/// A forwarded request: marked, and bounded by `timeout`.
pub fn forwarded_request<T>(message: T, timeout: Duration) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    req.set_timeout(timeout);
    req
}

/// Time to allow a forwarded add.
pub fn add_budget(req: &AddReplicaRequest) -> Duration {
    catch_up_timeout(req) + FORWARD_SLACK
}

/// Time to allow a forwarded remove.
pub fn remove_budget() -> Duration {
    FORWARD_SLACK
}

fn catch_up_timeout(req: &AddReplicaRequest) -> Duration {
    if req.catch_up_timeout_ms == 0 {
        DEFAULT_CATCH_UP
    } else {
        Duration::from_millis(req.catch_up_timeout_ms)
    }
}

fn check_url(url: &str) -> Result<(), Status> {
    let bad = || {
        Status::invalid_argument(format!(
            "'{url}' is not HOST:PORT (the address other replicas use to reach the new one)"
        ))
    };
    let (host, port) = url.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
        return Err(bad());
    }
    Ok(())
}

/// On the leader: adds `req.id` as a learner, waits for it to catch up, and
/// promotes it to voter. Idempotent for the same id and url.
pub async fn add_here(
    consensus: &Consensus,
    req: AddReplicaRequest,
) -> Result<MembershipReply, Status> {
    let id = req.id;
    if id == 0 {
        return Err(Status::invalid_argument(
            "replica ids are positive integers",
        ));
    }
    let url = req.url.trim().trim_start_matches("http://").to_string();
    check_url(&url)?;
    let metrics = consensus.metrics();
    let membership = metrics.membership_config.membership();
    let is_voter = membership.voter_ids().any(|v| v == id);
    match membership.get_node(&id) {
        Some(node) if node.addr != url => {
            return Err(Status::already_exists(format!(
                "replica {id} is already a member at {}; remove it first to change its address",
                node.addr
            )))
        }
        Some(_) if is_voter => {
            return Ok(view(consensus, format!("replica {id} was already a voter")));
        }
        _ => {}
    }
    let raft = &consensus.raft;
    let added = raft
        .add_learner(id, BasicNode { addr: url.clone() }, false)
        .await
        .map_err(change_error)?;
    let target = added.log_id.index;
    tracing::info!(id, %url, index = target, "added a learner; waiting for it to catch up");
    let timeout = catch_up_timeout(&req);
    let caught_up = raft
        .wait(Some(timeout))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id))
                    .copied()
                    .flatten()
                    .is_some_and(|l| l.index >= target)
            },
            "new replica catches up",
        )
        .await;
    if caught_up.is_err() {
        return Err(Status::deadline_exceeded(format!(
            "replica {id} at {url} did not catch up within {} s, so it was not promoted: it \
             stays a non-voting learner. Is it running with --join and reachable at that \
             address? Retry the add, or remove it with `chatctl members remove {id}`",
            timeout.as_secs()
        )));
    }
    let promoted = raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(change_error)?;
    tracing::info!(id, %url, "promoted to voter");
    Ok(changed(
        consensus,
        &promoted,
        format!("added replica {id} ({url}) as a voter"),
    ))
}

/// On the leader: removes `req.id` from the voters and the membership.
pub async fn remove_here(
    consensus: &Consensus,
    req: RemoveReplicaRequest,
) -> Result<MembershipReply, Status> {
    let id = req.id;
    let metrics = consensus.metrics();
    let membership = metrics.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(Status::not_found(format!("replica {id} is not a member")));
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let ids = BTreeSet::from([id]);
    let change = if voters.contains(&id) {
        if voters.len() == 1 {
            return Err(Status::failed_precondition(format!(
                "replica {id} is the only voter; a cluster cannot remove its last voter"
            )));
        }
        ChangeMembers::RemoveVoters(ids)
    } else {
        ChangeMembers::RemoveNodes(ids)
    };
    let removed = consensus
        .raft
        .change_membership(change, false)
        .await
        .map_err(change_error)?;
    tracing::info!(id, "removed replica from the membership");
    let note = if id == consensus.id {
        " (it was the leader: it steps down and the others elect a new one)"
    } else {
        ""
    };
    Ok(changed(
        consensus,
        &removed,
        format!("removed replica {id}{note}; stop its process now"),
    ))
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            Status::unavailable("this replica lost leadership during the change; retry")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => Status::failed_precondition(format!(
            "another membership change is still in progress ({p}); retry when it is done"
        )),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(other)) => {
            Status::failed_precondition(other.to_string())
        }
        RaftError::Fatal(f) => Status::unavailable(format!("raft stopped: {f}")),
    }
}
