//! Tests of announcements and approvals over the in-memory store: exact
//! read statistics (late joiners apart), bad input changing nothing, the
//! approval chain from the directory, the rules when the directory
//! changes mid-flow, and the specific refusals.

use std::collections::BTreeSet;

use super::store::StoreExt;
use super::tests::{check_invariants, ctx, dept, member, ok, refused, seeded};
use super::*;

mod approvals;

const T0: u64 = 1_000_000;

fn grant(s: &mut MemStore, u: &str, p: Permission) {
    ok(
        s,
        T0 - 1,
        Command::SetPermission {
            userid: u.into(),
            permission: p,
            granted: true,
        },
    );
}

fn run(text: &str) -> Run {
    Run {
        text: text.into(),
        bold: false,
        link: None,
    }
}

fn body() -> Vec<Block> {
    vec![
        Block::Paragraph(vec![
            run("春节放假安排："),
            Run {
                text: "2月10日至17日".into(),
                bold: true,
                link: None,
            },
        ]),
        Block::Bullets(vec![vec![run("值班表见附件")], vec![run("安全检查")]]),
        Block::Paragraph(vec![Run {
            text: "详情".into(),
            bold: false,
            link: Some("https://oa.example.internal/notice/1".into()),
        }]),
    ]
}

fn draft(all: bool, depts: &[u64]) -> AnnouncementDraft {
    AnnouncementDraft {
        to: Recipients {
            users: vec![],
            parties: depts.to_vec(),
            all,
        },
        title: "春节放假通知".into(),
        body: body(),
        attachment: Some(Attachment {
            name: "值班表.xlsx".into(),
            url: "https://oa.example.internal/files/42".into(),
            size: 0,
        }),
        pinned_until_ms: T0 + 86_400_000,
    }
}

fn publish(s: &mut MemStore, actor: &str, d: AnnouncementDraft) -> Announcement {
    match ok(
        s,
        T0,
        Command::PublishAnnouncement {
            actor: actor.into(),
            draft: d,
        },
    ) {
        Done::Announcement(a) => a,
        other => panic!("not an announcement: {other:?}"),
    }
}

fn announcement(s: &MemStore, id: u64) -> Announcement {
    query::announcement(s, id).expect("get").expect("exists")
}

fn read(s: &mut MemStore, u: &str, id: u64) -> Outcome {
    let out = apply(
        s,
        &ctx(T0 + 1000),
        &Command::ReadAnnouncement {
            actor: u.into(),
            id,
        },
    )
    .expect("storage")
    .0;
    check_invariants(s);
    out
}

fn unread(s: &MemStore, id: u64) -> BTreeSet<String> {
    query::announcement_readers(s, id, |r| !r.late && r.read_ms == 0, None, 1000, 100_000)
        .expect("readers")
        .0
        .into_iter()
        .map(|(u, _)| u)
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|u| u.to_string()).collect()
}

#[test]
fn announcement_read_statistics_are_exact_and_late_joiners_count_apart() {
    let mut s = seeded();
    grant(&mut s, "ann", Permission::AnnouncementPublish);
    let a = publish(&mut s, "ann", draft(true, &[]));
    check_invariants(&s);
    // Everyone but the sender, each once.
    assert_eq!(a.counts.audience, 5);
    assert!(a.expanding.is_none());
    assert_eq!(unread(&s, a.id), set(&["bob", "cai", "dan", "eve", "fay"]));
    for u in ["bob", "cai"] {
        assert!(matches!(
            read(&mut s, u, a.id),
            Ok(Done::AnnouncementRead { changed: true, .. })
        ));
    }
    // A repeat changes nothing.
    let before = s.hash();
    assert!(matches!(
        read(&mut s, "bob", a.id),
        Ok(Done::AnnouncementRead { changed: false, .. })
    ));
    assert_eq!(before, s.hash());
    let now = announcement(&s, a.id);
    assert_eq!((now.counts.read, now.counts.late_read), (2, 0));
    assert_eq!(unread(&s, a.id), set(&["dan", "eve", "fay"]));
    // Gus joins later: not unread; sees it while it is pinned; reading it
    // counts him as a late reader.
    ok(
        &mut s,
        T0 + 500,
        Command::CreateMember {
            member: member("gus", 2),
            password_hash: None,
        },
    );
    assert_eq!(unread(&s, a.id), set(&["dan", "eve", "fay"]));
    let gus = query::member(&s, "gus").expect("get").expect("gus");
    let late = query::announcements_late_for(&s, &gus, T0 + 1000).expect("late");
    assert_eq!(late.iter().map(|a| a.id).collect::<Vec<_>>(), vec![a.id]);
    assert!(read(&mut s, "gus", a.id).is_ok());
    let now = announcement(&s, a.id);
    assert_eq!(
        (now.counts.audience, now.counts.read, now.counts.late_read),
        (5, 2, 1)
    );
    assert_eq!(unread(&s, a.id), set(&["dan", "eve", "fay"]));
    // The sender's own list and each reader's inbox.
    let sent = query::announcements_of(&s, "ann", true, None, 10).expect("sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        query::announcements_of(&s, "dan", false, None, 10)
            .expect("inbox")
            .len(),
        1
    );
    assert!(
        query::announcements_of(&s, "gus", false, None, 10)
            .expect("inbox")
            .is_empty()
    );
}

#[test]
fn a_department_announcement_reaches_the_subtree_only_and_can_be_withdrawn() {
    let mut s = seeded();
    grant(&mut s, "ann", Permission::AnnouncementPublish);
    // Department 2 with 3 below it: bob, eve (2), cai, fay (3).
    let a = publish(&mut s, "ann", draft(false, &[2]));
    assert_eq!(a.counts.audience, 4);
    assert_eq!(unread(&s, a.id), set(&["bob", "cai", "eve", "fay"]));
    // dan (department 1) is outside it.
    assert_eq!(
        read(&mut s, "dan", a.id).map_err(|r| r.code),
        Err(Code::NotFound)
    );
    // Only the sender (or an operator) withdraws.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::WithdrawAnnouncement {
                actor: Some("bob".into()),
                id: a.id
            }
        ),
        Code::Forbidden
    );
    ok(
        &mut s,
        T0,
        Command::WithdrawAnnouncement {
            actor: Some("ann".into()),
            id: a.id,
        },
    );
    assert_eq!(
        read(&mut s, "bob", a.id).map_err(|r| r.code),
        Err(Code::Withdrawn)
    );
    assert!(
        query::announcements_of(&s, "bob", false, None, 10)
            .expect("inbox")
            .is_empty()
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::WithdrawAnnouncement {
                actor: None,
                id: a.id
            }
        ),
        Code::Withdrawn
    );
}

#[test]
fn bad_announcements_are_refused_and_change_nothing() {
    let mut s = seeded();
    // Without the permission.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::PublishAnnouncement {
                actor: "ann".into(),
                draft: draft(true, &[])
            }
        ),
        Code::Forbidden
    );
    grant(&mut s, "ann", Permission::AnnouncementPublish);
    let bad = |f: &dyn Fn(&mut AnnouncementDraft)| {
        let mut d = draft(false, &[2]);
        f(&mut d);
        Command::PublishAnnouncement {
            actor: "ann".into(),
            draft: d,
        }
    };
    let cases: Vec<(Command, Code)> = vec![
        (bad(&|d| d.to = Recipients::default()), Code::NoRecipients),
        (bad(&|d| d.to.parties = vec![99]), Code::NotFound),
        (
            bad(&|d| d.to.users = vec!["bob".into()]),
            Code::InvalidArgument,
        ),
        (bad(&|d| d.title = " ".into()), Code::InvalidArgument),
        (bad(&|d| d.body = vec![]), Code::InvalidArgument),
        (
            bad(&|d| d.body = vec![Block::Paragraph(vec![])]),
            Code::InvalidArgument,
        ),
        (
            bad(&|d| {
                d.body = vec![Block::Paragraph(vec![Run {
                    text: "x".into(),
                    bold: false,
                    link: Some("javascript:alert(1)".into()),
                }])]
            }),
            Code::InvalidArgument,
        ),
        (
            bad(&|d| {
                d.attachment = Some(Attachment {
                    name: "a".into(),
                    url: "file:///etc/passwd".into(),
                    size: 0,
                })
            }),
            Code::InvalidArgument,
        ),
        (
            bad(&|d| d.body = vec![Block::Paragraph(vec![run(&"字".repeat(20_001))])]),
            Code::LimitExceeded,
        ),
        (bad(&|d| d.pinned_until_ms = T0 - 1), Code::InvalidArgument),
        (
            bad(&|d| d.pinned_until_ms = T0 + 400 * 86_400_000),
            Code::InvalidArgument,
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(refused(&mut s, T0, cmd.clone()), want, "{cmd:?}");
    }
    assert!(
        query::announcements_all(&s, None, 10)
            .expect("all")
            .is_empty()
    );
}

#[test]
fn a_large_audience_is_sent_out_in_leader_steps_each_applied_once() {
    let mut s = seeded();
    grant(&mut s, "ann", Permission::AnnouncementPublish);
    for i in 0..4_500 {
        ok(
            &mut s,
            T0 - 1,
            Command::CreateMember {
                member: member(&format!("m{i:05}"), 3),
                password_hash: None,
            },
        );
    }
    let a = publish(&mut s, "ann", draft(true, &[]));
    assert!(a.expanding.is_some(), "one step cannot hold 4,505 members");
    let mut steps = 0;
    loop {
        let due = query::announcements_due(&s, 10).expect("due");
        let Some(a) = due.first() else { break };
        let cmd = Command::AnnouncementExpand {
            id: a.id,
            step: a.steps,
        };
        ok(&mut s, T0 + 1, cmd.clone());
        // A deposed leader's copy is stale.
        assert_eq!(refused(&mut s, T0 + 1, cmd), Code::Stale);
        steps += 1;
        assert!(steps < 10);
    }
    assert_eq!(steps, 2);
    check_invariants(&s);
    assert_eq!(announcement(&s, a.id).counts.audience, 4_505);
}

// ---------------------------------------------------------------- approvals

/// Invariants of announcements and approvals over the whole state.
pub(super) fn check_office_invariants(s: &MemStore) {
    for (_, a) in s
        .scan_as::<Announcement>(b"anc/", None, usize::MAX)
        .expect("scan")
    {
        let readers = query::announcement_readers(s, a.id, |_| true, None, usize::MAX, usize::MAX)
            .expect("readers")
            .0;
        let audience = readers.iter().filter(|(_, r)| !r.late).count() as u64;
        let read = readers
            .iter()
            .filter(|(_, r)| !r.late && r.read_ms != 0)
            .count() as u64;
        let late = readers.iter().filter(|(_, r)| r.late).count() as u64;
        assert_eq!(
            (a.counts.audience, a.counts.read, a.counts.late_read),
            (audience, read, late),
            "announcement {} counts",
            a.id
        );
        assert!(readers.iter().all(|(u, _)| *u != a.sender));
        assert_eq!(
            a.expanding.is_some(),
            s.get(&keys::announcement_due(a.id)).expect("get").is_some(),
            "announcement {}: schedule",
            a.id
        );
    }
    let mut waiting = BTreeSet::new();
    let mut at_dept = BTreeSet::new();
    let mut finished = BTreeSet::new();
    for (_, r) in s
        .scan_as::<ApprovalRequest>(b"apr/", None, usize::MAX)
        .expect("scan")
    {
        if r.status == ApprovalStatus::Pending {
            assert!(
                (r.current as usize) < r.plan.len(),
                "{}: pending past the end",
                r.id
            );
            assert!(!r.approvers.is_empty(), "{}: pending with nobody", r.id);
            assert!(
                !r.approvers.contains(&r.applicant),
                "{}: self-approval",
                r.id
            );
            for a in &r.approvers {
                let m = query::member(s, a).expect("get").expect("approver exists");
                assert_eq!(
                    m.status,
                    MemberStatus::Active,
                    "{}: approver {a} gone",
                    r.id
                );
                waiting.insert((a.clone(), r.id));
            }
            if matches!(r.plan[r.current as usize], StepRule::Leader(_)) {
                // A leader step follows the leaders of its department.
                let (_, leaders) = apply::approvals::dept_leaders(s, r.approver_dept, &r.applicant)
                    .expect("get")
                    .expect("the step's department exists");
                assert_eq!(
                    leaders.iter().collect::<BTreeSet<_>>(),
                    r.approvers.iter().collect::<BTreeSet<_>>(),
                    "{}: leader step out of line with department {}",
                    r.id,
                    r.approver_dept
                );
                at_dept.insert((r.approver_dept, r.id));
            }
            assert_eq!(r.finished_ms, 0);
        } else {
            assert!(r.approvers.is_empty());
            finished.insert((r.finished_ms, r.id));
        }
    }
    let listed: BTreeSet<(String, u64)> = s
        .scan(b"apw/", None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| {
            let u = String::from_utf8_lossy(&k[4..k.len() - 9]).into_owned();
            (u, u64::MAX - keys::tail_u64(&k))
        })
        .collect();
    assert_eq!(listed, waiting, "waiting lists");
    let listed: BTreeSet<(u64, u64)> = s
        .scan(b"apd/", None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| {
            (
                u64::from_be_bytes(k[4..12].try_into().expect("8")),
                keys::tail_u64(&k),
            )
        })
        .collect();
    assert_eq!(listed, at_dept, "leader steps by department");
    let listed: BTreeSet<(u64, u64)> = s
        .scan(keys::APPROVALS_FINISHED, None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| {
            (
                u64::from_be_bytes(k[4..12].try_into().expect("8")),
                keys::tail_u64(&k),
            )
        })
        .collect();
    assert_eq!(listed, finished, "finished index");
}
