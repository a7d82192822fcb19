//! The `Chat` gRPC service.
//!
//! Each handler does the nondeterministic part of a request here, on the
//! replica that received it (validating input, hashing passwords, minting
//! tokens), then either proposes a [`Command`] through the log (writes) or
//! reads the local state after a linearizable read barrier (reads).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::{self, chat_error, remote_failure, respond};
use crate::api::presence::Presence;
use crate::api::proto::chat_server::Chat;
use crate::api::proto::{self, history_request, search_request, send_message_request};
use crate::api::send_stream;
use crate::api::subscribe;
use crate::api::throttle::{throttle, Keys};
use crate::api::typing::TypingLimits;
use crate::raft::consensus::{now_ms, Consensus};
use crate::raft::typing::{TypingNotice, TypingRelay};
use crate::state::command::*;
use crate::state::search::{Query, MAX_QUERY_BYTES};
use crate::state::{
    check_group_lookup_len, validate_body, validate_emoji, validate_group_name, validate_username,
};

// Clients check the same limit before sending (`raftchat_proto::contract`).
const _: () = assert!(MAX_BODY_BYTES == raftchat_proto::contract::MAX_BODY_BYTES);
const _: () = assert!(MAX_QUERY_BYTES == raftchat_proto::contract::MAX_SEARCH_QUERY_BYTES);
use crate::storage::events::EventHub;
use crate::storage::SharedState;

/// What every handler needs; shared by the Chat and Cluster services.
pub struct ServiceContext {
    pub consensus: Consensus,
    pub state: SharedState,
    pub hub: Arc<EventHub>,
    pub presence: Presence,
    /// Typing notices to and from every replica, and their rate limit.
    pub typing: Arc<TypingRelay>,
    pub typing_limits: TypingLimits,
    pub session_ttl: Duration,
    /// Becomes `true` when the replica starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;
/// Search pages are smaller: each match is a message read and checked.
const DEFAULT_SEARCH_PAGE: u32 = 20;
const MAX_SEARCH_PAGE: u32 = 100;

/// Searches running at once on this replica (one replica per process);
/// more wait their turn.
static SEARCHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

impl ServiceContext {
    pub fn check_running(&self) -> Result<(), Status> {
        if *self.shutdown.borrow() {
            Err(Status::unavailable("replica is shutting down"))
        } else {
            Ok(())
        }
    }

    /// Proposes a write and returns its outcome.
    async fn write(&self, request_id: String, command: Command) -> Result<Outcome, Status> {
        self.check_running()?;
        if request_id.len() > MAX_REQUEST_ID_LEN {
            return Err(Status::invalid_argument(format!(
                "request_id is longer than {MAX_REQUEST_ID_LEN} bytes"
            )));
        }
        let proposal = Proposal {
            request_id: (!request_id.is_empty()).then_some(request_id),
            command,
        };
        self.consensus
            .propose(proposal)
            .await
            .map_err(remote_failure)?
            .map_err(chat_error)
    }

    async fn barrier(&self) -> Result<(), Status> {
        self.check_running()?;
        self.consensus.read_barrier().await.map_err(remote_failure)
    }

    /// Reads the local state (after a barrier when linearizability matters).
    fn read<T>(&self, f: impl FnOnce(&crate::state::ChatState) -> T) -> T {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard.chat)
    }

    /// The user behind the request's session, checked against local state.
    fn user(&self, session: &TokenHash) -> Result<UserId, Status> {
        self.check_running()?;
        self.read(|s| s.authenticate(session, now_ms()))
            .map_err(chat_error)
    }

    /// Password verification for an existing session's account, throttled
    /// like a login (a stolen session must not become a password oracle).
    async fn verify_own_password(
        &self,
        session: &TokenHash,
        password: String,
        peer: Option<IpAddr>,
    ) -> Result<String, Status> {
        let ticket = auth::reserve()?;
        self.barrier().await?;
        let user = self.user(session)?;
        let (account, hash) = self
            .read(|s| {
                s.account(user)
                    .and_then(|a| s.account_credentials(&a.username))
            })
            .ok_or_else(|| Status::unauthenticated("account no longer exists"))?;
        let keys = Keys::new(Some(&account.username), peer);
        throttle().check(&keys, Instant::now())?;
        let right = password.len() <= auth::MAX_PASSWORD_BYTES
            && ticket.verify_password(password, Some(hash.clone())).await?;
        if !right {
            throttle().failed(&keys, Instant::now());
            return Err(Status::unauthenticated("wrong password"));
        }
        throttle().succeeded(&keys);
        Ok(hash)
    }

    /// Sends one message for `session` and returns it as stored: the body
    /// of both `SendMessage` and `SendStream`.
    pub async fn send(
        &self,
        session: TokenHash,
        req: proto::SendMessageRequest,
    ) -> Result<proto::Message, Status> {
        let target = match req.to {
            Some(send_message_request::To::User(u)) => Target::User(u),
            Some(send_message_request::To::Group(g)) => Target::Group(g),
            Some(send_message_request::To::ConversationId(id)) => Target::Conversation(id),
            None => {
                return Err(Status::invalid_argument(
                    "say who the message is to: user, group or conversation_id",
                ))
            }
        };
        check_target(&target)?;
        check_body(&req.body)?;
        // A plain send stays a `Send`, as before replies existed.
        let command = match req.reply_to {
            0 => Command::Send {
                session,
                target,
                body: req.body,
            },
            reply_to => Command::SendReply {
                session,
                target,
                body: req.body,
                reply_to,
            },
        };
        match self.write(req.request_id, command).await? {
            Outcome::Sent(m) => Ok(convert::message(m)),
            o => Err(unexpected(o)),
        }
    }
}

/// Resolves once the replica starts shutting down (or the sender of
/// `shutdown` is gone, which means the same): for long-lived streams.
pub async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// A request's page size: `default` for 0, at most `max`.
fn page_of(limit: u32, default: u32, max: u32) -> usize {
    let n = match limit {
        0 => default,
        n => n.min(max),
    };
    n as usize
}

fn page(limit: u32) -> usize {
    page_of(limit, DEFAULT_PAGE, MAX_PAGE)
}

fn search_page(limit: u32) -> usize {
    page_of(limit, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE)
}

/// Names a request looks up: refused here when no account or group can
/// have them, before they cost a log entry (apply checks again).
fn check_target(target: &Target) -> Result<(), Status> {
    match target {
        Target::User(name) => check_username_len(name),
        Target::Group(name) => check_group_lookup_len(name).map_err(chat_error),
        Target::Conversation(_) => Ok(()),
    }
}

/// A message text: refused here, before it costs a log entry, when apply
/// would refuse it (apply checks again).
fn check_body(body: &str) -> Result<(), Status> {
    validate_body(body).map_err(chat_error)
}

fn check_username_len(name: &str) -> Result<(), Status> {
    if name.len() > MAX_USERNAME_LEN {
        return Err(Status::invalid_argument(format!(
            "username is longer than {MAX_USERNAME_LEN} bytes"
        )));
    }
    Ok(())
}

fn unexpected(o: Outcome) -> Status {
    Status::internal(format!("unexpected state machine outcome: {o:?}"))
}

pub struct ChatService {
    pub ctx: Arc<ServiceContext>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Chat for ChatService {
    async fn create_account(
        &self,
        req: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::CreateAccountReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let req = req.into_inner();
            // Cheap checks first: a bad name must not cost an argon2 hash.
            validate_username(&req.username).map_err(chat_error)?;
            auth::check_new_password(&req.password, "password")?;
            let password_hash = auth::reserve()?.hash_password(req.password).await?;
            let command = Command::CreateAccount {
                username: req.username,
                password_hash,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Account(a) => Ok(proto::CreateAccountReply {
                    account: Some(convert::account(a)),
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn login(
        &self,
        req: Request<proto::LoginRequest>,
    ) -> Result<Response<proto::LoginReply>, Status> {
        let ctx = &self.ctx;
        let peer = req.remote_addr().map(|a| a.ip());
        let r = async {
            let req = req.into_inner();
            // The same answer, in the same time, for an unknown name and a
            // wrong password: no way to tell which names exist.
            let wrong = || Status::unauthenticated("wrong username or password");
            let well_formed = validate_username(&req.username).is_ok();
            let keys = Keys::new(well_formed.then_some(req.username.as_str()), peer);
            throttle().check(&keys, Instant::now())?;
            if !well_formed
                || req.password.is_empty()
                || req.password.len() > auth::MAX_PASSWORD_BYTES
            {
                // No account has such a name or password, as anyone can
                // tell from the rules: no argon2 needed.
                throttle().failed(&keys, Instant::now());
                return Err(wrong());
            }
            // Before the barrier (a round of heartbeats): refusing costs
            // next to nothing when the pool is full.
            let ticket = auth::reserve()?;
            ctx.barrier().await?;
            let hash = ctx
                .read(|s| s.account_credentials(&req.username))
                .map(|(_, hash)| hash);
            // Unknown names are checked against a dummy hash.
            if !ticket.verify_password(req.password, hash.clone()).await? {
                throttle().failed(&keys, Instant::now());
                return Err(wrong());
            }
            throttle().succeeded(&keys);
            let hash = hash.ok_or_else(wrong)?;
            let token = auth::new_token();
            let command = Command::CreateSession {
                username: req.username,
                verified_hash: hash,
                token_hash: auth::token_hash(&token),
                expires_ms: now_ms() + ctx.session_ttl.as_millis() as u64,
            };
            // A retried login simply opens another session (the unused one
            // expires), so the token never has to be replayed from the log.
            match ctx.write(String::new(), command).await? {
                Outcome::Session {
                    account,
                    unread,
                    expires_ms,
                } => Ok(proto::LoginReply {
                    token,
                    account: Some(convert::account(account)),
                    unread,
                    expires_at_ms: expires_ms,
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn logout(
        &self,
        req: Request<proto::LogoutRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            ctx.write(req.request_id, Command::EndSession { session })
                .await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn change_password(
        &self,
        req: Request<proto::ChangePasswordRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let peer = req.remote_addr().map(|a| a.ip());
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            auth::check_new_password(&req.new_password, "new_password")?;
            let verified_hash = ctx
                .verify_own_password(&session, req.old_password, peer)
                .await?;
            let new_hash = auth::reserve()?.hash_password(req.new_password).await?;
            let command = Command::ChangePassword {
                session,
                verified_hash,
                new_hash,
            };
            ctx.write(req.request_id, command).await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn delete_account(
        &self,
        req: Request<proto::DeleteAccountRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let peer = req.remote_addr().map(|a| a.ip());
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let verified_hash = ctx
                .verify_own_password(&session, req.password, peer)
                .await?;
            let command = Command::DeleteAccount {
                session,
                verified_hash,
            };
            ctx.write(req.request_id, command).await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn list_accounts(
        &self,
        req: Request<proto::ListAccountsRequest>,
    ) -> Result<Response<proto::ListAccountsReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            // Only users may list users: anonymous enumeration is refused.
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            if req.pattern.len() > 256 {
                return Err(Status::invalid_argument("pattern is longer than 256 bytes"));
            }
            ctx.barrier().await?;
            ctx.user(&session)?;
            let (accounts, next) =
                ctx.read(|s| s.list_accounts(&req.pattern, &req.after, page(req.limit)));
            Ok(proto::ListAccountsReply {
                accounts: accounts.into_iter().map(convert::account).collect(),
                next_after: next.unwrap_or_default(),
            })
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn send_message(
        &self,
        req: Request<proto::SendMessageRequest>,
    ) -> Result<Response<proto::SendMessageReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let message = ctx.send(session, req.into_inner()).await?;
            Ok(proto::SendMessageReply {
                message: Some(message),
            })
        }
        .await;
        respond(&ctx.consensus, r)
    }

    type SendStreamStream = send_stream::Replies;

    async fn send_stream(
        &self,
        req: Request<tonic::Streaming<proto::SendMessageRequest>>,
    ) -> Result<Response<Self::SendStreamStream>, Status> {
        let r = (|| {
            let session = auth::session_from(req.metadata())?;
            self.ctx.check_running()?;
            Ok(send_stream::serve(
                self.ctx.clone(),
                session,
                req.into_inner(),
            ))
        })();
        respond(&self.ctx.consensus, r)
    }

    async fn create_group(
        &self,
        req: Request<proto::CreateGroupRequest>,
    ) -> Result<Response<proto::CreateGroupReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            validate_group_name(&req.name).map_err(chat_error)?;
            for member in &req.members {
                check_username_len(member)?;
            }
            let command = Command::CreateGroup {
                session,
                name: req.name,
                members: req.members,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Conversation(c) => Ok(proto::CreateGroupReply {
                    conversation: Some(convert::conversation(c)),
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn add_member(
        &self,
        req: Request<proto::AddMemberRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            check_username_len(&req.username)?;
            let command = Command::AddMember {
                session,
                conversation: req.conversation_id,
                username: req.username,
            };
            ctx.write(req.request_id, command).await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn leave_group(
        &self,
        req: Request<proto::LeaveGroupRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let command = Command::LeaveGroup {
                session,
                conversation: req.conversation_id,
            };
            ctx.write(req.request_id, command).await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn list_conversations(
        &self,
        req: Request<proto::ListConversationsRequest>,
    ) -> Result<Response<proto::ListConversationsReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            ctx.barrier().await?;
            let user = ctx.user(&session)?;
            let (conversations, total_unread) =
                ctx.read(|s| (s.conversations(user), s.total_unread(user)));
            Ok(proto::ListConversationsReply {
                conversations: conversations
                    .into_iter()
                    .map(convert::conversation)
                    .collect(),
                total_unread,
            })
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn history(
        &self,
        req: Request<proto::HistoryRequest>,
    ) -> Result<Response<proto::HistoryReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let target = match req.with {
                Some(history_request::With::User(u)) => Target::User(u),
                Some(history_request::With::Group(g)) => Target::Group(g),
                Some(history_request::With::ConversationId(id)) => Target::Conversation(id),
                None => {
                    return Err(Status::invalid_argument(
                        "say which conversation: user, group or conversation_id",
                    ))
                }
            };
            ctx.barrier().await?;
            let user = ctx.user(&session)?;
            ctx.read(|s| {
                let conversation = s.resolve(user, &target)?;
                let view = s.conversation(user, conversation)?;
                let (messages, more) =
                    s.history(user, conversation, req.before, page(req.limit))?;
                Ok(proto::HistoryReply {
                    conversation: Some(convert::conversation(view)),
                    messages: messages.into_iter().map(convert::message).collect(),
                    more,
                })
            })
            .map_err(chat_error)
        }
        .await;
        respond(&ctx.consensus, r)
    }

    /// A read like `history`: after the barrier, from this replica's
    /// state and its own search index.
    async fn search(
        &self,
        req: Request<proto::SearchRequest>,
    ) -> Result<Response<proto::SearchReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let scope = match req.r#in {
                Some(search_request::In::User(u)) => Some(Target::User(u)),
                Some(search_request::In::Group(g)) => Some(Target::Group(g)),
                Some(search_request::In::ConversationId(id)) => Some(Target::Conversation(id)),
                None => None,
            };
            if let Some(target) = &scope {
                check_target(target)?;
            }
            let query = Query::new(&req.query).map_err(chat_error)?;
            ctx.barrier().await?;
            let user = ctx.user(&session)?;
            // A search reads the disk and can take milliseconds: off the
            // runtime's workers, and a few at a time, so searches cannot
            // stall the replica's other work or hold apply back for long.
            let _turn = SEARCHES
                .acquire()
                .await
                .map_err(|_| Status::unavailable("replica is shutting down"))?;
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || {
                ctx.read(|s| {
                    let conversation = scope.map(|t| s.resolve(user, &t)).transpose()?;
                    let (messages, more) = s.search(
                        user,
                        conversation,
                        &query,
                        req.before,
                        search_page(req.limit),
                    )?;
                    Ok(proto::SearchReply {
                        messages: messages.into_iter().map(convert::message).collect(),
                        more,
                    })
                })
                .map_err(chat_error)
            })
            .await
            .map_err(|e| Status::internal(format!("search failed: {e}")))?
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn read_unread(
        &self,
        req: Request<proto::ReadUnreadRequest>,
    ) -> Result<Response<proto::ReadUnreadReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let command = Command::ReadUnread {
                session,
                conversation: (req.conversation_id != 0).then_some(req.conversation_id),
                limit: req.limit,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Messages {
                    messages,
                    remaining,
                } => Ok(proto::ReadUnreadReply {
                    messages: messages.into_iter().map(convert::message).collect(),
                    remaining,
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn mark_read(
        &self,
        req: Request<proto::MarkReadRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let command = Command::MarkRead {
                session,
                conversation: req.conversation_id,
                up_to: req.up_to,
            };
            ctx.write(req.request_id, command).await?;
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn delete_messages(
        &self,
        req: Request<proto::DeleteMessagesRequest>,
    ) -> Result<Response<proto::DeleteMessagesReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            let command = Command::DeleteMessages {
                session,
                ids: req.message_ids,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Deleted(n) => Ok(proto::DeleteMessagesReply { deleted: n }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn edit_message(
        &self,
        req: Request<proto::EditMessageRequest>,
    ) -> Result<Response<proto::EditMessageReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            check_body(&req.body)?;
            let command = Command::EditMessage {
                session,
                id: req.message_id,
                body: req.body,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Changed(m) => Ok(proto::EditMessageReply {
                    message: Some(convert::message(m)),
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn react(
        &self,
        req: Request<proto::ReactRequest>,
    ) -> Result<Response<proto::ReactReply>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let req = req.into_inner();
            validate_emoji(&req.emoji).map_err(chat_error)?;
            let command = Command::React {
                session,
                id: req.message_id,
                emoji: req.emoji,
            };
            match ctx.write(req.request_id, command).await? {
                Outcome::Changed(m) => Ok(proto::ReactReply {
                    message: Some(convert::message(m)),
                }),
                o => Err(unexpected(o)),
            }
        }
        .await;
        respond(&ctx.consensus, r)
    }

    type SubscribeStream = EventStream;

    async fn typing(
        &self,
        req: Request<proto::TypingRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let ctx = &self.ctx;
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let conversation = req.into_inner().conversation_id;
            let member = |ctx: &ServiceContext| -> Result<UserId, Status> {
                let user = ctx.user(&session)?;
                ctx.read(|s| s.conversation_member(user, conversation))
                    .map_err(chat_error)?;
                Ok(user)
            };
            // Local state first: no round trip to the leader for what is
            // worth nothing in a few seconds. A session or membership this
            // replica has not applied yet gets the read barrier.
            let user = match member(ctx) {
                Ok(user) => user,
                Err(_) => {
                    ctx.barrier().await?;
                    member(ctx)?
                }
            };
            if ctx
                .typing_limits
                .admit(user, conversation, std::time::Instant::now())
            {
                ctx.typing
                    .publish(&ctx.consensus, TypingNotice { conversation, user });
            }
            Ok(proto::Ack {})
        }
        .await;
        respond(&ctx.consensus, r)
    }

    async fn subscribe(
        &self,
        req: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let ctx = self.ctx.clone();
        let r = async {
            let session = auth::session_from(req.metadata())?;
            let slot = subscribe::reserve(session)?;
            ctx.barrier().await?;
            let user = ctx.user(&session)?;
            Ok(subscribe::stream(
                ctx.clone(),
                slot,
                user,
                req.into_inner().after_seq,
            ))
        }
        .await;
        respond(&self.ctx.consensus, r)
    }
}
