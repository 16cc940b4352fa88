//! `enclave defrag`: give a stopped node's unused disk space back (see
//! `enclave_cluster::store::defrag` for how, and docs/operator/sizing.md
//! § Disk for when).

use std::path::Path;

use anyhow::{Context, bail};
use enclave_cluster::store::StoreError;
use enclave_cluster::store::defrag::{self, DefragReport};

/// Defragment the store in `data_dir`; `progress(done, total)` as records
/// are copied.
pub fn run(data_dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<DefragReport> {
    let store = data_dir.join("store");
    if !data_dir.is_dir() {
        bail!("--data-dir {}: no such directory", data_dir.display());
    }
    if !store.join("db").is_file() && !store.with_file_name("store.old").is_dir() {
        bail!(
            "--data-dir {}: no store here (expected {}/db)",
            data_dir.display(),
            store.display()
        );
    }
    match defrag::defrag(&store, progress) {
        Ok(r) => Ok(r),
        Err(StoreError::Io { error, .. })
        | Err(StoreError::Sled {
            error: sled::Error::Io(error),
            ..
        }) if error.to_string().contains("could not acquire lock") => {
            bail!(
                "{} is in use: stop the node first (systemctl stop enclave), defragment, then start it again",
                store.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("defragmenting {}", store.display())),
    }
}
