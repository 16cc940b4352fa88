//! The Raft type configuration and the wire types of the replicated log.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Raft node id. Derived from the node's name (the common name of its node
/// certificate) so that identity is a property of the certificate: a peer
/// claiming node id N must present a certificate whose name hashes to N.
pub type NodeId = u64;

/// Node id of a node name: the first 8 bytes of SHA-256(name), big-endian.
pub fn node_id_of(name: &str) -> NodeId {
    let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// What the cluster knows about a member: its name and where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node name (certificate common name and DNS SAN).
    pub name: String,
    /// Peer address, `host:port`.
    pub peer: String,
    /// Client API address, `host:port`.
    pub api: String,
    /// Admin address, `host:port`.
    pub admin: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer)
    }
}

/// A command proposed to the log. The leader fills `time_ms` before
/// proposing; apply never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Milliseconds since the Unix epoch, stamped by the leader.
    pub time_ms: u64,
    /// Optional client idempotency key: a retried request with the same key
    /// returns the first outcome instead of applying again.
    pub idempotency_key: Option<String>,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// An application command, encoded by the application. (`serde_bytes`:
    /// postcard writes it as one length + copy instead of byte by byte;
    /// the encoding is the same.)
    App(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A command of the cluster layer itself.
    Cluster(ControlCommand),
    /// Requests batched into one entry by the leader's proposer; each keeps
    /// its own idempotency key and outcome. Never nested.
    Batch(Vec<Request>),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.payload {
            Payload::App(b) => write!(f, "app({} bytes)", b.len()),
            Payload::Cluster(c) => write!(f, "cluster({c:?})"),
            Payload::Batch(b) => write!(f, "batch({} requests)", b.len()),
        }
    }
}

/// The outcome of applying a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Index of the log entry that produced this outcome (for a deduplicated
    /// retry: the index of the original).
    pub index: u64,
    /// True when this is the stored outcome of an earlier request with the
    /// same idempotency key.
    pub deduplicated: bool,
    pub payload: ResponsePayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponsePayload {
    /// Blank entries and membership changes.
    None,
    App(#[serde(with = "serde_bytes")] Vec<u8>),
    Cluster(ControlOutcome),
    /// One outcome per request of a [`Payload::Batch`], in order.
    Batch(Vec<Response>),
}

/// Commands of the cluster layer itself, replicated like any other (applied
/// by [`crate::control`]). Join tokens are consumed through the log, so two
/// nodes can never both accept the same token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlCommand {
    /// Register a join token. Only the SHA-256 of its secret is stored.
    CreateJoinToken {
        id: String,
        secret_sha256: Vec<u8>,
        ttl_ms: u64,
        created_by: String,
    },
    /// Use a token for `node`. Refused if unknown, used, expired or wrong.
    ConsumeJoinToken {
        id: String,
        secret_sha256: Vec<u8>,
        node: String,
    },
    /// Name the cluster once (at init): every peer RPC carries the id, and a
    /// node refuses RPCs from another cluster under the same CA.
    SetClusterId { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlOutcome {
    JoinTokenCreated {
        id: String,
        expires_at_ms: u64,
    },
    JoinTokenAccepted {
        id: String,
    },
    JoinTokenRefused {
        reason: String,
    },
    /// The cluster's id (the first one set wins).
    ClusterId {
        id: String,
    },
}

openraft::declare_raft_types!(
    /// Enclave's Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// Used only by openraft's conformance suite, which needs a cursor type.
pub type CursorSnapshot = Cursor<Vec<u8>>;

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte payloads are written as byte strings (`serde_bytes`), which
    /// postcard encodes exactly as it did the plain `Vec<u8>` sequences
    /// before: logs, snapshots and peers of older builds still decode.
    #[test]
    fn byte_payloads_keep_their_encoding() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        #[derive(Serialize)]
        enum Plain<'a> {
            App(&'a Vec<u8>),
        }
        let new = postcard::to_stdvec(&Payload::App(bytes.clone())).expect("encode");
        let old = postcard::to_stdvec(&Plain::App(&bytes)).expect("encode");
        assert_eq!(new, old);
        assert_eq!(
            postcard::from_bytes::<Payload>(&old).expect("decode"),
            Payload::App(bytes.clone())
        );
        let r = postcard::to_stdvec(&ResponsePayload::App(bytes.clone())).expect("encode");
        assert_eq!(
            &r[1..],
            &old[1..],
            "same as the plain sequence after the tag"
        );
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id_of("node-1"), node_id_of("node-1"));
        assert_ne!(node_id_of("node-1"), node_id_of("node-2"));
    }
}
