//! Tests of external contacts over the in-memory store: invitations once
//! and in time, what an external account may not do, the hand-over of a
//! departed employee's contacts and groups with their whole history, the
//! objection window of an in-service transfer, keyword auto-replies once
//! per message, the refusals, and the invariants the property test checks.

use std::collections::BTreeSet;

use super::store::StoreExt;
use super::tests::{check_invariants, external_seed, ok, refused, seeded};
use super::*;

mod invariants;
pub(super) use invariants::{Counting, check_external_invariants};

const T0: u64 = 1_000_000;

fn send(actor: &str, conv: &str, text: &str) -> Command {
    Command::Send {
        actor: actor.into(),
        target: Target::Conv(conv.into()),
        text: text.into(),
        mentions: vec![],
        mention_all: false,
        reply_to: None,
        file: None,
    }
}

fn accept(code: u8, userid: &str) -> Command {
    Command::AcceptInvitation {
        code_hash: [code; 32],
        userid: userid.into(),
        name: format!("{userid} name"),
        org: "Acme Ltd".into(),
        phone: String::new(),
        email: String::new(),
        password_hash: "$argon2id$x".into(),
    }
}

fn invite(actor: &str, code: u8) -> Command {
    Command::CreateInvitation {
        actor: actor.into(),
        code_hash: [code; 32],
    }
}

/// `seeded()` plus `external_seed` (xav: ann's contact in x1, xbo: bob's
/// in x2, ann's customer group xg3 with bob and xav).
fn world() -> MemStore {
    let mut s = seeded();
    external_seed(&mut s);
    s
}

fn messages(s: &MemStore, userid: &str, conv: &str) -> Vec<Message> {
    let (_, me) = query::conversation_for(s, userid, conv)
        .expect("read")
        .unwrap_or_else(|r| panic!("{userid} cannot read {conv}: {r:?}"));
    query::messages(s, &me, conv, 0, usize::MAX).expect("messages")
}

/// dept 1's leader is eve; ann is in dept 1 (seeded): eve may transfer
/// ann's contacts while ann is still active.
fn eve_leads_ann(s: &mut MemStore) {
    ok(
        s,
        T0,
        Command::UpsertDepartment {
            dept: Department {
                leaders: vec!["eve".into()],
                ..super::tests::dept(1, None)
            },
        },
    );
}

fn transfer_of(d: Done) -> Transfer {
    match d {
        Done::Transfer(t) => t,
        other => panic!("expected a transfer, got {other:?}"),
    }
}

#[test]
fn external_commands_wait_for_log_version_3() {
    let mut s = seeded();
    ok(
        &mut s,
        1,
        Command::SetPermission {
            userid: "ann".into(),
            permission: Permission::ExternalAdd,
            granted: true,
        },
    );
    assert_eq!(
        refused(&mut s, T0, invite("ann", 9)),
        Code::ClusterUpgrading
    );
    ok(
        &mut s,
        T0,
        Command::SetClusterVersion {
            version: 3,
            forced: false,
        },
    );
    ok(&mut s, T0, invite("ann", 9));
}

#[test]
fn an_invitation_works_once_and_in_time() {
    let mut s = world();
    let Done::Invitation { expires_ms } = ok(&mut s, T0, invite("ann", 20)) else {
        panic!("invitation");
    };
    assert_eq!(expires_ms, T0 + ExternalPolicy::default().invitation_ttl_ms);
    // Forged: a code never issued.
    assert_eq!(refused(&mut s, T0, accept(21, "xzz")), Code::NotFound);
    let Done::ExternalAccount { external, conv } = ok(&mut s, T0 + 1, accept(20, "xzz")) else {
        panic!("account");
    };
    assert_eq!(external.invited_by, "ann");
    let c = query::conversation(&s, &conv).expect("read").expect("conv");
    assert_eq!(c.kind, ConvKind::Contact);
    assert_eq!(c.owner, "ann");
    // Used: refused, nothing changes.
    let before = s.hash();
    assert_eq!(
        refused(&mut s, T0 + 2, accept(20, "xyy")),
        Code::AlreadyUsed
    );
    assert_eq!(before, s.hash());
    // Expired.
    ok(&mut s, T0, invite("ann", 22));
    let late = T0 + ExternalPolicy::default().invitation_ttl_ms;
    assert_eq!(refused(&mut s, late, accept(22, "xyy")), Code::Expired);
    // The userid namespace is shared with members.
    ok(&mut s, T0, invite("ann", 23));
    assert_eq!(refused(&mut s, T0, accept(23, "bob")), Code::AlreadyExists);
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::CreateMember {
                member: super::tests::member("xzz", 1),
                password_hash: None,
            }
        ),
        Code::AlreadyExists
    );
    // Without the permission, no invitation.
    assert_eq!(refused(&mut s, T0, invite("cai", 24)), Code::Forbidden);
    check_invariants(&s);
}

#[test]
fn invitations_count_against_the_employees_limit() {
    let mut s = world();
    ok(
        &mut s,
        T0,
        Command::SetExternalPolicy {
            policy: ExternalPolicy {
                max_contacts_per_employee: 3,
                ..Default::default()
            },
        },
    );
    // ann has xav and the seed's open invitation: one more fits.
    ok(&mut s, T0, invite("ann", 30));
    let before = s.hash();
    assert_eq!(refused(&mut s, T0, invite("ann", 31)), Code::LimitExceeded);
    assert_eq!(before, s.hash());
    // An expired invitation frees its place.
    let later = T0 + ExternalPolicy::default().invitation_ttl_ms + 1;
    ok(&mut s, later, invite("ann", 31));
}

#[test]
fn an_external_account_stays_in_its_own_conversations() {
    let mut s = world();
    ok(
        &mut s,
        T0,
        Command::CreateGroup {
            actor: "ann".into(),
            name: "Internal".into(),
            members: vec!["bob".into()],
        },
    );
    let internal = "g1";
    ok(&mut s, T0, send("ann", internal, "internal only"));
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::CreateGroup {
                actor: "xav".into(),
                name: "Mine".into(),
                members: vec!["ann".into()],
            }
        ),
        Code::Forbidden
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::AddMembers {
                actor: "ann".into(),
                conv: internal.into(),
                userids: vec!["xav".into()],
            }
        ),
        Code::Forbidden
    );
    assert_eq!(
        refused(&mut s, T0, send("xav", internal, "let me in")),
        Code::NotAMember
    );
    assert!(
        query::conversation_for(&s, "xav", internal)
            .expect("read")
            .is_err()
    );
    // A 1:1 outside the contact conversation: no.
    assert!(matches!(
        refused(
            &mut s,
            T0,
            Command::Send {
                actor: "xav".into(),
                target: Target::Direct("cai".into()),
                text: "hi".into(),
                mentions: vec![],
                mention_all: false,
                reply_to: None,
                file: None,
            }
        ),
        Code::NotFound
    ));
    // Nor own a group or manage one.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::TransferOwner {
                actor: "ann".into(),
                conv: "xg3".into(),
                to: "xav".into(),
            }
        ),
        Code::Forbidden
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::SetAdmins {
                actor: "ann".into(),
                conv: "xg3".into(),
                admins: vec!["xav".into()],
            }
        ),
        Code::Forbidden
    );
    // Broadcasts and the directory never see them.
    assert!(
        query::members(&s, None, usize::MAX)
            .expect("members")
            .iter()
            .all(|m| !m.userid.starts_with('x'))
    );
    // The contact conversation works both ways.
    ok(&mut s, T0, send("xav", "x1", "hello ann"));
    ok(&mut s, T0, send("ann", "x1", "hello xav"));
    check_invariants(&s);
}

#[test]
fn a_departed_employees_contacts_and_groups_go_to_a_colleague_with_their_history() {
    let mut s = world();
    // ann: two more contacts (three in all) and a second customer group.
    for (code, x) in [(40u8, "xcy"), (41, "xdi")] {
        ok(&mut s, T0, invite("ann", code));
        ok(&mut s, T0, accept(code, x));
    }
    let Done::Conversation(g2) = ok(
        &mut s,
        T0,
        Command::CreateCustomerGroup {
            actor: "ann".into(),
            name: "Key accounts".into(),
            members: vec!["xcy".into(), "xdi".into()],
        },
    ) else {
        panic!("group");
    };
    ok(&mut s, T0 + 1, send("xav", "x1", "order 17 is late"));
    ok(&mut s, T0 + 2, send("ann", "x1", "I will check"));
    ok(&mut s, T0 + 3, send("xcy", &g2.id, "hello all"));
    ok(
        &mut s,
        T0 + 10,
        Command::SetMemberStatus {
            userid: "ann".into(),
            status: MemberStatus::Departed,
        },
    );
    let un = external::unassigned(&s, None, 10).expect("unassigned");
    assert_eq!(un.len(), 1);
    assert_eq!(un[0].employee, "ann");
    assert_eq!(un[0].externals, vec!["xav", "xcy", "xdi"]);
    let mut groups = un[0].groups.clone();
    groups.sort();
    let mut want = vec![g2.id.clone(), "xg3".to_string()];
    want.sort();
    assert_eq!(groups, want);
    // To a departed, external or unknown account: refused, nothing moves.
    let all = |to: &str| Command::TransferContacts {
        actor: None,
        from: "ann".into(),
        to: to.into(),
        externals: vec!["xav".into(), "xcy".into(), "xdi".into()],
        groups: vec![g2.id.clone(), "xg3".into()],
        message: String::new(),
    };
    ok(
        &mut s,
        T0 + 11,
        Command::SetMemberStatus {
            userid: "fay".into(),
            status: MemberStatus::Departed,
        },
    );
    let before = s.hash();
    assert_eq!(refused(&mut s, T0 + 12, all("fay")), Code::AccountInactive);
    assert_eq!(refused(&mut s, T0 + 12, all("xbo")), Code::InvalidArgument);
    assert_eq!(refused(&mut s, T0 + 12, all("nobody")), Code::NotFound);
    assert_eq!(refused(&mut s, T0 + 12, all("ann")), Code::InvalidArgument);
    // A leader may not hand over a departed employee's contacts.
    assert_eq!(
        refused(
            &mut s,
            T0 + 12,
            Command::TransferContacts {
                actor: Some("bob".into()),
                from: "ann".into(),
                to: "cai".into(),
                externals: vec!["xav".into()],
                groups: vec![],
                message: String::new(),
            }
        ),
        Code::Forbidden
    );
    assert_eq!(before, s.hash());
    // An administrator transfers all five to cai: at once.
    let t = transfer_of(ok(&mut s, T0 + 20, all("cai")));
    assert_eq!(t.status, TransferStatus::Done);
    assert!(external::unassigned(&s, None, 10).expect("read").is_empty());
    let mine: Vec<String> = external::contacts_of(&s, "cai")
        .expect("contacts")
        .into_iter()
        .map(|(x, _)| x)
        .collect();
    assert_eq!(mine, vec!["xav", "xcy", "xdi"]);
    // cai reads the whole earlier history of the 1:1 and the group.
    let texts: Vec<String> = messages(&s, "cai", "x1")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts[0], "order 17 is late");
    assert_eq!(texts[1], "I will check");
    let last = messages(&s, "xav", "x1").pop().expect("hand-over notice");
    assert_eq!(last.sender, HANDOVER_SENDER);
    assert!(last.text.contains("cai"), "{}", last.text);
    assert!(
        messages(&s, "cai", &g2.id)
            .iter()
            .any(|m| m.text == "hello all")
    );
    let g = query::conversation(&s, &g2.id).expect("read").expect("g");
    assert_eq!(g.owner, "cai");
    // ann is out of them; their sync shows no new conversations for cai
    // missing: cai's conversation list has all four.
    assert!(
        query::conversation_for(&s, "ann", "x1")
            .expect("read")
            .is_err()
    );
    let convs: BTreeSet<String> = query::conversations(&s, "cai", None, 100)
        .expect("convs")
        .into_iter()
        .map(|(c, _)| c.id)
        .collect();
    for c in ["x1", "xg3", &g2.id] {
        assert!(convs.contains(c), "cai lacks {c}: {convs:?}");
    }
    check_invariants(&s);
}

#[test]
fn an_in_service_transfer_waits_for_the_window_and_can_be_cancelled_or_objected_to() {
    let mut s = world();
    eve_leads_ann(&mut s);
    ok(&mut s, T0, invite("ann", 50));
    ok(&mut s, T0, accept(50, "xcy"));
    let req = |actor: &str| Command::TransferContacts {
        actor: Some(actor.into()),
        from: "ann".into(),
        to: "cai".into(),
        externals: vec!["xav".into(), "xcy".into()],
        groups: vec!["xg3".into()],
        message: "Cai knows your account well.".into(),
    };
    // Not ann's leader.
    assert_eq!(refused(&mut s, T0, req("dan")), Code::Forbidden);
    let t = transfer_of(ok(&mut s, T0, req("eve")));
    assert_eq!(t.status, TransferStatus::Waiting);
    assert_eq!(t.due_ms, T0 + 5_000);
    // The contact is told and may object; the same items cannot be in a
    // second transfer meanwhile.
    assert!(
        messages(&s, "xav", "x1")
            .last()
            .is_some_and(|m| m.sender == HANDOVER_SENDER && m.text.contains("unless you object"))
    );
    assert_eq!(refused(&mut s, T0, req("eve")), Code::AlreadyExists);
    ok(
        &mut s,
        T0 + 1,
        Command::ObjectTransfer {
            actor: "xcy".into(),
            id: t.id,
        },
    );
    // The contacts find it; the one who objected no longer does.
    let waiting = |s: &MemStore, x: &str| -> Vec<u64> {
        external::waiting_transfers_of(s, x)
            .expect("read")
            .iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(waiting(&s, "xav"), vec![t.id]);
    assert!(waiting(&s, "xcy").is_empty());
    // Too early: stale, nothing moves.
    assert_eq!(
        refused(&mut s, T0 + 4_999, Command::TransferStep { id: t.id }),
        Code::Stale
    );
    assert_eq!(
        external::transfers_due(&s, T0 + 4_999, 10)
            .expect("due")
            .len(),
        0
    );
    assert_eq!(
        external::transfers_due(&s, T0 + 5_000, 10)
            .expect("due")
            .len(),
        1
    );
    let done = transfer_of(ok(&mut s, T0 + 5_000, Command::TransferStep { id: t.id }));
    assert_eq!(done.status, TransferStatus::Done);
    assert_eq!(
        refused(&mut s, T0 + 5_001, Command::TransferStep { id: t.id }),
        Code::Stale
    );
    // xav moved; xcy objected and stayed; the group moved, ann (active)
    // stays a member of it.
    assert!(external::contact(&s, "cai", "xav").expect("read").is_some());
    assert!(external::contact(&s, "ann", "xcy").expect("read").is_some());
    let g = query::conversation(&s, "xg3").expect("read").expect("g");
    assert_eq!(g.owner, "cai");
    assert!(
        query::conversation_for(&s, "ann", "xg3")
            .expect("read")
            .is_ok()
    );
    // A second one, cancelled before its end: nothing moves.
    let t2 = transfer_of(ok(
        &mut s,
        T0 + 6_000,
        Command::TransferContacts {
            actor: Some("eve".into()),
            from: "ann".into(),
            to: "dan".into(),
            externals: vec!["xcy".into()],
            groups: vec![],
            message: String::new(),
        },
    ));
    assert_eq!(
        refused(
            &mut s,
            T0 + 6_001,
            Command::CancelTransfer {
                actor: Some("dan".into()),
                id: t2.id
            }
        ),
        Code::Forbidden
    );
    let c = transfer_of(ok(
        &mut s,
        T0 + 6_001,
        Command::CancelTransfer {
            actor: Some("eve".into()),
            id: t2.id,
        },
    ));
    assert_eq!(c.status, TransferStatus::Cancelled);
    assert_eq!(
        refused(&mut s, T0 + 20_000, Command::TransferStep { id: t2.id }),
        Code::Stale
    );
    assert!(external::contact(&s, "ann", "xcy").expect("read").is_some());
    check_invariants(&s);
}

/// Found by the property test: a contact who objected is free at once and
/// may wait in a newer transfer; the end of the older one must not free
/// the newer one's hold.
#[test]
fn the_end_of_an_objected_transfer_leaves_a_newer_transfers_hold() {
    let mut s = world();
    eve_leads_ann(&mut s);
    let req = || Command::TransferContacts {
        actor: Some("eve".into()),
        from: "ann".into(),
        to: "cai".into(),
        externals: vec!["xav".into()],
        groups: vec![],
        message: String::new(),
    };
    let t1 = transfer_of(ok(&mut s, T0, req()));
    ok(
        &mut s,
        T0 + 1,
        Command::ObjectTransfer {
            actor: "xav".into(),
            id: t1.id,
        },
    );
    let t2 = transfer_of(ok(&mut s, T0 + 2, req()));
    let waiting = |s: &MemStore| -> Vec<u64> {
        external::waiting_transfers_of(s, "xav")
            .expect("read")
            .iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(waiting(&s), vec![t2.id]);
    ok(&mut s, t1.due_ms, Command::TransferStep { id: t1.id });
    assert_eq!(waiting(&s), vec![t2.id], "t2 still holds xav");
    check_invariants(&s);
    // A third transfer of xav is still refused while t2 waits.
    assert_eq!(refused(&mut s, T0 + 3, req()), Code::AlreadyExists);
    ok(&mut s, t2.due_ms, Command::TransferStep { id: t2.id });
    assert!(external::contact(&s, "cai", "xav").expect("read").is_some());
    check_invariants(&s);
}

#[test]
fn a_keyword_auto_reply_answers_external_members_once() {
    let mut s = world();
    // xav (external) asks: one reply, from the assistant, in the same
    // command.
    let (outcome, events) = apply(
        &mut s,
        &super::tests::ctx(T0),
        &send("xav", "xg3", "What is the PRICE?"),
    )
    .expect("storage");
    let Ok(Done::Message(m)) = outcome else {
        panic!("send");
    };
    let replies: Vec<&Event> = events
        .iter()
        .filter(|e| e.actor == assistant_sender("xg3"))
        .collect();
    assert_eq!(replies.len(), 1);
    let all = messages(&s, "ann", "xg3");
    let reply = all.last().expect("reply");
    assert_eq!(reply.sender, assistant_sender("xg3"));
    assert_eq!(reply.reply_to, Some(m.seq));
    assert_eq!(reply.text, "See the price list.");
    // An employee's message never triggers it; nor a non-matching one.
    let n = all.len();
    ok(&mut s, T0, send("bob", "xg3", "price is 5"));
    ok(&mut s, T0, send("xav", "xg3", "thanks"));
    assert_eq!(messages(&s, "ann", "xg3").len(), n + 2);
    // Exact mode.
    ok(
        &mut s,
        T0,
        Command::SetAutoReplies {
            actor: "ann".into(),
            conv: "xg3".into(),
            rules: vec![AutoReplyRule {
                keywords: vec!["hours".into()],
                mode: MatchMode::Exact,
                answer: "9-17".into(),
            }],
        },
    );
    ok(&mut s, T0, send("xav", "xg3", "opening hours?"));
    ok(&mut s, T0, send("xav", "xg3", " Hours "));
    let last = messages(&s, "ann", "xg3");
    assert_eq!(last.last().map(|m| m.text.as_str()), Some("9-17"));
    assert_eq!(
        last.iter().filter(|m| m.text == "9-17").count(),
        1,
        "only the exact match is answered"
    );
    // Malformed rules and non-owners are refused, the rules stay.
    let before = s.hash();
    for rules in [
        vec![AutoReplyRule {
            keywords: vec![],
            mode: MatchMode::Exact,
            answer: "a".into(),
        }],
        vec![AutoReplyRule {
            keywords: vec!["  ".into()],
            mode: MatchMode::Exact,
            answer: "a".into(),
        }],
        vec![AutoReplyRule {
            keywords: vec!["k".into()],
            mode: MatchMode::Exact,
            answer: " ".into(),
        }],
        vec![AutoReplyRule {
            keywords: vec!["k".repeat(65)],
            mode: MatchMode::Exact,
            answer: "a".into(),
        }],
    ] {
        assert_eq!(
            refused(
                &mut s,
                T0,
                Command::SetAutoReplies {
                    actor: "ann".into(),
                    conv: "xg3".into(),
                    rules,
                }
            ),
            Code::InvalidArgument
        );
    }
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::SetAutoReplies {
                actor: "bob".into(),
                conv: "xg3".into(),
                rules: vec![],
            }
        ),
        Code::Forbidden
    );
    assert_eq!(before, s.hash());
    check_invariants(&s);
}

#[test]
fn customer_groups_take_contacts_and_employees_within_the_limit() {
    let mut s = world();
    ok(
        &mut s,
        T0,
        Command::SetExternalPolicy {
            policy: ExternalPolicy {
                max_customer_group_members: 3,
                ..Default::default()
            },
        },
    );
    // bob's contact is not ann's to add.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::CreateCustomerGroup {
                actor: "ann".into(),
                name: "C".into(),
                members: vec!["xbo".into()],
            }
        ),
        Code::Forbidden
    );
    let before = s.hash();
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::CreateCustomerGroup {
                actor: "ann".into(),
                name: "C".into(),
                members: vec!["xav".into(), "bob".into(), "cai".into()],
            }
        ),
        Code::LimitExceeded
    );
    // xg3 has ann, bob, xav: full.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::AddMembers {
                actor: "ann".into(),
                conv: "xg3".into(),
                userids: vec!["cai".into()],
            }
        ),
        Code::LimitExceeded
    );
    assert_eq!(before, s.hash());
    // Supervision: ann has one contact, one group, and the messages she
    // sends to externals are counted by day.
    ok(&mut s, T0, send("ann", "x1", "hello"));
    ok(&mut s, T0, send("ann", "xg3", "hello all"));
    let ann = query::member(&s, "ann").expect("read").expect("ann");
    let day = day_of(T0);
    let sup = external::supervision(&s, &ann, day, day).expect("sup");
    assert_eq!(
        (sup.contacts, sup.customer_groups, sup.messages_to_externals),
        (1, 1, 2)
    );
    check_invariants(&s);
}
