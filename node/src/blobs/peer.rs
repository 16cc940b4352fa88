//! Chunk transfer between nodes, on the peer port beside `/raft/v1/*`:
//! `POST /blob/v1/put/{sha256}` (the chunk as the body),
//! `POST /blob/v1/get/{sha256}` (the chunk, or 404 when this node holds no
//! sound copy), `POST /blob/v1/drop` (postcard list of hashes of a failed
//! upload). Only current members' node certificates are served.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use enclave_cluster::listener::ConnInfo;
use enclave_cluster::types::node_id_of;
use http::StatusCode;

use super::store::ChunkError;
use crate::domain::files::CHUNK_SIZE;
use crate::domain::keys;
use crate::domain::store::Store;
use crate::http::NodeState;

pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/blob/v1/put/{hash}", post(put))
        .route("/blob/v1/get/{hash}", post(get))
        .route("/blob/v1/drop", post(drop_chunks))
        .layer(DefaultBodyLimit::max(CHUNK_SIZE as usize + 4096))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            members_only,
        ))
        .with_state(state)
}

pub(crate) async fn members_only(
    State(state): State<Arc<NodeState>>,
    Extension(conn): Extension<ConnInfo>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(id) = conn.identity.as_ref() else {
        return (StatusCode::UNAUTHORIZED, "no client certificate").into_response();
    };
    let nid = node_id_of(&id.name);
    if !state.cluster.members().iter().any(|(m, _)| *m == nid) {
        tracing::warn!(caller = %id.name, "chunk transfer from a node that is not a member; refused");
        return (
            StatusCode::FORBIDDEN,
            format!("{} is not a member of this cluster", id.name),
        )
            .into_response();
    }
    let span = tracing::debug_span!("blob_rpc", path = %req.uri().path(), caller = %id.name);
    tracing::Instrument::instrument(next.run(req), span).await
}

fn parse_hash(h: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}

fn bad_hash() -> Response {
    (StatusCode::BAD_REQUEST, "chunk name must be 64 hex digits").into_response()
}

async fn put(State(state): State<Arc<NodeState>>, Path(h): Path<String>, body: Bytes) -> Response {
    let Some(hash) = parse_hash(&h) else {
        return bad_hash();
    };
    let s = state.clone();
    let r = tokio::task::spawn_blocking(move || s.blobs.store.put(&hash, &body)).await;
    match r {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(ChunkError::DiskFull { path })) => {
            tracing::error!(path, "no space left for a chunk");
            (
                StatusCode::INSUFFICIENT_STORAGE,
                format!("no space left on {path}"),
            )
                .into_response()
        }
        Ok(Err(e @ ChunkError::Mismatch { .. })) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn get(State(state): State<Arc<NodeState>>, Path(h): Path<String>) -> Response {
    let Some(hash) = parse_hash(&h) else {
        return bad_hash();
    };
    let s = state.clone();
    match tokio::task::spawn_blocking(move || s.blobs.store.get(&hash)).await {
        Ok(Ok(Some(b))) => b.into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no such chunk here").into_response(),
        Ok(Err(ChunkError::Damaged { .. })) => {
            state
                .blobs
                .damaged_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Makes the next repair pass a full one.
            state
                .blobs
                .missing
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            state.blobs.wake.notify_one();
            (StatusCode::NOT_FOUND, "this node's copy is damaged").into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn drop_chunks(State(state): State<Arc<NodeState>>, body: Bytes) -> Response {
    let hashes: Vec<[u8; 32]> = match postcard::from_bytes(&body) {
        Ok(h) => h,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("malformed body: {e}")).into_response(),
    };
    drop_unused(&state, &hashes);
    StatusCode::NO_CONTENT.into_response()
}

/// Delete those of `hashes` that no record and no upload in progress on
/// this node uses.
pub fn drop_unused(state: &NodeState, hashes: &[[u8; 32]]) {
    let view = state.view();
    let in_uploads = state.blobs.uploads.chunks_in_use();
    for h in hashes {
        let used = view
            .scan(&keys::chunk_users(h), None, 1)
            .map(|v| !v.is_empty())
            .unwrap_or(true);
        if !used && !in_uploads.contains(h) {
            state.blobs.store.remove(h);
        }
    }
}
