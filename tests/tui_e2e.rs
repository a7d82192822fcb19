//! End to end: the real `chat-tui` binary, driven through tmux, against a
//! real five-replica cluster (storage on). Two users chat live, the leader
//! is SIGKILLed, the status line follows the new leader and messages sent
//! across the failover arrive exactly once.
//!
//! Needs `tmux`. Without it the test fails, unless `RAFTCHAT_SKIP_TMUX=1`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{bodies_with, options, user, Clients, Cluster};

/// Fixed terminal size of every client.
const COLS: u16 = 120;
const ROWS: u16 = 35;
/// Upper bound of any single wait on a screen.
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// A private tmux server holding one session per client. Its socket lives
/// in a temporary directory of its own (`tmux -S`), so it can never touch
/// another tmux server and leaves nothing behind. Dropping it kills that
/// server and every client in it, also on panic.
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Whether a `tmux` binary runs at all.
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("raftchat-tmux-")
            .tempdir()
            .expect("tmux socket dir");
        // No status bar (the pane gets every row), and keep a pane whose
        // program died so its last words can be captured.
        std::fs::write(
            dir.path().join("tmux.conf"),
            "set -g status off\nset -g remain-on-exit on\nset -g history-limit 0\n",
        )
        .expect("write tmux config");
        Self { dir }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("socket"))
            .arg("-f")
            .arg(self.dir.path().join("tmux.conf"))
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run tmux")
    }

    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `program args...` in a new detached session `name`.
    fn start(&self, name: &str, program: &str, args: &[String]) {
        let (cols, rows) = (COLS.to_string(), ROWS.to_string());
        let mut argv: Vec<&str> = vec![
            "-u",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &cols,
            "-y",
            &rows,
            "-e",
            "TERM=xterm-256color",
            "--",
            program,
        ];
        argv.extend(args.iter().map(String::as_str));
        self.tmux_ok(&argv);
    }

    /// Named keys (`Enter`, `C-n`, `Down`...).
    fn keys(&self, name: &str, keys: &[&str]) {
        let mut argv = vec!["send-keys", "-t", name];
        argv.extend_from_slice(keys);
        self.tmux_ok(&argv);
    }

    /// Text typed literally.
    fn type_text(&self, name: &str, text: &str) {
        self.tmux_ok(&["send-keys", "-t", name, "-l", text]);
    }

    /// The visible screen of session `name`.
    fn capture(&self, name: &str) -> String {
        self.tmux_ok(&["capture-pane", "-p", "-t", name])
    }

    /// Polls the screen of `name` until `ok` holds; panics with the screen
    /// after `SCREEN_WAIT`.
    async fn wait_for(&self, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.capture(name);
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s screen did not show {what} within {SCREEN_WAIT:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `text` is on the screen of `name`.
    async fn wait_text(&self, name: &str, text: &str) -> String {
        self.wait_for(name, &format!("{text:?}"), |s| s.contains(text))
            .await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Kills only our own server (own socket); its clients get SIGHUP.
        // The directory, socket included, goes with `dir`.
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The status line (second to last row: state │ server │ leader │ term │ rtt).
fn status_line(screen: &str) -> &str {
    screen
        .lines()
        .find(|l| l.contains("│ server ") && l.contains("│ term "))
        .unwrap_or("")
}

/// The delivery mark line of the message showing `text` (the row above
/// its body: `HH:MM sender mark`).
fn header_of<'a>(screen: &'a str, text: &str) -> Option<&'a str> {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.iter().position(|l| l.contains(text))?;
    at.checked_sub(1).map(|i| lines[i])
}

fn committed(screen: &str, text: &str, sender: &str) -> bool {
    header_of(screen, text).is_some_and(|h| h.contains(&format!("{sender} ✓")))
}

fn shows_leader(screen: &str, leader: u64) -> bool {
    status_line(screen).contains(&format!("│ leader {leader} "))
}

/// A short text no screen shows by accident.
fn unique(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{label}-{:x}", nanos ^ std::process::id())
}

/// Runs over TLS, as a user would against a real cluster: `--ca`.
fn chat_tui_args(cluster: &Cluster, user: &str) -> Vec<String> {
    vec![
        "--servers".into(),
        cluster.urls().join(","),
        "--user".into(),
        user.into(),
        "--ca".into(),
        cluster.certs_dir().join("ca.pem").display().to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_through_a_leader_kill() {
    if !Tmux::available() {
        if std::env::var("RAFTCHAT_SKIP_TMUX").as_deref() == Ok("1") {
            eprintln!("SKIPPED: tmux is not installed and RAFTCHAT_SKIP_TMUX=1");
            return;
        }
        panic!(
            "tmux is not installed: the chat-tui end-to-end test drives the real binary \
             inside tmux. Install it (e.g. `apt-get install tmux`), or set \
             RAFTCHAT_SKIP_TMUX=1 to skip this test."
        );
    }
    let chat_tui: PathBuf = raftchat_testkit::bins::path("chat-tui");
    let chat_tui = chat_tui.display().to_string();

    let mut cluster = Cluster::start(options());
    let first_leader = cluster.wait_leader(Duration::from_secs(20)).await;
    // alice is created with the client library, bob with the TUI's ^N.
    let alice_lib = user(&cluster, "alice").await;

    let tmux = Tmux::new();
    let (alice, bob) = ("alice", "bob");
    tmux.start(alice, &chat_tui, &chat_tui_args(&cluster, "alice"));
    tmux.start(bob, &chat_tui, &chat_tui_args(&cluster, "bob"));

    // Sign in: --user fills the name and puts the cursor on the password.
    tmux.wait_text(alice, "sign in or create an account").await;
    tmux.type_text(alice, "password-alice");
    tmux.keys(alice, &["Enter"]);
    tmux.wait_text(bob, "sign in or create an account").await;
    tmux.type_text(bob, "password-bob");
    tmux.keys(bob, &["C-n"]);
    for name in [alice, bob] {
        tmux.wait_text(name, "Press a to find people").await;
        tmux.wait_for(name, "the first leader on the status line", |s| {
            shows_leader(s, first_leader)
        })
        .await;
    }
    let bob_lib = cluster.client();
    bob_lib
        .login("bob", "password-bob")
        .await
        .expect("bob's account exists");

    // alice finds bob in the accounts browser and writes to him.
    tmux.keys(alice, &["a"]);
    tmux.wait_text(alice, "Accounts — start a chat").await;
    tmux.type_text(alice, "bob");
    tmux.keys(alice, &["Enter"]);
    // The results take the keyboard once they arrive.
    tmux.wait_text(alice, "Enter chat with").await;
    tmux.keys(alice, &["Enter"]);
    tmux.wait_text(alice, "To bob").await;
    let hello = unique("hello-bob");
    tmux.type_text(alice, &hello);
    tmux.keys(alice, &["Enter"]);
    tmux.wait_text(bob, &hello).await;
    // bob's sidebar knows alice is online (the conversation came to him).
    tmux.wait_text(bob, "● alice").await;
    tmux.wait_for(alice, "hello committed (✓)", |s| {
        committed(s, &hello, "alice")
    })
    .await;

    // bob answers in the conversation that opened by itself.
    tmux.keys(bob, &["i"]);
    tmux.wait_text(bob, "To alice").await;
    let reply = unique("hi-alice");
    tmux.type_text(bob, &reply);
    tmux.keys(bob, &["Enter"]);
    tmux.wait_text(alice, &reply).await;

    // SIGKILL the leader. alice sends at once, while the election runs.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.kill(leader);
    let during = unique("during-election");
    tmux.type_text(alice, &during);
    tmux.keys(alice, &["Enter"]);

    let new_leader = cluster.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    for name in [alice, bob] {
        tmux.wait_for(
            name,
            &format!("leader {new_leader} on the status line"),
            |s| shows_leader(s, new_leader),
        )
        .await;
    }

    // After the failover bob writes; each message shows once on the other
    // screen (and once on the sender's own, committed).
    let after = unique("after-failover");
    tmux.type_text(bob, &after);
    tmux.keys(bob, &["Enter"]);
    for (text, sender, receiver) in [(&during, alice, bob), (&after, bob, alice)] {
        tmux.wait_text(receiver, text).await;
        tmux.wait_for(sender, &format!("{text} committed (✓)"), |s| {
            committed(s, text, sender)
        })
        .await;
        // Give a duplicate the time to show up if there were one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for name in [sender, receiver] {
            let screen = tmux.capture(name);
            assert_eq!(
                screen.matches(text.as_str()).count(),
                1,
                "{text} on {name}'s screen:\n{screen}"
            );
        }
    }

    // The cluster stored each message once. (`during` may still have been
    // retrying when bob wrote `after`, so those two may come in any order.)
    let stored = bodies_with(&alice_lib, "bob").await;
    assert_eq!(stored.len(), 4, "history as alice reads it: {stored:?}");
    assert_eq!(stored[..2], [hello.clone(), reply.clone()], "{stored:?}");
    for text in [&during, &after] {
        assert_eq!(
            stored.iter().filter(|b| *b == text).count(),
            1,
            "{text} in {stored:?}"
        );
    }
    assert_eq!(
        bodies_with(&bob_lib, "alice").await,
        stored,
        "history as bob reads it"
    );

    // Both clients still alive (remain-on-exit would show a dead pane).
    for name in [alice, bob] {
        let dead = tmux.tmux_ok(&["display-message", "-p", "-t", name, "#{pane_dead}"]);
        assert_eq!(
            dead.trim(),
            "0",
            "{name}'s chat-tui exited:\n{}",
            tmux.capture(name)
        );
    }
    drop(tmux);
}
