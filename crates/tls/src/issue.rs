//! Issuing the cluster's certificates (`chatctl certs`): one CA, one
//! certificate per replica, one for admins.
//!
//! Keys are ECDSA P-256. The CA is valid for 10 years, the others for
//! [`LEAF_DAYS`]; rotate them before then (README, "Security"). Private
//! keys are written with mode 0600 and never overwritten: issuing into a
//! directory that already holds the file refuses rather than silently
//! replacing a CA every replica trusts.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::Role;

/// Validity of replica and admin certificates.
pub const LEAF_DAYS: i64 = 825;
/// Validity of the CA.
const CA_DAYS: i64 = 3650;

/// Why certificates could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; refusing to overwrite it (use another directory)", .0.display())]
    Exists(PathBuf),
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IssueError + '_ {
    move |source| IssueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `dir`'s CA, a certificate for each replica (`id` → `HOST:PORT`)
/// and the admin certificate. Returns the files written.
pub fn init(dir: &Path, replicas: &BTreeMap<u64, String>) -> Result<Vec<PathBuf>, IssueError> {
    if replicas.is_empty() {
        return Err(IssueError::Invalid(
            "no replicas given (--replica-urls 1=HOST:PORT,2=HOST:PORT,...)".into(),
        ));
    }
    // Check everything before writing anything.
    let mut names = vec!["ca.pem", "ca.key", "admin.pem", "admin.key"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for id in replicas.keys() {
        names.push(format!("replica-{id}.pem"));
        names.push(format!("replica-{id}.key"));
    }
    for name in &names {
        let path = dir.join(name);
        if path.exists() {
            return Err(IssueError::Exists(path));
        }
    }
    for url in replicas.values() {
        host_of(url)?;
    }
    create_private_dir(dir)?;

    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("raftchat cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_DAYS);
    let ca_cert = params.self_signed(&ca_key)?;
    let mut written = vec![
        write_new(&dir.join("ca.pem"), &ca_cert.pem(), false)?,
        write_new(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?,
    ];
    let issuer = Issuer::new(params, ca_key);
    for (id, url) in replicas {
        written.extend(issue(dir, &issuer, Role::Replica(*id), Some(url))?);
    }
    written.extend(issue(dir, &issuer, Role::Admin, None)?);
    Ok(written)
}

/// Issues `replica-ID.pem`/`.key` with `dir`'s existing CA (`ca.pem`,
/// `ca.key`), e.g. for a replica about to be added.
pub fn add_replica(dir: &Path, id: u64, url: &str) -> Result<Vec<PathBuf>, IssueError> {
    host_of(url)?;
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).map_err(io(&dir.join("ca.pem")))?;
    let key_pem = std::fs::read_to_string(dir.join("ca.key")).map_err(io(&dir.join("ca.key")))?;
    let key = KeyPair::from_pem(&key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)?;
    issue(dir, &issuer, Role::Replica(id), Some(url))
}

/// One leaf certificate and its key, named after the role.
fn issue(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    role: Role,
    url: Option<&str>,
) -> Result<Vec<PathBuf>, IssueError> {
    let stem = match role {
        Role::Replica(id) => format!("replica-{id}"),
        Role::Admin => "admin".to_string(),
    };
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(IssueError::Exists(path.clone()));
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("raftchat {role}"));
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.subject_alt_names = vec![SanType::URI(role.uri().try_into()?)];
    match url {
        // A replica serves TLS at its URL's host and dials its peers.
        Some(url) => {
            params.subject_alt_names.push(host_of(url)?);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        None => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    set_validity(&mut params, LEAF_DAYS);
    let cert = params.signed_by(&key, issuer)?;
    Ok(vec![
        write_new(&cert_path, &cert.pem(), false)?,
        write_new(&key_path, &key.serialize_pem(), true)?,
    ])
}

/// The host of `HOST:PORT` as a subject alternative name (an IP address
/// or a DNS name).
fn host_of(url: &str) -> Result<SanType, IssueError> {
    let url = url.strip_prefix("https://").unwrap_or(url);
    let host = url
        .rsplit_once(':')
        .map(|(host, _)| host)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| IssueError::Invalid(format!("'{url}' is not HOST:PORT")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(host.try_into().map_err(|_| {
            IssueError::Invalid(format!("'{host}' is not a valid host name"))
        })?)),
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "raftchat");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A day of slack for clocks that run behind the issuer's.
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

fn create_private_dir(dir: &Path) -> Result<(), IssueError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))
}

/// Creates `path` (never replacing a file), mode 0600 for keys.
fn write_new(path: &Path, text: &str, private: bool) -> Result<PathBuf, IssueError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => IssueError::Exists(path.to_owned()),
        _ => io(path)(e),
    })?;
    file.write_all(text.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(path.to_owned())
}

#[cfg(all(test, feature = "replica"))]
mod tests {
    use super::*;
    use crate::{read_certs, role_of, ClientTls, ReplicaTls};

    #[test]
    fn init_issues_certificates_that_carry_their_roles() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let replicas = BTreeMap::from([
            (1, "127.0.0.1:7001".to_string()),
            (2, "host2.example:7002".to_string()),
        ]);
        let written = init(&certs, &replicas).unwrap();
        assert_eq!(written.len(), 8);
        let role = |name: &str| role_of(&read_certs("test", &certs.join(name)).unwrap()[0]);
        assert_eq!(role("replica-1.pem"), Some(Role::Replica(1)));
        assert_eq!(role("replica-2.pem"), Some(Role::Replica(2)));
        assert_eq!(role("admin.pem"), Some(Role::Admin));
        assert_eq!(role("ca.pem"), None);
        let tls = ReplicaTls::load(
            &certs.join("replica-2.pem"),
            &certs.join("replica-2.key"),
            &certs.join("ca.pem"),
        )
        .unwrap();
        assert_eq!(tls.role, Some(Role::Replica(2)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(certs.join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "keys are private");
        }

        // Never overwrite a CA.
        assert!(matches!(
            init(&certs, &replicas),
            Err(IssueError::Exists(_))
        ));
        // Later replicas come from the same CA.
        add_replica(&certs, 6, "127.0.0.1:7006").unwrap();
        assert_eq!(role("replica-6.pem"), Some(Role::Replica(6)));
        assert!(matches!(
            add_replica(&certs, 6, "127.0.0.1:7006"),
            Err(IssueError::Exists(_))
        ));
        ClientTls::load(
            &certs.join("ca.pem"),
            Some((&certs.join("admin.pem"), &certs.join("admin.key"))),
            ["--ca", "--cert", "--key"],
        )
        .unwrap();
    }

    #[test]
    fn bad_urls_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let replicas = BTreeMap::from([(1, "no-port".to_string())]);
        assert!(matches!(
            init(&certs, &replicas),
            Err(IssueError::Invalid(_))
        ));
        assert!(!certs.exists());
    }
}
