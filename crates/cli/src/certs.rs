//! `chatctl certs`: the cluster's TLS certificates, made locally (see
//! [`raftchat_tls::issue`]).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::json;

use super::args::CertsCommand;
use super::output::Output;

/// Runs one `chatctl certs` command and lists the files written.
pub fn run(out: Output, action: CertsCommand) -> Result<()> {
    let (dir, written) = match action {
        CertsCommand::Init { dir, replica_urls } => {
            let mut replicas = BTreeMap::new();
            for (id, url) in replica_urls {
                if replicas.insert(id, url).is_some() {
                    bail!("INVALID_ARGUMENT: --replica-urls lists replica {id} twice");
                }
            }
            let written = raftchat_tls::issue::init(&dir, &replicas)?;
            (dir, written)
        }
        CertsCommand::AddReplica {
            dir,
            member: (id, url),
        } => {
            let written = raftchat_tls::issue::add_replica(&dir, id, &url)?;
            (dir, written)
        }
    };
    if out.is_json() {
        let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        return out.object(&json!({ "dir": dir.display().to_string(), "files": files }));
    }
    for path in &written {
        out.text(&path.display().to_string())?;
    }
    let dir = dir.display();
    out.text(&format!(
        "Keep ca.key offline once the replicas have their certificates. Start replica N with\n  \
         chatd --tls-cert {dir}/replica-N.pem --tls-key {dir}/replica-N.key --tls-ca {dir}/ca.pem ...\n\
         and point clients at the CA: export CHAT_CA={dir}/ca.pem"
    ))
}
