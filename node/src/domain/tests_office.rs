//! Tests of announcements and approvals over the in-memory store: exact
//! read statistics (late joiners apart), bad input changing nothing, the
//! approval chain from the directory, the rules when the directory
//! changes mid-flow, and the specific refusals.

use std::collections::BTreeSet;

use super::store::StoreExt;
use super::tests::{check_invariants, ctx, dept, member, ok, refused, seeded};
use super::*;

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

fn field(key: &str, kind: FieldKind, required: bool, options: &[&str]) -> FieldDef {
    FieldDef {
        key: key.into(),
        label: format!("L-{key}"),
        kind,
        required,
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

fn template(flow: Vec<FlowStep>) -> ApprovalTemplate {
    ApprovalTemplate {
        id: "leave".into(),
        name: "请假".into(),
        fields: vec![
            field("days", FieldKind::Number, true, &[]),
            field("kind", FieldKind::Choice, true, &["年假", "病假"]),
            field("dates", FieldKind::DateRange, false, &[]),
            field("amount", FieldKind::Money, false, &[]),
            field("stand_in", FieldKind::Member, false, &[]),
            field("note", FieldKind::Text, false, &[]),
        ],
        flow,
        cc: vec!["ann".into()],
        disabled: false,
        version: 0,
    }
}

/// `seeded()` with dan leading 1 and bob leading 2 (3 has no leader;
/// cai and fay are in 3), and the leave template with `flow`.
fn org(flow: Vec<FlowStep>) -> MemStore {
    let mut s = seeded();
    let mut d1 = dept(1, None);
    d1.leaders = vec!["dan".into()];
    ok(&mut s, T0 - 1, Command::UpsertDepartment { dept: d1 });
    let mut d2 = dept(2, Some(1));
    d2.leaders = vec!["bob".into()];
    ok(&mut s, T0 - 1, Command::UpsertDepartment { dept: d2 });
    ok(
        &mut s,
        T0 - 1,
        Command::PutApprovalTemplate {
            template: template(flow),
        },
    );
    s
}

fn values(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        ("days".to_string(), "2.5".to_string()),
        ("kind".to_string(), "年假".to_string()),
    ];
    v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.to_string())));
    v
}

fn file(s: &mut MemStore, actor: &str, vals: Vec<(String, String)>) -> ApprovalRequest {
    match ok(
        s,
        T0,
        Command::SubmitApproval {
            actor: actor.into(),
            template: "leave".into(),
            values: vals,
            route: None,
        },
    ) {
        Done::Approval(r) => *r,
        other => panic!("not an approval: {other:?}"),
    }
}

fn act(s: &mut MemStore, actor: &str, id: u64, step: Option<u32>, a: ApprovalAction) -> Outcome {
    let before = s.hash();
    let (out, events) = apply(
        s,
        &ctx(T0 + 1000),
        &Command::ActOnApproval {
            actor: actor.into(),
            id,
            step,
            action: a,
        },
    )
    .expect("storage");
    if out.is_err() {
        assert_eq!(before, s.hash(), "a refusal changed the state");
        assert!(events.is_empty());
    }
    check_invariants(s);
    out
}

fn approve() -> ApprovalAction {
    ApprovalAction::Approve {
        comment: String::new(),
    }
}

fn request(s: &MemStore, id: u64) -> ApprovalRequest {
    query::approval(s, id).expect("get").expect("exists")
}

fn waiting(s: &MemStore, u: &str) -> Vec<u64> {
    query::approvals_of(s, keys::APPROVALS_WAITING, u, None, 100)
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn a_two_level_chain_walks_up_the_directory_and_tells_applicant_and_cc() {
    let mut s = org(vec![FlowStep::Leaders(2)]);
    // cai is in 3 (no leader): level 1 is bob (2), level 2 dan (1).
    let r = file(&mut s, "cai", values(&[]));
    check_invariants(&s);
    assert_eq!(r.plan, vec![StepRule::Leader(1), StepRule::Leader(2)]);
    assert_eq!(r.approvers, vec!["bob".to_string()]);
    assert_eq!(
        r.values[0],
        ("days".into(), FieldValue::Number("2.5".into()))
    );
    assert_eq!(waiting(&s, "bob"), vec![r.id]);
    assert!(waiting(&s, "dan").is_empty());
    assert!(act(&mut s, "bob", r.id, Some(0), approve()).is_ok());
    assert_eq!(request(&s, r.id).approvers, vec!["dan".to_string()]);
    assert_eq!(waiting(&s, "dan"), vec![r.id]);
    assert!(waiting(&s, "bob").is_empty());
    let (out, events) = apply(
        &mut s,
        &ctx(T0 + 2000),
        &Command::ActOnApproval {
            actor: "dan".into(),
            id: r.id,
            step: Some(1),
            action: ApprovalAction::Approve {
                comment: "同意".into(),
            },
        },
    )
    .expect("storage");
    let Ok(Done::Approval(done)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(done.status, ApprovalStatus::Approved);
    assert_eq!(done.finished_ms, T0 + 2000);
    // The applicant and the CC are told.
    let told: BTreeSet<String> = events
        .iter()
        .filter(
            |e| matches!(&e.body, EventBody::ApprovalUpdate { status, .. } if status == "approved"),
        )
        .map(|e| e.conv.clone())
        .collect();
    assert_eq!(told, set(&["n.ann", "n.cai"]));
    check_invariants(&s);
    for (u, list, want) in [
        ("cai", keys::APPROVALS_MINE, 1),
        ("bob", keys::APPROVALS_DONE, 1),
        ("dan", keys::APPROVALS_DONE, 1),
        ("ann", keys::APPROVALS_CC, 1),
        ("dan", keys::APPROVALS_WAITING, 0),
    ] {
        assert_eq!(
            query::approvals_of(&s, list, u, None, 10)
                .expect("list")
                .len(),
            want,
            "{u}"
        );
    }
    let finished = query::approvals_finished(&s, 0, u64::MAX, None, 10).expect("finished");
    assert_eq!(finished.len(), 1);
}

#[test]
fn rejection_at_level_one_ends_it() {
    let mut s = org(vec![FlowStep::Leaders(2)]);
    let r = file(&mut s, "cai", values(&[]));
    assert_eq!(
        act(
            &mut s,
            "bob",
            r.id,
            Some(0),
            ApprovalAction::Reject { reason: " ".into() }
        )
        .map_err(|e| e.code),
        Err(Code::InvalidArgument),
        "a rejection needs a reason"
    );
    let out = act(
        &mut s,
        "bob",
        r.id,
        Some(0),
        ApprovalAction::Reject {
            reason: "人手不足".into(),
        },
    );
    let Ok(Done::Approval(r)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.status, ApprovalStatus::Rejected);
    assert!(r.approvers.is_empty());
    // dan was never asked.
    assert!(!r.trail.iter().any(|t| t.actor == "dan"
        || matches!(&t.action, TrailAction::Assigned { approvers } if approvers.contains(&"dan".to_string()))));
    // Finished: nobody acts on it any more; dan was never part of it.
    assert_eq!(
        act(&mut s, "bob", r.id, None, approve()).map_err(|e| e.code),
        Err(Code::AlreadyDecided)
    );
    assert_eq!(
        act(&mut s, "dan", r.id, None, approve()).map_err(|e| e.code),
        Err(Code::Forbidden)
    );
}

#[test]
fn a_new_department_leader_takes_over_the_pending_step() {
    let mut s = org(vec![FlowStep::Leaders(2)]);
    let r = file(&mut s, "cai", values(&[]));
    assert_eq!(r.approvers, vec!["bob".to_string()]);
    // eve replaces bob as the leader of department 2 mid-flow.
    let mut d2 = dept(2, Some(1));
    d2.leaders = vec!["eve".into()];
    ok(&mut s, T0 + 10, Command::UpsertDepartment { dept: d2 });
    check_invariants(&s);
    let now = request(&s, r.id);
    assert_eq!(now.approvers, vec!["eve".to_string()]);
    assert!(matches!(
        now.trail.last().map(|t| &t.action),
        Some(TrailAction::Reassigned { from, to, .. }) if from == &vec!["bob".to_string()] && to == &vec!["eve".to_string()]
    ));
    assert!(waiting(&s, "bob").is_empty());
    assert_eq!(waiting(&s, "eve"), vec![r.id]);
    // bob no longer decides it.
    assert_eq!(
        act(&mut s, "bob", r.id, Some(0), approve()).map_err(|e| e.code),
        Err(Code::Forbidden)
    );
    assert!(act(&mut s, "eve", r.id, Some(0), approve()).is_ok());
    // dan (level 2) departs while his step is pending: department 1 has
    // no other leader and nothing above it, so the step is passed over
    // (written in the trail) and the request is approved.
    ok(
        &mut s,
        T0 + 20,
        Command::SetMemberStatus {
            userid: "dan".into(),
            status: MemberStatus::Departed,
        },
    );
    check_invariants(&s);
    let now = request(&s, r.id);
    assert_eq!(now.status, ApprovalStatus::Approved);
    assert!(matches!(
        now.trail.last().map(|t| &t.action),
        Some(TrailAction::Skipped { .. })
    ));
}

#[test]
fn a_departed_fixed_approver_s_step_moves_up_to_their_leaders() {
    // eve (department 2, led by bob) approves every request.
    let mut s = org(vec![FlowStep::User("eve".into())]);
    let r = file(&mut s, "cai", values(&[]));
    assert_eq!(r.approvers, vec!["eve".to_string()]);
    ok(
        &mut s,
        T0 + 10,
        Command::SetMemberStatus {
            userid: "eve".into(),
            status: MemberStatus::Disabled,
        },
    );
    check_invariants(&s);
    let now = request(&s, r.id);
    assert_eq!(now.approvers, vec!["bob".to_string()]);
    assert_eq!(waiting(&s, "bob"), vec![r.id]);
    assert!(waiting(&s, "eve").is_empty());
    assert!(act(&mut s, "bob", r.id, None, approve()).is_ok());
    assert_eq!(request(&s, r.id).status, ApprovalStatus::Approved);
}

#[test]
fn acting_twice_out_of_turn_or_on_a_withdrawn_request_is_refused_specifically() {
    let mut s = org(vec![FlowStep::Leaders(2)]);
    let r = file(&mut s, "cai", values(&[]));
    assert!(act(&mut s, "bob", r.id, Some(0), approve()).is_ok());
    // bob again: he already approved step 1.
    let twice = act(&mut s, "bob", r.id, Some(0), approve());
    assert_eq!(twice.map_err(|e| e.code), Err(Code::AlreadyDecided));
    let twice = act(&mut s, "bob", r.id, None, approve());
    assert_eq!(twice.map_err(|e| e.code), Err(Code::AlreadyDecided));
    // A stale step number from dan's own view: refused, not applied to
    // the step after.
    assert_eq!(
        act(&mut s, "dan", r.id, Some(0), approve()).map_err(|e| e.code),
        Err(Code::AlreadyDecided)
    );
    // fay is no part of it.
    assert_eq!(
        act(&mut s, "fay", r.id, None, approve()).map_err(|e| e.code),
        Err(Code::Forbidden)
    );
    assert_eq!(
        act(
            &mut s,
            "fay",
            r.id,
            None,
            ApprovalAction::Comment { text: "hi".into() }
        )
        .map_err(|e| e.code),
        Err(Code::Forbidden)
    );
    // Only the applicant withdraws.
    assert_eq!(
        act(&mut s, "dan", r.id, None, ApprovalAction::Withdraw).map_err(|e| e.code),
        Err(Code::Forbidden)
    );
    // The CC comments.
    assert!(
        act(
            &mut s,
            "ann",
            r.id,
            None,
            ApprovalAction::Comment {
                text: "已知悉".into()
            }
        )
        .is_ok()
    );
    assert!(act(&mut s, "cai", r.id, None, ApprovalAction::Withdraw).is_ok());
    assert_eq!(
        act(&mut s, "dan", r.id, Some(1), approve()).map_err(|e| e.code),
        Err(Code::Withdrawn)
    );
    assert_eq!(
        act(&mut s, "cai", r.id, None, ApprovalAction::Withdraw).map_err(|e| e.code),
        Err(Code::Withdrawn)
    );
    assert_eq!(request(&s, r.id).status, ApprovalStatus::Withdrawn);
    assert!(waiting(&s, "dan").is_empty());
    assert_eq!(
        act(&mut s, "dan", 99, None, approve()).map_err(|e| e.code),
        Err(Code::NotFound)
    );
}

#[test]
fn the_applicant_never_approves_their_own_request() {
    // bob leads 2; as applicant his level 1 is dan (1); fixed approver
    // bob is passed over.
    let mut s = org(vec![FlowStep::Leaders(1), FlowStep::User("bob".into())]);
    let r = file(&mut s, "bob", values(&[]));
    assert_eq!(r.approvers, vec!["dan".to_string()]);
    assert!(act(&mut s, "dan", r.id, None, approve()).is_ok());
    let r = request(&s, r.id);
    assert_eq!(r.status, ApprovalStatus::Approved);
    assert!(matches!(
        r.trail.last().map(|t| &t.action),
        Some(TrailAction::Skipped { why }) if why.contains("applicant")
    ));
}

#[test]
fn bad_templates_and_bad_values_are_refused_and_change_nothing() {
    let mut s = org(vec![FlowStep::Leaders(1)]);
    let bad = |f: &dyn Fn(&mut ApprovalTemplate)| {
        let mut t = template(vec![FlowStep::Leaders(1)]);
        t.id = "other".into();
        f(&mut t);
        Command::PutApprovalTemplate { template: t }
    };
    for (cmd, want) in [
        (bad(&|t| t.id = "Bad Id".into()), Code::InvalidArgument),
        (bad(&|t| t.flow = vec![]), Code::InvalidArgument),
        (
            bad(&|t| t.flow = vec![FlowStep::Leaders(0)]),
            Code::InvalidArgument,
        ),
        (
            bad(&|t| t.flow = vec![FlowStep::User("nobody".into())]),
            Code::NotFound,
        ),
        (
            bad(&|t| t.flow = vec![FlowStep::AnyOf(vec![])]),
            Code::InvalidArgument,
        ),
        (
            bad(&|t| t.fields[1].options = vec![]),
            Code::InvalidArgument,
        ),
        (
            bad(&|t| t.fields[0].options = vec!["x".into()]),
            Code::InvalidArgument,
        ),
        (
            bad(&|t| t.fields[1].key = "days".into()),
            Code::InvalidArgument,
        ),
        (bad(&|t| t.cc = vec!["nobody".into()]), Code::NotFound),
    ] {
        assert_eq!(refused(&mut s, T0, cmd.clone()), want, "{cmd:?}");
    }
    let submit = |vals: Vec<(String, String)>| Command::SubmitApproval {
        actor: "cai".into(),
        template: "leave".into(),
        values: vals,
        route: None,
    };
    for (vals, what) in [
        (values(&[("amount", "一千元")]), "money with text"),
        (values(&[("amount", "12.345")]), "three decimals"),
        (values(&[("amount", "1,234.00")]), "grouping"),
        (
            values(&[("dates", "2026-12-10/2026-12-01")]),
            "end before start",
        ),
        (values(&[("dates", "2026-02-30/2026-03-01")]), "no such day"),
        (values(&[("stand_in", "nobody")]), "unknown member"),
        (values(&[("colour", "red")]), "unknown field"),
        (
            vec![("kind".to_string(), "年假".to_string())],
            "required field missing",
        ),
        (
            vec![
                ("days".to_string(), "three".to_string()),
                ("kind".to_string(), "年假".to_string()),
            ],
            "number with text",
        ),
        (
            vec![
                ("days".to_string(), "1".to_string()),
                ("kind".to_string(), "事假".to_string()),
            ],
            "not an option",
        ),
    ] {
        assert_eq!(
            refused(&mut s, T0, submit(vals)),
            Code::InvalidArgument,
            "{what}"
        );
    }
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::SubmitApproval {
                actor: "cai".into(),
                template: "nope".into(),
                values: values(&[]),
                route: None,
            }
        ),
        Code::NotFound
    );
    // Good values are kept typed and normalised.
    let r = file(
        &mut s,
        "cai",
        values(&[
            ("amount", "1234.5"),
            ("dates", "2024-02-28/2024-02-29"),
            ("stand_in", "fay"),
        ]),
    );
    assert!(
        r.values
            .contains(&("amount".into(), FieldValue::Money(123_450)))
    );
    assert_eq!(FieldValue::Money(123_450).display(), "1234.50");
    // A disabled template takes no new requests.
    ok(
        &mut s,
        T0,
        Command::SetApprovalTemplateDisabled {
            id: "leave".into(),
            disabled: true,
        },
    );
    assert_eq!(refused(&mut s, T0, submit(values(&[]))), Code::Forbidden);
}

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
