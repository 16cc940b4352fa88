//! The api port (8443): employees (the `/v1` API and the web client at
//! `/`), business systems (the `/cgi-bin` WeCom dialect), health and
//! readiness.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;

pub mod v1;

use crate::http::NodeState;
use crate::http::body::read_whole_body;
use crate::http::cors::cors;
use crate::http::{ApiError, assets, method_not_allowed_json, not_found, trace_request};

pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(v1::router())
        .merge(crate::wecom::router(state.clone()))
        .merge(assets::routes(assets::Page::Client))
        .fallback(not_found)
        .layer(middleware::from_fn(method_not_allowed_json))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.config.max_body_bytes,
            read_whole_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::admission::admit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::from_fn(crate::http::admission::retry_after))
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

/// Readiness: the listeners are up, Raft is running, and the node is in a
/// cluster that has a leader — i.e. a write sent here can be served. A node
/// whose Raft stopped (e.g. its disk filled up) is not ready.
/// The same check decides what systemd is told (`sdnotify::readiness`).
async fn readyz(State(state): State<Arc<NodeState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let code = match crate::sdnotify::readiness(&state) {
        Ok(()) => return Ok(Json(json!({ "status": "ready", "node": state.node_id }))),
        Err(code) => code,
    };
    let message = match code {
        "apply_halted" => state
            .cluster
            .sm
            .app()
            .halted()
            .map(|h| h.reason)
            .unwrap_or_else(|| "this node stopped applying the log".into()),
        "raft_stopped" => "Raft has stopped on this node (see its log: storage failure?)".into(),
        "not_initialized" => "this node is not part of a cluster yet".into(),
        "no_leader" => "no leader is known (election in progress, or no quorum)".into(),
        _ => "node is starting or stopping".into(),
    };
    Err(ApiError::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        code,
        message,
    ))
}
