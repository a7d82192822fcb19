//! The chat state machine: pure, deterministic, no clocks, randomness or I/O.
//!
//! [`ChatState::apply_batch`] is the only way state changes. Everything that
//! could differ between replicas (time, hashes, tokens) arrives inside the
//! [`Batch`]. All collections are ordered (`BTreeMap`/`VecDeque`), so the
//! serialized state — and therefore [`ChatState::digest`] — is identical on
//! every replica that applied the same log.
//!
//! STUB: the public API below is the contract used by storage and services.

use serde::{Deserialize, Serialize};

use crate::server::command::*;

/// The whole replicated chat state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatState {}

impl ChatState {
    /// Applies one log entry. Returns one result per proposal, in order, and
    /// appends the user-visible events it produced to `events` (numbered from
    /// the replicated event counter, stamped with `index`).
    pub fn apply_batch(
        &mut self,
        index: u64,
        batch: &Batch,
        events: &mut Vec<ChatEvent>,
    ) -> Vec<CommandResult> {
        let _ = (index, events);
        batch
            .proposals
            .iter()
            .map(|_| Err(ChatError::precondition("not implemented")))
            .collect()
    }

    /// The user a session token belongs to, if the session exists and has not
    /// expired at `now_ms`.
    pub fn authenticate(&self, session: &TokenHash, now_ms: u64) -> Result<UserId, ChatError> {
        let _ = (session, now_ms);
        Err(ChatError::unauthenticated("not implemented"))
    }

    /// The account and its argon2id PHC password hash, by name (ignoring case).
    pub fn account_credentials(&self, username: &str) -> Option<(AccountView, String)> {
        let _ = username;
        None
    }

    /// The account of a user id (deleted accounts are `None`).
    pub fn account(&self, user: UserId) -> Option<AccountView> {
        let _ = user;
        None
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
        let _ = (pattern, after, limit);
        (Vec::new(), None)
    }

    /// `user`'s conversations, most recent activity first.
    pub fn conversations(&self, user: UserId) -> Vec<ConversationView> {
        let _ = user;
        Vec::new()
    }

    /// One conversation as `user` sees it; PERMISSION_DENIED if not a member.
    pub fn conversation(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<ConversationView, ChatError> {
        let _ = (user, conversation);
        Err(ChatError::not_found("not implemented"))
    }

    /// Resolves a target to an existing conversation `user` belongs to.
    /// A direct conversation that has no message yet is NOT_FOUND.
    pub fn resolve(&self, user: UserId, target: &Target) -> Result<ConversationId, ChatError> {
        let _ = (user, target);
        Err(ChatError::not_found("not implemented"))
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
        let _ = (user, conversation, before, limit);
        Err(ChatError::not_found("not implemented"))
    }

    /// Total unread messages of `user` across conversations.
    pub fn total_unread(&self, user: UserId) -> u64 {
        let _ = user;
        0
    }

    /// The seq of the last event produced (0 = none yet).
    pub fn last_event_seq(&self) -> u64 {
        0
    }

    /// The earliest presence lease expiry, if any replica holds subscriptions.
    /// The leader proposes a `Tick` after it passes.
    pub fn next_lease_expiry(&self) -> Option<u64> {
        None
    }

    /// SHA-256 over the canonical serialization of the whole state.
    pub fn digest(&self) -> [u8; 32] {
        [0; 32]
    }
}
