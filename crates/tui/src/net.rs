//! The network glue: the ONLY module that talks to the client library.
//!
//! It carries out [`Effect`]s in spawned tasks and reports every result,
//! stream item and status change as a [`NetEvent`] on a channel. It also
//! runs two background tasks for the whole session: a watcher of the
//! library's connection state and a 1 s poll of every replica's status.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::event::{Effect, NetEvent, SendTo};
use super::model::{
    AccountInfo, ConversationInfo, ConversationKind, ErrorKind, NetError, ReplicaReport,
    ReplicaStatus,
};
use raftchat_client::{
    Account, ChatClient, ClientConfig, ClientError, Conversation, ServerStatus, SubscriptionItem,
    Target,
};
use raftchat_proto::event::Kind;

/// Accounts asked for per page when counting (the server's largest page).
const COUNT_PAGE: u32 = 1000;
/// Pages counted at most: past this, the count says "at least".
const COUNT_PAGES: usize = 100;

/// How often every replica is asked for its status.
const CLUSTER_POLL: Duration = Duration::from_secs(1);
/// How often the replica in use is asked whether it answers.
const PROBE: Duration = Duration::from_millis(500);

/// A prefix for request ids, unique to this run of the client.
pub fn request_prefix() -> String {
    raftchat_client::new_request_id()
}

/// The running network layer.
pub struct Net {
    client: ChatClient,
    events: UnboundedSender<NetEvent>,
    subscription: Option<JoinHandle<()>>,
    /// Send, edit and react calls under way; aborted when the session
    /// ends, so a message of one session can never go out under the next
    /// one's token.
    sends: Vec<JoinHandle<()>>,
    /// The typing notice under way, if any: a newer one replaces it (it
    /// says the same, later), so a slow replica never piles them up.
    typing: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Net {
    /// Connects lazily to `servers` (no network yet) and starts the
    /// connection watcher and the cluster poll.
    pub fn start(config: ClientConfig, events: UnboundedSender<NetEvent>) -> anyhow::Result<Self> {
        // One client per replica for the probe: it must ask that replica,
        // not whichever the library would fail over to.
        let mut probes = std::collections::HashMap::new();
        for server in &config.servers {
            let mut one = config.clone();
            one.servers = vec![server.clone()];
            let probe = ChatClient::new(one)?;
            // By the address as the library writes it (its states say it so).
            probes.insert(probe.current_server(), probe);
        }
        let client = ChatClient::new(config)?;
        let background = vec![
            tokio::spawn(watch_connection(client.clone(), events.clone())),
            tokio::spawn(poll_cluster(client.clone(), events.clone())),
            tokio::spawn(probe_current(client.clone(), probes, events.clone())),
        ];
        Ok(Self {
            client,
            events,
            subscription: None,
            sends: Vec::new(),
            typing: None,
            background,
        })
    }

    /// Carries out `effect` in the background; the outcome arrives as a
    /// [`NetEvent`].
    pub fn execute(&mut self, effect: Effect) {
        self.sends.retain(|task| !task.is_finished());
        match effect {
            Effect::Subscribe => self.subscribe(),
            Effect::Typing { conversation_id } => {
                if let Some(task) = self.typing.take() {
                    task.abort();
                }
                let client = self.client.clone();
                // Nothing to report: a notice that does not get through
                // only means the others do not see us typing for a while.
                self.typing = Some(tokio::spawn(async move {
                    let _ = client.typing(conversation_id).await;
                }));
            }
            Effect::Logout => {
                self.stop_subscription();
                self.abort_sends();
                let client = self.client.clone();
                // The session is dropped locally at once; telling the
                // server is best effort (it expires anyway).
                tokio::spawn(async move {
                    let _ = client.logout().await;
                });
            }
            effect => {
                if matches!(effect, Effect::SignIn { .. } | Effect::CreateAccount { .. }) {
                    self.abort_sends();
                }
                let is_send = matches!(
                    effect,
                    Effect::Send { .. } | Effect::EditMessage { .. } | Effect::React { .. }
                );
                let client = self.client.clone();
                let events = self.events.clone();
                let task = tokio::spawn(async move {
                    for event in run(&client, effect).await {
                        if events.send(event).is_err() {
                            break;
                        }
                    }
                });
                if is_send {
                    self.sends.push(task);
                }
            }
        }
    }

    fn abort_sends(&mut self) {
        for task in self.sends.drain(..) {
            task.abort();
        }
        if let Some(task) = self.typing.take() {
            task.abort();
        }
    }

    fn subscribe(&mut self) {
        self.stop_subscription();
        let stream = self.client.subscribe(None);
        let events = self.events.clone();
        self.subscription = Some(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let Some(event) = subscription_event(item) else {
                    continue;
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        }));
    }

    fn stop_subscription(&mut self) {
        if let Some(task) = self.subscription.take() {
            task.abort();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop_subscription();
        self.abort_sends();
        for task in &self.background {
            task.abort();
        }
    }
}

/// Performs one request-style effect; returns the events to report.
async fn run(client: &ChatClient, effect: Effect) -> Vec<NetEvent> {
    match effect {
        Effect::SignIn { username, password } => {
            vec![sign_in(client, &username, &password).await]
        }
        Effect::CreateAccount { username, password } => {
            match client.create_account(&username, &password).await {
                Ok(_) => vec![sign_in(client, &username, &password).await],
                Err(err) => vec![NetEvent::SignInFailed(net_error(&err))],
            }
        }
        Effect::LoadConversations => match client.list_conversations().await {
            Ok(reply) => vec![NetEvent::Conversations(
                reply.conversations.iter().map(conversation_info).collect(),
            )],
            Err(err) => vec![failed("load conversations", &err)],
        },
        Effect::LoadHistory {
            conversation_id,
            before,
        } => {
            let target = Target::Conversation(conversation_id);
            match client
                .history(&target, before, super::app::HISTORY_PAGE)
                .await
            {
                Ok(reply) => {
                    let Some(conversation) = reply.conversation.as_ref() else {
                        return vec![failed(
                            "load history",
                            &ClientError::missing_field("conversation"),
                        )];
                    };
                    // The server pages newest first; the UI wants oldest first.
                    let messages = reply.messages.iter().rev().cloned().collect();
                    vec![NetEvent::History {
                        conversation: conversation_info(conversation),
                        messages,
                        more: reply.more,
                        before,
                    }]
                }
                Err(err) => vec![NetEvent::HistoryFailed {
                    conversation_id,
                    error: net_error(&err),
                }],
            }
        }
        Effect::Send {
            local_id,
            request_id,
            to,
            body,
            reply_to,
        } => {
            // The app keeps one request id per message across all its
            // resends (see `app::outbox`), so a message queued during an
            // outage is applied exactly once.
            let target = match to {
                SendTo::Conversation(id) => Target::Conversation(id),
                SendTo::User(name) => Target::User(name),
            };
            match client
                .send_reply_with_request_id(&target, &body, reply_to, &request_id)
                .await
            {
                Ok(reply) => match reply.message.as_ref() {
                    Some(message) => vec![NetEvent::Sent {
                        local_id,
                        message: message.clone(),
                    }],
                    None => vec![NetEvent::SendFailed {
                        local_id,
                        error: net_error(&ClientError::missing_field("message")),
                    }],
                },
                Err(err) => vec![NetEvent::SendFailed {
                    local_id,
                    error: net_error(&err),
                }],
            }
        }
        Effect::EditMessage {
            message_id,
            request_id,
            body,
        } => match client
            .edit_message_with_request_id(message_id, &body, &request_id)
            .await
        {
            Ok(reply) => match reply.message {
                Some(message) => vec![NetEvent::EditSaved(message)],
                None => vec![NetEvent::EditFailed {
                    message_id,
                    body,
                    error: net_error(&ClientError::missing_field("message")),
                }],
            },
            Err(err) => vec![NetEvent::EditFailed {
                message_id,
                body,
                error: net_error(&err),
            }],
        },
        // The new reactions arrive as the subscription's `reacted` event,
        // in order with everyone else's (the reply could be older news).
        Effect::React {
            message_id,
            request_id,
            emoji,
        } => match client
            .react_with_request_id(message_id, &emoji, &request_id)
            .await
        {
            Ok(_) => Vec::new(),
            Err(err) => vec![failed("react", &err)],
        },
        Effect::SearchMessages {
            conversation_id,
            query,
            before,
        } => {
            let target = Target::Conversation(conversation_id);
            match client
                .search(Some(&target), &query, before, super::app::SEARCH_PAGE)
                .await
            {
                Ok(reply) => vec![NetEvent::SearchResults {
                    conversation_id,
                    query,
                    before,
                    messages: reply.messages,
                    more: reply.more,
                }],
                Err(err) => vec![failed("search messages", &err)],
            }
        }
        Effect::MarkRead {
            conversation_id,
            up_to,
        } => match client.mark_read(conversation_id, up_to).await {
            Ok(()) => Vec::new(),
            Err(err) => vec![failed("mark messages read", &err)],
        },
        Effect::DeleteMessages { message_ids } => {
            match client.delete_messages(&message_ids).await {
                Ok(reply) => vec![NetEvent::MessagesDeletedByMe {
                    deleted: reply.deleted,
                }],
                Err(err) => vec![failed("delete messages", &err)],
            }
        }
        Effect::ListAccounts {
            pattern,
            after,
            limit,
        } => match client.list_accounts(&pattern, &after, limit).await {
            Ok(reply) => vec![NetEvent::Accounts {
                pattern,
                after,
                accounts: reply.accounts.iter().map(account_info).collect(),
                next_after: reply.next_after,
            }],
            Err(err) => vec![failed("list accounts", &err)],
        },
        Effect::CountAccounts { pattern } => {
            // The API has no count: walk the pages (the largest the server
            // gives), up to a cap.
            let (mut count, mut after) = (0u64, String::new());
            for _ in 0..COUNT_PAGES {
                match client.list_accounts(&pattern, &after, COUNT_PAGE).await {
                    Ok(reply) => {
                        count += u64::try_from(reply.accounts.len()).unwrap_or(0);
                        if reply.next_after.is_empty() {
                            return vec![NetEvent::AccountCount {
                                pattern,
                                count: Some(count),
                                complete: true,
                            }];
                        }
                        after = reply.next_after;
                    }
                    Err(_) => {
                        return vec![NetEvent::AccountCount {
                            pattern,
                            count: None,
                            complete: false,
                        }]
                    }
                }
            }
            vec![NetEvent::AccountCount {
                pattern,
                count: Some(count),
                complete: false,
            }]
        }
        Effect::LookupPresence { usernames } => {
            let mut found = Vec::new();
            for name in usernames {
                if let Ok(reply) = client.list_accounts(&name, "", 1).await {
                    found.extend(
                        reply
                            .accounts
                            .iter()
                            .filter(|a| a.username.eq_ignore_ascii_case(&name))
                            .map(account_info),
                    );
                }
            }
            vec![NetEvent::Presences(found)]
        }
        Effect::CreateGroup { name, members } => match client.create_group(&name, &members).await {
            Ok(reply) => match reply.conversation.as_ref() {
                Some(conversation) => vec![NetEvent::GroupCreated(conversation_info(conversation))],
                None => vec![failed(
                    "create the group",
                    &ClientError::missing_field("conversation"),
                )],
            },
            Err(err) => vec![failed("create the group", &err)],
        },
        Effect::AddMember {
            conversation_id,
            username,
        } => match client.add_member(conversation_id, &username).await {
            Ok(()) => vec![NetEvent::MemberAdded {
                conversation_id,
                username,
            }],
            Err(err) => vec![failed(&format!("add {username}"), &err)],
        },
        Effect::DeleteAccount { password } => match client.delete_account(&password).await {
            Ok(()) => vec![NetEvent::AccountDeleted],
            Err(err) => vec![failed("delete account", &err)],
        },
        // Handled synchronously by `Net::execute`.
        Effect::Subscribe | Effect::Logout | Effect::Typing { .. } => Vec::new(),
        // The local store's (`store.rs`); the event loop never sends them here.
        Effect::LoadSaved { .. }
        | Effect::SaveOutbox { .. }
        | Effect::SaveDrafts { .. }
        | Effect::CloseSaved
        | Effect::Bell
        | Effect::Notify { .. } => Vec::new(),
    }
}

async fn sign_in(client: &ChatClient, username: &str, password: &str) -> NetEvent {
    match client.login(username, password).await {
        Ok(reply) => {
            let username = reply
                .account
                .map(|a| a.username)
                .unwrap_or_else(|| username.to_string());
            NetEvent::SignedIn { username }
        }
        Err(err) => NetEvent::SignInFailed(net_error(&err)),
    }
}

/// Publishes every change of the library's connection state.
async fn watch_connection(client: ChatClient, events: UnboundedSender<NetEvent>) {
    let mut state = client.connection_state();
    loop {
        let info = state.borrow_and_update().clone();
        if events.send(NetEvent::Connection(info)).is_err() || state.changed().await.is_err() {
            return;
        }
    }
}

/// Asks every replica for its status every [`CLUSTER_POLL`].
async fn poll_cluster(client: ChatClient, events: UnboundedSender<NetEvent>) {
    let mut interval = tokio::time::interval(CLUSTER_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let reports = client
            .cluster_status(false)
            .await
            .iter()
            .map(replica_report)
            .collect();
        if events.send(NetEvent::Cluster(reports)).is_err() {
            return;
        }
    }
}

/// Asks the replica in use for its status every [`PROBE`], so the status
/// line can tell within a second when it stops answering (a stopped or
/// cut-off process keeps its connections open: calls just wait).
async fn probe_current(
    client: ChatClient,
    probes: std::collections::HashMap<String, ChatClient>,
    events: UnboundedSender<NetEvent>,
) {
    let mut interval = tokio::time::interval(PROBE);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let server = client.current_server();
        let Some(probe) = probes.get(&server) else {
            continue;
        };
        let started = std::time::Instant::now();
        let ok = probe
            .cluster_status(false)
            .await
            .first()
            .is_some_and(|s| s.result.is_ok());
        let rtt = ok.then(|| started.elapsed());
        if events.send(NetEvent::Answer { server, rtt }).is_err() {
            return;
        }
    }
}

/// Turns a subscription item into an event for the app (None: ignore).
fn subscription_event(item: SubscriptionItem) -> Option<NetEvent> {
    match item {
        SubscriptionItem::Live { server, .. } => Some(NetEvent::SubscriptionLive { server }),
        SubscriptionItem::Reconnecting {
            server,
            attempt,
            error,
        } => Some(NetEvent::SubscriptionReconnecting {
            server,
            attempt,
            error,
        }),
        SubscriptionItem::Resync { .. } => Some(NetEvent::Resync),
        SubscriptionItem::Failed(err) => Some(NetEvent::SubscriptionFailed(net_error(&err))),
        SubscriptionItem::Event(event) => match event.kind? {
            Kind::Message(message) => Some(NetEvent::MessageArrived(message)),
            Kind::Deleted(deleted) => Some(NetEvent::MessagesDeleted {
                conversation_id: deleted.conversation_id,
                message_ids: deleted.message_ids,
            }),
            Kind::Read(read) => Some(NetEvent::ReadReceipt {
                conversation_id: read.conversation_id,
                reader: read.reader,
                up_to: read.up_to,
            }),
            Kind::Membership(change) => Some(NetEvent::Membership {
                conversation: conversation_info(change.conversation.as_ref()?),
                user: change.user,
                change: change.change,
            }),
            Kind::Presence(presence) => Some(NetEvent::Presence {
                user: presence.user,
                online: presence.online,
                last_seen_ms: presence.last_seen_ms,
            }),
            Kind::Resync(_) => Some(NetEvent::Resync),
            Kind::Live(_) => None,
            Kind::Edited(message) | Kind::Reacted(message) => {
                Some(NetEvent::MessageChanged(message))
            }
            Kind::Typing(notice) => Some(NetEvent::Typing {
                conversation_id: notice.conversation_id,
                user: notice.user,
                expires_in_ms: notice.expires_in_ms,
            }),
        },
    }
}

fn failed(op: &str, err: &ClientError) -> NetEvent {
    NetEvent::Failed {
        op: op.to_string(),
        error: net_error(err),
    }
}

fn net_error(err: &ClientError) -> NetError {
    let kind = if err.is_unavailable() {
        ErrorKind::Unavailable
    } else if err.is_unauthenticated() {
        ErrorKind::Unauthenticated
    } else if err.is_already_exists() {
        ErrorKind::AlreadyExists
    } else if err.is_not_found() {
        ErrorKind::NotFound
    } else if err.is_permission_denied() {
        ErrorKind::PermissionDenied
    } else if err.is_invalid_argument() {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Other
    };
    NetError::new(kind, err.message())
}

fn conversation_info(c: &Conversation) -> ConversationInfo {
    let kind = match c.kind() {
        raftchat_client::ConversationKind::Group => ConversationKind::Group,
        _ => ConversationKind::Direct,
    };
    ConversationInfo {
        id: c.id,
        kind,
        name: c.name.clone(),
        members: c.members.clone(),
        unread: c.unread,
        last_message_id: c.last_message_id,
        last_activity_ms: c.last_activity_ms,
        read_up_to: c.read_up_to,
    }
}

fn account_info(a: &Account) -> AccountInfo {
    AccountInfo {
        username: a.username.clone(),
        online: a.online,
        last_seen_ms: a.last_seen_ms,
    }
}

fn replica_report(s: &ServerStatus) -> ReplicaReport {
    ReplicaReport {
        server: s.server.clone(),
        status: s
            .result
            .as_ref()
            .map_err(Clone::clone)
            .map(|r| ReplicaStatus {
                id: r.id,
                url: r.url.clone(),
                role: r.role.clone(),
                term: r.term,
                leader_id: r.leader_id,
                leader_url: r.leader_url.clone(),
                commit_index: r.commit_index,
                applied_index: r.applied_index,
                has_quorum: r.has_quorum,
            }),
    }
}
