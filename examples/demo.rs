//! The one-command failover demo: five real `chatd` replicas on loopback,
//! SIGKILLed one after another while alice, bob and charlie keep chatting.
//!
//! ```sh
//! cargo run --release --example demo
//! ```
//!
//! `cargo run --example` does not build the `chatd` binary, so this first
//! runs `cargo build --bin chatd` with the same profile (a no-op when it is
//! up to date, and it guarantees the demo never runs a stale `chatd`). Set
//! `CHATD_BIN` to use another binary. Exits non-zero when any step of the
//! demo does not hold; Ctrl-C stops the replicas and removes their data.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use raftchat::demo::{run, DemoOptions};

/// Builds (if needed) and locates the `chatd` next to this example.
fn chatd() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CHATD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut build = Command::new(&cargo);
    build.args(["build", "--bin", "chatd", "--manifest-path", manifest]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    println!("building chatd: {build:?}");
    let built = build.status().map(|s| s.success()).unwrap_or(false);
    let path = raftchat::local_cluster::chatd_path(None);
    if path.exists() {
        if !built {
            eprintln!(
                "warning: `cargo build --bin chatd` failed; using the existing {}",
                path.display()
            );
        }
        Ok(path)
    } else {
        Err(format!(
            "cannot find or build chatd (looked next to {}); run `cargo build --release --bins` \
             or set CHATD_BIN",
            std::env::current_exe().unwrap_or_default().display()
        ))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let chatd = match chatd() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        result = run(DemoOptions { chatd: Some(chatd) }) => match result {
            Ok(report) => {
                println!(
                    "\nDEMO PASSED: {} messages verified on 5 replicas; election {} ms, first \
                     write after the leader's death {} ms, no-quorum refusal {} ms, catch-up {} ms",
                    report.messages,
                    report.election.as_millis(),
                    report.first_ack_after_kill.as_millis(),
                    report.no_quorum_failure.as_millis(),
                    report.catch_up.as_millis()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("\nDEMO FAILED: {e:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Dropping the demo future dropped its Cluster: the replicas are
            // killed and the temporary directory removed.
            eprintln!("\ninterrupted: replicas stopped, temporary data removed");
            ExitCode::from(130)
        }
    }
}
