//! Restore (`enclave restore`): seed a brand-new single-node cluster with a
//! backup, and finish the restore when that node first starts.
//!
//! A backup (`admin::backup`) is a consistent snapshot of the replicated
//! state in the snapshot file format (streamed, SHA-256 trailer), taken
//! after a linearizable read barrier so it contains every write
//! acknowledged before the request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use enclave_cluster::store::snapshot;
use serde::{Deserialize, Serialize};

use crate::http::NodeState;

#[derive(Debug, Serialize, Deserialize)]
pub struct Restored {
    pub from: PathBuf,
    pub sha256: String,
    pub records: u64,
    pub source_last_index: Option<u64>,
}

/// Marker left in a restored data dir until the node has made itself a
/// cluster from the restored state.
pub fn marker(data_dir: &Path) -> PathBuf {
    data_dir.join("restored.json")
}

/// `enclave restore --from FILE --data-dir DIR`.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    blobs_from: Option<&Path>,
) -> anyhow::Result<Restored> {
    let store = data_dir.join("store");
    if store.exists() {
        bail!(
            "{} already holds a store; restore only into a fresh data dir",
            data_dir.display()
        );
    }
    eprintln!("verifying {} ...", from.display());
    let info =
        snapshot::verify(from).with_context(|| format!("verifying backup {}", from.display()))?;
    eprintln!(
        "  ok: {} records, {} bytes, sha256 {}",
        info.records, info.bytes, info.sha256
    );
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let (_log, sm) = enclave_cluster::node::open_stores(
        data_dir,
        Arc::new(crate::messaging::NodeApp::default()),
        enclave_cluster::store::DEFAULT_CACHE_BYTES,
    )
    .with_context(|| format!("creating the store in {}", store.display()))?;
    let n = sm
        .restore_genesis(from)
        .await
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", from.display()))?;
    let view = crate::messaging::ViewStore(sm.view());
    let (files, _) = crate::domain::query::file_totals(&view)
        .map_err(|e| anyhow::anyhow!("reading the restored files: {e}"))?;
    match blobs_from {
        Some(dir) => {
            let r = restore_chunks(&view, dir, data_dir)?;
            eprintln!(
                "  files: {files} recorded; chunks: {} copied, {} missing, {} damaged in {}",
                r.copied,
                r.missing,
                r.damaged,
                dir.display()
            );
            if r.missing + r.damaged > 0 {
                eprintln!(
                    "  warning: {} files lack chunks and cannot be downloaded (first: {})",
                    r.files_incomplete,
                    r.first_incomplete.as_deref().unwrap_or("-")
                );
            }
        }
        None if files > 0 => eprintln!(
            "  warning: the backup records {files} files but no --blobs-from was given: their bytes are not restored"
        ),
        None => {}
    }
    let marker_data = Restored {
        from: from.to_path_buf(),
        sha256: info.sha256,
        records: n,
        source_last_index: info.meta.last_log_id.map(|l| l.index),
    };
    enclave_certs::files::write_public(
        &marker(data_dir),
        &serde_json::to_vec_pretty(&marker_data)?,
    )?;
    Ok(marker_data)
}

/// On start of a restored node: become a one-node cluster and snapshot the
/// restored state, so nodes that join later receive it by snapshot.
pub async fn finish_restore(state: &Arc<NodeState>) -> anyhow::Result<()> {
    let m = marker(&state.config.data_dir);
    if !m.exists() {
        return Ok(());
    }
    let cluster = &state.cluster;
    if !cluster.is_initialized() {
        cluster
            .initialize()
            .await
            .map_err(|e| anyhow::anyhow!("initializing the restored cluster: {e}"))?;
    }
    cluster
        .raft
        .wait(Some(std::time::Duration::from_secs(30)))
        .state(openraft::ServerState::Leader, "restored node leads")
        .await
        .map_err(|e| anyhow::anyhow!("restored node did not become leader: {e}"))?;
    // The restored chain continues the source cluster's; the restore itself
    // is its next record.
    if let Ok(r) = std::fs::read(&m)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Restored>(&b).map_err(|e| e.to_string()))
    {
        crate::http::record(
            state,
            &crate::audit::Origin::system(&state.node_id),
            "backup.restore",
            &r.from.display().to_string(),
            &format!("sha256:{} records {}", r.sha256, r.records),
        )
        .await;
    }
    cluster
        .raft
        .trigger()
        .snapshot()
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let applied = cluster
        .raft
        .wait(Some(std::time::Duration::from_secs(60)))
        .metrics(|m| m.snapshot.is_some(), "snapshot of restored state")
        .await
        .map_err(|e| anyhow::anyhow!("snapshot of the restored state: {e}"))?
        .snapshot;
    if let Some(s) = applied {
        cluster
            .raft
            .trigger()
            .purge_log(s.index)
            .await
            .map_err(|e| anyhow::anyhow!("purge: {e}"))?;
    }
    std::fs::rename(&m, m.with_extension("done")).context("retiring the restore marker")?;
    tracing::info!("restored state is now the cluster's state; join the other nodes");
    Ok(())
}

/// What `--blobs-from` brought back.
#[derive(Debug, Default)]
pub struct ChunksRestored {
    pub copied: u64,
    pub missing: u64,
    pub damaged: u64,
    pub files_incomplete: u64,
    pub first_incomplete: Option<String>,
}

/// Copy the chunks the restored files need from a copy of a node's
/// `blobs/chunks` (or `blobs`) directory, checking each against its hash.
pub fn restore_chunks(
    view: &crate::messaging::ViewStore,
    from: &Path,
    data_dir: &Path,
) -> anyhow::Result<ChunksRestored> {
    use crate::domain::store::StoreExt;
    let store = crate::blobs::store::ChunkStore::open(data_dir)
        .with_context(|| format!("creating the blob store in {}", data_dir.display()))?;
    let base = if from.join("chunks").is_dir() {
        from.join("chunks")
    } else {
        from.to_path_buf()
    };
    let mut out = ChunksRestored::default();
    view.visit_as::<crate::domain::BlobRecord>(crate::domain::keys::FILES, None, |_, f| {
        let mut whole = true;
        for h in f.all_chunks() {
            if store.has(h) {
                continue;
            }
            let name = hex::encode(h);
            let path = base.join(&name[..2]).join(&name);
            match std::fs::read(&path) {
                Ok(b) if crate::blobs::store::sha256(&b) == *h => {
                    store.put_hashed(h, &b).map_err(|e| {
                        crate::domain::StoreFault(format!("writing chunk {name}: {e}"))
                    })?;
                    out.copied += 1;
                }
                Ok(_) => {
                    out.damaged += 1;
                    whole = false;
                }
                Err(_) => {
                    out.missing += 1;
                    whole = false;
                }
            }
        }
        if !whole {
            out.files_incomplete += 1;
            out.first_incomplete.get_or_insert_with(|| f.id.clone());
        }
        Ok(true)
    })
    .map_err(|e| anyhow::anyhow!("restoring the file chunks: {e}"))?;
    Ok(out)
}
