//! Apply atomicity: the journal that completes a batch a crash cut short,
//! chunked applies, and readers that see whole batches.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;

use super::super::journal::RECORD;
use super::super::*;
use super::{Kv, batch_entry, entry, open_all, reopen_db, request};
use crate::types::Entry;

/// The stored journal record (the last apply batch).
fn journal_record(db: &sled::Db) -> Vec<u8> {
    db.open_tree("journal")
        .expect("tree")
        .get(RECORD)
        .expect("read")
        .expect("a record")
        .to_vec()
}

/// Every key and value of the state tree.
fn contents(sm: &StateMachineStore<Kv>) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    sm.tree()
        .iter()
        .map(|item| {
            let (k, v) = item.expect("read");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[tokio::test]
async fn an_apply_batch_cut_short_by_a_crash_is_completed_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let (before, after) = {
        let (_db, _log, mut sm) = open_all(dir.path()).await;
        sm.apply(vec![
            entry(1, 1, "a=1", Some("k1")),
            entry(1, 2, "b=2", Some("k2")),
            entry(1, 3, "x=9", None),
        ])
        .await
        .expect("apply 1-3");
        let before = contents(&sm);
        sm.apply(vec![
            batch_entry(
                4,
                2_000,
                vec![
                    request("a=10", Some("k4"), 2_000),
                    request("-b", Some("k5"), 2_000),
                    request("c=3", Some("k6"), 2_000),
                ],
            ),
            entry(1, 5, "d=4", Some("k7")),
        ])
        .await
        .expect("apply 4-5");
        let after = contents(&sm);
        // What a crash part-way through the last batch's plain inserts
        // leaves (sled recovers a prefix of its log): the journal record
        // of the batch, some of its writes, and `m/applied` still at 3.
        let changed: Vec<Vec<u8>> = after
            .keys()
            .chain(before.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(
            changed.len() >= 6,
            "the batch changes many keys: {changed:?}"
        );
        let tree = sm.tree();
        for k in changed.iter().skip(changed.len() / 2) {
            match before.get(k) {
                Some(v) => tree.insert(k.as_slice(), v.as_slice()).map(|_| ()),
                None => tree.remove(k.as_slice()).map(|_| ()),
            }
            .expect("revert");
        }
        tree.insert(
            b"m/applied",
            before
                .get(b"m/applied".as_slice())
                .expect("applied")
                .clone(),
        )
        .expect("revert applied");
        assert_ne!(contents(&sm), after);
        assert_eq!(sm.last_applied().expect("read").map(|l| l.index), Some(3));
        (before, after)
    };
    let (_db, _log, sm) = open_all(dir.path()).await;
    assert_eq!(
        sm.last_applied().expect("read").map(|l| l.index),
        Some(5),
        "the interrupted batch is completed, not left to be applied again"
    );
    assert_eq!(contents(&sm), after, "state is exactly as after the batch");
    assert_ne!(before, after);
    assert_eq!(sm.view().get(b"a").expect("a"), Some(b"10".to_vec()));
    assert_eq!(sm.view().get(b"b").expect("b"), None);
}

#[tokio::test]
async fn a_completed_batch_is_not_replayed_over_later_writes() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (_db, _log, mut sm) = open_all(dir.path()).await;
        sm.apply(vec![entry(1, 1, "a=1", None)])
            .await
            .expect("apply");
        // A snapshot install (or restore) may write the tree outside apply;
        // the journal of an applied batch must not undo that.
        sm.tree().insert(b"a/a", b"2".as_slice()).expect("write");
    }
    let (_db, _log, sm) = open_all(dir.path()).await;
    assert_eq!(sm.view().get(b"a").expect("a"), Some(b"2".to_vec()));
}

#[tokio::test]
async fn a_long_run_of_entries_is_applied_in_bounded_chunks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (db, _log, mut sm) = open_all(dir.path()).await;
    let value = "v".repeat(100);
    let entries: Vec<Entry> = (1..=600)
        .map(|i| entry(1, i, &format!("k{i}={value}"), None))
        .collect();
    let out = sm.apply(entries).await.expect("apply");
    assert_eq!(out.len(), 600, "one response per entry, in order");
    assert!(out.iter().enumerate().all(|(i, r)| r.index == i as u64 + 1));
    assert_eq!(sm.last_applied().expect("read").map(|l| l.index), Some(600));
    assert_eq!(
        sm.view().get(b"k1").expect("get"),
        Some(value.clone().into_bytes())
    );
    assert_eq!(
        sm.view().get(b"k600").expect("get"),
        Some(value.into_bytes())
    );
    // The journal holds only the last chunk (600 = 256 + 256 + 88 entries),
    // not the whole run: ~10 KB rather than ~70 KB.
    let record = journal_record(&db);
    assert!(
        record.len() < 20_000,
        "journal record of {} bytes",
        record.len()
    );
}

#[tokio::test]
async fn a_damaged_apply_journal_is_reported_when_opening() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (db, _log, mut sm) = open_all(dir.path()).await;
        sm.apply(vec![entry(1, 1, "a=1", None)])
            .await
            .expect("apply");
        let mut record = journal_record(&db);
        let last = record.len() - 1;
        record[last] ^= 0xff;
        db.open_tree("journal")
            .expect("tree")
            .insert(RECORD, record)
            .expect("write");
        db.flush().expect("flush");
    }
    let db = reopen_db(&dir.path().join("db"));
    let err = StateMachineStore::open(&db, dir.path(), &dir.path().join("snapshots"), Arc::new(Kv))
        .expect_err("a damaged journal must not be trusted or ignored");
    let msg = err.to_string();
    assert!(
        msg.contains("is damaged") && msg.contains("checksum mismatch in the apply journal"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_whole_apply_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_db, _log, mut sm) = open_all(dir.path()).await;
    let view = sm.view();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each batch sets x and y to the same new value, x first (key order).
    // A reader that reads x and then y must never find y behind x.
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let x = view.get(b"x").expect("x").unwrap_or_default();
                let y = view.get(b"y").expect("y").unwrap_or_default();
                assert!(
                    y >= x,
                    "saw half a batch: x={} y={}",
                    String::from_utf8_lossy(&x),
                    String::from_utf8_lossy(&y)
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 1..=2_000u64 {
        let v = format!("{i:08}");
        sm.apply(vec![batch_entry(
            i,
            1_000 + i,
            vec![
                request(&format!("x={v}"), None, 1_000 + i),
                request(&format!("y={v}"), None, 1_000 + i),
            ],
        )])
        .await
        .expect("apply");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader saw only whole batches");
    assert!(reads > 0);
}
