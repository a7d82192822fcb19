//! Rendering snapshots of `chat-tui` screens, built by feeding events to
//! the pure state machine and drawing into ratatui's `TestBackend`.
//!
//! Update after an intended change with
//! `INSTA_UPDATE=always cargo test --test tui_render`, then review the
//! `.snap` diffs.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::Modifier;
use ratatui::Terminal;

use raftchat_tui::{
    draw, AccountInfo, App, AppConfig, AppEvent, ComposeMode, ConnectionState, Context,
    ConversationInfo, ConversationKind, ErrorKind, Message, NetError, NetEvent, Reaction,
    ReplicaReport, ReplicaStatus, StoreEvent, BINDINGS,
};

const WIDTH: u16 = 100;
const HEIGHT: u16 = 30;
/// Mon 23 Nov 2026 09:05 UTC.
const T0: u64 = 1_795_424_700_000;
const DAY: u64 = 86_400_000;

fn servers() -> Vec<String> {
    (1..=5).map(|i| format!("127.0.0.1:700{i}")).collect()
}

fn new_app(user: Option<&str>) -> App {
    let mut app = App::new(AppConfig {
        user: user.map(String::from),
        ..AppConfig::new("rq", servers())
    });
    app.update(AppEvent::Tick { now_ms: T0 });
    app
}

fn press(app: &mut App, code: KeyCode) {
    app.update(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn net(app: &mut App, event: NetEvent) {
    app.update(AppEvent::Net(event));
}

/// The screen as text, one line per row, trailing blanks trimmed.
fn screen(app: &App) -> String {
    screen_sized(app, WIDTH, HEIGHT)
}

fn screen_sized(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| draw(frame, app)).expect("draw");
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn conv(
    id: u64,
    kind: ConversationKind,
    name: &str,
    unread: u64,
    activity: u64,
) -> ConversationInfo {
    ConversationInfo {
        id,
        kind,
        name: name.into(),
        members: match kind {
            ConversationKind::Group => vec!["alice".into(), "bob".into(), "carol".into()],
            ConversationKind::Direct => vec!["alice".into(), name.into()],
        },
        unread,
        last_message_id: 0,
        last_activity_ms: activity,
        read_up_to: 0,
    }
}

fn msg(id: u64, conversation_id: u64, sender: &str, body: &str, sent_ms: u64) -> Message {
    Message {
        id,
        conversation_id,
        sender: sender.into(),
        body: body.into(),
        sent_ms,
        ..Message::default()
    }
}

fn connected(app: &mut App) {
    net(
        app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((2, "http://127.0.0.1:7002".into())),
            last_rtt: Some(Duration::from_millis(3)),
            ..ConnectionState::default()
        }),
    );
    net(app, NetEvent::Cluster(cluster(&[1, 2, 3, 4, 5])));
}

fn cluster(up: &[u64]) -> Vec<ReplicaReport> {
    (1..=5)
        .map(|i| ReplicaReport {
            server: format!("127.0.0.1:700{i}"),
            status: if up.contains(&i) {
                Ok(ReplicaStatus {
                    id: i,
                    url: format!("http://127.0.0.1:700{i}"),
                    role: if i == 2 { "leader" } else { "follower" }.into(),
                    term: 7,
                    leader_id: 2,
                    leader_url: "http://127.0.0.1:7002".into(),
                    commit_index: 120,
                    applied_index: 120 - i,
                    has_quorum: Some(true),
                })
            } else {
                Err("no answer within 2 s".into())
            },
        })
        .collect()
}

/// Alice, signed in, with three conversations; the DM with bob is open.
fn chat_app() -> App {
    let mut app = new_app(None);
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "pw");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SignedIn {
            username: "alice".into(),
        },
    );
    connected(&mut app);
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0),
            conv(2, ConversationKind::Group, "team", 3, T0 - 60_000),
            conv(3, ConversationKind::Direct, "carol", 1, T0 - DAY),
        ]),
    );
    net(
        &mut app,
        NetEvent::Presences(vec![
            AccountInfo {
                username: "bob".into(),
                online: true,
                last_seen_ms: T0,
            },
            AccountInfo {
                username: "carol".into(),
                online: false,
                last_seen_ms: T0 - DAY,
            },
        ]),
    );
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: vec![
                msg(
                    1,
                    1,
                    "bob",
                    "Are we still on for the failover drill?",
                    T0 - DAY,
                ),
                msg(2, 1, "alice", "Yes, tomorrow 9:00.", T0 - DAY + 60_000),
                msg(
                    3,
                    1,
                    "bob",
                    "Great. I will kill the leader first, then watch the client rotate.",
                    T0 - 120_000,
                ),
                msg(4, 1, "alice", "Sounds good", T0 - 60_000),
            ],
            more: false,
            before: 0,
        },
    );
    app
}

#[test]
fn sign_in_screen_with_an_inline_error() {
    let mut app = new_app(Some("alice"));
    type_text(&mut app, "wrong");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::Unauthenticated, "bad password")),
    );
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn chat_with_unread_counts_and_delivery_marks() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('i'));
    // One committed, one failed, one in flight, one queued.
    type_text(&mut app, "committed one");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(5, 1, "alice", "committed one", T0),
        },
    );
    type_text(&mut app, "rejected");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 2,
            error: NetError::new(ErrorKind::InvalidArgument, "body too long"),
        },
    );
    type_text(&mut app, "in flight");
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "queued behind it");
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "draft being typed");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn failed_message_and_scrolled_back_view() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "this one fails");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: NetError::new(ErrorKind::PermissionDenied, "not a member"),
        },
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('k'));
    net(
        &mut app,
        NetEvent::MessageArrived(msg(6, 1, "bob", "a new message while scrolled back", T0)),
    );
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn accounts_browser() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('a'));
    type_text(&mut app, "*o*");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::Accounts {
            pattern: "*o*".into(),
            after: "".into(),
            accounts: vec![
                AccountInfo {
                    username: "bob".into(),
                    online: true,
                    last_seen_ms: T0,
                },
                AccountInfo {
                    username: "carol".into(),
                    online: false,
                    last_seen_ms: T0 - 3 * 3_600_000,
                },
                AccountInfo {
                    username: "dora".into(),
                    online: false,
                    last_seen_ms: 0,
                },
            ],
            next_after: "dora".into(),
        },
    );
    net(
        &mut app,
        NetEvent::AccountCount {
            pattern: "*o*".into(),
            count: Some(23),
            complete: true,
        },
    );
    press(&mut app, KeyCode::Char(' '));
    press(&mut app, KeyCode::Char('j'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn help_overlay() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn cluster_panel() {
    let mut app = chat_app();
    net(&mut app, NetEvent::Cluster(cluster(&[1, 2, 3, 5])));
    press(&mut app, KeyCode::Char('c'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn reconnecting_status() {
    let mut app = chat_app();
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((2, "http://127.0.0.1:7002".into())),
            last_rtt: Some(Duration::from_millis(3)),
            reconnecting: true,
            next_server: Some("127.0.0.1:7002".into()),
            last_error: Some("no answer within 2 s".into()),
        }),
    );
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn no_quorum_status() {
    let mut app = chat_app();
    net(&mut app, NetEvent::Cluster(cluster(&[1, 2])));
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "typed offline");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: NetError::new(ErrorKind::Unavailable, "no quorum"),
        },
    );
    insta::assert_snapshot!(screen(&app));
}

/// Wide (CJK) text and emoji sequences are wrapped by display width: a
/// 1,000-character message in a 60-column message pane is on screen in
/// full, in order, and no emoji loses a part.
#[test]
fn wide_text_and_emoji_are_shown_whole() {
    const DIGITS: &str = "一二三四五六七八九十";
    let long = DIGITS.repeat(100);
    let emoji = "👍🏽 👨‍👩‍👧‍👦 🇯🇵";
    let mut app = chat_app();
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: vec![
                msg(5, 1, "bob", &long, T0 - 30_000),
                msg(6, 1, "bob", emoji, T0 - 20_000),
            ],
            more: false,
            before: 0,
        },
    );
    // The sidebar takes 28 columns.
    let text = screen_sized(&app, 88, 70);
    let shown: String = text.chars().filter(|c| DIGITS.contains(*c)).collect();
    assert_eq!(shown, long, "{text}");
    for e in emoji.split(' ') {
        assert!(text.contains(e), "{e} not shown whole in:\n{text}");
    }
}

/// Near and over the size limit, the compose box says how many bytes.
#[test]
fn the_compose_box_counts_bytes_near_the_limit() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('i'));
    app.update(AppEvent::Paste("x".repeat(3000)));
    assert!(!screen(&app).contains("/4096 bytes"));
    app.update(AppEvent::Paste("é".repeat(549)));
    assert!(
        screen(&app).contains("· 4098/4096 bytes"),
        "{}",
        screen(&app)
    );
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut apps = vec![new_app(None), chat_app()];
    let mut with_overlays = chat_app();
    press(&mut with_overlays, KeyCode::Char('c'));
    press(&mut with_overlays, KeyCode::Char('a'));
    apps.push(with_overlays);
    let mut help = chat_app();
    press(&mut help, KeyCode::Char('?'));
    apps.push(help);
    let mut search = chat_app();
    press(&mut search, KeyCode::Tab);
    press(&mut search, KeyCode::Char('/'));
    type_text(&mut search, "x");
    apps.push(search);
    for app in &apps {
        for (width, height) in [(1, 1), (10, 3), (30, 8), (45, 12)] {
            let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
            terminal.draw(|frame| draw(frame, app)).expect("draw");
        }
    }
}

/// The README's key table, generated from `BINDINGS` (one row per binding,
/// contexts in the help overlay's order).
fn readme_key_table() -> String {
    let mut contexts: Vec<Context> = Vec::new();
    for binding in BINDINGS {
        if !contexts.contains(&binding.context) {
            contexts.push(binding.context);
        }
    }
    let mut out = String::from("| where | keys | what it does |\n|---|---|---|\n");
    for context in contexts {
        for binding in BINDINGS.iter().filter(|b| b.context == context) {
            let keys: Vec<String> = binding
                .keys
                .iter()
                .map(|chord| format!("`{}`", chord.label()))
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                context.title(),
                keys.join(" "),
                binding.description
            ));
        }
    }
    out
}

/// The key bindings table in README.md is exactly `BINDINGS`. After changing
/// a binding, regenerate it with
/// `UPDATE_README=1 cargo test --test tui_render readme`.
#[test]
fn readme_key_table_matches_the_bindings() {
    const BEGIN: &str = "<!-- chat-tui keys: generated from crates/tui/src/keys.rs BINDINGS -->\n";
    const END: &str = "<!-- end of chat-tui keys -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let start = readme
        .find(BEGIN)
        .expect("README has the key table markers")
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README key table end marker");
    let table = readme_key_table();
    if std::env::var("UPDATE_README").as_deref() == Ok("1") {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        readme[start..end],
        table,
        "README key table is out of date: UPDATE_README=1 cargo test --test tui_render readme"
    );
}

/// `NO_COLOR`: the frame as a terminal receives it has no colours, and the
/// selection keeps its reverse video. crossterm's own handling of NO_COLOR
/// wrote an empty SGR (a full reset) for every colour change, which wiped
/// reverse and bold, so the selection was invisible.
#[test]
fn no_color_frames_keep_reverse_video_and_drop_colours() {
    use ratatui::backend::CrosstermBackend;
    use ratatui::layout::Rect;
    use ratatui::{TerminalOptions, Viewport};

    let app = chat_app();
    raftchat_tui::honour_no_color();
    let mut out = Vec::new();
    {
        let backend = CrosstermBackend::new(&mut out);
        let mut terminal = Terminal::with_options(
            backend,
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, 100, 30)),
            },
        )
        .expect("terminal");
        terminal
            .draw(|frame| {
                raftchat_tui::draw(frame, &app);
                raftchat_tui::strip_colors(frame.buffer_mut());
            })
            .expect("draw");
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\u{1b}[7m"), "no reverse video in {text:?}");
    for colour in ["[38;", "[48;", "[31m", "[32m", "[33m", "[36m"] {
        assert!(!text.contains(colour), "colour {colour:?} in {text:?}");
    }
}

/// Opening a conversation with unread messages puts the cursor on the first
/// of them, under a "new messages" line, and the ones below stay unread.
#[test]
fn opening_a_conversation_shows_where_the_new_messages_start() {
    let mut app = chat_app();
    // The sidebar's cursor to "team" (3 unread) and open it.
    press(&mut app, KeyCode::Down);
    assert_eq!(app.total_unread(), 4, "moving the cursor read nothing");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::History {
            conversation: ConversationInfo {
                read_up_to: 10,
                last_message_id: 13,
                ..conv(2, ConversationKind::Group, "team", 3, T0 - 60_000)
            },
            messages: vec![
                msg(10, 2, "carol", "the old one", T0 - 300_000),
                msg(11, 2, "dave", "first new", T0 - 240_000),
                msg(12, 2, "carol", "second new", T0 - 180_000),
                msg(13, 2, "dave", "third new", T0 - 60_000),
            ],
            more: false,
            before: 0,
        },
    );
    let text = screen(&app);
    let new_line = text
        .lines()
        .position(|l| l.contains("new messages"))
        .unwrap_or_else(|| panic!("no new-messages line:\n{text}"));
    let first_new = text
        .lines()
        .position(|l| l.contains("first new"))
        .unwrap_or_else(|| panic!("{text}"));
    // The line, then the header of dave's message, then its text.
    assert_eq!(new_line + 2, first_new, "{text}");
    // All of it fits: the pane is filled from the top, so the two below
    // the cursor show too, after it.
    let second_new = text
        .lines()
        .position(|l| l.contains("second new"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(second_new > first_new, "{text}");
    // "first new" is read; the two below the cursor are too once the
    // frame that shows them is reported (as the event loop does).
    assert_eq!(app.total_unread(), 3, "carol's 1 and team's 2");
    let full = ratatui::layout::Rect::new(0, 0, WIDTH, HEIGHT);
    app.update(AppEvent::Resize {
        width: WIDTH,
        height: HEIGHT,
    });
    let (conversation_id, up_to) = raftchat_tui::shown_up_to(&app, full).expect("shown");
    assert_eq!((conversation_id, up_to), (2, 13));
    app.update(AppEvent::Shown {
        conversation_id,
        up_to,
    });
    assert_eq!(app.total_unread(), 1, "carol's 1 only");
}

/// Another member's read receipt shows as "seen" under one's own messages
/// up to where they read (only there).
#[test]
fn a_read_receipt_from_the_peer_shows_seen() {
    let mut app = chat_app();
    net(
        &mut app,
        NetEvent::ReadReceipt {
            conversation_id: 1,
            reader: "bob".into(),
            up_to: 2,
        },
    );
    // The header line above a message's text.
    let header = |app: &App, body_line: &str| {
        let text = screen(app);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(body_line))
            .unwrap_or_else(|| panic!("{body_line} not on screen:\n{text}"));
        lines[at - 1].to_string()
    };
    let yes = header(&app, "Yes, tomorrow 9:00.");
    assert!(yes.contains("seen"), "{yes}");
    let good = header(&app, "Sounds good");
    assert!(!good.contains("seen"), "{good}");
    // Our own receipts do not count as "seen".
    net(
        &mut app,
        NetEvent::ReadReceipt {
            conversation_id: 1,
            reader: "alice".into(),
            up_to: 4,
        },
    );
    let good = header(&app, "Sounds good");
    assert!(!good.contains("seen"), "{good}");
}

/// Quitting with a message waiting to be sent asks first and says how many
/// wait and what becomes of them.
#[test]
fn quit_with_a_waiting_message_asks_first() {
    let mut app = chat_app();
    app.update(AppEvent::Store(StoreEvent::Loaded {
        user: "alice".into(),
        outbox: vec![],
        drafts: vec![],
        problems: vec![],
        available: true,
    }));
    net(&mut app, NetEvent::Cluster(cluster(&[1, 2])));
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "typed offline");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: NetError::new(ErrorKind::Unavailable, "no quorum"),
        },
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.should_quit);
    insta::assert_snapshot!(screen(&app));
}

/// At the oldest message the pane is filled from the top: the first
/// messages, the cursor on the oldest, then what follows, not the oldest
/// alone above a column of blank rows.
#[test]
fn at_the_oldest_message_the_pane_is_filled_from_the_top() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Tab); // to the messages
    press(&mut app, KeyCode::Char('g'));
    let text = screen(&app);
    for body in [
        "Are we still on for the failover drill?",
        "Yes, tomorrow 9:00.",
        "Great. I will kill the leader first",
        "Sounds good",
    ] {
        assert!(text.contains(body), "{body} missing:\n{text}");
    }
    assert!(!text.contains("more below"), "{text}");

    // A long history: the pane is full, with how many follow.
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: (10..60)
                .map(|i| msg(i, 1, "bob", &format!("line {i}"), T0 - 60_000 + i))
                .collect(),
            more: false,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Char('g'));
    let text = screen(&app);
    let pane: Vec<&str> = text.lines().skip(1).take(22).collect();
    assert!(
        pane.iter()
            .all(|l| l.chars().skip(29).any(|c| c != ' ' && c != '│')),
        "no blank row in the pane:\n{text}"
    );
    assert!(text.contains("Are we still on"), "{text}");
    assert!(text.contains("more below"), "{text}");
    insta::assert_snapshot!(text);
}

/// Consecutive messages of one sender within 5 minutes share one
/// `HH:MM sender` line; a pause, another sender, another day or another
/// delivery mark starts a new one.
#[test]
fn messages_of_one_sender_in_a_row_share_a_header() {
    let mut app = chat_app();
    let minute = 60_000;
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: vec![
                msg(11, 1, "bob", "run one a", T0 - 30 * minute),
                msg(12, 1, "bob", "run one b", T0 - 28 * minute),
                msg(13, 1, "bob", "run one c", T0 - 24 * minute),
                msg(14, 1, "bob", "after a pause", T0 - 10 * minute),
                msg(15, 1, "alice", "mine", T0 - 9 * minute),
            ],
            more: false,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "mine, queued");
    press(&mut app, KeyCode::Enter);
    let text = screen_sized(&app, 100, 40);
    let header_above = |body: &str| {
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(body))
            .unwrap_or_else(|| panic!("{body}:\n{text}"));
        lines[at - 1].to_string()
    };
    assert!(header_above("run one a").contains("08:35 bob"), "{text}");
    assert!(header_above("run one b").contains("run one a"), "{text}");
    assert!(header_above("run one c").contains("run one b"), "{text}");
    assert!(
        header_above("after a pause").contains("08:55 bob"),
        "{text}"
    );
    assert!(header_above("mine").contains("08:56 alice ✓"), "{text}");
    assert!(header_above("mine, queued").contains("alice ○"), "{text}");
}

/// With every replica down the status line gives no round-trip time from
/// when one last answered.
#[test]
fn no_round_trip_time_is_shown_when_nothing_answers() {
    let mut app = chat_app();
    assert!(screen(&app).contains("rtt 3 ms"));
    net(&mut app, NetEvent::Cluster(cluster(&[])));
    app.update(AppEvent::Tick { now_ms: T0 + 5_000 });
    let text = screen(&app);
    let status = text
        .lines()
        .find(|l| l.contains("│ server "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!status.contains("rtt 3 ms"), "{status}");
    assert!(status.contains("no answer for 5 s"), "{status}");
    assert!(status.contains("no quorum"), "{status}");
}

/// Members joining or leaving a group show as a line among its messages,
/// where it happened, not only in the title.
#[test]
fn membership_changes_are_lines_in_the_conversation() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    let team = |last_message_id, members: &[&str]| ConversationInfo {
        last_message_id,
        members: members.iter().map(|m| m.to_string()).collect(),
        ..conv(2, ConversationKind::Group, "team", 0, T0 - 60_000)
    };
    net(
        &mut app,
        NetEvent::History {
            conversation: team(11, &["alice", "bob", "carol"]),
            messages: vec![
                msg(10, 2, "carol", "before dave", T0 - 300_000),
                msg(11, 2, "bob", "still before", T0 - 240_000),
            ],
            more: false,
            before: 0,
        },
    );
    net(
        &mut app,
        NetEvent::Membership {
            conversation: team(11, &["alice", "bob", "carol", "dave"]),
            user: "dave".into(),
            change: "joined".into(),
        },
    );
    net(
        &mut app,
        NetEvent::MessageArrived(msg(12, 2, "dave", "hi all", T0)),
    );
    net(
        &mut app,
        NetEvent::Membership {
            conversation: team(12, &["alice", "bob", "dave"]),
            user: "carol".into(),
            change: "left".into(),
        },
    );
    let text = screen(&app);
    let row = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not on screen:\n{text}"))
    };
    assert!(row("still before") < row("— dave joined"), "{text}");
    assert!(row("— dave joined") < row("hi all"), "{text}");
    assert!(row("hi all") < row("— carol left"), "{text}");
    insta::assert_snapshot!(text);
}

/// The help overlay and the hint bar show the keys in force, from the
/// config file's `[keys]`, not the defaults.
#[test]
fn help_and_hints_show_overridden_keys() {
    let keymap = raftchat_tui::Keymap::with_overrides(&[
        (
            raftchat_tui::Action::ToggleHelp,
            vec![raftchat_tui::Chord::parse("F9").expect("F9")],
        ),
        (
            raftchat_tui::Action::Quit,
            vec![raftchat_tui::Chord::parse("C-q").expect("C-q")],
        ),
    ])
    .expect("valid overrides");
    let mut app = App::new(AppConfig {
        keymap,
        ..AppConfig::new("rq", servers())
    });
    app.update(AppEvent::Tick { now_ms: T0 });
    let hints = screen(&app).lines().last().unwrap_or_default().to_string();
    assert!(hints.contains("F9 help"), "{hints}");
    assert!(hints.contains("^Q quit"), "{hints}");
    assert!(!hints.contains("F1"), "{hints}");
    app.update(AppEvent::Key(KeyEvent::new(
        KeyCode::F(9),
        KeyModifiers::NONE,
    )));
    let help = screen_sized(&app, 100, 80);
    assert!(help.contains("  F9                help"), "{help}");
    assert!(help.contains("  ^Q                quit"), "{help}");
    assert!(!help.contains("  ^C "), "{help}");
}

/// A light theme recolours what the dark one draws cyan and yellow.
#[test]
fn a_light_theme_recolours_the_frame() {
    use ratatui::style::Color;
    let mut app = chat_app();
    let colours = |app: &App| {
        let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");
        terminal.draw(|frame| draw(frame, app)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        buffer.content.iter().map(|c| c.fg).collect::<Vec<_>>()
    };
    let dark = colours(&app);
    assert!(dark.contains(&Color::Cyan) && dark.contains(&Color::Yellow));
    app.config.theme = raftchat_tui::Theme::LIGHT;
    let light = colours(&app);
    assert!(!light.contains(&Color::Cyan) && !light.contains(&Color::Yellow));
    assert!(light.contains(&Color::Blue));
}

/// A note before a day's first message comes after that day's separator.
#[test]
fn a_note_before_the_first_message_of_a_day_is_under_its_separator() {
    let mut app = chat_app();
    let group = ConversationInfo {
        members: vec!["alice".into(), "bob".into()],
        ..conv(9, ConversationKind::Group, "new", 0, T0)
    };
    net(
        &mut app,
        NetEvent::Membership {
            conversation: group.clone(),
            user: "alice".into(),
            change: "created".into(),
        },
    );
    net(
        &mut app,
        NetEvent::History {
            conversation: group,
            messages: vec![],
            more: false,
            before: 0,
        },
    );
    net(
        &mut app,
        NetEvent::MessageArrived(msg(20, 9, "bob", "first words", T0 + 1_000)),
    );
    press(&mut app, KeyCode::Char('k')); // the sidebar's cursor to "new"
    press(&mut app, KeyCode::Enter);
    let text = screen(&app);
    let row = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not on screen:\n{text}"))
    };
    assert!(
        row("Mon 23 Nov 2026") < row("— alice created #new"),
        "{text}"
    );
    assert!(row("— alice created #new") < row("first words"), "{text}");
}

/// Control characters in text from the network (or from saved drafts,
/// which take the same path) never reach the terminal: a message body or a
/// draft trying to clear the screen or ring the bell draws as plain text.
#[test]
fn control_characters_from_the_network_do_not_reach_the_terminal() {
    use ratatui::backend::CrosstermBackend;
    use ratatui::layout::Rect;
    use ratatui::{TerminalOptions, Viewport};

    let mut app = chat_app();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(
            9,
            1,
            "bob",
            "clear\u{1b}[2J bell\u{7} title\u{1b}]0;pwned\u{7} end",
            T0,
        )),
    );
    // Quoted in a reply, as a reaction, in the compose box's title.
    net(
        &mut app,
        NetEvent::MessageArrived(Message {
            reply_to: 9,
            ..msg(10, 1, "bob", "answer", T0)
        }),
    );
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            reactions: vec![Reaction {
                emoji: "\u{1b}[2J\u{7}".into(),
                users: vec!["bob".into()],
            }],
            ..msg(10, 1, "bob", "answer", T0)
        }),
    );
    // A typist's name.
    net(
        &mut app,
        NetEvent::Typing {
            conversation_id: 1,
            user: "eve\u{1b}[2J\u{7}".into(),
            expires_in_ms: 5_000,
        },
    );
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('R'));
    assert!(matches!(
        app.compose_mode,
        Some(ComposeMode::Replying { .. })
    ));
    app.update(AppEvent::Paste("draft\u{1b}[?1049l gone\u{7}".into()));
    let mut out = Vec::new();
    {
        let backend = CrosstermBackend::new(&mut out);
        let mut terminal = Terminal::with_options(
            backend,
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, 100, 30)),
            },
        )
        .expect("terminal");
        terminal.draw(|frame| draw(frame, &app)).expect("draw");
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("clear"), "the message is drawn: {text:?}");
    assert!(
        text.contains("> bob: clear"),
        "the quote is drawn: {text:?}"
    );
    assert!(text.contains("Replying to bob: clear"), "{text:?}");
    assert!(text.contains("is typing"), "{text:?}");
    for bad in ["\u{1b}[2J", "\u{7}", "\u{1b}]0;", "\u{1b}[?1049l"] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the terminal: {text:?}"
        );
    }
}

/// With more unread than the pane shows, what the frame reports as shown
/// stops at the last message drawn whole: the rest stays unread.
#[test]
fn only_what_the_frame_shows_whole_counts_as_shown() {
    let mut app = chat_app();
    app.update(AppEvent::Resize {
        width: WIDTH,
        height: HEIGHT,
    });
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::History {
            conversation: ConversationInfo {
                read_up_to: 10,
                last_message_id: 60,
                ..conv(2, ConversationKind::Group, "team", 50, T0 - 60_000)
            },
            messages: (10..=60)
                .map(|i| msg(i, 2, "dave", &format!("line {i}"), T0 - 60_000 + i))
                .collect(),
            more: false,
            before: 0,
        },
    );
    let full = ratatui::layout::Rect::new(0, 0, WIDTH, HEIGHT);
    let (_, up_to) = raftchat_tui::shown_up_to(&app, full).expect("shown");
    let text = screen(&app);
    assert!(
        text.contains(&format!("line {up_to}\n")) || text.contains(&format!("line {up_to} ")),
        "{text}"
    );
    assert!(!text.contains(&format!("line {}", up_to + 1)), "{text}");
    assert!(up_to < 60, "not everything fits: {up_to}");
}

/// An edited message says so after its text; a reply quotes the start of
/// the message it answers (or says it is gone); reactions are counted
/// under a message, ours standing out.
#[test]
fn edits_replies_and_reactions_in_the_message_pane() {
    let mut app = chat_app();
    // bob edits his message 3; alice's 2 gets reactions.
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            edited_at_ms: T0 - 90_000,
            ..msg(
                3,
                1,
                "bob",
                "Great. I will kill the leader first, then watch the clients rotate.",
                T0 - 120_000,
            )
        }),
    );
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            reactions: vec![
                Reaction {
                    emoji: "👍".into(),
                    users: vec!["bob".into(), "alice".into()],
                },
                Reaction {
                    emoji: "🎉".into(),
                    users: vec!["carol".into()],
                },
            ],
            ..msg(4, 1, "alice", "Sounds good", T0 - 60_000)
        }),
    );
    // bob answers message 3 (long: the quote is cut to one line) and a
    // message deleted since.
    net(
        &mut app,
        NetEvent::MessageArrived(Message {
            reply_to: 3,
            ..msg(5, 1, "bob", "Also: the 🎉 is for the drill.", T0)
        }),
    );
    net(
        &mut app,
        NetEvent::MessageArrived(Message {
            reply_to: 2,
            ..msg(6, 1, "bob", "Never mind that one.", T0)
        }),
    );
    net(
        &mut app,
        NetEvent::MessagesDeleted {
            conversation_id: 1,
            message_ids: vec![2],
        },
    );
    let text = screen_sized(&app, 70, HEIGHT);
    assert!(text.contains("(edited 09:03)"), "{text}");
    // Cut to one line, by display width.
    assert!(
        text.contains("> bob: Great. I will kill the lea…│"),
        "{text}"
    );
    assert!(text.contains("> (deleted message)"), "{text}");
    // (A wide character's second cell reads as a space here.)
    assert!(text.contains("👍  2  🎉  1"), "{text}");
    insta::assert_snapshot!(text);
}

/// Our own reaction is drawn differently from the others'.
#[test]
fn our_reaction_stands_out() {
    let mut app = chat_app();
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            reactions: vec![
                Reaction {
                    emoji: "👍".into(),
                    users: vec!["alice".into()],
                },
                Reaction {
                    emoji: "🎉".into(),
                    users: vec!["bob".into()],
                },
            ],
            ..msg(4, 1, "alice", "Sounds good", T0 - 60_000)
        }),
    );
    let (buffer, text) = drawn(&app, WIDTH, HEIGHT);
    let (x, y) = find(&buffer, "👍").expect(&text);
    let (x2, _) = find(&buffer, "🎉").expect(&text);
    let ours = buffer[(x, y)].style();
    let theirs = buffer[(x2, y)].style();
    assert!(ours.add_modifier.contains(Modifier::BOLD), "{ours:?}");
    assert!(!theirs.add_modifier.contains(Modifier::BOLD), "{theirs:?}");
}

/// In a group, a message naming us (`@alice`) is highlighted.
#[test]
fn a_mention_is_highlighted_in_a_group() {
    let mut app = chat_app();
    // Unread, in the sidebar: `@` before the count.
    net(
        &mut app,
        NetEvent::MessageArrived(msg(13, 2, "dave", "@alice ping", T0 - 10_000)),
    );
    let text = screen(&app);
    assert!(
        text.lines()
            .any(|l| l.contains("# team") && l.contains(" @4│")),
        "{text}"
    );
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(2, ConversationKind::Group, "team", 0, T0 - 60_000),
            messages: vec![
                msg(10, 2, "bob", "Who runs the drill tomorrow?", T0 - 120_000),
                msg(11, 2, "carol", "@alice does, I think.", T0 - 60_000),
                msg(12, 2, "bob", "ask alice@example.org", T0 - 30_000),
            ],
            more: false,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Char('i'));
    let (buffer, text) = drawn(&app, WIDTH, HEIGHT);
    let bold = |needle: &str| {
        let (x, y) = find(&buffer, needle).expect(needle);
        buffer[(x, y)].style().add_modifier.contains(Modifier::BOLD)
    };
    assert!(bold("@alice does"), "{text}");
    assert!(!bold("Who runs"), "{text}");
    assert!(!bold("ask alice@"), "{text}");
    insta::assert_snapshot!(text);
}

/// The compose box says when it edits a message or answers one.
#[test]
fn the_compose_box_shows_editing_and_replying() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "a draft");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('R'));
    let replying = screen(&app);
    assert!(
        replying.contains("Replying to bob: Great. I will kill the leader"),
        "{replying}"
    );
    insta::assert_snapshot!("replying", replying);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('e'));
    let editing = screen(&app);
    assert!(editing.contains("Editing your message"), "{editing}");
    assert!(editing.contains("│Sounds good"), "{editing}");
    insta::assert_snapshot!("editing", editing);
}

fn typing(app: &mut App, conversation_id: u64, user: &str) {
    net(
        app,
        NetEvent::Typing {
            conversation_id,
            user: user.into(),
            expires_in_ms: 5_000,
        },
    );
}

/// Who is typing: on the message pane's bottom border, over the compose
/// box, for the open conversation; a `✎` in the sidebar for another.
#[test]
fn someone_typing_shows_over_the_compose_box() {
    let mut app = chat_app();
    typing(&mut app, 1, "bob");
    typing(&mut app, 3, "carol");
    let text = screen(&app);
    assert!(text.contains("└ bob is typing… ─"), "{text}");
    assert!(text.contains("│○ carol                ✎ 1│"), "{text}");
    insta::assert_snapshot!(text);
    // A narrow terminal: the line fits the pane, cut if need be.
    let narrow = screen_sized(&app, 50, 16);
    assert!(narrow.contains("bob is typing…"), "{narrow}");
    let mut group = chat_app();
    for user in ["bob", "carol", "dave"] {
        typing(&mut group, 1, user);
    }
    for width in [40, 50, 60] {
        let narrow = screen_sized(&group, width, 16);
        let row = narrow
            .lines()
            .find(|l| l.contains("└ 3 p"))
            .unwrap_or_else(|| panic!("{narrow}"));
        assert_eq!(row.chars().count(), usize::from(width), "{narrow}");
    }
    assert!(screen(&group).contains("3 people are typing…"));
    // 5 s after the notice, by the app's clock: gone.
    app.update(AppEvent::Tick { now_ms: T0 + 5_000 });
    let text = screen(&app);
    assert!(!text.contains("typing"), "{text}");
    assert!(!text.contains("✎"), "{text}");
}

/// `/` in the messages: the matches of the open conversation, newest
/// first, the match highlighted and in view, control characters gone.
#[test]
fn search_results_in_a_conversation() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "leader");
    press(&mut app, KeyCode::Enter);
    assert!(screen(&app).contains("Searching…"), "{}", screen(&app));
    let long = format!(
        "{}and then the LEADER goes away\u{1b}[2J for good",
        "words before the match ".repeat(5)
    );
    net(
        &mut app,
        NetEvent::SearchResults {
            conversation_id: 1,
            query: "leader".into(),
            before: 0,
            messages: vec![
                msg(
                    3,
                    1,
                    "bob",
                    "Great. I will kill the leader first, then watch the client rotate.",
                    T0 - 120_000,
                ),
                msg(2, 1, "alice", &long, T0 - DAY),
                msg(1, 1, "bob\u{7}", "which leader?\nthe new one", T0 - 2 * DAY),
            ],
            more: true,
        },
    );
    let (buffer, text) = drawn(&app, WIDTH, HEIGHT);
    assert!(
        text.contains("3 matches · more at the end of the list"),
        "{text}"
    );
    assert!(text.contains("…"), "{text}");
    let (x, y) = find(&buffer, "LEADER").expect("the long one's match is in view");
    assert!(buffer[(x, y)]
        .style()
        .add_modifier
        .contains(Modifier::UNDERLINED));
    insta::assert_snapshot!(text);
    // Nothing found says so.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "x");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SearchResults {
            conversation_id: 1,
            query: "leaderx".into(),
            before: 0,
            messages: vec![],
            more: false,
        },
    );
    assert!(
        screen(&app).contains("No messages match “leaderx”."),
        "{}",
        screen(&app)
    );
}

/// `+` on a message opens the picker: common emoji, or type one.
#[test]
fn the_reaction_picker() {
    let mut app = chat_app();
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('+'));
    press(&mut app, KeyCode::Right);
    insta::assert_snapshot!(screen(&app));
}

/// The frame drawn for `app` and its text (as [`screen_sized`]).
fn drawn(app: &App, width: u16, height: u16) -> (ratatui::buffer::Buffer, String) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| draw(frame, app)).expect("draw");
    let buffer = terminal.backend().buffer().clone();
    (buffer, screen_sized(app, width, height))
}

/// The cell where `needle` starts in `buffer`: (column, row).
fn find(buffer: &ratatui::buffer::Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buffer.area;
    (0..area.height).find_map(|y| {
        (0..area.width).find_map(|x| {
            let rest: String = (x..area.width).map(|x| buffer[(x, y)].symbol()).collect();
            rest.starts_with(needle).then_some((x, y))
        })
    })
}
