//! Backups on the admin port (sysadmin): a consistent snapshot of the
//! replicated state, streamed; and the state hash operators compare
//! across nodes. Restoring is `enclave restore` (`crate::backup`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::http::{ApiError, NodeState, cluster_error};

/// `GET /v1/backup`: stream a consistent backup.
pub async fn create(State(state): State<Arc<NodeState>>) -> Result<Response, ApiError> {
    state.cluster.read_barrier().await.map_err(cluster_error)?;
    let dir = state.config.data_dir.join("backups");
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string()))?;
    // Only one backup file is kept on the node, the one being streamed.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = dir.join(format!("backup-{ts}.enclave"));
    let info = state
        .cluster
        .sm
        .write_snapshot_file(&path)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                e.to_string(),
            )
        })?;
    tracing::info!(records = info.records, bytes = info.bytes, sha256 = %info.sha256, "backup created");
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
    Ok((
        [
            (
                http::header::CONTENT_TYPE,
                "application/x-enclave-backup".to_string(),
            ),
            (http::header::CONTENT_LENGTH, info.bytes.to_string()),
            (
                http::HeaderName::from_static("x-enclave-sha256"),
                info.sha256.clone(),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/cluster/state-hash`: a digest of the replicated state, equal on
/// every node that has applied the same entries.
pub async fn state_hash(
    State(state): State<Arc<NodeState>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let applied = state
        .cluster
        .sm
        .last_applied()
        .ok()
        .flatten()
        .map(|l| l.index);
    let (hash, records) =
        state.cluster.sm.state_hash().map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
        })?;
    Ok(axum::Json(
        serde_json::json!({ "sha256": hash, "records": records, "applied_index": applied }),
    ))
}
