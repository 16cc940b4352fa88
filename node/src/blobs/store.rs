//! The chunk store on one node's disk: content-addressed files under
//! `<data_dir>/blobs/chunks/<2 hex>/<64 hex>`, each written to a temporary
//! file, fsync'd, renamed into place, and the directory fsync'd. A read
//! re-hashes the bytes: a copy that does not match its name is damaged,
//! is never returned, and is moved aside for repair.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What went wrong with the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("no space left on {path}")]
    DiskFull { path: String },
    #[error("chunk {hash} is damaged on this node (its bytes no longer match)")]
    Damaged { hash: String },
    #[error("the bytes sent do not match chunk {hash}")]
    Mismatch { hash: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ChunkError {
    fn io(path: &Path, source: std::io::Error) -> ChunkError {
        if is_disk_full(&source) {
            ChunkError::DiskFull {
                path: path.display().to_string(),
            }
        } else {
            ChunkError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    }
}

/// No space left (ENOSPC) or over a disk quota (EDQUOT).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The chunk files of one node.
#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    bytes: AtomicU64,
    chunks: AtomicU64,
    tmp_seq: AtomicU64,
}

impl ChunkStore {
    /// Open (creating) `<data_dir>/blobs`, counting what is there and
    /// removing temporary files a crash left behind.
    pub fn open(data_dir: &Path) -> Result<ChunkStore, ChunkError> {
        let root = data_dir.join("blobs");
        for d in ["chunks", "tmp", "damaged", "uploads"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| ChunkError::io(&p, e))?;
        }
        let tmp = root.join("tmp");
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let store = ChunkStore {
            root,
            bytes: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            tmp_seq: AtomicU64::new(0),
        };
        let (mut n, mut b) = (0u64, 0u64);
        for (_, len, _) in store.list()? {
            n += 1;
            b += len;
        }
        store.chunks.store(n, Ordering::Relaxed);
        store.bytes.store(b, Ordering::Relaxed);
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes and number of chunk files on this node.
    pub fn usage(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.chunks.load(Ordering::Relaxed),
        )
    }

    /// Reset the counters from a listing (`list`).
    pub fn set_usage(&self, bytes: u64, chunks: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
        self.chunks.store(chunks, Ordering::Relaxed);
    }

    fn path(&self, hash: &[u8; 32]) -> PathBuf {
        let h = hex::encode(hash);
        self.root.join("chunks").join(&h[..2]).join(&h)
    }

    pub fn has(&self, hash: &[u8; 32]) -> bool {
        self.path(hash).is_file()
    }

    /// Store a chunk durably. The bytes must hash to `hash`. Storing a
    /// chunk that is already here (and sound) is a no-op.
    pub fn put(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), ChunkError> {
        if sha256(bytes) != *hash {
            return Err(ChunkError::Mismatch {
                hash: hex::encode(hash),
            });
        }
        self.put_hashed(hash, bytes)
    }

    /// [`ChunkStore::put`] for bytes this node has just hashed itself.
    pub fn put_hashed(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), ChunkError> {
        let path = self.path(hash);
        if path.is_file() && matches!(self.get(hash), Ok(Some(_))) {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| ChunkError::io(&dir, e))?;
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            hex::encode(&hash[..8]),
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(ChunkError::io(&tmp, e));
        }
        let existed = path.is_file();
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(ChunkError::io(&path, e));
        }
        if let Ok(d) = fs::File::open(&dir) {
            d.sync_all().map_err(|e| ChunkError::io(&dir, e))?;
        }
        if !existed {
            self.chunks.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The chunk's bytes if this node holds a sound copy. A damaged copy
    /// is moved to `blobs/damaged/` and reported as [`ChunkError::Damaged`].
    pub fn get(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, ChunkError> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ChunkError::io(&path, e)),
        };
        if sha256(&bytes) == *hash {
            return Ok(Some(bytes));
        }
        let aside = self.root.join("damaged").join(hex::encode(hash));
        if fs::rename(&path, &aside).is_ok() {
            self.chunks.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(bytes.len() as u64, Ordering::Relaxed);
        }
        tracing::warn!(chunk = %hex::encode(hash), path = %path.display(), "damaged chunk moved aside; it will be repaired from peers");
        Err(ChunkError::Damaged {
            hash: hex::encode(hash),
        })
    }

    /// Delete a chunk (no record uses it any more).
    pub fn remove(&self, hash: &[u8; 32]) {
        let path = self.path(hash);
        if let Ok(meta) = fs::metadata(&path)
            && fs::remove_file(&path).is_ok()
        {
            self.chunks.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(meta.len(), Ordering::Relaxed);
        }
    }

    /// Every chunk file: (hash, length, age in seconds).
    pub fn list(&self) -> Result<Vec<([u8; 32], u64, u64)>, ChunkError> {
        let base = self.root.join("chunks");
        let mut out = Vec::new();
        let rd = fs::read_dir(&base).map_err(|e| ChunkError::io(&base, e))?;
        for sub in rd.flatten() {
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let mut hash = [0u8; 32];
                if hex::decode_to_slice(name.to_string_lossy().as_bytes(), &mut hash).is_err() {
                    continue;
                }
                let Ok(meta) = f.metadata() else { continue };
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .map_or(0, |d| d.as_secs());
                out.push((hash, meta.len(), age));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_verify_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = ChunkStore::open(dir.path()).expect("open");
        let data = b"hello chunk".to_vec();
        let h = sha256(&data);
        assert!(matches!(
            s.put(&sha256(b"other"), &data),
            Err(ChunkError::Mismatch { .. })
        ));
        s.put(&h, &data).expect("put");
        s.put(&h, &data).expect("put again is a no-op");
        assert_eq!(s.usage(), (data.len() as u64, 1));
        assert_eq!(s.get(&h).expect("get"), Some(data.clone()));
        // Flip one byte on disk: detected, never returned, moved aside.
        let p = s.path(&h);
        let mut b = fs::read(&p).expect("read");
        b[0] ^= 1;
        fs::write(&p, b).expect("write");
        assert!(matches!(s.get(&h), Err(ChunkError::Damaged { .. })));
        assert!(!s.has(&h));
        assert_eq!(s.get(&h).expect("get"), None);
        assert_eq!(s.usage(), (0, 0));
        // Reopen counts what is there.
        s.put(&h, &data).expect("repair");
        drop(s);
        let s = ChunkStore::open(dir.path()).expect("reopen");
        assert_eq!(s.usage(), (data.len() as u64, 1));
        s.remove(&h);
        assert_eq!(s.usage(), (0, 0));
    }
}
