//! The raftchat wire contract: the messages and clients generated from
//! `proto/raftchat.proto`, and the few rules both sides of the wire share
//! ([`contract`]). Servers are generated in `raftchat-server`, which decodes
//! requests with its own codec.
//!
//! Every other crate depends on this one; it depends on none of them.

pub mod contract;

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("raftchat.v1");
}
pub use generated::*;
