//! Generated gRPC types and services for `proto/raftchat.proto`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("raftchat.v1");

/// The generated servers (built apart so that they decode requests with
/// [`crate::server::codec::RequestCodec`]; see `build.rs`).
mod servers {
    include!(concat!(env!("OUT_DIR"), "/server/raftchat.v1.rs"));
}
pub use servers::*;

/// The encoded descriptors of every raftchat service, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftchat_descriptor");
