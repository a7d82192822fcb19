//! The failover demo behind `cargo run --release --example demo`, kept in the
//! library so CI runs exactly the same scenario as a test (`tests/demo.rs`).
//!
//! It starts five real `chatd` processes on loopback (storage in a temporary
//! directory), narrates each step with the cluster's status table, and
//! fails — so the example exits non-zero — as soon as a promise does not
//! hold:
//!
//! 1. alice, bob and charlie chat in a DM and a group;
//! 2. the leader is SIGKILLed: a new one is elected and chat goes on;
//! 3. a second replica is SIGKILLed: still works (3 of 5);
//! 4. a third: writes fail cleanly with "no quorum" within a short deadline;
//! 5. the three restart and catch up; every acknowledged message is present
//!    exactly once, in order, on every replica, and the digests are equal;
//! 6. everything stops and the temporary directory is removed (the
//!    [`Cluster`]'s `Drop` kills the children, also when the demo future is
//!    dropped on Ctrl-C).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::local_cluster::{Cluster, Options};
use raftchat_client::{ChatClient, Target};

/// How the demo runs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// The `chatd` binary (default: next to the running executable, or
    /// `CHATD_BIN`).
    pub chatd: Option<PathBuf>,
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// SIGKILL of the leader until every survivor agreed on a new one.
    pub election: Duration,
    /// SIGKILL of the leader until the next acknowledged write.
    pub first_ack_after_kill: Duration,
    /// How long the refused write took to fail without quorum.
    pub no_quorum_failure: Duration,
    /// Restart of the three until all five had identical state.
    pub catch_up: Duration,
    /// Messages acknowledged and verified on every replica.
    pub messages: usize,
    /// The final state digest, equal on all five.
    pub digest: String,
}

const ELECTION_WAIT: Duration = Duration::from_secs(30);
const CONVERGE_WAIT: Duration = Duration::from_secs(60);

fn client(
    cluster: &Cluster,
    urls: Vec<String>,
    rpc: Duration,
    deadline: Duration,
) -> Result<ChatClient> {
    let mut config = cluster.client_config(urls);
    config.rpc_timeout = rpc;
    config.write_deadline = deadline;
    Ok(ChatClient::new(config)?)
}

fn step(title: &str) {
    println!("\n=== {title}");
}

async fn show_status(cluster: &Cluster) {
    let viewer = match client(
        cluster,
        cluster.urls(),
        Duration::from_millis(800),
        Duration::from_secs(2),
    ) {
        Ok(c) => c,
        Err(e) => {
            println!("(no status: {e})");
            return;
        }
    };
    let statuses = viewer.cluster_status(true).await;
    print!("{}", raftchat_cli::status_table(&statuses));
}

/// The messages of one conversation the demo expects, in order.
struct Thread {
    target_from_alice: Target,
    acked: Vec<String>,
}

async fn send(who: &ChatClient, to: &Target, body: &str, thread: &mut Thread) -> Result<()> {
    who.send(to, body)
        .await
        .with_context(|| format!("sending {body:?}"))?;
    thread.acked.push(body.to_string());
    Ok(())
}

/// Every body of a conversation, oldest first, as `reader` sees it.
async fn bodies(reader: &ChatClient, target: &Target) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut before = 0;
    loop {
        let page = reader.history(target, before, 1000).await?;
        out.extend(page.messages.iter().map(|m| m.body.clone()));
        match page.messages.last() {
            Some(m) if page.more => before = m.id,
            _ => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Runs the whole scenario; an error names the promise that did not hold.
pub async fn run(opts: DemoOptions) -> Result<DemoReport> {
    let mut cluster = Cluster::start(Options {
        chatd: opts.chatd,
        ..Options::default()
    });
    println!(
        "raftchat failover demo: 5 chatd replicas ({}) on {}, storage in {}, TLS on \
         every connection (certificates in {})",
        cluster.chatd_path().display(),
        cluster.urls().join(" "),
        cluster.dir.path().display(),
        cluster.certs_dir().display()
    );
    let result = scenario(&mut cluster).await;
    if result.is_err() {
        eprintln!(
            "--- last lines of the replicas' logs ---\n{}",
            cluster.logs_tail()
        );
    }
    step("6. stopping every replica and removing the temporary directory");
    drop(cluster);
    println!("done.");
    result
}

async fn scenario(cluster: &mut Cluster) -> Result<DemoReport> {
    let leader = cluster
        .try_wait_leader(ELECTION_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    println!("replica {leader} was elected leader");
    show_status(cluster).await;

    step("1. alice, bob and charlie sign up and chat in a DM and the group #friends");
    let rpc = Duration::from_millis(1500);
    let deadline = Duration::from_secs(15);
    let mut users = Vec::new();
    for name in ["alice", "bob", "charlie"] {
        let c = client(cluster, cluster.urls(), rpc, deadline)?;
        c.create_account(name, &format!("password-{name}"))
            .await
            .with_context(|| format!("creating {name}"))?;
        c.login(name, &format!("password-{name}")).await?;
        users.push(c);
    }
    let (alice, bob, charlie) = (&users[0], &users[1], &users[2]);
    let to_bob = Target::User("bob".into());
    let to_alice = Target::User("alice".into());
    let friends = Target::Group("friends".into());
    alice
        .create_group("friends", &["bob".to_string(), "charlie".to_string()])
        .await
        .context("creating #friends")?;
    let mut dm = Thread {
        target_from_alice: to_bob.clone(),
        acked: Vec::new(),
    };
    let mut group = Thread {
        target_from_alice: friends.clone(),
        acked: Vec::new(),
    };
    send(alice, &to_bob, "hi bob, are you there?", &mut dm).await?;
    send(bob, &to_alice, "hi alice! yes", &mut dm).await?;
    send(charlie, &friends, "hello friends", &mut group).await?;
    send(bob, &friends, "hey charlie", &mut group).await?;
    println!(
        "{} DM messages and {} group messages acknowledged",
        dm.acked.len(),
        group.acked.len()
    );
    show_status(cluster).await;

    step("2. SIGKILL the leader");
    let first = cluster
        .try_wait_leader(ELECTION_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    let killed_at = Instant::now();
    cluster.kill(first);
    println!("killed replica {first} (the leader)");
    let new_leader = cluster
        .try_wait_leader(ELECTION_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    let election = killed_at.elapsed();
    send(alice, &to_bob, "did you see that? the leader died", &mut dm).await?;
    let first_ack_after_kill = killed_at.elapsed();
    println!(
        "replica {new_leader} took over {} ms after the kill; the next write was acknowledged \
         after {} ms",
        election.as_millis(),
        first_ack_after_kill.as_millis()
    );
    send(bob, &to_alice, "nothing lost on my side", &mut dm).await?;
    send(charlie, &friends, "still here", &mut group).await?;
    show_status(cluster).await;

    step("3. SIGKILL a second replica (the new leader): 3 of 5 left, still a majority");
    cluster.kill(new_leader);
    println!("killed replica {new_leader}");
    send(alice, &to_bob, "two replicas down, still chatting", &mut dm).await?;
    send(charlie, &friends, "quorum is 3 of 5", &mut group).await?;
    let third_leader = cluster
        .try_wait_leader(ELECTION_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    println!("replica {third_leader} leads now; writes still work");
    show_status(cluster).await;

    step("4. SIGKILL a third replica: 2 of 5 left, no majority");
    let third = cluster
        .running()
        .into_iter()
        .find(|id| *id != third_leader)
        .ok_or_else(|| anyhow!("no replica left to kill"))?;
    cluster.kill(third);
    println!("killed replica {third}; trying to send with a 2 s deadline");
    let limited = client(
        cluster,
        cluster.urls(),
        Duration::from_millis(500),
        Duration::from_secs(2),
    )?;
    limited.set_token(alice.token());
    let refused_id = raftchat_client::new_request_id();
    let refused_body = "sent while there was no quorum";
    let started = Instant::now();
    let no_quorum_failure = match limited
        .send_with_request_id(&to_bob, refused_body, &refused_id)
        .await
    {
        Ok(_) => bail!("a write was acknowledged by 2 of 5 replicas: that must never happen"),
        Err(e) => {
            let took = started.elapsed();
            ensure!(
                e.is_unavailable(),
                "the refused write failed with {e}, not UNAVAILABLE"
            );
            println!("refused after {} ms, as expected: {e}", took.as_millis());
            took
        }
    };
    ensure!(
        no_quorum_failure < Duration::from_secs(5),
        "the refused write took {no_quorum_failure:?}: clients must not hang without quorum"
    );
    println!(
        "(a refused write was not acknowledged; it may still commit once a majority is back, \
         so the client retries it with the same request id later: it is applied exactly once)"
    );
    show_status(cluster).await;

    step("5. restart the three killed replicas; they catch up from their disks and the leader");
    let restarted_at = Instant::now();
    for id in [first, new_leader, third] {
        cluster.start_replica(id);
    }
    cluster
        .try_wait_leader(ELECTION_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    alice
        .send_with_request_id(&to_bob, refused_body, &refused_id)
        .await
        .context("retrying the refused write")?;
    dm.acked.push(refused_body.to_string());
    send(bob, &to_alice, "welcome back, everyone", &mut dm).await?;
    send(charlie, &friends, "all five replicas are back", &mut group).await?;
    cluster
        .try_wait_converged(CONVERGE_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    let catch_up = restarted_at.elapsed();
    println!(
        "all five replicas identical {} ms after the restart",
        catch_up.as_millis()
    );
    show_status(cluster).await;

    println!("checking every replica's copy, each through a client pinned to it:");
    for id in cluster.replicas.keys().copied().collect::<Vec<_>>() {
        let pinned = client(cluster, vec![cluster.url(id)], rpc, deadline)?;
        pinned.set_token(alice.token());
        for thread in [&dm, &group] {
            let got = bodies(&pinned, &thread.target_from_alice)
                .await
                .with_context(|| format!("reading history on replica {id}"))?;
            ensure!(
                got == thread.acked,
                "replica {id} has {got:?} in {:?}, expected exactly {:?}",
                thread.target_from_alice,
                thread.acked
            );
        }
        println!(
            "  replica {id}: {} DM + {} group messages, each once and in order",
            dm.acked.len(),
            group.acked.len()
        );
    }
    // Presence and leader changes also write to the log, so the digest is
    // compared across replicas at one moment rather than over time.
    let digest = cluster
        .try_wait_converged(CONVERGE_WAIT)
        .await
        .map_err(|e| anyhow!(e))?;
    println!(
        "state digest {} on all five replicas",
        &digest[..digest.len().min(16)]
    );
    Ok(DemoReport {
        election,
        first_ack_after_kill,
        no_quorum_failure,
        catch_up,
        messages: dm.acked.len() + group.acked.len(),
        digest,
    })
}
