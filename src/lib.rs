//! raftchat: a fault-tolerant chat replicated by Raft.
//!
//! STUB crate doc; see README.md.

pub mod proto;
pub mod server;
