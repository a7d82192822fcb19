//! TLS for every connection: certificates, the identities they carry, and
//! the rustls configurations built from them.
//!
//! One cluster CA signs every certificate. What a certificate may do is
//! written in it as a URI subject alternative name in the SPIFFE form
//! (`spiffe://raftchat/replica/3`, `spiffe://raftchat/admin`), read back by
//! [`role_of`]:
//!
//! - a **replica** certificate (`replica-N.pem`) identifies replica N: its
//!   holder may send Raft frames, forwarded proposals and read-index
//!   requests, and it also serves TLS to clients and peers (its DNS/IP names
//!   are the hosts of the replica URLs);
//! - the **admin** certificate (`admin.pem`) may change the membership;
//! - users present no certificate: they authenticate with a password.
//!
//! Certificates are made by `chatctl certs` ([`issue`]). Replicas and
//! clients only read PEM files.

#[cfg(feature = "issue")]
pub mod issue;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

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

/// The role named by a certificate (DER), if it names exactly one. The
/// chain must already have been verified against the cluster CA (rustls
/// does that during the handshake); this only reads what it says.
pub fn role_of(cert: &[u8]) -> Option<Role> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    let mut roles = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Role::from_uri(uri),
            _ => None,
        });
    let role = roles.next()?;
    // Two roles in one certificate is not something we issue: refuse it.
    roles.next().is_none().then_some(role)
}

/// The role of a connection's peer, from its certificate chain as rustls
/// verified it (the leaf comes first).
pub fn peer_role(chain: Option<&[CertificateDer<'_>]>) -> Option<Role> {
    chain?.first().and_then(|leaf| role_of(leaf))
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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert.clone())
            .map_err(|e| TlsError::Config(format!("the CA certificate is not usable: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn config_error(e: rustls::Error) -> TlsError {
    TlsError::Config(e.to_string())
}

/// A replica's TLS material, loaded once at start.
#[derive(Clone)]
pub struct ReplicaTls {
    /// Serves clients (no certificate asked of them, but one is verified
    /// when offered: admins and peers) and peers' Raft connections.
    pub server: Arc<ServerConfig>,
    /// Dials peers' Raft connections with this replica's certificate.
    pub raft_client: Arc<ClientConfig>,
    /// PEM text of the CA, certificate and key, for gRPC channels to peers
    /// (tonic builds its own rustls configuration from them).
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The role the certificate names.
    pub role: Option<Role>,
}

impl std::fmt::Debug for ReplicaTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaTls")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl ReplicaTls {
    /// Loads `cert`, `key` and `ca` (PEM files).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        let chain = read_certs("--tls-cert", cert)?;
        let private = read_key("--tls-key", key)?;
        let ca_certs = read_certs("--tls-ca", ca)?;
        let roots = roots(&ca_certs)?;

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            // Users have no certificate; replicas and admins must present a
            // valid one when they offer it.
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(format!("cannot verify client certificates: {e}")))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| {
                TlsError::Config(format!(
                    "--tls-cert and --tls-key do not make a usable pair: {e}"
                ))
            })?;
        server.alpn_protocols = vec![H2_ALPN.to_vec(), RAFT_ALPN.to_vec()];
        // No session tickets: a pooled Raft connection is reused only while
        // nothing is waiting to be read on it.
        server.send_tls13_tickets = 0;

        let mut raft_client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.clone(), private)
            .map_err(|e| TlsError::Config(format!("cannot use --tls-cert as a client: {e}")))?;
        raft_client.alpn_protocols = vec![RAFT_ALPN.to_vec()];

        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                TlsError::Config(format!("cannot read {what} {}: {e}", path.display()))
            })
        };
        Ok(Self {
            server: Arc::new(server),
            raft_client: Arc::new(raft_client),
            ca_pem: read("--tls-ca", ca)?,
            cert_pem: read("--tls-cert", cert)?,
            key_pem: read("--tls-key", key)?,
            role: role_of(&chain[0]),
        })
    }

    /// tonic's client configuration for gRPC calls to peers, presenting
    /// this replica's certificate.
    pub fn grpc_client(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_uris_round_trip_and_reject_lookalikes() {
        for role in [Role::Replica(1), Role::Replica(42), Role::Admin] {
            assert_eq!(Role::from_uri(&role.uri()), Some(role));
        }
        for bad in [
            "spiffe://raftchat/replica/0",
            "spiffe://raftchat/replica/",
            "spiffe://raftchat/replica/+3",
            "spiffe://raftchat/replica/3/x",
            "spiffe://raftchat/replica/99999999999999999999999",
            "spiffe://other/admin",
            "spiffe://raftchatx/admin",
            "https://raftchat/admin",
            "spiffe://raftchat/admins",
        ] {
            assert_eq!(Role::from_uri(bad), None, "{bad}");
        }
    }
}
