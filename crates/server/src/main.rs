//! `chatd`: one raftchat replica. See `chatd --help` and the README.

use clap::Parser;
use raftchat_server::config::ChatdArgs;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: a replica allocates and frees a message
/// body per message per hop, and loads millions of objects at restart, where
/// glibc's per-thread arenas grow and shrink by `mprotect` calls. Measured in
/// BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process. mimalloc asks for them on
/// its arenas, and every first touch of a 2 MiB region then zeroes all of
/// it: in a 64-client bench the kernel's `clear_page_erms` took ~20 % of all
/// CPU samples, 0.7 % without. Measured in BENCHMARKS.md.
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no
    // memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "PR_SET_THP_DISABLE failed");
    }
}

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
    disable_transparent_huge_pages();
    match raftchat_server::replica::run(args, raftchat_server::signals::terminated()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
