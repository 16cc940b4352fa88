//! A cluster member: the Raft instance, its stores and the operations the
//! node's APIs need — writes from any node (forwarded to the leader and
//! retried safely), linearizable read barriers, membership changes and a
//! status view.

mod campaign;
mod leadership;
pub mod snapshots;
mod status;

pub use status::{LEADER_HISTORY, LeaderChange, NodeStatus};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::app::Application;
use crate::error::{ClusterError, ForwardResult};
use crate::peer::{Network, PeerError, Peers};
use crate::store::{self, LogStore, StateMachineStore, StoreError};
use crate::types::{Member, NodeId, Payload, Raft, Request, Response, node_id_of};

/// Raft timing and compaction settings (see docs/operator/cluster.md for
/// why the defaults are what they are).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries since the last one
    /// at the least (see `node/snapshots.rs`).
    pub snapshot_every: u64,
    /// ... and once the log since the last one holds this percentage of
    /// the last snapshot's size (0: the entry count alone).
    #[serde(default = "default_snapshot_log_percent")]
    pub snapshot_log_percent: u64,
    /// Entries kept in the log behind a snapshot (lets slightly lagging
    /// followers catch up by log instead of snapshot).
    pub keep_logs: u64,
    pub snapshot_chunk_bytes: u64,
    /// Timeout of one snapshot chunk RPC.
    pub snapshot_chunk_timeout_ms: u64,
    /// How long a write may wait for a leader (elections, forwarding
    /// retries) before it fails as unavailable.
    pub write_timeout_ms: u64,
    pub cache_bytes: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 150,
            election_min_ms: 600,
            election_max_ms: 1200,
            snapshot_every: 20_000,
            snapshot_log_percent: default_snapshot_log_percent(),
            keep_logs: 1_000,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_chunk_timeout_ms: 30_000,
            write_timeout_ms: 10_000,
            cache_bytes: store::DEFAULT_CACHE_BYTES,
        }
    }
}

fn default_snapshot_log_percent() -> u64 {
    25
}

/// A membership change requested of the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    AddLearner { member: Member },
    Promote { id: NodeId },
    Remove { id: NodeId },
}

/// A running cluster member.
pub struct ClusterNode<A: Application> {
    pub id: NodeId,
    pub me: Member,
    pub raft: Raft,
    pub sm: StateMachineStore<A>,
    log: LogStore,
    pub peers: Arc<Peers>,
    pub settings: RaftSettings,
    pub data_dir: PathBuf,
    proposer: crate::proposer::Proposer,
    /// When this node last heard from a live leader (append entries or a
    /// snapshot chunk it accepted) or granted a vote; ms since `epoch`.
    last_contact: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// Until when (ms since `epoch`) a leadership transfer holds off
    /// other candidates; 0 when none.
    transfer_until: std::sync::atomic::AtomicU64,
    cert_not_after: std::sync::RwLock<Option<String>>,
    leader_changes: std::sync::Mutex<std::collections::VecDeque<LeaderChange>>,
    /// This node is about to stop for maintenance (a restart to
    /// defragment): peers see it in its status and do not count on it.
    restarting: std::sync::atomic::AtomicBool,
}

impl<A: Application> std::fmt::Debug for ClusterNode<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("id", &self.id)
            .field("me", &self.me)
            .finish()
    }
}

/// Open the stores in `data_dir` (refusing damaged ones) without starting Raft.
pub fn open_stores<A: Application>(
    data_dir: &Path,
    app: Arc<A>,
    cache_bytes: u64,
) -> Result<(LogStore, StateMachineStore<A>), StoreError> {
    let store_dir = data_dir.join("store");
    if let Some(did) = store::defrag::recover_interrupted(&store_dir)? {
        tracing::warn!(path = %store_dir.display(), "{did}");
    }
    let db = store::open_db(&store_dir, cache_bytes)?;
    let log = LogStore::open(&db, &store_dir)?;
    let sm = StateMachineStore::open(&db, &store_dir, &data_dir.join("snapshots"), app)?;
    let log = log.with_snapshot_floor(sm.snapshot_floor());
    let applied = sm.last_applied()?.map(|l| l.index);
    log.watermark()
        .check(
            log.stored_vote()?,
            log.last_index_or_purged()?.max(applied),
            applied,
        )
        .map_err(|detail| StoreError::Corrupt {
            path: store_dir.clone(),
            detail: format!("{detail} (sled lost durable writes)"),
        })?;
    Ok((log, sm))
}

/// A random idempotency key for writes whose caller gave none, so a retry
/// after an unknown outcome can never apply twice.
fn auto_key() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("auto-{}", hex::encode(b))
}

impl<A: Application> ClusterNode<A> {
    /// Open the stores and start Raft.
    pub async fn start(
        data_dir: &Path,
        me: Member,
        peers: Arc<Peers>,
        app: Arc<A>,
        settings: RaftSettings,
    ) -> Result<Arc<ClusterNode<A>>, StartError> {
        let id = node_id_of(&me.name);
        let (log, sm) = open_stores(data_dir, app, settings.cache_bytes)?;
        if log.forget_own_leadership(id)? {
            tracing::info!(
                "this node was the leader when it stopped: starting as a follower so the \
                 cluster elects a leader that holds every committed entry"
            );
        }
        let config = Config {
            cluster_name: "enclave".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_min_ms,
            election_timeout_max: settings.election_max_ms,
            install_snapshot_timeout: settings.snapshot_chunk_timeout_ms,
            // `snapshots.rs` decides (entries and the log's share of the
            // state's size) and triggers the builds.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: settings.keep_logs,
            snapshot_max_chunk_size: settings.snapshot_chunk_bytes,
            // Entries are batches of up to 1 MiB (see proposer.rs); keep one
            // AppendEntries well inside the peer RPC body limit.
            max_payload_entries: 32,
            // Elections are started by `election.rs` after a pre-vote
            // round; openraft 0.9's own timer would let a paused or
            // restarted follower depose a healthy leader.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Settings(e.to_string()))?;
        let network = Network {
            peers: peers.clone(),
        };
        let raft = Raft::new(id, Arc::new(config), network, log.clone(), sm.clone())
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let proposer = crate::proposer::Proposer::start(
            raft.clone(),
            crate::proposer::BatchLimits {
                max_wait: Duration::from_millis(settings.write_timeout_ms),
                ..Default::default()
            },
        );
        let node = Arc::new(ClusterNode {
            id,
            me,
            proposer,
            raft,
            sm,
            log,
            peers,
            settings,
            data_dir: data_dir.to_path_buf(),
            last_contact: std::sync::atomic::AtomicU64::new(0),
            transfer_until: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            cert_not_after: std::sync::RwLock::new(None),
            leader_changes: std::sync::Mutex::default(),
            restarting: std::sync::atomic::AtomicBool::new(false),
        });
        campaign::spawn(&node);
        snapshots::spawn(&node);
        // Remember leader changes for the status (the console's history).
        let weak = Arc::downgrade(&node);
        let mut metrics = node.raft.metrics();
        tokio::spawn(async move {
            let mut last: Option<Option<NodeId>> = None;
            loop {
                let (leader, term, leader_name) = {
                    let m = metrics.borrow_and_update();
                    let name = m.current_leader.and_then(|l| {
                        m.membership_config
                            .membership()
                            .get_node(&l)
                            .map(|n| n.name.clone())
                    });
                    (m.current_leader, m.current_term, name)
                };
                if last != Some(leader) {
                    let Some(node) = weak.upgrade() else { return };
                    let mut h = node
                        .leader_changes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    h.push_back(LeaderChange {
                        at_ms: crate::fault::now_ms(),
                        term,
                        leader,
                        leader_name,
                    });
                    while h.len() > LEADER_HISTORY {
                        h.pop_front();
                    }
                    last = Some(leader);
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        // Keep the durability watermark close behind what sled has flushed.
        let weak = Arc::downgrade(&node);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                let applied = node.sm.last_applied().ok().flatten().map(|l| l.index);
                if let Err(e) = node.log.apply_deferred_purge().await {
                    tracing::error!(error = %e, "cannot purge the log behind the installed snapshot");
                }
                if let Err(e) = node.log.raise_watermark(applied).await {
                    tracing::error!(error = %e, "cannot update the durability watermark");
                }
            }
        });
        Ok(node)
    }

    /// Make this node a one-node cluster. Refused if already initialized.
    pub async fn initialize(&self) -> Result<(), ClusterError> {
        let mut members = BTreeMap::new();
        members.insert(self.id, self.me.clone());
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError::Rejected(e.to_string()))?;
        // The write waits for this node to lead its one-node cluster.
        self.name_cluster().await
    }

    /// Register the storage metrics (log flush, apply) in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.log.metrics().register(registry);
        self.sm.metrics().register(registry);
    }

    pub fn is_initialized(&self) -> bool {
        // Borrow, don't clone: this runs on every write.
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    /// Current leader, if known.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let member = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, member))
    }

    /// Every member (voters and learners) of the membership this node
    /// knows, by id.
    pub fn members(&self) -> Vec<(NodeId, Member)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect()
    }

    /// The voters of the membership this node knows.
    pub fn voter_ids(&self) -> Vec<NodeId> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Note that a live leader (or a candidate this node voted for) was
    /// heard from (called by the peer routes).
    pub fn note_leader_contact(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_contact
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// ms since this node started (the clock of `last_contact`).
    pub(crate) fn uptime_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn uptime_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Resolves once this node knows a leader other than `id`.
    async fn leader_changed_from(&self, id: NodeId) {
        let mut m = self.raft.metrics();
        let changed = m
            .wait_for(|m| m.current_leader.is_some_and(|l| l != id))
            .await
            .is_ok();
        if !changed {
            // Raft is gone: never report a change (the write times out).
            std::future::pending::<()>().await;
        }
    }

    /// Write from any node: run on the leader (forwarding if needed),
    /// answered after commit + apply. Leader changes and lost answers are
    /// retried with the same idempotency key, so a write applies at most once.
    pub async fn write(
        &self,
        payload: Payload,
        idempotency_key: Option<String>,
    ) -> Result<Response, ClusterError> {
        if matches!(payload, Payload::Batch(_)) {
            return Err(ClusterError::Rejected(
                "batches are built by the leader, not sent to it".into(),
            ));
        }
        let req = Request {
            time_ms: 0,
            idempotency_key: Some(idempotency_key.unwrap_or_else(auto_key)),
            payload,
        };
        let start = Instant::now();
        let deadline = start + Duration::from_millis(self.settings.write_timeout_ms);
        let mut pause = Duration::from_millis(20);
        let mut unknown: Option<String> = None;
        loop {
            if !self.is_initialized() {
                return Err(ClusterError::NotInitialized);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                // Having sent the write somewhere without an answer, we cannot
                // say it failed: it may have committed.
                return Err(match unknown {
                    Some(e) => ClusterError::OutcomeUnknown(e),
                    None => ClusterError::Unavailable {
                        waited_ms: start.elapsed().as_millis() as u64,
                    },
                });
            }
            match self.leader() {
                Some((id, _)) if id == self.id => match self.write_local(req.clone()).await {
                    Ok(r) => return Ok(r),
                    Err(ForwardResult::NotLeader) => {}
                    // An earlier attempt may have been taken: still unknown.
                    Err(ForwardResult::Failed(ClusterError::NoQuorum { .. }))
                        if unknown.is_some() =>
                    {
                        return Err(ClusterError::OutcomeUnknown(unknown.unwrap_or_default()));
                    }
                    // Retry with the same key: applies at most once.
                    Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(e))) => {
                        unknown = Some(e)
                    }
                    Err(ForwardResult::Failed(e)) => return Err(e),
                },
                Some((id, member)) => {
                    let client = self.peers.get(id, &member);
                    let forward = client.call("/raft/v1/forward", &req, remaining);
                    // A leader cut off by a partition never answers; once
                    // this node follows a new leader, stop waiting for the
                    // old one and retry there (the key keeps it at most once).
                    let answer: Result<Result<Response, ForwardResult>, PeerError> = tokio::select! {
                        a = forward => a,
                        () = self.leader_changed_from(id) => {
                            tracing::debug!(old = id, "leader changed while forwarding a write; retrying");
                            unknown = Some(format!("leader {id} was replaced while it held the write"));
                            continue;
                        }
                    };
                    match answer {
                        Ok(Ok(r)) => return Ok(r),
                        // The leader we know is cut off: wait for a new one.
                        Ok(Err(ForwardResult::NotLeader))
                        | Ok(Err(ForwardResult::Failed(ClusterError::NoQuorum { .. }))) => {}
                        Ok(Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(e)))) => {
                            unknown = Some(e)
                        }
                        Ok(Err(ForwardResult::Failed(e))) => return Err(e),
                        // Unknown outcome: retry; the idempotency key makes it safe.
                        Err(e) => {
                            tracing::debug!(error = %e, "forwarding a write failed; retrying");
                            unknown = Some(e.to_string());
                        }
                    }
                }
                None => {}
            }
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Propose on this node, which must be the leader. The proposer stamps
    /// the time and batches concurrent writes into one entry.
    pub async fn write_local(&self, req: Request) -> Result<Response, ForwardResult> {
        if matches!(req.payload, Payload::Batch(_)) {
            return Err(ForwardResult::Failed(ClusterError::Rejected(
                "batches are built by the leader, not sent to it".into(),
            )));
        }
        self.wait_out_transfer().await;
        if let Some(silent_ms) = self.quorum_silence() {
            return Err(ForwardResult::Failed(ClusterError::NoQuorum { silent_ms }));
        }
        self.proposer.propose(req).await
    }

    /// On a leader of several voters: how long no majority has answered,
    /// once that exceeds `2 × raft.election_max_ms`. By then the others
    /// have elected a new leader if they can reach each other (a follower
    /// waits the leader lease plus its election timeout), so new writes
    /// here would only wait for the partition to heal: refuse them at once
    /// and let the client go to another node. openraft 0.9 has no
    /// check-quorum step-down; this is its cheap equivalent for writes.
    fn quorum_silence(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.current_leader != Some(self.id) {
            return None;
        }
        let voters = m.membership_config.membership().voter_ids().count();
        let silent = m.millis_since_quorum_ack?;
        (voters > 1 && silent > 2 * self.settings.election_max_ms).then_some(silent)
    }

    /// Wait until this node has applied everything committed before the
    /// call: reads after it are linearizable (read-index through the leader).
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let timeout = Duration::from_millis(self.settings.write_timeout_ms);
        let deadline = Instant::now() + timeout;
        let index = loop {
            match self.leader() {
                Some((id, _)) if id == self.id => {
                    break self.read_index_local().await.map_err(|e| match e {
                        ForwardResult::NotLeader => ClusterError::NoLeader,
                        ForwardResult::Failed(e) => e,
                    })?;
                }
                Some((id, member)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let client = self.peers.get(id, &member);
                    let ask = client.call("/raft/v1/read-index", &(), remaining);
                    // As for writes: a leader cut off never answers; ask
                    // the new one as soon as this node follows it.
                    let answer: Result<u64, ForwardResult> = tokio::select! {
                        a = ask => a?,
                        () = self.leader_changed_from(id) => {
                            if Instant::now() >= deadline {
                                return Err(ClusterError::NoLeader);
                            }
                            continue;
                        }
                    };
                    break answer.map_err(|_| ClusterError::NoLeader)?;
                }
                None => return Err(ClusterError::NoLeader),
            }
        };
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "read barrier: waiting for the applied index timed out");
                ClusterError::ApplyBehind { waited_ms: timeout.as_millis() as u64 }
            })?;
        Ok(())
    }

    /// On the leader: the index a linearizable read must wait for.
    pub async fn read_index_local(&self) -> Result<u64, ForwardResult> {
        self.wait_out_transfer().await;
        match self.raft.ensure_linearizable().await {
            Ok(l) => Ok(l.map(|l| l.index).unwrap_or(0)),
            Err(openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::ForwardToLeader(_),
            )) => Err(ForwardResult::NotLeader),
            // A leader cut off from the majority: unavailable, not refused.
            Err(openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::QuorumNotEnough(_),
            )) => Err(ForwardResult::Failed(ClusterError::NoQuorum {
                silent_ms: self
                    .raft
                    .metrics()
                    .borrow()
                    .millis_since_quorum_ack
                    .unwrap_or(0),
            })),
            Err(e) => Err(ForwardResult::Failed(ClusterError::Rejected(e.to_string()))),
        }
    }

    /// Apply a membership change on the leader (forwarding if needed).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_millis(self.settings.write_timeout_ms);
        loop {
            match self.leader() {
                Some((id, _)) if id == self.id => {
                    match self.change_membership_local(change.clone()).await {
                        Err(ForwardResult::NotLeader) => {}
                        Ok(()) => return Ok(()),
                        Err(ForwardResult::Failed(e)) => return Err(e),
                    }
                }
                Some((id, member)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let answer: Result<Result<(), ForwardResult>, PeerError> = self
                        .peers
                        .get(id, &member)
                        .call("/raft/v1/membership", &change, remaining)
                        .await;
                    match answer {
                        Ok(Ok(())) => return Ok(()),
                        Ok(Err(ForwardResult::Failed(e))) => return Err(e),
                        Ok(Err(ForwardResult::NotLeader)) | Err(_) => {}
                    }
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Unavailable {
                    waited_ms: self.settings.write_timeout_ms,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn change_membership_local(
        &self,
        change: MembershipChange,
    ) -> Result<(), ForwardResult> {
        let map = |e: openraft::error::RaftError<
            NodeId,
            openraft::error::ClientWriteError<NodeId, Member>,
        >| match e {
            openraft::error::RaftError::APIError(
                openraft::error::ClientWriteError::ForwardToLeader(_),
            ) => ForwardResult::NotLeader,
            other => ForwardResult::Failed(ClusterError::Rejected(other.to_string())),
        };
        match change {
            MembershipChange::AddLearner { member } => {
                let id = node_id_of(&member.name);
                self.raft
                    .add_learner(id, member, false)
                    .await
                    .map_err(map)?;
            }
            MembershipChange::Promote { id } => {
                let mut set = std::collections::BTreeSet::new();
                set.insert(id);
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(set), true)
                    .await
                    .map_err(map)?;
            }
            MembershipChange::Remove { id } => {
                let mut set = std::collections::BTreeSet::new();
                set.insert(id);
                let m = self.raft.metrics().borrow().clone();
                let is_voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == id);
                if is_voter {
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(set.clone()), false)
                        .await
                        .map_err(map)?;
                }
                let m = self.raft.metrics().borrow().clone();
                if m.membership_config.membership().get_node(&id).is_some() {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(set), false)
                        .await
                        .map_err(map)?;
                }
            }
        }
        Ok(())
    }

    /// This cluster's id, once it is known (replicated from init).
    pub fn cluster_id(&self) -> Option<String> {
        if let Some(id) = self
            .peers
            .cluster_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(id);
        }
        let id = self
            .sm
            .control_view()
            .get(crate::control::CLUSTER_ID_KEY)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())?;
        *self
            .peers
            .cluster_id
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        Some(id)
    }

    /// After init: name the cluster (once; later calls change nothing).
    async fn name_cluster(&self) -> Result<(), ClusterError> {
        // A fresh one-node cluster elects itself within an election timeout.
        self.raft
            .wait(Some(Duration::from_millis(self.settings.write_timeout_ms)))
            .state(ServerState::Leader, "new cluster elects its first leader")
            .await
            .map_err(|_| ClusterError::Unavailable {
                waited_ms: self.settings.write_timeout_ms,
            })?;
        let mut b = [0u8; 16];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        let cmd = crate::types::ControlCommand::SetClusterId { id: hex::encode(b) };
        self.write(Payload::Cluster(cmd), None).await?;
        self.cluster_id();
        Ok(())
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.flush_all()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the store at shutdown"),
            Err(e) => tracing::warn!(error = %e, "flushing the store at shutdown"),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid raft settings: {0}")]
    Settings(String),
    #[error("starting raft: {0}")]
    Raft(String),
}
