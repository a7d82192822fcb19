//! Typing notices between replicas: ephemeral, never in the log.
//!
//! A notice says "this user is typing in this conversation". The replica
//! that takes it from a client (`api::typing` checks and rate-limits it)
//! hands it to its own subscriptions and sends it once to every other
//! member replica ([`Kind::Typing`](super::wire::Kind::Typing)), which hands
//! it to theirs. Nothing is retried or stored: a notice lost to a failure
//! is replaced by the next one a few seconds later, and each expires on
//! its own at the client.
//!
//! A notice carries ids only; each replica looks up names and membership
//! in its own applied state when it delivers, so a peer's notice cannot
//! carry text into anyone's terminal.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::raft::consensus::Consensus;
use crate::state::command::{ConversationId, UserId};

/// How long a replica waits for a peer to take a notice.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// Notices buffered per subscription before the oldest are dropped: a
/// subscriber that falls this far behind misses some, which is harmless.
const BUFFER: usize = 1024;

/// One user typing in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingNotice {
    pub conversation: ConversationId,
    pub user: UserId,
}

/// This replica's notices: taken from its clients and from its peers, read
/// by its subscriptions.
pub struct TypingRelay {
    local: broadcast::Sender<TypingNotice>,
}

impl Default for TypingRelay {
    fn default() -> Self {
        Self {
            local: broadcast::channel(BUFFER).0,
        }
    }
}

impl TypingRelay {
    /// The notices delivered on this replica from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TypingNotice> {
        self.local.subscribe()
    }

    /// Delivers a notice to this replica's subscriptions.
    pub fn deliver(&self, notice: TypingNotice) {
        // No subscriber is not an error: nobody is listening here.
        let _ = self.local.send(notice);
    }

    /// Delivers a client's notice here and sends it to every other member
    /// replica, without waiting for them.
    pub fn publish(self: &Arc<Self>, consensus: &Consensus, notice: TypingNotice) {
        self.deliver(notice);
        for (peer, addr) in consensus.other_members() {
            let peers = consensus.peers.clone();
            tokio::spawn(async move {
                if let Err(e) = peers.typing(peer, &addr, &notice, PEER_TIMEOUT).await {
                    tracing::debug!(peer, error = %e, "typing notice not delivered");
                }
            });
        }
    }
}
