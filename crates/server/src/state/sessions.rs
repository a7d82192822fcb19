//! Login sessions, keyed by the SHA-256 of the bearer token (the token itself
//! is never replicated). Validity is decided against a clock passed in: the
//! state clock when applying, the replica's clock for reads.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::state::command::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: UserId,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    by_token: BTreeMap<TokenHash, Session>,
    /// Per-user index, so revoking a user's sessions does not scan everyone's.
    by_user: BTreeMap<UserId, BTreeSet<TokenHash>>,
}

pub fn expired() -> ChatError {
    ChatError::unauthenticated("session expired or unknown; log in again")
}

impl Sessions {
    /// The session's user if it exists and `now < expires_ms`.
    pub fn check(&self, token: &TokenHash, now: u64) -> Result<UserId, ChatError> {
        match self.by_token.get(token) {
            Some(s) if now < s.expires_ms => Ok(s.user),
            _ => Err(expired()),
        }
    }

    pub fn contains(&self, token: &TokenHash) -> bool {
        self.by_token.contains_key(token)
    }

    pub fn insert(&mut self, token: TokenHash, user: UserId, expires_ms: u64) {
        self.by_token.insert(token, Session { user, expires_ms });
        self.by_user.entry(user).or_default().insert(token);
    }

    pub fn remove(&mut self, token: &TokenHash) {
        if let Some(s) = self.by_token.remove(token) {
            if let Some(set) = self.by_user.get_mut(&s.user) {
                set.remove(token);
                if set.is_empty() {
                    self.by_user.remove(&s.user);
                }
            }
        }
    }

    /// Drops `user`'s sessions that match `drop`; returns them.
    fn retain_user(
        &mut self,
        user: UserId,
        mut drop: impl FnMut(&TokenHash, &Session) -> bool,
    ) -> Vec<TokenHash> {
        let Some(tokens) = self.by_user.get(&user) else {
            return Vec::new();
        };
        let doomed: Vec<TokenHash> = tokens
            .iter()
            .filter(|t| self.by_token.get(*t).is_none_or(|s| drop(t, s)))
            .copied()
            .collect();
        for t in &doomed {
            self.remove(t);
        }
        doomed
    }

    /// Revokes every session of `user` except `keep`; returns them.
    pub fn revoke_all(&mut self, user: UserId, keep: Option<&TokenHash>) -> Vec<TokenHash> {
        self.retain_user(user, |t, _| Some(t) != keep)
    }

    /// Forgets `user`'s sessions that have expired at `now`.
    pub fn purge_expired(&mut self, user: UserId, now: u64) {
        self.retain_user(user, |_, s| now >= s.expires_ms);
    }

    #[cfg(test)]
    pub fn count(&self, user: UserId) -> usize {
        self.by_user.get(&user).map_or(0, |s| s.len())
    }
}
