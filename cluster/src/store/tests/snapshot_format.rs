//! Snapshot file formats: version 1 (plain) and version 2 (compressed)
//! hold the same data, verify alike, and damage to either is found.

use super::*;
use crate::store::snapshot::{self, VERSION, VERSION_DEFLATE};

/// [`Kv`] whose snapshots are compressed (as the node's application once
/// the cluster's log version allows).
#[derive(Debug, Default)]
struct KvDeflate;

impl Application for KvDeflate {
    fn apply(
        &self,
        ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        cmd: &[u8],
    ) -> Result<Vec<u8>, sled::Error> {
        Kv.apply(ctx, txn, cmd)
    }
    fn snapshot_format(&self, _state: &StateView) -> u32 {
        VERSION_DEFLATE
    }
}

fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let k = format!("a/cm/group-{:06}/user-{:06}", i / 20, i);
            (k.into_bytes(), format!("member since {i}").into_bytes())
        })
        .collect()
}

fn write(
    path: &std::path::Path,
    version: u32,
    recs: &[(Vec<u8>, Vec<u8>)],
) -> snapshot::SnapshotInfo {
    let meta = crate::types::SnapshotMeta::default();
    let it = recs.iter().cloned().map(Ok);
    snapshot::write_as(path, &meta, it, version).expect("write")
}

#[test]
fn both_formats_hold_the_same_data_and_the_compressed_one_is_smaller() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = records(20_000);
    let (p1, p2) = (dir.path().join("v1"), dir.path().join("v2"));
    let (i1, i2) = (
        write(&p1, VERSION, &recs),
        write(&p2, VERSION_DEFLATE, &recs),
    );
    assert_eq!(i1.bytes, std::fs::metadata(&p1).expect("stat").len());
    assert_eq!(i2.bytes, std::fs::metadata(&p2).expect("stat").len());
    assert_eq!(i1.logical_bytes, i1.bytes);
    // The same logical bytes (but for the version number), so the same size.
    assert_eq!(i2.logical_bytes, i1.logical_bytes);
    assert!(
        i2.bytes * 3 < i1.bytes,
        "{} B compressed, {} B plain",
        i2.bytes,
        i1.bytes
    );
    assert_eq!(snapshot::logical_size(&p1).expect("size"), i1.bytes);
    assert_eq!(snapshot::logical_size(&p2).expect("size"), i2.logical_bytes);
    for (p, info) in [(&p1, &i1), (&p2, &i2)] {
        let v = snapshot::verify(p).expect("verify");
        assert_eq!(
            (v.records, v.bytes, v.logical_bytes),
            (20_000, info.bytes, info.logical_bytes)
        );
        assert_eq!(v.sha256, info.sha256);
        let mut r = snapshot::Reader::open(p).expect("open");
        let mut back = Vec::new();
        while let Some(kv) = r.next_record().expect("record") {
            back.push(kv);
        }
        assert_eq!(back, recs);
    }
}

#[test]
fn a_damaged_compressed_snapshot_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good");
    write(&good, VERSION_DEFLATE, &records(5_000));
    let bytes = std::fs::read(&good).expect("read");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte in the stream", {
            let mut b = bytes.clone();
            b[bytes.len() / 2] ^= 0x5a;
            b
        }),
        ("a flipped byte in the checksum", {
            let mut b = bytes.clone();
            let last = b.len() - 1;
            b[last] ^= 1;
            b
        }),
        ("a wrong length in the trailer", {
            let mut b = bytes.clone();
            let at = b.len() - 40;
            b[at] ^= 1;
            b
        }),
        ("cut short", bytes[..bytes.len() - 100].to_vec()),
        ("cut inside the trailer", bytes[..bytes.len() - 20].to_vec()),
        ("a byte appended", [bytes.clone(), vec![0]].concat()),
        ("an unknown version", {
            let mut b = bytes.clone();
            b[8] = 9;
            b
        }),
    ];
    for (what, b) in cases {
        let p = dir.path().join("bad");
        std::fs::write(&p, &b).expect("write");
        assert!(snapshot::verify(&p).is_err(), "{what}: accepted");
    }
}

#[tokio::test]
async fn a_compressed_snapshot_installs_the_same_state_on_another_node() {
    let src = tempfile::tempdir().expect("tmp");
    let dst = tempfile::tempdir().expect("tmp");
    let (_db1, _log1, mut sm1) = open_all_with(src.path(), KvDeflate).await;
    let entries: Vec<_> = (1..=2_000)
        .map(|i| entry(1, i, &format!("key-{i:06}=value of key {i}"), None))
        .collect();
    sm1.apply(entries).await.expect("apply");
    let snap = sm1
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    // Compressed on disk; the size reported is the data's.
    let mut file = Vec::new();
    let mut source = snap.snapshot;
    tokio::io::AsyncReadExt::read_to_end(&mut *source, &mut file)
        .await
        .expect("read");
    assert_eq!(&file[8..12], &VERSION_DEFLATE.to_le_bytes());
    let logical = sm1.current_snapshot_bytes();
    assert!(
        logical > 2 * file.len() as u64,
        "{logical} B of data in {} B",
        file.len()
    );
    // A node that writes plain snapshots loads it all the same.
    let (_db2, _log2, mut sm2) = open_all(dst.path()).await;
    let mut incoming = sm2.begin_receiving_snapshot().await.expect("begin");
    tokio::io::AsyncWriteExt::write_all(&mut *incoming, &file)
        .await
        .expect("write");
    sm2.install_snapshot(&snap.meta, incoming)
        .await
        .expect("install");
    let a = sm1.view().scan(b"", None, 10_000).expect("scan");
    let b = sm2.view().scan(b"", None, 10_000).expect("scan");
    assert_eq!(a.len(), 2_000);
    assert_eq!(a, b);
    assert_eq!(sm2.current_snapshot_bytes(), logical);
}
