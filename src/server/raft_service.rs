//! The receiving side of proposal forwarding and read-index requests (see
//! `network.rs`); openraft's own RPCs arrive on framed connections
//! (`listener.rs`).

use tonic::{Request, Response, Status};

use crate::proto::raft_server::Raft as RaftRpc;
use crate::proto::RaftBytes;
use crate::server::consensus::Consensus;
use crate::server::network::{decode, encode, ForwardRequest};

pub struct RaftService {
    pub consensus: Consensus,
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn forward(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let proposal: ForwardRequest = decode(req.get_ref())?;
        let result = self.consensus.propose_local(proposal).await;
        Ok(Response::new(encode(&result)?))
    }

    async fn read_index(&self, _req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let result = self.consensus.read_index_local().await;
        Ok(Response::new(encode(&result)?))
    }
}
