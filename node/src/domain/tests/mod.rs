//! Unit and property tests of the domain over the in-memory store.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::store::StoreExt;
use super::tests_sync::{all_events, check_change_index, naive_sync};
use super::*;

mod props;
pub(super) use props::{
    arb_command, check_invariants, external_seed, office_seed, seeded_with_app,
};

pub(super) const USERS: [&str; 6] = ["ann", "bob", "cai", "dan", "eve", "fay"];

pub(super) fn ctx(t: u64) -> Ctx {
    Ctx {
        time_ms: t,
        app: None,
    }
}

pub(super) fn member(userid: &str, dept: u64) -> Member {
    Member {
        userid: userid.into(),
        name: format!("Name {userid}"),
        departments: vec![dept],
        title: String::new(),
        email: String::new(),
        mobile: String::new(),
        status: MemberStatus::Active,
    }
}

pub(super) fn dept(id: u64, parent: Option<u64>) -> Department {
    Department {
        id,
        parent,
        name: format!("D{id}"),
        order: 0,
        leaders: vec![],
    }
}

pub(super) fn ok(s: &mut MemStore, t: u64, cmd: Command) -> Done {
    match apply(s, &ctx(t), &cmd).expect("storage") {
        (Ok(d), _) => d,
        (Err(r), _) => panic!("{cmd:?} refused: {r:?}"),
    }
}

pub(super) fn refused(s: &mut MemStore, t: u64, cmd: Command) -> Code {
    let before = s.hash();
    match apply(s, &ctx(t), &cmd).expect("storage") {
        (Ok(d), _) => panic!("{cmd:?} should be refused, got {d:?}"),
        (Err(r), events) => {
            assert!(events.is_empty());
            assert_eq!(before, s.hash(), "a refused command changed the state");
            r.code
        }
    }
}

pub(super) fn seeded() -> MemStore {
    let mut s = MemStore::default();
    ok(
        &mut s,
        1,
        Command::UpsertDepartment {
            dept: dept(1, None),
        },
    );
    ok(
        &mut s,
        1,
        Command::UpsertDepartment {
            dept: dept(2, Some(1)),
        },
    );
    ok(
        &mut s,
        1,
        Command::UpsertDepartment {
            dept: dept(3, Some(2)),
        },
    );
    for (i, u) in USERS.iter().enumerate() {
        ok(
            &mut s,
            1,
            Command::CreateMember {
                member: member(u, 1 + (i as u64 % 3)),
                password_hash: None,
            },
        );
    }
    s
}

pub(super) fn send(actor: &str, target: Target, text: &str) -> Command {
    Command::Send {
        actor: actor.into(),
        target,
        text: text.into(),
        mentions: vec![],
        mention_all: false,
        reply_to: None,
        file: None,
    }
}

#[test]
fn department_tree_refuses_cycles_and_non_empty_deletes() {
    let mut s = seeded();
    assert_eq!(
        refused(
            &mut s,
            2,
            Command::UpsertDepartment {
                dept: dept(2, Some(3))
            }
        ),
        Code::Cycle
    );
    assert_eq!(
        refused(
            &mut s,
            2,
            Command::UpsertDepartment {
                dept: dept(2, Some(2))
            }
        ),
        Code::Cycle
    );
    assert_eq!(
        refused(
            &mut s,
            2,
            Command::UpsertDepartment {
                dept: dept(9, Some(77))
            }
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(&mut s, 2, Command::DeleteDepartment { id: 2 }),
        Code::DepartmentNotEmpty
    );
    assert_eq!(
        refused(
            &mut s,
            2,
            Command::CreateMember {
                member: member("ann", 1),
                password_hash: None
            }
        ),
        Code::AlreadyExists
    );
    // Move 3 under 1, empty it, delete it.
    ok(
        &mut s,
        3,
        Command::UpsertDepartment {
            dept: dept(3, Some(1)),
        },
    );
    for u in ["cai", "fay"] {
        ok(
            &mut s,
            3,
            Command::UpdateMember {
                userid: u.into(),
                patch: MemberPatch {
                    departments: Some(vec![1]),
                    ..Default::default()
                },
            },
        );
    }
    ok(&mut s, 4, Command::DeleteDepartment { id: 3 });
    assert!(query::department(&s, 3).expect("q").is_none());
}

#[test]
fn departed_member_keeps_history_but_loses_sessions_and_cannot_return() {
    let mut s = seeded();
    ok(
        &mut s,
        2,
        Command::LoginSucceeded {
            userid: "bob".into(),
            token_hash: [1; 32],
            refresh_hash: [2; 32],
        },
    );
    ok(&mut s, 3, send("ann", Target::Direct("bob".into()), "hi"));
    ok(
        &mut s,
        4,
        Command::SetMemberStatus {
            userid: "bob".into(),
            status: MemberStatus::Departed,
        },
    );
    assert!(query::session(&s, &[1; 32]).expect("q").is_none());
    assert_eq!(
        refused(
            &mut s,
            5,
            Command::LoginSucceeded {
                userid: "bob".into(),
                token_hash: [3; 32],
                refresh_hash: [4; 32]
            }
        ),
        Code::AccountInactive
    );
    assert_eq!(
        refused(
            &mut s,
            5,
            Command::SetMemberStatus {
                userid: "bob".into(),
                status: MemberStatus::Active
            }
        ),
        Code::AccountInactive
    );
    let conv = keys::direct_conv_id("ann", "bob");
    assert_eq!(
        query::message(&s, &conv, 1).expect("q").map(|m| m.text),
        Some("hi".into())
    );
}

#[test]
fn lockout_after_failed_logins_and_admin_unlock() {
    let mut s = seeded();
    for _ in 0..5 {
        ok(
            &mut s,
            10,
            Command::LoginFailed {
                userid: "ann".into(),
            },
        );
    }
    let login = |t| Command::LoginSucceeded {
        userid: "ann".into(),
        token_hash: [t as u8; 32],
        refresh_hash: [t as u8 + 100; 32],
    };
    assert_eq!(refused(&mut s, 11, login(11)), Code::AccountLocked);
    ok(
        &mut s,
        12,
        Command::UnlockAccount {
            userid: "ann".into(),
        },
    );
    ok(&mut s, 13, login(13));
}

#[test]
fn direct_conversation_is_one_per_pair_and_sequences_are_gap_free() {
    let mut s = seeded();
    ok(&mut s, 2, send("ann", Target::Direct("bob".into()), "1"));
    ok(&mut s, 3, send("bob", Target::Direct("ann".into()), "2"));
    let Done::Message(m) = ok(&mut s, 4, send("ann", Target::Direct("bob".into()), "3")) else {
        panic!()
    };
    assert_eq!(m.seq, 3);
    assert_eq!(m.conv, keys::direct_conv_id("bob", "ann"));
    assert_eq!(
        refused(&mut s, 5, send("cai", Target::Conv(m.conv.clone()), "x")),
        Code::NotAMember
    );
    assert_eq!(
        refused(&mut s, 5, send("ann", Target::Conv(m.conv.clone()), "")),
        Code::InvalidArgument
    );
    let long = "字".repeat(4001);
    assert_eq!(
        refused(&mut s, 5, send("ann", Target::Conv(m.conv.clone()), &long)),
        Code::LimitExceeded
    );
}

#[test]
fn recall_within_window_leaves_a_tombstone_everywhere() {
    let mut s = seeded();
    let Done::Message(m) = ok(
        &mut s,
        1_000,
        send("ann", Target::Direct("bob".into()), "secret"),
    ) else {
        panic!()
    };
    assert_eq!(
        refused(
            &mut s,
            1_001,
            Command::Recall {
                actor: "bob".into(),
                conv: m.conv.clone(),
                seq: 1
            }
        ),
        Code::Forbidden
    );
    let window = Policy::default().recall_window_ms;
    assert_eq!(
        refused(
            &mut s,
            1_000 + window + 1,
            Command::Recall {
                actor: "ann".into(),
                conv: m.conv.clone(),
                seq: 1
            }
        ),
        Code::RecallWindowExpired
    );
    ok(
        &mut s,
        1_000 + window,
        Command::Recall {
            actor: "ann".into(),
            conv: m.conv.clone(),
            seq: 1,
        },
    );
    let page = query::sync(&s, "bob", 0, 100).expect("sync");
    assert!(
        !format!("{:?}", page.events).contains("secret"),
        "recalled text must not be synced: {:?}",
        page.events
    );
    assert!(
        page.events
            .iter()
            .any(|e| e.body == EventBody::Recalled { seq: 1 })
    );
}

#[test]
fn group_roles_receipts_and_sync_visibility() {
    let mut s = seeded();
    let Done::Conversation(g) = ok(
        &mut s,
        2,
        Command::CreateGroup {
            actor: "ann".into(),
            name: "Ops".into(),
            members: vec!["bob".into(), "cai".into()],
        },
    ) else {
        panic!()
    };
    assert_eq!(g.member_count, 3);
    // @all is for owner/admins.
    let all = |actor: &str| Command::Send {
        actor: actor.into(),
        target: Target::Conv(g.id.clone()),
        text: "notice".into(),
        mentions: vec![],
        mention_all: true,
        reply_to: None,
        file: None,
    };
    assert_eq!(refused(&mut s, 3, all("bob")), Code::Forbidden);
    let Done::Message(m) = ok(&mut s, 3, all("ann")) else {
        panic!()
    };
    ok(
        &mut s,
        4,
        Command::MarkRead {
            actor: "bob".into(),
            conv: g.id.clone(),
            seq: 1,
        },
    );
    let r = query::receipts(&s, &m).expect("receipts");
    assert_eq!(r.read, vec!["bob".to_string()]);
    assert_eq!(r.unread, vec!["cai".to_string()]);
    // A member added later does not see earlier events; a removed one
    // stops seeing new ones.
    assert_eq!(
        refused(
            &mut s,
            5,
            Command::AddMembers {
                actor: "bob".into(),
                conv: g.id.clone(),
                userids: vec!["dan".into()]
            }
        ),
        Code::Forbidden
    );
    ok(
        &mut s,
        5,
        Command::AddMembers {
            actor: "ann".into(),
            conv: g.id.clone(),
            userids: vec!["dan".into()],
        },
    );
    let dan = query::sync(&s, "dan", 0, 100).expect("sync");
    assert!(
        dan.events
            .iter()
            .all(|e| !matches!(e.body, EventBody::Message { .. }))
    );
    ok(
        &mut s,
        6,
        Command::RemoveMember {
            actor: "ann".into(),
            conv: g.id.clone(),
            userid: "cai".into(),
        },
    );
    ok(&mut s, 7, send("ann", Target::Conv(g.id.clone()), "after"));
    let cai = query::sync(&s, "cai", 0, 100).expect("sync");
    assert!(matches!(
        cai.events.last().map(|e| &e.body),
        Some(EventBody::MemberRemoved { .. })
    ));
    assert_eq!(
        refused(
            &mut s,
            8,
            Command::Leave {
                actor: "ann".into(),
                conv: g.id.clone()
            }
        ),
        Code::Forbidden,
        "the owner must hand over first"
    );
    ok(
        &mut s,
        8,
        Command::TransferOwner {
            actor: "ann".into(),
            conv: g.id.clone(),
            to: "bob".into(),
        },
    );
    ok(
        &mut s,
        9,
        Command::Leave {
            actor: "ann".into(),
            conv: g.id.clone(),
        },
    );
    ok(
        &mut s,
        10,
        Command::Dissolve {
            actor: "bob".into(),
            conv: g.id.clone(),
        },
    );
    assert_eq!(
        refused(&mut s, 11, send("bob", Target::Conv(g.id.clone()), "x")),
        Code::Dissolved
    );
}

#[test]
fn permissions_are_granted_revoked_and_dropped_on_departure() {
    let mut s = seeded();
    let grant = |u: &str, granted: bool| Command::SetPermission {
        userid: u.into(),
        permission: Permission::NoticeUrgent,
        granted,
    };
    assert_eq!(refused(&mut s, 2, grant("nobody", true)), Code::NotFound);
    ok(&mut s, 2, grant("ann", true));
    ok(&mut s, 2, grant("bob", true));
    assert!(query::has_permission(&s, "ann", Permission::NoticeUrgent).expect("read"));
    assert_eq!(
        query::permission_holders(&s, Permission::NoticeUrgent, None, 10).expect("read"),
        vec!["ann".to_string(), "bob".to_string()]
    );
    assert_eq!(
        query::permission_holders(&s, Permission::NoticeUrgent, Some("ann"), 10).expect("read"),
        vec!["bob".to_string()]
    );
    // Granting twice, revoking what is not held: no error, no change.
    let h = s.hash();
    ok(&mut s, 3, grant("ann", true));
    ok(&mut s, 3, grant("cai", false));
    assert_eq!(h, s.hash());
    ok(&mut s, 3, grant("bob", false));
    assert_eq!(
        query::permissions_of(&s, "bob").expect("read"),
        Vec::<Permission>::new()
    );
    // A departed member loses every grant and cannot be given one.
    ok(
        &mut s,
        4,
        Command::SetMemberStatus {
            userid: "ann".into(),
            status: MemberStatus::Departed,
        },
    );
    assert!(!query::has_permission(&s, "ann", Permission::NoticeUrgent).expect("read"));
    assert_eq!(
        refused(&mut s, 5, grant("ann", true)),
        Code::AccountInactive
    );
    assert_eq!(
        Permission::parse(" notice:urgent "),
        Some(Permission::NoticeUrgent)
    );
    assert_eq!(Permission::parse("notice"), None);
}
