//! What only a replica needs (feature `replica`): its server and peer TLS
//! configurations, and the role a verified peer certificate names.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{read_certs, read_key, Role, TlsError, H2_ALPN, RAFT_ALPN};

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

#[cfg(test)]
mod tests {
    use crate::Role;

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
