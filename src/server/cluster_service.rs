//! The `Cluster` gRPC service: what this replica knows about the group.

use std::sync::Arc;
use std::time::Instant;

use openraft::ServerState;
use tonic::{Request, Response, Status};

use crate::proto::cluster_server::Cluster;
use crate::proto::{self, StatusReply};
use crate::server::chat_service::ServiceContext;

pub struct ClusterService {
    pub ctx: Arc<ServiceContext>,
    pub url: String,
    pub persistent: bool,
    pub started: Instant,
}

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        req: Request<proto::StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let consensus = &self.ctx.consensus;
        let m = consensus.metrics();
        let membership = m.membership_config.membership();
        let members: Vec<proto::Member> = membership
            .nodes()
            .map(|(id, node)| proto::Member {
                id: *id,
                url: node.addr.clone(),
            })
            .collect();
        let peers = m
            .replication
            .as_ref()
            .map(|repl| {
                repl.iter()
                    .filter(|(id, _)| **id != consensus.id)
                    .map(|(id, matched)| proto::PeerProgress {
                        id: *id,
                        match_index: matched.map(|l| l.index).unwrap_or(0),
                        has_match: matched.is_some(),
                        last_contact_ms: consensus
                            .peers
                            .since_contact(*id)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or(-1),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (leader_id, leader_url) = consensus.leader().unwrap_or((0, String::new()));
        let (applied, digest) = {
            let guard = self.ctx.state.read().unwrap_or_else(|e| e.into_inner());
            let digest = if req.get_ref().with_digest {
                hex::encode(guard.chat.digest())
            } else {
                String::new()
            };
            (guard.last_applied.map(|l| l.index).unwrap_or(0), digest)
        };
        let reply = StatusReply {
            id: consensus.id,
            url: self.url.clone(),
            role: role(m.state).to_string(),
            term: m.current_term,
            leader_id,
            leader_url,
            commit_index: committed_index(&m).unwrap_or(applied),
            applied_index: applied,
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            digest,
            peers,
            members,
            persistent: self.persistent,
            uptime_ms: self.started.elapsed().as_millis() as u64,
        };
        Ok(Response::new(reply))
    }
}

/// openraft 0.9 does not publish the commit index in its metrics; on the
/// leader it is the quorum's match index, elsewhere the applied index is the
/// best this replica knows.
fn committed_index(m: &crate::server::raft_types::RaftMetrics) -> Option<u64> {
    let repl = m.replication.as_ref()?;
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
    let mut matched: Vec<u64> = voters
        .iter()
        .map(|v| {
            if *v == m.id {
                m.last_log_index.unwrap_or(0)
            } else {
                repl.get(v).copied().flatten().map(|l| l.index).unwrap_or(0)
            }
        })
        .collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched.get(voters.len() / 2).copied()
}
