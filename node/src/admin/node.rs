//! This node's own maintenance on the admin port: `POST /v1/node/defrag`
//! (restart in place and give the store's unused disk space back while
//! the other nodes serve; docs/operator/cluster.md § Giving disk space
//! back).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use enclave_cluster::node::NodeStatus;
use http::StatusCode;
use serde_json::json;

use crate::http::{ApiError, NodeState};

/// How long the node waits after answering before it begins to stop: the
/// answer and its audit record go out first.
const ANSWER_FIRST: Duration = Duration::from_millis(200);

/// `POST /v1/node/defrag`: stop this node gracefully, defragment its store
/// and start it again with the same command line (same process id). The
/// cluster keeps serving from the other voters; this node catches up from
/// the leader when it is back. Refused (409) on the leader (move
/// leadership first: `enclavectl cluster transfer-leader`, which
/// `enclavectl cluster defrag` does by itself) and when the other voters
/// that answer now are not a majority without this one.
pub async fn defrag(
    State(state): State<Arc<NodeState>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let conflict = |code: &'static str, msg: String| ApiError::new(StatusCode::CONFLICT, code, msg);
    if state.restarting.load(Ordering::Acquire) {
        return Err(conflict(
            "already_restarting",
            format!("{} is already restarting to defragment", state.node_id),
        ));
    }
    let me = state.cluster.status().await;
    let my_id = state.cluster.id;
    if me.leader == Some(my_id) {
        let others: Vec<&str> = me
            .voters
            .iter()
            .filter(|(i, _)| *i != my_id)
            .map(|(_, m)| m.name.as_str())
            .collect();
        let msg = if others.is_empty() {
            format!(
                "{} is the only voter: the cluster would stop serving while it defragments. Stop it and run `enclave defrag --data-dir DIR` instead (docs/operator/cluster.md)",
                state.node_id
            )
        } else {
            format!(
                "{} leads the cluster; move leadership first (enclavectl cluster transfer-leader {}), or use `enclavectl cluster defrag`, which does",
                state.node_id, others[0]
            )
        };
        return Err(conflict("leader", msg));
    }
    if me.leader.is_none() {
        return Err(conflict(
            "no_leader",
            "no leader is known now; a node defragments only while the others can serve".into(),
        ));
    }
    // Say so before looking at the others: of two voters asked at the same
    // moment, at least one sees the other's flag and refuses, so they
    // never both go down (each sets its own flag, then reads the other's).
    state.cluster.set_restarting(true);
    if me.voters.iter().any(|(i, _)| *i == my_id) {
        let needed = me.voters.len() / 2 + 1;
        let mut answering = Vec::new();
        for (id, member) in me.voters.iter().filter(|(i, _)| *i != my_id) {
            let r: Result<NodeStatus, _> = state
                .cluster
                .peers
                .get(*id, member)
                .call("/raft/v1/status", &(), Duration::from_secs(2))
                .await;
            if r.is_ok_and(|s| !s.restarting) {
                answering.push(member.name.clone());
            }
        }
        if answering.len() < needed {
            state.cluster.set_restarting(false);
            return Err(conflict(
                "no_quorum_without_this_node",
                format!(
                    "without {} only {} of {} voters answer and are not restarting themselves ({}); the cluster would stop serving. Bring the others back first, or wait until the one restarting is back",
                    state.node_id,
                    answering.len(),
                    me.voters.len(),
                    if answering.is_empty() {
                        "none".to_string()
                    } else {
                        answering.join(", ")
                    }
                ),
            ));
        }
    }
    crate::defrag::request(&state.config.data_dir, "POST /v1/node/defrag").map_err(|e| {
        state.cluster.set_restarting(false);
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            format!(
                "writing {}: {e}",
                state
                    .config
                    .data_dir
                    .join(crate::defrag::REQUEST_FILE)
                    .display()
            ),
        )
    })?;
    state.restarting.store(true, Ordering::Release);
    let waker = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ANSWER_FIRST).await;
        waker.restart.notify_one();
    });
    tracing::warn!(
        store_bytes = me.store_bytes,
        snapshot_bytes = me.snapshot_bytes,
        "restarting to defragment the store"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "node": state.node_id,
            "restarting": true,
            "store_bytes": me.store_bytes,
            "snapshot_bytes": me.snapshot_bytes,
        })),
    ))
}
