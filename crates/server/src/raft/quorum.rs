//! Whether the group has a working quorum, seen from every replica, and how
//! many elections this replica has seen.
//!
//! openraft 0.9 keeps a leader that lost its majority in office, and its
//! followers keep hearing its heartbeats: with 3 of 5 replicas killed, the
//! two survivors still showed `leader` and `follower`, and both reported
//! SERVING. A leader knows whom it heard from
//! ([`Consensus::check_quorum`]); a follower asks its leader
//! ([`crate::raft::wire::Kind::Lease`]) every [`RECHECK`], and counts a
//! leader that does not answer in time as having no quorum.
//! [`Consensus::has_quorum`] feeds health, `Status` and the metrics.

use std::time::Duration;

use crate::raft::consensus::Consensus;

/// How often a follower asks its leader, and how long the leader has to
/// answer.
pub const RECHECK: Duration = Duration::from_millis(250);

/// Keeps [`Consensus::has_quorum`] current on a follower, and counts term
/// changes as elections, until Raft stops.
pub async fn watch(consensus: Consensus) {
    let mut term = None;
    loop {
        let m = consensus.metrics();
        if m.running_state.is_err() {
            return;
        }
        if let Some(seen) = term {
            if m.current_term > seen {
                crate::metrics::observe_elections(m.current_term - seen);
            }
        }
        term = Some(m.current_term);
        let answer = match consensus.leader() {
            Some((id, url)) if id != consensus.id && !url.is_empty() => {
                matches!(
                    consensus.peers.lease(id, &url, RECHECK).await,
                    Ok(Some(said)) if said == id
                )
            }
            _ => false,
        };
        consensus.set_leader_has_quorum(answer);
        tokio::time::sleep(RECHECK).await;
    }
}
