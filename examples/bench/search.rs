//! The bench's search part (`--only search`): five replicas filled with
//! `--messages` messages of generated text by 64 senders, then `Search`
//! timed for queries of each kind. Eight users write direct messages to
//! each other (28 conversations); the searcher is in 7 of them.
//!
//! The text: 8-30 words drawn with Zipf-like weights from [`WORDS`]
//! (100-180 bytes), and about one message in 100 also holds "harbor",
//! one in 10,000 "kumquat". With `CHATD_BIN` pointing at a chatd without
//! `Search`, the fill runs alone: the A/B of the index's cost on writes.
//!
//! Then all five restart, on `REOPEN_CHATD_BIN` if set: after a fill by a
//! chatd without the index, a chatd with it rebuilds the index when it
//! opens the store, and its log says how long that took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftchat_client::{ChatClient, Target};
use raftchat_testkit::local_cluster::{Cluster, Options};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{chatd_log, cluster_cpu, dir_bytes, keep_storage, pct, settled_leader, Args};

const USERS: usize = 8;
const SENDERS: usize = 64;
const PASSWORD: &str = "password";

/// Common words first: word `i` is drawn with weight 1 / (i + 1).
const WORDS: [&str; 64] = [
    "the",
    "to",
    "and",
    "a",
    "of",
    "in",
    "is",
    "it",
    "you",
    "that",
    "for",
    "on",
    "we",
    "this",
    "with",
    "be",
    "at",
    "are",
    "not",
    "have",
    "but",
    "can",
    "meeting",
    "will",
    "just",
    "so",
    "what",
    "all",
    "about",
    "there",
    "time",
    "today",
    "release",
    "build",
    "tomorrow",
    "think",
    "review",
    "deploy",
    "coffee",
    "lunch",
    "deadline",
    "bug",
    "fixed",
    "ticket",
    "server",
    "client",
    "branch",
    "merge",
    "test",
    "failing",
    "green",
    "école",
    "Straße",
    "weekend",
    "later",
    "thanks",
    "sounds",
    "good",
    "maybe",
    "friday",
    "morning",
    "afternoon",
    "schedule",
    "latency",
];

fn user(n: usize) -> String {
    format!("u{n}")
}

/// One message's text, from `rng`.
fn text(rng: &mut StdRng, cumulative: &[f64]) -> String {
    let words = rng.gen_range(8..=30);
    let total = cumulative[cumulative.len() - 1];
    let mut out: Vec<&str> = (0..words)
        .map(|_| {
            let x = rng.gen::<f64>() * total;
            WORDS[cumulative.partition_point(|&c| c < x).min(WORDS.len() - 1)]
        })
        .collect();
    if rng.gen_ratio(1, 100) {
        out.push("harbor");
    }
    if rng.gen_ratio(1, 10_000) {
        out.push("kumquat");
    }
    out.join(" ")
}

/// Logged-in clients of every user.
async fn users(cluster: &Cluster) -> anyhow::Result<Vec<ChatClient>> {
    let mut out = Vec::new();
    for n in 0..USERS {
        let c = ChatClient::new(cluster.client_config(cluster.urls()))?;
        if let Err(e) = c.create_account(&user(n), PASSWORD).await {
            if !e.is_already_exists() {
                return Err(e.into());
            }
        }
        c.login(&user(n), PASSWORD).await?;
        out.push(c);
    }
    Ok(out)
}

/// Fills the cluster with `messages` messages; returns (written, errors,
/// seconds).
async fn fill(clients: &[ChatClient], messages: usize) -> anyhow::Result<(usize, usize, f64)> {
    let mut cumulative = Vec::new();
    let mut sum = 0.0;
    for i in 0..WORDS.len() {
        sum += 1.0 / (i + 1) as f64;
        cumulative.push(sum);
    }
    let cumulative = Arc::new(cumulative);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3600);
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let from = s % USERS;
        let to = (from + 1 + (s / USERS) % (USERS - 1)) % USERS;
        let client = clients[from].clone();
        let (next, cumulative) = (next.clone(), cumulative.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(s as u64);
            let target = Target::User(user(to));
            let (mut ok, mut errors) = (0usize, 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < messages && Instant::now() < deadline {
                match client.send(&target, &text(&mut rng, &cumulative)).await {
                    Ok(_) => ok += 1,
                    Err(_) => errors += 1,
                }
            }
            (ok, errors)
        }));
    }
    let (mut written, mut errors) = (0, 0);
    for task in tasks {
        let (ok, e) = task.await?;
        written += ok;
        errors += e;
    }
    Ok((written, errors, started.elapsed().as_secs_f64()))
}

/// One kind of query: a name, the scope, the text.
struct Case {
    name: &'static str,
    scope: Option<Target>,
    query: &'static str,
}

fn cases() -> Vec<Case> {
    let all = |name, query| Case {
        name,
        scope: None,
        query,
    };
    vec![
        all("rare word (1 in 10,000)", "kumquat"),
        all("uncommon word (1 in 100)", "HARBOR"),
        all("common word", "meeting"),
        all("no match", "zyzzyva"),
        all("common trigrams, rare phrase", "and to of in"),
        all("two characters", "ße"),
        all("one character", "q"),
        Case {
            name: "rare word, one conversation",
            scope: Some(Target::User(user(1))),
            query: "kumquat",
        },
    ]
}

/// Times every case `rounds` times (first page of 20) on the searcher's
/// client, and pages through the rare word's matches.
async fn time_queries(searcher: &ChatClient, rounds: usize) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    // The read barrier and the round trip alone, for comparison.
    let mut lat = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        searcher.history(&Target::User(user(1)), 0, 20).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "search: History first page (barrier and round trip): p50 {:.2} ms, p90 {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.9)
    );
    rows.push(json!({"case": "history page", "p50_ms": pct(&lat, 0.5), "p90_ms": pct(&lat, 0.9)}));
    for case in cases() {
        let mut lat = Vec::new();
        let mut found = 0;
        let mut more = false;
        for _ in 0..rounds {
            let t = Instant::now();
            let reply = searcher
                .search(case.scope.as_ref(), case.query, 0, 20)
                .await?;
            lat.push(t.elapsed());
            found = reply.messages.len();
            more = reply.more;
        }
        lat.sort();
        println!(
            "search: {:<32} {:>3} found{}: p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            case.name,
            found,
            if more { "+" } else { " " },
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 1.0),
        );
        rows.push(json!({
            "case": case.name,
            "query": case.query,
            "found_first_page": found,
            "more": more,
            "p50_ms": pct(&lat, 0.5),
            "p90_ms": pct(&lat, 0.9),
            "max_ms": pct(&lat, 1.0),
        }));
    }
    let t = Instant::now();
    let (mut pages, mut total, mut before) = (0, 0, 0);
    loop {
        let reply = searcher.search(None, "kumquat", before, 100).await?;
        pages += 1;
        total += reply.messages.len();
        match (reply.more, reply.messages.last()) {
            (true, Some(last)) if pages < 1000 => before = last.id,
            _ => break,
        }
    }
    let all_pages = t.elapsed().as_secs_f64() * 1000.0;
    println!("search: every 'kumquat' match: {total} in {pages} pages of 100, {all_pages:.1} ms");
    rows.push(
        json!({"case": "every rare-word match", "found": total, "pages": pages, "ms": all_pages}),
    );
    Ok(rows)
}

pub async fn search(args: &Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::start(Options {
        extra_args: args.chatd_flags.clone(),
        rust_log: chatd_log(),
        ..Options::default()
    });
    let (leader, _) = settled_leader(&cluster).await;
    let clients = users(&cluster).await?;
    let cpu_before = cluster_cpu(&cluster);
    let (written, errors, seconds) = fill(&clients, args.messages).await?;
    cluster.wait_converged(Duration::from_secs(300)).await;
    // Less sensitive than the rate to what else runs on the machine; the
    // changes not checkpointed yet (up to ~37 MiB a replica) are not in it.
    let cpu_per_1000 = (cluster_cpu(&cluster) - cpu_before) / written.max(1) as f64 * 1000.0;
    let disk: u64 = (1..=5).map(|id| dir_bytes(&cluster.storage_dir(id))).sum();
    let per_message = disk as f64 / 5.0 / written.max(1) as f64;
    println!(
        "search: filled {written} messages by {SENDERS} senders in {seconds:.1} s ({:.0} msg/s, {errors} errors); replicas' CPU {cpu_per_1000:.3} s per 1,000 messages; disk {per_message:.0} bytes per message per replica",
        written as f64 / seconds
    );
    let searcher = &clients[0];
    let timed = match searcher.search(None, "kumquat", 0, 1).await {
        Ok(_) => time_queries(searcher, 20).await?,
        Err(e) => {
            println!("search: not timed, this chatd has no Search ({e})");
            Vec::new()
        }
    };
    cluster.kill_all();
    if let Some(keep) = &args.keep {
        keep_storage(&cluster, keep)?;
    }
    let _ = leader;
    let reopened = reopen(&mut cluster, searcher).await?;
    cluster.kill_all();
    Ok(json!({
        "reopen": reopened,
        "messages": written,
        "errors": errors,
        "fill_seconds": seconds,
        "fill_msg_per_s": written as f64 / seconds,
        "replicas_cpu_seconds_per_1000": cpu_per_1000,
        "disk_bytes_per_message_per_replica": per_message,
        "queries": timed,
    }))
}

/// Starts all five again (on `REOPEN_CHATD_BIN` if set) and waits for the
/// first answered search; reports that time and what each replica's log
/// says of the index it rebuilt, if any.
async fn reopen(cluster: &mut Cluster, searcher: &ChatClient) -> anyhow::Result<Value> {
    if let Some(bin) = std::env::var_os("REOPEN_CHATD_BIN") {
        cluster.opts.chatd = Some(bin.into());
    }
    let logs_before: Vec<usize> = (1..=5)
        .map(|id| std::fs::read_to_string(cluster.log_path(id)).map_or(0, |l| l.len()))
        .collect();
    let started = Instant::now();
    for id in 1..=5 {
        cluster.start_replica(id);
    }
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(600) {
        // A chatd without Search answers too, UNIMPLEMENTED.
        let answer = searcher.search(None, "kumquat", 0, 1).await;
        if answer.is_ok() || answer.is_err_and(|e| e.code() == tonic::Code::Unimplemented) {
            answered = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rebuilt = Vec::new();
    for id in 1..=5 {
        let log = std::fs::read_to_string(cluster.log_path(id)).unwrap_or_default();
        let new = log.get(logs_before[id as usize - 1]..).unwrap_or("");
        rebuilt.extend(
            new.lines()
                .filter(|l| l.contains("search index rebuilt"))
                .map(|l| format!("replica {id}: {}", l.trim())),
        );
    }
    match answered {
        Some(s) => println!("search: restart of all five to the first answered search {s:.2} s"),
        None => println!("search: no search answered within 600 s of the restart"),
    }
    for line in &rebuilt {
        println!("search: {line}");
    }
    Ok(json!({"first_search_seconds": answered, "rebuilt": rebuilt}))
}
