//! The README's first command, `cargo run --release --example demo`, runs
//! `raftchat_testkit::demo::run`; so does this test, so CI checks every promise the
//! demo narrates (failover, no-quorum refusal, catch-up, exactly-once).

use std::time::Duration;

use raftchat_testkit::demo::{run, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failover_demo_holds() {
    let report = run(DemoOptions {
        chatd: Some(raftchat_testkit::bins::path("chatd")),
    })
    .await
    .unwrap_or_else(|e| panic!("demo failed: {e:#}"));
    assert!(report.messages >= 10, "{report:?}");
    assert!(
        report.no_quorum_failure < Duration::from_secs(5),
        "{report:?}"
    );
    assert_eq!(report.digest.len(), 64, "{report:?}");
}
