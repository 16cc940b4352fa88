//! Property tests: random command sequences against a naive model of the
//! domain (sync, change index, permissions of every kind of conversation).

use super::*;

fn arb_user() -> impl Strategy<Value = String> {
    prop::sample::select(USERS.to_vec()).prop_map(str::to_string)
}

fn arb_conv() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..4).prop_map(|n| format!("g{n}")),
        (arb_user(), arb_user()).prop_map(|(a, b)| keys::direct_conv_id(&a, &b)),
    ]
}

pub(in crate::domain) fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (arb_user(), arb_user(), "[a-z]{0,5}").prop_map(|(a, b, t)| send(&a, Target::Direct(b), &t)),
        6 => (arb_user(), arb_conv(), "[a-z]{1,5}", prop::collection::vec(arb_user(), 0..2), any::<bool>(), prop::option::of(0u64..5))
            .prop_map(|(a, c, t, mentions, all, reply_to)| Command::Send {
                actor: a, target: Target::Conv(c), text: t, mentions, mention_all: all, reply_to, file: None
            }),
        2 => (arb_user(), prop::collection::vec(arb_user(), 0..4))
            .prop_map(|(a, m)| Command::CreateGroup { actor: a, name: "G".into(), members: m }),
        2 => (arb_user(), arb_conv(), prop::collection::vec(arb_user(), 1..3))
            .prop_map(|(a, c, u)| Command::AddMembers { actor: a, conv: c, userids: u }),
        2 => (arb_user(), arb_conv(), arb_user())
            .prop_map(|(a, c, u)| Command::RemoveMember { actor: a, conv: c, userid: u }),
        1 => (arb_user(), arb_conv()).prop_map(|(a, c)| Command::Leave { actor: a, conv: c }),
        1 => (arb_user(), arb_conv(), arb_user()).prop_map(|(a, c, t)| Command::TransferOwner { actor: a, conv: c, to: t }),
        1 => (arb_user(), arb_conv(), prop::collection::vec(arb_user(), 0..3)).prop_map(|(a, c, ad)| Command::SetAdmins { actor: a, conv: c, admins: ad }),
        1 => (arb_user(), arb_conv()).prop_map(|(a, c)| Command::Dissolve { actor: a, conv: c }),
        3 => (arb_user(), arb_conv(), 0u64..6).prop_map(|(a, c, seq)| Command::MarkRead { actor: a, conv: c, seq }),
        2 => (arb_user(), arb_conv(), 0u64..6).prop_map(|(a, c, seq)| Command::Recall { actor: a, conv: c, seq }),
        1 => (arb_user(), prop::sample::select(vec![MemberStatus::Active, MemberStatus::Disabled, MemberStatus::Departed]))
            .prop_map(|(u, st)| Command::SetMemberStatus { userid: u, status: st }),
        1 => (1u64..5, prop::option::of(1u64..5)).prop_map(|(id, p)| Command::UpsertDepartment { dept: dept(id, p) }),
        1 => (1u64..5).prop_map(|id| Command::DeleteDepartment { id }),
        // Integrated apps (the app of `seeded_with_app`, agentid 1000002).
        3 => (prop::collection::vec(arb_user(), 0..3), prop::collection::vec(1u64..5, 0..2), any::<bool>(), "[a-z]{1,4}", 0u64..3)
            .prop_map(|(users, parties, all, text, dedup)| Command::AppSend {
                agentid: APP, to: Recipients { users, parties, all: all && text.len() == 1 },
                content: AppContent { text, rich: None, safe: false, file: None }, dedup_ms: dedup * 5000,
            }),
        1 => (1u64..4).prop_map(|n| Command::AppRecall { agentid: APP, msgid: format!("m{n}") }),
        2 => (arb_user(), "[a-z]{1,4}").prop_map(|(a, t)| send(&a, Target::Conv(keys::app_conv_id(APP, &a)), &t)),
        1 => any::<bool>().prop_map(|on| Command::UpdateApp { agentid: APP, change: AppChange::Enable(on) }),
        2 => (arb_user(), prop::collection::vec(1u64..5, 1..3), prop::option::of(any::<bool>()))
            .prop_map(|(u, depts, enabled)| Command::PutUser { mode: PutMode::Upsert, fields: UserFields {
                userid: u, name: Some("N".into()), departments: Some(depts), enabled, ..Default::default() } }),
        1 => (1u64..8).prop_map(|upto| Command::CallbackDelivered { agentid: APP, upto }),
        1 => (1u64..8).prop_map(|seq| Command::CallbackFailed { agentid: APP, seq, error: "down".into() }),
        1 => (1u64..3, 0u64..3).prop_map(|(work, cursor)| Command::Continue { work, cursor }),
        1 => (arb_user(), any::<bool>())
            .prop_map(|(u, granted)| Command::SetPermission { userid: u, permission: Permission::NoticeUrgent, granted }),
        // Urgent notices (ann may send: see the proptest's seed). Deadlines
        // and intervals around the 1 s spacing of the commands.
        4 => (prop::sample::select(vec!["ann", "ann", "ann", "bob"]), prop::collection::vec(arb_user(), 1..3), prop::collection::vec(1u64..6, 0..2), any::<bool>(), 0u64..50, prop::sample::select(vec![0u64, 5_000, 10_000, 10_000]), 0u32..4)
            .prop_map(|(a, users, parties, all, secs, every, rounds)| Command::SendNotice { actor: a.into(), draft: NoticeDraft {
                to: Recipients { users, parties, all: all && secs % 5 == 0 },
                title: "N".into(), body: "B".into(), deadline_ms: 12_000 + secs * 2_000, remind_every_ms: every, max_rounds: rounds } }),
        3 => (arb_user(), 1u64..4).prop_map(|(a, id)| Command::AckNotice { actor: a, id }),
        1 => (arb_user(), 1u64..4).prop_map(|(a, id)| Command::ReadNotice { actor: a, id }),
        1 => (arb_user(), prop::collection::vec(1u64..4, 0..3)).prop_map(|(a, ids)| Command::NoticeDelivered { actor: a, ids }),
        1 => (prop::option::of(prop::sample::select(vec!["ann".to_string(), "bob".to_string()])), 1u64..4)
            .prop_map(|(actor, id)| Command::WithdrawNotice { actor, id }),
        1 => any::<bool>().prop_map(|on| Command::SetNoticePolicy { policy: NoticePolicy { leaders_may_send: on } }),
        // Announcements (ann may publish) and approvals (template "t":
        // leaders two levels up, then any of eve/fay; see the seed).
        2 => (prop::sample::select(vec!["ann", "ann", "dan"]), prop::collection::vec(1u64..5, 0..2), any::<bool>())
            .prop_map(|(a, parties, all)| Command::PublishAnnouncement { actor: a.into(), draft: AnnouncementDraft {
                to: Recipients { users: vec![], parties, all },
                title: "A".into(), body: vec![Block::Paragraph(vec![Run { text: "b".into(), bold: false, link: None }])],
                attachment: None, pinned_until_ms: 0 } }),
        2 => (arb_user(), 1u64..4).prop_map(|(a, id)| Command::ReadAnnouncement { actor: a, id }),
        1 => (prop::option::of(prop::sample::select(vec!["ann".to_string(), "bob".to_string()])), 1u64..4)
            .prop_map(|(actor, id)| Command::WithdrawAnnouncement { actor, id }),
        3 => (arb_user(), prop::sample::select(vec!["1", "2.5", "x", ""]))
            .prop_map(|(a, days)| Command::SubmitApproval { actor: a, template: "t".into(),
                values: vec![("days".into(), days.into())],
                route: (days == "1").then(|| ApprovalRoute { steps: vec![StepRule::User("eve".into()), StepRule::Leader(1)], cc: vec!["fay".into()] }) }),
        4 => (arb_user(), 1u64..5, prop::option::of(0u32..4), 0u8..5).prop_map(|(a, id, step, k)| Command::ActOnApproval {
            actor: a, id, step, action: match k {
                0 | 1 => ApprovalAction::Approve { comment: String::new() },
                2 => ApprovalAction::Reject { reason: "no".into() },
                3 => ApprovalAction::Comment { text: "c".into() },
                _ => ApprovalAction::Withdraw,
            } }),
        2 => (1u64..4, prop::option::of(1u64..4), prop::collection::vec(arb_user(), 0..3))
            .prop_map(|(id, p, leaders)| Command::UpsertDepartment { dept: Department { leaders, ..dept(id, p) } }),
        1 => any::<bool>().prop_map(|d| Command::SetApprovalTemplateDisabled { id: "t".into(), disabled: d }),
        // Raw leader steps at arbitrary step numbers: mostly stale.
        1 => (1u64..4, 0u64..6, 1u32..4, 0u8..4).prop_map(|(id, step, round, k)| match k {
            0 => Command::NoticeExpand { id, step },
            1 => Command::NoticeRemind { id, round, step },
            2 => Command::NoticeEscalate { id, step },
            _ => Command::NoticeWithdrawStep { id, step },
        }),
        1 => (1u64..4, 0u64..3).prop_map(|(id, step)| Command::AnnouncementExpand { id, step }),
        // Files: recorded (ids 1-3, sometimes twice), sent, recalled (the
        // Recall arm above), swept.
        2 => (1u8..4, arb_user(), 1u64..(9 << 20)).prop_map(|(id, u, size)| Command::RecordFile {
            file: super::tests_files::rec(id, &u, size, "other", FileKind::File) }),
        3 => (arb_user(), arb_conv(), 1u8..4).prop_map(|(a, c, id)| Command::Send {
            actor: a, target: Target::Conv(c), text: String::new(), mentions: vec![], mention_all: false,
            reply_to: None, file: Some(format!("f{id:032x}")) }),
        1 => Just(Command::SweepFiles),
        // External contacts (see `external_seed`: xav and xbo are contacts
        // of ann and bob in x1 and x2, customer group xg3 of ann).
        2 => (arb_user(), 4u8..8).prop_map(|(a, k)| Command::CreateInvitation { actor: a, code_hash: [k; 32] }),
        2 => (1u8..8, arb_external_id()).prop_map(|(k, u)| Command::AcceptInvitation {
            code_hash: [k; 32], userid: u, name: "X".into(), org: "O".into(),
            phone: String::new(), email: String::new(), password_hash: "h".into() }),
        5 => (arb_party(), arb_xconv(), prop::sample::select(vec!["price?", "hello", "PRICE", "ok"]))
            .prop_map(|(a, c, t)| send(&a, Target::Conv(c), t)),
        1 => (arb_party(), prop::collection::vec(arb_party(), 0..3))
            .prop_map(|(a, m)| Command::CreateCustomerGroup { actor: a, name: "C".into(), members: m }),
        1 => (arb_party(), arb_xconv(), prop::collection::vec(arb_party(), 1..3))
            .prop_map(|(a, c, u)| Command::AddMembers { actor: a, conv: c, userids: u }),
        1 => (arb_party(), arb_xconv(), arb_party()).prop_map(|(a, c, t)| Command::TransferOwner { actor: a, conv: c, to: t }),
        1 => (arb_user(), arb_xconv(), 0u8..3).prop_map(|(a, c, k)| Command::SetAutoReplies { actor: a, conv: c, rules: match k {
            0 => vec![],
            1 => vec![AutoReplyRule { keywords: vec!["hello".into()], mode: MatchMode::Exact, answer: "hi".into() }],
            _ => vec![AutoReplyRule { keywords: vec![], mode: MatchMode::Contains, answer: "bad".into() }],
        } }),
        2 => (prop::option::of(arb_user()), arb_user(), arb_party(), prop::collection::vec(arb_external_id(), 0..3), prop::collection::vec(arb_xconv(), 0..2))
            .prop_map(|(actor, from, to, externals, groups)| Command::TransferContacts { actor, from, to, externals, groups, message: String::new() }),
        // Transfers that name real contacts and groups (the seed's, and
        // xcy/xdi if accepted): by an administrator or by eve (a leader,
        // see `external_seed`).
        3 => (prop::sample::select(vec![("ann", "xav"), ("bob", "xbo"), ("ann", "xcy"), ("bob", "xdi")]), arb_user(), any::<bool>(), prop::option::of(Just("eve".to_string())))
            .prop_map(|((from, x), to, group, actor)| Command::TransferContacts {
                actor, from: from.into(), to, externals: vec![x.into()],
                groups: if group { vec!["xg3".into()] } else { vec![] }, message: "m".into() }),
        1 => (prop::option::of(arb_user()), 1u64..4).prop_map(|(actor, id)| Command::CancelTransfer { actor, id }),
        1 => (arb_external_id(), 1u64..4).prop_map(|(actor, id)| Command::ObjectTransfer { actor, id }),
        1 => (1u64..4).prop_map(|id| Command::TransferStep { id }),
        1 => (arb_external_id(), any::<bool>()).prop_map(|(userid, disabled)| Command::SetExternalDisabled { userid, disabled }),
    ]
}

fn arb_external_id() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["xav", "xbo", "xcy", "xdi"]).prop_map(str::to_string)
}

/// An employee or an external account.
fn arb_party() -> impl Strategy<Value = String> {
    prop_oneof![3 => arb_user(), 2 => arb_external_id()]
}

fn arb_xconv() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x1", "x2", "xg3", "x4", "x5", "xg6", "xg7"]).prop_map(str::to_string)
}

/// External contacts on top of `office_seed` (the proptest's and the
/// log-v3 corpus's base): the cluster at log version 3; ann and bob may
/// invite; xav (ann's) and xbo (bob's) accepted, in x1 and x2; ann's
/// customer group xg3 with bob and xav and an auto-reply; an open
/// invitation of ann's; a 5 s objection window.
pub(in crate::domain) fn external_seed(s: &mut MemStore) {
    ok(
        s,
        1,
        Command::SetClusterVersion {
            version: 3,
            forced: false,
        },
    );
    for u in ["ann", "bob"] {
        ok(
            s,
            1,
            Command::SetPermission {
                userid: u.into(),
                permission: Permission::ExternalAdd,
                granted: true,
            },
        );
    }
    for (k, (u, x)) in [("ann", "xav"), ("bob", "xbo")].into_iter().enumerate() {
        let code = [k as u8 + 1; 32];
        ok(
            s,
            1,
            Command::CreateInvitation {
                actor: u.into(),
                code_hash: code,
            },
        );
        ok(
            s,
            1,
            Command::AcceptInvitation {
                code_hash: code,
                userid: x.into(),
                name: x.to_uppercase(),
                org: "Acme".into(),
                phone: String::new(),
                email: String::new(),
                password_hash: "h".into(),
            },
        );
    }
    ok(
        s,
        1,
        Command::CreateInvitation {
            actor: "ann".into(),
            code_hash: [3; 32],
        },
    );
    ok(
        s,
        1,
        Command::CreateCustomerGroup {
            actor: "ann".into(),
            name: "Customers".into(),
            members: vec!["bob".into(), "xav".into()],
        },
    );
    ok(
        s,
        1,
        Command::SetAutoReplies {
            actor: "ann".into(),
            conv: "xg3".into(),
            rules: vec![AutoReplyRule {
                keywords: vec!["price".into()],
                mode: MatchMode::Contains,
                answer: "See the price list.".into(),
            }],
        },
    );
    // eve leads the root department (ann's and bob's leader for
    // in-service transfers).
    for (id, parent) in [(1, None), (2, Some(1))] {
        ok(
            s,
            1,
            Command::UpsertDepartment {
                dept: Department {
                    leaders: vec!["eve".into()],
                    ..dept(id, parent)
                },
            },
        );
    }
    ok(
        s,
        1,
        Command::SetExternalPolicy {
            policy: ExternalPolicy {
                transfer_window_ms: 5_000,
                ..Default::default()
            },
        },
    );
}

const APP: u32 = 1_000_002;

/// `seeded()` plus an app with every scope and a callback.
pub(in crate::domain) fn seeded_with_app() -> MemStore {
    let mut s = seeded();
    ok(
        &mut s,
        1,
        Command::CreateApp {
            name: "App".into(),
            // The scopes there were when the log-v1 corpus was written
            // (its base state has this app): every scope but
            // `externalcontact`.
            scopes: Scope::ALL[..6].to_vec(),
            secret_hash: [1; 32],
            trusted_domains: vec![],
            corp: Corp {
                corpid: "ww0000000000000001".into(),
                token_key: [2; 32],
            },
        },
    );
    ok(
        &mut s,
        1,
        Command::UpdateApp {
            agentid: APP,
            change: AppChange::SetCallback(Some(CallbackCfg {
                url: "https://10.0.0.1/cb".into(),
                token: "t".into(),
                aes_key: "a".repeat(43),
            })),
        },
    );
    s
}

/// Every invariant the domain promises, checked over the whole state.
pub(in crate::domain) fn check_invariants(s: &MemStore) {
    check_change_index(s);
    super::tests_notices::check_notice_invariants(s);
    super::tests_office::check_office_invariants(s);
    super::tests_files::check_file_invariants(s);
    super::tests_external::check_external_invariants(s);
    // Only members who have not departed hold permissions.
    for p in Permission::ALL {
        for (k, _) in s
            .scan(&keys::permission_holders(p.as_str()), None, usize::MAX)
            .expect("scan")
        {
            let u = keys::tail_str(&k);
            let m: Member = s
                .get_as(&keys::user(&u))
                .expect("get")
                .expect("holder is a member");
            assert_ne!(
                m.status,
                MemberStatus::Departed,
                "departed {u} holds {}",
                p.as_str()
            );
        }
    }
    let head = query::head(s).expect("head");
    // Global events: numbers 1..=head, each exactly once.
    let mut numbers = BTreeSet::new();
    for ev in all_events(s) {
        assert!(numbers.insert(ev.no), "event {} twice", ev.no);
    }
    assert_eq!(numbers.len() as u64, head, "event numbers have a gap");
    assert!(numbers.iter().copied().eq(1..=head));
    // Conversations: gap-free messages, consistent membership, markers.
    for (_, c) in s
        .scan_as::<Conversation>(b"conv/", None, usize::MAX)
        .expect("scan")
    {
        let msgs = s
            .scan_as::<Message>(&keys::messages(&c.id), None, usize::MAX)
            .expect("scan");
        let seqs: Vec<u64> = msgs.iter().map(|(_, m)| m.seq).collect();
        assert!(
            seqs.iter().copied().eq(1..=c.last_seq),
            "{}: seqs {seqs:?}",
            c.id
        );
        let members = query::conversation_members(s, &c.id, None, usize::MAX).expect("members");
        assert_eq!(
            members.len() as u32,
            c.member_count,
            "{}: member count",
            c.id
        );
        for (u, m) in &members {
            assert!(m.read_seq <= c.last_seq && m.delivered_seq <= c.last_seq);
            assert!(m.read_seq <= m.delivered_seq);
            let uc: UserConv = s
                .get_as(&keys::user_conv(u, &c.id))
                .expect("get")
                .expect("uc exists");
            assert_eq!(uc.left_event, None, "{u} in {} but marked left", c.id);
        }
        if c.kind.is_group() {
            assert!(
                members.iter().any(|(u, _)| *u == c.owner),
                "{}: owner not a member",
                c.id
            );
            for a in &c.admins {
                assert!(
                    members.iter().any(|(u, _)| u == a),
                    "{}: admin {a} not a member",
                    c.id
                );
            }
        } else if c.kind == ConvKind::App || c.kind == ConvKind::Notice {
            assert_eq!(
                members.len(),
                1,
                "{}: an app conversation or notice inbox has its member only",
                c.id
            );
        } else {
            assert_eq!(members.len(), 2);
        }
    }
    // Callback queues: exactly the unacknowledged events are stored.
    for (k, st) in s
        .scan_as::<CallbackState>(b"cbst/", None, usize::MAX)
        .expect("scan")
    {
        let id = u32::from_be_bytes(k[5..9].try_into().expect("agentid"));
        let seqs: Vec<u64> = query::callback_items(s, id, usize::MAX)
            .expect("items")
            .iter()
            .map(|i| i.seq)
            .collect();
        let want: Vec<u64> = (st.acked + 1..st.next.max(1)).collect();
        assert_eq!(seqs, want, "app {id}: queue {st:?}");
    }
    // Department tree: every chain of parents ends at the root.
    let depts: BTreeMap<u64, Department> = query::departments(s)
        .expect("depts")
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    for d in depts.values() {
        let mut at = d.parent;
        let mut steps = 0;
        while let Some(p) = at {
            steps += 1;
            assert!(steps <= depts.len(), "cycle through {}", d.id);
            at = depts.get(&p).expect("parent exists").parent;
        }
    }
    // Members' departments exist unless they departed.
    for m in query::members(s, None, usize::MAX).expect("members") {
        if m.status != MemberStatus::Departed {
            for d in &m.departments {
                assert!(
                    depts.contains_key(d),
                    "{} in missing department {d}",
                    m.userid
                );
            }
        }
    }
}

/// The proptest's seed: ann sends notices and publishes announcements;
/// template "t" goes two levels of leaders up, then to eve or fay.
pub(in crate::domain) fn office_seed(s: &mut MemStore) {
    for p in [Permission::NoticeUrgent, Permission::AnnouncementPublish] {
        ok(
            s,
            1,
            Command::SetPermission {
                userid: "ann".into(),
                permission: p,
                granted: true,
            },
        );
    }
    ok(
        s,
        1,
        Command::PutApprovalTemplate {
            template: ApprovalTemplate {
                id: "t".into(),
                name: "T".into(),
                fields: vec![FieldDef {
                    key: "days".into(),
                    label: "Days".into(),
                    kind: FieldKind::Number,
                    required: true,
                    options: vec![],
                }],
                flow: vec![
                    FlowStep::Leaders(2),
                    FlowStep::AnyOf(vec!["eve".into(), "fay".into()]),
                ],
                cc: vec!["bob".into()],
                disabled: false,
                version: 0,
            },
        },
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_every_invariant_and_replay_identically(
        cmds in prop::collection::vec((arb_command(), any::<bool>()), 1..80),
        v4_at in 0usize..120,
        v5_at in 0usize..120,
    ) {
        let mut s = seeded_with_app();
        office_seed(&mut s);
        external_seed(&mut s);
        // Every command applied, the leader's notice steps included, with
        // its time: the log to replay.
        let mut log: Vec<(u64, Command)> = Vec::new();
        for (i, (cmd, lead)) in cmds.iter().enumerate() {
            let t = 100 + i as u64 * 1000;
            // The cluster moves to log version 4 (the change index) and 5
            // (messages stored once) part-way, or not at all; straight to
            // 5 when that comes first.
            for (at, version) in [(v4_at, 4), (v5_at, 5)] {
                if i != at || apply::cluster_version(&s).expect("read") >= version {
                    continue;
                }
                let up = Command::SetClusterVersion { version, forced: false };
                let (outcome, _) = apply(&mut s, &ctx(t), &up).expect("storage");
                prop_assert!(outcome.is_ok());
                log.push((t, up));
            }
            let mut batch = vec![cmd.clone()];
            if *lead {
                // The leader's turn: the step of every notice due now,
                // proposed twice (the second must be stale).
                for n in query::notices_due(&s, t, 16).expect("due") {
                    if let Some(step) = apply::notices::next_step(&n) {
                        batch.push(step.clone());
                        batch.push(step);
                    }
                }
                for a in query::announcements_due(&s, 16).expect("due") {
                    let step = Command::AnnouncementExpand { id: a.id, step: a.steps };
                    batch.push(step.clone());
                    batch.push(step);
                }
                for t in external::transfers_due(&s, t, 16).expect("due") {
                    let step = Command::TransferStep { id: t.id };
                    batch.push(step.clone());
                    batch.push(step);
                }
            }
            for (j, c) in batch.iter().enumerate() {
                let before = s.hash();
                let (outcome, events) = apply(&mut s, &ctx(t), c).expect("storage");
                if outcome.is_err() {
                    prop_assert_eq!(&before, &s.hash(), "refused {:?} changed state", c);
                    prop_assert!(events.is_empty());
                }
                if j >= 2 && j % 2 == 0 {
                    prop_assert!(outcome.is_err(), "a leader step applied twice: {:?}", c);
                }
                log.push((t, c.clone()));
                check_invariants(&s);
            }
        }
        // Same log, fresh store: byte-identical state.
        let mut again = seeded_with_app();
        office_seed(&mut again);
        external_seed(&mut again);
        for (t, cmd) in &log {
            let _ = apply(&mut again, &ctx(*t), cmd).expect("storage");
        }
        prop_assert_eq!(s.hash(), again.hash());
        // Every user's sync, paged, returns each of their events once, in order.
        for u in USERS {
            let full = query::sync(&s, u, 0, usize::MAX / 2).expect("sync");
            let mut token = 0;
            let mut got = Vec::new();
            loop {
                let page = query::sync(&s, u, token, 3).expect("sync");
                got.extend(page.events.iter().map(|e| e.no));
                prop_assert!(page.next >= token);
                token = page.next;
                if !page.more { break; }
            }
            let want: Vec<u64> = full.events.iter().map(|e| e.no).collect();
            prop_assert_eq!(got, want);
            // Whichever way sync finds the conversations (the change
            // index or the member's list), it answers what reading every
            // conversation of theirs would, from every token.
            let head = query::head(&s).expect("head");
            for since in [0, head / 3, head / 2, head.saturating_sub(3), head.saturating_sub(1), head] {
                for limit in [2, usize::MAX / 2] {
                    let page = query::sync(&s, u, since, limit).expect("sync");
                    let naive = naive_sync(&s, u, since, limit);
                    prop_assert_eq!(
                        page.events.iter().map(|e| e.no).collect::<Vec<_>>(),
                        naive.iter().map(|e| e.no).collect::<Vec<_>>(),
                        "{} from {}", u, since
                    );
                }
            }
        }
    }
}
