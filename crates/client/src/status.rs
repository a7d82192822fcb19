//! `Cluster.Status` of every replica at once, for dashboards and `chatctl status`.

use tonic::Request;

use raftchat_proto::{StatusReply, StatusRequest};

use super::handle::GrpcCluster;
use super::retry::{describe_failure, is_transport, no_answer};
use super::servers::leader_hint;
use super::ChatClient;

/// One replica's answer to a status query.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    /// The replica as configured (`host:port`).
    pub server: String,
    /// Its status, or why it could not be reached (a human message).
    pub result: Result<StatusReply, String>,
}

impl ChatClient {
    /// Asks every configured replica for its status concurrently, each bounded
    /// by `rpc_timeout`; one entry per replica, in configuration order.
    /// `with_digest` also asks for the state digest (costly on the server).
    ///
    /// Never fails as a whole: unreachable replicas are reported as errors.
    pub async fn cluster_status(&self, with_digest: bool) -> Vec<ServerStatus> {
        let timeout = self.config().rpc_timeout;
        let queries = self.inner.servers.iter().map(|server| async move {
            let mut request = Request::new(StatusRequest { with_digest });
            request.set_timeout(timeout);
            let mut stub = GrpcCluster::new(server.channel());
            let result = match tokio::time::timeout(timeout, stub.status(request)).await {
                Ok(Ok(response)) => {
                    self.note_hint(leader_hint(response.metadata()));
                    Ok(response.into_inner())
                }
                Ok(Err(status)) => {
                    if is_transport(&status) {
                        server.reset();
                    }
                    Err(describe_failure(&status, timeout, server.plaintext))
                }
                Err(_elapsed) => {
                    server.reset();
                    Err(no_answer(timeout))
                }
            };
            ServerStatus {
                server: server.addr.clone(),
                result,
            }
        });
        futures::future::join_all(queries).await
    }
}
