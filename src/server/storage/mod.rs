//! Raft log and state-machine storage, in memory or on disk. (STUB)
