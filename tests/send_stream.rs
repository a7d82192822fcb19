//! `SendStream` on real replicas: pipelined sends are answered once each,
//! by request id, with failures in-band; the client library sends over one
//! stream and, when its replica dies mid-stream, finishes every send through
//! the failover engine without sending any twice.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    bodies_with, http_get, options, send_concurrently, sent_bodies, user, Cluster, Options,
};
use raftchat_client::Target;
use raftchat_proto::chat_client::ChatClient as RawChat;
use raftchat_proto::send_stream_reply::Result as Answer;
use raftchat_proto::{send_message_request::To, SendMessageRequest};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Request};

fn request(request_id: &str, to: &str, body: &str) -> SendMessageRequest {
    SendMessageRequest {
        request_id: request_id.into(),
        to: Some(To::User(to.into())),
        body: body.into(),
        reply_to: 0,
    }
}

/// The in-band error's message, after checking its code.
fn error(answer: &Option<Answer>, code: Code, what: &str) -> String {
    match answer {
        Some(Answer::Error(e)) => {
            assert_eq!(Code::from(e.code), code, "{what}: {e:?}");
            e.message.clone()
        }
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_stream_answers_pipelined_sends_by_request_id_with_failures_in_band() {
    let cluster = Cluster::start(Options {
        replicas: 3,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let token = alice.token().expect("alice is logged in");
    let mut raw = RawChat::new(cluster.channel(leader));

    // Without a session the call itself is refused.
    let (tx, rx) = mpsc::unbounded_channel::<SendMessageRequest>();
    let refused = raw
        .send_stream(Request::new(UnboundedReceiverStream::new(rx)))
        .await;
    drop(tx);
    assert_eq!(
        refused.expect_err("no session").code(),
        Code::Unauthenticated
    );

    // Everything is written before any answer is read: the stream pipelines.
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..50 {
        tx.send(request(&format!("ok-{i}"), "bob", &format!("piped {i}")))
            .unwrap();
    }
    tx.send(request("nobody", "nobody-here", "hello?")).unwrap();
    tx.send(request("empty", "bob", "")).unwrap();
    tx.send(request("", "bob", "no id")).unwrap();
    let mut call = Request::new(UnboundedReceiverStream::new(rx));
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    let mut answers = raw
        .send_stream(call)
        .await
        .expect("stream opens")
        .into_inner();
    let mut next = async || {
        timeout(Duration::from_secs(10), answers.message())
            .await
            .expect("an answer within 10 s")
            .expect("the stream stays open")
    };
    let mut got = HashMap::new();
    while got.len() < 53 {
        eprintln!(
            "have {} {:?}",
            got.len(),
            got.keys()
                .filter(|k: &&String| !k.starts_with("ok-"))
                .collect::<Vec<_>>()
        );
        let reply = next().await.expect("more answers");
        let id = reply.request_id.clone();
        assert!(got.insert(id, reply.result).is_none(), "answered twice");
    }
    let mut first_ids = HashMap::new();
    for i in 0..50 {
        match &got[&format!("ok-{i}")] {
            Some(Answer::Message(m)) => {
                assert_eq!(m.body, format!("piped {i}"));
                first_ids.insert(i, m.id);
            }
            other => panic!("ok-{i}: {other:?}"),
        }
    }
    error(&got["nobody"], Code::NotFound, "unknown recipient");
    error(&got["empty"], Code::InvalidArgument, "empty body");
    let msg = error(&got[""], Code::InvalidArgument, "no request id");
    assert!(msg.contains("request_id"), "{msg}");

    // A request id sent again is answered with the original message.
    tx.send(request("ok-7", "bob", "piped 7")).unwrap();
    match next().await.expect("the retry's answer").result {
        Some(Answer::Message(m)) => assert_eq!(m.id, first_ids[&7]),
        other => panic!("retry: {other:?}"),
    }

    // Closing our side ends the stream once everything is answered.
    drop(tx);
    assert!(next().await.is_none(), "the stream ends");
    assert_eq!(bodies_with(&alice, "bob").await.len(), 50, "each sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_over_one_stream_and_survives_its_replica_dying_mid_stream() {
    let mut cluster = Cluster::start(Options {
        metrics: true,
        ..options()
    });
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let alice = user(&cluster, "alice").await;
    let _bob = user(&cluster, "bob").await;
    let _carol = user(&cluster, "carol").await;

    // Eight concurrent senders on one client share one stream to the leader.
    send_concurrently(&alice, &Target::User("bob".into()), 8, 5).await;
    let metrics = http_get(&cluster.metrics_addr(leader).unwrap(), "/metrics");
    assert!(
        metrics.contains("raftchat_live_send_streams 1\n"),
        "one stream open on leader {leader}:\n{metrics}"
    );
    assert_eq!(bodies_with(&alice, "bob").await.len(), 40);

    // The leader dies while sends are in flight on its stream: every send
    // still succeeds (send_concurrently panics otherwise), exactly once.
    let (senders, each) = (8, 150);
    let sending = {
        let alice = alice.clone();
        tokio::spawn(async move {
            send_concurrently(&alice, &Target::User("carol".into()), senders, each).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sending.is_finished(), "the kill must land mid-stream");
    cluster.kill(leader);
    timeout(Duration::from_secs(60), sending)
        .await
        .expect("sends finish within 60 s")
        .expect("every send succeeds");
    let bodies = bodies_with(&alice, "carol").await;
    assert_eq!(bodies.len(), senders * each, "no send lost or doubled");
    for t in 0..senders {
        let mine: Vec<&String> = bodies
            .iter()
            .filter(|b| b.starts_with(&format!("t{t}-")))
            .collect();
        let want = sent_bodies(t, each);
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "sender {t}");
    }
}
