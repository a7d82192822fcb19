//! TLS for every connection: certificates, the identities they carry, and
//! the rustls configurations built from them.
//!
//! One cluster CA signs every certificate. What a certificate may do is
//! written in it as a URI subject alternative name in the SPIFFE form
//! (`spiffe://raftchat/replica/3`, `spiffe://raftchat/admin`), read back by
//! `role_of`:
//!
//! - a **replica** certificate (`replica-N.pem`) identifies replica N: its
//!   holder may send Raft frames, forwarded proposals and read-index
//!   requests, and it also serves TLS to clients and peers (its DNS/IP names
//!   are the hosts of the replica URLs);
//! - the **admin** certificate (`admin.pem`) may change the membership;
//! - users present no certificate: they authenticate with a password.
//!
//! Certificates are made by `chatctl certs` (module `issue`, feature
//! `issue`); replicas and clients only read PEM files. What only a replica
//! needs (`ReplicaTls`, `role_of`, `peer_role`) is behind the feature
//! `replica`, so clients do not compile an X.509 parser.

#[cfg(feature = "issue")]
pub mod issue;
#[cfg(feature = "replica")]
mod replica;

#[cfg(feature = "replica")]
pub use replica::{peer_role, role_of, ReplicaTls};

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The trust domain in every role URI.
pub const TRUST_DOMAIN: &str = "raftchat";

/// ALPN protocol of a replica-to-replica (framed Raft) connection; gRPC
/// connections negotiate `h2`.
pub const RAFT_ALPN: &[u8] = b"raftchat-raft/1";

/// ALPN protocol of HTTP/2, which gRPC clients offer.
pub const H2_ALPN: &[u8] = b"h2";

/// What the holder of a certificate is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Replica N of the cluster.
    Replica(u64),
    /// An operator: may change the membership.
    Admin,
}

impl Role {
    /// The URI subject alternative name that carries this role.
    pub fn uri(&self) -> String {
        match self {
            Role::Replica(id) => format!("spiffe://{TRUST_DOMAIN}/replica/{id}"),
            Role::Admin => format!("spiffe://{TRUST_DOMAIN}/admin"),
        }
    }

    #[cfg(feature = "replica")]
    fn from_uri(uri: &str) -> Option<Self> {
        let path = uri.strip_prefix("spiffe://")?.strip_prefix(TRUST_DOMAIN)?;
        match path {
            "/admin" => Some(Role::Admin),
            _ => {
                let id = path.strip_prefix("/replica/")?;
                // Digits only: "+3" or " 3" parse as u64 but are not ours.
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                id.parse().ok().filter(|id| *id > 0).map(Role::Replica)
            }
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Replica(id) => write!(f, "replica {id}"),
            Role::Admin => f.write_str("admin"),
        }
    }
}

/// Why TLS material could not be used; each names the file and the flag.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("{what} {} holds no certificate", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("{0}")]
    Config(String),
}

/// Every certificate in a PEM file (a CA file may hold several, e.g. the old
/// and the new CA while rotating).
pub fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::Read {
            what,
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

/// What a client (chatctl, chat-tui, the client library) needs for TLS: the
/// cluster CA, and for admin commands a certificate and key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    /// Certificate and key PEM, presented to the replicas when set.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Loads the CA (`ca_flag` names the flag in errors), and the identity
    /// when both `cert` and `key` are given. Every file is checked now, so a
    /// wrong path fails at start, naming its flag, not at the first call.
    pub fn load(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        flags: [&'static str; 3],
    ) -> Result<Self, TlsError> {
        let [ca_flag, cert_flag, key_flag] = flags;
        read_certs(ca_flag, ca)?;
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                TlsError::Config(format!("cannot read {what} {}: {e}", path.display()))
            })
        };
        let identity = match identity {
            Some((cert, key)) => {
                read_certs(cert_flag, cert)?;
                read_key(key_flag, key)?;
                Some((read(cert_flag, cert)?, read(key_flag, key)?))
            }
            None => None,
        };
        Ok(Self {
            ca_pem: read(ca_flag, ca)?,
            identity,
        })
    }

    /// tonic's client configuration.
    pub fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        match &self.identity {
            Some((cert, key)) => config.identity(tonic::transport::Identity::from_pem(cert, key)),
            None => config,
        }
    }
}
