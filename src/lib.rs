//! raftchat: a fault-tolerant chat replicated by Raft.
//!
//! STUB crate doc; see README.md.

pub mod cli;
pub mod client;
pub mod fault;
pub mod local_cluster;
pub mod proto;
pub mod server;
