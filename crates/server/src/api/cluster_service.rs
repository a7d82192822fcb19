//! The `Cluster` gRPC service: what this replica knows about the group, and
//! membership changes. `Status` and `ListReplicas` are open to anyone;
//! `AddReplica` and `RemoveReplica` need the admin certificate
//! ([`ClusterService::authorize_admin`]).

use std::sync::Arc;
use std::time::Instant;

use openraft::ServerState;
use tonic::{Request, Response, Status};

use crate::api::chat_service::ServiceContext;
use crate::api::convert::respond;
use crate::api::proto::cluster_server::Cluster;
use crate::api::proto::{self, StatusReply};
use crate::raft::membership::{self, Route};
use crate::storage::raft_types::{NodeId, RaftMetrics};
use raftchat_tls::{self as tls, Role};

pub struct ClusterService {
    pub ctx: Arc<ServiceContext>,
    pub url: String,
    pub persistent: bool,
    /// Whether this replica serves TLS (admin certificates are possible).
    pub tls: bool,
    pub started: Instant,
}

impl ClusterService {
    /// Membership changes need a client certificate of the cluster CA with
    /// the admin role. A follower forwarding an admin call to the leader
    /// presents its own replica certificate and marks the call: it checked
    /// the admin's certificate itself.
    fn authorize_admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let certs = req.peer_certs();
        match tls::peer_role(certs.as_deref().map(Vec::as_slice)) {
            Some(Role::Admin) => Ok(()),
            Some(Role::Replica(id))
                if membership::is_forwarded(req)
                    && self
                        .ctx
                        .consensus
                        .metrics()
                        .membership_config
                        .membership()
                        .get_node(&id)
                        .is_some() =>
            {
                Ok(())
            }
            Some(role) => Err(Status::permission_denied(format!(
                "the {role} certificate may not change the membership; use the admin certificate"
            ))),
            None if self.tls => Err(Status::unauthenticated(
                "changing the membership needs the admin certificate: chatctl --cert admin.pem \
                 --key admin.key (or CHAT_CERT and CHAT_KEY)",
            )),
            None => Err(Status::unauthenticated(
                "changing the membership needs TLS and the admin certificate, and this replica \
                 runs without TLS (start the replicas with --tls-cert, --tls-key and --tls-ca)",
            )),
        }
    }
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

/// Whether the membership this replica knows leaves it out: it was
/// removed (openraft shows it as a learner).
fn is_removed(m: &RaftMetrics, id: NodeId) -> bool {
    let membership = m.membership_config.membership();
    membership.nodes().next().is_some() && membership.get_node(&id).is_none()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        req: Request<proto::StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let consensus = &self.ctx.consensus;
        let m = consensus.metrics();
        let members = membership::view(consensus, "").members;
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
                hex::encode(guard.chat.history_digest())
            } else {
                String::new()
            };
            (guard.last_applied.map(|l| l.index).unwrap_or(0), digest)
        };
        let reply = StatusReply {
            id: consensus.id,
            url: self.url.clone(),
            role: if is_removed(&m, consensus.id) {
                "removed"
            } else {
                role(m.state)
            }
            .to_string(),
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
            has_quorum: Some(consensus.has_quorum()),
        };
        Ok(Response::new(reply))
    }

    async fn list_replicas(
        &self,
        req: Request<proto::ListReplicasRequest>,
    ) -> Result<Response<proto::MembershipReply>, Status> {
        let consensus = &self.ctx.consensus;
        let result = match membership::route(consensus, membership::is_forwarded(&req)) {
            Ok(Route::Leader(url)) => {
                let forwarded = membership::forwarded_request(
                    proto::ListReplicasRequest {},
                    consensus.timeouts.commit,
                );
                match membership::leader_client(consensus, &url) {
                    Ok(mut leader) => match leader.list_replicas(forwarded).await {
                        Ok(reply) => Ok(reply.into_inner()),
                        // The leader is unreachable from here: this
                        // replica's own view is still worth showing.
                        Err(e) => Ok(membership::view(
                            consensus,
                            format!(
                                "this is replica {}'s view; the leader did not answer: {}",
                                consensus.id,
                                e.message()
                            ),
                        )),
                    },
                    Err(e) => Err(e),
                }
            }
            Ok(Route::Here) => Ok(membership::view(consensus, "")),
            Err(_) => Ok(membership::view(
                consensus,
                format!("no leader known; this is replica {}'s view", consensus.id),
            )),
        };
        respond(consensus, result)
    }

    async fn add_replica(
        &self,
        req: Request<proto::AddReplicaRequest>,
    ) -> Result<Response<proto::MembershipReply>, Status> {
        self.authorize_admin(&req)?;
        let consensus = &self.ctx.consensus;
        let forwarded = membership::is_forwarded(&req);
        let req = req.into_inner();
        let result = match membership::route(consensus, forwarded) {
            Ok(Route::Here) => membership::add_here(consensus, req).await,
            Ok(Route::Leader(url)) => {
                let budget = membership::add_budget(&req);
                match membership::leader_client(consensus, &url) {
                    Ok(mut leader) => leader
                        .add_replica(membership::forwarded_request(req, budget))
                        .await
                        .map(|r| r.into_inner()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        respond(consensus, result)
    }

    async fn remove_replica(
        &self,
        req: Request<proto::RemoveReplicaRequest>,
    ) -> Result<Response<proto::MembershipReply>, Status> {
        self.authorize_admin(&req)?;
        let consensus = &self.ctx.consensus;
        let forwarded = membership::is_forwarded(&req);
        let req = req.into_inner();
        let result = match membership::route(consensus, forwarded) {
            Ok(Route::Here) => membership::remove_here(consensus, req).await,
            Ok(Route::Leader(url)) => match membership::leader_client(consensus, &url) {
                Ok(mut leader) => leader
                    .remove_replica(membership::forwarded_request(
                        req,
                        membership::remove_budget(),
                    ))
                    .await
                    .map(|r| r.into_inner()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        respond(consensus, result)
    }
}

/// openraft 0.9 does not publish the commit index in its metrics; on the
/// leader it is the quorum's match index, elsewhere the applied index is the
/// best this replica knows.
pub(crate) fn committed_index(m: &crate::storage::raft_types::RaftMetrics) -> Option<u64> {
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
