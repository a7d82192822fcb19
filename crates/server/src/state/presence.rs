//! Who is online: live subscriptions per replica, kept alive by leases.
//!
//! A replica that dies cannot report its subscriptions closed, so each replica
//! holding subscriptions has a lease (state time) that it renews; when a batch
//! is applied after the lease, the replica's subscriptions are dropped. Only
//! replicas that hold subscriptions have a lease.
//!
//! Methods return the users whose online status flipped, `(user, online)`, in
//! a deterministic order, so the caller can stamp `last_seen` and emit events.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::state::command::*;

/// `(replica, subscription)`.
type SubKey = (u64, u64);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    subs: BTreeMap<SubKey, UserId>,
    /// The subscriptions of each online user; a user is online iff present.
    by_user: BTreeMap<UserId, BTreeSet<SubKey>>,
    /// Lease expiry of each replica that holds subscriptions.
    leases: BTreeMap<u64, u64>,
}

pub type Transition = (UserId, bool);

impl Presence {
    pub fn is_online(&self, user: UserId) -> bool {
        self.by_user.contains_key(&user)
    }

    /// Records a subscription and extends the replica's lease to at least
    /// `min_lease`. Reopening a key for another user replaces it.
    pub fn open(
        &mut self,
        replica: u64,
        subscription: u64,
        user: UserId,
        min_lease: u64,
    ) -> Vec<Transition> {
        let key = (replica, subscription);
        let prior_lease = self.leases.get(&replica).copied().unwrap_or(0);
        let mut flips = Vec::new();
        if self.subs.get(&key) != Some(&user) {
            flips.extend(self.remove(key));
            let was_online = self.is_online(user);
            self.subs.insert(key, user);
            self.by_user.entry(user).or_default().insert(key);
            if !was_online {
                flips.push((user, true));
            }
        }
        self.leases.insert(replica, prior_lease.max(min_lease));
        flips
    }

    /// Removes one subscription (no-op if unknown).
    pub fn remove(&mut self, key: SubKey) -> Option<Transition> {
        let user = self.subs.remove(&key)?;
        if !self
            .subs
            .range((key.0, 0)..=(key.0, u64::MAX))
            .any(|_| true)
        {
            self.leases.remove(&key.0);
        }
        let set = self.by_user.get_mut(&user)?;
        set.remove(&key);
        if set.is_empty() {
            self.by_user.remove(&user);
            return Some((user, false));
        }
        None
    }

    /// Drops every subscription of `replica` (and its lease).
    pub fn drop_replica(&mut self, replica: u64) -> Vec<Transition> {
        let keys: Vec<SubKey> = self
            .subs
            .range((replica, 0)..=(replica, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        self.leases.remove(&replica);
        keys.into_iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Drops every subscription of `user`; true if they were online.
    pub fn drop_user(&mut self, user: UserId) -> bool {
        let keys: Vec<SubKey> = self
            .by_user
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        keys.into_iter().filter_map(|k| self.remove(k)).count() > 0
    }

    /// Sets the lease of a replica that holds subscriptions (else no-op).
    pub fn set_lease(&mut self, replica: u64, until_ms: u64) {
        if let Some(lease) = self.leases.get_mut(&replica) {
            *lease = until_ms;
        }
    }

    /// Replicas whose lease ended before `now`.
    pub fn expired(&self, now: u64) -> Vec<u64> {
        self.leases
            .iter()
            .filter(|(_, until)| **until < now)
            .map(|(r, _)| *r)
            .collect()
    }

    /// The earliest lease; there are only as many leases as replicas.
    pub fn next_expiry(&self) -> Option<u64> {
        self.leases.values().min().copied()
    }

    #[cfg(test)]
    pub fn lease(&self, replica: u64) -> Option<u64> {
        self.leases.get(&replica).copied()
    }
}
