//! Files in the domain: recording checks the policy and quota, a message
//! can carry only a file its sender may read, access follows conversation
//! membership, recall deletes the last reference's file, sweeps delete
//! uploads never sent and files past retention; refusals change nothing.

use super::files::{BlobRecord, CHUNK_SIZE, FileKind, FilePolicy};
use super::store::StoreExt;
use super::tests::{ctx, ok, refused, seeded};
use super::*;

const T0: u64 = 10_000_000;

pub(super) fn rec(id: u8, uploader: &str, size: u64, class: &str, kind: FileKind) -> BlobRecord {
    BlobRecord {
        id: format!("f{:032x}", id),
        name: format!("file-{id}.bin"),
        kind,
        mime: "application/octet-stream".into(),
        class: class.into(),
        size,
        sha256: [id; 32],
        chunks: (0..size.div_ceil(CHUNK_SIZE))
            .map(|i| [id.wrapping_add(i as u8 + 1); 32])
            .collect(),
        uploader: uploader.into(),
        created_ms: 0,
        width: 0,
        height: 0,
        thumb: None,
        duration_ms: 0,
    }
}

fn record(s: &mut MemStore, t: u64, f: &BlobRecord) {
    ok(s, t, Command::RecordFile { file: f.clone() });
}

fn send_file(actor: &str, to: &str, id: &str) -> Command {
    Command::Send {
        actor: actor.into(),
        target: Target::Direct(to.into()),
        text: String::new(),
        mentions: vec![],
        mention_all: false,
        reply_to: None,
        file: Some(id.into()),
    }
}

fn readable(s: &MemStore, u: &str, id: &str) -> Result<(), Code> {
    query::file_for(s, u, id)
        .expect("storage")
        .map(|_| ())
        .map_err(|r| r.code)
}

#[test]
fn files_follow_messages_membership_recall_and_policy() {
    let mut s = seeded();
    let f = rec(1, "ann", 5 * CHUNK_SIZE + 7, "other", FileKind::File);
    record(&mut s, T0, &f);
    assert_eq!(query::file_usage(&s, "ann").expect("usage"), f.size);
    // Recorded twice, wrong chunk count, bad ids, inactive uploader: refused.
    assert_eq!(
        refused(&mut s, T0, Command::RecordFile { file: f.clone() }),
        Code::AlreadyExists
    );
    let mut bad = rec(2, "ann", 10, "other", FileKind::File);
    bad.chunks.push([0; 32]);
    assert_eq!(
        refused(&mut s, T0, Command::RecordFile { file: bad }),
        Code::InvalidArgument
    );
    let mut bad = rec(2, "ann", 10, "other", FileKind::File);
    bad.id = "../etc".into();
    assert_eq!(
        refused(&mut s, T0, Command::RecordFile { file: bad }),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::RecordFile {
                file: rec(2, "nobody", 10, "other", FileKind::File)
            }
        ),
        Code::NotFound
    );
    // An app may not record as a member (nor a member as an app).
    let app = rec(3, "app:7", 10, "other", FileKind::File);
    let out = apply(
        &mut s,
        &Ctx {
            time_ms: T0,
            app: None,
        },
        &Command::RecordFile { file: app },
    )
    .expect("storage");
    assert_eq!(out.0.map_err(|r| r.code), Err(Code::Forbidden));
    // Types and kinds: executables refused by default; an image needs dims.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::RecordFile {
                file: rec(4, "ann", 10, "executable", FileKind::File)
            }
        ),
        Code::TypeNotAllowed
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::RecordFile {
                file: rec(4, "ann", 10, "image", FileKind::Image)
            }
        ),
        Code::InvalidArgument
    );

    // Only the uploader may read it until it is sent.
    assert_eq!(readable(&s, "ann", &f.id), Ok(()));
    assert_eq!(readable(&s, "bob", &f.id), Err(Code::Forbidden));
    // Bob cannot send what he cannot read.
    assert_eq!(
        refused(&mut s, T0, send_file("bob", "cai", &f.id)),
        Code::NotFound
    );
    let m = match ok(&mut s, T0 + 1, send_file("ann", "bob", &f.id)) {
        Done::Message(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(m.file.as_ref().map(|r| r.id.as_str()), Some(f.id.as_str()));
    assert_eq!(readable(&s, "bob", &f.id), Ok(()));
    assert_eq!(readable(&s, "cai", &f.id), Err(Code::Forbidden));
    // Bob forwards it to cai: a second reference.
    let fwd = match ok(&mut s, T0 + 2, send_file("bob", "cai", &f.id)) {
        Done::Message(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(readable(&s, "cai", &f.id), Ok(()));
    // Recalling the first message keeps the file (the forward carries it),
    // but ann-bob's conversation no longer does.
    ok(
        &mut s,
        T0 + 3,
        Command::Recall {
            actor: "ann".into(),
            conv: m.conv.clone(),
            seq: m.seq,
        },
    );
    assert!(query::file(&s, &f.id).expect("get").is_some());
    assert_eq!(readable(&s, "cai", &f.id), Ok(()));
    // Recalling the last reference deletes the file for everyone.
    ok(
        &mut s,
        T0 + 4,
        Command::Recall {
            actor: "bob".into(),
            conv: fwd.conv.clone(),
            seq: fwd.seq,
        },
    );
    assert_eq!(readable(&s, "ann", &f.id), Err(Code::NotFound));
    assert_eq!(query::file_usage(&s, "ann").expect("usage"), 0);
    assert!(
        s.scan(keys::CHUNK_USERS, None, 10)
            .expect("scan")
            .is_empty()
    );
    let msgs = query::messages(
        &s,
        &ConvMember {
            joined_event: 0,
            read_seq: 0,
            delivered_seq: 0,
        },
        &m.conv,
        0,
        10,
    )
    .expect("msgs");
    assert!(msgs.iter().all(|m| m.file.is_none()));

    // Quota and size from the policy (secadmin).
    let p = FilePolicy {
        user_quota_bytes: 100,
        max_file_bytes: 60,
        ..FilePolicy::default()
    };
    ok(&mut s, T0 + 5, Command::SetFilePolicy { policy: p });
    assert_eq!(
        refused(
            &mut s,
            T0 + 5,
            Command::RecordFile {
                file: rec(5, "ann", 61, "other", FileKind::File)
            }
        ),
        Code::TooLarge
    );
    record(&mut s, T0 + 5, &rec(5, "ann", 60, "other", FileKind::File));
    assert_eq!(
        refused(
            &mut s,
            T0 + 5,
            Command::RecordFile {
                file: rec(6, "ann", 41, "other", FileKind::File)
            }
        ),
        Code::QuotaExceeded
    );
    // A bad policy is refused, naming the key.
    let bad = FilePolicy {
        allowed_types: vec!["pictures".into()],
        ..FilePolicy::default()
    };
    assert_eq!(
        refused(&mut s, T0, Command::SetFilePolicy { policy: bad }),
        Code::InvalidArgument
    );
}

#[test]
fn sweeps_delete_unsent_uploads_and_files_past_retention() {
    let mut s = seeded();
    let unsent = rec(1, "ann", 10, "other", FileKind::File);
    let sent = rec(2, "ann", 10, "other", FileKind::File);
    record(&mut s, T0, &unsent);
    record(&mut s, T0, &sent);
    ok(&mut s, T0, send_file("ann", "bob", &sent.id));
    let hour = 3_600_000;
    assert!(!apply::files::sweep_due(&s, T0 + 23 * hour).expect("due"));
    assert!(apply::files::sweep_due(&s, T0 + 24 * hour).expect("due"));
    ok(&mut s, T0 + 24 * hour, Command::SweepFiles);
    assert!(query::file(&s, &unsent.id).expect("get").is_none());
    assert!(query::file(&s, &sent.id).expect("get").is_some());
    assert!(!apply::files::sweep_due(&s, T0 + 48 * hour).expect("due"));
    // Retention: a sent file goes too, once old enough.
    let p = FilePolicy {
        retention_days: 2,
        ..FilePolicy::default()
    };
    ok(&mut s, T0, Command::SetFilePolicy { policy: p });
    assert!(!apply::files::sweep_due(&s, T0 + 47 * hour).expect("due"));
    assert!(apply::files::sweep_due(&s, T0 + 48 * hour).expect("due"));
    ok(&mut s, T0 + 48 * hour, Command::SweepFiles);
    assert!(query::file(&s, &sent.id).expect("get").is_none());
    assert_eq!(readable(&s, "bob", &sent.id), Err(Code::NotFound));
    assert_eq!(query::file_usage(&s, "ann").expect("usage"), 0);
    assert!(!apply::files::sweep_due(&s, T0 + 96 * hour).expect("due"));
    let _ = ctx(0);
}

/// Files' indexes agree with the records and the messages.
pub(super) fn check_file_invariants(s: &MemStore) {
    use std::collections::{BTreeMap, BTreeSet};
    let files: Vec<BlobRecord> = s
        .scan_as::<BlobRecord>(keys::FILES, None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let ids: BTreeSet<&str> = files.iter().map(|f| f.id.as_str()).collect();
    // Every reference is a live message carrying that file.
    let mut referenced = BTreeSet::new();
    for (k, _) in s.scan(b"filer/", None, usize::MAX).expect("scan") {
        let rest = &k[6..];
        let parts: Vec<&[u8]> = rest.splitn(3, |b| *b == 0).collect();
        assert_eq!(parts.len(), 3, "malformed reference key");
        let id = String::from_utf8_lossy(parts[0]).into_owned();
        let conv = String::from_utf8_lossy(parts[1]).into_owned();
        let seq = u64::from_be_bytes(parts[2].try_into().expect("seq"));
        assert!(
            ids.contains(id.as_str()),
            "reference to a deleted file {id}"
        );
        let m: Message = s
            .get_as(&keys::message(&conv, seq))
            .expect("get")
            .expect("message");
        assert!(!m.recalled, "a recalled message still references {id}");
        assert_eq!(m.file.as_ref().map(|f| f.id.as_str()), Some(id.as_str()));
        referenced.insert(id);
    }
    // Quota use is the sum of each uploader's live files; chunk users are
    // exactly the records' chunks; never-sent entries have no reference.
    let mut usage: BTreeMap<&str, u64> = BTreeMap::new();
    let mut chunk_users = BTreeSet::new();
    for f in &files {
        *usage.entry(f.uploader.as_str()).or_default() += f.size;
        for h in f.all_chunks() {
            chunk_users.insert(keys::chunk_user(h, &f.id));
        }
    }
    for (u, bytes) in &usage {
        assert_eq!(
            query::file_usage(s, u).expect("usage"),
            *bytes,
            "usage of {u}"
        );
    }
    assert_eq!(
        s.scan(b"fileu/", None, usize::MAX).expect("scan").len(),
        usage.len(),
        "usage records of uploaders without files"
    );
    let stored: BTreeSet<Vec<u8>> = s
        .scan(keys::CHUNK_USERS, None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(stored, chunk_users, "chunk users");
    for (k, _) in s
        .scan(keys::FILES_UNREFERENCED, None, usize::MAX)
        .expect("scan")
    {
        let id = String::from_utf8_lossy(&k[keys::FILES_UNREFERENCED.len() + 8..]).into_owned();
        assert!(
            !referenced.contains(&id),
            "{id} is sent but listed as never sent"
        );
    }
}
