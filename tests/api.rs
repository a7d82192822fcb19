//! The chat API against a real cluster: bad input gets the right status
//! code and a useful message; subscriptions deliver every event exactly once
//! across a replica failure; presence follows subscriptions.

mod common;

use std::time::Duration;

use common::{options, user, Clients, Cluster, Options};
use futures::StreamExt;
use raftchat_client::{ClientError, SubscriptionItem, Target};
use raftchat_proto::event::Kind;
use tonic::Code;

fn expect_code<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: Code,
    what: &str,
) -> String {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e}");
            assert!(!e.message().is_empty(), "{what}: empty message");
            e.message().to_string()
        }
    }
}

/// Clients pinned to replicas `ids`, logged in as a user "watcher" (created
/// here) who shares no conversation with anyone.
async fn watchers(
    cluster: &Cluster,
    ids: &[u64],
) -> std::collections::BTreeMap<u64, raftchat_client::ChatClient> {
    let password = "watcher-password";
    cluster
        .client()
        .create_account("watcher", password)
        .await
        .expect("create watcher");
    let mut out = std::collections::BTreeMap::new();
    for &id in ids {
        let c = cluster.client_on(id);
        c.login("watcher", password).await.expect("watcher login");
        out.insert(id, c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let _carol = user(&cluster, "carol").await;
    let anon = cluster.client();

    // Usernames.
    for bad in [
        "",
        "has space",
        "way-too-long-name-for-this-chat-system",
        "émile",
    ] {
        let msg = expect_code(
            anon.create_account(bad, "long-enough-pw").await,
            Code::InvalidArgument,
            bad,
        );
        assert!(msg.contains("username"), "{msg}");
    }
    expect_code(
        anon.create_account("ALICE", "long-enough-pw").await,
        Code::AlreadyExists,
        "case-insensitive duplicate",
    );

    // Bodies.
    let to_bob = Target::User("bob".into());
    expect_code(
        alice.send(&to_bob, "").await,
        Code::InvalidArgument,
        "empty body",
    );
    let big = "x".repeat(4097);
    let msg = expect_code(
        alice.send(&to_bob, &big).await,
        Code::InvalidArgument,
        "oversized body",
    );
    assert!(msg.contains("4096"), "{msg}");
    alice
        .send(&to_bob, &"x".repeat(4096))
        .await
        .expect("a 4 KiB body is fine");

    // Credentials.
    expect_code(
        anon.login("alice", "wrong").await,
        Code::Unauthenticated,
        "wrong password",
    );
    expect_code(
        anon.login("nobody", "pw").await,
        Code::Unauthenticated,
        "unknown user",
    );

    // Unknown recipient.
    let msg = expect_code(
        alice.send(&Target::User("zed".into()), "hi").await,
        Code::NotFound,
        "unknown recipient",
    );
    assert!(msg.contains("zed"), "{msg}");

    // Reading someone else's conversation.
    let dm = alice
        .send(&to_bob, "private")
        .await
        .unwrap()
        .message
        .unwrap();
    let carol = cluster.client();
    carol.login("carol", "password-carol").await.unwrap();
    expect_code(
        carol
            .history(&Target::Conversation(dm.conversation_id), 0, 10)
            .await,
        Code::PermissionDenied,
        "reading another user's conversation",
    );

    // Deleting someone else's message.
    let msg = expect_code(
        bob.delete_messages(&[dm.id]).await,
        Code::PermissionDenied,
        "deleting another user's message",
    );
    assert!(msg.contains(&dm.id.to_string()), "{msg}");

    // Forged and ended sessions.
    let forged = cluster.client();
    forged.set_token(Some("0".repeat(64)));
    expect_code(
        forged.send(&to_bob, "hi").await,
        Code::Unauthenticated,
        "forged token",
    );
    expect_code(
        forged.list_conversations().await,
        Code::Unauthenticated,
        "forged token read",
    );
    let no_token = cluster.client();
    expect_code(
        no_token.list_conversations().await,
        Code::Unauthenticated,
        "missing token",
    );
    let leaving = cluster.client();
    leaving.login("carol", "password-carol").await.unwrap();
    let stale = leaving.token();
    leaving.logout().await.unwrap();
    leaving.set_token(stale);
    expect_code(
        leaving.send(&to_bob, "hi").await,
        Code::Unauthenticated,
        "logged-out token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_is_refused() {
    let cluster = Cluster::start(Options {
        replicas: 1,
        extra_args: vec!["--session-ttl-secs".into(), "1".into()],
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    alice
        .send(&Target::User("bob".into()), "in time")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let msg = expect_code(
        alice.send(&Target::User("bob".into()), "too late").await,
        Code::Unauthenticated,
        "expired session",
    );
    assert!(msg.contains("expired"), "{msg}");
}

#[test]
fn malformed_flags_name_the_flag() {
    for (args, flag) in [
        (
            vec![
                "--server-id",
                "1",
                "--port",
                "7001",
                "--replica-urls",
                "2-host:1",
            ],
            "--replica-urls",
        ),
        (
            vec![
                "--server-id",
                "1",
                "--port",
                "7001",
                "--replica-urls",
                "2=host",
            ],
            "--replica-urls",
        ),
        (vec!["--server-id", "x", "--port", "7001"], "--server-id"),
        (
            vec![
                "--server-id",
                "1",
                "--port",
                "7001",
                "--election-timeout-ms",
                "300",
            ],
            "--election-timeout-ms",
        ),
    ] {
        let out = std::process::Command::new(raftchat_testkit::bins::path("chatd"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Collects events until `n` message events arrived (or the timeout).
async fn take_events(
    stream: &mut (impl futures::Stream<Item = SubscriptionItem> + Unpin),
    n: usize,
    timeout: Duration,
) -> Vec<raftchat_proto::Event> {
    let mut events = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while events
            .iter()
            .filter(|e: &&raftchat_proto::Event| matches!(e.kind, Some(Kind::Message(_))))
            .count()
            < n
        {
            match stream.next().await {
                Some(SubscriptionItem::Event(e)) => events.push(e),
                Some(SubscriptionItem::Failed(e)) => panic!("subscription failed: {e}"),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    events
}

/// A subscriber whose replica is killed resumes on another one and sees
/// every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_resumes_exactly_once_after_its_replica_dies() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _ = user(&cluster, "bob").await;
    // bob subscribes through a follower, with every replica to fail over to.
    let follower = if leader == 1 { 2 } else { 1 };
    let mut order = vec![cluster.url(follower)];
    order.extend(
        cluster
            .urls()
            .into_iter()
            .filter(|u| *u != cluster.url(follower)),
    );
    let bob = common::client_for(&cluster, order);
    bob.login("bob", "password-bob").await.unwrap();
    let mut stream = Box::pin(bob.subscribe(None));
    // Wait until live.
    loop {
        if let Some(SubscriptionItem::Live { .. }) = stream.next().await {
            break;
        }
    }
    let to_bob = Target::User("bob".into());
    for i in 0..5 {
        alice.send(&to_bob, &format!("m{i}")).await.unwrap();
    }
    cluster.kill(follower);
    for i in 5..10 {
        alice.send(&to_bob, &format!("m{i}")).await.unwrap();
    }
    let events = take_events(&mut stream, 10, Duration::from_secs(20)).await;
    let bodies: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Message(m)) => Some(m.body.clone()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs not increasing: {seqs:?}"
    );
}

/// Presence: online while subscribed, offline after the subscriber leaves;
/// listing accounts shows it on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_subscriptions() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    // Listing accounts needs a login: a second user watches from each replica.
    let observers = watchers(&cluster, &[1, 2, 3]).await;
    let online = |id: u64| {
        let c = observers[&id].clone();
        async move { c.list_accounts("ali*", "", 10).await.unwrap().accounts[0].online }
    };
    assert!(!online(1).await);
    let stream = alice.subscribe(None);
    let mut stream = Box::pin(stream);
    while !matches!(stream.next().await, Some(SubscriptionItem::Live { .. })) {}
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !online(2).await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never came online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while online(3).await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never went offline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accounts = observers[&1]
        .list_accounts("alice", "", 10)
        .await
        .unwrap()
        .accounts;
    assert!(accounts[0].last_seen_ms > 0);
}

/// A user whose only subscription was on a replica that dies goes offline
/// once that replica's presence lease runs out (documented: within ~10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_expires_when_the_replica_holding_it_dies() {
    let mut cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let _ = user(&cluster, "alice").await;
    let holder = if leader == 1 { 2 } else { 1 };
    let pinned = cluster.client_on(holder);
    pinned.login("alice", "password-alice").await.unwrap();
    let mut stream = Box::pin(pinned.subscribe(None));
    while !matches!(stream.next().await, Some(SubscriptionItem::Live { .. })) {}
    let observer = watchers(&cluster, &[leader]).await.remove(&leader).unwrap();
    let online = || async {
        observer
            .list_accounts("alice", "", 1)
            .await
            .unwrap()
            .accounts[0]
            .online
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !online().await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never came online"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.kill(holder);
    let killed = std::time::Instant::now();
    while online().await {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "alice still online 15 s after her replica died"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "went offline before the lease could expire: {took:?}"
    );
    drop(stream);
}

/// A write retried after logging in again, with the same request id,
/// applies once and answers with the original result: duplicates are
/// detected per account, not per session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_logging_in_again_applies_once() {
    use raftchat_proto::chat_client::ChatClient as RawChat;
    use raftchat_proto::{send_message_request::To, SendMessageRequest};

    let cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let mut raw = RawChat::new(cluster.channel(leader));
    let request_id = raftchat_client::new_request_id();
    let send = |token: String| {
        let mut request = tonic::Request::new(SendMessageRequest {
            request_id: request_id.clone(),
            to: Some(To::User("bob".into())),
            body: "exactly once".into(),
            reply_to: 0,
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
        request
    };
    // Until then a new session would be a new scope (the first rules).
    wait_rules_raised(&cluster).await;
    let first = raw
        .send_message(send(alice.token().unwrap()))
        .await
        .unwrap()
        .into_inner();
    alice.logout().await.unwrap();
    alice.login("alice", "password-alice").await.unwrap();
    let again = raw
        .send_message(send(alice.token().unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    let bodies = common::bodies_with(&alice, "bob").await;
    assert_eq!(bodies, vec!["exactly once".to_string()]);
}

/// Waits until a replica has raised the state machine's rules to this
/// release's (it does once a leader is known).
async fn wait_rules_raised(cluster: &Cluster) {
    for _ in 0..100 {
        let raised = cluster.replicas.keys().any(|id| {
            std::fs::read_to_string(cluster.log_path(*id))
                .is_ok_and(|log| log.contains("state machine rules raised"))
        });
        if raised {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no replica raised the state machine's rules within 10 s");
}

/// A password change ends the other sessions' subscriptions at the change:
/// a message written right after it is not delivered to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_the_other_sessions_streams_at_once() {
    let cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    wait_rules_raised(&cluster).await;
    // alice's other device, subscribed.
    let other = cluster.client();
    other.login("alice", "password-alice").await.unwrap();
    let mut stream = Box::pin(other.subscribe(None));
    loop {
        match stream.next().await {
            Some(SubscriptionItem::Live { .. }) => break,
            Some(SubscriptionItem::Failed(e)) => panic!("subscription failed: {e}"),
            Some(_) => {}
            None => panic!("subscription ended before it was live"),
        }
    }
    alice
        .change_password("password-alice", "password-alice-2")
        .await
        .unwrap();
    bob.send(&Target::User("alice".into()), "after the change")
        .await
        .unwrap();
    let mut delivered = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = stream.next().await {
            match item {
                SubscriptionItem::Event(e) => delivered.push(e),
                SubscriptionItem::Failed(e) => return Some(e),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the stream neither ended nor failed within 10 s")
    .expect("the stream ended without saying why");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended}");
    assert!(
        !delivered
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::Message(m)) if m.body == "after the change")),
        "delivered after the session ended: {delivered:?}"
    );
}

/// After the peer deleted their account, the direct conversation stays
/// readable by its id (`id:N`), though the peer's name no longer resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_with_a_deleted_peer_is_read_by_its_id() {
    let cluster = Cluster::start(options());
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let sent = alice
        .send(&Target::User("bob".into()), "before bob left")
        .await
        .unwrap();
    let conversation = sent.message.expect("the stored message").conversation_id;
    bob.delete_account("password-bob").await.unwrap();
    expect_code(
        alice.history(&Target::User("bob".into()), 0, 10).await,
        Code::NotFound,
        "history by the deleted peer's name",
    );
    let by_id: Target = format!("id:{conversation}").parse().unwrap();
    let page = alice.history(&by_id, 0, 10).await.unwrap();
    // What chatctl shows as "bob (deleted)": still named for bob, without
    // bob among the members.
    let info = page.conversation.clone().expect("the conversation");
    assert_eq!(info.name, "bob");
    assert_eq!(info.members, vec!["alice".to_string()]);
    let bodies: Vec<String> = page.messages.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, vec!["before bob left".to_string()]);
}

/// Editing: the author's edit keeps the message's id and place, every
/// replica's history shows the latest text with `edited_at_ms`, the other
/// member's subscription gets an edit event, a retry with the same request
/// id applies once, and bad edits get a clear status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_seen_everywhere_once_and_bad_edits_are_refused() {
    use raftchat_proto::chat_client::ChatClient as RawChat;
    use raftchat_proto::EditMessageRequest;

    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let to_bob = Target::User("bob".into());
    let first = alice.send(&to_bob, "helo").await.unwrap().message.unwrap();
    let second = alice.send(&to_bob, "after").await.unwrap().message.unwrap();
    let reply = bob
        .send(&Target::User("alice".into()), "hi")
        .await
        .unwrap()
        .message
        .unwrap();

    // bob watches through a follower.
    let follower = if leader == 1 { 2 } else { 1 };
    let watcher = cluster.client_on(follower);
    watcher.login("bob", "password-bob").await.unwrap();
    let mut stream = Box::pin(watcher.subscribe(None));
    loop {
        if let Some(SubscriptionItem::Live { .. }) = stream.next().await {
            break;
        }
    }

    // The same request id twice (a retry, after logging in again): one edit.
    wait_rules_raised(&cluster).await;
    let mut raw = RawChat::new(cluster.channel(leader));
    let request_id = raftchat_client::new_request_id();
    let edit = |token: String| {
        let mut request = tonic::Request::new(EditMessageRequest {
            request_id: request_id.clone(),
            message_id: first.id,
            body: "hello".into(),
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii token"),
        );
        request
    };
    let edited = raw
        .edit_message(edit(alice.token().unwrap()))
        .await
        .unwrap()
        .into_inner()
        .message
        .expect("the edited message");
    assert_eq!((edited.id, edited.body.as_str()), (first.id, "hello"));
    assert!(edited.edited_at_ms >= first.sent_ms, "{edited:?}");
    alice.logout().await.unwrap();
    alice.login("alice", "password-alice").await.unwrap();
    let again = raw
        .edit_message(edit(alice.token().unwrap()))
        .await
        .unwrap()
        .into_inner()
        .message
        .expect("the edited message");
    assert_eq!(again, edited);

    // Every replica: same ids in the same order, the latest text, the time.
    for id in cluster.replicas.keys().copied() {
        let on = cluster.client_on(id);
        on.login("bob", "password-bob").await.unwrap();
        let page = on
            .history(&Target::User("alice".into()), 0, 10)
            .await
            .unwrap();
        let seen: Vec<(u64, String, u64)> = page
            .messages
            .iter()
            .rev()
            .map(|m| (m.id, m.body.clone(), m.edited_at_ms))
            .collect();
        assert_eq!(
            seen,
            vec![
                (first.id, "hello".to_string(), edited.edited_at_ms),
                (second.id, "after".to_string(), 0),
                (reply.id, "hi".to_string(), 0),
            ],
            "replica {id}"
        );
    }

    // bob's subscription got exactly one edit event, with the new text.
    alice.send(&to_bob, "marker").await.unwrap();
    let events = take_events(&mut stream, 1, Duration::from_secs(20)).await;
    let edits: Vec<&raftchat_proto::Message> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Edited(m)) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(edits, vec![&edited], "{events:?}");

    // Refused, with a clear status.
    let msg = expect_code(
        bob.edit_message(first.id, "not mine").await,
        Code::PermissionDenied,
        "editing another's message",
    );
    assert!(msg.contains("not yours"), "{msg}");
    expect_code(
        alice.edit_message(second.id, "").await,
        Code::InvalidArgument,
        "an empty body",
    );
    expect_code(
        alice
            .edit_message(
                second.id,
                &"x".repeat(raftchat_proto::contract::MAX_BODY_BYTES + 1),
            )
            .await,
        Code::InvalidArgument,
        "an oversized body",
    );
    alice.delete_messages(&[second.id]).await.unwrap();
    expect_code(
        alice.edit_message(second.id, "back").await,
        Code::NotFound,
        "a deleted message",
    );
    expect_code(
        alice.edit_message(999_999, "x").await,
        Code::NotFound,
        "an unknown message",
    );
    let page = bob
        .history(&Target::User("alice".into()), 0, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3, "{page:?}");
}

/// Replies: `reply_to` names a message of the same conversation and comes
/// back in the reply, the history and the other member's event; another
/// conversation's message or a missing one is refused with a clear status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_names_its_original_and_bad_ones_are_refused() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let _carol = user(&cluster, "carol").await;
    let to_bob = Target::User("bob".into());
    let to_alice = Target::User("alice".into());
    let question = alice
        .send(&to_bob, "lunch?")
        .await
        .unwrap()
        .message
        .unwrap();
    alice
        .create_group("team", &["carol".to_string()])
        .await
        .unwrap();
    let team = Target::Group("team".into());
    let elsewhere = alice.send(&team, "standup").await.unwrap().message.unwrap();

    let mut stream = Box::pin(alice.subscribe(None));
    loop {
        if let Some(SubscriptionItem::Live { .. }) = stream.next().await {
            break;
        }
    }
    let answer = bob
        .send_reply(&to_alice, "yes", question.id)
        .await
        .unwrap()
        .message
        .unwrap();
    assert_eq!(answer.reply_to, question.id);
    let events = take_events(&mut stream, 1, Duration::from_secs(20)).await;
    let got: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Message(m)) => Some(m.reply_to),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![question.id]);
    for id in cluster.replicas.keys().copied() {
        let on = cluster.client_on(id);
        on.login("alice", "password-alice").await.unwrap();
        let page = on.history(&to_bob, 0, 10).await.unwrap();
        let seen: Vec<(u64, u64)> = page.messages.iter().map(|m| (m.id, m.reply_to)).collect();
        assert_eq!(
            seen,
            vec![(answer.id, question.id), (question.id, 0)],
            "replica {id}"
        );
    }
    let msg = expect_code(
        alice.send_reply(&to_bob, "wrong place", elsewhere.id).await,
        Code::InvalidArgument,
        "a reply to another conversation's message",
    );
    assert!(msg.contains("not in this conversation"), "{msg}");
    expect_code(
        alice.send_reply(&to_bob, "to nothing", 999_999).await,
        Code::NotFound,
        "a reply to a missing message",
    );
    // Nothing was sent by the refused replies.
    let page = alice.history(&to_bob, 0, 10).await.unwrap();
    assert_eq!(page.messages.len(), 2);
}

/// Reactions: toggled per user, counted with who reacted in the reply, the
/// history and the other member's event; bad emoji and outsiders refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_toggle_and_reach_history_and_events() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let carol = user(&cluster, "carol").await;
    let to_bob = Target::User("bob".into());
    let m = alice
        .send(&to_bob, "ship it")
        .await
        .unwrap()
        .message
        .unwrap();
    let mut stream = Box::pin(alice.subscribe(None));
    loop {
        if let Some(SubscriptionItem::Live { .. }) = stream.next().await {
            break;
        }
    }
    let counts = |m: &raftchat_proto::Message| -> Vec<(String, Vec<String>)> {
        m.reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.users.clone()))
            .collect()
    };
    let reply = bob.react(m.id, "👍").await.unwrap().message.unwrap();
    assert_eq!(counts(&reply), vec![("👍".into(), vec!["bob".into()])]);
    alice.react(m.id, "👍").await.unwrap();
    let reply = bob.react(m.id, "🎉").await.unwrap().message.unwrap();
    assert_eq!(
        counts(&reply),
        vec![
            ("🎉".into(), vec!["bob".into()]),
            ("👍".into(), vec!["alice".into()])
        ]
    );
    let reply = alice.react(m.id, "👍").await.unwrap().message.unwrap();
    assert_eq!(counts(&reply), vec![("🎉".into(), vec!["bob".into()])]);
    for id in cluster.replicas.keys().copied() {
        let on = cluster.client_on(id);
        on.login("alice", "password-alice").await.unwrap();
        let page = on.history(&to_bob, 0, 10).await.unwrap();
        assert_eq!(page.messages, vec![reply.clone()], "replica {id}");
    }
    alice.send(&to_bob, "marker").await.unwrap();
    let events = take_events(&mut stream, 1, Duration::from_secs(20)).await;
    let reacted: Vec<usize> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Reacted(m)) => Some(m.reactions.len()),
            _ => None,
        })
        .collect();
    assert_eq!(reacted, vec![1, 1, 2, 1], "{events:?}");
    for bad in ["", "a b", "\u{1b}[2J", &"x".repeat(33)] {
        expect_code(alice.react(m.id, bad).await, Code::InvalidArgument, bad);
    }
    expect_code(
        carol.react(m.id, "👍").await,
        Code::PermissionDenied,
        "an outsider",
    );
    expect_code(
        alice.react(999_999, "👍").await,
        Code::NotFound,
        "no message",
    );
}

/// Opens `client`'s subscription and waits until it is live; returns the
/// stream and its position.
async fn live_stream(
    client: &raftchat_client::ChatClient,
) -> (
    std::pin::Pin<Box<impl futures::Stream<Item = SubscriptionItem>>>,
    u64,
) {
    let mut stream = Box::pin(client.subscribe(None));
    let seq = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(SubscriptionItem::Live { seq, .. }) => return seq,
                Some(SubscriptionItem::Failed(e)) => panic!("subscription failed: {e}"),
                Some(_) => {}
                None => panic!("subscription ended before it was live"),
            }
        }
    })
    .await
    .expect("a subscription went live within 20 s");
    (stream, seq)
}

/// The events `stream` yields for `window`.
async fn events_for(
    stream: &mut (impl futures::Stream<Item = SubscriptionItem> + Unpin),
    window: Duration,
) -> Vec<raftchat_proto::Event> {
    let mut events = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Some(item) = stream.next().await {
            match item {
                SubscriptionItem::Event(e) => events.push(e),
                SubscriptionItem::Failed(e) => panic!("subscription failed: {e}"),
                _ => {}
            }
        }
    })
    .await;
    events
}

/// A typing notice, sent to a follower, reaches the other member's
/// subscriptions on every replica, once per second at most, and nobody
/// else's (not the typist's, not a non-member's). It is not a position:
/// the next message arrives after it as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_member_on_every_replica_and_no_one_else() {
    let cluster = Cluster::start(options());
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _ = user(&cluster, "bob").await;
    let carol = user(&cluster, "carol").await;
    let to_bob = Target::User("bob".into());
    let conversation = alice
        .send(&to_bob, "hello")
        .await
        .unwrap()
        .message
        .expect("the stored message")
        .conversation_id;

    // alice types on a follower; bob listens on every other replica.
    let typed_on = if leader == 1 { 2 } else { 1 };
    let typist = cluster.client_on(typed_on);
    typist.login("alice", "password-alice").await.unwrap();
    let (mut own, _) = live_stream(&typist).await;
    let mut bobs = Vec::new();
    for id in (1..=5).filter(|id| *id != typed_on) {
        let bob = cluster.client_on(id);
        bob.login("bob", "password-bob").await.unwrap();
        let (stream, seq) = live_stream(&bob).await;
        bobs.push((id, bob, stream, seq));
    }
    let (mut carols, _) = live_stream(&carol).await;

    let asked = std::time::Instant::now();
    typist.typing(conversation).await.unwrap();
    // At once again: acknowledged, not relayed.
    typist.typing(conversation).await.unwrap();
    let refused = carol.typing(conversation).await.unwrap_err();
    assert!(
        matches!(refused.code(), Code::PermissionDenied | Code::NotFound),
        "a non-member's notice: {refused}"
    );

    // Every bob stream at once, each for the same window.
    let windows = futures::future::join_all(bobs.iter_mut().map(|(_, _, stream, _)| async {
        let mut events = Vec::new();
        let mut first = None;
        let _ = tokio::time::timeout(Duration::from_millis(2500), async {
            while let Some(item) = stream.next().await {
                match item {
                    SubscriptionItem::Event(e) => {
                        if matches!(e.kind, Some(Kind::Typing(_))) && first.is_none() {
                            first = Some(asked.elapsed());
                        }
                        events.push(e);
                    }
                    SubscriptionItem::Failed(e) => panic!("subscription failed: {e}"),
                    _ => {}
                }
            }
        })
        .await;
        (events, first)
    }))
    .await;
    for ((id, _, _, live_seq), (events, first)) in bobs.iter().zip(windows) {
        let notices: Vec<_> = events
            .iter()
            .enumerate()
            .filter_map(|(at, e)| match &e.kind {
                Some(Kind::Typing(t)) => Some((at, e, t)),
                _ => None,
            })
            .collect();
        assert_eq!(notices.len(), 1, "bob on replica {id}: {events:?}");
        let (at, event, notice) = notices[0];
        assert_eq!(notice.conversation_id, conversation);
        assert_eq!(notice.user, "alice");
        assert_eq!(notice.expires_in_ms, 5000);
        // The last position bob saw, so no cursor moves.
        let seen = events[..at].last().map_or(*live_seq, |e| e.seq);
        assert_eq!((event.seq, event.index), (seen, 0), "{events:?}");
        eprintln!("replica {id}: notice {first:?} after the call");
    }
    for (who, stream) in [("alice", &mut own), ("carol", &mut carols)] {
        let events = events_for(stream, Duration::from_millis(300)).await;
        assert!(
            !events
                .iter()
                .any(|e| matches!(e.kind, Some(Kind::Typing(_)))),
            "{who} got a typing notice: {events:?}"
        );
    }

    // The next message comes through every stream after the notice.
    typist.send(&to_bob, "typed it").await.unwrap();
    for (id, _, stream, live_seq) in &mut bobs {
        let events = take_events(stream, 1, Duration::from_secs(10)).await;
        let message = events
            .iter()
            .find(|e| matches!(&e.kind, Some(Kind::Message(m)) if m.body == "typed it"));
        let message = message.unwrap_or_else(|| panic!("bob on replica {id}: {events:?}"));
        assert!(message.seq > *live_seq, "{message:?} after the notice");
    }
}

/// Every match `client` finds for `query` (all pages of `page`), newest
/// first, as (id, body).
async fn search_all(
    client: &raftchat_client::ChatClient,
    scope: Option<&Target>,
    query: &str,
    page: u32,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut before = 0;
    loop {
        let reply = client
            .search(scope, query, before, page)
            .await
            .unwrap_or_else(|e| panic!("search {query:?}: {e}"));
        assert!(reply.messages.len() <= page as usize, "{reply:?}");
        out.extend(reply.messages.iter().map(|m| (m.id, m.body.clone())));
        match (reply.more, reply.messages.last()) {
            (true, Some(last)) => before = last.id,
            _ => return out,
        }
    }
}

/// Search on every replica: case-insensitive beyond ASCII, only the
/// caller's conversations, newest first in pages, current text only;
/// bad input gets the codes History gives; `chatctl search` prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_only_ones_own_messages_on_every_replica() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let bob = user(&cluster, "bob").await;
    let carol = user(&cluster, "carol").await;
    let to_bob = Target::User("bob".into());
    let to_carol = Target::User("carol".into());
    alice
        .create_group("club", &["bob".to_string()])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..7 {
        let body = format!("Die Straße Nr. {n}");
        ids.push(
            alice
                .send(&to_bob, &body)
                .await
                .unwrap()
                .message
                .unwrap()
                .id,
        );
    }
    let in_club = bob
        .send(&Target::Group("club".into()), "straße im CLUB")
        .await
        .unwrap()
        .message
        .unwrap()
        .id;
    let secret = bob
        .send(&to_carol, "a STRASSE only carol and bob see")
        .await
        .unwrap()
        .message
        .unwrap()
        .id;
    let edited = alice
        .send(&to_bob, "ÉCOLE typo")
        .await
        .unwrap()
        .message
        .unwrap()
        .id;
    alice.edit_message(edited, "fixed now").await.unwrap();
    alice.delete_messages(&[ids[6]]).await.unwrap();
    let mut want: Vec<u64> = ids[..6].iter().copied().chain([in_club]).collect();
    want.sort_unstable_by(|a, b| b.cmp(a));

    for id in cluster.running() {
        let here = cluster.client_on(id);
        here.login("alice", "password-alice").await.unwrap();
        let found: Vec<u64> = search_all(&here, None, "STRASSE", 3)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found, want, "alice's matches on replica {id}");
        let only_club = search_all(&here, Some(&Target::Group("club".into())), "straße", 20).await;
        assert_eq!(only_club, vec![(in_club, "straße im CLUB".to_string())]);
        assert!(search_all(&here, None, "école", 20).await.is_empty());
        assert_eq!(search_all(&here, None, "FIXED", 20).await.len(), 1);
    }
    let carols = search_all(&carol, None, "strasse", 20).await;
    assert_eq!(
        carols,
        vec![(secret, "a STRASSE only carol and bob see".to_string())]
    );

    // Bad input: the codes History gives, and a message.
    let message = expect_code(
        alice.search(None, "  ", 0, 10).await,
        Code::InvalidArgument,
        "blank",
    );
    assert!(message.contains("empty"), "{message}");
    let long = "x".repeat(257);
    let message = expect_code(
        alice.search(None, &long, 0, 10).await,
        Code::InvalidArgument,
        "long",
    );
    assert!(message.contains("256"), "{message}");
    expect_code(
        alice.search(Some(&to_carol), "a", 0, 10).await,
        Code::NotFound,
        "no conversation with carol",
    );
    let secret_conversation = Target::Conversation(
        carol
            .history(&to_bob, 0, 1)
            .await
            .unwrap()
            .conversation
            .unwrap()
            .id,
    );
    expect_code(
        alice.search(Some(&secret_conversation), "a", 0, 10).await,
        Code::PermissionDenied,
        "another's conversation",
    );
    expect_code(
        alice
            .search(Some(&Target::Conversation(9_999)), "a", 0, 10)
            .await,
        Code::NotFound,
        "an unknown conversation",
    );
    let anonymous = cluster.client();
    expect_code(
        anonymous.search(None, "a", 0, 10).await,
        Code::Unauthenticated,
        "no session",
    );
    // The limit is clamped, not refused.
    let all = alice.search(None, "e", 0, 100_000).await.unwrap();
    assert!(all.messages.len() <= 100);

    // chatctl search, as JSON lines and as text.
    let chatctl = |args: &[&str]| {
        let out = std::process::Command::new(raftchat_testkit::bins::path("chatctl"))
            .envs(cluster.chatctl_env(false))
            .env("CHAT_PASSWORD", "password-bob")
            .arg("--servers")
            .arg(cluster.urls().join(","))
            .args(args)
            .output()
            .expect("run chatctl");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "chatctl {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let json = chatctl(&["--json", "search", "--as", "bob", "--limit", "2", "STRASSE"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{json}");
    assert_eq!(lines[0]["id"], secret);
    assert_eq!(lines[1]["id"], in_club);
    assert_eq!(lines[2]["before"], in_club);
    let text = chatctl(&["search", "--as", "bob", "--with", "#club", "straße"]);
    assert!(text.contains(&format!("[{in_club}]")), "{text}");
    assert!(text.contains("bob: straße im CLUB"), "{text}");
    assert!(!text.contains("Nr."), "{text}");
}

/// The search index is each replica's own: a replica that caught up
/// through a snapshot built it with the snapshot, and replicas restarted
/// on their storage find what they held before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_old_messages_after_a_snapshot_install_and_restarts() {
    let mut cluster = Cluster::start(Options {
        replicas: 3,
        snapshot_every: Some(40),
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let down = if leader == 3 { 2 } else { 3 };
    cluster.kill(down);
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let to_bob = Target::User("bob".into());
    for n in 0..150 {
        let body = match n % 3 {
            0 => format!("Ünïcode needle {n}"),
            _ => format!("hay {n}"),
        };
        alice.send(&to_bob, &body).await.unwrap();
    }
    let status = cluster.status(leader, false).await.unwrap();
    assert!(status.snapshot_index > 0, "no snapshot taken: {status:?}");
    cluster.start_replica(down);
    cluster.wait_converged(Duration::from_secs(60)).await;
    let restarted = cluster.status(down, false).await.unwrap();
    assert!(restarted.snapshot_index > 0, "caught up without a snapshot");

    let check = |cluster: &Cluster, when: &'static str| {
        let clients: Vec<(u64, raftchat_client::ChatClient)> = cluster
            .running()
            .into_iter()
            .map(|id| (id, cluster.client_on(id)))
            .collect();
        async move {
            for (id, client) in clients {
                client.login("bob", "password-bob").await.unwrap();
                let found = search_all(&client, None, "üNÏCODE NEEDLE", 100).await;
                assert_eq!(found.len(), 50, "{when}, replica {id}");
                assert_eq!(found[0].1, "Ünïcode needle 147", "{when}, replica {id}");
                assert_eq!(search_all(&client, None, "needle 3", 100).await.len(), 5);
            }
        }
    };
    check(&cluster, "after the snapshot install").await;
    cluster.kill_all();
    for id in 1..=3 {
        cluster.start_replica(id);
    }
    cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.wait_converged(Duration::from_secs(60)).await;
    check(&cluster, "after restarting every replica").await;
}
