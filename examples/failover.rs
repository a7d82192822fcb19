//! Measures failover: the time from SIGKILL of the leader to the next
//! acknowledged write, over repeated kills, on a local 5-replica cluster of
//! real `chatd` processes with storage (fsync before acknowledge).
//!
//! ```sh
//! cargo build --release --bins --examples
//! ./target/release/examples/failover [--kills 20] [-- extra chatd flags]
//! # e.g. tighter timeouts:  -- --heartbeat-ms 20 --election-timeout-ms 60-120
//! ```

use std::time::{Duration, Instant};

use raftchat_client::{ChatClient, Target};
use raftchat_testkit::local_cluster::{Cluster, Options};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let extra = match args.iter().position(|a| a == "--") {
        Some(i) => args.split_off(i).into_iter().skip(1).collect(),
        None => Vec::new(),
    };
    let kills: usize = match args.as_slice() {
        [flag, n] if flag == "--kills" => n.parse()?,
        [] => 20,
        _ => anyhow::bail!("usage: failover [--kills N] [-- chatd flags...]"),
    };

    let mut cluster = Cluster::start(Options {
        extra_args: extra.clone(),
        ..Options::default()
    });
    println!(
        "machine: {} cores, kernel {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!("5 replicas with storage, chatd flags: {extra:?}, {kills} leader kills");
    cluster.wait_leader(Duration::from_secs(30)).await;

    let client = ChatClient::new(cluster.client_config(cluster.urls()))?;
    client.create_account("alice", "password-alice").await?;
    client.create_account("bob", "password-bob").await?;
    client.login("alice", "password-alice").await?;
    let bob = Target::User("bob".into());

    let mut gaps = Vec::new();
    for round in 0..kills {
        client.send(&bob, &format!("steady-{round}")).await?;
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let killed_at = Instant::now();
        cluster.kill(leader);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client
                .send(&bob, &format!("after-kill-{round}-{attempt}"))
                .await
            {
                Ok(_) => break,
                Err(e) if killed_at.elapsed() < Duration::from_secs(30) => {
                    eprintln!("  round {round}: retrying after {e}");
                }
                Err(e) => anyhow::bail!("no write succeeded within 30 s of the kill: {e}"),
            }
        }
        let gap = killed_at.elapsed();
        println!("round {round:>2}: killed leader {leader}, next ack after {gap:?}");
        gaps.push(gap);
        cluster.start_replica(leader);
        cluster.wait_converged(Duration::from_secs(30)).await;
    }
    gaps.sort();
    println!(
        "failover (kill -> next ack) over {} kills: p50 {:?}  p99 {:?}  max {:?}",
        gaps.len(),
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.99),
        gaps.last().copied().unwrap_or_default()
    );
    Ok(())
}
