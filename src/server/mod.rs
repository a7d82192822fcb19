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
