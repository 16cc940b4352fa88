//! The state machine adapter: applies committed entries to the application
//! over sled, atomically with `last_applied`, and builds/installs snapshots.
//!
//! State tree `sm.<gen>` key layout:
//! `a/…` application data · `c/…` cluster control data (join tokens) ·
//! `d/<key>` stored outcome of an idempotent request ·
//! `e/<time:be64><index:be64>` expiry index: the keys one entry recorded ·
//! `m/applied`, `m/membership` (sealed).
//!
//! Atomicity: all writes of an apply batch, including `m/applied`, are
//! first recorded as one value in the redo journal (`journal.rs`), then
//! written as plain inserts; at open an interrupted batch is completed from
//! the journal. So after a crash the state and `last_applied` agree and no
//! entry is applied twice or skipped. A snapshot is installed into a
//! fresh `sm.<gen+1>` tree and made current by switching the generation
//! pointer in `meta` — one write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError};

use super::capture::SnapshotCapture;
use super::durable::{Durability, flush_durably, flush_durably_async};
use super::journal::Journal;
use super::metrics::{APPLY, BatchMetrics};
use super::snapshot::{self, Reader};
use super::{StoreError, Txn, io_error, open_sealed, sealed, sled_err};
use crate::app::Application;
mod apply;

use crate::types::{LogId, Response, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const APPLIED: &[u8] = b"m/applied";
const MEMBERSHIP: &[u8] = b"m/membership";
const GEN: &[u8] = b"sm_gen";
const CURRENT_SNAPSHOT: &[u8] = b"snapshot";
/// How long the outcome of an idempotent request is remembered: a client
/// retrying within this window never applies twice.
pub const DEDUP_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// The state machine store. Cheap to clone.
pub struct StateMachineStore<A: Application> {
    inner: Arc<Inner<A>>,
}

impl<A: Application> Clone for StateMachineStore<A> {
    fn clone(&self) -> Self {
        StateMachineStore {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Application> std::fmt::Debug for StateMachineStore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

struct Inner<A> {
    db: sled::Db,
    durable: Arc<Durability>,
    /// Last log index + 1 of the durable current snapshot (0: none); the
    /// log store purges nothing beyond it (see `LogStore::purge`).
    floor: Arc<AtomicU64>,
    meta: sled::Tree,
    journal: Journal,
    /// Readers (`StateView`) hold it shared; an apply holds it exclusively
    /// while it writes a batch key by key, so readers see whole batches.
    gate: Arc<RwLock<()>>,
    path: PathBuf,
    snap_dir: PathBuf,
    state: RwLock<sled::Tree>,
    generation: AtomicU64,
    /// Held by apply and install, and by a snapshot build only while it
    /// takes its starting point: applies go on while a snapshot is written.
    apply_lock: tokio::sync::Mutex<()>,
    /// One snapshot build (or install) at a time.
    build_lock: tokio::sync::Mutex<()>,
    /// Held while the current snapshot changes (pointer, sync, old files).
    current_lock: tokio::sync::Mutex<()>,
    /// While a snapshot is being built: the value every key had when the
    /// build started, recorded by apply just before it first changes the
    /// key (`capture.rs`).
    capture: SnapshotCapture,
    app: Arc<A>,
    incoming: Mutex<Option<PathBuf>>,
    seq: AtomicU64,
    metrics: BatchMetrics,
    /// Approximate payload bytes applied by this process (see
    /// [`StateMachineStore::log_bytes_since_snapshot`]).
    applied_bytes: AtomicU64,
    /// `applied_bytes` when the current snapshot's starting point was taken.
    snapshot_mark: AtomicU64,
    /// Uncompressed size of the current snapshot, once known
    /// ([`UNKNOWN_SIZE`] until first asked after opening): it changes only
    /// when a snapshot is built or installed, but is read by every status,
    /// metrics scrape and snapshot-trigger check.
    snapshot_size: AtomicU64,
}

const UNKNOWN_SIZE: u64 = u64::MAX;

/// A read-only view of the application's state (local, not linearizable).
///
/// Each `get` and `scan` sees whole apply batches: an apply writes its
/// batch key by key (see `journal.rs`) under the write side of `gate`, and
/// reads take the read side. So a reader that reads a counter and then the
/// records it counts (sync reads the event counter, then the events) never
/// sees the counter of a batch without the batch's records.
#[derive(Debug, Clone)]
pub struct StateView {
    tree: sled::Tree,
    prefix: &'static [u8],
    gate: Arc<RwLock<()>>,
}

impl StateView {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        let _whole_batches = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let mut w = BTreeMap::new();
        Txn::new(&self.tree, &mut w, self.prefix).get(key)
    }
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<super::KvPair>, sled::Error> {
        let _whole_batches = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let mut w = BTreeMap::new();
        Txn::new(&self.tree, &mut w, self.prefix).scan(prefix, after, limit)
    }
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        openraft::AnyError::new(&io_error(e)),
    )
    .into()
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(
        ErrorSubject::Snapshot(None),
        verb,
        openraft::AnyError::new(&io_error(e)),
    )
    .into()
}

impl<A: Application> StateMachineStore<A> {
    /// Open the state machine in `db`; snapshots live in `snap_dir`.
    pub fn open(
        db: &sled::Db,
        path: &Path,
        snap_dir: &Path,
        app: Arc<A>,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(snap_dir).map_err(|source| StoreError::Io {
            path: snap_dir.to_path_buf(),
            error: source,
        })?;
        let meta = db.open_tree("meta").map_err(|e| sled_err(path, e))?;
        let generation: u64 = match meta.get(GEN).map_err(|e| sled_err(path, e))? {
            Some(v) => open_sealed(path, "the state machine generation", &v)?,
            None => 0,
        };
        let current = format!("sm.{generation}");
        // Leftovers of an interrupted snapshot install.
        for name in db.tree_names() {
            if name.starts_with(b"sm.") && name != current.as_bytes() {
                db.drop_tree(&name).map_err(|e| sled_err(path, e))?;
            }
        }
        let state = db.open_tree(&current).map_err(|e| sled_err(path, e))?;
        let durable = Arc::new(Durability::open(path).map_err(|error| StoreError::Io {
            path: path.join("db"),
            error,
        })?);
        // Complete an apply batch a crash interrupted (see journal.rs).
        let journal = Journal::open(db, path)?;
        let applied = match state.get(APPLIED).map_err(|e| sled_err(path, e))? {
            Some(v) => open_sealed::<Option<LogId>>(path, "the applied-state marker", &v)?,
            None => None,
        };
        let redone = journal.recover(&state, generation, applied, path)?;
        if redone > 0 {
            flush_durably(db, &durable).map_err(|e| sled_err(path, e))?;
            tracing::warn!(
                keys = redone,
                path = %path.display(),
                "completed an apply batch interrupted by a crash, from the journal"
            );
        }
        let floor = match meta.get(CURRENT_SNAPSHOT).map_err(|e| sled_err(path, e))? {
            Some(v) => {
                let (m, _): (SnapshotMeta, String) =
                    open_sealed(path, "the current snapshot pointer", &v)?;
                m.last_log_id.map(|l| l.index + 1).unwrap_or(0)
            }
            None => 0,
        };
        for (key, what) in [
            (APPLIED, "the applied-state marker"),
            (MEMBERSHIP, "the applied membership"),
        ] {
            if let Some(v) = state.get(key).map_err(|e| sled_err(path, e))?
                && super::unseal(&v).is_none()
            {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("checksum mismatch in {what}"),
                });
            }
        }
        // Clean up half-received snapshots.
        if let Ok(rd) = std::fs::read_dir(snap_dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(StateMachineStore {
            inner: Arc::new(Inner {
                db: db.clone(),
                durable,
                floor: Arc::new(AtomicU64::new(floor)),
                meta,
                journal,
                gate: Arc::default(),
                path: path.to_path_buf(),
                snap_dir: snap_dir.to_path_buf(),
                state: RwLock::new(state),
                generation: AtomicU64::new(generation),
                apply_lock: tokio::sync::Mutex::new(()),
                build_lock: tokio::sync::Mutex::new(()),
                current_lock: tokio::sync::Mutex::new(()),
                capture: SnapshotCapture::default(),
                app,
                incoming: Mutex::new(None),
                seq: AtomicU64::new(0),
                metrics: BatchMetrics::new(&APPLY),
                applied_bytes: AtomicU64::new(0),
                snapshot_mark: AtomicU64::new(0),
                snapshot_size: AtomicU64::new(UNKNOWN_SIZE),
            }),
        })
    }

    pub(crate) fn tree(&self) -> sled::Tree {
        self.inner
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The application's state as of the last applied entry on this node.
    pub fn view(&self) -> StateView {
        StateView {
            tree: self.tree(),
            prefix: b"a/",
            gate: self.inner.gate.clone(),
        }
    }

    /// The cluster layer's own state (join tokens).
    pub fn control_view(&self) -> StateView {
        StateView {
            tree: self.tree(),
            prefix: b"c/",
            gate: self.inner.gate.clone(),
        }
    }

    pub fn app(&self) -> &Arc<A> {
        &self.inner.app
    }

    /// Last applied log id, as stored.
    pub fn last_applied(&self) -> Result<Option<LogId>, StoreError> {
        match self
            .tree()
            .get(APPLIED)
            .map_err(|e| sled_err(&self.inner.path, e))?
        {
            Some(v) => open_sealed(&self.inner.path, "the applied-state marker", &v),
            None => Ok(None),
        }
    }

    /// Write a consistent snapshot of the whole state to `path` (used by
    /// backups as well as Raft snapshots). Applies wait while it runs.
    pub async fn write_snapshot_file(
        &self,
        path: &Path,
    ) -> Result<snapshot::SnapshotInfo, StorageError> {
        Ok(self.write_snapshot_at(path).await?.0)
    }

    /// [`Self::write_snapshot_file`], also returning the applied-bytes
    /// count at the snapshot's starting point.
    async fn write_snapshot_at(
        &self,
        path: &Path,
    ) -> Result<(snapshot::SnapshotInfo, u64), StorageError> {
        let _build = self.inner.build_lock.lock().await;
        // The starting point: taken under the apply lock, which is released
        // at once. From here on apply records the old value of every key it
        // changes, so the snapshot is the state as of `applied` although
        // applies continue while it is written (holding the lock for the
        // whole write stalled every write for as long, 1.9 s at 400k keys).
        let (tree, meta, capturing, mark, format) = {
            let _guard = self.inner.apply_lock.lock().await;
            let tree = self.tree();
            let (applied, membership) =
                read_applied(&tree, &self.inner.path).map_err(|e| sm_err(ErrorVerb::Read, e))?;
            let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
            let snapshot_id = match applied {
                Some(l) => format!(
                    "{}-{}-{}-{seq}",
                    l.leader_id.term,
                    l.index,
                    std::process::id()
                ),
                None => format!("0-0-{}-{seq}", std::process::id()),
            };
            let capturing = self.inner.capture.start();
            let mark = self.inner.applied_bytes.load(Ordering::Relaxed);
            let format = self.inner.app.snapshot_format(&self.view());
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id,
            };
            (tree, meta, capturing, mark, format)
        };
        let path = path.to_path_buf();
        // A nicer thread of its own (see `background`): the build yields
        // the CPU to the Raft core and the requests.
        let info = super::background::run_nicer("enclave-snapshot", move || {
            // Capturing stops when this closure ends, whatever happens.
            let records = capturing.records(tree.iter());
            snapshot::write_as(&path, &meta, records, format)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok((info, mark))
    }

    /// Seed an empty, never-initialized state machine with the data of a
    /// backup file: everything but the Raft bookkeeping (`m/` keys), which
    /// belongs to the old cluster. Returns the number of records loaded.
    pub async fn restore_genesis(&self, backup: &Path) -> Result<u64, String> {
        let _guard = self.inner.apply_lock.lock().await;
        let tree = self.tree();
        if tree.iter().next().is_some() {
            return Err("the state machine is not empty; restore needs a fresh data dir".into());
        }
        let path = backup.to_path_buf();
        let db = self.inner.db.clone();
        let durable = self.inner.durable.clone();
        tokio::task::spawn_blocking(move || -> Result<u64, String> {
            let mut reader = Reader::open(&path).map_err(|e| e.to_string())?;
            let mut batch = sled::Batch::default();
            let mut n = 0u64;
            while let Some((k, v)) = reader.next_record().map_err(|e| e.to_string())? {
                // Raft bookkeeping, the old cluster's id and its join tokens
                // stay behind: the restored data becomes a new cluster with
                // its own id, and no token of the old cluster opens it.
                if k.starts_with(b"m/") || k.starts_with(b"c/") {
                    continue;
                }
                batch.insert(k, v);
                n += 1;
                if n.is_multiple_of(INSTALL_BATCH_RECORDS as u64) {
                    tree.apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| e.to_string())?;
                }
            }
            tree.apply_batch(batch).map_err(|e| e.to_string())?;
            flush_durably(&db, &durable).map_err(|e| e.to_string())?;
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// SHA-256 over the application data (`a/`; not Raft, cluster-control
    /// or idempotency bookkeeping): equal on every node that applied the
    /// same log, and preserved by backup and restore.
    pub fn state_hash(&self) -> Result<(String, u64), sled::Error> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut n = 0u64;
        for item in self.tree().iter() {
            let (k, v) = item?;
            if !k.starts_with(b"a/") || !self.inner.app.in_state_hash(&k[2..]) {
                continue;
            }
            ctx.update(&(k.len() as u32).to_le_bytes());
            ctx.update(&k);
            ctx.update(&(v.len() as u32).to_le_bytes());
            ctx.update(&v);
            n += 1;
        }
        Ok((hex::encode(ctx.finish().as_ref()), n))
    }

    /// Apply metrics, for the node's `/metrics`.
    pub fn metrics(&self) -> &BatchMetrics {
        &self.inner.metrics
    }

    /// Last log index + 1 of the durable current snapshot (0: none), for
    /// [`super::LogStore::with_snapshot_floor`].
    pub fn snapshot_floor(&self) -> Arc<AtomicU64> {
        self.inner.floor.clone()
    }

    /// Uncompressed size of the current snapshot (0: none yet): about the
    /// logical size of the state, every record once.
    pub fn current_snapshot_bytes(&self) -> u64 {
        let known = self.inner.snapshot_size.load(Ordering::Relaxed);
        if known != UNKNOWN_SIZE {
            return known;
        }
        let size = self.read_current_snapshot_size();
        self.inner.snapshot_size.store(size, Ordering::Relaxed);
        size
    }

    /// [`Self::current_snapshot_bytes`] from the pointer and the file.
    fn read_current_snapshot_size(&self) -> u64 {
        let Ok(Some(v)) = self.inner.meta.get(CURRENT_SNAPSHOT) else {
            return 0;
        };
        let Ok((_, name)) = open_sealed::<(SnapshotMeta, String)>(
            &self.inner.path,
            "the current snapshot pointer",
            &v,
        ) else {
            return 0;
        };
        snapshot::logical_size(&self.inner.snap_dir.join(name)).unwrap_or(0)
    }

    /// Whether this node is writing a snapshot (or a backup) now.
    pub fn snapshot_building(&self) -> bool {
        self.inner.capture.active()
    }

    /// Approximate bytes of log applied since the current snapshot's
    /// starting point (counted from this process's start: after a restart
    /// the log already behind the snapshot is not counted). What the
    /// snapshot trigger weighs against the snapshot's size.
    pub fn log_bytes_since_snapshot(&self) -> u64 {
        let applied = self.inner.applied_bytes.load(Ordering::Relaxed);
        applied.saturating_sub(self.inner.snapshot_mark.load(Ordering::Relaxed))
    }

    /// The current snapshot holds everything applied so far (called under
    /// the apply lock, by an install).
    fn mark_snapshot_point(&self) {
        let applied = self.inner.applied_bytes.load(Ordering::Relaxed);
        self.inner.snapshot_mark.store(applied, Ordering::Relaxed);
    }

    fn snapshot_path(&self, id: &str) -> PathBuf {
        self.inner.snap_dir.join(format!("snap-{id}.bin"))
    }

    /// Make `file` the current snapshot: durably, then drop the older
    /// files. The sync and the unlinks (a large file's can take a while)
    /// run on the blocking pool, not on an async worker.
    async fn set_current_snapshot(
        &self,
        meta: &SnapshotMeta,
        file: &Path,
    ) -> Result<(), StorageError> {
        // One change at a time: the files removed are those of the pointer
        // just written, never of one a concurrent build or install wrote.
        let _one = self.inner.current_lock.lock().await;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.inner
            .meta
            .insert(CURRENT_SNAPSHOT, sealed(&(meta.clone(), name.clone())))
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        flush_durably_async(&self.inner.db, &self.inner.durable)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(l) = meta.last_log_id {
            self.inner.floor.fetch_max(l.index + 1, Ordering::AcqRel);
        }
        let size = snapshot::logical_size(file).unwrap_or(0);
        self.inner.snapshot_size.store(size, Ordering::Relaxed);
        // Keep only the current snapshot.
        let dir = self.inner.snap_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with("snap-") && n != name {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        })
        .await;
        Ok(())
    }
}

fn read_applied(
    tree: &sled::Tree,
    path: &Path,
) -> Result<(Option<LogId>, StoredMembership), StoreError> {
    let applied = match tree.get(APPLIED).map_err(|e| sled_err(path, e))? {
        Some(v) => open_sealed::<Option<LogId>>(path, "the applied-state marker", &v)?,
        None => None,
    };
    let membership = match tree.get(MEMBERSHIP).map_err(|e| sled_err(path, e))? {
        Some(v) => open_sealed(path, "the applied membership", &v)?,
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

/// Records per sled batch when loading an incoming snapshot. sled 0.34
/// holds what a batch makes garbage until the batch ends: in batches of
/// 10,000 records a load took ~2.5 KB of memory per record whatever the
/// flushes (a 233 MB snapshot of 5.5M records: 16 GB, and the joining node
/// was OOM-killed); in batches of 1,000, 3M records take 250 MB, as fast.
const INSTALL_BATCH_RECORDS: usize = 1_000;

impl<A: Application> RaftSnapshotBuilder<TypeConfig> for StateMachineStore<A> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.inner.snap_dir.join(format!("build-{seq}.tmp"));
        let started = std::time::Instant::now();
        let (info, mark) = self.write_snapshot_at(&tmp).await?;
        let path = self.snapshot_path(&info.meta.snapshot_id);
        std::fs::rename(&tmp, &path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.set_current_snapshot(&info.meta, &path).await?;
        self.inner.snapshot_mark.store(mark, Ordering::Relaxed);
        tracing::info!(snapshot = %info.meta.snapshot_id, records = info.records, bytes = info.bytes, ms = started.elapsed().as_millis() as u64, "snapshot built");
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta: info.meta,
            snapshot: Box::new(file),
        })
    }
}

impl<A: Application> RaftStateMachine<TypeConfig> for StateMachineStore<A> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        read_applied(&self.tree(), &self.inner.path).map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = crate::types::Entry> + Send,
        I::IntoIter: Send,
    {
        self.apply_entries(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.snap_dir.join(format!("incoming-{seq}.tmp"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let old = self
            .inner
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(path);
        if let Some(old) = old {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        // Copy whatever file we were handed into the snapshot directory,
        // then load from that copy: the copy becomes the current snapshot.
        let mut file = (*snapshot).into_std().await;
        let final_path = self.snapshot_path(&meta.snapshot_id);
        let dest = final_path.with_extension("copy.tmp");
        let dest2 = dest.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(0))?;
            let mut out = std::fs::File::create(&dest2)?;
            std::io::copy(&mut file, &mut out)?;
            out.sync_all()
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(p) = self
            .inner
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = std::fs::remove_file(p);
        }
        let incoming = dest;
        // Not while a snapshot of the current tree is being written (its
        // copy-on-write record must only see that tree); same order as the
        // build: build lock, then apply lock.
        let _build = self.inner.build_lock.lock().await;
        let _guard = self.inner.apply_lock.lock().await;
        let old_gen = self.inner.generation.load(Ordering::Acquire);
        let new_gen = old_gen + 1;
        let db = self.inner.db.clone();
        let durable = self.inner.durable.clone();
        let expected = meta.clone();
        let path = incoming.clone();
        let new_tree = tokio::task::spawn_blocking(move || -> Result<sled::Tree, String> {
            let mut reader = Reader::open(&path).map_err(|e| e.to_string())?;
            if reader.meta.last_log_id != expected.last_log_id {
                return Err(format!(
                    "snapshot file is for {:?}, expected {:?}",
                    reader.meta.last_log_id, expected.last_log_id
                ));
            }
            let name = format!("sm.{new_gen}");
            let tree = db.open_tree(&name).map_err(|e| e.to_string())?;
            tree.clear().map_err(|e| e.to_string())?;
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            loop {
                match reader.next_record() {
                    Ok(Some((k, v))) => {
                        batch.insert(k, v);
                        n += 1;
                        if n.is_multiple_of(INSTALL_BATCH_RECORDS) {
                            tree.apply_batch(std::mem::take(&mut batch))
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = db.drop_tree(&name);
                        return Err(e.to_string());
                    }
                }
            }
            tree.apply_batch(batch).map_err(|e| e.to_string())?;
            flush_durably(&db, &durable).map_err(|e| e.to_string())?;
            Ok(tree)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(delay) = crate::fault::snapshot_switch_delay() {
            // The failover suite kills the node here: the new tree is
            // complete and durable, the generation pointer not yet switched.
            tracing::warn!(
                generation = new_gen,
                delay_ms = delay.as_millis() as u64,
                "TEST-ONLY: holding a snapshot install before the generation switch"
            );
            tokio::time::sleep(delay).await;
        }
        // Switch: one durable write of the generation pointer.
        self.inner
            .meta
            .insert(GEN, sealed(&new_gen))
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        flush_durably_async(&self.inner.db, &self.inner.durable)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = new_tree;
        self.inner.generation.store(new_gen, Ordering::Release);
        self.mark_snapshot_point();
        let _ = self.inner.db.drop_tree(format!("sm.{old_gen}"));
        let final_path = self.snapshot_path(&meta.snapshot_id);
        std::fs::rename(&incoming, &final_path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.set_current_snapshot(meta, &final_path).await?;
        tracing::info!(snapshot = %meta.snapshot_id, ms = started.elapsed().as_millis() as u64, "snapshot installed");
        if let Some(l) = meta.last_log_id {
            self.inner.app.installed(l.index);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(v) = self
            .inner
            .meta
            .get(CURRENT_SNAPSHOT)
            .map_err(|e| snap_err(ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        let (meta, name): (SnapshotMeta, String) =
            open_sealed(&self.inner.path, "the current snapshot pointer", &v)
                .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let path = self.inner.snap_dir.join(name);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "current snapshot file is missing; a new one will be built");
                Ok(None)
            }
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }
}
