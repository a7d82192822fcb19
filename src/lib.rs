//! raftchat: a fault-tolerant chat replicated by Raft.
//!
//! # Map
//!
//! | module | what lives there |
//! |---|---|
//! | [`proto`] | generated gRPC types (`proto/raftchat.proto` is the contract) |
//! | [`server::command`] | what a log entry carries: a [`server::command::Batch`] of proposals |
//! | [`server::state`] | the chat state machine: pure, deterministic, no I/O |
//! | [`server::storage`] | the Raft log (checksummed segments) and snapshots, on disk or in memory |
//! | [`server::consensus`] | proposing writes (batched, forwarded to the leader) and linearizable reads |
//! | [`server::wire`], [`server::listener`], [`server::network`] | replica-to-replica frames (Raft RPCs, forwarded proposals, read index) over mutual TLS |
//! | [`server::chat_service`], [`server::subscribe`], [`server::cluster_service`] | the client-facing gRPC services |
//! | [`server::incarnation`] | which storage each replica runs on, so a wiped replica cannot vote again |
//! | [`server::replica`] | the server loop: bind, recover, bootstrap, serve, shut down |
//! | [`client`] | the failover client library used by the CLI, the TUI, tests and benches |
//! | [`cli`] | `chatctl` |
//! | [`tls`] | certificates, the roles they carry (replica N, admin), rustls configurations; `chatctl certs` |
//! | [`calendar`] | date arithmetic shared by the CLI and the TUI |
//! | [`local_cluster`] | real `chatd` processes on loopback, for tests, examples and benches |
//!
//! # How a write flows
//!
//! A gRPC handler in `chat_service` validates the request and does everything
//! nondeterministic (argon2id hashing, minting a session token, reading the
//! clock happens in the proposer) and builds a [`server::command::Command`].
//! [`server::consensus::Consensus::propose`] hands it to the leader's
//! batching proposer (forwarding it when this replica is a follower), which
//! puts every waiting proposal into one log entry. Once a majority has the
//! entry on disk, each replica's `storage::StateStore` applies it through
//! [`server::state::ChatState::apply_batch`], which returns one result per
//! proposal and the events subscribers receive.
//!
//! # Adding a feature
//!
//! 1. Add the RPC and messages to `proto/raftchat.proto`.
//! 2. For a write: add a [`server::command::Command`] variant, handle it in
//!    `server/state/apply.rs` (validate everything first, then change state;
//!    emit events), and unit-test it there: the state machine is pure, so
//!    tests are plain function calls.
//! 3. Add the handler in [`server::chat_service`]: a write calls
//!    `ctx.write(request_id, command)`, a read calls `ctx.barrier()` and then
//!    reads `ctx.read(|state| ...)`.
//! 4. Expose it in [`client`] (one method in `client/chat.rs`) and, if
//!    useful, as a `chatctl` command in [`cli`].
//! 5. Add an integration test under `tests/` that runs real replicas via
//!    [`local_cluster`].

pub mod calendar;
pub mod cli;
pub mod client;
pub mod demo;
pub mod fault;
pub mod local_cluster;
pub mod proto;
pub mod server;
pub mod tls;
pub mod tui;
