//! The raftchat test harness, used only by the tests under `tests/` and the
//! programs under `examples/` (never by a product crate):
//!
//! - [`local_cluster`]: real `chatd` processes on loopback, with TLS, that
//!   tests start, kill, pause and restart with real signals;
//! - [`fault`]: the Jepsen-style fault suite (proxies, nemesis, workload,
//!   checker);
//! - [`demo`]: the scripted failover demo (`cargo run --release --example demo`);
//! - [`bins`]: builds and finds the workspace's binaries.

pub mod bins;
pub mod demo;
pub mod fault;
pub mod local_cluster;
