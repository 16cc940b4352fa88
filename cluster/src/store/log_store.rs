//! The Raft log on sled: entries, vote, committed index and purge marker
//! in one tree (`raft`) with key prefixes. Truncate and purge are atomic
//! batches; appends are plain inserts in index order (see `append`).
//!
//! Durability rules (the reason this file exists):
//! - `append` reports completion through `LogFlushed` only after the
//!   group-commit flusher thread's `flush()` covering it returned, i.e. the
//!   entries are on disk;
//! - `save_vote`, `truncate` and `purge` flush before returning;
//! - `save_committed` is a hint and is not flushed.
//!
//! A purge is its marker: `purge` writes `m/purged` durably and returns;
//! the entries up to it are deleted afterwards by the `enclave-log-purge`
//! thread, and whatever a crash left of them is deleted when the log is
//! opened. Nothing reads an entry at or below the marker. (Deleting them in
//! `purge` itself, in one batch, held up openraft's core loop: a purge
//! after a large snapshot covers hundreds of thousands of entries, and a
//! leader sends no heartbeat while its core waits.)
//!
//! Key layout: `l<index:be64>` → sealed entry; `m/vote`, `m/committed`,
//! `m/purged` → sealed values.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader, StorageIOError};

use super::durable::{Durability, flush_durably, flush_durably_async};
use super::metrics::{BatchMetrics, LOG_FLUSH};
use super::{StoreError, encode, io_error, open_sealed, seal, sealed, sled_err, unseal};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

const VOTE: &[u8] = b"m/vote";
const COMMITTED: &[u8] = b"m/committed";
const PURGED: &[u8] = b"m/purged";

fn log_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'l';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn index_of(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// The log storage. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    watermark: std::sync::Arc<super::watermark::Watermark>,
    durable: Arc<Durability>,
    flusher: std::sync::mpsc::Sender<FlushJob>,
    /// The state machine's durable snapshot (last index + 1), when wired.
    floor: Option<Arc<AtomicU64>>,
    /// A purge openraft asked for beyond `floor`, done once it is reached.
    deferred: Arc<std::sync::Mutex<Option<LogId>>>,
    purge_lock: Arc<tokio::sync::Mutex<()>>,
    /// The purge marker's index + 1 (0: nothing purged), for readers.
    purged: Arc<AtomicU64>,
    /// Deletes purged entries off the Raft core's task.
    deleter: std::sync::mpsc::Sender<(sled::Tree, u64)>,
    metrics: BatchMetrics,
}

/// One append waiting for the group flush: the database, its syncs, the
/// callback and how many entries the append had.
type FlushJob = (sled::Db, Arc<Durability>, LogFlushed<TypeConfig>, usize);

/// Group commit: one thread flushes sled for every append that arrived
/// while the previous flush ran, then completes all their callbacks. One
/// fsync covers many appends, and no append is reported before its flush.
fn spawn_flusher(path: PathBuf, metrics: BatchMetrics) -> std::sync::mpsc::Sender<FlushJob> {
    // Each request carries its own handle to the database, so an idle
    // flusher holds none and a closed store is really closed.
    let (tx, rx) = std::sync::mpsc::channel::<FlushJob>();
    let spawned = std::thread::Builder::new()
        .name("enclave-log-flush".into())
        .spawn(move || {
            while let Ok((db, durable, first, n)) = rx.recv() {
                let mut waiting = vec![first];
                let mut entries = n;
                for (_, _, cb, n) in rx.try_iter() {
                    waiting.push(cb);
                    entries += n;
                }
                let started = std::time::Instant::now();
                if let Some(delay) = crate::fault::fsync_delay() {
                    std::thread::sleep(delay);
                }
                let result = flush_durably(&db, &durable);
                metrics.observe(started, entries);
                drop(db);
                drop(durable);
                if let Err(e) = &result {
                    tracing::error!(path = %path.display(), error = %e, "flushing the Raft log failed");
                }
                for cb in waiting {
                    cb.log_io_completed(result.as_ref().map(|_| ()).map_err(io_error));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the log flusher thread");
    }
    tx
}

/// Entries deleted between two looks at the queue (and short pauses).
const DELETE_CHUNK: u64 = 1_024;

/// Delete the log entries of `tree` up to and including `upto`, in
/// chunks. Plain removes, not batches: a sled batch holds the database's
/// write lock, and appends would wait for it. Not flushed: a crash brings
/// some back, and opening the log deletes them again.
fn delete_through(tree: &sled::Tree, upto: u64, pause: bool) -> sled::Result<u64> {
    let first = match tree.scan_prefix(b"l").next() {
        Some(item) => index_of(&item?.0).unwrap_or(u64::MAX),
        None => return Ok(0),
    };
    let mut deleted = 0;
    let mut at = first;
    while at <= upto {
        let end = upto.min(at.saturating_add(DELETE_CHUNK - 1));
        for i in at..=end {
            if tree.remove(log_key(i))?.is_some() {
                deleted += 1;
            }
        }
        if end == u64::MAX {
            break;
        }
        at = end + 1;
        if pause {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(deleted)
}

/// The thread that deletes purged entries. Each request carries its own
/// handle to the tree (as the flusher's do), so an idle deleter holds none.
fn spawn_deleter(path: PathBuf) -> std::sync::mpsc::Sender<(sled::Tree, u64)> {
    let (tx, rx) = std::sync::mpsc::channel::<(sled::Tree, u64)>();
    let spawned = std::thread::Builder::new()
        .name("enclave-log-purge".into())
        .spawn(move || {
            while let Ok((mut tree, mut upto)) = rx.recv() {
                for (t, u) in rx.try_iter() {
                    if u > upto {
                        (tree, upto) = (t, u);
                    }
                }
                let started = std::time::Instant::now();
                match delete_through(&tree, upto, true) {
                    Ok(n) => tracing::debug!(
                        upto,
                        deleted = n,
                        ms = started.elapsed().as_millis() as u64,
                        "purged log entries deleted"
                    ),
                    // Harmless for the log (the marker rules); retried with
                    // the next purge and at the next open.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "deleting purged log entries failed")
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the log purge thread");
    }
    tx
}

impl LogStore {
    /// Open the log in `db`, verifying every stored entry and marker.
    pub fn open(db: &sled::Db, path: &Path) -> Result<LogStore, StoreError> {
        let tree = db.open_tree("raft").map_err(|e| sled_err(path, e))?;
        let mark_path = path.with_extension("watermark");
        let watermark = std::sync::Arc::new(super::watermark::Watermark::open(&mark_path)?);
        let metrics = BatchMetrics::new(&LOG_FLUSH);
        let flusher = spawn_flusher(path.to_path_buf(), metrics.clone());
        let durable = Arc::new(Durability::open(path).map_err(|error| StoreError::Io {
            path: path.join("db"),
            error,
        })?);
        let store = LogStore {
            db: db.clone(),
            tree,
            path: path.to_path_buf(),
            watermark,
            durable,
            flusher,
            floor: None,
            deferred: Arc::default(),
            purge_lock: Arc::default(),
            purged: Arc::default(),
            deleter: spawn_deleter(path.to_path_buf()),
            metrics,
        };
        // Finish a purge a crash interrupted: its marker is durable, some
        // of its entries may not be deleted yet.
        if let Some(p) = store.read_meta::<LogId>(PURGED, "the purge marker")? {
            delete_through(&store.tree, p.index, false).map_err(|e| sled_err(path, e))?;
            store.purged.store(p.index + 1, Ordering::Release);
        }
        store.verify()?;
        Ok(store)
    }

    /// Group-commit metrics, for the node's `/metrics`.
    pub fn metrics(&self) -> &BatchMetrics {
        &self.metrics
    }

    pub fn watermark(&self) -> &std::sync::Arc<super::watermark::Watermark> {
        &self.watermark
    }

    /// The last log index, or the purge point if the log is empty.
    pub fn last_index_or_purged(&self) -> Result<Option<u64>, StoreError> {
        let purged = self
            .read_meta::<LogId>(PURGED, "the purge marker")?
            .map(|l| l.index);
        if let Some(item) = self.tree.scan_prefix(b"l").next_back() {
            let (k, _) = item.map_err(|e| sled_err(&self.path, e))?;
            // An entry at or below the marker is one still being deleted.
            return Ok(index_of(&k).max(purged));
        }
        Ok(purged)
    }

    pub fn stored_vote(&self) -> Result<Option<Vote>, StoreError> {
        self.read_meta(VOTE, "the vote")
    }

    /// If the stored vote says this node (`me`) was the leader, keep the
    /// vote (same term, still voted for itself) but mark it uncommitted, so
    /// openraft does not resume that leadership at start-up. A leader
    /// counts a majority of *followers'* flushes as commit, so a leader
    /// that lost power (or was killed while sled still buffered) can come
    /// back without the tail of entries it made in its own term; resuming
    /// as that term's leader, it would serve reads from the shorter log and
    /// write new, different entries under log ids the followers already
    /// hold. Starting as a follower forces an election, which only a node
    /// holding every committed entry can win. Returns whether it changed.
    pub fn forget_own_leadership(&self, me: NodeId) -> Result<bool, StoreError> {
        let Some(vote) = self.stored_vote()? else {
            return Ok(false);
        };
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(me) {
            return Ok(false);
        }
        let demoted = Vote::new(vote.leader_id().term, me);
        self.tree
            .insert(VOTE, sealed(&demoted))
            .map_err(|e| sled_err(&self.path, e))?;
        flush_durably(&self.db, &self.durable).map_err(|e| sled_err(&self.path, e))?;
        Ok(true)
    }

    pub fn stored_committed(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .read_meta::<Option<LogId>>(COMMITTED, "the committed index")?
            .flatten()
            .map(|l| l.index))
    }

    /// Flush, then raise the watermark to what is now durable.
    pub async fn raise_watermark(&self, applied: Option<u64>) -> Result<(), StoreError> {
        let committed = self.stored_committed()?;
        let vote = self.stored_vote()?;
        flush_durably_async(&self.db, &self.durable)
            .await
            .map_err(|e| sled_err(&self.path, e))?;
        self.watermark
            .raise(vote, committed, applied)
            .map_err(|e| StoreError::Io {
                path: self.path.with_extension("watermark"),
                error: e,
            })
    }

    /// Check checksums, decoding and contiguity of the whole log.
    pub fn verify(&self) -> Result<(), StoreError> {
        let purged: Option<LogId> = self.read_meta(PURGED, "the purge marker")?;
        let _: Option<Vote> = self.read_meta(VOTE, "the vote")?;
        let _: Option<Option<LogId>> = self.read_meta(COMMITTED, "the committed index")?;
        let mut prev: Option<u64> = None;
        for item in self.tree.scan_prefix(b"l") {
            let (k, v) = item.map_err(|e| sled_err(&self.path, e))?;
            let index =
                index_of(&k).ok_or_else(|| self.corrupt(format!("malformed log key {k:?}")))?;
            let entry: Entry = open_sealed(&self.path, &format!("log entry {index}"), &v)?;
            if entry.log_id.index != index {
                return Err(self.corrupt(format!(
                    "log entry stored at {index} claims index {}",
                    entry.log_id.index
                )));
            }
            match prev {
                Some(p) if p + 1 != index => {
                    return Err(
                        self.corrupt(format!("log has a gap between entries {p} and {index}"))
                    );
                }
                None => {
                    if let Some(purged) = purged
                        && index != purged.index + 1
                    {
                        return Err(self.corrupt(format!(
                            "first log entry is {index} but the log was purged up to {}",
                            purged.index
                        )));
                    }
                }
                _ => {}
            }
            prev = Some(index);
        }
        Ok(())
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.tree.get(key).map_err(|e| sled_err(&self.path, e))? {
            Some(v) => Ok(Some(open_sealed(&self.path, what, &v)?)),
            None => Ok(None),
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, StorageError> {
        self.read_meta(key, what)
            .map_err(|e| read_err(ErrorSubject::Store, e))
    }

    async fn flush(
        &self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> Result<(), StorageError> {
        if let Some(delay) = crate::fault::fsync_delay() {
            tokio::time::sleep(delay).await;
        }
        flush_durably_async(&self.db, &self.durable)
            .await
            .map_err(|e| {
                StorageIOError::new(subject, verb, openraft::AnyError::new(&io_error(e))).into()
            })
    }

    /// Number of bytes sled uses on disk (for the disk-use metric).
    /// Write everything sled holds in memory to disk and wait (at a
    /// graceful stop: what Raft acknowledged is durable already, this
    /// spares the next start sled's recovery of the rest).
    pub fn flush_all(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| super::sled_err(&self.path, e))
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn read_err(subject: ErrorSubject<NodeId>, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(
        subject,
        ErrorVerb::Read,
        openraft::AnyError::new(&io_error(e)),
    )
    .into()
}

fn write_err(subject: ErrorSubject<NodeId>, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(
        subject,
        ErrorVerb::Write,
        openraft::AnyError::new(&io_error(e)),
    )
    .into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        // Entries at or below the purge marker may still be on disk (they
        // are deleted in the background); they are not in the log.
        let start = start.max(self.purged.load(Ordering::Acquire));
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
            Bound::Unbounded => Bound::Excluded(log_key(u64::MAX)),
        };
        let mut out = Vec::new();
        for item in self.tree.range((Bound::Included(log_key(start)), end)) {
            let (k, v) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
            let index = index_of(&k).unwrap_or_default();
            let payload = unseal(&v).ok_or_else(|| {
                read_err(
                    ErrorSubject::Logs,
                    format!("checksum mismatch in log entry {index}"),
                )
            })?;
            let entry: Entry =
                postcard::from_bytes(payload).map_err(|e| read_err(ErrorSubject::Logs, e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.meta(PURGED, "the purge marker")?;
        let last = match self.tree.scan_prefix(b"l").next_back() {
            Some(item) => {
                let (_, v) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
                let payload = unseal(&v).ok_or_else(|| {
                    read_err(
                        ErrorSubject::Logs,
                        "checksum mismatch in the last log entry",
                    )
                })?;
                let entry: Entry =
                    postcard::from_bytes(payload).map_err(|e| read_err(ErrorSubject::Logs, e))?;
                // All the entries left are purged ones not deleted yet.
                match last_purged {
                    Some(p) if p.index >= entry.log_id.index => Some(p),
                    _ => Some(entry.log_id),
                }
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.tree
            .insert(VOTE, sealed(vote))
            .map_err(|e| write_err(ErrorSubject::Vote, e))?;
        // A vote must be on disk before it is acted upon.
        self.flush(ErrorSubject::Vote, ErrorVerb::Write).await?;
        self.watermark
            .raise(Some(*vote), None, None)
            .map_err(|e| write_err(ErrorSubject::Vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(VOTE, "the vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.tree
            .insert(COMMITTED, sealed(&committed))
            .map_err(|e| write_err(ErrorSubject::Store, e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .meta::<Option<LogId>>(COMMITTED, "the committed index")?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Plain inserts in index order, not a `sled::Batch`: sled 0.34
        // rolls its IO buffer twice for every batch (`pin_log`), and each
        // roll is one more write + `sync_file_range` on sled's thread pool,
        // whose `notify_all` wakes all seven idle IO threads. That was two of
        // the five IO-buffer writes per replicated entry. Atomicity is not
        // needed here: sled recovers a prefix of its log, so a crash before
        // the flush leaves a contiguous prefix of these entries (which Raft
        // allows: the append was never reported), and `open` verifies
        // contiguity and checksums anyway.
        let mut count = 0;
        for entry in entries {
            count += 1;
            self.tree
                .insert(log_key(entry.log_id.index), seal(&encode(&entry)))
                .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        }
        // Report the append only once it is on disk. The flush runs off the
        // Raft core's task (group commit) so the core keeps pipelining.
        if let Err(std::sync::mpsc::SendError((_, _, callback, _))) =
            self.flusher
                .send((self.db.clone(), self.durable.clone(), callback, count))
        {
            let result = flush_durably(&self.db, &self.durable).map_err(io_error);
            callback.log_io_completed(result);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.tree.range(log_key(log_id.index)..log_key(u64::MAX)) {
            let (k, _) = item.map_err(|e| read_err(ErrorSubject::Logs, e))?;
            batch.remove(k);
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        self.flush(ErrorSubject::Logs, ErrorVerb::Delete).await
    }

    /// openraft 0.9 purges the log a received snapshot covers without
    /// waiting for the state machine to finish installing it. A crash in
    /// between left a log purged beyond the node's snapshot, and openraft
    /// then panics at startup (`purge_upto <= snapshot_last_log_id`);
    /// the failover suite's `snapshot-restart` fault found it. So nothing
    /// is purged beyond the state machine's durable snapshot: such a purge
    /// waits (`deferred`) and is done by [`LogStore::apply_deferred_purge`].
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if let Some(floor) = &self.floor
            && log_id.index >= floor.load(Ordering::Acquire)
        {
            let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            if d.is_none_or(|d| d.index < log_id.index) {
                *d = Some(log_id);
            }
            tracing::debug!(
                upto = log_id.index,
                "purge deferred until the snapshot is durable"
            );
            return Ok(());
        }
        self.purge_now(log_id).await
    }
}

impl LogStore {
    /// Purge nothing beyond the state machine's durable snapshot, whose
    /// last index + 1 `floor` holds (see [`RaftLogStorage::purge`] here).
    pub fn with_snapshot_floor(mut self, floor: Arc<AtomicU64>) -> LogStore {
        self.floor = Some(floor);
        self
    }

    /// Do a deferred purge once the snapshot it needs is durable.
    pub async fn apply_deferred_purge(&self) -> Result<(), StorageError> {
        let (Some(floor), Some(upto)) = (
            &self.floor,
            *self.deferred.lock().unwrap_or_else(|p| p.into_inner()),
        ) else {
            return Ok(());
        };
        if upto.index >= floor.load(Ordering::Acquire) {
            return Ok(());
        }
        self.purge_now(upto).await?;
        let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        if *d == Some(upto) {
            *d = None;
        }
        Ok(())
    }

    async fn purge_now(&self, log_id: LogId) -> Result<(), StorageError> {
        // openraft's purges and deferred ones (from the watermark task)
        // must not interleave, and the marker only moves forward.
        let _one_at_a_time = self.purge_lock.lock().await;
        let current: Option<LogId> = self.meta(PURGED, "the purge marker")?;
        if current.is_some_and(|c| c.index >= log_id.index) {
            return Ok(());
        }
        // The durable marker is the purge (module docs); the entries are
        // deleted by the purge thread.
        self.tree
            .insert(PURGED, sealed(&log_id))
            .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        self.purged.fetch_max(log_id.index + 1, Ordering::AcqRel);
        self.flush(ErrorSubject::Logs, ErrorVerb::Delete).await?;
        if self
            .deleter
            .send((self.tree.clone(), log_id.index))
            .is_err()
        {
            // No purge thread: delete here (off the async workers).
            let tree = self.tree.clone();
            tokio::task::spawn_blocking(move || delete_through(&tree, log_id.index, false))
                .await
                .map_err(|e| write_err(ErrorSubject::Logs, e))?
                .map_err(|e| write_err(ErrorSubject::Logs, e))?;
        }
        Ok(())
    }
}
