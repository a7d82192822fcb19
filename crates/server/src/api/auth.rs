//! Passwords and session tokens, handled by the replica that receives the
//! request so that only hashes ever enter the replicated log.
//!
//! Argon2id is expensive on purpose (19 MiB and tens of milliseconds per
//! call), so an unbounded number of concurrent logins is a denial of
//! service: every argon2 computation on this replica runs on a small pool of
//! dedicated low-priority threads ([`Argon2Pool`]) with a short queue, and
//! a request that finds the queue full is refused at once with
//! `RESOURCE_EXHAUSTED` instead of waiting (and holding memory).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, LazyLock, Mutex};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::state::command::TokenHash;

pub use raftchat_proto::contract::MIN_PASSWORD_CHARS;
/// Longest password, in bytes (argon2 reads all of it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Requests that may wait for an argon2 thread, per thread.
pub const ARGON2_QUEUE_PER_THREAD: usize = 2;

/// An argon2id PHC string with the default parameters (like every
/// account's) and a random salt and output, which no known password
/// produces: a login for an unknown user is checked against it, so that
/// "no such user" costs the same time as a wrong password.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$LZE2/AHF3D9xpX9cVZHC/Q$3GkX48ImIBi3C/dzB1HB35sDkNUV3V8pP71+AuMoHpw";

/// Whether `password` is acceptable as a new password.
pub fn check_new_password(password: &str, field: &str) -> Result<(), Status> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(Status::invalid_argument(format!(
            "{field} is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(Status::invalid_argument(format!(
            "{field} is longer than {MAX_PASSWORD_BYTES} bytes"
        )))
    } else {
        Ok(())
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads for argon2 computations and a bounded queue in
/// front of them. The threads run at a lower CPU priority (Linux: nice 10)
/// so that a login flood cannot starve Raft heartbeats and message
/// traffic of CPU on a busy replica, which would cost it its leadership.
pub struct Argon2Pool {
    jobs: mpsc::Sender<Job>,
    /// Jobs queued or running.
    outstanding: Arc<AtomicUsize>,
    /// Most jobs queued or running at once.
    limit: usize,
}

/// Frees a pool place when the job it belongs to is done or dropped.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Argon2Pool {
    /// `threads` workers (at least 1) and room for `queue` more waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 thread");
            }
        }
        Self {
            jobs: tx,
            outstanding: Arc::new(AtomicUsize::new(0)),
            limit: threads + queue,
        }
    }

    /// A place in the pool, or `RESOURCE_EXHAUSTED` at once if it is full.
    fn reserve(&self) -> Result<Place, Status> {
        let before = self.outstanding.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.outstanding.clone());
        if before >= self.limit {
            return Err(Status::resource_exhausted(
                "too many logins in progress; retry shortly",
            ));
        }
        Ok(place)
    }

    /// Runs `f` on a pool thread in the place reserved.
    async fn run_in<T: Send + 'static>(
        &self,
        place: Place,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller gave up (timeout, disconnect): skip the work.
            if tx.is_closed() {
                return;
            }
            let result = f();
            // The place is free before the caller hears back.
            drop(place);
            let _ = tx.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| Status::unavailable("password hashing is not running"))?;
        rx.await
            .map_err(|_| Status::internal("password hashing failed"))
    }

    /// Runs `f` on a pool thread, or refuses at once if the pool is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let place = self.reserve()?;
        self.run_in(place, f).await
    }
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>) {
    crate::storage::lower_thread_priority();
    loop {
        // Only `recv` runs under the lock, and it cannot panic.
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panic drops the job (its caller gets an error), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// This replica's pool: as many threads as cores.
fn pool() -> &'static Argon2Pool {
    static POOL: LazyLock<Argon2Pool> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Argon2Pool::new(cores, ARGON2_QUEUE_PER_THREAD * cores)
    });
    &POOL
}

/// A reserved place on this replica's argon2 pool. Handlers reserve it
/// before anything else costly (such as the read barrier, a round of
/// heartbeats): a login refused because the pool is full costs next to
/// nothing.
pub struct Argon2Ticket(Place);

/// A place on the pool, or `RESOURCE_EXHAUSTED` ("too many logins in
/// progress") at once.
pub fn reserve() -> Result<Argon2Ticket, Status> {
    pool().reserve().map(Argon2Ticket)
}

impl Argon2Ticket {
    /// Hashes a password with argon2id (default parameters).
    pub async fn hash_password(self, password: String) -> Result<String, Status> {
        pool()
            .run_in(self.0, move || {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| Status::internal(format!("cannot hash password: {e}")))
            })
            .await?
    }

    /// Whether `password` matches the PHC string `hash`; `None` (no such
    /// account) checks against a dummy hash and answers `false`, in the
    /// same time.
    pub async fn verify_password(
        self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, Status> {
        pool()
            .run_in(self.0, move || {
                let known = hash.is_some();
                let hash = hash.as_deref().unwrap_or(DUMMY_HASH);
                let parsed = PasswordHash::new(hash).map_err(|e| {
                    Status::internal(format!("stored password hash is malformed: {e}"))
                })?;
                let matches = Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                Ok(known && matches)
            })
            .await?
    }
}

/// A fresh random session token (256 bits, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The session token from `authorization: Bearer <token>`.
pub fn session_from(metadata: &MetadataMap) -> Result<TokenHash, Status> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("not logged in: missing authorization metadata"))?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
    Ok(token_hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn hash_then_verify() {
        let verify = |p: &str, h: Option<String>| {
            let p = p.to_string();
            async move { reserve().unwrap().verify_password(p, h).await.unwrap() }
        };
        let h = reserve()
            .unwrap()
            .hash_password("hunter22".into())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("hunter22", Some(h.clone())).await);
        assert!(!verify("hunter23", Some(h)).await);
        assert!(!verify("hunter22", None).await);
    }

    /// The dummy must cost what a real account's check costs: same
    /// algorithm and parameters as a fresh hash.
    #[test]
    fn dummy_hash_has_the_parameters_of_real_hashes() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let real = Argon2::default().hash_password(b"x", &salt).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(
            dummy.hash.map(|h| h.len()),
            real.hash.map(|h| h.len()),
            "output length"
        );
    }

    #[test]
    fn new_password_policy() {
        let code = |p: &str| check_new_password(p, "password").map_err(|s| s.code());
        assert_eq!(code("1234567"), Err(tonic::Code::InvalidArgument));
        assert_eq!(code("12345678"), Ok(()));
        // Characters, not bytes: 8 two-byte characters pass, 7 do not.
        assert_eq!(code(&"é".repeat(7)), Err(tonic::Code::InvalidArgument));
        assert_eq!(code(&"é".repeat(8)), Ok(()));
        assert_eq!(code(&"x".repeat(1024)), Ok(()));
        assert_eq!(code(&"x".repeat(1025)), Err(tonic::Code::InvalidArgument));
        let msg = check_new_password("pw", "new_password").unwrap_err();
        assert!(msg.message().contains("at least 8 characters"), "{msg}");
        assert!(msg.message().starts_with("new_password"), "{msg}");
    }

    #[tokio::test]
    async fn a_full_pool_refuses_at_once() {
        let pool = Argon2Pool::new(1, 1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let blocker = |hold: Arc<Mutex<std::sync::mpsc::Receiver<()>>>| {
            move || {
                let _ = hold.lock().unwrap().recv_timeout(Duration::from_secs(10));
            }
        };
        let pool = Arc::new(pool);
        // One running, one queued: the pool is full.
        let running = tokio::spawn({
            let (pool, hold) = (pool.clone(), hold.clone());
            async move { pool.run(blocker(hold)).await }
        });
        let queued = tokio::spawn({
            let (pool, hold) = (pool.clone(), hold.clone());
            async move { pool.run(blocker(hold)).await }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.outstanding.load(Ordering::Acquire) < 2 {
            assert!(std::time::Instant::now() < deadline, "jobs never queued");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = pool.run(|| ()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry"), "{refused}");
        release.send(()).unwrap();
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        // Places are given back: the pool takes work again.
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
        assert_eq!(pool.outstanding.load(Ordering::Acquire), 0);
    }

    #[test]
    fn bearer_token_parsing() {
        let mut md = MetadataMap::new();
        assert_eq!(
            session_from(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert("authorization", "Basic xyz".parse().unwrap());
        assert_eq!(
            session_from(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let token = new_token();
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(session_from(&md).unwrap(), token_hash(&token));
    }
}
