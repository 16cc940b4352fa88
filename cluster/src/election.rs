//! Elections with a pre-vote round.
//!
//! openraft 0.9 has no PreVote: a voter whose election timer fires raises
//! its term and asks for votes straight away. A follower that was paused
//! (SIGSTOP, a long GC-like stall), restarted, or cut off by a one-way
//! partition wakes up with an expired timer, campaigns at `term + 1` before
//! it has heard the leader's next heartbeat, and the healthy leader steps
//! down when its next AppendEntries is answered with that higher term. The
//! failover soak measured that as 2–6 s of write unavailability after a
//! *follower* fault (docs/operator/failover-testing.md).
//!
//! So openraft's own election timer is switched off (`enable_elect =
//! false`) and this module decides when to campaign, the way etcd's
//! PreVote does:
//!
//! 1. A voter that has heard nothing from a leader for the leader lease
//!    (`election_max_ms`, the time openraft makes other voters refuse a
//!    vote after a heartbeat) plus two heartbeats plus a random jitter below
//!    `election_min_ms` asks every other voter "would you vote for me?"
//!    ([`PreVoteRequest`], route `/raft/v1/prevote`). Nobody's state
//!    changes: no term is raised, no vote is stored.
//! 2. A voter says yes ([`answer`]) only if it has not heard from a leader
//!    for the lease itself (a leader: has had no quorum acknowledgement for
//!    the lease) and the asker's log is at least as long as its own.
//! 3. Only with a majority of yes (its own included) does the node start a
//!    real openraft election. Otherwise it tries again after a fresh random
//!    delay (`election_min_ms / 6` to `election_min_ms`); the same delay
//!    separates two followers whose real elections split the vote.
//!
//! A node that cannot reach the leader but whose peers can never gets a
//! majority, so it cannot depose a healthy leader; when the leader is truly
//! gone, every follower's lease runs out together and the first to ask wins.

use serde::{Deserialize, Serialize};

use crate::types::LogId;

/// "Would you vote for me?" — asked before a real election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The asker's last log id.
    pub last_log_id: Option<LogId>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreVoteAnswer {
    /// This voter would grant the vote.
    Granted,
    /// This voter heard from a live leader `silent_ms` ago (or, being the
    /// leader, had a quorum acknowledgement that long ago): inside the
    /// lease, so it would refuse.
    LeaderAlive { silent_ms: u64 },
    /// The asker's log is behind this voter's: it could not win.
    LogBehind,
    /// A leadership transfer is under way: only its target may campaign.
    Transferring,
    /// This voter cannot read its own log state.
    Unavailable,
    /// The asker is not a voter in this node's membership (a learner, or a
    /// removed node still campaigning from its old membership).
    NotAVoter,
}

/// What a voter knows when it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterView {
    /// ms since it last heard from a leader (for a leader: since its last
    /// quorum acknowledgement); `u64::MAX` if never.
    pub silent_ms: u64,
    /// The leader lease: `election_max_ms`.
    pub lease_ms: u64,
    /// Its own last log id.
    pub last_log_id: Option<LogId>,
    /// A leadership transfer to another node is under way.
    pub transferring: bool,
}

/// The pre-vote rule (pure, so it is tested on its own).
pub fn answer(req: &PreVoteRequest, me: &VoterView) -> PreVoteAnswer {
    if me.transferring {
        return PreVoteAnswer::Transferring;
    }
    if me.silent_ms <= me.lease_ms {
        return PreVoteAnswer::LeaderAlive {
            silent_ms: me.silent_ms,
        };
    }
    if req.last_log_id < me.last_log_id {
        return PreVoteAnswer::LogBehind;
    }
    PreVoteAnswer::Granted
}

/// Election timing derived from the Raft settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Silence after which a voter first asks (before jitter).
    pub base_ms: u64,
    /// Upper bound (exclusive) of the random jitter added to `base_ms`.
    pub jitter_ms: u64,
    /// Smallest and largest delay before asking again.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// Timeout of one pre-vote RPC.
    pub rpc_ms: u64,
}

impl Timing {
    pub fn new(heartbeat_ms: u64, election_min_ms: u64, election_max_ms: u64) -> Timing {
        Timing {
            base_ms: election_max_ms + 2 * heartbeat_ms,
            jitter_ms: election_min_ms.max(1),
            retry_min_ms: (election_min_ms / 6).max(1),
            retry_max_ms: election_min_ms.max(2),
            rpc_ms: election_min_ms.clamp(50, 1_000),
        }
    }
}

/// xorshift64: a fresh jitter for every round, seeded per node, so two
/// followers of a dead leader do not keep asking at the same moment.
pub(crate) struct Jitter(pub(crate) u64);

impl Jitter {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log_id(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn view(silent_ms: u64, last: Option<LogId>) -> VoterView {
        VoterView {
            silent_ms,
            lease_ms: 1_200,
            last_log_id: last,
            transferring: false,
        }
    }

    #[test]
    fn a_voter_that_hears_its_leader_refuses() {
        let req = PreVoteRequest {
            last_log_id: log_id(3, 100),
        };
        assert_eq!(
            answer(&req, &view(150, log_id(3, 90))),
            PreVoteAnswer::LeaderAlive { silent_ms: 150 }
        );
        // The lease boundary itself still counts as alive.
        assert_eq!(
            answer(&req, &view(1_200, log_id(3, 90))),
            PreVoteAnswer::LeaderAlive { silent_ms: 1_200 }
        );
    }

    #[test]
    fn a_silent_voter_grants_to_an_up_to_date_asker_only() {
        let me = view(1_201, log_id(3, 100));
        let ask = |last_log_id| answer(&PreVoteRequest { last_log_id }, &me);
        assert_eq!(ask(log_id(3, 100)), PreVoteAnswer::Granted, "equal log");
        assert_eq!(ask(log_id(4, 50)), PreVoteAnswer::Granted, "newer term");
        assert_eq!(ask(log_id(3, 99)), PreVoteAnswer::LogBehind, "shorter");
        assert_eq!(ask(log_id(2, 500)), PreVoteAnswer::LogBehind, "older term");
        assert_eq!(ask(None), PreVoteAnswer::LogBehind, "empty log");
        let empty = PreVoteRequest { last_log_id: None };
        assert_eq!(
            answer(&empty, &view(u64::MAX, None)),
            PreVoteAnswer::Granted
        );
    }

    #[test]
    fn nobody_but_the_target_campaigns_during_a_transfer() {
        let mut me = view(u64::MAX, None);
        me.transferring = true;
        let req = PreVoteRequest {
            last_log_id: log_id(9, 9),
        };
        assert_eq!(answer(&req, &me), PreVoteAnswer::Transferring);
    }

    #[test]
    fn default_timing_asks_after_the_lease_and_retries_inside_an_election_timeout() {
        let t = Timing::new(150, 600, 1_200);
        // Never before other voters' leases can have run out.
        assert!(t.base_ms > 1_200);
        // The first ask lands 1.5–2.1 s after the last heartbeat.
        assert_eq!((t.base_ms, t.base_ms + t.jitter_ms), (1_500, 2_100));
        assert!(t.retry_min_ms >= 1 && t.retry_max_ms > t.retry_min_ms);
        let tiny = Timing::new(10, 1, 2);
        assert!(tiny.jitter_ms >= 1 && tiny.retry_max_ms > tiny.retry_min_ms);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let mut j = Jitter(12345 | 1);
        let draws: Vec<u64> = (0..200).map(|_| j.below(600)).collect();
        assert!(draws.iter().all(|&d| d < 600));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct draws", distinct.len());
        assert_eq!(j.below(0), 0);
    }
}
