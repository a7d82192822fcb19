//! End to end: the real `chat-tui` binary, driven through tmux, against a
//! real five-replica cluster (storage on). Two users chat live, the leader
//! is SIGKILLed, the status line follows the new leader and messages sent
//! across the failover arrive exactly once; an edit and a reply show on
//! the other screen. Messages queued while every
//! replica is down survive `kill -9` of chat-tui and are stored once.
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
        self.start_with_env(name, program, args, &[]);
    }

    /// Like [`Tmux::start`], with `NAME=value` settings in the environment.
    fn start_with_env(&self, name: &str, program: &str, args: &[String], env: &[String]) {
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
        ];
        for setting in env {
            argv.extend(["-e", setting.as_str()]);
        }
        argv.extend(["--", program]);
        argv.extend(args.iter().map(String::as_str));
        self.tmux_ok(&argv);
    }

    /// Whether the program of session `name` has exited.
    fn pane_dead(&self, name: &str) -> bool {
        self.tmux_ok(&["display-message", "-p", "-t", name, "#{pane_dead}"])
            .trim()
            == "1"
    }

    /// SIGKILL of the program in session `name`: no chance to clean up.
    async fn kill_9(&self, name: &str) {
        let pid: i32 = self
            .tmux_ok(&["display-message", "-p", "-t", name, "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid");
        // SAFETY: kill(2) of the process tmux started for this test's pane.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + SCREEN_WAIT;
        while !self.pane_dead(name) {
            assert!(Instant::now() < deadline, "{name} survived SIGKILL");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// The delivery mark line of the message showing `text`: the nearest row
/// above its body with something in the `HH:MM ` column (`HH:MM sender
/// mark`); messages of one sender in a row share it, and their text lines
/// are indented past that column.
fn header_of<'a>(screen: &'a str, text: &str) -> Option<&'a str> {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.iter().position(|l| l.contains(text))?;
    let byte = lines[at].find(text)?;
    let column = lines[at][..byte].chars().count();
    let time_column = column.checked_sub(6)?;
    lines[..at].iter().rev().copied().find(|line| {
        line.chars()
            .skip(time_column)
            .take(6)
            .any(|c| !c.is_whitespace())
    })
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

/// Whether tmux is there; without it the test fails unless
/// `RAFTCHAT_SKIP_TMUX=1` (then it is skipped).
fn tmux_or_skip() -> bool {
    if Tmux::available() {
        return true;
    }
    if std::env::var("RAFTCHAT_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("SKIPPED: tmux is not installed and RAFTCHAT_SKIP_TMUX=1");
        return false;
    }
    panic!(
        "tmux is not installed: the chat-tui end-to-end test drives the real binary \
         inside tmux. Install it (e.g. `apt-get install tmux`), or set \
         RAFTCHAT_SKIP_TMUX=1 to skip this test."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_through_a_leader_kill() {
    if !tmux_or_skip() {
        return;
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

    // alice edits her last message and answers bob's: bob sees the new
    // text marked "(edited", and the answer under a quote of his.
    let above_bobs = usize::from(stored.last() != Some(&after));
    edit_and_reply(&tmux, alice, bob, &after, above_bobs).await;

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

/// In the open conversation of `alice` (her compose box focused): Up on
/// the empty box edits her last message, then `R` on `bob`'s message
/// `bobs` (`above` messages up from the newest) answers it. Both show on
/// bob's screen.
async fn edit_and_reply(tmux: &Tmux, alice: &str, bob: &str, bobs: &str, above: usize) {
    tmux.keys(alice, &["Up"]);
    tmux.wait_text(alice, "Editing your message").await;
    let edited = unique("edited-text");
    tmux.keys(alice, &["C-u"]);
    tmux.type_text(alice, &edited);
    tmux.keys(alice, &["Enter"]);
    tmux.wait_for(bob, "the edit, marked (edited", |s| {
        s.lines()
            .any(|l| l.contains(&edited) && l.contains("(edited "))
    })
    .await;

    // Out of the box (the hint bar then offers R), onto bob's message.
    tmux.keys(alice, &["Escape"]);
    tmux.wait_text(alice, "R reply").await;
    for _ in 0..above {
        tmux.keys(alice, &["k"]);
    }
    tmux.keys(alice, &["R"]);
    tmux.wait_text(alice, &format!("Replying to {bob}:")).await;
    let answer = unique("answer");
    tmux.type_text(alice, &answer);
    tmux.keys(alice, &["Enter"]);
    let quote = format!("> {bob}: {bobs}");
    let screen = tmux
        .wait_for(bob, "the answer under its quote", |s| {
            let lines: Vec<&str> = s.lines().collect();
            lines
                .windows(2)
                .any(|w| w[0].contains(&quote) && w[1].contains(&answer))
        })
        .await;
    assert_eq!(screen.matches(answer.as_str()).count(), 1, "{screen}");
}

/// The one file `name` under `state/raftchat/<servers-hash>/alice/`, if any.
fn saved_file(state: &std::path::Path, name: &str) -> Option<serde_json::Value> {
    let clusters = std::fs::read_dir(state.join("raftchat")).ok()?;
    let mut found = Vec::new();
    for cluster in clusters.flatten() {
        let path = cluster.path().join("alice").join(name);
        if let Ok(text) = std::fs::read_to_string(&path) {
            found.push(serde_json::from_str(&text).expect("saved file is JSON"));
        }
    }
    assert!(found.len() <= 1, "one cluster directory: {found:?}");
    found.pop()
}

/// The bodies of the saved outbox, in order.
fn saved_bodies(state: &std::path::Path) -> Vec<String> {
    saved_file(state, "outbox.json")
        .map(|file| {
            file["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["body"].as_str().expect("body").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Never lose typed text: with every replica down, alice queues two
/// messages and leaves a draft. Quitting asks first (and `n` stays);
/// then chat-tui is `kill -9`ed. The first message reaches the cluster
/// anyway (sent by the library with the request id chat-tui saved, as if
/// its send had got through just before the kill). After a restart and
/// sign-in both go out with their original request ids: each is stored
/// exactly once, in order, and the draft is back in the compose box.
/// Along the way: a config file's key override shows in the hint bar, and
/// a SIGSTOPped replica in use is not called connected for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_kill_9_and_are_stored_once() {
    if !tmux_or_skip() {
        return;
    }
    let chat_tui = raftchat_testkit::bins::path("chat-tui")
        .display()
        .to_string();
    let mut cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice_lib = user(&cluster, "alice").await;
    let bob_lib = user(&cluster, "bob").await;
    let hello = unique("hello-alice");
    bob_lib
        .send(&raftchat_client::Target::User("alice".into()), &hello)
        .await
        .expect("bob writes to alice");

    let state = tempfile::Builder::new()
        .prefix("raftchat-state-")
        .tempdir()
        .expect("state dir");
    // A config file too: its key override shows in the hint bar.
    let config = tempfile::Builder::new()
        .prefix("raftchat-config-")
        .tempdir()
        .expect("config dir");
    std::fs::create_dir_all(config.path().join("raftchat")).expect("mkdir");
    std::fs::write(
        config.path().join("raftchat").join("config.toml"),
        "bell = false\n[keys]\ncluster = \"F9\"\n",
    )
    .expect("write config");
    let env = vec![
        format!("XDG_STATE_HOME={}", state.path().display()),
        format!("XDG_CONFIG_HOME={}", config.path().display()),
    ];
    let tmux = Tmux::new();
    let args = chat_tui_args(&cluster, "alice");
    let sign_in = |name: &'static str| {
        let tmux = &tmux;
        let (chat_tui, env, args) = (&chat_tui, &env, &args);
        async move {
            tmux.start_with_env(name, chat_tui, args, env);
            tmux.wait_text(name, "sign in or create an account").await;
            tmux.wait_text(name, "F9 cluster panel").await;
            tmux.type_text(name, "password-alice");
            tmux.keys(name, &["Enter"]);
            tmux.wait_text(name, "To bob").await;
        }
    };
    sign_in("first").await;
    tmux.wait_text("first", &hello).await;

    // SIGSTOP of the replica in use: its connections stay open and calls
    // just wait, yet the status line stops saying connected within
    // seconds (it said so for as long as nothing else failed).
    let screen = tmux
        .wait_for("first", "connected", |s| {
            status_line(s).contains("● connected")
        })
        .await;
    let in_use = (1..=5)
        .find(|id| status_line(&screen).contains(&format!("server {} ", cluster.url(*id))))
        .unwrap_or_else(|| panic!("which replica is in use?\n{screen}"));
    let stopped = Instant::now();
    cluster.pause(in_use, true);
    let screen = tmux
        .wait_for("first", "not connected", |s| {
            !status_line(s).contains("● connected")
        })
        .await;
    let took = stopped.elapsed();
    cluster.pause(in_use, false);
    assert!(
        took < Duration::from_secs(3),
        "connected for {took:?} after SIGSTOP:\n{screen}"
    );
    assert!(
        status_line(&screen).contains("waiting for")
            || status_line(&screen).contains("reconnecting"),
        "{screen}"
    );
    tmux.wait_for("first", "connected again", |s| {
        status_line(s).contains("● connected")
    })
    .await;

    // Every replica down: what alice sends is queued.
    cluster.kill_all();
    let (one, two) = (unique("queued-one"), unique("queued-two"));
    tmux.keys("first", &["i"]);
    for text in [&one, &two] {
        tmux.type_text("first", text);
        tmux.keys("first", &["Enter"]);
    }
    tmux.wait_text("first", "2 waiting to send").await;
    // On disk, in order, as soon as they show as queued.
    assert_eq!(saved_bodies(state.path()), vec![one.clone(), two.clone()]);
    let draft = unique("half-typed");
    tmux.type_text("first", &draft);

    // Quit asks and says how many wait; n stays.
    tmux.keys("first", &["Escape"]);
    tmux.wait_for("first", "the compose box left", |s| {
        !s.contains("Esc stop typing")
    })
    .await;
    tmux.keys("first", &["q"]);
    tmux.wait_text("first", "2 messages are waiting to be sent. Quit anyway?")
        .await;
    tmux.keys("first", &["n"]);
    tmux.wait_for("first", "the dialog closed", |s| {
        !s.contains("Quit anyway?")
    })
    .await;
    assert!(!tmux.pane_dead("first"), "n must not quit");

    // The draft is saved within a second of typing; then kill -9.
    let deadline = Instant::now() + SCREEN_WAIT;
    while !saved_file(state.path(), "drafts.json").is_some_and(|d| d.to_string().contains(&draft)) {
        assert!(Instant::now() < deadline, "the draft was never saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tmux.kill_9("first").await;

    // The first message got through before the kill, as far as the
    // cluster knows: the library sends it with the saved request id.
    let outbox = saved_file(state.path(), "outbox.json").expect("outbox saved");
    let first = &outbox["messages"][0];
    assert_eq!(first["body"].as_str(), Some(one.as_str()));
    for id in 1..=5 {
        cluster.start_replica(id);
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    alice_lib
        .send_with_request_id(
            &raftchat_client::Target::Conversation(
                first["conversation"].as_u64().expect("conversation id"),
            ),
            &one,
            first["request_id"].as_str().expect("request id"),
        )
        .await
        .expect("the first message reaches the cluster");

    // Restart and sign in: both are sent, the draft is back.
    sign_in("second").await;
    for text in [&one, &two] {
        tmux.wait_for("second", &format!("{text} committed (✓)"), |s| {
            committed(s, text, "alice")
        })
        .await;
    }
    tmux.wait_text("second", &draft).await;
    let deadline = Instant::now() + SCREEN_WAIT;
    while !saved_bodies(state.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the saved outbox was not emptied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        bodies_with(&alice_lib, "bob").await,
        vec![hello, one, two],
        "each message stored exactly once, in order"
    );
    drop(tmux);
}
