//! raftchat: a fault-tolerant chat replicated by Raft. This top-level crate
//! holds no code: it is the map of the workspace, and the home of the
//! integration tests (`tests/`) and the examples (`examples/`).
//!
//! # Crates
//!
//! | crate | what lives there | depends on |
//! |---|---|---|
//! | `raftchat-proto` (`crates/proto`) | the wire contract: messages and clients generated from `proto/raftchat.proto`, and the limits both sides share | — |
//! | `raftchat-tls` (`crates/tls`) | certificates, the roles they carry (replica N, admin), rustls configurations; issuing them (feature `issue`) | — |
//! | `raftchat-client` (`crates/client`) | the failover client library | proto, tls |
//! | `raftchat-server` (`crates/server`) | `chatd`: gRPC services, Raft glue (openraft), storage, the pure chat state machine | proto, tls |
//! | `raftchat-cli` (`crates/cli`) | `chatctl` | client, tls |
//! | `raftchat-tui` (`crates/tui`) | `chat-tui` | client |
//! | `raftchat-testkit` (`crates/testkit`) | local clusters of real `chatd` processes, the fault suite, the demo scenario; for tests and examples only | all of the above |
//!
//! The clients (`raftchat-client`, `-cli`, `-tui`) never compile the server:
//! `cargo tree -p raftchat-tui` has no openraft and no argon2.
//!
//! # How a write flows
//!
//! `chatctl send` (or chat-tui) calls `raftchat_client::ChatClient::send`,
//! which sends a gRPC request with a request id to one replica, failing
//! over to another when it does not answer. In `raftchat-server`, the
//! handler validates the request, does everything nondeterministic (argon2
//! hashing, minting a session token) and builds a `Command`. The proposer
//! puts every waiting command into one Raft log entry (forwarding it to the
//! leader from a follower); once a majority has the entry on disk, every
//! replica applies it to the pure state machine, which returns one result
//! per command and the events subscribers receive. The handler answers with
//! its command's result. The server crate's documentation follows this path
//! module by module.
