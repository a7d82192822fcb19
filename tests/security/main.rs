//! Security: attacks replayed against real replicas (see the README's
//! "Security" section for the threat model).

#[path = "../common/mod.rs"]
mod common;
mod fatal;
mod login;
mod output;
mod transport;
mod wiped;
