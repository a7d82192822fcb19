//! A long fault-injection soak: the fault suite's harness for as long as you
//! like, on one seed.
//!
//! ```sh
//! cargo build --release --bins --examples
//! cargo run --release --example soak -- --seed 7 --duration 30m --clients 8
//! ```
//!
//! Flags: `--seed N` (default: random, printed), `--duration D` (`90s`,
//! `30m`, `1h`; default 5m), `--clients N` (default 8), `--snapshot-every N`
//! (chatd's, default its own), `--history-dir DIR` (default the temp dir;
//! the history is always written). Exits 1 when a check fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use raftchat_testkit::fault::{run, RunConfig};

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .with_context(|| format!("'{text}' is not a duration like 90s, 30m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("'{text}': the unit must be s, m or h"),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_args() -> anyhow::Result<RunConfig> {
    let mut config = RunConfig::new(rand::random::<u32>() as u64, Duration::from_secs(300), 8);
    config.verbose = true;
    config.always_write_history = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => config.seed = value()?.parse().context("--seed")?,
            "--duration" => config.duration = parse_duration(&value()?)?,
            "--clients" => config.clients = value()?.parse().context("--clients")?,
            "--snapshot-every" => {
                config.snapshot_every = Some(value()?.parse().context("--snapshot-every")?)
            }
            "--history-dir" => config.history_dir = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: soak [--seed N] [--duration 30m] [--clients 8] \
                     [--snapshot-every N] [--history-dir DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other} (try --help)"),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = parse_args()?;
    println!(
        "soak: seed {}, {} s, {} clients",
        config.seed,
        config.duration.as_secs(),
        config.clients
    );
    let result = run(config).await?;
    println!("{}", result.summary());
    if !result.report.ok() {
        std::process::exit(1);
    }
    Ok(())
}
