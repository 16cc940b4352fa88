//! A node's status (`enclavectl cluster status`, `/raft/v1/status`).

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::ServerState;
use openraft::storage::RaftLogStorage;
use serde::{Deserialize, Serialize};

use super::ClusterNode;
use crate::app::Application;
use crate::types::{Member, NodeId};

/// One node's view, as shown by `enclavectl cluster status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub name: String,
    pub state: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<(NodeId, Member)>,
    pub learners: Vec<(NodeId, Member)>,
    /// On the leader: matched log index per member.
    pub replication: Option<BTreeMap<NodeId, Option<u64>>>,
    pub millis_since_quorum_ack: Option<u64>,
    pub store_bytes: u64,
    /// Size of the current snapshot file (0: none yet).
    #[serde(default)]
    pub snapshot_bytes: u64,
    /// Approximate log bytes applied since the current snapshot (this
    /// process's count; see `node/snapshots.rs`).
    #[serde(default)]
    pub log_bytes_since_snapshot: u64,
    /// This node is writing a snapshot or a backup now (peers wait for it
    /// before they start their own build: `node/snapshots.rs`).
    #[serde(default)]
    pub snapshot_building: bool,
    /// Committed index recorded in the durability watermark.
    pub watermark_committed: Option<u64>,
    pub cluster_id: Option<String>,
    /// When this node's own TLS certificate expires (RFC 3339), as the
    /// process set it at start and after each reload.
    #[serde(default)]
    pub cert_not_after: Option<String>,
    /// The leader changes this process has seen, newest last (at most
    /// [`LEADER_HISTORY`]).
    #[serde(default)]
    pub leader_changes: Vec<LeaderChange>,
    /// How long this process has run (ms): a restart (`enclavectl node
    /// defrag`) shows as a smaller number than the time since it was asked.
    #[serde(default)]
    pub uptime_ms: u64,
    /// This node is about to stop for maintenance (a restart to
    /// defragment): another node asked to do the same does not count on
    /// it for the quorum.
    #[serde(default)]
    pub restarting: bool,
}

/// How many leader changes a node remembers for its status.
pub const LEADER_HISTORY: usize = 20;

/// A change of leader seen by this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderChange {
    /// Wall-clock time of the observation, ms since the Unix epoch.
    pub at_ms: u64,
    pub term: u64,
    /// The new leader, or none while an election is under way.
    pub leader: Option<NodeId>,
    /// The new leader's name (ids do not fit a JavaScript number).
    #[serde(default)]
    pub leader_name: Option<String>,
}

impl<A: Application> ClusterNode<A> {
    /// The leader's status (its replication view), asked over the peer
    /// port when this node is not the leader.
    pub async fn leader_status(&self) -> Option<NodeStatus> {
        let (id, member) = self.leader()?;
        if id == self.id {
            return Some(self.status().await);
        }
        self.peers
            .get(id, &member)
            .call("/raft/v1/status", &(), Duration::from_secs(3))
            .await
            .ok()
    }

    /// This node's status.
    pub async fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voter_ids: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut voters = Vec::new();
        let mut learners = Vec::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.push((*id, node.clone()));
            } else {
                learners.push((*id, node.clone()));
            }
        }
        let mut log = self.log.clone();
        let committed = log.read_committed().await.ok().flatten().map(|l| l.index);
        NodeStatus {
            id: self.id,
            name: self.me.name.clone(),
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Candidate => "candidate",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed_index: committed,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters,
            learners,
            replication: m.replication.map(|r| {
                r.into_iter()
                    .map(|(id, l)| (id, l.map(|l| l.index)))
                    .collect()
            }),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            store_bytes: self.log.size_on_disk(),
            snapshot_bytes: self.sm.current_snapshot_bytes(),
            log_bytes_since_snapshot: self.sm.log_bytes_since_snapshot(),
            snapshot_building: self.sm.snapshot_building(),
            watermark_committed: self.log.watermark().get().committed,
            cluster_id: self.cluster_id(),
            cert_not_after: self
                .cert_not_after
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            leader_changes: self
                .leader_changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            uptime_ms: self.uptime_ms(),
            restarting: self.restarting.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Say (in this node's status) whether it is about to stop for
    /// maintenance; see [`NodeStatus::restarting`].
    pub fn set_restarting(&self, on: bool) {
        self.restarting
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Record when this node's certificate expires, for its status.
    pub fn set_cert_not_after(&self, not_after: String) {
        *self
            .cert_not_after
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(not_after);
    }
}
