//! Making sled's flush durable.
//!
//! sled 0.34's `flush` writes its buffers with `pwrite` and finishes with
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`. That pushes the data
//! pages to the device but neither commits the file's metadata (its size,
//! newly allocated extents) nor flushes the drive's volatile write cache, so
//! after a power cut the tail of the store can be gone although sled said it
//! was flushed. Values larger than a quarter segment go to `blobs/`, whose
//! files sled never syncs at all. The failover suite's power-loss case found
//! this (a node came back with its log shorter than its durable commit
//! index); see docs/operator/failover-testing.md.
//!
//! [`Durability::sync`] runs after every sled flush that must be durable
//! (log appends, vote, truncate/purge, watermark, snapshot install):
//! `fdatasync` on sled's data file, then `fdatasync` on each blob file that
//! is new or changed size since the last call, and `fsync` on the blob
//! directory when an entry was added.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The files of one sled database that need syncing after a flush.
#[derive(Debug)]
pub struct Durability {
    dir: PathBuf,
    data: File,
    /// Blob file name → size when last synced.
    blobs: Mutex<HashMap<OsString, u64>>,
}

impl Durability {
    /// For the sled database in `dir` (already open, so its `db` file exists).
    pub fn open(dir: &Path) -> io::Result<Durability> {
        let data = File::open(dir.join("db"))?;
        Ok(Durability {
            dir: dir.to_path_buf(),
            data,
            blobs: Mutex::new(HashMap::new()),
        })
    }

    /// Make everything sled has flushed so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.data.sync_data()?;
        let blob_dir = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blob_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = HashMap::with_capacity(synced.len());
        let mut added = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // Size before the sync: if sled is still writing the file, the
            // next call sees a different size and syncs it again.
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match synced.get(&name) {
                Some(l) if *l == len => {}
                previous => {
                    added |= previous.is_none();
                    match File::open(entry.path()) {
                        Ok(f) => f.sync_data()?,
                        // Collected by sled meanwhile: nothing to keep.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            seen.insert(name, len);
        }
        *synced = seen;
        drop(synced);
        if added {
            File::open(&blob_dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// `db.flush()`, then [`Durability::sync`].
pub fn flush_durably(db: &sled::Db, durable: &Durability) -> sled::Result<()> {
    db.flush()?;
    durable.sync()?;
    Ok(())
}

/// Async [`flush_durably`]: the syncs run on the blocking pool.
pub async fn flush_durably_async(db: &sled::Db, durable: &Arc<Durability>) -> sled::Result<()> {
    db.flush_async().await?;
    let d = durable.clone();
    tokio::task::spawn_blocking(move || d.sync())
        .await
        .map_err(|e| sled::Error::Io(io::Error::other(e.to_string())))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_the_data_file_and_new_or_grown_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("db"), b"data").expect("db");
        let d = Durability::open(dir.path()).expect("open");
        // No blob directory yet: fine.
        d.sync().expect("sync without blobs");
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).expect("blobs");
        std::fs::write(blobs.join("1"), b"abc").expect("blob");
        d.sync().expect("sync");
        assert_eq!(
            d.blobs.lock().expect("lock").get(&OsString::from("1")),
            Some(&3)
        );
        std::fs::write(blobs.join("1"), b"abcdef").expect("grow");
        std::fs::remove_file(dir.path().join("blobs").join("1")).ok();
        std::fs::write(blobs.join("2"), b"xy").expect("blob 2");
        d.sync().expect("sync again");
        let m = d.blobs.lock().expect("lock").clone();
        assert_eq!(m.len(), 1, "a collected blob is forgotten: {m:?}");
        assert_eq!(m.get(&OsString::from("2")), Some(&2));
    }

    #[test]
    fn a_missing_data_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Durability::open(dir.path()).is_err());
    }
}
