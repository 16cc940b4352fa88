//! The api port (8443): employees, the web UI and business systems. Today:
//! health and readiness; the messaging API lands here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;

use crate::http::{ApiError, not_found, trace_request};
use crate::server::NodeState;

pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            trace_request,
        ))
        .with_state(state)
}

/// Liveness: the process is up and serving.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: every listener is bound and the node can take traffic.
async fn readyz(State(state): State<Arc<NodeState>>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(Json(json!({ "status": "ready", "node": state.node_id })))
    } else {
        Err(ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "node is starting",
        ))
    }
}
