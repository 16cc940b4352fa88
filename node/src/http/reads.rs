//! Reads that must include what the cluster has acknowledged, not only
//! what this node has applied so far.

use http::StatusCode;

use super::{ApiError, NodeState, cluster_error};

/// A read's `consistency` parameter: `local` (the default: this node's
/// applied state, which trails the leader by a little on a follower) or
/// `linearizable` (a read-index barrier first, so the answer includes
/// every write acknowledged before the request began, whichever node took
/// it; one round trip to the leader more).
pub async fn read_consistency(
    state: &NodeState,
    consistency: Option<&str>,
) -> Result<(), ApiError> {
    match consistency {
        None | Some("local") => Ok(()),
        Some("linearizable") => state.cluster.read_barrier().await.map_err(cluster_error),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("consistency {other:?}: use local or linearizable"),
        )),
    }
}

/// `find` on this node's state; when it finds nothing, once more after a
/// read barrier. So something created through another node a moment ago
/// is found, and `None` means the cluster has no such thing. Costs a
/// barrier only on a miss.
pub async fn find_or_catch_up<T, E: From<ApiError>>(
    state: &NodeState,
    find: impl Fn(&NodeState) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    if let Some(v) = find(state)? {
        return Ok(Some(v));
    }
    state.cluster.read_barrier().await.map_err(cluster_error)?;
    find(state)
}
