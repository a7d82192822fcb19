//! chatctl: the raftchat command-line client. See `raftchat::cli`.

use std::process::ExitCode;

use clap::Parser;
use raftchat::cli::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}
