//! Backoff after failed password checks, per account name and per client
//! address: after a few failures in a row, further attempts are refused
//! (without running argon2) for a time that doubles with every further
//! failure, up to a cap.
//!
//! This is per-replica memory, not replicated state: it must not go
//! through the log (a failed login writes nothing), and it is lost on
//! restart. So a client that spreads its guesses over the replicas gets
//! the free failures once per replica, and a restart forgets the backoff.
//! Unknown account names are tracked exactly like existing ones, so the
//! backoff reveals nothing about which names exist. The tables are capped
//! ([`MAX_TRACKED`] entries each); entries are forgotten
//! [`FORGET_AFTER`] after their last failure, or when a login succeeds
//! (account entries only: one good password must not reset an address
//! that is guessing at other accounts).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use tonic::Status;

/// Failures of one account name before attempts are refused.
pub const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// Failures from one address (IPv4, or IPv6 /64) before attempts are
/// refused; higher, since many users may share an address (NAT).
pub const FREE_FAILURES_PER_PEER: u32 = 20;
/// The first refusal period; each further failure doubles it.
pub const FIRST_BLOCK: Duration = Duration::from_secs(1);
/// The longest refusal period.
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Failures older than this (since the last one) are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most names, and most addresses, tracked at once.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

struct Table<K> {
    entries: HashMap<K, Entry>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Self {
            entries: HashMap::new(),
            free,
        }
    }

    /// How long `key` is still refused, if it is.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.entries.get(key)?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    fn fail(&mut self, key: K, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let free = self.free;
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(e.last_failure) > FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures >= free {
            e.blocked_until = Some(now + block_for(e.failures - free));
        }
    }

    /// Drops forgotten entries, and if that is not enough, the one whose
    /// last failure is oldest.
    fn make_room(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) <= FORGET_AFTER);
        if self.entries.len() >= MAX_TRACKED {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

/// The refusal period after `extra` failures beyond the free ones.
fn block_for(extra: u32) -> Duration {
    FIRST_BLOCK
        .saturating_mul(1u32 << extra.min(16))
        .min(MAX_BLOCK)
}

/// Who a password check is for and from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The lowercase account name, if it is a well-formed one.
    pub account: Option<String>,
    /// The client's address (IPv6 reduced to its /64), if known.
    pub peer: Option<IpAddr>,
}

impl Keys {
    pub fn new(account: Option<&str>, peer: Option<IpAddr>) -> Self {
        Self {
            account: account.map(str::to_lowercase),
            peer: peer.map(network_of),
        }
    }
}

/// IPv4 as is (also when mapped into IPv6); IPv6 by its /64, which one
/// client usually has whole.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// The failure tables of one replica.
pub struct LoginThrottle {
    tables: Mutex<(Table<String>, Table<IpAddr>)>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            tables: Mutex::new((
                Table::new(FREE_FAILURES_PER_ACCOUNT),
                Table::new(FREE_FAILURES_PER_PEER),
            )),
        }
    }
}

impl LoginThrottle {
    fn tables(&self) -> std::sync::MutexGuard<'_, (Table<String>, Table<IpAddr>)> {
        // Every update leaves the tables consistent; ignore poisoning.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `RESOURCE_EXHAUSTED` while the account or the address is refused.
    pub fn check(&self, keys: &Keys, now: Instant) -> Result<(), Status> {
        let t = self.tables();
        let account = keys.account.as_ref().and_then(|k| t.0.blocked(k, now));
        let peer = keys.peer.as_ref().and_then(|k| t.1.blocked(k, now));
        match account.max(peer) {
            None => Ok(()),
            Some(wait) => Err(Status::resource_exhausted(format!(
                "too many failed logins; retry in {} s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ))),
        }
    }

    /// Counts a wrong password against the account and the address.
    pub fn failed(&self, keys: &Keys, now: Instant) {
        let mut t = self.tables();
        if let Some(k) = &keys.account {
            t.0.fail(k.clone(), now);
        }
        if let Some(k) = keys.peer {
            t.1.fail(k, now);
        }
    }

    /// Forgets the account's failures after a right password.
    pub fn succeeded(&self, keys: &Keys) {
        if let Some(k) = &keys.account {
            self.tables().0.entries.remove(k);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let t = self.tables();
        (t.0.entries.len(), t.1.entries.len())
    }
}

/// This replica's tables (one replica per process).
pub fn throttle() -> &'static LoginThrottle {
    static THROTTLE: LazyLock<LoginThrottle> = LazyLock::new(LoginThrottle::default);
    &THROTTLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn keys(name: &str, ip: &str) -> Keys {
        Keys::new(Some(name), Some(ip.parse().unwrap()))
    }

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles() {
        let t = LoginThrottle::default();
        let k = keys("Alice", "10.0.0.1");
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES_PER_ACCOUNT - 1 {
            t.failed(&k, t0);
            assert!(t.check(&k, t0).is_ok(), "failure {i} is free");
        }
        t.failed(&k, t0);
        let refused = t.check(&k, t0).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refused.message(), "too many failed logins; retry in 1 s");
        // Same name in another case, from another address: still refused.
        assert!(t.check(&keys("ALICE", "10.0.0.2"), t0).is_err());
        // Another name from the same address is not (yet).
        assert!(t.check(&keys("bob", "10.0.0.1"), t0).is_ok());
        // After the block, one more failure blocks for twice as long.
        let t1 = t0 + FIRST_BLOCK;
        assert!(t.check(&k, t1).is_ok());
        t.failed(&k, t1);
        assert_eq!(
            t.check(&k, t1).unwrap_err().message(),
            "too many failed logins; retry in 2 s"
        );
        // Capped.
        let mut now = t1;
        for _ in 0..40 {
            now += MAX_BLOCK;
            t.failed(&k, now);
        }
        assert_eq!(
            t.check(&k, now).unwrap_err().message(),
            format!("too many failed logins; retry in {} s", MAX_BLOCK.as_secs())
        );
        // A success forgets the account's failures.
        t.succeeded(&k);
        assert!(t.check(&keys("alice", "10.9.9.9"), now).is_ok());
        // Failures long ago are forgotten.
        let later = now + MAX_BLOCK + FORGET_AFTER + Duration::from_secs(1);
        t.failed(&k, later);
        assert!(t.check(&keys("alice", "10.9.9.9"), later).is_ok());
    }

    #[test]
    fn an_address_guessing_many_names_is_refused() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_FAILURES_PER_PEER {
            assert!(t.check(&keys(&format!("u{i}"), "10.0.0.7"), now).is_ok());
            t.failed(&keys(&format!("u{i}"), "10.0.0.7"), now);
        }
        assert!(t.check(&keys("fresh", "10.0.0.7"), now).is_err());
        assert!(t.check(&keys("fresh", "10.0.0.8"), now).is_ok());
        // An IPv6 client is one /64; an unknown address is not tracked.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        let mapped = IpAddr::V6(Ipv6Addr::from(0xffff_0a00_0007u128));
        assert_eq!(network_of(mapped), "10.0.0.7".parse::<IpAddr>().unwrap());
        let anonymous = Keys::new(Some("fresh"), None);
        assert!(t.check(&anonymous, now).is_ok());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED + 50 {
            let ip = IpAddr::V4((i as u32).into());
            t.failed(&Keys::new(Some(&format!("user{i}")), Some(ip)), now);
        }
        let (names, peers) = t.tracked();
        assert!(
            names <= MAX_TRACKED && peers <= MAX_TRACKED,
            "{names} {peers}"
        );
        // Expired entries make room without evicting live ones.
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        t.failed(&keys("late", "10.1.1.1"), later);
        assert_eq!(t.tracked(), (1, 1));
    }
}
