//! Approvals: the chain from the directory, the rules when the directory changes mid-flow, the specific refusals.

use super::*;

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
