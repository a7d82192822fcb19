//! `chatd`: one raftchat replica. See `chatd --help` and the README.

use clap::Parser;
use raftchat::server::config::ChatdArgs;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: a replica allocates and frees a message
/// body per message per hop, and loads millions of objects at restart, where
/// glibc's per-thread arenas grow and shrink by `mprotect` calls. Measured in
/// BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = ChatdArgs::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=error"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match raftchat::server::replica::run(args, raftchat::server::signals::terminated()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
