//! Hostile clients against real replicas.

#[path = "../common/mod.rs"]
mod common;

mod login;
