//! Why a cluster operation failed, phrased for operators and API clients,
//! and the answer a forwarded operation carries back.

use serde::{Deserialize, Serialize};

use crate::peer::PeerError;

/// Cluster-level failures, phrased for operators and API clients.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ClusterError {
    #[error(
        "this node is not part of an initialized cluster yet (run `enclavectl cluster init` on the first node, or join it)"
    )]
    NotInitialized,
    #[error("no leader could take the write within {waited_ms} ms (is a majority of nodes up?)")]
    Unavailable { waited_ms: u64 },
    #[error("no leader is known right now (is a majority of nodes up?)")]
    NoLeader,
    #[error(
        "the outcome is unknown: {0}. The write may or may not have been applied; retry with the same idempotency key"
    )]
    OutcomeUnknown(String),
    #[error("refused: {0}")]
    Rejected(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("peer: {0}")]
    Peer(String),
    #[error(
        "this node leads but has not heard from a majority for {silent_ms} ms (cut off by a partition?); the write was not taken: retry on another node"
    )]
    NoQuorum { silent_ms: u64 },
    /// A linearizable read: the leader confirmed its commit index, but
    /// this node did not apply that far in time. (Last: the variants
    /// before it keep their wire form between nodes of two builds.)
    #[error(
        "this node has not applied what the cluster committed within {waited_ms} ms (it trails the leader: retry, or read from another node)"
    )]
    ApplyBehind { waited_ms: u64 },
}

impl From<PeerError> for ClusterError {
    fn from(e: PeerError) -> Self {
        ClusterError::Peer(e.to_string())
    }
}

/// Answer of a forwarded operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResult {
    /// The receiver is not (or no longer) the leader: ask again.
    NotLeader,
    Failed(ClusterError),
}
