//! The one-command failover demo: five real `chatd` replicas on loopback,
//! SIGKILLed one after another while alice, bob and charlie keep chatting.
//!
//! ```sh
//! cargo run --release --example demo
//! ```
//!
//! `chatd` lives in another crate of the workspace, so this first builds it
//! with the same profile (a no-op when it is up to date; see
//! `raftchat_testkit::bins`) and never runs a stale one. Set `CHATD_BIN` to
//! use another binary. Exits non-zero when any step of the
//! demo does not hold; Ctrl-C stops the replicas and removes their data.

use std::process::ExitCode;

use raftchat_testkit::demo::{run, DemoOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let chatd = match raftchat_testkit::bins::try_path("chatd") {
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
