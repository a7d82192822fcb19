//! `chat-tui`: the raftchat terminal client. All the work is in `raftchat_tui`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raftchat_tui::run(raftchat_tui::Args::parse()).await
}
