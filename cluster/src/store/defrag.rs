//! Offline defragmentation of a node's store (`enclave defrag`).
//!
//! sled 0.34 never gives disk space back: pages rewritten by later writes
//! stay in their segments until its cleaner gets to them (slowly), and the
//! file never shrinks. A node that has taken writes for a while therefore
//! holds several times its data (docs/operator/sizing.md § Disk). Like
//! `etcdctl defrag` for etcd's bbolt file, defragmentation rewrites every tree
//! into a fresh database next to the store and swaps the two:
//!
//! 1. `store.defrag/` is written tree by tree in key order, in batches of
//!    about [`BATCH_BYTES`], each followed by a flush, then flushed
//!    durably;
//! 2. every tree of the copy is compared with the original, key by key;
//! 3. `store/` is renamed to `store.old/`, `store.defrag/` to `store/`
//!    (each rename made durable), and `store.old/` is removed.
//!
//! A crash at any point leaves either the original or a verified copy:
//! [`recover_interrupted`] (run before every open of the store) puts the
//! original back when `store/` is missing, and otherwise removes what a
//! defragmentation left behind. The node must be stopped: sled's file lock
//! refuses a second opener.

use std::path::{Path, PathBuf};

use super::durable::{Durability, flush_durably};
use super::{StoreError, open_db, sled_err};

/// A batch of records is written (then flushed) once it holds this many
/// bytes of keys and values: sled writes sorted records far more
/// compactly in batches than one by one. Measured on two stores: 650k
/// records of ~290 bytes came out at 2.9x their data one by one, 2.3x in
/// batches of ~3 MB, 2.7x in batches of ~30 MB; 5.5M records of ~40
/// bytes at 5.3x in batches of 40 KB, 4.4x at 400 KB, 3.5x at 1.2-4 MB.
const BATCH_BYTES: u64 = 2 << 20;
/// ... or this many records. Peak memory grows with the batch (sled keeps
/// a batch's garbage until it ends): ~1.1 GB for the 5.5M-record store
/// at up to 30k records a batch, 1.5 GB at 100k, 5.5 GB at 1M.
const BATCH_RECORDS: u64 = 100_000;

/// One tree of the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeStat {
    /// `raft` (the log), `sm.<generation>` (the state), `journal`, `meta`,
    /// sled's own `__sled__default`.
    pub name: String,
    pub records: u64,
    pub bytes: u64,
}

/// What a defragmentation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DefragReport {
    pub trees: Vec<TreeStat>,
    pub records: u64,
    /// Keys and values, as stored (the data itself).
    pub logical_bytes: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub seconds: f64,
}

fn sibling(store_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = store_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(suffix);
    store_dir.with_file_name(name)
}

fn io_err(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Make a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Finish or undo a defragmentation that a crash interrupted (see the module
/// comment). Returns what it did, for the log; `None` when there was
/// nothing to do.
pub fn recover_interrupted(store_dir: &Path) -> Result<Option<&'static str>, StoreError> {
    let old = sibling(store_dir, ".old");
    let tmp = sibling(store_dir, ".defrag");
    let parent = store_dir.parent().unwrap_or(Path::new("."));
    let mut did = None;
    if old.exists() {
        if store_dir.exists() {
            // The verified copy is in place: the original can go.
            std::fs::remove_dir_all(&old).map_err(|e| io_err(&old, e))?;
            did = Some("removed the original store a finished defragmentation left behind");
        } else {
            std::fs::rename(&old, store_dir).map_err(|e| io_err(&old, e))?;
            sync_dir(parent)?;
            did = Some("put back the original store of an interrupted defragmentation");
        }
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        did = did.or(Some(
            "removed the partial copy of an interrupted defragmentation",
        ));
    }
    Ok(did)
}

/// Defragment the (closed) store in `store_dir`. `progress(done, total)` is
/// called every few thousand records.
pub fn defrag(
    store_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DefragReport, StoreError> {
    let started = std::time::Instant::now();
    if let Some(did) = recover_interrupted(store_dir)? {
        tracing::warn!(path = %store_dir.display(), "{did}");
    }
    if !store_dir.join("db").is_file() {
        return Err(io_err(
            store_dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no store here"),
        ));
    }
    let bytes_before = dir_bytes(store_dir);
    let src = open_db(store_dir, super::DEFAULT_CACHE_BYTES)?;
    let tmp = sibling(store_dir, ".defrag");
    let dst = open_db(&tmp, super::DEFAULT_CACHE_BYTES)?;
    let names = src.tree_names();
    let mut total = 0u64;
    for name in &names {
        total += src
            .open_tree(name)
            .map_err(|e| sled_err(store_dir, e))?
            .len() as u64;
    }
    let (mut records, mut logical_bytes) = (0u64, 0u64);
    let mut trees = Vec::with_capacity(names.len());
    progress(0, total);
    for name in &names {
        let s = src.open_tree(name).map_err(|e| sled_err(store_dir, e))?;
        let d = dst.open_tree(name).map_err(|e| sled_err(&tmp, e))?;
        let mut stat = TreeStat {
            name: String::from_utf8_lossy(name).into_owned(),
            records: 0,
            bytes: 0,
        };
        let mut batch = sled::Batch::default();
        let (mut in_batch, mut batch_bytes) = (0u64, 0u64);
        for kv in s.iter() {
            let (k, v) = kv.map_err(|e| sled_err(store_dir, e))?;
            let size = (k.len() + v.len()) as u64;
            stat.records += 1;
            stat.bytes += size;
            logical_bytes += size;
            batch.insert(k, v);
            in_batch += 1;
            batch_bytes += size;
            records += 1;
            if in_batch >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
                d.apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| sled_err(&tmp, e))?;
                dst.flush().map_err(|e| sled_err(&tmp, e))?;
                (in_batch, batch_bytes) = (0, 0);
                progress(records, total);
            }
        }
        d.apply_batch(batch).map_err(|e| sled_err(&tmp, e))?;
        trees.push(stat);
    }
    let durable = Durability::open(&tmp).map_err(|e| io_err(&tmp, e))?;
    flush_durably(&dst, &durable).map_err(|e| sled_err(&tmp, e))?;
    // The copy must hold exactly what the original does.
    for name in &names {
        let s = src.open_tree(name).map_err(|e| sled_err(store_dir, e))?;
        let d = dst.open_tree(name).map_err(|e| sled_err(&tmp, e))?;
        let mut a = s.iter();
        let mut b = d.iter();
        loop {
            match (a.next(), b.next()) {
                (None, None) => break,
                (Some(x), Some(y)) => {
                    let x = x.map_err(|e| sled_err(store_dir, e))?;
                    let y = y.map_err(|e| sled_err(&tmp, e))?;
                    if x != y {
                        return Err(StoreError::Corrupt {
                            path: tmp.clone(),
                            detail: format!(
                                "the defragmented copy differs from the store in tree {}; the store is unchanged",
                                String::from_utf8_lossy(name)
                            ),
                        });
                    }
                }
                _ => {
                    return Err(StoreError::Corrupt {
                        path: tmp.clone(),
                        detail: format!(
                            "the defragmented copy has a different number of records in tree {}; the store is unchanged",
                            String::from_utf8_lossy(name)
                        ),
                    });
                }
            }
        }
    }
    progress(records, total);
    drop(durable);
    drop(src);
    drop(dst);
    let old = sibling(store_dir, ".old");
    let parent = store_dir.parent().unwrap_or(Path::new("."));
    std::fs::rename(store_dir, &old).map_err(|e| io_err(store_dir, e))?;
    sync_dir(parent)?;
    std::fs::rename(&tmp, store_dir).map_err(|e| io_err(&tmp, e))?;
    sync_dir(parent)?;
    std::fs::remove_dir_all(&old).map_err(|e| io_err(&old, e))?;
    Ok(DefragReport {
        trees,
        records,
        logical_bytes,
        bytes_before,
        bytes_after: dir_bytes(store_dir),
        seconds: started.elapsed().as_secs_f64(),
    })
}
