//! This node's own maintenance on the admin port: `POST /v1/node/defrag`
//! (restart in place and give the store's unused disk space back while
//! the other nodes serve; docs/operator/cluster.md § Giving disk space
//! back).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::json;

use crate::http::{ApiError, NodeState};

/// How long the node waits after its audit record of the request is
/// written before it begins to stop: the answer goes out first.
const ANSWER_FIRST: Duration = Duration::from_millis(200);

/// Marks the answer to an accepted `POST /v1/node/defrag`: the admin
/// port's audit layer starts the restart ([`restart_after_answer`]) once
/// it has written the request's audit record, so the record is never cut
/// off by the restart.
#[derive(Clone, Copy, Debug)]
pub struct RestartAfterAnswer;

/// Begin the graceful stop (and restart) shortly, once the answer is on
/// its way.
pub(crate) fn restart_after_answer(state: &Arc<NodeState>) {
    let waker = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ANSWER_FIRST).await;
        waker.restart.notify_one();
    });
}

/// Holds this node's claim to restart (`NodeState::restarting`, and
/// `restarting` in its cluster status) until the request is accepted; any
/// refusal or an abandoned request (the client went away) lets go.
struct Claim {
    state: Arc<NodeState>,
    keep: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.keep {
            self.state.cluster.set_restarting(false);
            self.state.restarting.store(false, Ordering::Release);
        }
    }
}

/// `GET /v1/node/defrag`: the outcome of this node's last requested
/// defragmentation (`{"last": null}` when there was none): `ok`, when it
/// started and finished, the report or the error.
pub async fn last(State(state): State<Arc<NodeState>>) -> Json<serde_json::Value> {
    Json(json!({
        "node": state.node_id,
        "restarting": state.restarting.load(Ordering::Acquire),
        "last": crate::defrag::last_outcome(&state.config.data_dir),
    }))
}

/// `POST /v1/node/defrag`: stop this node gracefully, defragment its store
/// and start it again with the same command line (same process id). The
/// cluster keeps serving from the other voters; this node catches up from
/// the leader when it is back. Refused (409) on the leader (move
/// leadership first: `enclavectl cluster transfer-leader`, which
/// `enclavectl cluster defrag` does by itself), without a known leader,
/// and when the other voters that answer, know a leader and are not
/// restarting themselves are not a majority without this one. The
/// restart itself is started by the admin port's audit layer
/// (`audit::audit_layer`), which every admin route passes through.
pub async fn defrag(
    State(state): State<Arc<NodeState>>,
) -> Result<
    (
        StatusCode,
        axum::Extension<RestartAfterAnswer>,
        Json<serde_json::Value>,
    ),
    ApiError,
> {
    let conflict = |code: &'static str, msg: String| ApiError::new(StatusCode::CONFLICT, code, msg);
    if state
        .restarting
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(conflict(
            "already_restarting",
            format!("{} is already restarting to defragment", state.node_id),
        ));
    }
    // Say so (in this node's status) before looking at the others: of two
    // voters asked at the same moment, at least one sees the other's flag
    // and refuses, so they never both go down.
    state.cluster.set_restarting(true);
    let mut claim = Claim {
        state: state.clone(),
        keep: false,
    };
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
                "{} leads the cluster; move leadership to another voter first (enclavectl cluster transfer-leader {}), or use `enclavectl cluster defrag`, which does",
                state.node_id,
                others.join(" | ")
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
    if me.voters.iter().any(|(i, _)| *i == my_id) {
        let needed = me.voters.len() / 2 + 1;
        let answering: Vec<String> = super::cluster::ask_members(&state, &me)
            .await
            .into_iter()
            .filter(|m| m.voter && m.id != my_id)
            .filter(|m| {
                m.status
                    .as_ref()
                    .is_some_and(|s| !s.restarting && s.leader.is_some())
            })
            .map(|m| m.name)
            .collect();
        if answering.len() < needed {
            return Err(conflict(
                "no_quorum_without_this_node",
                format!(
                    "without {} only {} of {} voters answer, know a leader and are not restarting themselves ({}); the cluster would stop serving. Bring the others back first, or wait until the one restarting is back",
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
    claim.keep = true;
    tracing::warn!(
        store_bytes = me.store_bytes,
        snapshot_bytes = me.snapshot_bytes,
        "restarting to defragment the store"
    );
    Ok((
        StatusCode::ACCEPTED,
        axum::Extension(RestartAfterAnswer),
        Json(json!({
            "node": state.node_id,
            "restarting": true,
            "store_bytes": me.store_bytes,
            "snapshot_bytes": me.snapshot_bytes,
        })),
    ))
}
