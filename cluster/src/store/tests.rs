//! Storage tests: openraft's own conformance suite against the sled store,
//! plus damage detection and snapshot round trips.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder};

use super::*;
use crate::app::{Application, ApplyContext};
use crate::types::{Entry, Payload, Request, ResponsePayload, StorageError, TypeConfig};

/// A tiny key-value application: command = "key=value" (or "-key" to
/// delete), outcome = previous value.
#[derive(Debug, Default)]
pub(crate) struct Kv;

impl Application for Kv {
    fn apply(
        &self,
        _ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        command: &[u8],
    ) -> Result<Vec<u8>, sled::Error> {
        let s = String::from_utf8_lossy(command);
        if let Some(k) = s.strip_prefix('-') {
            let prev = txn.get(k.as_bytes())?.unwrap_or_default();
            txn.delete(k.as_bytes());
            return Ok(prev);
        }
        let (k, v) = s.split_once('=').unwrap_or((&s, ""));
        let prev = txn.get(k.as_bytes())?.unwrap_or_default();
        txn.put(k.as_bytes(), v.as_bytes().to_vec());
        Ok(prev)
    }

    /// A command ending in `!` keeps `kept <key>` for its retries.
    fn retry_outcome(
        &self,
        _txn: &mut Txn<'_>,
        command: &[u8],
        _outcome: &[u8],
    ) -> Option<Vec<u8>> {
        let s = String::from_utf8_lossy(command);
        let k = s.strip_suffix('!')?.split_once('=')?.0;
        Some(format!("kept {k}").into_bytes())
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<Kv>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore<Kv>), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let db = open_db(&dir.path().join("db"), 4 << 20)
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let log =
            LogStore::open(&db, dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm =
            StateMachineStore::open(&db, dir.path(), &dir.path().join("snapshots"), Arc::new(Kv))
                .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}

fn entry(term: u64, index: u64, cmd: &str, key: Option<&str>) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
        payload: openraft::EntryPayload::Normal(Request {
            time_ms: 1_000 + index,
            idempotency_key: key.map(str::to_string),
            payload: Payload::App(cmd.as_bytes().to_vec()),
        }),
    }
}

/// Reopen a database just dropped (see `open_all`).
fn reopen_db(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_db(path, 4 << 20) {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("db: {e}"),
        }
    }
}

/// Open the stores in `dir`. A database dropped a moment ago may still be
/// held by sled's background flusher thread (it lets go within its flush
/// interval), so a reopen waits for the file lock, bounded.
async fn open_all(dir: &std::path::Path) -> (sled::Db, LogStore, StateMachineStore<Kv>) {
    open_all_with(dir, Kv).await
}

/// [`open_all`] with another application.
async fn open_all_with<A: Application>(
    dir: &std::path::Path,
    app: A,
) -> (sled::Db, LogStore, StateMachineStore<A>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match open_db(&dir.join("db"), 4 << 20) {
            Ok(db) => break db,
            Err(e) if e.to_string().contains("lock") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("db: {e}"),
        }
    };
    let log = LogStore::open(&db, dir).expect("log");
    let sm = StateMachineStore::open(&db, dir, &dir.join("snapshots"), Arc::new(app)).expect("sm");
    (db, log, sm)
}

#[tokio::test]
async fn idempotency_key_applies_once_and_returns_the_first_outcome() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let out = sm
        .apply(vec![
            entry(1, 1, "a=1", Some("k1")),
            entry(1, 2, "a=2", Some("k1")),
            entry(1, 3, "a=3", None),
        ])
        .await
        .expect("apply");
    assert!(!out[0].deduplicated);
    assert!(out[1].deduplicated, "same key must not apply twice");
    assert_eq!(out[1].index, 1, "a duplicate reports the original entry");
    assert_eq!(
        out[2].payload,
        ResponsePayload::App(b"1".to_vec()),
        "a=2 never applied"
    );
    assert_eq!(sm.view().get(b"a").expect("get"), Some(b"3".to_vec()));
}

#[tokio::test]
async fn a_retry_is_answered_with_what_the_application_kept_of_the_outcome() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let out = sm
        .apply(vec![
            entry(1, 1, "b=old", None),
            entry(1, 2, "b=new!", Some("k")),
            entry(1, 3, "b=other!", Some("k")),
        ])
        .await
        .expect("apply");
    assert_eq!(
        out[1].payload,
        ResponsePayload::App(b"old".to_vec()),
        "the first answer is whole"
    );
    assert!(out[2].deduplicated);
    assert_eq!(out[2].index, 2);
    assert_eq!(out[2].payload, ResponsePayload::App(b"kept b".to_vec()));
    assert_eq!(sm.view().get(b"b").expect("get"), Some(b"new!".to_vec()));
}

fn request(cmd: &str, key: Option<&str>, time_ms: u64) -> Request {
    Request {
        time_ms,
        idempotency_key: key.map(str::to_string),
        payload: Payload::App(cmd.as_bytes().to_vec()),
    }
}

fn batch_entry(index: u64, time_ms: u64, reqs: Vec<Request>) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(Request {
            time_ms,
            idempotency_key: None,
            payload: Payload::Batch(reqs),
        }),
    }
}

#[tokio::test]
async fn a_batch_entry_gives_each_request_its_own_outcome_and_dedup() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let out = sm
        .apply(vec![batch_entry(
            1,
            5_000,
            vec![
                request("a=1", Some("k1"), 5_000),
                request("a=2", Some("k2"), 5_000),
                request("a=3", Some("k1"), 5_000),
            ],
        )])
        .await
        .expect("apply");
    let ResponsePayload::Batch(outcomes) = &out[0].payload else {
        panic!("expected batch outcomes, got {:?}", out[0]);
    };
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].payload, ResponsePayload::App(b"".to_vec()));
    assert_eq!(outcomes[1].payload, ResponsePayload::App(b"1".to_vec()));
    assert!(
        outcomes[2].deduplicated,
        "k1 twice in one batch applies once"
    );
    assert_eq!(outcomes[2].payload, outcomes[0].payload);
    assert_eq!(sm.view().get(b"a").expect("get"), Some(b"2".to_vec()));
    // A retry in a later entry, alone, still finds the batched outcome.
    let out = sm
        .apply(vec![entry(1, 2, "a=9", Some("k2"))])
        .await
        .expect("apply");
    assert!(out[0].deduplicated);
    assert_eq!(out[0].index, 1);
    // Nested batches are never built; one is ignored, on every node alike.
    let out = sm
        .apply(vec![batch_entry(
            3,
            5_001,
            vec![Request {
                time_ms: 5_001,
                idempotency_key: None,
                payload: Payload::Batch(vec![request("a=7", None, 5_001)]),
            }],
        )])
        .await
        .expect("apply");
    assert_eq!(
        out[0].payload,
        ResponsePayload::Batch(vec![crate::types::Response {
            index: 3,
            deduplicated: false,
            payload: ResponsePayload::None
        }])
    );
    assert_eq!(sm.view().get(b"a").expect("get"), Some(b"2".to_vec()));
}

#[tokio::test]
async fn idempotency_records_expire_after_the_retention_window() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let t0 = 10_000;
    sm.apply(vec![
        batch_entry(
            1,
            t0,
            vec![
                request("a=1", Some("old1"), t0),
                request("b=1", Some("old2"), t0),
            ],
        ),
        batch_entry(2, t0 + 1, vec![request("c=1", Some("young"), t0 + 1)]),
    ])
    .await
    .expect("apply");
    // Just inside the window of `old*`: nothing expires yet.
    let inside = t0 + super::state_machine::DEDUP_RETENTION_MS;
    let out = sm
        .apply(vec![batch_entry(
            3,
            inside,
            vec![request("a=2", Some("old1"), inside)],
        )])
        .await
        .expect("apply");
    let ResponsePayload::Batch(o) = &out[0].payload else {
        panic!("batch")
    };
    assert!(o[0].deduplicated, "still inside the retention window");
    // One ms later the first entry's keys are gone; the second entry's stay.
    let later = t0 + 1 + super::state_machine::DEDUP_RETENTION_MS;
    sm.apply(vec![batch_entry(
        4,
        later,
        vec![request("x=1", None, later)],
    )])
    .await
    .expect("apply");
    let out = sm
        .apply(vec![batch_entry(
            5,
            later,
            vec![
                request("a=3", Some("old1"), later),
                request("b=3", Some("old2"), later),
                request("c=3", Some("young"), later),
            ],
        )])
        .await
        .expect("apply");
    let ResponsePayload::Batch(o) = &out[0].payload else {
        panic!("batch")
    };
    assert!(
        !o[0].deduplicated && !o[1].deduplicated,
        "expired keys apply anew"
    );
    assert!(o[2].deduplicated, "a younger record is kept");
    assert_eq!(sm.view().get(b"a").expect("get"), Some(b"3".to_vec()));
    assert_eq!(sm.view().get(b"c").expect("get"), Some(b"1".to_vec()));
}

/// Pruning reads the expiry index a few records at a time; many expired
/// entries at once (more than one read's worth) all go, and the first
/// young one stops it.
#[tokio::test]
async fn many_expired_idempotency_records_are_pruned_in_one_pass() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let t0 = 10_000;
    let old: Vec<Entry> = (1..=40u64)
        .map(|i| {
            let key = format!("old{i}");
            batch_entry(i, t0 + i, vec![request("a=1", Some(&key), t0 + i)])
        })
        .collect();
    sm.apply(old).await.expect("apply old");
    let young_at = t0 + 1000;
    sm.apply(vec![batch_entry(
        41,
        young_at,
        vec![request("y=1", Some("young"), young_at)],
    )])
    .await
    .expect("apply young");
    // Every `old*` record is past the window, `young` is not.
    let later = t0 + 41 + super::state_machine::DEDUP_RETENTION_MS;
    sm.apply(vec![batch_entry(
        42,
        later,
        vec![request("x=1", None, later)],
    )])
    .await
    .expect("apply prune");
    let mut reqs: Vec<Request> = (1..=40u64)
        .map(|i| request("a=2", Some(&format!("old{i}")), later))
        .collect();
    reqs.push(request("y=2", Some("young"), later));
    let out = sm
        .apply(vec![batch_entry(43, later, reqs)])
        .await
        .expect("apply again");
    let ResponsePayload::Batch(o) = &out[0].payload else {
        panic!("batch")
    };
    assert!(
        o[..40].iter().all(|r| !r.deduplicated),
        "every expired key applies anew"
    );
    assert!(o[40].deduplicated, "the young record is kept");
}

/// A snapshot is the state as of its starting point although applies go
/// on while it is written (they used to wait for the whole write): keys
/// updated, deleted and created meanwhile appear with their old values or
/// not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_the_state_at_its_start_while_applies_go_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let n_keys: u64 = 20_000;
    let value = "v".repeat(100);
    let mut all: Vec<Entry> = Vec::new();
    for chunk in 0..n_keys / 500 {
        let entries: Vec<Entry> = (0..500)
            .map(|i| {
                let idx = chunk * 500 + i + 1;
                entry(1, idx, &format!("k{:05}={value}", idx - 1), None)
            })
            .collect();
        all.extend(entries.iter().cloned());
        sm.apply(entries).await.expect("apply initial state");
    }
    let path = dir.path().join("snap.bin");
    let (sm2, path2) = (sm.clone(), path.clone());
    let build = tokio::spawn(async move { sm2.write_snapshot_file(&path2).await });
    let mut idx = n_keys;
    while !build.is_finished() {
        idx += 1;
        let k = (idx * 7919) % n_keys;
        let cmd = match idx % 3 {
            0 => format!("k{k:05}=changed{idx}"),
            1 => format!("-k{k:05}"),
            _ => format!("new{idx}=x"),
        };
        let e = entry(1, idx, &cmd, None);
        all.push(e.clone());
        sm.apply(vec![e]).await.expect("apply during the build");
    }
    let info = build.await.expect("join").expect("build");
    let at = info
        .meta
        .last_log_id
        .map(|l| l.index)
        .expect("applied index");
    assert!(
        idx >= at + 2,
        "applies must go on while the snapshot is written (start at {at}, last apply {idx})"
    );
    // The same entries up to the snapshot's index, applied to a fresh store.
    let ref_dir = tempfile::tempdir().expect("tmp");
    let (_rdb, _rlog, mut reference) = open_all(ref_dir.path()).await;
    reference
        .apply(all.into_iter().take(at as usize).collect::<Vec<_>>())
        .await
        .expect("apply reference");
    let want: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = reference
        .tree()
        .iter()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("iter"))
        .collect();
    let mut reader = snapshot::Reader::open(&path).expect("open snapshot");
    let mut got = std::collections::BTreeMap::new();
    while let Some((k, v)) = reader.next_record().expect("read") {
        assert!(got.insert(k, v).is_none(), "a key appears twice");
    }
    assert_eq!(got.len(), want.len(), "record count");
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .take(5)
        .collect();
    assert!(differ.is_empty(), "snapshot differs at {differ:?}");
}

#[tokio::test]
async fn damaged_log_entry_is_detected_when_opening() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (db, mut log, _sm) = open_all(dir.path()).await;
        let entries = vec![
            entry(1, 1, "a=1", None),
            entry(1, 2, "b=2", None),
            entry(1, 3, "c=3", None),
        ];
        let tree = db.open_tree("raft").expect("tree");
        for e in &entries {
            let mut k = vec![b'l'];
            k.extend_from_slice(&e.log_id.index.to_be_bytes());
            tree.insert(k, seal(&encode(e))).expect("insert");
        }
        assert_eq!(log.try_get_log_entries(1..4).await.expect("read").len(), 3);
        // Flip one byte of entry 2.
        let mut k = vec![b'l'];
        k.extend_from_slice(&2u64.to_be_bytes());
        let mut v = tree.get(&k).expect("get").expect("present").to_vec();
        let last = v.len() - 1;
        v[last] ^= 0x01;
        tree.insert(&k, v).expect("insert");
        db.flush().expect("flush");
    }
    let db = reopen_db(&dir.path().join("db"));
    let err = LogStore::open(&db, dir.path()).expect_err("damage must be detected");
    let msg = err.to_string();
    assert!(
        msg.contains("log entry 2") && msg.contains("damaged"),
        "{msg}"
    );
}

#[tokio::test]
async fn log_gap_is_detected_when_opening() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (db, _log, _sm) = open_all(dir.path()).await;
        let tree = db.open_tree("raft").expect("tree");
        for e in [entry(1, 1, "a=1", None), entry(1, 3, "c=3", None)] {
            let mut k = vec![b'l'];
            k.extend_from_slice(&e.log_id.index.to_be_bytes());
            tree.insert(k, seal(&encode(&e))).expect("insert");
        }
        db.flush().expect("flush");
    }
    let db = reopen_db(&dir.path().join("db"));
    let err = LogStore::open(&db, dir.path()).expect_err("gap must be detected");
    assert!(err.to_string().contains("gap"), "{err}");
}

#[tokio::test]
async fn snapshot_round_trip_installs_identical_state() {
    let src = tempfile::tempdir().expect("tmp");
    let dst = tempfile::tempdir().expect("tmp");
    let (_db1, _log1, mut sm1) = open_all(src.path()).await;
    let entries: Vec<_> = (1..=500)
        .map(|i| entry(1, i, &format!("k{i}=v{i}"), Some(&format!("id{i}"))))
        .collect();
    sm1.apply(entries).await.expect("apply");
    let mut builder = sm1.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.expect("build");
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(500));

    let (_db2, _log2, mut sm2) = open_all(dst.path()).await;
    let mut incoming = sm2.begin_receiving_snapshot().await.expect("begin");
    let mut source = snap.snapshot;
    tokio::io::copy(&mut *source, &mut *incoming)
        .await
        .expect("copy");
    sm2.install_snapshot(&snap.meta, incoming)
        .await
        .expect("install");
    let (applied, _) = sm2.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(500));
    let a = sm1.view().scan(b"", None, 10_000).expect("scan");
    let b = sm2.view().scan(b"", None, 10_000).expect("scan");
    assert_eq!(a.len(), 500);
    assert_eq!(a, b);
    // Dedup records travel with the snapshot: a retry after install is still deduplicated.
    let out = sm2
        .apply(vec![entry(1, 501, "k1=changed", Some("id1"))])
        .await
        .expect("apply");
    assert!(out[0].deduplicated);
    // And the state survives reopening (the generation switch is durable).
    drop(sm2);
    drop(_log2);
    drop(_db2);
    let (_db3, _log3, mut sm3) = open_all(dst.path()).await;
    assert_eq!(
        sm3.applied_state()
            .await
            .expect("applied")
            .0
            .map(|l| l.index),
        Some(501)
    );
    assert_eq!(sm3.view().get(b"k2").expect("get"), Some(b"v2".to_vec()));
    assert!(sm3.get_current_snapshot().await.expect("current").is_some());
}

#[tokio::test]
async fn damaged_snapshot_is_refused_and_state_is_unchanged() {
    let src = tempfile::tempdir().expect("tmp");
    let dst = tempfile::tempdir().expect("tmp");
    let (_db1, _log1, mut sm1) = open_all(src.path()).await;
    sm1.apply(
        (1..=50)
            .map(|i| entry(1, i, &format!("k{i}=v"), None))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("apply");
    let snap = sm1
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    let (_db2, _log2, mut sm2) = open_all(dst.path()).await;
    sm2.apply(vec![entry(1, 1, "mine=1", None)])
        .await
        .expect("apply");
    let mut incoming = sm2.begin_receiving_snapshot().await.expect("begin");
    let mut bytes = Vec::new();
    let mut source = snap.snapshot;
    tokio::io::AsyncReadExt::read_to_end(&mut *source, &mut bytes)
        .await
        .expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    tokio::io::AsyncWriteExt::write_all(&mut *incoming, &bytes)
        .await
        .expect("write");
    assert!(sm2.install_snapshot(&snap.meta, incoming).await.is_err());
    assert_eq!(sm2.view().get(b"mine").expect("get"), Some(b"1".to_vec()));
    assert_eq!(sm2.view().get(b"k1").expect("get"), None);
}

/// Pruning of idempotency records must not depend on how entries were
/// grouped into apply batches (which differs between leader and followers).
#[tokio::test]
async fn dedup_pruning_is_the_same_whatever_the_apply_batches() {
    let ret = super::state_machine::DEDUP_RETENTION_MS;
    let entries: Vec<Entry> = (1..=40u64)
        .map(|i| {
            // Times jump across the retention window half-way.
            let t = if i <= 20 {
                1_000 + i
            } else {
                1_000 + ret + i - 18
            };
            batch_entry(
                i,
                t,
                vec![request(&format!("k{i}=v"), Some(&format!("key{i}")), t)],
            )
        })
        .collect();
    let one = tempfile::tempdir().expect("tmp");
    let many = tempfile::tempdir().expect("tmp");
    let (_d1, _l1, mut sm1) = open_all(one.path()).await;
    let (_d2, _l2, mut sm2) = open_all(many.path()).await;
    sm1.apply(entries.clone()).await.expect("apply");
    for chunk in entries.chunks(3) {
        sm2.apply(chunk.to_vec()).await.expect("apply");
    }
    // Retry every key: the same ones must still be remembered on both.
    let t = 1_000 + ret + 30;
    let retry: Vec<Request> = (1..=40u64)
        .map(|i| request(&format!("k{i}=again"), Some(&format!("key{i}")), t))
        .collect();
    let a = sm1
        .apply(vec![batch_entry(41, t, retry.clone())])
        .await
        .expect("apply");
    let b = sm2
        .apply(vec![batch_entry(41, t, retry)])
        .await
        .expect("apply");
    assert_eq!(a, b, "pruning depended on the apply batches");
}

#[tokio::test]
async fn no_purge_goes_beyond_the_durable_snapshot() {
    use openraft::storage::RaftLogStorage;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("tmp");
    let (db, log, _sm) = open_all(dir.path()).await;
    let floor = Arc::new(AtomicU64::new(0));
    let mut log = log.with_snapshot_floor(floor.clone());
    let entries: Vec<Entry> = (1..=5).map(|i| entry(1, i, "k=v", None)).collect();
    let tree = db.open_tree("raft").expect("tree");
    for e in &entries {
        let mut k = vec![b'l'];
        k.extend_from_slice(&e.log_id.index.to_be_bytes());
        tree.insert(k, seal(&encode(e))).expect("insert");
    }
    // openraft purges what a snapshot covers before the state machine has
    // installed it: the purge waits.
    log.purge(entries[2].log_id).await.expect("purge");
    assert_eq!(log.try_get_log_entries(1..6).await.expect("read").len(), 5);
    assert_eq!(
        log.get_log_state().await.expect("state").last_purged_log_id,
        None
    );
    log.apply_deferred_purge().await.expect("still waiting");
    assert_eq!(log.try_get_log_entries(1..6).await.expect("read").len(), 5);
    // The snapshot up to index 3 is durable: the purge happens.
    floor.store(4, Ordering::Release);
    log.apply_deferred_purge().await.expect("purge now");
    assert_eq!(log.try_get_log_entries(4..6).await.expect("read").len(), 2);
    assert_eq!(
        log.get_log_state().await.expect("state").last_purged_log_id,
        Some(entries[2].log_id)
    );
    // A purge within the snapshot is done at once.
    log.purge(entries[3].log_id).await.expect("purge");
    assert_eq!(
        log.get_log_state().await.expect("state").last_purged_log_id,
        Some(entries[2].log_id),
        "index 4 is beyond the snapshot (floor 4 = up to index 3)"
    );
    floor.store(6, Ordering::Release);
    log.purge(entries[4].log_id).await.expect("purge");
    assert_eq!(
        log.get_log_state().await.expect("state").last_purged_log_id,
        Some(entries[4].log_id)
    );
}

#[tokio::test]
async fn a_former_leader_restarts_without_its_leadership_and_still_opens() {
    use crate::types::Vote;
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().expect("tmp");
    let me = 7;
    {
        let (_db, mut log, _sm) = open_all(dir.path()).await;
        let mut led = Vote::new(4, me);
        led.commit();
        log.save_vote(&led).await.expect("vote");
        log.raise_watermark(None).await.expect("watermark");
        // Someone else's leadership is left alone.
        assert!(!log.forget_own_leadership(me + 1).expect("other"));
        assert!(log.forget_own_leadership(me).expect("demote"));
        let stored = log.stored_vote().expect("read").expect("a vote");
        assert_eq!(stored, Vote::new(4, me));
        assert!(!stored.is_committed());
        // Idempotent: nothing left to forget.
        assert!(!log.forget_own_leadership(me).expect("again"));
    }
    // The durability watermark (which saw the committed vote) accepts the
    // demoted one when the store is opened again.
    let db = reopen_db(&dir.path().join("db"));
    let log = LogStore::open(&db, dir.path()).expect("reopen");
    log.watermark()
        .check(log.stored_vote().expect("vote"), None, None)
        .expect("demoted vote passes the watermark check");
    // A vote of an older term still does not.
    assert!(
        log.watermark()
            .check(Some(Vote::new(3, me)), None, None)
            .is_err()
    );
}

mod defrag;
mod journal;
mod snapshot_format;

fn put_log_entries(tree: &sled::Tree, entries: &[Entry]) {
    for e in entries {
        let mut k = vec![b'l'];
        k.extend_from_slice(&e.log_id.index.to_be_bytes());
        tree.insert(k, seal(&encode(e))).expect("insert");
    }
}

fn stored_log_indexes(tree: &sled::Tree) -> Vec<u64> {
    tree.scan_prefix(b"l")
        .map(|item| {
            let (k, _) = item.expect("read");
            u64::from_be_bytes(k[1..9].try_into().expect("key"))
        })
        .collect()
}

/// A purge is its durable marker: the log it reports is purged at once,
/// and the entries are deleted in the background (not in openraft's core
/// loop, where a leader's heartbeats wait for it).
#[tokio::test]
async fn a_purge_takes_effect_at_once_and_its_entries_are_deleted_after() {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().expect("tmp");
    let (db, mut log, _sm) = open_all(dir.path()).await;
    let tree = db.open_tree("raft").expect("tree");
    let entries: Vec<Entry> = (1..=3_000).map(|i| entry(1, i, "k=v", None)).collect();
    put_log_entries(&tree, &entries);
    log.purge(entries[2_499].log_id).await.expect("purge");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(entries[2_499].log_id));
    assert_eq!(state.last_log_id, Some(entries[2_999].log_id));
    // Whatever is still on disk, nothing at or below the marker is read.
    let read = log.try_get_log_entries(0..3_001).await.expect("read");
    assert_eq!(read.len(), 500);
    assert_eq!(read[0].log_id.index, 2_501);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stored_log_indexes(&tree).first() != Some(&2_501) {
        assert!(
            std::time::Instant::now() < deadline,
            "purged entries were never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stored_log_indexes(&tree).len(), 500);
    // Purging the whole log: its last id is the marker's, at once.
    log.purge(entries[2_999].log_id).await.expect("purge all");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(entries[2_999].log_id));
    assert_eq!(state.last_purged_log_id, Some(entries[2_999].log_id));
    assert_eq!(log.last_index_or_purged().expect("last"), Some(3_000));
    assert!(
        log.try_get_log_entries(0..3_001)
            .await
            .expect("read")
            .is_empty()
    );
}

/// A crash between the purge marker and the deletion of its entries: the
/// log opens (before, its first entry had to follow the marker) and the
/// deletion is finished then.
#[tokio::test]
async fn an_interrupted_purge_is_finished_when_the_log_is_opened() {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().expect("tmp");
    let entries: Vec<Entry> = (1..=10).map(|i| entry(1, i, "k=v", None)).collect();
    {
        let (db, _log, _sm) = open_all(dir.path()).await;
        let tree = db.open_tree("raft").expect("tree");
        put_log_entries(&tree, &entries);
        // The marker without its deletions, as a crash can leave them.
        tree.insert(b"m/purged", sealed(&entries[5].log_id))
            .expect("marker");
        db.flush().expect("flush");
    }
    let db = reopen_db(&dir.path().join("db"));
    let mut log = LogStore::open(&db, dir.path()).expect("the log opens");
    let tree = db.open_tree("raft").expect("tree");
    assert_eq!(stored_log_indexes(&tree), vec![7, 8, 9, 10]);
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(entries[5].log_id));
    assert_eq!(state.last_log_id, Some(entries[9].log_id));
}
