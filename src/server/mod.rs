//! The replica: consensus glue, storage, the pure chat state machine, and the
//! gRPC services.

pub mod command;
pub mod events;
pub mod raft_types;
pub mod state;
pub mod storage;
