//! The one error type of the client: a gRPC status code plus a human message.

use std::fmt;

use tonic::Code;

/// Why a client call failed.
///
/// Server answers keep the status code and message chosen by the server, so
/// callers can branch on [`ClientError::code`] (or the `is_*` helpers) and
/// show [`Display`](fmt::Display) to humans: `NOT_FOUND: no account named 'zed'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The gRPC status code (`Unavailable` when the cluster could not be reached).
    pub code: Code,
    /// What went wrong, in words.
    pub message: String,
}

impl ClientError {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message without the code prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The cluster (or the replicas tried) could not serve the call in time.
    pub fn is_unavailable(&self) -> bool {
        self.code == Code::Unavailable
    }

    /// No session, or the session expired: log in again.
    pub fn is_unauthenticated(&self) -> bool {
        self.code == Code::Unauthenticated
    }

    /// The named account, group, conversation or message does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == Code::NotFound
    }

    /// The account or group already exists.
    pub fn is_already_exists(&self) -> bool {
        self.code == Code::AlreadyExists
    }

    /// The caller may not do this (e.g. not a member, not the sender).
    pub fn is_permission_denied(&self) -> bool {
        self.code == Code::PermissionDenied
    }

    /// The request itself was malformed (empty name, body too long, ...).
    pub fn is_invalid_argument(&self) -> bool {
        self.code == Code::InvalidArgument
    }

    /// A reply lacked a field the contract promises (`INTERNAL`); used when
    /// unpacking optional proto fields.
    pub fn missing_field(what: &str) -> Self {
        Self::new(
            Code::Internal,
            format!("the server's reply has no {what} (client/server version mismatch?)"),
        )
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::new(status.code(), status.message())
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if self.message.is_empty() {
            self.code.description()
        } else {
            self.message.as_str()
        };
        write!(f, "{}: {message}", code_name(self.code))
    }
}

impl std::error::Error for ClientError {}

/// The canonical upper-case name of a status code, as used by gRPC tooling
/// (`NOT_FOUND`, `UNAVAILABLE`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prefixes_the_code_name() {
        let err = ClientError::new(Code::NotFound, "no account named 'zed'");
        assert_eq!(err.to_string(), "NOT_FOUND: no account named 'zed'");
        assert!(err.is_not_found());
        assert!(!err.is_unavailable());
    }

    #[test]
    fn empty_message_falls_back_to_the_code_description() {
        let err = ClientError::new(Code::Unavailable, "");
        assert!(err.to_string().starts_with("UNAVAILABLE: "));
        assert!(err.to_string().len() > "UNAVAILABLE: ".len());
    }

    #[test]
    fn status_converts_keeping_code_and_message() {
        let err = ClientError::from(tonic::Status::already_exists("taken"));
        assert_eq!(err, ClientError::new(Code::AlreadyExists, "taken"));
    }
}
