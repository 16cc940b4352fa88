//! The campaign loop of a voter: when to ask for pre-votes and when to
//! start a real election, by the rules of [`crate::election`].

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use super::ClusterNode;
use crate::app::Application;
use crate::election::{Jitter, PreVoteAnswer, PreVoteRequest, Timing};
use crate::types::NodeId;

/// Run the election timer of `node` until it is dropped.
pub(crate) fn spawn<A: Application>(node: &Arc<ClusterNode<A>>) {
    let weak = Arc::downgrade(node);
    let s = &node.settings;
    let timing = Timing::new(s.heartbeat_ms, s.election_min_ms, s.election_max_ms);
    let tick = Duration::from_millis(s.heartbeat_ms.clamp(10, 100));
    let mut jitter = Jitter(node.id ^ node.uptime_nanos() ^ 0x9E37_79B9_7F4A_7C15 | 1);
    tokio::spawn(async move {
        let mut threshold = timing.base_ms + jitter.below(timing.jitter_ms);
        let mut next_try = 0u64;
        loop {
            tokio::time::sleep(tick).await;
            let Some(node) = weak.upgrade() else { return };
            let (state, voters, leader) = {
                let m = node.raft.metrics();
                let m = m.borrow();
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                (m.state, voters, m.current_leader)
            };
            if !voters.contains(&node.id) || state == ServerState::Leader {
                continue;
            }
            let now = node.uptime_ms();
            if now < next_try {
                continue;
            }
            if voters.len() == 1 {
                // The only voter: nobody to ask and nobody to disturb.
                if leader.is_none() {
                    next_try = now + timing.retry_max_ms;
                    tracing::info!("only voter and no leader: starting an election");
                    if let Err(e) = node.raft.trigger().elect().await {
                        tracing::warn!(error = %e, "could not start an election");
                    }
                }
                continue;
            }
            let silent = node.leader_silence_ms();
            if silent <= threshold || node.transfer_in_progress() {
                continue;
            }
            next_try =
                now + timing.retry_min_ms + jitter.below(timing.retry_max_ms - timing.retry_min_ms);
            let (granted, asked) = pre_vote(&node, &voters, timing).await;
            if granted * 2 > voters.len() {
                tracing::info!(
                    silent_ms = silent,
                    granted,
                    voters = voters.len(),
                    "no word from a leader and a majority agrees: starting an election"
                );
                if let Err(e) = node.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "could not start an election");
                }
                threshold = timing.base_ms + jitter.below(timing.jitter_ms);
            } else {
                tracing::debug!(
                    silent_ms = silent,
                    granted,
                    voters = voters.len(),
                    answers = ?asked,
                    "pre-vote refused: not campaigning"
                );
            }
        }
    });
}

/// Ask every other voter; returns the yes count (own vote included) and
/// the answers. Stops waiting as soon as the outcome is decided.
async fn pre_vote<A: Application>(
    node: &Arc<ClusterNode<A>>,
    voters: &[NodeId],
    timing: Timing,
) -> (usize, Vec<(NodeId, Result<PreVoteAnswer, String>)>) {
    let last_log_id = match node.last_log_id().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the log: not campaigning");
            return (0, Vec::new());
        }
    };
    let req = PreVoteRequest { last_log_id };
    let members = {
        let m = node.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        voters
            .iter()
            .filter(|&&v| v != node.id)
            .filter_map(|&v| membership.get_node(&v).cloned().map(|mem| (v, mem)))
            .collect::<Vec<_>>()
    };
    let mut calls = tokio::task::JoinSet::new();
    for (id, member) in members {
        let client = node.peers.get(id, &member);
        let req = req.clone();
        calls.spawn(async move {
            let r: Result<PreVoteAnswer, _> = client
                .call(
                    "/raft/v1/prevote",
                    &req,
                    Duration::from_millis(timing.rpc_ms),
                )
                .await;
            (id, r.map_err(|e| e.to_string()))
        });
    }
    let needed = voters.len() / 2 + 1;
    let mut granted = 1;
    let mut pending = voters.len() - 1;
    let mut answers = Vec::new();
    while let Some(joined) = calls.join_next().await {
        pending -= 1;
        let Ok((id, r)) = joined else { continue };
        if matches!(r, Ok(PreVoteAnswer::Granted)) {
            granted += 1;
        }
        answers.push((id, r));
        if granted >= needed || granted + pending < needed {
            break;
        }
    }
    (granted, answers)
}
