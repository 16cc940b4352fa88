//! Durable storage of a node: one sled database holding the Raft log
//! (tree `raft`), the state machine (tree `sm.<generation>`), the redo
//! record of the last apply batch (tree `journal`) and small metadata
//! (tree `meta`).
//!
//! Every stored value is *sealed*: prefixed with an 8-byte SHA-256 checksum,
//! verified on every read and, for the whole log, when the store is opened.
//! A damaged store refuses to open with [`StoreError::Corrupt`] naming the
//! key; the operator rebuilds the node from its peers (docs/operator/cluster.md).
//!
//! The rest of the cluster crate sees storage only through openraft's
//! `RaftLogStorage` / `RaftStateMachine` traits (implemented by [`LogStore`]
//! and [`StateMachineStore`]), so another engine could replace sled by
//! implementing those two.

mod background;
mod capture;
mod dedup;
pub mod defrag;
pub mod durable;
mod journal;
mod log_store;
pub mod metrics;
pub mod snapshot;
mod state_machine;
mod txn;
pub mod watermark;

use std::path::{Path, PathBuf};

pub use log_store::LogStore;
pub use state_machine::{StateMachineStore, StateView};
pub use txn::Txn;

/// A stored key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Storage failures, each saying where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store {path} is damaged: {detail}. This node cannot start on it; rebuild it from its peers (enclavectl node rebuild, see docs/operator/cluster.md)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("store {path}: {error}")]
    Sled { path: PathBuf, error: sled::Error },
    #[error("store {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Cache for sled's page cache. sled's default is 1 GiB per database; the
/// working set of a node is the log tail and hot state.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Open (or create) the database in `dir`.
pub fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(500));
    // Some kinds of damage make sled's recovery panic instead of returning an
    // error; a damaged store must be reported, not crash the process.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(r) => r.map_err(|e| sled_err(dir, e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked while recovering".into());
            Err(StoreError::Corrupt {
                path: dir.to_path_buf(),
                detail: format!("sled cannot recover it: {msg}"),
            })
        }
    }
}

pub(crate) fn sled_err(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("sled reports corrupted data at {at:?}"),
        },
        sled::Error::Io(source) => StoreError::Io {
            path: path.to_path_buf(),
            error: source,
        },
        other => StoreError::Sled {
            path: path.to_path_buf(),
            error: other,
        },
    }
}

const SUM_LEN: usize = 8;

fn checksum(payload: &[u8]) -> [u8; SUM_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, payload);
    let mut out = [0u8; SUM_LEN];
    out.copy_from_slice(&d.as_ref()[..SUM_LEN]);
    out
}

/// Checksum + payload.
pub(crate) fn seal(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(SUM_LEN + payload.len());
    v.extend_from_slice(&checksum(payload));
    v.extend_from_slice(payload);
    v
}

/// Verify and strip the checksum. `None` if the value is damaged.
pub(crate) fn unseal(sealed: &[u8]) -> Option<&[u8]> {
    if sealed.len() < SUM_LEN {
        return None;
    }
    let (sum, payload) = sealed.split_at(SUM_LEN);
    (sum == checksum(payload)).then_some(payload)
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // postcard cannot fail on our plain data types; an empty value would
    // fail the checksum-and-decode on read rather than go unnoticed.
    postcard::to_stdvec(v).unwrap_or_default()
}

pub(crate) fn sealed<T: serde::Serialize>(v: &T) -> Vec<u8> {
    seal(&encode(v))
}

/// Decode a sealed value, reporting damage against `what`.
pub(crate) fn open_sealed<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let payload = unseal(bytes).ok_or_else(|| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("checksum mismatch in {what}"),
    })?;
    postcard::from_bytes(payload).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("cannot decode {what}: {e}"),
    })
}

/// Map a store error into openraft's storage error.
pub(crate) fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests;

/// Seal a value for storage in the state machine (used by the control
/// commands and available to applications).
pub fn sealed_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    sealed(v)
}

/// Open a sealed value; `None` if damaged.
pub fn unsealed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(unseal(bytes)?).ok()
}
