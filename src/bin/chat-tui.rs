//! `chat-tui`: the raftchat terminal client. All the work is in `raftchat::tui`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raftchat::tui::run(raftchat::tui::Args::parse()).await
}
