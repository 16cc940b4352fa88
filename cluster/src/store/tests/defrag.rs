//! `enclave defrag`: the copy holds exactly what the store held, in less
//! space; a store in use is refused; a crash at any step leaves a whole
//! store behind.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::defrag::{defrag, recover_interrupted};
use super::reopen_db;

type Trees = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

/// Every tree's records.
fn contents(db: &sled::Db) -> Trees {
    let mut out = Trees::new();
    for name in db.tree_names() {
        let t = db.open_tree(&name).expect("tree");
        let records = t
            .iter()
            .map(|kv| {
                let (k, v) = kv.expect("record");
                (k.to_vec(), v.to_vec())
            })
            .collect();
        out.insert(name.to_vec(), records);
    }
    out
}

/// A store that has seen what a node's store sees: a log appended and
/// purged, state records written and rewritten.
fn churned_store(store: &Path) -> Trees {
    let db = reopen_db(store);
    let log = db.open_tree("raft").expect("raft");
    let state = db.open_tree("sm.0").expect("sm");
    for i in 0u64..6_000 {
        log.insert(i.to_be_bytes(), vec![b'e'; 600])
            .expect("append");
        if i >= 1_000 {
            log.remove((i - 1_000).to_be_bytes()).expect("purge");
        }
        for round in 0..3u8 {
            state
                .insert(format!("a/k{:05}", i % 2_000), vec![round; 90])
                .expect("state");
        }
    }
    db.open_tree("meta")
        .expect("meta")
        .insert("gen", &b"0"[..])
        .expect("meta");
    db.flush().expect("flush");
    let before = contents(&db);
    drop((log, state, db));
    before
}

#[test]
fn defrag_keeps_every_record_and_gives_space_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let before = churned_store(&store);
    // Wait until the store is free (sled's flusher lets go of the lock).
    drop(reopen_db(&store));
    let mut calls = Vec::new();
    let r = loop {
        match defrag(&store, &mut |done, total| calls.push((done, total))) {
            Err(e) if e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            r => break r.expect("defrag"),
        }
    };
    assert_eq!(
        r.records,
        before.values().map(|t| t.len() as u64).sum::<u64>()
    );
    assert!(r.bytes_after < r.bytes_before, "no space given back: {r:?}");
    assert_eq!(
        r.trees.iter().find(|t| t.name == "raft").map(|t| t.records),
        Some(1_000),
        "{r:?}"
    );
    let last = calls.last().copied().expect("progress");
    assert_eq!(last, (r.records, r.records), "progress ends at the total");
    // Nothing left beside the store, and the store holds the same records.
    assert!(!dir.path().join("store.old").exists());
    assert!(!dir.path().join("store.defrag").exists());
    let db = reopen_db(&store);
    assert_eq!(contents(&db), before);
}

#[test]
fn a_store_in_use_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let before = churned_store(&store);
    let db = reopen_db(&store);
    let err = defrag(&store, &mut |_, _| {}).expect_err("the store is open");
    assert!(err.to_string().contains("lock"), "{err}");
    assert!(!dir.path().join("store.defrag").exists());
    assert_eq!(contents(&db), before);
}

#[test]
fn a_crash_at_any_step_leaves_a_whole_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("store");
    let before = churned_store(&store);
    let old = dir.path().join("store.old");
    let copy = dir.path().join("store.defrag");
    let cp = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir").flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    };
    // Crash while the copy was being written: the partial copy goes.
    cp(&store, &copy);
    std::fs::write(copy.join("db"), b"half").expect("partial");
    assert!(recover_interrupted(&store).expect("recover").is_some());
    assert!(!copy.exists());
    // Crash between the two renames: the original comes back.
    std::fs::rename(&store, &old).expect("rename");
    cp(&old, &copy);
    assert!(recover_interrupted(&store).expect("recover").is_some());
    assert!(store.exists() && !old.exists() && !copy.exists());
    assert_eq!(contents(&reopen_db(&store)), before);
    // Crash after the swap: the original left behind goes.
    cp(&store, &old);
    assert!(recover_interrupted(&store).expect("recover").is_some());
    assert!(!old.exists());
    // Nothing to do on a clean data dir.
    assert_eq!(recover_interrupted(&store).expect("recover"), None);
    assert_eq!(contents(&reopen_db(&store)), before);
}
