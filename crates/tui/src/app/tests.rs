//! Unit tests of the pure state machine: events in, state and effects out.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::model::{ConnectionState, ReplicaStatus};

const T0: u64 = 1_795_424_700_000; // Mon 23 Nov 2026 09:05 UTC

fn new_app() -> App {
    let mut app = App::new(AppConfig::new(
        "rq",
        (1..=5).map(|i| format!("127.0.0.1:700{i}")).collect(),
    ));
    app.update(AppEvent::Tick { now_ms: T0 });
    app
}

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn press_mod(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Effect> {
    app.update(AppEvent::Key(KeyEvent::new(code, modifiers)))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn net(app: &mut App, event: NetEvent) -> Vec<Effect> {
    app.update(AppEvent::Net(event))
}

fn tick(app: &mut App, now_ms: u64) -> Vec<Effect> {
    app.update(AppEvent::Tick { now_ms })
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
        members: vec!["alice".into(), name.into()],
        unread,
        last_message_id: 0,
        last_activity_ms: activity,
        read_up_to: 0,
    }
}

fn msg(id: u64, conversation_id: u64, sender: &str, body: &str) -> Message {
    Message {
        id,
        conversation_id,
        sender: sender.into(),
        body: body.into(),
        sent_ms: T0 + id * 1000,
        ..Message::default()
    }
}

fn signed_in() -> App {
    let mut app = new_app();
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
    // The event loop answers `LoadSaved` at once; nothing was left.
    app.update(AppEvent::Store(loaded(vec![], vec![])));
    app
}

/// The store's answer to `LoadSaved` for alice.
fn loaded(outbox: Vec<QueuedMessage>, drafts: Vec<Draft>) -> StoreEvent {
    StoreEvent::Loaded {
        user: "alice".into(),
        outbox,
        drafts,
        problems: vec![],
        available: true,
    }
}

fn saves(effects: &[Effect]) -> Vec<&Effect> {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::SaveOutbox { .. } | Effect::SaveDrafts { .. }))
        .collect()
}

/// Signed in with conversation 1 (bob) open and its (empty) history loaded.
fn chatting() -> App {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: vec![],
            more: false,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Char('i'));
    assert_eq!(app.focus, Focus::Compose);
    app
}

fn send(app: &mut App, text: &str) -> Vec<Effect> {
    type_text(app, text);
    press(app, KeyCode::Enter)
}

fn sends(effects: &[Effect]) -> Vec<(u64, String, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                local_id,
                request_id,
                body,
                ..
            } => Some((*local_id, request_id.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

fn entries(app: &App) -> Vec<(String, Option<Delivery>, bool)> {
    app.conversations
        .open()
        .map(|c| {
            c.log
                .entries
                .iter()
                .map(|e| (e.body.clone(), e.delivery, e.failed.is_some()))
                .collect()
        })
        .unwrap_or_default()
}

fn unavailable() -> NetError {
    NetError::new(ErrorKind::Unavailable, "no quorum: send did not complete")
}

// ------------------------------------------------------------------ sign in

#[test]
fn sign_in_sends_credentials_and_opens_the_chat() {
    let mut app = new_app();
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "secret");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::SignIn {
            username: "alice".into(),
            password: "secret".into()
        }]
    );
    assert_eq!(app.sign_in.pending, Some(Pending::SigningIn));

    let effects = net(
        &mut app,
        NetEvent::SignedIn {
            username: "alice".into(),
        },
    );
    assert_eq!(
        effects,
        vec![
            Effect::LoadSaved {
                user: "alice".into()
            },
            Effect::LoadConversations,
            Effect::Subscribe
        ]
    );
    assert_eq!(app.screen, Screen::Chat);
    assert_eq!(app.me.as_deref(), Some("alice"));
    assert_eq!(app.sign_in.password_text(), "", "the password is not kept");
}

#[test]
fn a_new_account_needs_a_password_of_8_characters() {
    let mut app = new_app();
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "short");
    let effects = press_mod(&mut app, KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(
        app.sign_in.error.as_deref(),
        Some("Choose a password of at least 8 characters.")
    );
    assert_eq!(app.sign_in.pending, None);
    // Signing in with a short password is still allowed (older accounts).
    let effects = press(&mut app, KeyCode::Enter);
    assert!(matches!(effects.as_slice(), [Effect::SignIn { .. }]));
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::Unauthenticated, "wrong")),
    );
    // Long enough: the request goes out, and the server's own refusal of
    // a password is shown as it says it.
    type_text(&mut app, "-and-more");
    let effects = press_mod(&mut app, KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert!(matches!(effects.as_slice(), [Effect::CreateAccount { .. }]));
    let refusal = "password is longer than 1024 bytes";
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::InvalidArgument, refusal)),
    );
    assert_eq!(app.sign_in.error.as_deref(), Some(refusal));
}

#[test]
fn a_login_refused_for_now_says_when_to_retry() {
    let mut app = new_app();
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "guess");
    press(&mut app, KeyCode::Enter);
    // RESOURCE_EXHAUSTED reaches the app as `Other`: not "wrong password".
    let refusal = "too many failed logins; retry in 4 s";
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::Other, refusal)),
    );
    assert_eq!(app.sign_in.error.as_deref(), Some(refusal));
}

#[test]
fn sign_in_errors_are_shown_inline() {
    let mut app = new_app();
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "bad-password");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::Unauthenticated, "bad credentials")),
    );
    assert_eq!(app.screen, Screen::SignIn);
    assert_eq!(
        app.sign_in.error.as_deref(),
        Some("Wrong user name or password.")
    );
    assert_eq!(app.sign_in.pending, None);

    // Create account: name taken.
    let effects = press_mod(&mut app, KeyCode::Char('n'), KeyModifiers::CONTROL);
    assert!(matches!(effects.as_slice(), [Effect::CreateAccount { .. }]));
    net(
        &mut app,
        NetEvent::SignInFailed(NetError::new(ErrorKind::AlreadyExists, "exists")),
    );
    assert_eq!(app.sign_in.error.as_deref(), Some("That name is taken."));

    // No quorum.
    press(&mut app, KeyCode::Enter);
    net(&mut app, NetEvent::SignInFailed(unavailable()));
    assert!(app
        .sign_in
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("No quorum")));
    assert_eq!(app.link_state(), LinkState::NoQuorum);
}

#[test]
fn empty_fields_are_not_submitted() {
    let mut app = new_app();
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.sign_in.error.as_deref(), Some("Enter a user name."));
    type_text(&mut app, "alice");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.sign_in.field, Field::Password);
}

// ------------------------------------------------------------------ sending

#[test]
fn sending_moves_the_mark_queued_accepted_committed() {
    let mut app = chatting();
    let effects = send(&mut app, "hello");
    assert_eq!(sends(&effects), vec![(1, "rq-1".into(), "hello".into())]);
    assert!(matches!(
        &effects[1],
        Effect::Send {
            to: SendTo::Conversation(1),
            ..
        }
    ));
    assert_eq!(
        entries(&app),
        vec![("hello".into(), Some(Delivery::Accepted), false)]
    );
    assert!(app.compose.is_empty());

    net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(10, 1, "alice", "hello"),
        },
    );
    assert_eq!(
        entries(&app),
        vec![("hello".into(), Some(Delivery::Committed), false)]
    );
    assert!(app.outbox.is_empty());
}

#[test]
fn alt_enter_makes_a_new_line() {
    let mut app = chatting();
    type_text(&mut app, "one");
    press_mod(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "two");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(sends(&effects)[0].2, "one\ntwo");
}

#[test]
fn a_pasted_text_keeps_its_line_breaks_whatever_the_terminal_sends() {
    for (pasted, sent) in [
        ("one\rtwo\rthree", "one\ntwo\nthree"),
        ("one\r\ntwo", "one\ntwo"),
        ("one\ntwo", "one\ntwo"),
    ] {
        let mut app = chatting();
        app.update(AppEvent::Paste(pasted.into()));
        let effects = press(&mut app, KeyCode::Enter);
        assert_eq!(sends(&effects)[0].2, sent, "pasted {pasted:?}");
    }
}

#[test]
fn readline_keys_edit_the_compose_box() {
    let mut app = chatting();
    type_text(&mut app, "hello wide world");
    press_mod(&mut app, KeyCode::Char('w'), KeyModifiers::CONTROL);
    assert_eq!(app.compose.lines().join("\n"), "hello wide ");
    press_mod(&mut app, KeyCode::Char('a'), KeyModifiers::CONTROL);
    press_mod(&mut app, KeyCode::Char('k'), KeyModifiers::CONTROL);
    assert_eq!(app.compose.lines().join("\n"), "");
    type_text(&mut app, "keep this");
    press_mod(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "but not this");
    press_mod(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    assert_eq!(app.compose.lines().join("\n"), "keep this\n");
}

#[test]
fn a_message_over_the_size_limit_stays_in_the_box() {
    let mut app = chatting();
    let long = "é".repeat(raftchat_proto::contract::MAX_BODY_BYTES / 2 + 1);
    app.update(AppEvent::Paste(long.clone()));
    let effects = press(&mut app, KeyCode::Enter);
    assert!(sends(&effects).is_empty());
    assert!(app.outbox.is_empty());
    assert_eq!(app.compose.lines().join("\n"), long);
    let notice = app.notice.as_ref().expect("a notice");
    assert!(
        notice.is_error && notice.text.contains("4098 bytes"),
        "{}",
        notice.text
    );
    // Shortened to the limit, it goes.
    press(&mut app, KeyCode::Backspace);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(sends(&effects).len(), 1);
}

#[test]
fn marks_never_move_backwards_and_echoes_are_not_duplicated() {
    let mut app = chatting();
    send(&mut app, "hi");
    // The subscription echo arrives before the send call returns.
    net(
        &mut app,
        NetEvent::MessageArrived(msg(10, 1, "alice", "hi")),
    );
    assert_eq!(
        entries(&app),
        vec![("hi".into(), Some(Delivery::Committed), false)]
    );
    // A late, unavailable failure of the same send cannot demote it...
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: unavailable(),
        },
    );
    assert_eq!(
        entries(&app),
        vec![("hi".into(), Some(Delivery::Committed), false)]
    );
    // ...and the late OK does not add a second copy.
    net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(10, 1, "alice", "hi"),
        },
    );
    assert_eq!(entries(&app).len(), 1);

    let mut entry = app.conversations.open().unwrap().log.entries[0].clone();
    entry.advance(Delivery::Queued);
    entry.advance(Delivery::Accepted);
    assert_eq!(entry.delivery, Some(Delivery::Committed));
}

#[test]
fn messages_typed_without_quorum_are_sent_in_order_exactly_once() {
    let mut app = chatting();
    let mut all_sends = sends(&send(&mut app, "a"));
    // No quorum: the first attempt fails; nothing else goes out meanwhile.
    all_sends.extend(sends(&net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: unavailable(),
        },
    )));
    all_sends.extend(sends(&send(&mut app, "b")));
    all_sends.extend(sends(&send(&mut app, "c")));
    assert_eq!(all_sends.len(), 1);
    assert_eq!(app.link_state(), LinkState::NoQuorum);
    assert_eq!(
        entries(&app),
        vec![
            ("a".into(), Some(Delivery::Accepted), false),
            ("b".into(), Some(Delivery::Queued), false),
            ("c".into(), Some(Delivery::Queued), false),
        ]
    );

    // Too early for a retry.
    assert!(sends(&tick(&mut app, T0 + 500)).is_empty());
    // The retry of "a" carries the same request id.
    let retry = sends(&tick(&mut app, T0 + SEND_RETRY_MS + 1));
    assert_eq!(retry, vec![(1, "rq-1".into(), "a".into())]);
    all_sends.extend(retry);

    // Quorum is back: each commit releases the next message, in order.
    for (local_id, id, body) in [(1, 10, "a"), (2, 11, "b"), (3, 12, "c")] {
        all_sends.extend(sends(&net(
            &mut app,
            NetEvent::Sent {
                local_id,
                message: msg(id, 1, "alice", body),
            },
        )));
    }
    let bodies: Vec<&str> = all_sends.iter().map(|(_, _, b)| b.as_str()).collect();
    assert_eq!(bodies, vec!["a", "a", "b", "c"]);
    let ids: Vec<&str> = all_sends.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(ids, vec!["rq-1", "rq-1", "rq-2", "rq-3"]);
    assert!(app.outbox.is_empty());
    assert!(entries(&app)
        .iter()
        .all(|(_, d, _)| *d == Some(Delivery::Committed)));
}

#[test]
fn a_failed_message_is_marked_and_retried_with_its_request_id() {
    let mut app = chatting();
    send(&mut app, "x");
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: NetError::new(ErrorKind::InvalidArgument, "body too long"),
        },
    );
    assert_eq!(
        entries(&app),
        vec![("x".into(), Some(Delivery::Accepted), true)]
    );
    assert!(app.outbox.is_empty());

    let effects = press_mod(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL);
    assert_eq!(sends(&effects), vec![(1, "rq-1".into(), "x".into())]);
    assert_eq!(
        entries(&app),
        vec![("x".into(), Some(Delivery::Accepted), false)]
    );
}

// ------------------------------------------------------------------ connection

#[test]
fn rotation_shows_reconnecting_then_leader_changed_then_connected() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((1, "http://127.0.0.1:7001".into())),
            last_rtt: Some(Duration::from_millis(2)),
            ..ConnectionState::default()
        }),
    );
    assert_eq!(app.link_state(), LinkState::Connected);

    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((1, "http://127.0.0.1:7001".into())),
            last_rtt: Some(Duration::from_millis(2)),
            reconnecting: true,
            next_server: Some("127.0.0.1:7002".into()),
            last_error: Some("no answer within 2 s".into()),
        }),
    );
    assert_eq!(
        app.link_state(),
        LinkState::Reconnecting {
            next: Some("127.0.0.1:7002".into()),
            error: Some("no answer within 2 s".into())
        }
    );

    tick(&mut app, T0 + 1_000);
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7002".into(),
            leader: Some((2, "http://127.0.0.1:7002".into())),
            last_rtt: Some(Duration::from_millis(3)),
            ..ConnectionState::default()
        }),
    );
    assert_eq!(app.link_state(), LinkState::LeaderChanged);
    assert_eq!(
        app.connection.leader,
        Some((2, "http://127.0.0.1:7002".into()))
    );
    tick(&mut app, T0 + 1_000 + LEADER_CHANGE_SHOWN_MS + 1);
    // The probe of the replica in use keeps answering.
    net(
        &mut app,
        NetEvent::Answer {
            server: "127.0.0.1:7002".into(),
            rtt: Some(Duration::from_millis(4)),
        },
    );
    assert_eq!(app.link_state(), LinkState::Connected);
}

/// A replica that stops answering (SIGSTOP: its connections stay open, so
/// calls just wait) is not called connected for long: after SILENCE_MS
/// without an answer the state says so, and the round-trip time is not
/// the last one from when it did answer.
#[test]
fn a_silent_replica_is_not_called_connected() {
    let mut app = signed_in();
    let answer = |app: &mut App, ok: bool| {
        net(
            app,
            NetEvent::Answer {
                server: "127.0.0.1:7001".into(),
                rtt: ok.then(|| Duration::from_millis(2)),
            },
        )
    };
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((1, "http://127.0.0.1:7001".into())),
            last_rtt: Some(Duration::from_millis(1)),
            ..ConnectionState::default()
        }),
    );
    tick(&mut app, T0 + 500);
    answer(&mut app, true);
    assert_eq!(app.link_state(), LinkState::Connected);
    assert!(app.connection.fresh_rtt(app.now_ms).is_some());
    // Probes go unanswered (or fail) from here.
    tick(&mut app, T0 + 1_000);
    answer(&mut app, false);
    tick(&mut app, T0 + 500 + SILENCE_MS);
    assert_eq!(app.link_state(), LinkState::Connected, "not yet");
    tick(&mut app, T0 + 500 + SILENCE_MS + 1);
    assert_eq!(
        app.link_state(),
        LinkState::Silent {
            server: "127.0.0.1:7001".into(),
            for_ms: SILENCE_MS + 1
        }
    );
    assert_eq!(app.connection.fresh_rtt(app.now_ms), None);
    // A leader hint republishes the old round trip: not an answer.
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7001".into(),
            leader: Some((2, "http://127.0.0.1:7002".into())),
            last_rtt: Some(Duration::from_millis(1)),
            ..ConnectionState::default()
        }),
    );
    assert!(matches!(app.link_state(), LinkState::Silent { .. }));
    // It answers again.
    answer(&mut app, true);
    assert!(!matches!(app.link_state(), LinkState::Silent { .. }));
    assert_eq!(
        app.connection.fresh_rtt(app.now_ms),
        Some(Duration::from_millis(2)),
        "the probe's round trip"
    );
}

/// Before any call of our own (the sign-in screen) the probe's answers
/// give the round trip: not "no answer".
#[test]
fn the_probe_gives_the_round_trip_before_any_call() {
    let mut app = new_app();
    net(
        &mut app,
        NetEvent::Answer {
            server: "127.0.0.1:7003".into(),
            rtt: Some(Duration::from_millis(5)),
        },
    );
    assert_eq!(app.connection.server(), Some("127.0.0.1:7003"));
    assert_eq!(
        app.connection.fresh_rtt(app.now_ms),
        Some(Duration::from_millis(5))
    );
}

#[test]
fn subscription_reconnecting_is_shown_too() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::SubscriptionReconnecting {
            server: "127.0.0.1:7003".into(),
            attempt: 1,
            error: "stream closed".into(),
        },
    );
    assert!(matches!(
        app.link_state(),
        LinkState::Reconnecting { next: Some(ref s), .. } if s == "127.0.0.1:7003"
    ));
    net(
        &mut app,
        NetEvent::SubscriptionLive {
            server: "127.0.0.1:7003".into(),
        },
    );
    assert_eq!(app.link_state(), LinkState::Connected);
}

fn report(i: u64, up: bool, leader: u64) -> ReplicaReport {
    ReplicaReport {
        server: format!("127.0.0.1:700{i}"),
        status: if up {
            Ok(ReplicaStatus {
                id: i,
                url: format!("http://127.0.0.1:700{i}"),
                role: if i == leader { "leader" } else { "follower" }.into(),
                term: 4,
                leader_id: leader,
                leader_url: format!("http://127.0.0.1:700{leader}"),
                commit_index: 20,
                applied_index: 20,
                has_quorum: None,
            })
        } else {
            Err("no answer within 2 s".into())
        },
    }
}

#[test]
fn cluster_reports_decide_quorum_and_term() {
    let mut app = signed_in();
    let minority: Vec<_> = (1..=5).map(|i| report(i, i <= 2, 1)).collect();
    net(&mut app, NetEvent::Cluster(minority));
    assert_eq!(app.link_state(), LinkState::NoQuorum);

    let majority: Vec<_> = (1..=5).map(|i| report(i, i <= 3, 1)).collect();
    net(&mut app, NetEvent::Cluster(majority));
    assert_ne!(app.link_state(), LinkState::NoQuorum);
    assert_eq!(app.connection.term, Some(4));
    assert_eq!(app.connection.leader.as_ref().map(|l| l.0), Some(1));
}

#[test]
fn replicas_that_say_they_have_no_quorum_are_believed() {
    let mut app = signed_in();
    // Two survivors of five, each still following leader 1, both saying
    // the group has no quorum.
    let survivors: Vec<_> = (1..=5)
        .map(|i| {
            let mut r = report(i, i <= 2, 1);
            if let Ok(s) = &mut r.status {
                s.has_quorum = Some(false);
            }
            r
        })
        .collect();
    net(&mut app, NetEvent::Cluster(survivors.clone()));
    assert_eq!(app.link_state(), LinkState::NoQuorum);
    let Ok(leader) = &survivors[0].status else {
        unreachable!()
    };
    assert_eq!(leader.role_label(), "leader (no quorum)");
    // Two replicas this client reaches, in a group that has its quorum.
    let reachable_two: Vec<_> = (1..=5)
        .map(|i| {
            let mut r = report(i, i <= 2, 1);
            if let Ok(s) = &mut r.status {
                s.has_quorum = Some(true);
            }
            r
        })
        .collect();
    net(&mut app, NetEvent::Cluster(reachable_two));
    assert_ne!(app.link_state(), LinkState::NoQuorum);
}

// ------------------------------------------------------------------ unread

#[test]
fn unread_counts_follow_arrivals_and_reading() {
    let mut app = signed_in();
    let effects = net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0 + 10),
            conv(2, ConversationKind::Group, "team", 2, T0 + 5),
        ]),
    );
    // The most recent conversation opens and loads; DM presence is looked up.
    assert!(effects.contains(&Effect::LoadHistory {
        conversation_id: 1,
        before: 0
    }));
    assert!(effects.contains(&Effect::LookupPresence {
        usernames: vec!["bob".into()]
    }));
    assert_eq!(app.total_unread(), 2);

    net(
        &mut app,
        NetEvent::MessageArrived(msg(7, 2, "carol", "ping")),
    );
    assert_eq!(app.total_unread(), 3);
    assert_eq!(app.terminal_title(), "(3) raftchat — alice");
    // The group now has the latest activity: it moves to the top.
    assert_eq!(app.conversations.list[0].name, "team");
    // Own messages do not count.
    net(
        &mut app,
        NetEvent::MessageArrived(msg(8, 2, "alice", "pong")),
    );
    assert_eq!(app.total_unread(), 3);

    // Moving the sidebar's cursor onto the group opens nothing and reads
    // nothing.
    assert!(press(&mut app, KeyCode::Up).is_empty());
    assert_eq!(app.total_unread(), 3);
    assert_eq!(app.conversations.open_index(), Some(1));
    assert_eq!(app.conversations.cursor_index(), Some(0));
    // Enter opens it: the cursor goes to the first unread message, and
    // what is above it is read.
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        vec![Effect::LoadHistory {
            conversation_id: 2,
            before: 0
        }]
    );
    assert_eq!(app.focus, Focus::Messages);
    let effects = net(
        &mut app,
        NetEvent::History {
            conversation: conv(2, ConversationKind::Group, "team", 3, T0 + 8000),
            messages: vec![
                msg(5, 2, "carol", "a"),
                msg(6, 2, "dave", "b"),
                msg(7, 2, "carol", "ping"),
                msg(8, 2, "alice", "pong"),
            ],
            more: false,
            before: 0,
        },
    );
    assert_eq!(
        effects,
        vec![Effect::MarkRead {
            conversation_id: 2,
            up_to: 5
        }]
    );
    assert_eq!(app.view.new_from, Some(5));
    assert_eq!(app.total_unread(), 2);
    // To the newest: the rest is shown, and read.
    assert_eq!(
        press(&mut app, KeyCode::End),
        vec![Effect::MarkRead {
            conversation_id: 2,
            up_to: 8
        }]
    );
    assert_eq!(app.total_unread(), 0);
    assert_eq!(app.terminal_title(), "raftchat — alice");

    // A message arriving in the open, followed conversation is read at once.
    let effects = net(&mut app, NetEvent::MessageArrived(msg(9, 2, "dave", "new")));
    assert_eq!(
        effects,
        vec![Effect::MarkRead {
            conversation_id: 2,
            up_to: 9
        }]
    );
    assert_eq!(app.total_unread(), 0);
}

#[test]
fn others_receipts_are_kept_per_reader() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(2, ConversationKind::Group, "team", 0, T0)]),
    );
    for (reader, up_to) in [("bob", 7), ("carol", 9), ("bob", 5), ("alice", 20)] {
        net(
            &mut app,
            NetEvent::ReadReceipt {
                conversation_id: 2,
                reader: reader.into(),
                up_to,
            },
        );
    }
    let team = app.conversations.get(&ConvKey::Id(2)).unwrap();
    // A receipt never moves a reader back; our own is not "seen".
    assert_eq!(team.seen_by(7), vec!["bob", "carol"]);
    assert_eq!(team.seen_by(8), vec!["carol"]);
    assert!(team.seen_by(10).is_empty());
}

#[test]
fn n_opens_the_next_conversation_with_unread_messages() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0 + 30),
            conv(2, ConversationKind::Group, "team", 0, T0 + 20),
            conv(3, ConversationKind::Direct, "carol", 4, T0 + 10),
        ]),
    );
    assert_eq!(app.conversations.open_index(), Some(0));
    let effects = press(&mut app, KeyCode::Char('n'));
    assert_eq!(
        effects,
        vec![Effect::LoadHistory {
            conversation_id: 3,
            before: 0
        }]
    );
    assert_eq!(app.conversations.open_index(), Some(2));
    // Nothing else is unread: it says so and stays.
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert_eq!(app.conversations.open_index(), Some(2));
    assert!(app.notice.is_some());
}

#[test]
fn new_messages_do_not_move_a_scrolled_back_view() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    let history: Vec<_> = (1..=5)
        .map(|i| msg(i, 1, "bob", &format!("m{i}")))
        .collect();
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: history,
            more: false,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Tab); // to messages
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('k'));
    let anchor = app.view.anchor;
    assert_eq!(anchor, Some(EntryKey::Server(3)));

    let effects = net(&mut app, NetEvent::MessageArrived(msg(6, 1, "bob", "m6")));
    assert_eq!(app.view.anchor, anchor, "the view stays where the user is");
    assert!(effects.is_empty(), "unseen messages are not marked read");
    assert_eq!(app.total_unread(), 1);

    let effects = press(&mut app, KeyCode::Char('G'));
    assert_eq!(
        effects,
        vec![Effect::MarkRead {
            conversation_id: 1,
            up_to: 6
        }]
    );
    assert_eq!(app.total_unread(), 0);
}

// ------------------------------------------------------------------ accounts, groups, deletion

#[test]
fn accounts_browser_pages_and_starts_a_direct_conversation() {
    let mut app = signed_in();
    net(&mut app, NetEvent::Conversations(vec![]));
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(app.contexts()[0], Context::AccountsSearch);
    type_text(&mut app, "b*");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![
            Effect::ListAccounts {
                pattern: "b*".into(),
                after: "".into(),
                limit: 10
            },
            Effect::CountAccounts {
                pattern: "b*".into()
            }
        ]
    );
    // A count for another pattern (an earlier search) is not taken.
    for (pattern, count) in [("*", 60), ("b*", 2)] {
        net(
            &mut app,
            NetEvent::AccountCount {
                pattern: pattern.into(),
                count: Some(count),
                complete: true,
            },
        );
    }
    let Some(Overlay::Accounts(browser)) = &app.overlay else {
        panic!("the browser is open");
    };
    assert_eq!(browser.total, Some((2, true)));
    let bob = AccountInfo {
        username: "bob".into(),
        online: true,
        last_seen_ms: T0,
    };
    net(
        &mut app,
        NetEvent::Accounts {
            pattern: "b*".into(),
            after: "".into(),
            accounts: vec![bob.clone()],
            next_after: "bob".into(),
        },
    );
    assert_eq!(app.contexts()[0], Context::AccountsList);
    let effects = press(&mut app, KeyCode::Char('n'));
    assert_eq!(
        effects,
        vec![Effect::ListAccounts {
            pattern: "b*".into(),
            after: "bob".into(),
            limit: 10
        }]
    );
    let Some(Overlay::Accounts(browser)) = &app.overlay else {
        panic!("the browser is open");
    };
    assert_eq!(browser.first_shown(), 1, "page 2 starts after bob");
    assert_eq!(browser.total, Some((2, true)), "paging keeps the count");
    // A stale reply for page 1 is ignored.
    net(
        &mut app,
        NetEvent::Accounts {
            pattern: "b*".into(),
            after: "".into(),
            accounts: vec![],
            next_after: "".into(),
        },
    );
    press(&mut app, KeyCode::Char('p'));
    net(
        &mut app,
        NetEvent::Accounts {
            pattern: "b*".into(),
            after: "".into(),
            accounts: vec![bob],
            next_after: "".into(),
        },
    );

    press(&mut app, KeyCode::Enter);
    assert!(app.overlay.is_none());
    assert_eq!(
        app.conversations.open,
        Some(ConvKey::NewDirect("bob".into()))
    );
    let effects = send(&mut app, "hi bob");
    assert!(
        matches!(&effects[..], [Effect::SaveOutbox { .. }, Effect::Send { to: SendTo::User(u), .. }] if u == "bob"),
        "{effects:?}"
    );
    let effects = net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(3, 9, "alice", "hi bob"),
        },
    );
    assert!(effects.contains(&Effect::LoadConversations));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(9)));
    assert_eq!(
        entries(&app),
        vec![("hi bob".into(), Some(Delivery::Committed), false)]
    );
    // The conversation is real now: its history is fetched, and bob's
    // reply, on screen, is read (it stayed unread before).
    assert!(effects.contains(&Effect::LoadHistory {
        conversation_id: 9,
        before: 0
    }));
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(9, ConversationKind::Direct, "bob", 0, T0),
            messages: vec![msg(3, 9, "alice", "hi bob")],
            more: false,
            before: 0,
        },
    );
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(4, 9, "bob", "hi alice")),
    );
    assert!(effects.contains(&Effect::MarkRead {
        conversation_id: 9,
        up_to: 4
    }));
    assert_eq!(app.conversations.total_unread(), 0);
}

#[test]
fn a_group_is_created_from_marked_accounts() {
    let mut app = signed_in();
    press(&mut app, KeyCode::Char('a'));
    net(
        &mut app,
        NetEvent::Accounts {
            pattern: "".into(),
            after: "".into(),
            accounts: ["bob", "carol"]
                .map(|u| AccountInfo {
                    username: u.into(),
                    online: false,
                    last_seen_ms: 0,
                })
                .to_vec(),
            next_after: "".into(),
        },
    );
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char(' '));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char(' '));
    press(&mut app, KeyCode::Char('g'));
    type_text(&mut app, "team");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::CreateGroup {
            name: "team".into(),
            members: vec!["bob".into(), "carol".into()]
        }]
    );
}

#[test]
fn deleting_own_messages_asks_first() {
    let mut app = chatting();
    send(&mut app, "oops");
    net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(4, 1, "alice", "oops"),
        },
    );
    press(&mut app, KeyCode::Esc); // leave compose: messages pane
    assert_eq!(app.focus, Focus::Messages);
    assert!(press(&mut app, KeyCode::Char('d')).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    let effects = press(&mut app, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::DeleteMessages {
            message_ids: vec![4]
        }]
    );
    net(
        &mut app,
        NetEvent::MessagesDeleted {
            conversation_id: 1,
            message_ids: vec![4],
        },
    );
    assert!(entries(&app).is_empty());
}

#[test]
fn deleting_the_account_needs_the_password() {
    let mut app = signed_in();
    press(&mut app, KeyCode::Char('X'));
    type_text(&mut app, "pw");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::DeleteAccount {
            password: "pw".into()
        }]
    );
    net(
        &mut app,
        NetEvent::Failed {
            op: "delete account".into(),
            error: NetError::new(ErrorKind::Unauthenticated, "wrong password"),
        },
    );
    assert!(
        matches!(&app.overlay, Some(Overlay::Prompt(p)) if p.error.as_deref() == Some("Wrong password."))
    );
    let effects = net(&mut app, NetEvent::AccountDeleted);
    // The user's files are let go (nothing was saved in them here).
    assert_eq!(effects, vec![Effect::CloseSaved, Effect::Logout]);
    assert_eq!(app.screen, Screen::SignIn);
    // The dying stream of the deleted session changes nothing.
    net(
        &mut app,
        NetEvent::SubscriptionFailed(NetError::new(ErrorKind::Unauthenticated, "gone")),
    );
    assert_eq!(
        app.sign_in.info.as_deref(),
        Some("Your account was deleted.")
    );
}

#[test]
fn quit_keys_work_but_q_types_in_compose() {
    let mut app = chatting();
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.should_quit);
    assert_eq!(app.compose.lines(), ["q"]);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('q'));
    assert!(app.should_quit);

    let mut app = new_app();
    press_mod(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.should_quit);
}

#[test]
fn a_session_ended_elsewhere_keeps_what_was_typed_for_the_next_sign_in() {
    let mut app = chatting();
    let (_, request_id, _) = sends(&send(&mut app, "in flight")).remove(0);
    type_text(&mut app, "half a thought");
    // The send comes back refused: the session ended (a password change).
    let local_id = app.outbox.front_local_id().unwrap();
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id,
            error: NetError::new(ErrorKind::Unauthenticated, "session expired"),
        },
    );
    assert_eq!(app.screen, Screen::SignIn);
    let info = app.sign_in.info.clone().unwrap();
    assert!(info.contains("session ended"), "{info}");
    assert!(info.contains("1 message waiting"), "{info}");
    assert!(app.outbox.is_empty());

    // The same user signs in again: the message goes out with its request
    // id, and the draft is back.
    type_text(&mut app, "pw");
    press(&mut app, KeyCode::Enter);
    let effects = net(
        &mut app,
        NetEvent::SignedIn {
            username: "Alice".into(),
        },
    );
    let resent = sends(&effects);
    assert_eq!(resent.len(), 1, "{effects:?}");
    assert_eq!(resent[0].1, request_id);
    assert_eq!(resent[0].2, "in flight");
    // The draft is back in its conversation's compose box.
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    assert_eq!(app.compose_body(), "half a thought");

    // Another user's sign-in after a stream ended does not inherit them.
    let mut app = chatting();
    send(&mut app, "mine only");
    net(
        &mut app,
        NetEvent::SubscriptionFailed(NetError::new(ErrorKind::Unauthenticated, "gone")),
    );
    assert_eq!(app.screen, Screen::SignIn);
    let effects = net(
        &mut app,
        NetEvent::SignedIn {
            username: "mallory".into(),
        },
    );
    assert!(sends(&effects).is_empty());
    assert!(app.outbox.is_empty());
}

#[test]
fn up_on_an_empty_compose_box_edits_the_last_own_message() {
    let mut app = chatting();
    press(&mut app, KeyCode::Up);
    assert_eq!(app.compose_body(), "", "nothing written here yet");
    assert_eq!(app.compose_mode, None);
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "alice", "helo wrold")),
    );
    net(
        &mut app,
        NetEvent::MessageArrived(msg(6, 1, "bob", "what?")),
    );
    // Not sent yet: not the one to edit.
    send(&mut app, "pending");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.compose_body(), "helo wrold");
    assert!(matches!(
        app.compose_mode,
        Some(ComposeMode::Editing { message_id: 5, .. })
    ));
    // With text in the box, Up is a cursor move.
    press_mod(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "x");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.compose_body(), "helo wrold\nx");
}

#[test]
fn editing_sends_the_new_text_and_the_edit_event_updates_in_place() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "alice", "helo")),
    );
    net(&mut app, NetEvent::MessageArrived(msg(6, 1, "bob", "hi")));
    type_text(&mut app, "half a draft");
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.focus, Focus::Messages);
    // e on bob's message: refused, nothing changes.
    press(&mut app, KeyCode::Char('e'));
    assert_eq!(app.compose_mode, None);
    assert!(app.notice.as_ref().is_some_and(|n| n.is_error));
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('e'));
    assert_eq!(app.focus, Focus::Compose);
    assert_eq!(app.compose_body(), "helo");
    // The draft set aside is still the conversation's draft.
    assert_eq!(app.current_drafts()[0].text, "half a draft");
    press_mod(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    type_text(&mut app, "hello");
    let effects = press(&mut app, KeyCode::Enter);
    let edits: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::EditMessage {
                message_id, body, ..
            } => Some((*message_id, body.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(edits, vec![(5, "hello".to_string())]);
    assert!(sends(&effects).is_empty());
    assert_eq!(app.compose_mode, None);
    assert_eq!(app.compose_body(), "half a draft", "the draft is back");
    let entry = |app: &App, id: u64| {
        app.conversations
            .open()
            .and_then(|c| c.log.find_id(id))
            .cloned()
            .expect("entry")
    };
    assert_eq!(entry(&app, 5).text(), "hello", "shown while being saved");
    // The edited event (ours, and later bob's own) updates in place.
    let edited = Message {
        edited_at_ms: T0 + 60_000,
        ..msg(5, 1, "alice", "hello")
    };
    net(&mut app, NetEvent::MessageChanged(edited.clone()));
    net(&mut app, NetEvent::EditSaved(edited));
    let five = entry(&app, 5);
    assert_eq!(
        (five.body.as_str(), five.edit_pending.clone()),
        ("hello", None)
    );
    assert_eq!(five.edited_at_ms, T0 + 60_000);
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            edited_at_ms: T0 + 70_000,
            ..msg(6, 1, "bob", "hi there")
        }),
    );
    assert_eq!(entry(&app, 6).body, "hi there");
    let bodies: Vec<String> = entries(&app).into_iter().map(|e| e.0).collect();
    assert_eq!(bodies, vec!["hello", "hi there"], "same places");
    // An older edit arriving late does not undo a newer one.
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            edited_at_ms: T0 + 65_000,
            ..msg(6, 1, "bob", "hi th")
        }),
    );
    assert_eq!(entry(&app, 6).body, "hi there");
}

#[test]
fn a_refused_edit_keeps_its_text_for_the_next_try() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "alice", "old")),
    );
    press(&mut app, KeyCode::Up);
    press_mod(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    type_text(&mut app, "new words");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::EditFailed {
            message_id: 5,
            body: "new words".into(),
            error: NetError::new(ErrorKind::PermissionDenied, "too late to edit"),
        },
    );
    let notice = app.notice.clone().expect("a notice");
    assert!(
        notice.is_error && notice.text.contains("too late to edit"),
        "{notice:?}"
    );
    assert_eq!(entries(&app)[0].0, "old", "the old text is shown again");
    // e (here: Up on the empty box) brings the refused text back.
    press(&mut app, KeyCode::Up);
    assert_eq!(app.compose_body(), "new words");

    // The message deleted meanwhile: the text stays, as a draft.
    net(
        &mut app,
        NetEvent::MessagesDeleted {
            conversation_id: 1,
            message_ids: vec![5],
        },
    );
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.compose_mode, None);
    assert_eq!(app.compose_body(), "new words");
    assert!(app.notice.as_ref().is_some_and(|n| n.is_error));
}

#[test]
fn esc_cancels_a_reply_and_an_edit_restores_the_draft() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "bob", "lunch?")),
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('R'));
    assert_eq!(app.focus, Focus::Compose);
    assert!(matches!(
        app.compose_mode,
        Some(ComposeMode::Replying { message_id: 5, .. })
    ));
    type_text(&mut app, "sure");
    // Esc: no longer a reply; the text stays, and so does the box.
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.compose_mode, None);
    assert_eq!(app.focus, Focus::Compose);
    assert_eq!(app.compose_body(), "sure");
    let effects = press(&mut app, KeyCode::Enter);
    assert!(matches!(
        effects.iter().find(|e| matches!(e, Effect::Send { .. })),
        Some(Effect::Send { reply_to: 0, .. })
    ));

    // A reply that is sent carries reply_to, on disk too.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('g'));
    press(&mut app, KeyCode::Char('R'));
    type_text(&mut app, "yes!");
    let effects = press(&mut app, KeyCode::Enter);
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::SaveOutbox { messages, .. }
                if messages.iter().any(|m| m.body == "yes!" && m.reply_to == 5)
        )),
        "{effects:?}"
    );
    assert_eq!(app.compose_mode, None);
}

#[test]
fn a_reaction_is_picked_and_toggled_and_shown_from_the_event() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "bob", "ship it")),
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('+'));
    assert!(matches!(app.overlay, Some(Overlay::React(_))));
    press(&mut app, KeyCode::Right);
    press(&mut app, KeyCode::Right);
    press(&mut app, KeyCode::Right);
    let effects = press(&mut app, KeyCode::Enter);
    assert!(app.overlay.is_none());
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::React { message_id: 5, emoji, .. } if emoji == "🎉"
        )),
        "{effects:?}"
    );
    // Free input; a space is refused by the picker itself.
    press(&mut app, KeyCode::Char('+'));
    type_text(&mut app, "a b");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(matches!(&app.overlay, Some(Overlay::React(p)) if p.error.is_some()));
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    net(
        &mut app,
        NetEvent::MessageChanged(Message {
            reactions: vec![crate::model::Reaction {
                emoji: "🎉".into(),
                users: vec!["alice".into(), "bob".into()],
            }],
            ..msg(5, 1, "bob", "ship it")
        }),
    );
    let entry = app.cursor_entry().expect("entry");
    assert_eq!(entry.reactions.len(), 1);
    assert_eq!(entry.reactions[0].users.len(), 2);
}

#[test]
fn a_mention_in_a_group_alerts_even_in_the_open_conversation() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(2, ConversationKind::Group, "team", 0, T0)]),
    );
    assert_eq!(app.conversations.open, Some(ConvKey::Id(2)));
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 2, "bob", "lunch anyone?")),
    );
    assert!(!effects.contains(&Effect::Bell), "{effects:?}");
    app.config.notify = crate::config::Notify::Osc9;
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(6, 2, "bob", "@Alice, lunch?")),
    );
    assert!(effects.contains(&Effect::Bell), "{effects:?}");
    assert!(
        effects.contains(&Effect::Notify {
            how: crate::config::Notify::Osc9,
            title: "raftchat".into(),
            body: "bob mentioned you in #team".into(),
        }),
        "{effects:?}"
    );
    // The sidebar marks the conversation until the mention is read.
    let team = |app: &App| {
        app.conversations
            .get(&ConvKey::Id(2))
            .cloned()
            .expect("team")
    };
    assert!(team(&app).mentioned_unread());
    // Not a mention: inside a word, or a longer name.
    for (id, body) in [
        (7, "mail alice@alice.org"),
        (8, "@alice_b hi"),
        (9, "@alicex"),
    ] {
        let effects = net(&mut app, NetEvent::MessageArrived(msg(id, 2, "bob", body)));
        assert!(!effects.contains(&Effect::Bell), "{body}: {effects:?}");
    }
    net(
        &mut app,
        NetEvent::ReadReceipt {
            conversation_id: 2,
            reader: "alice".into(),
            up_to: 6,
        },
    );
    assert!(!team(&app).mentioned_unread(), "{:?}", team(&app));
    // Our own message naming us is no call for us.
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(10, 2, "alice", "@alice")),
    );
    assert!(!effects.contains(&Effect::Bell), "{effects:?}");
}

#[test]
fn mentions_are_word_bounded_and_case_insensitive() {
    for yes in ["@alice", "hi @ALICE!", "(@alice)", "@alice.", "ok,@alice's"] {
        assert!(mentions(yes, "alice"), "{yes}");
    }
    for no in [
        "alice", "x@alice", "@alicex", "@alice.x", "@ali", "@", "@aliceé",
    ] {
        assert!(!mentions(no, "alice"), "{no}");
    }
    assert!(mentions("@bob- hi", "bob-"));
    assert!(!mentions("@alice", ""));
}

#[test]
fn ctrl_z_asks_to_suspend_even_while_typing() {
    let mut app = chatting();
    type_text(&mut app, "half");
    assert!(press_mod(&mut app, KeyCode::Char('z'), KeyModifiers::CONTROL).is_empty());
    assert!(app.suspend_requested);
    assert_eq!(app.compose_body(), "half", "the draft stays");
    let mut app = new_app();
    press_mod(&mut app, KeyCode::Char('z'), KeyModifiers::CONTROL);
    assert!(app.suspend_requested);
}

#[test]
fn logout_returns_to_sign_in_and_drops_the_session() {
    let mut app = chatting();
    send(&mut app, "pending");
    press(&mut app, KeyCode::Esc);
    assert!(press(&mut app, KeyCode::Char('L')).is_empty());
    assert!(matches!(
        app.overlay,
        Some(Overlay::Confirm(ConfirmKind::Logout { waiting: 1 }))
    ));
    // Yes: signed out; the waiting message stays saved (no empty outbox
    // is written over it).
    let effects = press(&mut app, KeyCode::Char('y'));
    // ...and let go for another chat-tui of alice.
    assert_eq!(effects, vec![Effect::CloseSaved, Effect::Logout]);
    assert_eq!(app.screen, Screen::SignIn);
    assert!(app.outbox.is_empty());
    assert!(app.conversations.list.is_empty());
}

#[test]
fn a_first_message_from_a_stranger_opens_and_counts_once() {
    let mut app = signed_in();
    net(&mut app, NetEvent::Conversations(vec![]));
    // The membership event carries the recipient's view after the message.
    let mut info = conv(5, ConversationKind::Direct, "carol", 1, T0 + 1000);
    info.last_message_id = 1;
    net(
        &mut app,
        NetEvent::Membership {
            conversation: info,
            user: "carol".into(),
            change: "created".into(),
        },
    );
    net(&mut app, NetEvent::MessageArrived(msg(1, 5, "carol", "hi")));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(5)));
    assert_eq!(app.total_unread(), 1);
}

#[test]
fn replica_reports_override_stale_leader_hints() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Cluster((1..=5).map(|i| report(i, true, 1)).collect()),
    );
    // Every reachable replica lost the leader: show none, whatever the hint.
    net(
        &mut app,
        NetEvent::Cluster((1..=5).map(|i| report(i, i <= 2, 0)).collect()),
    );
    net(
        &mut app,
        NetEvent::Connection(ConnectionState {
            server: "127.0.0.1:7002".into(),
            leader: Some((1, "http://127.0.0.1:7001".into())),
            ..ConnectionState::default()
        }),
    );
    assert_eq!(app.connection.leader, None);
    // A new leader after the election is flagged as a change.
    tick(&mut app, T0 + 5_000);
    net(
        &mut app,
        NetEvent::Cluster((1..=5).map(|i| report(i, true, 3)).collect()),
    );
    assert_eq!(app.connection.leader.as_ref().map(|l| l.0), Some(3));
    assert_eq!(app.link_state(), LinkState::LeaderChanged);
}

#[test]
fn the_mouse_wheel_scrolls_the_messages() {
    use crossterm::event::{MouseEvent, MouseEventKind};
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: (1..=9).map(|i| msg(i, 1, "bob", "x")).collect(),
            more: false,
            before: 0,
        },
    );
    let wheel = |kind| {
        AppEvent::Mouse(MouseEvent {
            kind,
            column: 40,
            row: 10,
            modifiers: KeyModifiers::NONE,
        })
    };
    app.update(wheel(MouseEventKind::ScrollUp));
    assert_eq!(app.view.anchor, Some(EntryKey::Server(6)));
    app.update(wheel(MouseEventKind::ScrollDown));
    assert_eq!(
        app.view.anchor, None,
        "back at the bottom: follow new messages"
    );
}

/// Someone writes to us first: the server announces the new direct
/// conversation with a membership event before the message, so the
/// conversation is known when the message arrives. Its peer's presence
/// must still be looked up (the sidebar showed `·`, unknown, for good).
#[test]
fn presence_is_looked_up_for_a_conversation_someone_else_started() {
    let mut app = signed_in();
    net(&mut app, NetEvent::Conversations(vec![]));
    let effects = net(
        &mut app,
        NetEvent::Membership {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            user: "bob".into(),
            change: "created".into(),
        },
    );
    assert!(
        effects.contains(&Effect::LookupPresence {
            usernames: vec!["bob".into()]
        }),
        "{effects:?}"
    );
    net(&mut app, NetEvent::MessageArrived(msg(1, 1, "bob", "hi")));
    net(
        &mut app,
        NetEvent::Presences(vec![AccountInfo {
            username: "bob".into(),
            online: true,
            last_seen_ms: T0,
        }]),
    );
    assert!(app.presence["bob"].online);
    // Known now: no second lookup.
    let effects = net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::LookupPresence { .. })),
        "{effects:?}"
    );
}

/// On the sign-in screen no call of our own has been made yet; once the
/// status poll shows a majority with a leader the status line must say
/// connected, not spin on "connecting" for as long as the screen is up.
#[test]
fn a_healthy_status_poll_means_connected_before_signing_in() {
    let mut app = new_app();
    assert_eq!(app.link_state(), LinkState::Connecting);
    net(
        &mut app,
        NetEvent::Cluster((1..=5).map(|i| report(i, true, 1)).collect()),
    );
    assert_eq!(app.screen, Screen::SignIn);
    assert_eq!(app.link_state(), LinkState::Connected);
    // No majority answers: no quorum, not connected.
    net(
        &mut app,
        NetEvent::Cluster((1..=5).map(|i| report(i, i <= 2, 1)).collect()),
    );
    assert_eq!(app.link_state(), LinkState::NoQuorum);
}

// ------------------------------------------------------------------ kept on disk

fn queued(request_id: &str, to: SendTo, body: &str) -> QueuedMessage {
    QueuedMessage {
        request_id: request_id.into(),
        to,
        body: body.into(),
        reply_to: 0,
    }
}

#[test]
fn a_message_is_saved_before_it_is_sent() {
    let mut app = chatting();
    let effects = send(&mut app, "a");
    assert_eq!(
        effects,
        vec![
            Effect::SaveOutbox {
                user: "alice".into(),
                messages: vec![queued("rq-1", SendTo::Conversation(1), "a")],
            },
            Effect::Send {
                local_id: 1,
                request_id: "rq-1".into(),
                to: SendTo::Conversation(1),
                body: "a".into(),
                reply_to: 0,
            },
        ],
        "saved first, then sent"
    );
    // A retry changes nothing on disk.
    let effects = net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: unavailable(),
        },
    );
    assert!(saves(&effects).is_empty(), "{effects:?}");
    // Committed: it leaves the saved outbox.
    let effects = net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(10, 1, "alice", "a"),
        },
    );
    assert_eq!(
        saves(&effects),
        vec![&Effect::SaveOutbox {
            user: "alice".into(),
            messages: vec![],
        }]
    );
}

/// A fresh sign-in has an empty outbox until the saved one is read: saving
/// it then would erase what an earlier run left.
#[test]
fn nothing_is_saved_before_the_saved_state_is_read_back() {
    let mut app = new_app();
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
    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0)]),
    );
    press(&mut app, KeyCode::Char('i'));
    let effects = send(&mut app, "typed early");
    assert!(saves(&effects).is_empty(), "{effects:?}");
    // Read back: the old message goes first (it was typed first), and
    // both are saved.
    let effects = app.update(AppEvent::Store(loaded(
        vec![queued("old-1", SendTo::Conversation(1), "from before")],
        vec![],
    )));
    assert_eq!(
        saves(&effects),
        vec![&Effect::SaveOutbox {
            user: "alice".into(),
            messages: vec![
                queued("rq-1", SendTo::Conversation(1), "typed early"),
                queued("old-1", SendTo::Conversation(1), "from before"),
            ],
        }]
    );
}

#[test]
fn messages_an_earlier_run_left_are_sent_in_order_with_their_request_ids() {
    let mut app = new_app();
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
    let effects = app.update(AppEvent::Store(loaded(
        vec![
            queued("old-1", SendTo::Conversation(1), "first"),
            queued("old-2", SendTo::User("carol".into()), "second"),
        ],
        vec![Draft {
            to: SendTo::Conversation(1),
            text: "half a thought".into(),
        }],
    )));
    // The head goes out at once, with its original request id; nothing
    // needs saving (the disk has exactly this).
    assert_eq!(sends(&effects), vec![(1, "old-1".into(), "first".into())]);
    assert!(saves(&effects).is_empty(), "{effects:?}");
    assert_eq!(app.notice.as_ref().map(|n| n.is_error), Some(false));
    assert!(app.notice.as_ref().unwrap().text.contains("2 messages"));

    net(
        &mut app,
        NetEvent::Conversations(vec![conv(1, ConversationKind::Direct, "bob", 0, T0 - 1)]),
    );
    // Each shows in its conversation; carol's is a new direct one.
    let conv1 = app.conversations.get(&ConvKey::Id(1)).unwrap();
    assert_eq!(conv1.log.entries[0].body, "first");
    assert_eq!(conv1.log.entries[0].delivery, Some(Delivery::Accepted));
    let carol = app
        .conversations
        .get(&ConvKey::NewDirect("carol".into()))
        .unwrap();
    assert_eq!(carol.log.entries[0].delivery, Some(Delivery::Queued));
    // Opening bob's brings its draft back.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.conversations.open, Some(ConvKey::Id(1)));
    assert_eq!(app.compose_body(), "half a thought");

    let effects = net(
        &mut app,
        NetEvent::Sent {
            local_id: 1,
            message: msg(7, 1, "alice", "first"),
        },
    );
    assert_eq!(sends(&effects), vec![(2, "old-2".into(), "second".into())]);
}

#[test]
fn drafts_stay_with_their_conversation_and_are_saved_while_typing() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0),
            conv(2, ConversationKind::Direct, "carol", 0, T0 - 1),
        ]),
    );
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "for bob");
    // The first change is saved at once; more typing right after waits.
    tick(&mut app, T0 + 1);
    // To carol's: an empty box, bob's text kept.
    press(&mut app, KeyCode::Esc);
    press_mod(&mut app, KeyCode::BackTab, KeyModifiers::SHIFT);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('i'));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(2)));
    assert_eq!(app.compose_body(), "");
    type_text(&mut app, "for carol");
    let later = tick(&mut app, T0 + DRAFT_SAVE_MS + 1);
    assert_eq!(
        saves(&later),
        vec![&Effect::SaveDrafts {
            user: "alice".into(),
            drafts: vec![
                Draft {
                    to: SendTo::Conversation(1),
                    text: "for bob".into()
                },
                Draft {
                    to: SendTo::Conversation(2),
                    text: "for carol".into()
                },
            ],
        }]
    );
    press(&mut app, KeyCode::Esc);
    press_mod(&mut app, KeyCode::BackTab, KeyModifiers::SHIFT);
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.compose_body(), "for bob");
}

#[test]
fn drafts_are_saved_at_most_every_half_second_while_typing() {
    let mut app = chatting();
    let mut draft_saves = 0;
    // The last save (reading back at sign-in) was at T0.
    for (i, c) in "hello".chars().enumerate() {
        tick(&mut app, T0 + DRAFT_SAVE_MS + 100 * i as u64);
        let effects = press(&mut app, KeyCode::Char(c));
        draft_saves += saves(&effects).len();
    }
    assert_eq!(draft_saves, 1, "the first key only");
    // The rest goes with the next tick due.
    let effects = tick(&mut app, T0 + 2 * DRAFT_SAVE_MS + 400);
    assert_eq!(
        saves(&effects),
        vec![&Effect::SaveDrafts {
            user: "alice".into(),
            drafts: vec![Draft {
                to: SendTo::Conversation(1),
                text: "hello".into()
            }],
        }]
    );
}

#[test]
fn quit_with_waiting_messages_asks_first() {
    let mut app = chatting();
    send(&mut app, "a");
    net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: unavailable(),
        },
    );
    type_text(&mut app, "unsent draft");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('q'));
    assert!(!app.should_quit);
    assert!(matches!(
        app.overlay,
        Some(Overlay::Confirm(ConfirmKind::Quit { waiting: 1 }))
    ));
    // No: stay.
    press(&mut app, KeyCode::Char('n'));
    assert!(app.overlay.is_none() && !app.should_quit);
    // Ctrl-C asks too; Ctrl-C again quits, and the draft is saved at once.
    press_mod(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(!app.should_quit);
    let effects = press_mod(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.should_quit);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::SaveDrafts { drafts, .. }
            if drafts.iter().any(|d| d.text == "unsent draft"))),
        "{effects:?}"
    );
    // y confirms as well.
    let mut app = chatting();
    send(&mut app, "b");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('q'));
    press(&mut app, KeyCode::Char('y'));
    assert!(app.should_quit);
}

#[test]
fn a_deleted_account_forgets_what_it_had_saved() {
    let mut app = chatting();
    send(&mut app, "never to be sent");
    type_text(&mut app, "draft");
    assert_eq!(saves(&tick(&mut app, T0 + 1_000)).len(), 1, "the draft");
    let effects = net(&mut app, NetEvent::AccountDeleted);
    assert!(effects.contains(&Effect::SaveOutbox {
        user: "alice".into(),
        messages: vec![],
    }));
    assert!(effects.contains(&Effect::SaveDrafts {
        user: "alice".into(),
        drafts: vec![],
    }));
}

#[test]
fn files_that_could_not_be_read_are_reported() {
    let mut app = signed_in();
    app.update(AppEvent::Store(StoreEvent::Loaded {
        user: "alice".into(),
        outbox: vec![],
        drafts: vec![],
        problems: vec!["/x/outbox.json could not be used (not valid); set aside".into()],
        available: true,
    }));
    let notice = app.notice.clone().unwrap();
    assert!(
        notice.is_error && notice.text.contains("set aside"),
        "{notice:?}"
    );
}

// ------------------------------------------------------------------ mouse

fn click(app: &mut App, column: u16, row: u16) -> Vec<Effect> {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    app.update(AppEvent::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }))
}

#[test]
fn a_click_on_a_conversation_opens_it_and_a_click_on_a_pane_focuses_it() {
    let mut app = signed_in();
    app.update(AppEvent::Resize {
        width: 100,
        height: 30,
    });
    let list: Vec<ConversationInfo> = (1..=40)
        .map(|i| conv(i, ConversationKind::Direct, &format!("u{i}"), 0, T0 - i))
        .collect();
    net(&mut app, NetEvent::Conversations(list));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(1)));
    // Row 0 is the border; row 3 is the third conversation.
    let effects = click(&mut app, 5, 3);
    assert_eq!(app.conversations.open, Some(ConvKey::Id(3)));
    assert_eq!(app.focus, Focus::Messages);
    assert!(effects.contains(&Effect::LoadHistory {
        conversation_id: 3,
        before: 0
    }));
    // Below the last row of the list, on the border: nothing opens.
    click(&mut app, 5, 27);
    assert_eq!(app.conversations.open, Some(ConvKey::Id(3)));
    assert_eq!(app.focus, Focus::Sidebar);
    // The list scrolled to keep its cursor in view: a click hits what is
    // drawn there, not the n-th from the top.
    for _ in 0..35 {
        press(&mut app, KeyCode::Char('j'));
    }
    let cursor = app.conversations.cursor_index().unwrap();
    assert_eq!(cursor, 37);
    let rows = 30 - 2 /* status, hints */ - 2 /* borders */;
    // The cursor is on the last row of the list.
    click(&mut app, 5, rows);
    assert_eq!(app.conversations.open, Some(ConvKey::Id(38)));
    // Panes.
    click(&mut app, 60, 28 - 2);
    assert_eq!(app.focus, Focus::Compose);
    click(&mut app, 60, 5);
    assert_eq!(app.focus, Focus::Messages);
}

#[test]
fn mouse_capture_is_switched_by_a_key_and_starts_as_configured() {
    let mut app = chatting();
    assert!(app.mouse_capture);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('M'));
    assert!(!app.mouse_capture);
    assert!(app.notice.as_ref().unwrap().text.contains("selects text"));
    // F3 works while typing too.
    press(&mut app, KeyCode::Char('i'));
    press(&mut app, KeyCode::F(3));
    assert!(app.mouse_capture);
    assert_eq!(app.compose_body(), "");
    let app = App::new(AppConfig {
        mouse: false,
        ..new_app().config
    });
    assert!(!app.mouse_capture);
}

/// A page asks for as many accounts as the browser's list shows.
#[test]
fn account_pages_fill_the_rows_of_the_list() {
    let mut app = signed_in();
    net(&mut app, NetEvent::Conversations(vec![]));
    let limit_at = |app: &mut App, height: u16| {
        app.update(AppEvent::Resize { width: 100, height });
        app.overlay = None;
        match press(app, KeyCode::Char('a')).first() {
            Some(Effect::ListAccounts { limit, .. }) => *limit,
            other => panic!("{other:?}"),
        }
    };
    // 30 rows: 28 for the body, less the box's 9 rows of chrome.
    assert_eq!(limit_at(&mut app, 30), 19);
    assert_eq!(limit_at(&mut app, 60), 40 - 9, "the box is at most 40 high");
    assert_eq!(limit_at(&mut app, 12), 1);
}

// ------------------------------------------------------------------ bell, config

#[test]
fn a_message_outside_the_open_conversation_rings_the_bell() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0),
            conv(2, ConversationKind::Group, "team", 0, T0 - 1),
        ]),
    );
    assert_eq!(app.conversations.open, Some(ConvKey::Id(1)));
    // In the open conversation: no bell.
    let effects = net(&mut app, NetEvent::MessageArrived(msg(5, 1, "bob", "hi")));
    assert!(!effects.contains(&Effect::Bell), "{effects:?}");
    // Elsewhere: the bell; not for one's own message, nor twice for one.
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(6, 2, "carol", "psst")),
    );
    assert!(effects.contains(&Effect::Bell), "{effects:?}");
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(6, 2, "carol", "psst")),
    );
    assert!(!effects.contains(&Effect::Bell), "{effects:?}");
    let effects = net(&mut app, NetEvent::MessageArrived(msg(7, 2, "alice", "me")));
    assert!(!effects.contains(&Effect::Bell), "{effects:?}");

    // Configured: no bell, a desktop notification saying who (not what).
    app.config.bell = false;
    app.config.notify = crate::config::Notify::Osc9;
    let effects = net(
        &mut app,
        NetEvent::MessageArrived(msg(8, 2, "carol", "secret")),
    );
    assert_eq!(
        effects
            .iter()
            .filter(|e| e.is_alert())
            .cloned()
            .collect::<Vec<_>>(),
        vec![Effect::Notify {
            how: crate::config::Notify::Osc9,
            title: "raftchat".into(),
            body: "New message from carol in #team".into(),
        }]
    );
}

/// Keys from the config file are the keys: they act, and help and the
/// hint bar name them.
#[test]
fn overridden_keys_act_and_the_old_ones_do_not() {
    let quit = crate::keys::Chord::parse("Q").unwrap();
    let mut app = App::new(AppConfig {
        keymap: crate::keys::Keymap::with_overrides(&[(Action::Quit, vec![quit])]).unwrap(),
        ..new_app().config
    });
    press_mod(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(!app.should_quit, "^C is not quit any more");
    let mut app = App::new(AppConfig {
        keymap: crate::keys::Keymap::with_overrides(&[(Action::ToggleCluster, vec![quit])])
            .unwrap(),
        ..new_app().config
    });
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
    press(&mut app, KeyCode::Char('c'));
    assert!(!app.show_cluster);
    press_mod(&mut app, KeyCode::Char('Q'), KeyModifiers::SHIFT);
    assert!(app.show_cluster);
}

/// The frame's report of what it showed marks read; one about another
/// conversation (a frame before a switch) does not.
#[test]
fn what_a_frame_showed_is_read() {
    let mut app = signed_in();
    net(
        &mut app,
        NetEvent::Conversations(vec![
            ConversationInfo {
                last_message_id: 3,
                ..conv(1, ConversationKind::Direct, "bob", 3, T0)
            },
            conv(2, ConversationKind::Direct, "carol", 0, T0 - 1),
        ]),
    );
    net(
        &mut app,
        NetEvent::History {
            conversation: ConversationInfo {
                last_message_id: 3,
                ..conv(1, ConversationKind::Direct, "bob", 3, T0)
            },
            messages: (1..=3).map(|i| msg(i, 1, "bob", "x")).collect(),
            more: false,
            before: 0,
        },
    );
    // Opened on the first unread: only it is read.
    assert_eq!(app.total_unread(), 2);
    let effects = app.update(AppEvent::Shown {
        conversation_id: 2,
        up_to: 3,
    });
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(app.total_unread(), 2);
    let effects = app.update(AppEvent::Shown {
        conversation_id: 1,
        up_to: 3,
    });
    assert_eq!(
        effects,
        vec![Effect::MarkRead {
            conversation_id: 1,
            up_to: 3
        }]
    );
    assert_eq!(app.total_unread(), 0);
}

/// A session that ended elsewhere keeps what was unsent on disk as it was:
/// moving it aside for the next sign-in must not save an empty outbox (a
/// `kill -9` on the sign-in screen would then lose it).
#[test]
fn a_session_ended_elsewhere_leaves_the_saved_outbox_and_draft_alone() {
    let mut app = chatting();
    send(&mut app, "in flight");
    type_text(&mut app, "half a thought");
    let effects = net(
        &mut app,
        NetEvent::SendFailed {
            local_id: 1,
            error: NetError::new(ErrorKind::Unauthenticated, "session expired"),
        },
    );
    assert_eq!(app.screen, Screen::SignIn);
    for effect in saves(&effects) {
        match effect {
            Effect::SaveOutbox { messages, .. } => {
                assert_eq!(messages.len(), 1, "{effects:?}");
            }
            Effect::SaveDrafts { drafts, .. } => {
                assert_eq!(drafts.len(), 1, "{effects:?}");
                assert_eq!(drafts[0].text, "half a thought");
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------ typing

/// The conversations the effects tell we are typing in.
fn typing_notices(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Typing { conversation_id } => Some(*conversation_id),
            _ => None,
        })
        .collect()
}

fn typing(app: &mut App, conversation_id: u64, user: &str) -> Vec<Effect> {
    net(
        app,
        NetEvent::Typing {
            conversation_id,
            user: user.into(),
            expires_in_ms: 5_000,
        },
    )
}

#[test]
fn a_typing_notice_shows_until_it_expires() {
    let mut app = chatting();
    assert_eq!(app.typing_label(), None);
    typing(&mut app, 1, "bob");
    assert_eq!(app.typing_label().as_deref(), Some("bob is typing…"));
    // Our own notices (from another device) never show.
    typing(&mut app, 1, "ALICE");
    assert_eq!(app.typing_label().as_deref(), Some("bob is typing…"));
    tick(&mut app, T0 + 4_999);
    assert_eq!(app.typing_label().as_deref(), Some("bob is typing…"));
    tick(&mut app, T0 + 5_000);
    assert_eq!(app.typing_label(), None);
    assert_eq!(app.conversations.open().map(|c| c.typing.len()), Some(0));
    // A notice renews it: 5 s from the last one.
    typing(&mut app, 1, "bob");
    tick(&mut app, T0 + 8_000);
    typing(&mut app, 1, "bob");
    tick(&mut app, T0 + 12_000);
    assert_eq!(app.typing_label().as_deref(), Some("bob is typing…"));
    tick(&mut app, T0 + 13_000);
    assert_eq!(app.typing_label(), None);
    // Notices for a conversation we do not have are dropped.
    typing(&mut app, 99, "mallory");
    assert!(app.conversations.by_id_mut(99).is_none());
}

#[test]
fn a_typists_message_ends_their_notice_and_the_wording_counts_them() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0),
            conv(2, ConversationKind::Group, "team", 0, T0),
        ]),
    );
    app.open_conversation(ConvKey::Id(2));
    typing(&mut app, 2, "bob");
    typing(&mut app, 2, "carol");
    assert_eq!(
        app.typing_label().as_deref(),
        Some("bob and carol are typing…")
    );
    typing(&mut app, 2, "dave");
    assert_eq!(app.typing_label().as_deref(), Some("3 people are typing…"));
    // bob's message: he is done; a message elsewhere changes nothing.
    net(&mut app, NetEvent::MessageArrived(msg(7, 1, "carol", "hi")));
    net(&mut app, NetEvent::MessageArrived(msg(8, 2, "Bob", "done")));
    assert_eq!(
        app.typing_label().as_deref(),
        Some("carol and dave are typing…")
    );
    // Only the open conversation's typists are in its line.
    typing(&mut app, 1, "bob");
    assert_eq!(
        app.typing_label().as_deref(),
        Some("carol and dave are typing…")
    );
    assert_eq!(typing_label(&[]), None);
    assert_eq!(
        typing_label(&["a", "b", "c", "d"]).as_deref(),
        Some("4 people are typing…")
    );
}

#[test]
fn typing_notices_go_out_on_the_first_change_then_at_most_every_3_s() {
    let mut app = chatting();
    let effects = press(&mut app, KeyCode::Char('h'));
    assert_eq!(typing_notices(&effects), vec![1]);
    let effects = press(&mut app, KeyCode::Char('i'));
    assert_eq!(typing_notices(&effects), Vec::<u64>::new());
    tick(&mut app, T0 + 2_999);
    assert!(typing_notices(&press(&mut app, KeyCode::Char('!'))).is_empty());
    tick(&mut app, T0 + 3_000);
    // Moving the cursor is not typing; changing the text is.
    assert!(typing_notices(&press(&mut app, KeyCode::Left)).is_empty());
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Backspace)),
        vec![1]
    );
    tick(&mut app, T0 + 4_000);
    assert!(typing_notices(&app.update(AppEvent::Paste("x".into()))).is_empty());
    tick(&mut app, T0 + 6_000);
    assert_eq!(
        typing_notices(&app.update(AppEvent::Paste(" pasted".into()))),
        vec![1]
    );
    // Sent: nothing about it; the next message starts afresh at once.
    let effects = press(&mut app, KeyCode::Enter);
    assert!(typing_notices(&effects).is_empty(), "{effects:?}");
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('a'))),
        vec![1]
    );
    // Emptied (Ctrl-U), then typed again: at once too.
    press_mod(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    assert_eq!(app.compose_body(), "");
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('b'))),
        vec![1]
    );
    // Nothing goes out for events that are not typing.
    assert!(typing_notices(&tick(&mut app, T0 + 60_000)).is_empty());
    assert!(typing_notices(&net(
        &mut app,
        NetEvent::MessageArrived(msg(9, 1, "bob", "?"))
    ))
    .is_empty());
}

#[test]
fn no_typing_notice_while_editing_or_when_switching_conversations() {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::MessageArrived(msg(5, 1, "alice", "helo")),
    );
    // Editing our message: not typing a new one.
    let effects = press(&mut app, KeyCode::Up);
    assert!(matches!(
        app.compose_mode,
        Some(ComposeMode::Editing { message_id: 5, .. })
    ));
    assert!(typing_notices(&effects).is_empty());
    assert!(typing_notices(&press(&mut app, KeyCode::Char('x'))).is_empty());
    // The hint bar says what Enter does here.
    let hints = app.config.keymap.hints(&app.contexts());
    assert_eq!(
        hints
            .iter()
            .find(|b| b.keys.iter().any(|k| k.code == KeyCode::Enter))
            .map(|b| b.description),
        Some("save")
    );
    // Saved: back to a new message; its first change is a notice.
    assert!(typing_notices(&press(&mut app, KeyCode::Enter)).is_empty());
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('y'))),
        vec![1]
    );
    let hints = app.config.keymap.hints(&app.contexts());
    assert_eq!(hints.first().map(|b| b.description), Some("send"));

    // A reply is a new message: typing it is typing.
    tick(&mut app, T0 + 10_000);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('R'));
    assert!(matches!(
        app.compose_mode,
        Some(ComposeMode::Replying { message_id: 5, .. })
    ));
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('z'))),
        vec![1]
    );

    // Switching brings another draft into the box: that is not typing.
    net(
        &mut app,
        NetEvent::Conversations(vec![
            conv(1, ConversationKind::Direct, "bob", 0, T0),
            conv(2, ConversationKind::Direct, "carol", 0, T0),
        ]),
    );
    tick(&mut app, T0 + 20_000);
    press(&mut app, KeyCode::Tab); // to the sidebar
    let to_carol = app
        .conversations
        .list
        .iter()
        .position(|c| c.name == "carol")
        .and_then(|i| isize::try_from(i).ok())
        .unwrap_or(0)
        - app
            .conversations
            .open_index()
            .and_then(|i| isize::try_from(i).ok())
            .unwrap_or(0);
    app.select_conversation(to_carol);
    let effects = press(&mut app, KeyCode::Char('i'));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(2)));
    assert!(typing_notices(&effects).is_empty());
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('c'))),
        vec![2]
    );
    // Back to bob's, where the draft waits: opening it is not typing;
    // typing there is, less than 3 s after carol's box.
    press(&mut app, KeyCode::Tab);
    app.select_conversation(-to_carol);
    let effects = press(&mut app, KeyCode::Char('i'));
    assert_eq!(app.conversations.open, Some(ConvKey::Id(1)));
    assert_eq!(app.compose_body(), "yz");
    assert!(typing_notices(&effects).is_empty());
    assert_eq!(
        typing_notices(&press(&mut app, KeyCode::Char('!'))),
        vec![1]
    );
}

// ------------------------------------------------------------------ search

fn searches(effects: &[Effect]) -> Vec<(u64, String, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SearchMessages {
                conversation_id,
                query,
                before,
            } => Some((*conversation_id, query.clone(), *before)),
            _ => None,
        })
        .collect()
}

fn found(app: &mut App, query: &str, before: u64, ids: &[u64], more: bool) -> Vec<Effect> {
    net(
        app,
        NetEvent::SearchResults {
            conversation_id: 1,
            query: query.into(),
            before,
            messages: ids
                .iter()
                .map(|id| msg(*id, 1, "bob", &format!("failover {id}")))
                .collect(),
            more,
        },
    )
}

fn panel(app: &App) -> &SearchPanel {
    match &app.overlay {
        Some(Overlay::Search(panel)) => panel,
        other => panic!("no search overlay: {other:?}"),
    }
}

/// Conversation 1 (bob) with messages 100..=102 loaded and older ones on
/// the server; the message pane has the keyboard.
fn chatting_with_history() -> App {
    let mut app = chatting();
    net(
        &mut app,
        NetEvent::History {
            conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
            messages: (100..=102).map(|i| msg(i, 1, "bob", "newer")).collect(),
            more: true,
            before: 0,
        },
    );
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.focus, Focus::Messages);
    app
}

#[test]
fn slash_opens_the_search_and_enter_asks_for_the_first_page() {
    let mut app = chatting_with_history();
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(
        app.contexts(),
        vec![
            crate::keys::Context::SearchQuery,
            crate::keys::Context::Global
        ]
    );
    // Nothing to search for yet: Enter does nothing.
    assert!(searches(&press(&mut app, KeyCode::Enter)).is_empty());
    type_text(&mut app, "FAILover");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(searches(&effects), vec![(1, "FAILover".to_string(), 0)]);
    assert!(panel(&app).loading);
    // An answer for another query is not this one's.
    found(&mut app, "fail", 0, &[90], false);
    assert!(panel(&app).results.is_empty());
    found(&mut app, "FAILover", 0, &[], false);
    assert!(!panel(&app).loading);
    assert!(!panel(&app).list_focused, "nothing to pick");
    // A failure is a notice, and the panel stops waiting.
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::Failed {
            op: "search messages".into(),
            error: NetError::new(ErrorKind::InvalidArgument, "query too short"),
        },
    );
    assert!(!panel(&app).loading);
    let notice = app.notice.clone().expect("a notice");
    assert!(
        notice.is_error && notice.text.contains("query too short"),
        "{notice:?}"
    );
    // Esc closes it.
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    assert_eq!(app.focus, Focus::Messages);
}

#[test]
fn search_results_page_on_at_the_end_of_the_list() {
    let mut app = chatting_with_history();
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "failover");
    press(&mut app, KeyCode::Enter);
    found(&mut app, "failover", 0, &[90, 50], true);
    assert!(panel(&app).list_focused);
    assert_eq!(
        app.contexts(),
        vec![
            crate::keys::Context::SearchResults,
            crate::keys::Context::Global
        ]
    );
    // Onto the last match: the page below it.
    let effects = press(&mut app, KeyCode::Char('j'));
    assert_eq!(searches(&effects), vec![(1, "failover".to_string(), 50)]);
    assert_eq!(panel(&app).selected, 1);
    assert!(searches(&press(&mut app, KeyCode::Down)).is_empty(), "once");
    found(&mut app, "failover", 50, &[40, 20], false);
    let ids: Vec<u64> = panel(&app).results.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![90, 50, 40, 20]);
    for _ in 0..5 {
        assert!(searches(&press(&mut app, KeyCode::Down)).is_empty());
    }
    assert_eq!(panel(&app).selected, 3);
    // A late copy of a page is not added twice.
    found(&mut app, "failover", 50, &[40, 20], false);
    assert_eq!(panel(&app).results.len(), 4);
    // Up past the first match: back to the query.
    for _ in 0..4 {
        press(&mut app, KeyCode::Up);
    }
    assert!(!panel(&app).list_focused);
}

#[test]
fn enter_on_a_match_puts_the_cursor_on_it_loading_older_pages() {
    let mut app = chatting_with_history();
    // Loaded already: the cursor goes there at once.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "newer");
    press(&mut app, KeyCode::Enter);
    found(&mut app, "newer", 0, &[101], false);
    let effects = press(&mut app, KeyCode::Enter);
    assert!(app.overlay.is_none());
    assert_eq!(app.focus, Focus::Messages);
    assert_eq!(app.view.anchor, Some(EntryKey::Server(101)));
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::LoadHistory { .. })));

    // Older than what is loaded: pages below the oldest, until it is there.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "failover");
    press(&mut app, KeyCode::Enter);
    found(&mut app, "failover", 0, &[40], false);
    let effects = press(&mut app, KeyCode::Enter);
    assert!(effects.contains(&Effect::LoadHistory {
        conversation_id: 1,
        before: 100
    }));
    let page = |app: &mut App, ids: std::ops::RangeInclusive<u64>, before| {
        net(
            app,
            NetEvent::History {
                conversation: conv(1, ConversationKind::Direct, "bob", 0, T0),
                messages: ids.map(|i| msg(i, 1, "bob", "older")).collect(),
                more: true,
                before,
            },
        )
    };
    let effects = page(&mut app, 50..=99, 100);
    assert!(effects.contains(&Effect::LoadHistory {
        conversation_id: 1,
        before: 50
    }));
    assert_eq!(app.view.anchor, Some(EntryKey::Server(101)), "not yet");
    let effects = page(&mut app, 1..=49, 50);
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::LoadHistory { .. })));
    assert_eq!(app.view.anchor, Some(EntryKey::Server(40)));
    assert_eq!(app.view.jump_to, None);
    assert_eq!(app.cursor_entry().and_then(|e| e.id), Some(40));

    // Deleted since it was found: said so, the cursor stays.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "gone");
    press(&mut app, KeyCode::Enter);
    net(
        &mut app,
        NetEvent::SearchResults {
            conversation_id: 1,
            query: "gone".into(),
            before: 0,
            messages: vec![msg(77, 1, "bob", "gone")],
            more: false,
        },
    );
    net(
        &mut app,
        NetEvent::MessagesDeleted {
            conversation_id: 1,
            message_ids: vec![77],
        },
    );
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view.jump_to, None);
    assert_eq!(app.cursor_entry().and_then(|e| e.id), Some(40));
    let notice = app.notice.clone().expect("a notice");
    assert!(notice.text.contains("not there any more"), "{notice:?}");
}
