//! chatctl: the raftchat command-line client. See `raftchat_cli`.

use std::process::ExitCode;

use clap::Parser;
use raftchat_cli::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}
