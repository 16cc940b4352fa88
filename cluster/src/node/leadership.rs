//! Who leads: what this node tells a pre-vote asker (`election.rs` runs
//! the elections themselves), and leadership transfer (`enclavectl
//! cluster transfer-leader`). openraft 0.9 has no native transfer (no Raft `TimeoutNow`), so it is emulated:
//! the leader stops heartbeats and holds new writes, lets in-flight ones
//! reach every voter, and asks the target to campaign once the other
//! voters' leases have lapsed; leader and target refuse everyone else's
//! pre-votes meanwhile. See docs/operator/cluster.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::storage::RaftLogStorage;

use super::{ClusterError, ClusterNode, PeerError};
use crate::app::Application;
use crate::types::NodeId;

impl<A: Application> ClusterNode<A> {
    /// How long this node has not heard from a leader (ms); a leader
    /// answers for its last quorum acknowledgement instead.
    pub(crate) fn leader_silence_ms(&self) -> u64 {
        {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader {
                return m.millis_since_quorum_ack.unwrap_or(u64::MAX);
            }
        }
        let contact = self.last_contact.load(std::sync::atomic::Ordering::Relaxed);
        self.uptime_ms().saturating_sub(contact)
    }

    /// This node's last log id, as stored.
    pub(crate) async fn last_log_id(&self) -> Result<Option<crate::types::LogId>, String> {
        let mut log = self.log.clone();
        log.get_log_state()
            .await
            .map(|s| s.last_log_id)
            .map_err(|e| e.to_string())
    }

    /// Answer another voter's pre-vote (see `election.rs`).
    pub async fn prevote_answer(
        &self,
        req: &crate::election::PreVoteRequest,
    ) -> crate::election::PreVoteAnswer {
        let last_log_id = match self.last_log_id().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the log to answer a pre-vote");
                return crate::election::PreVoteAnswer::Unavailable;
            }
        };
        let view = crate::election::VoterView {
            silent_ms: self.leader_silence_ms(),
            lease_ms: self.settings.election_max_ms,
            last_log_id,
            transferring: self.transfer_in_progress(),
        };
        crate::election::answer(req, &view)
    }

    /// A leadership transfer this node leads or is the target of is under
    /// way: it refuses pre-votes from anyone else meanwhile.
    pub(crate) fn transfer_in_progress(&self) -> bool {
        self.uptime_ms()
            < self
                .transfer_until
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn hold_transfer_for(&self, ms: u64) {
        let until = if ms == 0 { 0 } else { self.uptime_ms() + ms };
        self.transfer_until
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// Called on the target of a leadership transfer: campaign after
    /// `delay_ms` (when the other voters' leases have run out), refusing
    /// everyone else's pre-votes until it has won or the leader's own hold
    /// (`3 × delay + 2 s`, see [`Self::transfer_leader`]) is nearly over.
    ///
    /// One campaign is not always enough: on a loaded machine a last
    /// append can reach a voter late and renew its lease past the delay,
    /// and that voter refuses. Giving up then left the transfer's holds to
    /// lapse one by one and the *other* follower won the next election
    /// (seen in CI). So the target campaigns again every few heartbeats
    /// until it leads; the others cannot campaign meanwhile, because the
    /// leader and the target both refuse their pre-votes.
    pub fn campaign_after(self: &Arc<Self>, delay_ms: u64) {
        let delay_ms = delay_ms.min(60_000);
        let window_ms = delay_ms * 3 + 1000;
        self.hold_transfer_for(window_ms);
        let node = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let started = Instant::now();
            let retry = Duration::from_millis(node.settings.heartbeat_ms * 3);
            loop {
                if let Err(e) = node.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "leadership transfer: election trigger failed");
                    break;
                }
                let won = node
                    .raft
                    .wait(Some(retry))
                    .metrics(|m| m.current_leader == Some(node.id), "this node leads")
                    .await
                    .is_ok();
                if won {
                    tracing::info!(
                        after_ms = started.elapsed().as_millis() as u64,
                        "leadership transfer: this node leads"
                    );
                    break;
                }
                if delay_ms + started.elapsed().as_millis() as u64 + retry.as_millis() as u64
                    >= window_ms
                {
                    tracing::warn!("leadership transfer: this node did not win the election");
                    break;
                }
                tracing::info!("leadership transfer: election not won yet; campaigning again");
            }
            node.hold_transfer_for(0);
        });
    }

    /// While this leader hands its leadership over, new writes and read
    /// barriers wait here: each would replicate, renew the followers'
    /// leases, and make them refuse the target's election (which is why
    /// transfers used to fail under write load). Once the transfer ends
    /// they go on; if leadership moved, they are retried on the new leader.
    pub(super) async fn wait_out_transfer(&self) {
        while self.transfer_in_progress() && self.leader().is_some_and(|(id, _)| id == self.id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Best-effort leadership transfer to `target` (openraft 0.9 has no
    /// native transfer): the leader pauses heartbeats, the target starts an
    /// election as soon as followers' leases lapse, and the old leader steps
    /// down on seeing the higher term. Returns the leader afterwards.
    pub async fn transfer_leader(&self, target: NodeId) -> Result<Option<NodeId>, ClusterError> {
        let Some((leader, _)) = self.leader() else {
            return Err(ClusterError::NoLeader);
        };
        if leader == target {
            return Ok(Some(target));
        }
        if leader != self.id {
            return Err(ClusterError::Rejected(
                "send transfer-leader to the current leader".into(),
            ));
        }
        let m = self.raft.metrics().borrow().clone();
        let member = m
            .membership_config
            .membership()
            .get_node(&target)
            .cloned()
            .ok_or_else(|| ClusterError::Rejected(format!("node {target} is not a member")))?;
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == target)
        {
            return Err(ClusterError::Rejected(format!(
                "{} is a learner; only voters can lead",
                member.name
            )));
        }
        // The followers' leases (election_max after the last append they
        // took) must have run out when the target asks for votes; two
        // heartbeats of margin for appends still in flight.
        let delay = self.settings.election_max_ms + 2 * self.settings.heartbeat_ms;
        let hold = delay * 3 + 2000;
        self.hold_transfer_for(hold);
        self.raft.runtime_config().heartbeat(false);
        // New writes wait from here on (`wait_out_transfer`); let the ones
        // already in flight reach every voter first, so that the followers'
        // leases start running out together with the target's delay.
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let caught_up = self
            .raft
            .wait(Some(Duration::from_millis(
                2 * self.settings.election_max_ms,
            )))
            .metrics(
                |m| {
                    let last = m.last_log_index;
                    m.replication.as_ref().is_some_and(|r| {
                        voters
                            .iter()
                            .filter(|v| **v != self.id)
                            .all(|v| r.get(v).is_some_and(|l| l.map(|l| l.index) == last))
                    })
                },
                "voters caught up",
            )
            .await
            .is_ok();
        if !caught_up {
            tracing::info!(
                "leadership transfer: a voter is still behind; asking the target anyway"
            );
        }
        // The target may retry for up to `3 × delay + 1 s` (campaign_after);
        // hold from now for longer than that.
        self.hold_transfer_for(hold);
        let asked: Result<(), PeerError> = self
            .peers
            .get(target, &member)
            .call("/raft/v1/elect", &delay, Duration::from_secs(5))
            .await;
        let result = match asked {
            Ok(()) => {
                let waited = self
                    .raft
                    .wait(Some(Duration::from_millis(hold)))
                    .metrics(
                        |m| m.current_leader.is_some_and(|l| l != self.id),
                        "leadership moved",
                    )
                    .await;
                Ok(waited.ok().and_then(|m| m.current_leader))
            }
            Err(e) => Err(ClusterError::from(e)),
        };
        self.raft.runtime_config().heartbeat(true);
        self.hold_transfer_for(0);
        result
    }
}
