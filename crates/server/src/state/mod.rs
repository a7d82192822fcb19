//! The chat state machine: pure, deterministic, no clocks, randomness or I/O.
//!
//! [`ChatState::apply_batch`] is the only way state changes. Everything that
//! could differ between replicas (time, hashes, tokens) arrives inside the
//! [`Batch`]. All collections are ordered (`BTreeMap`/`BTreeSet`/`VecDeque`),
//! so the serialized state — and therefore [`ChatState::digest`] — is
//! identical on every replica that applied the same log. The state contains
//! maps with non-string keys: serialize it with `postcard`, not JSON.
//!
//! What grows with history (messages, remembered request ids) lives in a
//! [`Store`](store::Store), which storage backs with a disk store; the rest
//! (the *core*: accounts, sessions, conversations and read state, presence,
//! clocks) is in RAM, bounded by users and conversations.
//!
//! # Semantics
//!
//! - **Clock.** `now = max(previous now, batch.ts_ms)`; every timestamp stored
//!   uses `now`, so state time never goes backwards across leader changes.
//! - **Batch start.** Remembered request ids older than the dedup window are
//!   forgotten, then every replica whose presence lease is `< now` loses its
//!   subscriptions (offline events follow).
//! - **Events.** Each event gets `seq = ++counter` (replicated) and the
//!   entry's log index. Recipients are sorted user ids.
//! - **Dedup.** A proposal whose request id was applied less than
//!   `DEDUP_WINDOW_MS` ago (state time) returns the stored original result,
//!   `Ok` or `Err`, without applying and without events. Request ids are
//!   scoped by the caller: the session token hash for session commands, the
//!   new token hash for `CreateSession`, the lowercase name for
//!   `CreateAccount`; different callers never share results.
//! - **Validation first.** Every command checks everything before it changes
//!   anything, so a refused command leaves no trace (and no events).
//! - **Hostile input.** Apply re-checks what the services check, because a
//!   forged or buggy proposal must not bloat every replica: request ids at
//!   most `MAX_REQUEST_ID_LEN` bytes (refused before dedup, so not
//!   remembered), password hashes argon2id PHC strings of at most
//!   `MAX_PASSWORD_HASH_LEN` bytes, group names without control
//!   characters, and names that are only looked up no longer than a real
//!   one (refused without echoing them into the error).
//! - **Sessions.** Valid iff present and `now < expires_ms`. A password
//!   change revokes all of the user's other sessions; logout removes one.
//! - **Messages.** Global ids from 1. Sending moves the sender's read pointer
//!   to the new message (their unread in that conversation becomes 0: replying
//!   implies having read); each other member gets one more unread. The
//!   `Message` event goes to every member, sender included.
//! - **Direct conversations** are created by the first message
//!   (`Membership::Created` to both, `user` = the sender; for groups `user`
//!   is the creator). Their view's `name` is the peer's name,
//!   `members` the current members' names.
//! - **Groups.** Names unique ignoring case. A new member starts with the
//!   whole history read. Leaving drops the member's read state; an empty group
//!   is removed with its messages.
//! - **Deleting an account** revokes its sessions, drops its subscriptions
//!   (offline event), removes it from every conversation (`AccountDeleted` to
//!   the remaining members, also in direct conversations), frees its name.
//!   Its messages stay, under the name they were sent with. A direct
//!   conversation stays readable by the peer but cannot be sent to; once both
//!   sides are deleted it is removed, like an empty group.
//! - **Editing a message** (only one's own, still present) replaces its
//!   text in place (same id, same place) and sets `edited_at_ms = now`;
//!   the previous text leaves the state. An `Edited` event with the message
//!   as it is now goes to every member. The result, `Changed`, is
//!   remembered by reference like a send.
//! - **Replies** (`SendReply`) name a message of the same conversation
//!   that exists at the entry; another conversation's message (or a reply
//!   whose target has no conversation yet) is INVALID_ARGUMENT, a missing
//!   or deleted one NOT_FOUND. The reply keeps the id after the original is
//!   deleted; clients show "deleted message".
//! - **Reactions** (`React`): any member, one emoji per user per message:
//!   the same emoji again removes it, another replaces it. 1-32 bytes, no
//!   control characters or whitespace. A `Reacted` event with the message
//!   as it is now goes to every member.
//! - **Deleting messages** removes them (bodies included) from the state and
//!   blanks their bodies in remembered dedup results.
//! - **Presence.** Online iff holding ≥ 1 subscription; each transition sets
//!   `last_seen_ms = now` and sends `Presence` to the user and everyone who
//!   shares a conversation with them.
//! - **Search** (a read, [`ChatState::search`]): the messages of the
//!   conversations the caller is a member of now (or of one of them, checked
//!   like `history`) whose current text contains the query, folded as
//!   [`search`] says, newest first. How a store finds them (an index, a
//!   walk) is its own affair and no part of the state or its digest.

mod accounts;
mod apply;
pub mod command;
mod conversations;
mod dedup;
mod pattern;
mod presence;
pub mod search;
mod sessions;
pub mod store;
#[cfg(test)]
pub(crate) mod tests;

use std::ops::Bound;

use sha2::{Digest, Sha256};

use crate::state::command::*;

pub(crate) use accounts::Accounts;
pub(crate) use conversations::Conversations;
pub(crate) use dedup::Scope;
pub(crate) use presence::Presence;
pub(crate) use sessions::Sessions;
use store::{MemoryStore, MessageRef, Remembered, Store};

pub use accounts::validate_username;
pub use apply::{validate_body, validate_emoji};
pub use conversations::{check_group_lookup_len, validate_group_name};
pub use pattern::wildcard_match;

/// The whole replicated chat state: the core in RAM, and the [`Store`]
/// holding the history. Everything goes through the methods.
pub struct ChatState {
    /// State clock: the largest batch timestamp applied so far.
    pub(crate) now_ms: u64,
    /// The last event `seq` handed out.
    pub(crate) event_seq: u64,
    pub(crate) accounts: Accounts,
    pub(crate) sessions: Sessions,
    pub(crate) conversations: Conversations,
    pub(crate) presence: Presence,
    /// Messages and remembered request ids.
    store: Box<dyn Store>,
    /// SHA-256 chain over every applied batch and its results; see
    /// [`ChatState::history_digest`].
    pub(crate) history: [u8; 32],
    /// The storage each replica recorded it runs on (`RecordIncarnation`).
    pub(crate) replicas: std::collections::BTreeMap<u64, Incarnation>,
    /// The rules this state applies the log by (`SetRules`; see [`RULES`]).
    pub(crate) rules: u32,
    /// State time when the rules last rose: request ids remembered by the
    /// older rules are still looked up for a window after it.
    pub(crate) rules_since_ms: u64,
}

/// The rules of this release's state machine. A replica proposes
/// `SetRules { version: RULES }` at start when the state's are older; the
/// entries before that one are applied by the older rules on every
/// replica, including those replaying the log from an older checkpoint.
/// All replicas must run a release that knows these rules (upgrade them
/// all, as README says): one that does not cannot decode the entry.
///
/// - 0: the first rules.
/// - 1 ([`ACCOUNT_DEDUP`]): request ids of commands acting through a
///   session are remembered per account, not per session.
/// - 2 ([`SESSION_END_EVENTS`]): ending sessions emits an event (it takes
///   an event sequence number), at which their subscriptions end.
pub const RULES: u32 = SESSION_END_EVENTS;

/// The rules from which request ids are remembered per account.
pub const ACCOUNT_DEDUP: u32 = 1;

/// The rules from which ending sessions emits [`EventKind::SessionsEnded`].
pub const SESSION_END_EVENTS: u32 = 2;

/// The core in the order snapshots write it (see [`ChatState::encode_core`]).
type CoreRef<'a> = (
    &'a u64,
    &'a u64,
    &'a Accounts,
    &'a Sessions,
    &'a Conversations,
    &'a Presence,
    &'a [u8; 32],
    &'a std::collections::BTreeMap<u64, Incarnation>,
);
type Core = (
    u64,
    u64,
    Accounts,
    Sessions,
    Conversations,
    Presence,
    [u8; 32],
    std::collections::BTreeMap<u64, Incarnation>,
);

impl Default for ChatState {
    fn default() -> Self {
        ChatState::with_store(Box::new(MemoryStore::default()))
    }
}

impl std::fmt::Debug for ChatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatState")
            .field("now_ms", &self.now_ms)
            .field("event_seq", &self.event_seq)
            .field("history", &hex::encode(self.history))
            .finish_non_exhaustive()
    }
}

/// Equal when they hold the same core and the same records.
impl PartialEq for ChatState {
    fn eq(&self, other: &Self) -> bool {
        self.core_ref() == other.core_ref()
            && (self.rules, self.rules_since_ms) == (other.rules, other.rules_since_ms)
            && self.store.records().eq(other.store.records())
    }
}

impl Eq for ChatState {}

/// Where the events of the entry being applied go.
struct Emitter<'a> {
    index: u64,
    events: &'a mut Vec<ChatEvent>,
}

impl ChatState {
    /// An empty state over `store`, which must be empty too.
    pub fn with_store(store: Box<dyn Store>) -> ChatState {
        ChatState {
            now_ms: 0,
            event_seq: 0,
            accounts: Accounts::default(),
            sessions: Sessions::default(),
            conversations: Conversations::default(),
            presence: Presence::default(),
            store,
            history: [0; 32],
            replicas: Default::default(),
            rules: 0,
            rules_since_ms: 0,
        }
    }

    /// A state from a core written by [`encode_core`](Self::encode_core) and
    /// the store that was next to it.
    pub fn from_core(core: &[u8], store: Box<dyn Store>) -> Result<ChatState, postcard::Error> {
        let (
            (now_ms, event_seq, accounts, sessions, conversations, presence, history, replicas),
            rest,
        ): (Core, _) = postcard::take_from_bytes(core)?;
        // Cores written before the rules were kept end here.
        let (rules, rules_since_ms) = if rest.is_empty() {
            (0, 0)
        } else {
            postcard::from_bytes(rest)?
        };
        Ok(ChatState {
            rules,
            rules_since_ms,
            now_ms,
            event_seq,
            accounts,
            sessions,
            conversations,
            presence,
            store,
            history,
            replicas,
        })
    }

    /// Everything but the store, for snapshots: bounded by users and
    /// conversations, not by history.
    pub fn encode_core(&self) -> Result<Vec<u8>, postcard::Error> {
        let core = postcard::to_stdvec(&self.core_ref())?;
        // After the tuple, so that older cores still decode.
        postcard::to_extend(&(self.rules, self.rules_since_ms), core)
    }

    fn core_ref(&self) -> CoreRef<'_> {
        (
            &self.now_ms,
            &self.event_seq,
            &self.accounts,
            &self.sessions,
            &self.conversations,
            &self.presence,
            &self.history,
            &self.replicas,
        )
    }

    /// The history and the request-id window.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The store as its concrete type `S` (`None` if it is another), for
    /// the upkeep only its owner knows, such as a disk store's checkpoints.
    pub fn store_as<S: Store>(&self) -> Option<&S> {
        let store: &dyn std::any::Any = &*self.store;
        store.downcast_ref()
    }

    /// [`store_as`](Self::store_as), mutable.
    pub fn store_as_mut<S: Store>(&mut self) -> Option<&mut S> {
        let store: &mut dyn std::any::Any = &mut *self.store;
        store.downcast_mut()
    }

    /// Applies one log entry. Returns one result per proposal, in order, and
    /// appends the user-visible events it produced to `events` (numbered from
    /// the replicated event counter, stamped with `index`).
    pub fn apply_batch(
        &mut self,
        index: u64,
        batch: &Batch,
        events: &mut Vec<ChatEvent>,
    ) -> Vec<CommandResult> {
        self.now_ms = self.now_ms.max(batch.ts_ms);
        let mut out = Emitter { index, events };
        dedup::evict(&mut *self.store, self.now_ms);
        self.expire_leases(&mut out);
        let results: Vec<CommandResult> = batch
            .proposals
            .iter()
            .map(|p| self.apply_proposal(&mut out, p))
            .collect();
        self.history = chain(&self.history, index, batch, &results, self.event_seq);
        results
    }

    /// A digest of everything applied so far, O(1) to read: replicas with
    /// the same applied index and the same history digest applied the same
    /// batches and got the same results (and, the state machine being
    /// deterministic, hold the same state). It travels in snapshots, so a
    /// replica that installed one continues the same chain.
    /// [`digest`](Self::digest) hashes the whole state instead, which costs
    /// O(state).
    /// The storage incarnation recorded for `replica`, if any.
    pub fn incarnation_of(&self, replica: u64) -> Option<Incarnation> {
        self.replicas.get(&replica).copied()
    }

    pub fn history_digest(&self) -> [u8; 32] {
        self.history
    }

    fn apply_proposal(&mut self, out: &mut Emitter<'_>, proposal: &Proposal) -> CommandResult {
        // The services refuse longer ids; a forged or buggy proposal with
        // one is refused here too, and not remembered.
        if let Some(id) = &proposal.request_id {
            if id.len() > MAX_REQUEST_ID_LEN {
                return Err(ChatError::invalid(format!(
                    "request_id is longer than {MAX_REQUEST_ID_LEN} bytes"
                )));
            }
        }
        let Some(id) = &proposal.request_id else {
            return self.apply_command(out, &proposal.command);
        };
        let scope = self.dedup_scope(&proposal.command);
        match self.dedup_lookup(&proposal.command, &scope, id) {
            Some(Remembered::Other(original)) => return *original,
            Some(Remembered::Sent(sent)) => return Ok(Outcome::Sent(self.sent_view(sent))),
            Some(Remembered::Changed(changed)) => {
                return Ok(Outcome::Changed(self.sent_view(changed)))
            }
            Some(Remembered::Messages {
                messages,
                remaining,
            }) => {
                let messages = messages
                    .into_iter()
                    .map(|stored| {
                        let view = stored.view();
                        match self.store.message(view.conversation, view.id) {
                            Some(m) => m.view(view.conversation, view.id),
                            None => view,
                        }
                    })
                    .collect();
                return Ok(Outcome::Messages {
                    messages,
                    remaining,
                });
            }
            None => {}
        }
        let result = self.apply_command(out, &proposal.command);
        dedup::remember(&mut *self.store, &scope, id, self.now_ms, &result);
        // A command that ends its own session is retried with that session,
        // which no longer names an account: remember it under both.
        if let (
            Scope::Account(_),
            Command::EndSession { session } | Command::DeleteAccount { session, .. },
        ) = (&scope, &proposal.command)
        {
            dedup::remember(
                &mut *self.store,
                &Scope::Token(*session),
                id,
                self.now_ms,
                &result,
            );
        }
        result
    }

    /// Whose request ids `command`'s id is among: by the rules since
    /// [`ACCOUNT_DEDUP`], the account of a session that is valid now,
    /// whichever of its sessions it uses; else [`Scope::of`].
    fn dedup_scope(&self, command: &Command) -> Scope {
        let scope = Scope::of(command);
        match scope {
            // A login's token is not a session yet.
            Scope::Token(token)
                if self.rules >= ACCOUNT_DEDUP
                    && !matches!(command, Command::CreateSession { .. }) =>
            {
                self.sessions
                    .check(&token, self.now_ms)
                    .map_or(scope, Scope::Account)
            }
            scope => scope,
        }
    }

    /// The result remembered for `id` in `scope`. A retry of a request first
    /// applied before the rules scoped ids by account was remembered by its
    /// session: within a window after the change, that is looked up too
    /// (without it, a retry that straddled `SetRules` applied twice).
    fn dedup_lookup(&self, command: &Command, scope: &Scope, id: &str) -> Option<Remembered> {
        let now = self.now_ms;
        dedup::lookup(&*self.store, scope, id, now).or_else(|| {
            let straddles = matches!(scope, Scope::Account(_))
                && now < self.rules_since_ms.saturating_add(DEDUP_WINDOW_MS);
            straddles
                .then(|| dedup::lookup(&*self.store, &Scope::of(command), id, now))
                .flatten()
        })
    }

    /// The rules this state applies the log by (see [`RULES`]).
    pub fn rules(&self) -> u32 {
        self.rules
    }

    /// A retried send's original result, rebuilt from the stored message;
    /// once the message is deleted, its body is empty and the sender is
    /// named from the account, if it still exists.
    fn sent_view(&self, sent: MessageRef) -> MessageView {
        let MessageRef {
            id,
            conversation,
            sender_id,
            sent_ms,
            index,
        } = sent;
        match self.store.message(conversation, id) {
            Some(m) => m.view(conversation, id),
            None => MessageView {
                id,
                conversation,
                sender_id,
                sender: self
                    .accounts
                    .name(sender_id)
                    .unwrap_or_default()
                    .to_string(),
                body: String::new(),
                sent_ms,
                index,
                edited_at_ms: 0,
                reply_to: 0,
                reactions: Vec::new(),
            },
        }
    }

    /// Numbers and records one event.
    fn emit(&mut self, out: &mut Emitter<'_>, recipients: Vec<UserId>, kind: EventKind) {
        self.event_seq += 1;
        out.events.push(ChatEvent {
            seq: self.event_seq,
            index: out.index,
            recipients,
            kind,
        });
    }

    /// Tells `user`'s subscriptions that `sessions` ended (by the rules
    /// since [`SESSION_END_EVENTS`]).
    fn sessions_ended(&mut self, out: &mut Emitter<'_>, user: UserId, sessions: Vec<TokenHash>) {
        if self.rules >= SESSION_END_EVENTS && !sessions.is_empty() {
            self.emit(out, vec![user], EventKind::SessionsEnded { sessions });
        }
    }

    /// The state clock: the newest batch timestamp applied (0 before any).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The user a session token belongs to, if the session exists and has not
    /// expired at `now_ms`.
    pub fn authenticate(&self, session: &TokenHash, now_ms: u64) -> Result<UserId, ChatError> {
        self.sessions.check(session, now_ms)
    }

    /// The account and its argon2id PHC password hash, by name (ignoring case).
    pub fn account_credentials(&self, username: &str) -> Option<(AccountView, String)> {
        let id = self.accounts.find(username)?;
        let hash = self.accounts.get(id)?.password_hash.clone();
        Some((self.account(id)?, hash))
    }

    /// The account of a user id (deleted accounts are `None`).
    pub fn account(&self, user: UserId) -> Option<AccountView> {
        let a = self.accounts.get(user)?;
        Some(AccountView {
            id: user,
            username: a.username.clone(),
            online: self.presence.is_online(user),
            last_seen_ms: a.last_seen_ms,
            created_ms: a.created_ms,
        })
    }

    /// The current name of an account (deleted accounts are `None`).
    pub fn username(&self, user: UserId) -> Option<&str> {
        self.accounts.name(user)
    }

    /// Whether `user` is a member of `conversation`.
    pub fn is_member(&self, user: UserId, conversation: ConversationId) -> bool {
        self.conversation_member(user, conversation).is_ok()
    }

    /// Ok if `user` is a member of `conversation`; NOT_FOUND or
    /// PERMISSION_DENIED as for any other read of it.
    pub fn conversation_member(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<(), ChatError> {
        self.conversations.member_of(conversation, user).map(|_| ())
    }

    /// Whether `user` holds at least one live subscription.
    pub fn is_online(&self, user: UserId) -> bool {
        self.presence.is_online(user)
    }

    /// Accounts whose name matches `pattern` (`*`, `?`, case-insensitive),
    /// ordered by lowercase name, strictly after `after`; at most `limit`.
    /// Returns the page and the cursor for the next page, if any.
    pub fn list_accounts(
        &self,
        pattern: &str,
        after: &str,
        limit: usize,
    ) -> (Vec<AccountView>, Option<String>) {
        let pattern: Vec<char> = if pattern.is_empty() {
            vec!['*']
        } else {
            pattern.to_lowercase().chars().collect()
        };
        let prefix = pattern::literal_prefix(&pattern);
        let after = after.to_lowercase();
        // Every match starts with the literal prefix: start the scan there.
        let start = if after.as_str() >= prefix.as_str() {
            Bound::Excluded(after.as_str())
        } else {
            Bound::Included(prefix.as_str())
        };
        let mut matches = self
            .accounts
            .names_from(start)
            .take_while(|(name, _)| name.starts_with(prefix.as_str()))
            .filter(|(name, _)| {
                let name: Vec<char> = name.chars().collect();
                pattern::wildcard_match(&pattern, &name)
            });
        let mut page = Vec::new();
        let mut last = None;
        for (name, id) in matches.by_ref().take(limit) {
            if let Some(view) = self.account(id) {
                page.push(view);
                last = Some(name.clone());
            }
        }
        let next = if matches.next().is_some() { last } else { None };
        (page, next)
    }

    fn conversation_view(&self, id: ConversationId, user: UserId) -> Option<ConversationView> {
        let c = self.conversations.get(id)?;
        let me = c.members.get(&user)?;
        let mut members: Vec<String> = c.members.values().map(|m| m.name.clone()).collect();
        members.sort_by_key(|n| n.to_lowercase());
        Some(ConversationView {
            id,
            kind: c.kind,
            name: c.display_name(user).to_owned(),
            members,
            unread: me.unread,
            last_message_id: c.last_message_id,
            last_activity_ms: c.last_activity_ms,
            read_up_to: me.read_up_to,
        })
    }

    /// `user`'s conversations, most recent activity first (ties: newer
    /// conversation first).
    pub fn conversations(&self, user: UserId) -> Vec<ConversationView> {
        let mut views: Vec<ConversationView> = self
            .conversations
            .of_user(user)
            .filter_map(|id| self.conversation_view(id, user))
            .collect();
        views.sort_by_key(|v| std::cmp::Reverse((v.last_activity_ms, v.id)));
        views
    }

    /// One conversation as `user` sees it; PERMISSION_DENIED if not a member.
    pub fn conversation(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<ConversationView, ChatError> {
        self.conversations.member_of(conversation, user)?;
        self.conversation_view(conversation, user).ok_or_else(|| {
            ChatError::not_found(format!("conversation {conversation} does not exist"))
        })
    }

    /// Resolves a target to an existing conversation `user` belongs to.
    /// A direct conversation that has no message yet is NOT_FOUND.
    pub fn resolve(&self, user: UserId, target: &Target) -> Result<ConversationId, ChatError> {
        match target {
            Target::User(name) => {
                let peer = self.accounts.require(name)?;
                if peer == user {
                    return Err(ChatError::invalid("there is no conversation with yourself"));
                }
                self.conversations
                    .direct_between(user, peer)
                    .ok_or_else(|| {
                        ChatError::not_found(format!("no conversation with '{name}' yet"))
                    })
            }
            Target::Group(name) => {
                check_group_lookup_len(name)?;
                let id = self
                    .conversations
                    .group_by_name(name)
                    .ok_or_else(|| ChatError::not_found(format!("no group named '{name}'")))?;
                self.conversations
                    .member_of(id, user)
                    .map_err(|_| ChatError::denied(format!("you are not a member of '{name}'")))?;
                Ok(id)
            }
            Target::Conversation(id) => {
                self.conversations.member_of(*id, user)?;
                Ok(*id)
            }
        }
    }

    /// A page of history, newest first, ids below `before` (0 = newest), and
    /// whether older messages remain.
    pub fn history(
        &self,
        user: UserId,
        conversation: ConversationId,
        before: MessageId,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), ChatError> {
        self.conversations.member_of(conversation, user)?;
        let upper = if before == 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(before)
        };
        let mut older = self
            .store
            .messages(conversation, (Bound::Unbounded, upper), true);
        let page = older
            .by_ref()
            .take(limit)
            .map(|(id, m)| m.view(conversation, id))
            .collect();
        Ok((page, older.next().is_some()))
    }

    /// A page of `user`'s messages matching `query`, newest first, ids
    /// below `before` (0 = newest), from `conversation` or, if `None`, from
    /// every conversation `user` is a member of now; and whether more
    /// matches remain below the page. Membership is checked like
    /// [`history`](Self::history)'s.
    pub fn search(
        &self,
        user: UserId,
        conversation: Option<ConversationId>,
        query: &search::Query,
        before: MessageId,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), ChatError> {
        let scope: std::collections::BTreeSet<ConversationId> = match conversation {
            Some(id) => {
                self.conversations.member_of(id, user)?;
                [id].into()
            }
            None => self.conversations.of_user(user).collect(),
        };
        if scope.is_empty() || limit == 0 {
            return Ok((Vec::new(), false));
        }
        let mut found = self
            .store
            .search(&scope, query, before, limit.saturating_add(1));
        let more = found.len() > limit;
        found.truncate(limit);
        let page = found
            .into_iter()
            .map(|f| f.message.view(f.conversation, f.id))
            .collect();
        Ok((page, more))
    }

    /// Total unread messages of `user` across conversations.
    pub fn total_unread(&self, user: UserId) -> u64 {
        self.conversations
            .of_user(user)
            .map(|c| self.conversations.unread(c, user))
            .sum()
    }

    /// The seq of the last event produced (0 = none yet).
    pub fn last_event_seq(&self) -> u64 {
        self.event_seq
    }

    /// The earliest presence lease expiry, if any replica holds subscriptions.
    /// The leader proposes a `Tick` after it passes.
    pub fn next_lease_expiry(&self) -> Option<u64> {
        self.presence.next_expiry()
    }

    /// SHA-256 over the canonical serialization of the whole state: the
    /// core, then every record of the store in order. O(state): for tests
    /// and checks, not the hot path.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        // Writing plain data into a hasher cannot fail.
        let _ = postcard::to_io(&self.core_ref(), &mut h);
        for record in self.store.records() {
            let _ = postcard::to_io(&record, &mut h);
        }
        h.finalize().into()
    }
}

/// One step of the history chain.
fn chain(
    prev: &[u8; 32],
    index: u64,
    batch: &Batch,
    results: &[CommandResult],
    event_seq: u64,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(index.to_le_bytes());
    // Streamed into the hash, not copied; writing to a hasher cannot fail.
    let _ = postcard::to_io(batch, &mut h);
    for result in results {
        match result {
            // The body is the proposal's, hashed just above: at a million
            // messages hashing it twice was a fifth of replaying the log.
            Ok(Outcome::Sent(v)) => {
                h.update([0u8]);
                let _ = postcard::to_io(
                    &(
                        v.id,
                        v.conversation,
                        v.sender_id,
                        &v.sender,
                        v.sent_ms,
                        v.index,
                    ),
                    &mut h,
                );
            }
            other => {
                h.update([1u8]);
                let _ = postcard::to_io(other, &mut h);
            }
        }
    }
    h.update(event_seq.to_le_bytes());
    h.finalize().into()
}
