//! When a node builds a snapshot of its state (log compaction).
//!
//! A build reads the whole state and writes it out, so its cost grows with
//! the state, not with the writes since the last one. A fixed interval
//! (openraft's `LogsSinceLast`) therefore costs more per write the bigger
//! the state gets: at 160k members (an 848 MiB snapshot that took 331 s to
//! build) a node at 200 writes/s began the next build before the last one
//! ended, and built snapshots all the time. So a node builds one when the
//! log since the last snapshot has **both** reached
//! `raft.snapshot_every` entries **and** holds
//! `raft.snapshot_log_percent` % of the last snapshot's size: the build's
//! cost per byte written stays constant, and the log beside the state stays
//! a bounded fraction of it. Below [`SIZE_RULE_FLOOR`] a build takes under
//! a second and the entry count alone decides.
//!
//! openraft's own policy is off (`SnapshotPolicy::Never`); this task asks
//! it for a build (`trigger().snapshot()`, ignored while one is running).
//!
//! **One build at a time in the cluster.** The per-node offsets stagger
//! the points in the log, but at seeding rates they are seconds apart
//! while a build at 160k members takes minutes: all three nodes built at
//! once, on two cores, beside the writes. So a node whose build is due
//! first asks the other voters (`/raft/v1/status`, at most every
//! [`PEER_CHECK_EVERY`]) and waits while one of them is building, for at
//! most [`PEER_WAIT_MAX`]. A peer that does not answer does not hold it
//! back. Only builds of a large state wait ([`coordinates`]): under
//! [`SIZE_RULE_FLOOR`] a build takes under a second, and waiting for
//! peers would only delay it by the 2 s between questions.

use std::sync::Arc;
use std::time::Duration;

use super::ClusterNode;
use crate::app::Application;
use crate::types::NodeId;

/// Snapshots smaller than this are rebuilt on the entry count alone.
pub const SIZE_RULE_FLOOR: u64 = 16 << 20;

/// How often a node looks whether a snapshot is due.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// A trigger whose build has not shown up in the metrics by then is
/// repeated (openraft ignores it while a build runs).
const RETRIGGER_AFTER: Duration = Duration::from_secs(600);

/// How often a node whose build is due asks its peers whether they build.
pub const PEER_CHECK_EVERY: Duration = Duration::from_secs(2);

/// The longest a due build waits for peers' builds (then it runs anyway:
/// the log must not grow without bound behind a peer that builds for ever).
pub const PEER_WAIT_MAX: Duration = Duration::from_secs(900);

/// Whether a due build waits: a peer is building and this one has not
/// waited [`PEER_WAIT_MAX`] yet.
pub fn wait_for_peers(peer_building: bool, waited: Duration) -> bool {
    peer_building && waited < PEER_WAIT_MAX
}

/// Whether a due build looks at its peers first: only when the last
/// snapshot was large (a small build is over before a peer could answer).
pub fn coordinates(snapshot_bytes: u64) -> bool {
    snapshot_bytes >= SIZE_RULE_FLOOR
}

/// Whether another voter says it is writing a snapshot (or a backup) now
/// (asked one after the other, at most 1 s each).
async fn a_peer_is_building<A: Application>(node: &ClusterNode<A>) -> bool {
    let voters = node.voter_ids();
    for (id, member) in node.members() {
        if id == node.id || !voters.contains(&id) {
            continue;
        }
        let status = node
            .peers
            .get(id, &member)
            .call::<_, super::NodeStatus>("/raft/v1/status", &(), Duration::from_secs(1))
            .await;
        if status.is_ok_and(|s| s.snapshot_building) {
            return true;
        }
    }
    false
}

/// `threshold` plus a per-node offset of up to 1/8 of it. With the same
/// threshold every node built its snapshot (and purged its log) at the same
/// index, all at once: on a small machine the leader and its followers
/// then stalled together and writes paused for seconds (seen in the
/// failover soak at 21 MB of state). Staggered, at most one node is busy
/// with it at a time and the others keep a majority.
pub fn staggered(threshold: u64, id: NodeId) -> u64 {
    threshold.saturating_add(id % (threshold / 8 + 1))
}

/// What the trigger looks at.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Entries applied since the current snapshot (all of them: none yet).
    pub entries_since: u64,
    /// Approximate log bytes applied since the current snapshot.
    pub bytes_since: u64,
    /// Size of the current snapshot file (0: none).
    pub snapshot_bytes: u64,
}

/// Whether node `id` should build a snapshot now.
pub fn due(p: Progress, snapshot_every: u64, log_percent: u64, id: NodeId) -> bool {
    if p.entries_since < staggered(snapshot_every, id) {
        return false;
    }
    if log_percent == 0 || p.snapshot_bytes < SIZE_RULE_FLOOR {
        return true;
    }
    let share = u128::from(p.snapshot_bytes) * u128::from(log_percent) / 100;
    let share = u64::try_from(share).unwrap_or(u64::MAX);
    p.bytes_since >= staggered(share, id)
}

/// Start the trigger of `node` (ends with the node).
pub(super) fn spawn<A: Application>(node: &Arc<ClusterNode<A>>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The snapshot index at our last trigger, and when. openraft
        // publishes a finished build's index in its metrics a moment after
        // it is ready for the next trigger: triggering again on the stale
        // index built the same snapshot twice. So no new trigger until the
        // index has moved (or, should a trigger ever be lost, a while).
        let mut asked: Option<(Option<u64>, std::time::Instant)> = None;
        // Waiting for peers' builds: since when, and when to ask again.
        let mut waiting_since: Option<std::time::Instant> = None;
        let mut next_peer_check: Option<std::time::Instant> = None;
        loop {
            tick.tick().await;
            let Some(node) = weak.upgrade() else { return };
            let (applied, snapshot) = {
                let m = node.raft.metrics();
                let m = m.borrow();
                (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            let Some(applied) = applied else { continue };
            if asked.is_some_and(|(at, when)| at == snapshot && when.elapsed() < RETRIGGER_AFTER) {
                continue; // the build we asked for is under way
            }
            let entries_since = match snapshot {
                Some(s) => applied.saturating_sub(s),
                None => applied + 1,
            };
            let settings = &node.settings;
            if entries_since < staggered(settings.snapshot_every, node.id) {
                continue; // the cheap check first: no file to look at
            }
            let p = Progress {
                entries_since,
                bytes_since: node.sm.log_bytes_since_snapshot(),
                snapshot_bytes: node.sm.current_snapshot_bytes(),
            };
            let (every, percent) = (settings.snapshot_every, settings.snapshot_log_percent);
            if due(p, every, percent, node.id) {
                let now = std::time::Instant::now();
                if next_peer_check.is_some_and(|at| now < at) {
                    continue; // waiting for a peer's build: look again later
                }
                let since = *waiting_since.get_or_insert(now);
                if coordinates(p.snapshot_bytes)
                    && wait_for_peers(a_peer_is_building(&node).await, now - since)
                {
                    if since == now {
                        tracing::info!("snapshot due; waiting while a peer builds its own");
                    }
                    next_peer_check = Some(now + PEER_CHECK_EVERY);
                    continue;
                }
                if since != now {
                    let waited_s = (now - since).as_secs();
                    tracing::info!(waited_s, "snapshot due; no peer building now");
                }
                waiting_since = None;
                next_peer_check = None;
                if node.raft.trigger().snapshot().await.is_err() {
                    return; // Raft has shut down
                }
                asked = Some((snapshot, std::time::Instant::now()));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::node_id_of;

    #[test]
    fn snapshot_points_differ_between_nodes_by_at_most_an_eighth() {
        let every = 20_000;
        let points: Vec<u64> = ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| staggered(every, node_id_of(n)))
            .collect();
        assert!(
            points
                .iter()
                .all(|p| (every..=every + every / 8).contains(p))
        );
        let distinct: std::collections::BTreeSet<_> = points.iter().collect();
        assert_eq!(distinct.len(), 3, "{points:?}");
        // Tiny thresholds (tests use 10–50) still work.
        assert!((10..=12).contains(&staggered(10, u64::MAX)));
    }

    fn p(entries_since: u64, bytes_since: u64, snapshot_bytes: u64) -> Progress {
        Progress {
            entries_since,
            bytes_since,
            snapshot_bytes,
        }
    }

    #[test]
    fn a_small_state_is_snapshotted_on_the_entry_count_alone() {
        let id = node_id_of("node-1");
        let every = staggered(20_000, id);
        assert!(!due(p(every - 1, u64::MAX, 1 << 20), 20_000, 25, id));
        assert!(due(p(every, 0, 1 << 20), 20_000, 25, id));
        assert!(due(p(every, 0, 0), 20_000, 25, id), "no snapshot yet");
        assert!(due(p(every, 0, SIZE_RULE_FLOOR - 1), 20_000, 25, id));
    }

    #[test]
    fn a_large_state_waits_for_a_share_of_its_size_in_log() {
        let id = node_id_of("node-2");
        let every = staggered(20_000, id);
        let snap = 848 << 20; // the 160k-member snapshot
        let share = staggered(snap / 4, id);
        // Enough entries, not enough bytes: not yet.
        assert!(!due(p(every * 10, share - 1, snap), 20_000, 25, id));
        assert!(due(p(every, share, snap), 20_000, 25, id));
        // Enough bytes, too few entries: not yet either.
        assert!(!due(p(every - 1, u64::MAX, snap), 20_000, 25, id));
        // Percent 0: the entry count alone, as openraft's own policy.
        assert!(due(p(every, 0, snap), 20_000, 0, id));
        // No overflow at absurd sizes.
        assert!(!due(p(every, 0, u64::MAX), 20_000, 1000, id));
    }

    #[test]
    fn a_due_build_waits_for_a_peer_s_build_but_not_for_ever() {
        assert!(!wait_for_peers(false, Duration::ZERO), "no peer builds: go");
        assert!(wait_for_peers(true, Duration::ZERO));
        assert!(wait_for_peers(true, PEER_WAIT_MAX - Duration::from_secs(1)));
        assert!(!wait_for_peers(true, PEER_WAIT_MAX), "waited long enough");
        // Only builds of a large state look at their peers.
        assert!(!coordinates(0) && !coordinates(SIZE_RULE_FLOOR - 1));
        assert!(coordinates(SIZE_RULE_FLOOR) && coordinates(848 << 20));
    }

    #[test]
    fn nodes_reach_the_size_share_at_different_points() {
        let snap: u64 = 243 << 20;
        let points: std::collections::BTreeSet<u64> = ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| staggered(snap / 4, node_id_of(n)))
            .collect();
        assert_eq!(points.len(), 3);
        assert!(
            points
                .iter()
                .all(|x| (snap / 4..=snap / 4 + snap / 32).contains(x))
        );
    }
}
