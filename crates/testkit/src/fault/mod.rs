//! A Jepsen-style fault-injection harness: real `chatd` replicas behind
//! controllable proxies, concurrent clients recording every operation, a
//! seeded nemesis, and checks for lost, duplicated, reordered or phantom
//! messages, stale reads, divergence and unavailability.
//!
//! - [`proxy`]: a TCP proxy per directed replica pair; cut, hold or lose
//!   bytes per direction.
//! - [`nemesis`]: the seeded fault schedule and its execution (kills,
//!   pauses, partitions, one-way loss, loss of a follower's unsynced tail).
//! - [`workload`]: the clients.
//! - [`history`]: operation and event records, JSON lines.
//! - [`checker`]: the checks and the report.
//! - [`runner`]: one run from seed to verdict.
//!
//! `tests/fault_suite.rs` runs a few seeds in CI; `examples/soak.rs` runs
//! one for as long as you like.

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod runner;
pub mod workload;

pub use runner::{run, RunConfig, RunResult};
