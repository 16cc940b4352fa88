//! The application state machine interface: what the messaging domain (or,
//! until it exists, the test key-value store) implements to ride the log.

use crate::store::Txn;

/// Facts about the entry being applied, decided once by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    pub index: u64,
    pub term: u64,
    /// Leader-stamped wall-clock time, ms since the Unix epoch. The only
    /// "now" an apply may use.
    pub time_ms: u64,
    /// Position of the command inside its entry: the leader batches
    /// concurrent writes into one entry, so `(index, sub)` identifies a
    /// command. 0 for an entry holding a single command.
    pub sub: u32,
}

/// Something the cluster layer itself applied, shown to the application in
/// the same batch (e.g. to write an audit record atomically with it).
#[derive(Debug, Clone, Copy)]
pub enum ClusterEvent<'a> {
    /// A membership change entry (the new configuration).
    Membership(&'a openraft::Membership<crate::types::NodeId, crate::types::Member>),
    /// A cluster control command and its outcome.
    Control {
        command: &'a crate::types::ControlCommand,
        outcome: &'a crate::types::ControlOutcome,
    },
}

/// A deterministic state machine over a key-value transaction.
///
/// `apply` must be a pure function of (stored state, context, command): no
/// clock, no randomness, no I/O besides `txn`. Every node applies every
/// entry and must end byte-identical.
pub trait Application: Send + Sync + 'static {
    /// Apply one command; return its encoded outcome. An `Err` is a storage
    /// failure and stops the node (it is never used for "invalid command":
    /// that is an outcome).
    fn apply(
        &self,
        ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        command: &[u8],
    ) -> Result<Vec<u8>, sled::Error>;

    /// What to keep of an idempotent request's outcome for its retries
    /// (stored under its key for `DEDUP_RETENTION_MS`; a retry is answered
    /// with it, flagged `deduplicated`): `None` keeps the outcome itself.
    /// An application may keep a smaller form (a reference into its state)
    /// that it expands when it reads a deduplicated answer. `txn` is the
    /// application's state after the command; `command` its bytes.
    fn retry_outcome(
        &self,
        _txn: &mut Txn<'_>,
        _command: &[u8],
        _outcome: &[u8],
    ) -> Option<Vec<u8>> {
        None
    }

    /// Called after each batch is durable in the state machine, with the
    /// last applied index: wake long-polls, push events.
    fn applied(&self, _last_index: u64) {}

    /// Called after a snapshot replaced the whole state.
    fn installed(&self, _last_index: u64) {}

    /// Called in apply, in the same batch, for what the cluster layer
    /// applied itself. `txn` is the application's part of the state.
    fn cluster_event(
        &self,
        _ctx: &ApplyContext,
        _txn: &mut Txn<'_>,
        _event: ClusterEvent<'_>,
    ) -> Result<(), sled::Error> {
        Ok(())
    }

    /// Whether an application key counts in the state hash (`enclavectl
    /// cluster state-hash`, backup comparisons). Records that describe the
    /// operations themselves — an audit trail that records the backup it
    /// is compared across — can be left out.
    fn in_state_hash(&self, _key: &[u8]) -> bool {
        true
    }

    /// The file format of the next snapshot or backup
    /// (`store::snapshot::VERSION` or `VERSION_DEFLATE`), given the state
    /// it is taken of: a format every node that may receive the file can
    /// read (an application gates the compressed one on its log version).
    fn snapshot_format(&self, _state: &crate::store::StateView) -> u32 {
        crate::store::snapshot::VERSION
    }
}
