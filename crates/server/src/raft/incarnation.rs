//! Which life of replica N this is, so that a replica whose storage was
//! wiped cannot come back and vote as if nothing happened.
//!
//! Raft's safety rests on a voter never forgetting its vote or the entries
//! it acknowledged. A replica that lost its storage (a wiped disk, a
//! replaced machine given the dead one's id) may have voted in the current
//! term and helped commit entries it no longer has: letting it vote again
//! can elect two leaders in one term, or a leader missing committed writes.
//!
//! So every replica's storage carries an *incarnation*: a random 128-bit id
//! made when the storage is created (`DIR/incarnation`; a memory-only
//! replica makes a new one at every start). Once serving, the replica
//! records it through the log (`Command::RecordIncarnation`), so every
//! replica knows which storage each member runs on, as etcd's members
//! publish their attributes. A replica that starts with **empty storage
//! and without `--join`** first asks its peers ([`probe`]) before it takes
//! part in Raft at all: if the cluster already recorded another
//! incarnation for its id, it refuses to start and says how to rejoin
//! safely. A brand-new cluster's replicas find nothing recorded and start,
//! in any order. `--join` is the operator saying the replica is (re)added
//! knowingly (`chatctl members add`, or a memory-only replica's restart):
//! its incarnation then replaces the recorded one.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use crate::storage::{load_small_file, save_small_file, StorageOpenError};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::raft::network::Peers;
use crate::storage::raft_types::NodeId;

pub use crate::state::command::Incarnation;

/// The file holding a disk replica's incarnation.
const FILE: &str = "incarnation";

/// This replica's incarnation, and whether its storage was empty at start.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    pub id: Incarnation,
    /// The storage held no vote, log or snapshot: this replica remembers
    /// nothing it may have promised before.
    pub fresh: bool,
}

/// Reads `dir`'s incarnation, or makes one (a new storage, or storage
/// written before incarnations existed). `None` is a memory-only replica:
/// always fresh, a new incarnation every start.
pub fn load_or_create(dir: Option<&Path>) -> Result<Local, StorageOpenError> {
    let Some(dir) = dir else {
        return Ok(Local {
            id: random(),
            fresh: true,
        });
    };
    let fresh = storage_is_empty(dir).map_err(|e| StorageOpenError::io("list", dir, e))?;
    if let Some(id) = load_small_file(dir, FILE)? {
        return Ok(Local { id, fresh });
    }
    std::fs::create_dir_all(dir).map_err(|e| StorageOpenError::io("create dir", dir, e))?;
    let id = random();
    save_small_file(dir, FILE, &id)?;
    Ok(Local { id, fresh })
}

fn random() -> Incarnation {
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    id
}

/// No vote, no log segment, no snapshot: nothing this replica may have
/// promised survives in `dir`.
fn storage_is_empty(dir: &Path) -> io::Result<bool> {
    if dir.join("vote").exists() {
        return Ok(false);
    }
    for sub in ["log", "snapshots"] {
        match std::fs::read_dir(dir.join(sub)) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What a peer knows of a replica's incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Known {
    /// The peer's state is still loading: ask again. Only releases that
    /// loaded their state in the background answer this; kept so that they
    /// are still understood.
    Loading,
    /// Nothing recorded for that replica.
    Unknown,
    Recorded(Incarnation),
}

/// How long to wait between rounds of asking.
const ROUND: Duration = Duration::from_millis(250);

/// Before a fresh replica without `--join` takes part in Raft: asks the
/// other `members` until a majority of the cluster (this replica counted)
/// has answered. `Err` if one of them has recorded another incarnation for
/// `id`.
pub async fn probe(
    peers: &Peers,
    id: NodeId,
    local: Incarnation,
    members: &BTreeMap<NodeId, String>,
) -> Result<(), String> {
    let majority = members.len() / 2 + 1;
    let mut answered = BTreeSet::from([id]);
    let mut rounds = 0u64;
    while answered.len() < majority {
        for (peer, url) in members {
            if answered.contains(peer) {
                continue;
            }
            match peers.hello(*peer, url, id, ROUND * 4).await {
                Ok(Known::Recorded(theirs)) if theirs != local => {
                    return Err(format!(
                        "this replica's storage is empty, but replica {peer} says the cluster \
                         already knows replica {id} with other storage: its data was wiped or \
                         replaced, and a replica that forgot its votes and log must not vote \
                         again as if nothing happened. To bring it back: `chatctl members remove \
                         {id}`, restart it with --join, then `chatctl members add {id}=HOST:PORT` \
                         (a memory-only replica: restart it with --join)"
                    ));
                }
                Ok(Known::Recorded(_)) | Ok(Known::Unknown) => {
                    answered.insert(*peer);
                }
                Ok(Known::Loading) => {}
                Err(e) => tracing::debug!(peer, error = %e, "no answer to the start-up check yet"),
            }
        }
        if answered.len() >= majority {
            break;
        }
        rounds += 1;
        if rounds % 20 == 1 {
            tracing::info!(
                answered = answered.len() - 1,
                needed = majority - 1,
                "empty storage: asking the other replicas whether the cluster already knows \
                 this one before taking part"
            );
        }
        tokio::time::sleep(ROUND).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incarnation_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(Some(dir.path())).unwrap();
        assert!(first.fresh);
        let again = load_or_create(Some(dir.path())).unwrap();
        assert_eq!(again.id, first.id, "kept across restarts");
        assert!(again.fresh, "still nothing promised");
        std::fs::write(dir.path().join("vote"), b"x").unwrap();
        assert!(!load_or_create(Some(dir.path())).unwrap().fresh);
        // Memory-only: a new life every start.
        assert_ne!(
            load_or_create(None).unwrap().id,
            load_or_create(None).unwrap().id
        );
    }
}
