//! Adding a node: as a learner at once, promoted to voter once it has
//! caught up. Used by `cluster add` (admin port) and by the join door.

use std::sync::Arc;
use std::time::Duration;

use enclave_cluster::node::MembershipChange;
use enclave_cluster::types::{Member, node_id_of};

use super::{ApiError, NodeState, cluster_error};

/// Add as learner now; promote in the background once it has caught up.
pub async fn add_and_promote(state: &Arc<NodeState>, member: Member) -> Result<(), ApiError> {
    let id = node_id_of(&member.name);
    state
        .cluster
        .change_membership(MembershipChange::AddLearner {
            member: member.clone(),
        })
        .await
        .map_err(cluster_error)?;
    let cluster = state.cluster.clone();
    tokio::spawn(async move {
        // Wait until the learner's log matches the leader's closely, then promote.
        for _ in 0..3000 {
            // Only the leader knows how far the learner has replicated.
            let Some(s) = cluster.leader_status().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            if s.voters.iter().any(|(v, _)| *v == id) {
                return;
            }
            if !s
                .voters
                .iter()
                .chain(s.learners.iter())
                .any(|(v, _)| *v == id)
            {
                tracing::warn!(node = %member.name, "no longer a member; not promoting");
                return;
            }
            let caught_up = match (&s.replication, s.last_log_index) {
                (Some(r), Some(last)) => {
                    r.get(&id).copied().flatten().is_some_and(|m| m + 5 >= last)
                }
                _ => false,
            };
            if caught_up {
                match cluster
                    .change_membership(MembershipChange::Promote { id })
                    .await
                {
                    Ok(()) => {
                        tracing::info!(node = %member.name, "promoted to voter");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "promotion not yet possible"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tracing::warn!(node = %member.name, "gave up promoting the learner after 10 minutes; check its health and add it again");
    });
    Ok(())
}
