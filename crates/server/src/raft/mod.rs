//! Consensus: how a command gets into the replicated log and how a read
//! is made linearizable ([`consensus`]), the one replica-to-replica
//! transport (framed Raft RPCs, forwarded proposals and read-index requests
//! over mutual TLS: [`wire`], [`listener`], [`network`], and the lanes a
//! leader opens for its followers' requests: [`lanes`]; gRPC connections'
//! writes coalesced: [`coalesce`]), membership
//! changes ([`membership`]), which storage each replica runs on
//! ([`incarnation`]), when a replica snapshots ([`snapshots`]) and when it
//! holds its elections ([`elections`]), whether the group has a
//! working quorum ([`quorum`]), and the typing notices replicas pass to
//! each other outside the log ([`typing`]).
//!
//! The openraft type configuration is [`crate::storage::raft_types`]: it
//! names the storage's snapshot type, and storage implements openraft's
//! traits for it, so it sits in the layer below this one. The durability
//! rule this layer relies on is stated whole in
//! [`crate::storage::durability`].

pub mod coalesce;
pub mod consensus;
pub mod elections;
pub mod incarnation;
pub mod lanes;
pub mod listener;
pub mod membership;
pub mod network;
pub mod quorum;
pub mod snapshots;
pub mod typing;
pub mod wire;
