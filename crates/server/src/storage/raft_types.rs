//! The openraft type configuration: our log entries carry a [`Batch`], applying
//! one returns a result per proposal, and a node is addressed by its URL.

use crate::state::command::{Batch, CommandResult};
use crate::storage::SnapshotBody;

openraft::declare_raft_types!(
    /// Type configuration of the raftchat Raft group.
    pub TypeConfig:
        D = Batch,
        R = Vec<CommandResult>,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotBody,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
