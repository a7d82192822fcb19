//! The raftchat client library, shared by the terminal UI, `chatctl`, tests
//! and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftchat_client::ClientError> {
//! use raftchat_client::{ChatClient, ClientConfig, Target};
//!
//! let client = ChatClient::new(ClientConfig::from_list("127.0.0.1:7001,127.0.0.1:7002"))?;
//! client.login("alice", "secret").await?;
//! client.send(&Target::parse("#team")?, "hello").await?;
//! # Ok(()) }
//! ```
//!
//! # Failover policy
//!
//! A call goes to the current replica. A timeout (`rpc_timeout`), a transport
//! error or `UNAVAILABLE` moves the client to another replica — the leader
//! when a leader hint (`x-raft-leader-id` / `x-raft-leader-url` response
//! metadata) names a configured one, else the next in the list — and the
//! call is retried at once, pausing only after a whole round of replicas
//! failed (10 ms doubling to 100 ms), until
//! its deadline (`write_deadline`) passes; it then fails with `UNAVAILABLE`
//! ("no quorum: ..."), naming the replicas tried. Any other status is the
//! server's answer and is returned at once.
//!
//! An answer whose hint names another configured replica as leader moves
//! the client there for the next call (unless that replica failed a call in
//! the last 5 s), so writes reach the leader without a forwarding hop.
//!
//! Writes carry a random request id chosen before the first attempt and
//! reused by every retry, so a write is applied at most once even when an
//! attempt timed out after the cluster had already applied it.
//!
//! A logged-in client's sends go first over its one long-lived
//! `SendStream` to the current replica (see `send_stream.rs`); whatever that
//! stream cannot answer falls back to the policy above, with the same request
//! id.
//!
//! [`ChatClient::subscribe`] applies the same policy to the event stream,
//! forever, resuming from the last event seen.

mod call;
mod chat;
mod config;
mod error;
mod handle;
mod retry;
mod send_stream;
mod servers;
mod state;
mod status;
mod subscription;
mod target;

pub use config::{parse_server_list, ClientConfig, DEFAULT_SERVERS};
pub use error::{code_name, ClientError};
pub use handle::ChatClient;
pub use retry::new_request_id;
pub use servers::{LEADER_ID_HEADER, LEADER_URL_HEADER};
pub use state::ConnectionState;
pub use status::ServerStatus;
pub use subscription::SubscriptionItem;
pub use target::Target;

/// The generated message types the client API returns, re-exported so
/// users need not reach into `raftchat_proto`.
pub use raftchat_proto::{
    Account, Conversation, ConversationKind, Event, HistoryReply, ListAccountsReply,
    ListConversationsReply, LoginReply, Message, ReadUnreadReply, SearchReply, StatusReply,
};
