//! Files on the admin port: this node's blob store, its scrub, and the
//! files policy (security administrator).

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::domain::{self, Command};
use crate::http::{ApiError, Body, S, store_error, submit};

/// `GET /v1/blobs` (operators): this node's chunk store.
pub async fn status(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    Ok(Json(blob_status(&state)?))
}

pub fn blob_status(state: &crate::http::NodeState) -> Result<Value, ApiError> {
    let (bytes, chunks) = state.blobs.store.usage();
    let (files, file_bytes) = domain::query::file_totals(&state.view()).map_err(store_error)?;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(json!({
        "node": state.node_id,
        "blobs": files,
        "blob_bytes_logical": file_bytes,
        "chunks": chunks,
        "bytes": bytes,
        "missing": state.blobs.missing.load(Relaxed),
        "repaired_total": state.blobs.repaired_total.load(Relaxed),
        "damaged_total": state.blobs.damaged_total.load(Relaxed),
        "uploads_in_progress": state.blobs.uploads.count(),
    }))
}

/// `POST /v1/blobs/verify` (sysadmin): start a scrub of this node.
pub async fn start_verify(
    State(state): State<S>,
    op: OperatorOrigin,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !crate::blobs::repair::start_verify(&state) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_running",
            "a blob scrub is already running on this node",
        ));
    }
    crate::http::record(&state, &op.0, "blobs.verify", &state.node_id, "started").await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "started": true }))))
}

/// `GET /v1/blobs/verify` (operators): the scrub's progress.
pub async fn verify_status(State(state): State<S>) -> Json<Value> {
    let v = state
        .blobs
        .verify
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Json(json!(v))
}

/// `GET /v1/policy/files` (operators).
pub async fn get_policy(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let p = domain::query::file_policy(&state.view()).map_err(store_error)?;
    Ok(Json(json!(p)))
}

/// `PUT /v1/policy/files` (secadmin): the whole policy.
pub async fn put_policy(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(policy): Body<domain::FilePolicy>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::SetFilePolicy {
            policy: policy.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!(policy)))
}
