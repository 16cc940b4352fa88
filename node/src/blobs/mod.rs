//! The blob store beside the Raft log (issue 17): files, images and voice
//! notes.
//!
//! - Bytes are cut into 4 MiB chunks named by their SHA-256 and kept in
//!   every node's [`store::ChunkStore`] (fsync'd, verified on every read).
//! - The node taking an upload stores each chunk and pushes it to its
//!   peers over the peer port (mTLS, node certificates; connections of
//!   their own, apart from Raft's). A chunk counts once a majority of the
//!   voters hold it durably ([`replicate`]).
//! - Only then is a small `RecordFile` command proposed: from then on every
//!   node knows which chunks the file is made of.
//! - A node missing a chunk (it was down, its copy is damaged) fetches it
//!   from a peer, checking the hash, in the background ([`repair`]) and
//!   whenever a download needs it ([`read_chunk`]).
//! - Chunks no record uses any more are deleted by each node ([`repair::gc`]).

pub mod peer;
pub mod repair;
pub mod sniff;
pub mod store;
pub mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use enclave_cluster::peer::client::{PeerError, Peers};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::http::NodeState;
use store::{ChunkError, ChunkStore, sha256};

/// How long one chunk transfer to a peer may take.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);

/// One node's blob service.
#[derive(Debug)]
pub struct Blobs {
    pub store: ChunkStore,
    /// Connections to peers for chunk transfers.
    peers: Arc<Peers>,
    pub repaired_total: AtomicU64,
    pub damaged_total: AtomicU64,
    /// Chunks referenced but absent here at the last repair pass.
    pub missing: AtomicU64,
    /// The first 100 of them (hex), for `blobs verify`.
    pub missing_names: std::sync::Mutex<Vec<String>>,
    /// Wakes the repair loop (a file was recorded, a read found a hole).
    pub wake: tokio::sync::Notify,
    pub verify: std::sync::Mutex<repair::VerifyStatus>,
    pub uploads: upload::Sessions,
    /// Optional malware scanner (`files.clamd_socket`).
    pub clamd: Option<std::path::PathBuf>,
}

impl Blobs {
    pub fn open(
        data_dir: &std::path::Path,
        peers: Arc<Peers>,
        clamd: Option<std::path::PathBuf>,
    ) -> Result<Blobs, ChunkError> {
        let store = ChunkStore::open(data_dir)?;
        let uploads = upload::Sessions::open(&store.root().join("uploads"));
        Ok(Blobs {
            store,
            peers,
            repaired_total: AtomicU64::new(0),
            damaged_total: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            missing_names: Default::default(),
            wake: tokio::sync::Notify::new(),
            verify: Default::default(),
            uploads,
            clamd,
        })
    }
}

impl Blobs {
    /// Drop chunk-transfer connections (after a certificate rotation).
    pub fn reset_peers(&self) {
        self.peers.reset();
    }
}

/// Why a chunk could not be made durable on a majority.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(
        "only {held} of the {needed} nodes needed stored the chunk (no space left on: {full}); {detail}"
    )]
    DiskFull {
        held: usize,
        needed: usize,
        full: String,
        detail: String,
    },
    #[error("only {held} of the {needed} nodes needed stored the chunk: {detail}")]
    NoMajority {
        held: usize,
        needed: usize,
        detail: String,
    },
}

/// One node's answer to a chunk push: (name, is a voter, result).
type Stored = (String, bool, Result<(), String>);

fn peer_disk_full(e: &PeerError) -> bool {
    matches!(e, PeerError::Status { status: 507, .. })
}

/// Store bytes this node hashed itself (uploads, verified peer copies).
async fn put_local(state: &Arc<NodeState>, hash: [u8; 32], bytes: Bytes) -> Result<(), ChunkError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.blobs.store.put_hashed(&hash, &bytes))
        .await
        .unwrap_or_else(|e| {
            Err(ChunkError::Io {
                path: "chunk writer".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
}

/// Store a chunk here and on the peers; return once a majority of the
/// voters hold it durably (the other pushes carry on in the background).
pub async fn replicate(state: &Arc<NodeState>, bytes: Bytes) -> Result<[u8; 32], ReplicateError> {
    let hash = sha256(&bytes);
    replicate_hashed(state, hash, bytes).await
}

/// [`replicate`] for bytes whose SHA-256 the caller already has.
pub async fn replicate_hashed(
    state: &Arc<NodeState>,
    hash: [u8; 32],
    bytes: Bytes,
) -> Result<[u8; 32], ReplicateError> {
    let voters = state.cluster.voter_ids();
    let needed = voters.len().max(1) / 2 + 1;
    let me = state.cluster.id;
    let mut tasks: FuturesUnordered<tokio::task::JoinHandle<Stored>> = FuturesUnordered::new();
    {
        let s = state.clone();
        let b = bytes.clone();
        let name = state.node_id.clone();
        let voter = voters.contains(&me) || voters.is_empty();
        tasks.push(tokio::spawn(async move {
            match put_local(&s, hash, b).await {
                Ok(()) => (name, voter, Ok(())),
                Err(ChunkError::DiskFull { .. }) => (name, voter, Err("disk full".to_string())),
                Err(e) => (name, voter, Err(e.to_string())),
            }
        }));
    }
    let path = format!("/blob/v1/put/{}", hex::encode(hash));
    for (id, member) in state.cluster.members() {
        if id == me {
            continue;
        }
        let client = state.blobs.peers.get(id, &member);
        let voter = voters.contains(&id);
        // Shared, not copied: every push sends the same buffer.
        let b = bytes.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let name = client.member().name.clone();
            match client.call_raw(&path, b, CHUNK_TIMEOUT).await {
                Ok(_) => (name, voter, Ok(())),
                Err(e) if peer_disk_full(&e) => (name, voter, Err("disk full".to_string())),
                Err(e) => (name, voter, Err(e.to_string())),
            }
        }));
    }
    let mut held = 0usize;
    let mut full = Vec::new();
    let mut errors = Vec::new();
    while let Some(done) = tasks.next().await {
        match done {
            Ok((_, true, Ok(()))) => {
                held += 1;
                if held >= needed {
                    return Ok(hash);
                }
            }
            Ok((_, false, Ok(()))) => {}
            Ok((name, _, Err(e))) if e == "disk full" => full.push(name),
            Ok((name, _, Err(e))) => errors.push(format!("{name}: {e}")),
            Err(e) => errors.push(format!("transfer task: {e}")),
        }
    }
    let detail = if errors.is_empty() {
        "nothing was recorded".to_string()
    } else {
        errors.join("; ")
    };
    if full.is_empty() {
        Err(ReplicateError::NoMajority {
            held,
            needed,
            detail,
        })
    } else {
        Err(ReplicateError::DiskFull {
            held,
            needed,
            full: full.join(", "),
            detail,
        })
    }
}

/// Why a chunk could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("chunk {0} is not held soundly by this node or any reachable peer")]
    Unavailable(String),
    #[error("{0}")]
    Local(#[from] ChunkError),
}

/// A chunk's bytes: this node's copy if sound, else a peer's (checked
/// against the hash and stored here: an on-demand repair).
pub async fn read_chunk(state: &Arc<NodeState>, hash: [u8; 32]) -> Result<Bytes, ReadError> {
    let s = state.clone();
    let local = tokio::task::spawn_blocking(move || s.blobs.store.get(&hash))
        .await
        .unwrap_or(Ok(None));
    match local {
        Ok(Some(b)) => return Ok(Bytes::from(b)),
        Ok(None) => {}
        Err(ChunkError::Damaged { .. }) => {
            state.blobs.damaged_total.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::warn!(error = %e, "reading a chunk; trying peers"),
    }
    let bytes = fetch_from_peers(state, hash).await?;
    if let Err(e) = put_local(state, hash, bytes.clone()).await {
        tracing::warn!(chunk = %hex::encode(hash), error = %e, "could not keep the repaired chunk");
    } else {
        state.blobs.repaired_total.fetch_add(1, Ordering::Relaxed);
        tracing::info!(chunk = %hex::encode(hash), "chunk repaired from a peer");
    }
    Ok(bytes)
}

/// A sound copy of a chunk from the first peer that has one.
pub async fn fetch_from_peers(state: &Arc<NodeState>, hash: [u8; 32]) -> Result<Bytes, ReadError> {
    let path = format!("/blob/v1/get/{}", hex::encode(hash));
    for (id, member) in state.cluster.members() {
        if id == state.cluster.id {
            continue;
        }
        let client = state.blobs.peers.get(id, &member);
        match client.call_raw(&path, Vec::new(), CHUNK_TIMEOUT).await {
            Ok(b) if sha256(&b) == hash => return Ok(b),
            Ok(_) => {
                tracing::warn!(peer = %member.name, chunk = %hex::encode(hash), "peer sent a chunk that does not match its hash");
            }
            Err(e) => tracing::debug!(peer = %member.name, error = %e, "chunk not fetched"),
        }
    }
    Err(ReadError::Unavailable(hex::encode(hash)))
}

/// Ask the peers to drop chunks of an upload that failed (each keeps a
/// chunk that a record or one of its own uploads still uses).
pub async fn drop_everywhere(state: &Arc<NodeState>, hashes: Vec<[u8; 32]>) {
    if hashes.is_empty() {
        return;
    }
    peer::drop_unused(state, &hashes);
    let Ok(body) = postcard::to_stdvec(&hashes) else {
        return;
    };
    for (id, member) in state.cluster.members() {
        if id == state.cluster.id {
            continue;
        }
        let client = state.blobs.peers.get(id, &member);
        if let Err(e) = client
            .call_raw("/blob/v1/drop", body.clone(), Duration::from_secs(10))
            .await
        {
            tracing::debug!(peer = %member.name, error = %e, "peer did not drop the chunks of a failed upload; its collector will");
        }
    }
}
