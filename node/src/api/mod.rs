//! The api port (8443): employees (the `/v1` API and the web client at
//! `/`), business systems (the `/cgi-bin` WeCom dialect), health and
//! readiness.

use std::sync::Arc;
use std::sync::atomic::Ordering;

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
        .layer(middleware::from_fn_with_state(state.clone(), cors))
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
async fn readyz(State(state): State<Arc<NodeState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let not_ready = |code: &'static str, msg: &str| {
        Err(ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            code,
            msg,
        ))
    };
    if !state.ready.load(Ordering::Acquire) {
        return not_ready("not_ready", "node is starting or stopping");
    }
    let (running, leader) = {
        let m = state.cluster.raft.metrics();
        let m = m.borrow();
        (
            m.running_state.is_ok() && m.state != openraft::ServerState::Shutdown,
            m.current_leader,
        )
    };
    if !running && let Some(halt) = state.cluster.sm.app().halted() {
        return Err(ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "apply_halted",
            halt.reason,
        ));
    }
    if !running {
        return not_ready(
            "raft_stopped",
            "Raft has stopped on this node (see its log: storage failure?)",
        );
    }
    if !state.cluster.is_initialized() {
        return not_ready("not_initialized", "this node is not part of a cluster yet");
    }
    if leader.is_none() {
        return not_ready(
            "no_leader",
            "no leader is known (election in progress, or no quorum)",
        );
    }
    Ok(Json(json!({ "status": "ready", "node": state.node_id })))
}
