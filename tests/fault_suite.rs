//! The fault suite: a few fixed seeds of the Jepsen-style harness
//! (`raftchat_testkit::fault`) against five real `chatd` replicas behind link
//! proxies. Each seed runs clients and the nemesis for a bounded time, heals,
//! and checks that nothing acknowledged was lost, duplicated or reordered,
//! that reads were linearizable and that the replicas converged.
//!
//! `FAULT_SEEDS=1,2,3` and `FAULT_SECS=40` override the defaults and
//! `FAULT_VERBOSE=1` prints nemesis events as they happen; a failing
//! seed prints its schedule, the offending operations and the path of its
//! full history (JSON lines). Reproduce it with the same seed, here or with
//! `cargo run --release --example soak -- --seed N --duration 40s`.

use std::time::Duration;

use raftchat_testkit::fault::{run, RunConfig};

const DEFAULT_SEEDS: &[u64] = &[11, 23, 47, 85];
const DEFAULT_SECS: u64 = 40;

fn env_list(name: &str) -> Option<Vec<u64>> {
    let text = std::env::var(name).ok()?;
    Some(
        text.split(',')
            .map(|s| s.trim().parse().expect("a number"))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_duplicated_or_reordered_messages_under_faults() {
    let seeds = env_list("FAULT_SEEDS").unwrap_or_else(|| DEFAULT_SEEDS.to_vec());
    let secs = env_list("FAULT_SECS")
        .and_then(|v| v.first().copied())
        .unwrap_or(DEFAULT_SECS);
    let mut failures = Vec::new();
    // One seed at a time: five replicas per seed already fill two cores.
    for seed in seeds {
        let mut config = RunConfig::new(seed, Duration::from_secs(secs), 4);
        config.chatd = Some(raftchat_testkit::bins::path("chatd"));
        config.verbose = std::env::var_os("FAULT_VERBOSE").is_some();
        let result = run(config)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: the run itself failed: {e:#}"));
        let summary = result.summary();
        eprintln!("{summary}");
        let report = &result.report;
        let acked = report.tallies.get("send").map_or(0, |t| t.ok);
        if !report.ok() {
            failures.push(summary);
        } else if acked < 50 {
            failures.push(format!(
                "seed {seed}: only {acked} sends acknowledged; the run proves little\n{summary}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
