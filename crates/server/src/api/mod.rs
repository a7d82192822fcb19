//! The client-facing side of a replica: the gRPC services, what they check
//! before anything is proposed, sessions and logins, and the endpoints
//! operators scrape (health, metrics).
//!
//! Writes go down to [`crate::raft::consensus`]; reads wait on its read
//! barrier and then read the applied state ([`crate::storage::SharedState`]).

pub mod auth;
pub mod chat_service;
pub mod cluster_service;
pub mod codec;
pub mod convert;
pub mod health;
pub mod metrics_http;
pub mod presence;
pub mod proto;
pub mod send_stream;
pub mod subscribe;
pub mod throttle;
pub mod typing;
