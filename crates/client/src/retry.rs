//! Small building blocks of the retry policy: which failures are worth a
//! retry elsewhere, how long to pause between attempts, and request ids.

use std::error::Error as _;
use std::time::Duration;

use tonic::{Code, Status};

/// Whether a failed attempt should be retried on another replica.
///
/// `UNAVAILABLE` (no quorum, no leader, shutting down) and
/// `DEADLINE_EXCEEDED` are the server saying "not now"; a status that carries
/// a source error was produced locally by the transport (connection refused
/// or reset, HTTP/2 failure), never by the server. Everything else is a real
/// answer and goes straight back to the caller.
///
/// `CANCELLED` counts too: a replica that runs out of the request's
/// `grpc-timeout` (e.g. a leader waiting for a quorum that is gone) answers
/// `CANCELLED: Timeout expired`; the servers never send it as an answer.
pub(crate) fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    ) || is_transport(status)
}

/// Whether the status was produced by the local transport rather than sent
/// by a server, which means the connection itself is suspect.
pub(crate) fn is_transport(status: &Status) -> bool {
    status.source().is_some()
}

/// Whether the status is tonic's own client-side deadline (the
/// `grpc-timeout` we set on a request) expiring: the replica did not answer.
pub(crate) fn is_local_timeout(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(err) = source {
        if err.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A one-line description of a failed attempt that lasted at most `budget`.
pub(crate) fn describe_failure(status: &Status, budget: Duration, plaintext: bool) -> String {
    if is_local_timeout(status) {
        return no_answer(budget);
    }
    let described = super::ClientError::from(status.clone()).to_string();
    // Transport statuses say little ("tcp connect error"); the innermost
    // cause ("Connection refused (os error 111)") is what a human needs.
    let cause = root_cause(status);
    let described = match &cause {
        Some(cause) if !described.contains(cause) => format!("{described} ({cause})"),
        _ => described,
    };
    // A TLS replica closes a plaintext connection at once.
    if plaintext && cause.as_deref() == Some("connection closed") {
        return format!(
            "{described}; if the replicas use TLS, give their CA certificate (--ca FILE or CHAT_CA)"
        );
    }
    described
}

/// The message of the innermost source error, if the status has one.
fn root_cause(status: &Status) -> Option<String> {
    let mut cause = status.source()?;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    Some(cause.to_string())
}

/// The description of an attempt that got no answer in time.
pub(crate) fn no_answer(budget: Duration) -> String {
    format!(
        "no answer within {}",
        super::servers::human_duration(budget)
    )
}

/// Exponential backoff between attempts: `initial`, doubling, capped at `max`.
///
/// It keeps a cluster without quorum from being hammered while still
/// retrying quickly after a single replica failure.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The policy of unary calls, between rounds over every replica: 10 ms
    /// growing to 100 ms.
    pub(crate) fn for_calls() -> Self {
        Self::new(Duration::from_millis(10), Duration::from_millis(100))
    }

    /// The policy of subscriptions, which retry forever: 20 ms growing to 1 s.
    pub(crate) fn for_subscriptions() -> Self {
        Self::new(Duration::from_millis(20), Duration::from_secs(1))
    }

    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The pause before the next attempt; each call doubles the following one.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Back to the initial pause after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A fresh random 128-bit request id, hex encoded (32 characters).
///
/// Generated once per logical write and reused on every retry, so the
/// cluster applies the write at most once wherever the retries land.
pub fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::for_calls();
        let pauses: Vec<u64> = (0..6)
            .map(|_| backoff.next_pause().as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![10, 20, 40, 80, 100, 100]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::from_millis(10));
    }

    #[test]
    fn server_answers_are_not_retried_but_unavailable_is() {
        assert!(is_retryable(&Status::unavailable("no quorum")));
        assert!(is_retryable(&Status::deadline_exceeded("slow")));
        assert!(is_retryable(&Status::cancelled("Timeout expired")));
        assert!(!is_retryable(&Status::not_found("no such user")));
        assert!(!is_retryable(&Status::unauthenticated("log in")));
        assert!(!is_retryable(&Status::unknown("server bug")));
    }

    #[test]
    fn transport_failures_are_retried() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = Status::from_error(Box::new(io));
        assert!(is_transport(&status));
        assert!(is_retryable(&status));
        assert!(!is_local_timeout(&status));
        assert!(describe_failure(&status, Duration::from_secs(1), false).contains("reset"));
    }

    #[test]
    fn local_timeouts_read_as_no_answer() {
        let status = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert!(is_local_timeout(&status));
        assert!(is_retryable(&status));
        assert_eq!(
            describe_failure(&status, Duration::from_millis(200), false),
            "no answer within 200 ms"
        );
    }

    #[test]
    fn request_ids_are_random_128_bit_hex() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
