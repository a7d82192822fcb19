//! `chatd`, one raftchat replica, as a library: the binary (`main.rs`) only
//! parses flags and calls [`replica::run`].
//!
//! # Layers
//!
//! Modules import downwards only (`tests/architecture.rs` at the workspace
//! root checks it):
//!
//! | layer | what lives there |
//! |---|---|
//! | [`replica`], [`config`], [`signals`] | wiring: flags, bind, recover, bootstrap, serve, shut down |
//! | [`api`] | the gRPC services, request validation, sessions and logins, the metrics endpoint |
//! | [`raft`] | proposing writes (batched, forwarded to the leader), linearizable reads, the replica-to-replica transport, membership, incarnations |
//! | [`storage`] | openraft's log store and state machine: the WAL, snapshots, the durability rule, applied-event fan-out |
//! | [`state`] | the chat state machine: pure and deterministic, and the [`state::command`]s it applies |
//!
//! [`metrics`] is a leaf: every layer records into it, and it imports
//! nothing of ours.
//!
//! # How a write flows
//!
//! A handler in [`api::chat_service`] validates the request, does everything
//! nondeterministic (argon2id hashing, minting a session token) and builds a
//! [`state::command::Command`]. [`raft::consensus::Consensus::propose`]
//! hands it to the leader's batching proposer (forwarding it over the
//! replica transport when this replica is a follower), which stamps the
//! clock and puts every waiting command into one log entry. Once a majority
//! has the entry on disk, each replica's [`storage::StateStore`] applies it
//! through [`state::ChatState::apply_batch`], which returns one result per
//! command and the events subscribers receive ([`storage::events`]). The
//! handler converts its result to the reply ([`api::convert`]).
//!
//! # Adding a feature
//!
//! 1. Add the RPC and messages to `proto/raftchat.proto`.
//! 2. For a write: add a [`state::command::Command`] variant, handle it in
//!    `state/apply.rs` (validate everything first, then change state; emit
//!    events), and unit-test it there: the state machine is pure, so tests
//!    are plain function calls.
//! 3. Add the handler in [`api::chat_service`]: a write calls
//!    `ctx.write(request_id, command)`, a read calls `ctx.barrier()` and then
//!    reads `ctx.read(|state| ...)`; convert results in [`api::convert`].
//! 4. Expose it in `raftchat-client` (one method in `chat.rs`) and, if
//!    useful, as a `chatctl` command in `raftchat-cli`.
//! 5. Add an integration test under the workspace's `tests/` that runs real
//!    replicas through `raftchat_testkit::local_cluster`.

pub mod api;
pub mod config;
pub mod metrics;
pub mod raft;
pub mod replica;
pub mod signals;
pub mod state;
pub mod storage;
