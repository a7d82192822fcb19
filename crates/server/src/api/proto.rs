//! The wire contract ([`raftchat_proto`]) and the gRPC servers generated
//! for it here, which decode requests with [`super::codec::RequestCodec`]: a request
//! that does not decode (a string field that is not UTF-8) is answered with
//! INVALID_ARGUMENT, where prost's codec says INTERNAL (see `build.rs`).

pub use raftchat_proto::*;

#[allow(clippy::all, missing_docs)]
mod servers {
    include!(concat!(env!("OUT_DIR"), "/raftchat.v1.rs"));
}
pub use servers::*;

/// The encoded descriptors of every raftchat service, for gRPC server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftchat_descriptor");
