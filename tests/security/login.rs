//! Login and hostile-input hardening against real `chatd` processes: a
//! login flood must not cost the leader its term, unknown users look like
//! wrong passwords, listing accounts needs a login, short passwords are
//! refused, subscriptions per session are capped, a cursor beyond the end
//! resyncs, and a request that does not decode is INVALID_ARGUMENT.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use raftchat_client::{ChatClient, ClientError, SubscriptionItem, Target};
use raftchat_proto::chat_client::ChatClient as RawChat;
use raftchat_proto::event::Kind;
use raftchat_proto::{LoginReply, LoginRequest, SubscribeRequest};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::common::{options, Clients, Cluster, Options};

/// These tests measure a cluster under load: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A raw gRPC stub for one replica, its connections made from `from` (any
/// 127.0.0.0/8 address is this machine, so each attacker can have its own).
fn raw(url: &str, from: Option<IpAddr>) -> RawChat<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{url}"))
        .expect("url")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .local_address(from);
    RawChat::new(endpoint.connect_lazy())
}

fn loopback(n: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

fn login_request(username: &str, password: &str) -> LoginRequest {
    LoginRequest {
        request_id: String::new(),
        username: username.into(),
        password: password.into(),
    }
}

/// Creates `name` with `password` and returns a client logged in as it.
async fn account(cluster: &Cluster, name: &str, password: &str) -> ChatClient {
    let client = cluster.client();
    client
        .create_account(name, password)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    client
        .login(name, password)
        .await
        .unwrap_or_else(|e| panic!("login {name}: {e}"));
    client
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, ClientError>, code: Code) -> String {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            e.message().to_string()
        }
    }
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What one flood answer was.
fn classify(result: &Result<tonic::Response<LoginReply>, Status>) -> String {
    match result {
        Ok(_) => "logged in (!)".into(),
        Err(s) if s.code() == Code::Unauthenticated => "wrong password".into(),
        Err(s) if s.code() == Code::ResourceExhausted && s.message().contains("in progress") => {
            "refused: argon2 pool full".into()
        }
        Err(s) if s.code() == Code::ResourceExhausted && s.message().contains("retry in") => {
            "refused: login backoff".into()
        }
        // What a busy replica may say to anyone; clients retry it.
        Err(s) if s.code() == Code::Unavailable => "unavailable, retryable".into(),
        Err(s) => format!("other: {:?} {}", s.code(), s.message()),
    }
}

/// 50 clients, each from its own address, send wrong passwords (for a real
/// account and for unknown names) to the leader for 10 s while a
/// legitimate client sends messages: the leader keeps its leadership and
/// term, its memory stays bounded, and the legitimate sends all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_does_not_cost_the_leader_its_term() {
    let _serial = SERIAL.lock().await;
    const ATTACKERS: u8 = 50;
    const FLOOD: Duration = Duration::from_secs(10);
    const MAX_ATTEMPTS_EACH: usize = 2_000;
    const MAX_SENDS: usize = 20_000;

    // Plaintext on loopback (the transport is `transport.rs`'s subject):
    // the raw attackers below need no certificates.
    let cluster = Cluster::start(Options {
        tls: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = account(&cluster, "alice", "alice-password").await;
    let _bob = account(&cluster, "bob", "bob-password").await;
    let to_bob = Target::User("bob".into());
    alice.send(&to_bob, "warm-up").await.expect("warm-up send");
    let term = cluster
        .status(leader, false)
        .await
        .expect("leader status")
        .term;
    let pid = cluster.pid(leader).expect("leader pid");
    let rss_before = rss_mib(pid);
    // The same sends without the flood, for comparison.
    let mut calm = Vec::new();
    let calm_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < calm_until && calm.len() < MAX_SENDS {
        let sent = Instant::now();
        alice.send(&to_bob, "calm").await.expect("calm send");
        calm.push(sent.elapsed());
    }
    calm.sort();

    let start = Instant::now();
    let deadline = start + FLOOD;
    let url = Arc::new(cluster.url(leader));
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let url = url.clone();
        attackers.push(tokio::spawn(async move {
            let mut stub = raw(&url, loopback(10 + i));
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut n = 0;
            while Instant::now() < deadline && n < MAX_ATTEMPTS_EACH {
                // Half guess bob's password, half probe unknown names.
                let request = if i % 2 == 0 {
                    login_request("bob", &format!("guess-{i}-{n}"))
                } else {
                    login_request(&format!("ghost{i}x{n}"), "guess-password")
                };
                let result = tokio::time::timeout(Duration::from_secs(5), stub.login(request))
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in 5 s")));
                *seen.entry(classify(&result)).or_default() += 1;
                n += 1;
            }
            seen
        }));
    }

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    while Instant::now() < deadline && latencies.len() < MAX_SENDS {
        let sent = Instant::now();
        match alice
            .send(&to_bob, &format!("during flood {}", latencies.len()))
            .await
        {
            Ok(_) => latencies.push(sent.elapsed()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for a in attackers {
        for (k, v) in a.await.expect("attacker task") {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let rss_after = rss_mib(pid);
    latencies.sort();
    let attempts: usize = outcomes.values().sum();
    println!(
        "login flood: {ATTACKERS} attackers, {attempts} attempts in {:.1} s: {outcomes:?}",
        start.elapsed().as_secs_f64()
    );
    println!(
        "legitimate sends during the flood: {} ok, {} failed; p50 {}, p99 {}, max {}",
        latencies.len(),
        failures.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    println!(
        "legitimate sends before the flood: {} ok; p50 {}, p99 {}, max {}",
        calm.len(),
        ms(percentile(&calm, 0.50)),
        ms(percentile(&calm, 0.99)),
        ms(percentile(&calm, 1.0)),
    );
    println!("leader RSS: {rss_before} MiB before, {rss_after} MiB after");

    // Every replica still follows the same leader, in the same term.
    for id in cluster.running() {
        let s = cluster
            .status(id, false)
            .await
            .unwrap_or_else(|| panic!("replica {id} does not answer"));
        assert_eq!(s.leader_id, leader, "replica {id} follows another leader");
        assert_eq!(s.term, term, "replica {id} moved to another term");
    }
    assert!(failures.is_empty(), "legitimate sends failed: {failures:?}");
    assert!(!latencies.is_empty(), "no legitimate send completed");
    assert!(!outcomes.contains_key("logged in (!)"), "{outcomes:?}");
    assert!(
        outcomes.keys().all(|k| !k.starts_with("other")),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains_key("refused: argon2 pool full"),
        "the pool never refused: {outcomes:?}"
    );
    assert!(
        outcomes.contains_key("refused: login backoff"),
        "the backoff never refused: {outcomes:?}"
    );
    // Argon2 needs 19 MiB per computation; unbounded, this flood took the
    // leader to hundreds of MiB.
    assert!(
        rss_after < rss_before + 200,
        "leader RSS grew from {rss_before} to {rss_after} MiB"
    );
}

/// Everything else, on one small cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_refusals() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Options {
        replicas: 3,
        tls: false,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let carol = account(&cluster, "carol", "carol-password").await;
    let url = cluster.url(leader);

    unknown_user_and_wrong_password_look_the_same(&url).await;
    repeated_failures_back_off(&url).await;
    listing_accounts_needs_a_login(&cluster, &carol).await;
    passwords_and_group_names_are_checked(&cluster).await;
    undecodable_requests_are_invalid_argument(&url).await;
    let token = carol.token().expect("carol is logged in");
    an_undecodable_stream_request_ends_the_stream_with_the_reason(&url, &token).await;
    subscriptions_per_session_are_capped(&url, &carol).await;
    a_cursor_beyond_the_end_resyncs(&url, &carol).await;
}

async fn unknown_user_and_wrong_password_look_the_same(url: &str) {
    // Its own address and no more than 4 failures per name: no backoff.
    let mut stub = raw(url, loopback(200));
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    let mut answers = Vec::new();
    for i in 0..4 {
        for (name, times) in [
            ("carol", &mut wrong),
            (&*format!("nobody{i}"), &mut unknown),
        ] {
            let started = Instant::now();
            let status = stub
                .login(login_request(name, "not-the-password"))
                .await
                .expect_err("wrong credentials must fail");
            times.push(started.elapsed());
            answers.push((status.code(), status.message().to_string()));
        }
    }
    let first = answers[0].clone();
    assert_eq!(first.0, Code::Unauthenticated, "{first:?}");
    assert!(
        answers.iter().all(|a| *a == first),
        "answers differ: {answers:?}"
    );
    wrong.sort();
    unknown.sort();
    let (w, u) = (percentile(&wrong, 0.5), percentile(&unknown, 0.5));
    println!(
        "login median: wrong password {}, unknown user {}",
        ms(w),
        ms(u)
    );
    // Without the dummy check an unknown name answered ~25 times faster.
    assert!(
        u * 4 >= w,
        "an unknown user answers much faster ({}) than a wrong password ({})",
        ms(u),
        ms(w)
    );
}

async fn repeated_failures_back_off(url: &str) {
    let mut stub = raw(url, loopback(201));
    let mut refused = None;
    for _ in 0..10 {
        match stub.login(login_request("dora", "wrong-password")).await {
            Err(s) if s.code() == Code::ResourceExhausted => {
                refused = Some(s);
                break;
            }
            Err(s) => assert_eq!(s.code(), Code::Unauthenticated, "{s}"),
            Ok(_) => panic!("dora does not exist"),
        }
    }
    let refused = refused.expect("10 failures in a row were never refused");
    assert!(
        refused
            .message()
            .contains("too many failed logins; retry in"),
        "{refused}"
    );
    // The account is refused from any address while its backoff lasts.
    let other = raw(url, loopback(202))
        .login(login_request("dora", "wrong-password"))
        .await
        .expect_err("still backing off");
    assert_eq!(other.code(), Code::ResourceExhausted, "{other}");
}

async fn listing_accounts_needs_a_login(cluster: &Cluster, carol: &ChatClient) {
    let msg = expect_code(
        cluster.client().list_accounts("", "", 10).await,
        Code::Unauthenticated,
    );
    assert!(msg.contains("not logged in"), "{msg}");
    let names: Vec<String> = carol
        .list_accounts("", "", 10)
        .await
        .expect("a logged-in user lists accounts")
        .accounts
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, vec!["carol"]);
}

async fn passwords_and_group_names_are_checked(cluster: &Cluster) {
    let anon = cluster.client();
    for short in ["", "pw", "pw-bob", "1234567", "ééééééé"] {
        let msg = expect_code(
            anon.create_account("erin", short).await,
            Code::InvalidArgument,
        );
        assert!(msg.contains("at least 8 characters"), "{short:?}: {msg}");
    }
    let msg = expect_code(
        anon.create_account("erin", &"x".repeat(1025)).await,
        Code::InvalidArgument,
    );
    assert!(msg.contains("1024 bytes"), "{msg}");
    let erin = account(cluster, "erin", "12345678").await;
    let msg = expect_code(
        erin.change_password("12345678", "short").await,
        Code::InvalidArgument,
    );
    assert!(msg.contains("new_password") && msg.contains("8"), "{msg}");
    for bad in ["red\u{1b}[31m", "two\nlines", "c1\u{9b}x"] {
        let msg = expect_code(erin.create_group(bad, &[]).await, Code::InvalidArgument);
        assert!(msg.contains("control characters"), "{bad:?}: {msg}");
    }
    let msg = expect_code(
        erin.send(&Target::User("u".repeat(100_000)), "hi").await,
        Code::InvalidArgument,
    );
    assert!(
        msg.len() < 200,
        "the error echoes the name: {} bytes",
        msg.len()
    );
}

/// A `LoginRequest` with raw bytes where the username string goes (same
/// wire type), to send bytes that are not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawLoginRequest {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(bytes = "vec", tag = "2")]
    username: Vec<u8>,
    #[prost(string, tag = "3")]
    password: String,
}

async fn undecodable_requests_are_invalid_argument(url: &str) {
    let channel = Endpoint::from_shared(format!("http://{url}"))
        .expect("url")
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let request = RawLoginRequest {
        request_id: String::new(),
        username: vec![b'c', 0xff, 0xfe, b'x'],
        password: "whatever-password".into(),
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/raftchat.v1.Chat/Login");
    let codec = tonic_prost::ProstCodec::<RawLoginRequest, LoginReply>::default();
    let status = grpc
        .unary(Request::new(request), path, codec)
        .await
        .expect_err("invalid UTF-8 must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");
    assert!(
        status.message().contains("LoginRequest.username") && status.message().contains("UTF-8"),
        "{status}"
    );
}

/// A `SendMessageRequest` to a user with raw bytes as its body.
#[derive(Clone, PartialEq, prost::Message)]
struct RawSendRequest {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(string, tag = "2")]
    user: String,
    #[prost(bytes = "vec", tag = "5")]
    body: Vec<u8>,
}

/// Over `SendStream`, a good send is answered and a body that is not UTF-8
/// ends the stream with INVALID_ARGUMENT (not a silent end).
async fn an_undecodable_stream_request_ends_the_stream_with_the_reason(url: &str, token: &str) {
    use raftchat_proto::{send_stream_reply, SendStreamReply};
    let channel = Endpoint::from_shared(format!("http://{url}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let requests = futures::stream::iter([
        RawSendRequest {
            request_id: "good".into(),
            user: "erin".into(),
            body: b"hello".to_vec(),
        },
        RawSendRequest {
            request_id: "bad".into(),
            user: "erin".into(),
            body: vec![0xc3, 0x28],
        },
    ]);
    let mut request = Request::new(requests);
    let value = format!("Bearer {token}").parse().expect("token is ASCII");
    request.metadata_mut().insert("authorization", value);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/raftchat.v1.Chat/SendStream");
    let codec = tonic_prost::ProstCodec::<RawSendRequest, SendStreamReply>::default();
    let mut replies = grpc
        .streaming(request, path, codec)
        .await
        .expect("stream opens")
        .into_inner();
    let mut answered = Vec::new();
    let ended = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("no answer within 10 s");
        match next {
            Ok(Some(reply)) => answered.push(reply),
            Ok(None) => panic!("the stream ended without a reason after {answered:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::InvalidArgument, "{ended}");
    assert!(
        ended.message().contains("SendMessageRequest.body"),
        "{ended}"
    );
    assert!(
        answered.iter().any(|r| r.request_id == "good"
            && matches!(r.result, Some(send_stream_reply::Result::Message(_)))),
        "{answered:?}"
    );
}

fn subscribe_request(token: &str, after_seq: Option<u64>) -> Request<SubscribeRequest> {
    let mut request = Request::new(SubscribeRequest { after_seq });
    let value = format!("Bearer {token}").parse().expect("token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn subscriptions_per_session_are_capped(url: &str, carol: &ChatClient) {
    const CAP: usize = 8;
    let token = carol.token().expect("carol is logged in");
    let mut stub = raw(url, None);
    let mut open = Vec::new();
    for i in 0..CAP {
        let mut stream = stub
            .subscribe(subscribe_request(&token, None))
            .await
            .unwrap_or_else(|s| panic!("stream {i}: {s}"))
            .into_inner();
        // Live: the stream is being served.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("no Live within 10 s")
            .expect("stream error")
            .expect("stream ended");
        assert!(matches!(first.kind, Some(Kind::Live(_))), "{first:?}");
        open.push(stream);
    }
    let refused = stub
        .subscribe(subscribe_request(&token, None))
        .await
        .expect_err("one stream too many");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert!(refused.message().contains("8 subscriptions"), "{refused}");
    // Closing one makes room (once the replica notices).
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stub.subscribe(subscribe_request(&token, None)).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("no room after closing a stream: {s}"),
        }
    }
}

async fn a_cursor_beyond_the_end_resyncs(url: &str, carol: &ChatClient) {
    let token = carol.token().expect("carol is logged in");
    // Drop the streams of the previous check first: below the cap again.
    let mut stub = raw(url, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match stub
            .subscribe(subscribe_request(&token, Some(u64::MAX)))
            .await
        {
            Ok(r) => break r.into_inner(),
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("subscribe: {s}"),
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("nothing within 10 s")
        .expect("stream error")
        .expect("stream ended");
    let Some(Kind::Resync(resync)) = first.kind else {
        panic!("expected Resync, got {first:?}");
    };
    assert!(first.seq < u64::MAX, "seq names the current position");
    assert!(resync.oldest_seq <= first.seq, "{first:?}");
    drop(stream);

    // The client library turns it into a Resync for its consumer and goes
    // on live from "now".
    let mut items = Box::pin(carol.subscribe(Some(u64::MAX)));
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(seen.last(), Some(SubscriptionItem::Live { .. })) {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, items.next())
            .await
            .unwrap_or_else(|_| panic!("no Live within 20 s: {seen:?}"))
            .expect("subscription ended");
        assert!(
            !matches!(item, SubscriptionItem::Failed(_)),
            "{item:?} after {seen:?}"
        );
        seen.push(item);
    }
    assert!(
        seen.iter()
            .any(|i| matches!(i, SubscriptionItem::Resync { .. })),
        "{seen:?}"
    );
}
