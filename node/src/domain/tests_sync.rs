//! Sync: pages, the change index (log version 4), messages stored once
//! (log version 5), and the reference reads the property test compares
//! sync with.

use std::collections::BTreeMap;

use super::store::{MemStore, StoreExt};
use super::tests::{USERS, ctx, ok, seeded, send};
use super::*;

#[test]
fn sync_pages_resume_exactly() {
    let mut s = seeded();
    for i in 0..25 {
        let to = USERS[1 + i % 3];
        ok(
            &mut s,
            10 + i as u64,
            send("ann", Target::Direct(to.into()), &format!("m{i}")),
        );
    }
    let full = query::sync(&s, "ann", 0, 1000).expect("sync");
    let mut got = Vec::new();
    let mut token = 0;
    loop {
        let page = query::sync(&s, "ann", token, 4).expect("sync");
        got.extend(page.events.iter().map(|e| e.no));
        token = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(got, full.events.iter().map(|e| e.no).collect::<Vec<_>>());
    assert_eq!(token, query::head(&s).expect("head"));
}

/// A member in many conversations syncing from a recent token: with the
/// change index (log version 4) only what changed is read; before it,
/// every conversation of theirs was.
#[test]
fn sync_from_a_recent_token_reads_what_changed_not_every_conversation() {
    let reads_of_one_sync = |v4: bool| -> (u64, usize) {
        let mut s = seeded();
        if v4 {
            ok(
                &mut s,
                2,
                Command::SetClusterVersion {
                    version: crate::lifecycle::LOG_VERSION,
                    forced: false,
                },
            );
        }
        for i in 0..40 {
            ok(
                &mut s,
                3,
                Command::CreateGroup {
                    actor: "ann".into(),
                    name: format!("g{i}"),
                    members: vec!["bob".into()],
                },
            );
        }
        let groups: Vec<String> = query::conversations(&s, "ann", None, usize::MAX)
            .expect("list")
            .into_iter()
            .map(|(c, _)| c.id)
            .collect();
        assert!(groups.len() >= 40);
        let token = query::head(&s).expect("head");
        ok(
            &mut s,
            4,
            send("bob", Target::Conv(groups[7].clone()), "just this one"),
        );
        let counting = super::tests_external::Counting {
            inner: s,
            reads: Default::default(),
            writes: 0,
            bytes: 0,
        };
        let page = query::sync(&counting, "ann", token, 100).expect("sync");
        assert_eq!(page.events.len(), 1, "{:?}", page.events);
        assert_eq!(page.events[0].conv, groups[7]);
        (counting.reads.get(), groups.len())
    };
    let (with_index, n) = reads_of_one_sync(true);
    let (without, _) = reads_of_one_sync(false);
    // Head, index start, the member's list, the index, then per changed
    // conversation its membership, record, events and (log version 5) the
    // message probe: none of it grows with the 40 conversations.
    assert!(with_index <= 12, "{with_index} reads with the index");
    assert!(without >= n as u64, "{without} reads without it");
}

/// From log version 5 a message is stored once (no `ev/` copy); sync
/// returns it, in order with the events stored before and after the move,
/// and a recall's tombstone replaces its text.
#[test]
fn from_log_version_5_a_message_is_stored_once_and_synced_from_its_record() {
    let mut s = seeded();
    let dm = |text: &str| send("ann", Target::Direct("bob".into()), text);
    let Done::Message(old) = ok(&mut s, 2, dm("before the move")) else {
        panic!("a message")
    };
    assert!(
        s.get(&keys::event(&old.conv, old.event))
            .expect("get")
            .is_some()
    );
    ok(
        &mut s,
        3,
        Command::SetClusterVersion {
            version: 5,
            forced: false,
        },
    );
    let Done::Message(new) = ok(&mut s, 4, dm("after the move")) else {
        panic!("a message")
    };
    assert!(
        s.get(&keys::event(&new.conv, new.event))
            .expect("get")
            .is_none(),
        "the posting event is not stored a second time"
    );
    ok(&mut s, 5, dm("and one more"));
    ok(
        &mut s,
        6,
        Command::Recall {
            actor: "ann".into(),
            conv: new.conv.clone(),
            seq: new.seq,
        },
    );
    // From every token, for both members, sync is what a read of the whole
    // log gives (`all_events`), one page at a time.
    let head = query::head(&s).expect("head");
    for who in ["ann", "bob"] {
        for since in 0..=head {
            let page = query::sync(&s, who, since, 2).expect("sync");
            assert_eq!(
                page.events,
                naive_sync(&s, who, since, 2),
                "{who} from {since}"
            );
        }
        let all = query::sync(&s, who, 0, 100).expect("sync").events;
        let texts: Vec<&str> = all
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { message } => Some(message.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["before the move", "", "and one more"], "{who}");
    }
}

/// What a group message costs one node's store at log version 4 and 5
/// (printed for the closing note): version 5 writes one record fewer and
/// not the message's text a second time.
#[test]
fn from_log_version_5_a_message_writes_one_record_and_its_text_once_less() {
    let cost_at = |version: u32| -> (u64, u64, u64) {
        let mut s = seeded();
        ok(
            &mut s,
            2,
            Command::SetClusterVersion {
                version,
                forced: false,
            },
        );
        let Done::Conversation(g) = ok(
            &mut s,
            3,
            Command::CreateGroup {
                actor: "ann".into(),
                name: "g".into(),
                members: vec!["bob".into()],
            },
        ) else {
            panic!("a group")
        };
        let id = g.id;
        ok(&mut s, 4, send("ann", Target::Conv(id.clone()), "warm up"));
        let mut c = super::tests_external::Counting {
            inner: s,
            reads: Default::default(),
            writes: 0,
            bytes: 0,
        };
        let text = "消".repeat(100);
        let (outcome, _) =
            apply(&mut c, &ctx(5), &send("bob", Target::Conv(id), &text)).expect("storage");
        assert!(outcome.is_ok());
        (c.reads.get(), c.writes, c.bytes)
    };
    let v4 = cost_at(4);
    let v5 = cost_at(5);
    eprintln!(
        "a 100-character group message on one node (reads, writes, bytes written): v4 {v4:?}, v5 {v5:?}"
    );
    assert_eq!(v5.1 + 1, v4.1, "one record fewer");
    assert!(
        v5.2 + 300 <= v4.2,
        "the text (300 bytes) once less: {v4:?} {v5:?}"
    );
    assert_eq!(v5.0, v4.0, "no more reads");
}

/// The change index (log version 4) names every event above its start by
/// its conversation, and nothing else.
pub(super) fn check_change_index(s: &MemStore) {
    let from = s.get_as::<u64>(keys::CHANGES_FROM).expect("read");
    let index: BTreeMap<u64, String> = s
        .scan(keys::CHANGES, None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, v)| (keys::tail_u64(&k), String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let Some(from) = from else {
        assert!(index.is_empty(), "an index without a start");
        return;
    };
    let head = query::head(s).expect("head");
    let mut want = BTreeMap::new();
    for ev in all_events(s) {
        if ev.no > from {
            want.insert(ev.no, ev.conv.clone());
        }
    }
    assert_eq!(index, want, "the change index (from {from})");
    assert!(index.keys().all(|n| *n <= head));
}

/// Every event of the log, oldest first: those stored in `ev/` and the
/// messages' posting events, derived from the message records (the only
/// record of them from log version 5; before it a stored copy, which must
/// be the same).
pub(super) fn all_events(s: &MemStore) -> Vec<Event> {
    let mut by_no = BTreeMap::new();
    for (_, ev) in s.scan_as::<Event>(b"ev/", None, usize::MAX).expect("scan") {
        let no = ev.no;
        assert!(by_no.insert(no, ev).is_none(), "event {no} stored twice");
    }
    for (_, m) in s
        .scan_as::<Message>(b"msg/", None, usize::MAX)
        .expect("scan")
    {
        let ev = m.into_event();
        match by_no.get(&ev.no) {
            Some(stored) => assert_eq!(stored, &ev, "a message and its stored event differ"),
            None => {
                by_no.insert(ev.no, ev);
            }
        }
    }
    by_no.into_values().collect()
}

/// Sync as it was before the change index: every conversation of the
/// member read, events after `since` up to the head, oldest first.
pub(super) fn naive_sync(s: &MemStore, userid: &str, since: u64, limit: usize) -> Vec<Event> {
    let head = query::head(s).expect("head");
    let prefix = keys::user_convs(userid);
    let mut events = Vec::new();
    for (k, uc) in s
        .scan_as::<UserConv>(&prefix, None, usize::MAX)
        .expect("scan")
    {
        let conv = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let upto = uc.left_event.unwrap_or(u64::MAX).min(head);
        let from = since.max(uc.joined_event.saturating_sub(1));
        for ev in all_events(s) {
            if ev.conv == conv && ev.no > from && ev.no <= upto {
                events.push(ev);
            }
        }
    }
    events.sort_by_key(|e| e.no);
    events.truncate(limit);
    events
}
