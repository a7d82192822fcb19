//! Test helpers on top of `raftchat_testkit::local_cluster`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::time::Duration;

pub use raftchat_testkit::local_cluster::{Cluster, Options};

/// Options for a cluster running the `chatd` this test build produced.
pub fn options() -> Options {
    Options {
        chatd: Some(raftchat_testkit::bins::path("chatd")),
        ..Options::default()
    }
}

/// A client for these replicas of `cluster` with test-friendly deadlines.
pub fn client_for(cluster: &Cluster, urls: Vec<String>) -> raftchat_client::ChatClient {
    let mut config = cluster.client_config(urls);
    config.rpc_timeout = Duration::from_millis(1500);
    config.write_deadline = Duration::from_secs(15);
    raftchat_client::ChatClient::new(config).expect("client config")
}

/// Test-friendly clients for a cluster.
pub trait Clients {
    /// A client that may use every replica.
    fn client(&self) -> raftchat_client::ChatClient;
    /// A client pinned to one replica: every call is served there.
    fn client_on(&self, id: u64) -> raftchat_client::ChatClient;
}

impl Clients for Cluster {
    fn client(&self) -> raftchat_client::ChatClient {
        client_for(self, self.urls())
    }
    fn client_on(&self, id: u64) -> raftchat_client::ChatClient {
        client_for(self, vec![self.url(id)])
    }
}

/// Creates `name` (password `password-<name>`) and returns a logged-in client.
pub async fn user(cluster: &Cluster, name: &str) -> raftchat_client::ChatClient {
    let client = cluster.client();
    client
        .create_account(name, &format!("password-{name}"))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    client
        .login(name, &format!("password-{name}"))
        .await
        .unwrap_or_else(|e| panic!("login {name}: {e}"));
    client
}

/// Every message body in the conversation with `peer`, oldest first, as
/// read by `client` (all pages).
pub async fn bodies_with(client: &raftchat_client::ChatClient, peer: &str) -> Vec<String> {
    let target = raftchat_client::Target::User(peer.to_string());
    let mut out = Vec::new();
    let mut before = 0;
    loop {
        let page = client
            .history(&target, before, 1000)
            .await
            .unwrap_or_else(|e| panic!("history with {peer}: {e}"));
        out.extend(page.messages.iter().map(|m| m.body.clone()));
        match page.messages.last() {
            Some(m) if page.more => before = m.id,
            _ => break,
        }
    }
    out.reverse();
    out
}

/// The bodies [`send_concurrently`]'s sender `t` sends, in order: `t{t}-0`,
/// `t{t}-1`, … (`each` of them).
pub fn sent_bodies(t: usize, each: usize) -> Vec<String> {
    (0..each).map(|i| format!("t{t}-{i}")).collect()
}

/// `senders` concurrent tasks each send `each` messages to `target` as
/// `client`, sender `t` its [`sent_bodies`] in order; panics on any failed
/// send.
pub async fn send_concurrently(
    client: &raftchat_client::ChatClient,
    target: &raftchat_client::Target,
    senders: usize,
    each: usize,
) {
    let mut tasks = Vec::new();
    for t in 0..senders {
        let client = client.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            for body in sent_bodies(t, each) {
                client.send(&target, &body).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The raw HTTP/1.1 answer of `GET path` from `addr` (a metrics endpoint).
pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}
