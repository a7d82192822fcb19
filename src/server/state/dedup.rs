//! Idempotent writes: results of proposals that carried a request id are
//! remembered for [`DEDUP_WINDOW_MS`] of state time, so a retry (to any
//! replica, after a leader change, …) gets the original result back instead of
//! applying twice.
//!
//! Keys are scoped by who asked (see [`Scope`]) so that two clients that happen
//! to pick the same request id never see each other's results.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::server::command::*;

/// Who a request id belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Housekeeping commands (no user).
    Replica,
    /// Commands acting through a session (the hash of its token), and
    /// `CreateSession` (the hash of the token it would create: a retried login
    /// carries a fresh token, and must open that one, since the original
    /// token never reached the client).
    Token(TokenHash),
    /// `CreateAccount`: the lowercase username.
    Name(String),
}

impl Scope {
    pub fn of(command: &Command) -> Scope {
        match command {
            Command::CreateAccount { username, .. } => Scope::Name(username.to_lowercase()),
            Command::CreateSession { token_hash, .. } => Scope::Token(*token_hash),
            Command::EndSession { session }
            | Command::ChangePassword { session, .. }
            | Command::DeleteAccount { session, .. }
            | Command::Send { session, .. }
            | Command::CreateGroup { session, .. }
            | Command::AddMember { session, .. }
            | Command::LeaveGroup { session, .. }
            | Command::MarkRead { session, .. }
            | Command::ReadUnread { session, .. }
            | Command::DeleteMessages { session, .. }
            | Command::SubscriptionOpened { session, .. } => Scope::Token(*session),
            Command::SubscriptionClosed { .. }
            | Command::PresenceLease { .. }
            | Command::ReplicaStarted { .. }
            | Command::Tick => Scope::Replica,
        }
    }
}

type Key = (Scope, RequestId);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dedup {
    /// Result and the state time it was applied at.
    results: BTreeMap<Key, (u64, CommandResult)>,
    /// The same keys in application order (state time never decreases), so
    /// eviction pops from the front.
    order: VecDeque<(u64, Key)>,
}

impl Dedup {
    /// Forgets results applied `DEDUP_WINDOW_MS` or longer before `now`.
    pub fn evict(&mut self, now: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(DEDUP_WINDOW_MS) > now {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                if self.results.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.results.remove(&key);
                }
            }
        }
    }

    pub fn get(&self, scope: &Scope, id: &str) -> Option<&CommandResult> {
        // Building the key allocates; acceptable next to applying a command.
        self.results
            .get(&(scope.clone(), id.to_owned()))
            .map(|(_, r)| r)
    }

    /// Remembers a result. A sent message's body is dropped: the window
    /// holds every write of the last 15 minutes, and at thousands of
    /// messages a second the bodies would dominate memory and snapshots; a
    /// retry gets the body back from the stored message.
    pub fn remember(&mut self, scope: Scope, id: &str, now: u64, mut result: CommandResult) {
        if let Ok(Outcome::Sent(view)) = &mut result {
            view.body = String::new();
        }
        let key = (scope, id.to_owned());
        self.order.push_back((now, key.clone()));
        self.results.insert(key, (now, result));
    }

    /// Blanks the bodies of deleted messages in remembered results, so a
    /// deleted message's text does not outlive its deletion in the state.
    /// Linear in the remembered results; deletions are rare next to sends.
    pub fn redact(&mut self, deleted: &std::collections::BTreeSet<MessageId>) {
        // `Sent` results carry no body (see `remember`).
        for (_, result) in self.results.values_mut() {
            if let Ok(Outcome::Messages { messages, .. }) = result {
                for view in messages.iter_mut().filter(|v| deleted.contains(&v.id)) {
                    view.body.clear();
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.results.len()
    }
}
