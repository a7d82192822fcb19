//! `chatctl` must not hand server-provided text to the terminal raw: a
//! message body or group name holding escape sequences (clear screen, OSC 0
//! window title, OSC 52 clipboard), C1 controls, bidi overrides or a
//! newline followed by a fake message line must come out as visible
//! escapes, with every line at column 0 one that chatctl wrote itself.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{options, Cluster, Options};

/// The line a body tries to forge after its newline.
const FORGED: &str = "[999] 2026-12-02 17:00:00  carol: I approve the transfer";

/// Clear screen, OSC 0 (title), OSC 52 (clipboard), BEL, DEL, C1 CSI, a
/// right-to-left override, a lone CR, and a newline forging [`FORGED`].
fn evil_body() -> String {
    format!(
        "hello \x1b[2J\x1b]0;owned\x07\x1b]52;c;aGVsbG8=\x07 ding\x07 del\x7f \
         \u{9b}31mred \u{202e}gnp.exe\rspoof\n{FORGED}"
    )
}

/// A group name with bidi overrides, which the server accepts (it refuses
/// control characters in names, checked below).
fn evil_group() -> String {
    "\u{202e}ops\u{2066}x".to_string()
}

/// `chatctl --servers URLS ARGS` against `cluster` (its CA in CHAT_CA),
/// with `user`'s password in CHAT_PASSWORD.
fn chatctl(cluster: &Cluster, user: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(raftchat_testkit::bins::path("chatctl"));
    cmd.envs(cluster.chatctl_env(false))
        .arg("--servers")
        .arg(cluster.urls().join(","))
        .args(args)
        .env("CHAT_PASSWORD", format!("password-{user}"))
        .env_remove("CHAT_USER")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs a chatctl command to completion.
async fn run(servers: &Cluster, user: &str, args: &[&str]) -> Output {
    chatctl(servers, user, args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run chatctl {args:?}: {e}"))
}

/// Runs a chatctl command that must succeed; returns its stdout, checked
/// terminal-safe along with its stderr.
async fn ok(servers: &Cluster, user: &str, args: &[&str]) -> String {
    let out = run(servers, user, args).await;
    let what = format!("chatctl {args:?}");
    assert_terminal_safe(&format!("{what} stderr"), &out.stderr);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_terminal_safe(&format!("{what} stdout"), &out.stdout);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// No C0 control but `\n`, no DEL, no C1 control, no bidi override or
/// isolate, and no line starting with a forged `[999]`.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (i, b) in bytes.iter().enumerate() {
        assert!(
            *b == b'\n' || (*b >= 0x20 && *b != 0x7f),
            "{what}: raw byte {b:#04x} at {i} in {text:?}"
        );
    }
    for c in text.chars() {
        assert!(
            !matches!(c, '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
            "{what}: raw {c:?} in {text:?}"
        );
    }
    for line in text.lines() {
        assert!(!line.starts_with("[999]"), "{what}: forged line {line:?}");
    }
}

/// The visible escapes of [`evil_body`], so the tests know it was shown.
fn assert_body_shown(what: &str, text: &str) {
    for visible in [
        "hello \\x1b[2J\\x1b]0;owned\\x07\\x1b]52;c;aGVsbG8=\\x07 ding\\x07 del\\x7f",
        "\\u{9b}31mred \\u{202e}gnp.exe\\rspoof",
    ] {
        assert!(text.contains(visible), "{what}: no {visible:?} in {text}");
    }
    // The forged line is there, but indented under the body.
    let forged = text
        .lines()
        .find(|l| l.trim_start() == FORGED)
        .unwrap_or_else(|| panic!("{what}: the body's second line is missing: {text}"));
    assert!(forged.starts_with(' '), "{what}: {forged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatctl_escapes_server_text() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let servers = &cluster;
    ok(servers, "alice", &["register", "alice"]).await;
    ok(servers, "bob", &["register", "bob"]).await;

    // bob watches from before anything is sent.
    let mut watch = chatctl(servers, "bob", &["watch", "--as", "bob"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatctl watch");
    let mut watch_err = BufReader::new(watch.stderr.take().expect("watch stderr"));
    let live = tokio::time::timeout(Duration::from_secs(30), async {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = watch_err.read_until(b'\n', &mut line).await.unwrap_or(0);
            assert!(n > 0, "watch ended before going live");
            if String::from_utf8_lossy(&line).contains("live on") {
                break;
            }
        }
    })
    .await;
    assert!(live.is_ok(), "watch did not go live");

    let body = evil_body();
    let group = evil_group();
    ok(servers, "alice", &["send", "--as", "alice", "bob", &body]).await;
    let created = ok(
        servers,
        "alice",
        &["group", "create", "--as", "alice", &group, "bob"],
    )
    .await;
    assert!(created.contains("\\u{202e}ops\\u{2066}x"), "{created}");
    // Control characters in a name are refused by the server, and the
    // refusal prints safely.
    let refused = run(
        servers,
        "alice",
        &[
            "group",
            "create",
            "--as",
            "alice",
            "\x1b[2J\n[999] x",
            "bob",
        ],
    )
    .await;
    assert!(!refused.status.success(), "a group name with ESC and LF");
    assert_terminal_safe("refused group stderr", &refused.stderr);
    assert!(
        String::from_utf8_lossy(&refused.stderr).starts_with("chatctl: INVALID_ARGUMENT: "),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let hash_group = format!("#{group}");
    ok(
        servers,
        "alice",
        &["send", "--as", "alice", &hash_group, &body],
    )
    .await;
    ok(
        servers,
        "alice",
        &["send", "--as", "alice", &hash_group, "END"],
    )
    .await;

    // Acting for bob says how many are unread (on stderr).
    let listed = run(servers, "bob", &["conversations", "--as", "bob"]).await;
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.starts_with("chatctl: bob has ") && stderr.contains(" unread messages"),
        "{stderr}"
    );

    // read: every unread message, each led by its conversation.
    let read = ok(servers, "bob", &["read", "--as", "bob"]).await;
    assert_body_shown("read", &read);
    assert_eq!(read.matches(FORGED).count(), 2, "{read}");
    assert!(read.contains("END"), "{read}");
    // Led by the conversation's name: the peer, or the (escaped) group.
    assert!(read.contains("(alice) "), "{read}");
    assert!(read.contains("(#\\u{202e}ops"), "{read}");

    // history of the direct and of the group conversation.
    let history = ok(
        servers,
        "bob",
        &["history", "--as", "bob", "--with", "alice"],
    )
    .await;
    assert_body_shown("history", &history);
    let history = ok(
        servers,
        "bob",
        &["history", "--as", "bob", "--with", &hash_group],
    )
    .await;
    assert_body_shown("group history", &history);
    assert!(history.contains("#\\u{202e}ops"), "{history}");

    // The conversations table shows the group name on one line.
    let list = ok(servers, "bob", &["conversations", "--as", "bob"]).await;
    assert!(list.contains("#\\u{202e}ops\\u{2066}x"), "{list}");

    // An error quoting the name (the group exists) stays one safe line.
    let again = run(
        servers,
        "alice",
        &["group", "create", "--as", "alice", &group],
    )
    .await;
    assert!(!again.status.success(), "a second group with the same name");
    assert_terminal_safe("duplicate group stderr", &again.stderr);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("chatctl: ALREADY_EXISTS: "), "{stderr}");
    assert!(stderr.contains("\\u{202e}"), "{stderr}");

    // JSON stays exact for programs, yet terminal-safe too.
    let json = ok(
        servers,
        "bob",
        &["--json", "history", "--as", "bob", "--with", "alice"],
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(value["body"], body.as_str(), "{json}");

    // watch saw both messages and the group it was added to.
    let mut watch_out = BufReader::new(watch.stdout.take().expect("watch stdout"));
    let mut seen = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&seen).contains(": END") {
            let n = watch_out.read_until(b'\n', &mut seen).await.unwrap_or(0);
            assert!(n > 0, "watch ended: {}", String::from_utf8_lossy(&seen));
        }
    })
    .await;
    let _ = watch.start_kill();
    let shown = String::from_utf8_lossy(&seen).into_owned();
    assert!(done.is_ok(), "watch did not show every event: {shown}");
    assert_terminal_safe("watch stdout", &seen);
    assert_body_shown("watch", &shown);
    assert_eq!(shown.matches(FORGED).count(), 2, "{shown}");
    assert!(shown.contains("#\\u{202e}ops\\u{2066}x"), "{shown}");
}

/// `chatctl … | head`: a reader that goes away ends chatctl quietly and
/// successfully, not with "cannot write to stdout: Broken pipe".
#[test]
fn a_closed_stdout_ends_chatctl_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(raftchat_testkit::bins::path("chatctl"))
        .args(["certs", "init", "--replica-urls", "1=127.0.0.1:7001"])
        .arg(dir.path().join("certs"))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// `chatctl edit`: the new text is shown escaped with "(edited TIME)" in
/// `history`, `history --json` carries `edited_at_ms`, and editing someone
/// else's message is refused with a safe one-line error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatctl_edit_shows_the_edit_safely() {
    let cluster = Cluster::start(Options {
        replicas: 1,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let servers = &cluster;
    ok(servers, "alice", &["register", "alice"]).await;
    ok(servers, "bob", &["register", "bob"]).await;
    let sent = ok(
        servers,
        "alice",
        &["--json", "send", "--as", "alice", "bob", "typo"],
    )
    .await;
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).expect("one JSON line");
    let id = sent["id"].as_u64().expect("message id").to_string();
    assert_eq!(sent["edited_at_ms"], 0, "{sent}");
    ok(servers, "bob", &["send", "--as", "bob", "alice", "hi"]).await;

    let body = evil_body();
    let edited = ok(servers, "alice", &["edit", "--as", "alice", &id, &body]).await;
    assert!(
        edited.starts_with(&format!("edited message {id} ")),
        "{edited}"
    );

    let history = ok(
        servers,
        "bob",
        &["history", "--as", "bob", "--with", "alice"],
    )
    .await;
    assert_body_shown("history after edit", &history);
    assert!(!history.contains("typo"), "{history}");
    assert_eq!(history.matches("(edited ").count(), 1, "{history}");

    let json = ok(
        servers,
        "bob",
        &["--json", "history", "--as", "bob", "--with", "alice"],
    )
    .await;
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert_eq!(lines[0]["id"].to_string(), id, "same id and place: {json}");
    assert_eq!(lines[0]["body"], body.as_str(), "{json}");
    assert!(lines[0]["edited_at_ms"].as_u64() > Some(0), "{json}");
    assert_eq!(lines[1]["edited_at_ms"], 0, "{json}");

    let refused = run(servers, "bob", &["edit", "--as", "bob", &id, "\x1b[2J"]).await;
    assert!(!refused.status.success(), "bob edited alice's message");
    assert_terminal_safe("refused edit stderr", &refused.stderr);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("chatctl: PERMISSION_DENIED: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// `chatctl send --reply-to`: `history` shows a one-line, escaped quote of
/// the original above the reply (or "deleted message" once it is gone),
/// `history --json` carries `reply_to`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatctl_replies_quote_their_original_safely() {
    let cluster = Cluster::start(Options {
        replicas: 1,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let servers = &cluster;
    ok(servers, "alice", &["register", "alice"]).await;
    ok(servers, "bob", &["register", "bob"]).await;
    let body = evil_body();
    let sent = ok(
        servers,
        "alice",
        &["--json", "send", "--as", "alice", "bob", &body],
    )
    .await;
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).expect("one JSON line");
    let id = sent["id"].as_u64().expect("message id").to_string();
    ok(
        servers,
        "bob",
        &["send", "--as", "bob", "--reply-to", &id, "alice", "answer"],
    )
    .await;

    let history = ok(
        servers,
        "alice",
        &["history", "--as", "alice", "--with", "bob"],
    )
    .await;
    let lines: Vec<&str> = history.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("bob: answer"))
        .unwrap_or_else(|| panic!("no reply line: {history}"));
    let quote = lines[at - 1];
    assert!(
        quote.starts_with(&format!("  > [{id}] alice: hello \\x1b[2J")) && quote.ends_with('…'),
        "{history}"
    );
    let json = ok(
        servers,
        "alice",
        &["--json", "history", "--as", "alice", "--with", "bob"],
    )
    .await;
    let last: serde_json::Value =
        serde_json::from_str(json.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["reply_to"].to_string(), id, "{json}");

    // The original deleted; its reply only shows the page (limit 1), so
    // the quote is looked up, and found gone.
    ok(servers, "alice", &["delete-messages", "--as", "alice", &id]).await;
    let history = ok(
        servers,
        "alice",
        &["history", "--as", "alice", "--with", "bob", "--limit", "1"],
    )
    .await;
    assert!(
        history.contains(&format!("  > [{id}] deleted message\n")),
        "{history}"
    );

    let refused = run(
        servers,
        "bob",
        &["send", "--as", "bob", "--reply-to", "999", "alice", "x"],
    )
    .await;
    assert!(!refused.status.success(), "a reply to nothing");
    assert_terminal_safe("refused reply stderr", &refused.stderr);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("chatctl: NOT_FOUND: "), "{stderr}");
}

/// `chatctl react`: toggles, says which, and `history` shows the counts
/// and who reacted under the message (escaped); `--json` has `reactions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatctl_reactions_show_counts_safely() {
    let cluster = Cluster::start(Options {
        replicas: 1,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let servers = &cluster;
    ok(servers, "alice", &["register", "alice"]).await;
    ok(servers, "bob", &["register", "bob"]).await;
    let sent = ok(
        servers,
        "alice",
        &["--json", "send", "--as", "alice", "bob", "ship it"],
    )
    .await;
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).expect("one JSON line");
    let id = sent["id"].as_u64().expect("message id").to_string();
    let on = ok(servers, "bob", &["react", "--as", "bob", &id, "👍"]).await;
    assert_eq!(on.trim(), format!("reacted 👍 on message {id}"));
    ok(servers, "alice", &["react", "--as", "alice", &id, "🎉"]).await;
    ok(servers, "alice", &["react", "--as", "alice", &id, "👍"]).await;
    let off = ok(servers, "alice", &["react", "--as", "alice", &id, "👍"]).await;
    assert_eq!(off.trim(), format!("removed reaction 👍 on message {id}"));
    let history = ok(
        servers,
        "alice",
        &["history", "--as", "alice", "--with", "bob"],
    )
    .await;
    assert!(history.ends_with("ship it\n  👍 1 (bob)\n"), "{history}");
    let json = ok(
        servers,
        "alice",
        &["--json", "history", "--as", "alice", "--with", "bob"],
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(
        value["reactions"],
        serde_json::json!([{ "emoji": "👍", "count": 1, "users": ["bob"] }]),
        "{json}"
    );
    let refused = run(servers, "bob", &["react", "--as", "bob", &id, "\x1b[2J"]).await;
    assert!(!refused.status.success(), "an escape as a reaction");
    assert_terminal_safe("refused reaction stderr", &refused.stderr);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // After the unread notice that acting for bob prints.
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("chatctl: INVALID_ARGUMENT: "), "{stderr}");
}
