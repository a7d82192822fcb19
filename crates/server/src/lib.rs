//! The replica: consensus glue, storage, the pure chat state machine, and the
//! gRPC services. `replica::run` is the server loop that wires them together.

pub mod auth;
pub mod chat_service;
pub mod cluster_service;
pub mod codec;
pub mod command;
pub mod config;
pub mod consensus;
pub mod convert;
pub mod events;
pub mod health;
pub mod incarnation;
pub mod listener;
pub mod membership;
pub mod metrics;
pub mod network;
pub mod presence;
pub mod raft_types;
pub mod replica;
pub mod send_stream;
pub mod signals;
pub mod state;
pub mod storage;
pub mod subscribe;
pub mod throttle;
pub mod wire;

/// The wire contract ([`raftchat_proto`]) and the gRPC servers generated
/// for it here, which decode requests with [`codec::RequestCodec`]: a request
/// that does not decode (a string field that is not UTF-8) is answered with
/// INVALID_ARGUMENT, where prost's codec says INTERNAL (see `build.rs`).
pub mod proto {
    pub use raftchat_proto::*;

    #[allow(clippy::all, missing_docs)]
    mod servers {
        include!(concat!(env!("OUT_DIR"), "/raftchat.v1.rs"));
    }
    pub use servers::*;

    /// The encoded descriptors of every raftchat service, for gRPC server
    /// reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("raftchat_descriptor");
}
