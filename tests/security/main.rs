//! Security tests on real processes: a real cluster of `chatd` replicas
//! driven by the real `chatctl` binary.

#[path = "../common/mod.rs"]
mod common;
mod output;
