//! Tests of urgent notices over the in-memory store: who receives them,
//! bad input, expansion in bounded steps, reminder rounds and escalation
//! applied exactly once, acknowledgements, withdrawal.

use std::collections::BTreeMap;

use super::store::StoreExt;
use super::tests::{check_invariants, ctx, dept, member, ok, refused, seeded};
use super::*;

const T0: u64 = 1_000_000;
const MIN: u64 = 60_000;

fn draft(to: Recipients, deadline_ms: u64, every: u64, rounds: u32) -> NoticeDraft {
    NoticeDraft {
        to,
        title: "台风预警".into(),
        body: "请立即确认收到".into(),
        deadline_ms,
        remind_every_ms: every,
        max_rounds: rounds,
    }
}

fn to_users(users: &[&str]) -> Recipients {
    Recipients {
        users: users.iter().map(|u| u.to_string()).collect(),
        parties: vec![],
        all: false,
    }
}

fn to_depts(depts: &[u64]) -> Recipients {
    Recipients {
        users: vec![],
        parties: depts.to_vec(),
        all: false,
    }
}

fn grant(s: &mut MemStore, u: &str) {
    ok(
        s,
        T0 - 1,
        Command::SetPermission {
            userid: u.into(),
            permission: Permission::NoticeUrgent,
            granted: true,
        },
    );
}

/// `seeded()` (ann, dan in 1; bob, eve in 2; cai, fay in 3 under 2) with
/// dan leading 1 and bob leading 2, and ann allowed to send.
fn org() -> MemStore {
    let mut s = seeded();
    let mut d1 = dept(1, None);
    d1.leaders = vec!["dan".into()];
    ok(&mut s, T0 - 1, Command::UpsertDepartment { dept: d1 });
    let mut d2 = dept(2, Some(1));
    d2.leaders = vec!["bob".into()];
    ok(&mut s, T0 - 1, Command::UpsertDepartment { dept: d2 });
    grant(&mut s, "ann");
    s
}

fn notice(s: &MemStore, id: u64) -> Notice {
    s.get_as(&keys::notice(id)).expect("get").expect("notice")
}

fn sent_id(d: Done) -> u64 {
    match d {
        Done::Notice(n) => n.id,
        other => panic!("not a notice: {other:?}"),
    }
}

/// Apply a command, keeping its events; panics on a storage fault.
fn step(s: &mut MemStore, t: u64, cmd: &Command, log: &mut Vec<Event>) -> Outcome {
    let (out, events) = apply(s, &ctx(t), cmd).expect("storage");
    log.extend(events);
    check_invariants(s);
    out
}

/// Act as the leader at time `t`: apply the step every due notice names,
/// until none is due. Each step is also proposed a second time (a
/// deposed leader's copy): that must be refused as stale.
fn lead(s: &mut MemStore, t: u64, log: &mut Vec<Event>) -> usize {
    let mut steps = 0;
    loop {
        let due: Vec<u64> = s
            .scan(keys::NOTICE_DUE, None, usize::MAX)
            .expect("scan")
            .into_iter()
            .filter(|(k, _)| u64::from_be_bytes(k[5..13].try_into().expect("8")) <= t)
            .map(|(k, _)| u64::from_be_bytes(k[13..21].try_into().expect("8")))
            .collect();
        let mut moved = false;
        for id in due {
            let Some(cmd) = apply::notices::next_step(&notice(s, id)) else {
                continue;
            };
            step(s, t, &cmd, log).unwrap_or_else(|r| panic!("{cmd:?}: {r:?}"));
            let before = s.hash();
            let again = step(s, t, &cmd, log);
            assert_eq!(again.map_err(|r| r.code), Err(Code::Stale), "{cmd:?} twice");
            assert_eq!(before, s.hash());
            steps += 1;
            moved = true;
        }
        if !moved {
            return steps;
        }
        assert!(steps < 10_000, "the leader never finishes");
    }
}

fn count(log: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    log.iter().filter(|e| f(e)).count()
}

fn inbox(u: &str) -> String {
    keys::notice_conv_id(u)
}

#[test]
fn a_notice_reaches_users_and_subdepartments_once_not_the_sender_nor_the_inactive() {
    let mut s = org();
    ok(
        &mut s,
        T0,
        Command::SetMemberStatus {
            userid: "fay".into(),
            status: MemberStatus::Disabled,
        },
    );
    let mut log = Vec::new();
    // bob and cai listed, and department 2 with 3 below it: bob, eve, cai
    // (fay is disabled; ann sends).
    let mut to = to_depts(&[2]);
    to.users = vec!["bob".into(), "cai".into(), "ann".into()];
    let d = step(
        &mut s,
        T0,
        &Command::SendNotice {
            actor: "ann".into(),
            draft: draft(to, T0 + 30 * MIN, 0, 0),
        },
        &mut log,
    )
    .expect("sent");
    let id = sent_id(d);
    let n = notice(&s, id);
    assert_eq!(n.counts.recipients, 3);
    assert_eq!(n.phase, NoticePhase::Waiting);
    assert_eq!(n.remind_every_ms, apply::notices::DEFAULT_REMIND_MS);
    assert_eq!(n.due_ms, T0 + apply::notices::DEFAULT_REMIND_MS);
    for u in ["bob", "cai", "eve"] {
        assert_eq!(
            count(&log, |e| e.conv == inbox(u)
                && matches!(&e.body, EventBody::Notice { notice } if notice.id == id && notice.body == "请立即确认收到")),
            1,
            "{u}"
        );
    }
    for u in ["ann", "fay", "dan"] {
        assert_eq!(
            count(&log, |e| e.conv == inbox(u)
                && matches!(e.body, EventBody::Notice { .. })),
            0,
            "{u}"
        );
    }
    // The sender is told it went out.
    assert_eq!(
        count(&log, |e| e.conv == inbox("ann")
            && matches!(&e.body, EventBody::NoticeProgress { action, .. } if action == "sent")),
        1
    );
    // The inbox takes no messages.
    assert_eq!(
        refused(
            &mut s,
            T0 + 1,
            Command::Send {
                actor: "bob".into(),
                target: Target::Conv(inbox("bob")),
                text: "hi".into(),
                mentions: vec![],
                mention_all: false,
                reply_to: None,
                file: None,
            }
        ),
        Code::Forbidden
    );
}

#[test]
fn bad_input_gets_a_specific_refusal_and_changes_nothing() {
    let mut s = org();
    let send = |actor: &str, d: NoticeDraft| Command::SendNotice {
        actor: actor.into(),
        draft: d,
    };
    let good = || draft(to_users(&["bob"]), T0 + 30 * MIN, 0, 0);
    // Without the permission.
    assert_eq!(refused(&mut s, T0, send("bob", good())), Code::Forbidden);
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&[]), T0 + MIN, 0, 0))
        ),
        Code::NoRecipients
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_depts(&[77]), T0 + MIN, 0, 0))
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["nobody"]), T0 + MIN, 0, 0))
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["bob"]), T0 - 1, 0, 0))
        ),
        Code::DeadlinePassed
    );
    assert_eq!(
        refused(&mut s, T0, send("ann", draft(to_users(&["bob"]), T0, 0, 0))),
        Code::DeadlinePassed
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send(
                "ann",
                draft(to_users(&["bob"]), T0 + 40 * 24 * 60 * MIN, 0, 0)
            )
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["bob"]), T0 + MIN, 5_000, 0))
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["bob"]), T0 + MIN, 0, 51))
        ),
        Code::LimitExceeded
    );
    let mut d = good();
    d.title = "  ".into();
    assert_eq!(refused(&mut s, T0, send("ann", d)), Code::InvalidArgument);
    let mut d = good();
    d.body = String::new();
    assert_eq!(refused(&mut s, T0, send("ann", d)), Code::InvalidArgument);
    let mut d = good();
    d.body = "x".repeat(4_001);
    assert_eq!(refused(&mut s, T0, send("ann", d)), Code::LimitExceeded);
    // Only the sender, or only inactive members: nobody to tell.
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["ann"]), T0 + MIN, 0, 0))
        ),
        Code::NoRecipients
    );
    ok(
        &mut s,
        T0,
        Command::SetMemberStatus {
            userid: "fay".into(),
            status: MemberStatus::Disabled,
        },
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send("ann", draft(to_users(&["fay"]), T0 + MIN, 0, 0))
        ),
        Code::NoRecipients
    );
    // Acting on a notice that is not yours, or does not exist.
    let id = sent_id(ok(&mut s, T0, send("ann", good())));
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::AckNotice {
                actor: "cai".into(),
                id
            }
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::AckNotice {
                actor: "bob".into(),
                id: 99
            }
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::WithdrawNotice {
                actor: Some("bob".into()),
                id
            }
        ),
        Code::NotFound
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::NoticeDelivered {
                actor: "bob".into(),
                ids: (0..101).collect()
            }
        ),
        Code::LimitExceeded
    );
    check_invariants(&s);
}

#[test]
fn a_directory_wide_notice_expands_in_bounded_steps_that_apply_once() {
    let mut s = org();
    for i in 0..4_500 {
        ok(
            &mut s,
            T0 - 1,
            Command::CreateMember {
                member: member(&format!("m{i:04}"), 2 + (i % 2)),
                password_hash: None,
            },
        );
    }
    let mut log = Vec::new();
    let id = sent_id(
        step(
            &mut s,
            T0,
            &Command::SendNotice {
                actor: "ann".into(),
                draft: draft(
                    Recipients {
                        users: vec![],
                        parties: vec![],
                        all: true,
                    },
                    T0 + 30 * MIN,
                    0,
                    0,
                ),
            },
            &mut log,
        )
        .expect("sent"),
    );
    let n = notice(&s, id);
    assert!(
        matches!(n.phase, NoticePhase::Expand { .. }),
        "{:?}",
        n.phase
    );
    let first = n.counts.recipients;
    assert!((1_999..=2_000).contains(&first), "{first}");
    // A step for another step number is stale.
    assert_eq!(
        refused(&mut s, T0, Command::NoticeExpand { id, step: 0 }),
        Code::Stale
    );
    let steps = lead(&mut s, T0, &mut log);
    assert_eq!(steps, 2, "4,506 members in steps of 2,000");
    let n = notice(&s, id);
    assert_eq!(n.phase, NoticePhase::Waiting);
    // Everyone but the sender, once.
    assert_eq!(n.counts.recipients, 4_505);
    assert_eq!(
        count(&log, |e| matches!(e.body, EventBody::Notice { .. })),
        4_505
    );
}

#[test]
fn rounds_remind_each_unacknowledged_recipient_once_then_leaders_are_told_once() {
    let mut s = org();
    let mut log = Vec::new();
    // Everyone in 1 and below: bob, cai, dan, eve, fay. Reminders every
    // 10 s, 2 rounds at most, deadline at +60 s.
    let id = sent_id(
        step(
            &mut s,
            T0,
            &Command::SendNotice {
                actor: "ann".into(),
                draft: draft(to_depts(&[1]), T0 + 60_000, 10_000, 2),
            },
            &mut log,
        )
        .expect("sent"),
    );
    assert_eq!(notice(&s, id).counts.recipients, 5);
    step(
        &mut s,
        T0 + 1,
        &Command::AckNotice {
            actor: "bob".into(),
            id,
        },
        &mut log,
    )
    .expect("ack");
    // Acknowledging twice changes nothing.
    let h = s.hash();
    let again = step(
        &mut s,
        T0 + 2,
        &Command::AckNotice {
            actor: "bob".into(),
            id,
        },
        &mut log,
    );
    assert!(matches!(again, Ok(Done::NoticeMark { changed: false, .. })));
    assert_eq!(h, s.hash());
    // Nothing is due before +10 s.
    assert_eq!(lead(&mut s, T0 + 9_999, &mut log), 0);
    assert_eq!(lead(&mut s, T0 + 10_000, &mut log), 1);
    let reminded = |log: &[Event], u: &str, round: u32| {
        count(log, |e| {
            e.conv == inbox(u)
                && matches!(e.body, EventBody::NoticeReminder { round: r, .. } if r == round)
        })
    };
    for u in ["cai", "dan", "eve", "fay"] {
        assert_eq!(reminded(&log, u, 1), 1, "{u} round 1");
    }
    assert_eq!(reminded(&log, "bob", 1), 0);
    step(
        &mut s,
        T0 + 15_000,
        &Command::ReadNotice {
            actor: "cai".into(),
            id,
        },
        &mut log,
    )
    .expect("read");
    step(
        &mut s,
        T0 + 15_001,
        &Command::AckNotice {
            actor: "cai".into(),
            id,
        },
        &mut log,
    )
    .expect("ack");
    assert_eq!(lead(&mut s, T0 + 20_000, &mut log), 1);
    for u in ["dan", "eve", "fay"] {
        assert_eq!(reminded(&log, u, 2), 1, "{u} round 2");
    }
    assert_eq!(reminded(&log, "cai", 2), 0);
    // Two rounds only: the next thing due is the deadline.
    let n = notice(&s, id);
    assert_eq!((n.rounds_done, n.due_ms), (2, T0 + 60_000));
    assert_eq!(lead(&mut s, T0 + 59_999, &mut log), 0);
    // At the deadline: eve and fay (under 2) go to bob; dan leads 1 and
    // has nobody above him, so the sender hears of him.
    lead(&mut s, T0 + 60_000, &mut log);
    let n = notice(&s, id);
    assert_eq!(n.phase, NoticePhase::Done);
    let told = |log: &[Event], u: &str| -> Vec<(u64, Vec<String>)> {
        log.iter()
            .filter(|e| e.conv == inbox(u))
            .filter_map(|e| match &e.body {
                EventBody::NoticeEscalation { count, sample, .. } => Some((*count, sample.clone())),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        told(&log, "bob"),
        vec![(2, vec!["eve".into(), "fay".into()])]
    );
    assert_eq!(told(&log, "ann"), vec![(1, vec!["dan".into()])]);
    assert!(told(&log, "dan").is_empty());
    assert_eq!(
        n.counts,
        NoticeCounts {
            recipients: 5,
            delivered: 2,
            read: 2,
            acked: 2,
            reminded: 4,
            reminders: 7,
            escalated: 3,
            leaders: 2,
        }
    );
    // An acknowledgement after the deadline still counts.
    step(
        &mut s,
        T0 + 70_000,
        &Command::AckNotice {
            actor: "eve".into(),
            id,
        },
        &mut log,
    )
    .expect("late ack");
    assert_eq!(notice(&s, id).counts.acked, 3);
    assert_eq!(apply::notices::next_step(&notice(&s, id)), None);
}

#[test]
fn when_everyone_acknowledges_no_round_or_escalation_follows() {
    let mut s = org();
    let mut log = Vec::new();
    let id = sent_id(ok(
        &mut s,
        T0,
        Command::SendNotice {
            actor: "ann".into(),
            draft: draft(to_users(&["bob", "cai"]), T0 + 60_000, 10_000, 3),
        },
    ));
    for u in ["bob", "cai"] {
        step(
            &mut s,
            T0 + 1,
            &Command::AckNotice {
                actor: u.into(),
                id,
            },
            &mut log,
        )
        .expect("ack");
    }
    let n = notice(&s, id);
    assert_eq!(n.phase, NoticePhase::Done);
    assert_eq!(lead(&mut s, T0 + 100_000, &mut log), 0);
    assert_eq!(
        count(&log, |e| matches!(e.body, EventBody::NoticeReminder { .. })),
        0
    );
    // Each ack was echoed to the acknowledging member and reported to the
    // sender.
    assert_eq!(
        count(&log, |e| e.conv == inbox("ann")
            && matches!(&e.body, EventBody::NoticeProgress { action, .. } if action == "acked")),
        2
    );
    assert_eq!(
        count(&log, |e| e.conv == inbox("bob")
            && matches!(e.body, EventBody::NoticeMarked { acked_ms, .. } if acked_ms == T0 + 1)),
        1
    );
}

#[test]
fn withdrawal_stops_the_rounds_and_tells_every_recipient() {
    let mut s = org();
    let mut log = Vec::new();
    let id = sent_id(ok(
        &mut s,
        T0,
        Command::SendNotice {
            actor: "ann".into(),
            draft: draft(to_depts(&[2]), T0 + 60_000, 10_000, 3),
        },
    ));
    let stale = apply::notices::next_step(&notice(&s, id)).expect("a round is next");
    step(
        &mut s,
        T0 + 5,
        &Command::WithdrawNotice {
            actor: Some("ann".into()),
            id,
        },
        &mut log,
    )
    .expect("withdraw");
    // The round proposed before the withdrawal is stale now.
    assert_eq!(refused(&mut s, T0 + 10_000, stale), Code::Stale);
    assert_eq!(
        refused(&mut s, T0 + 6, Command::WithdrawNotice { actor: None, id }),
        Code::Withdrawn
    );
    assert_eq!(
        refused(
            &mut s,
            T0 + 6,
            Command::AckNotice {
                actor: "bob".into(),
                id
            }
        ),
        Code::Withdrawn
    );
    lead(&mut s, T0 + 10_000, &mut log);
    assert_eq!(notice(&s, id).phase, NoticePhase::Done);
    let mut withdrawn: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        if matches!(e.body, EventBody::NoticeWithdrawn { id: i } if i == id) {
            *withdrawn.entry(e.conv.clone()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = ["bob", "cai", "eve", "fay"]
        .iter()
        .map(|u| (inbox(u), 1))
        .collect();
    assert_eq!(withdrawn, expected);
    assert_eq!(
        count(&log, |e| matches!(e.body, EventBody::NoticeReminder { .. })),
        0
    );
}

#[test]
fn leaders_may_send_to_what_they_lead_when_the_policy_says_so() {
    let mut s = org();
    let send = |to: Recipients| Command::SendNotice {
        actor: "bob".into(),
        draft: draft(to, T0 + 30 * MIN, 0, 0),
    };
    // bob leads 2 (and 3 below it) but holds no grant: off by default.
    assert_eq!(refused(&mut s, T0, send(to_depts(&[2]))), Code::Forbidden);
    ok(
        &mut s,
        T0,
        Command::SetNoticePolicy {
            policy: NoticePolicy {
                leaders_may_send: true,
            },
        },
    );
    let id = sent_id(ok(&mut s, T0, send(to_depts(&[2]))));
    // eve in 2, cai and fay in 3.
    assert_eq!(notice(&s, id).counts.recipients, 3);
    ok(&mut s, T0, send(to_depts(&[3])));
    ok(&mut s, T0, send(to_users(&["fay"])));
    assert_eq!(refused(&mut s, T0, send(to_depts(&[1]))), Code::Forbidden);
    assert_eq!(
        refused(&mut s, T0, send(to_users(&["dan"]))),
        Code::Forbidden
    );
    assert_eq!(
        refused(
            &mut s,
            T0,
            send(Recipients {
                users: vec![],
                parties: vec![],
                all: true
            })
        ),
        Code::Forbidden
    );
    // dan leads the root: everyone.
    let id = sent_id(ok(
        &mut s,
        T0,
        Command::SendNotice {
            actor: "dan".into(),
            draft: draft(
                Recipients {
                    users: vec![],
                    parties: vec![],
                    all: true,
                },
                T0 + 30 * MIN,
                0,
                0,
            ),
        },
    ));
    assert_eq!(notice(&s, id).counts.recipients, 5);
    // eve leads nothing.
    assert_eq!(
        refused(
            &mut s,
            T0,
            Command::SendNotice {
                actor: "eve".into(),
                draft: draft(to_users(&["fay"]), T0 + 30 * MIN, 0, 0),
            }
        ),
        Code::Forbidden
    );
}

/// What must hold for every notice after every command.
pub(super) fn check_notice_invariants(s: &MemStore) {
    // Over every stored event: no reminder round twice for anyone, no
    // leader told twice of one notice.
    let mut rounds = std::collections::BTreeSet::new();
    let mut told = std::collections::BTreeSet::new();
    for (_, e) in s.scan_as::<Event>(b"ev/", None, usize::MAX).expect("scan") {
        match e.body {
            EventBody::NoticeReminder { id, round, .. } => {
                assert!(
                    rounds.insert((e.conv.clone(), id, round)),
                    "{} reminded twice of {id} round {round}",
                    e.conv
                );
            }
            EventBody::NoticeEscalation { id, .. } => {
                assert!(
                    told.insert((e.conv.clone(), id)),
                    "{} told twice of {id}",
                    e.conv
                );
            }
            _ => {}
        }
    }
    for (_, n) in s
        .scan_as::<Notice>(keys::NOTICES, None, usize::MAX)
        .expect("scan")
    {
        let prefix = keys::notice_recipients(n.id);
        let rs = s
            .scan_as::<NoticeRecipient>(&prefix, None, usize::MAX)
            .expect("scan");
        let mut c = NoticeCounts {
            leaders: n.counts.leaders,
            reminders: n.counts.reminders,
            ..Default::default()
        };
        for (k, r) in &rs {
            let u = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            assert_ne!(u, n.sender, "the sender is not a recipient");
            assert!(r.acked_ms == 0 || r.read_ms != 0, "acked implies read");
            assert!(
                r.read_ms == 0 || r.delivered_ms != 0,
                "read implies delivered"
            );
            assert!(r.reminded <= n.rounds_done + 1);
            assert!(
                s.get(&keys::notice_inbox(&u, n.id)).expect("get").is_some(),
                "{u} has notice {} in their inbox",
                n.id
            );
            c.recipients += 1;
            c.delivered += u64::from(r.delivered_ms != 0);
            c.read += u64::from(r.read_ms != 0);
            c.acked += u64::from(r.acked_ms != 0);
            c.reminded += u64::from(r.reminded > 0);
            c.escalated += u64::from(r.escalated);
        }
        assert_eq!(c, n.counts, "notice {} counts", n.id);
        // Exactly one schedule entry while not done, at its due time.
        let due: Vec<u64> = s
            .scan(keys::NOTICE_DUE, None, usize::MAX)
            .expect("scan")
            .into_iter()
            .filter(|(k, _)| u64::from_be_bytes(k[13..21].try_into().expect("8")) == n.id)
            .map(|(k, _)| u64::from_be_bytes(k[5..13].try_into().expect("8")))
            .collect();
        if n.phase == NoticePhase::Done {
            assert!(due.is_empty(), "notice {} done but scheduled", n.id);
        } else {
            assert_eq!(due, vec![n.due_ms], "notice {} schedule", n.id);
        }
        // Per-leader counts match who they were told about.
        let cprefix = keys::notice_escalation_counts(n.id);
        for (k, count) in s.scan_as::<u64>(&cprefix, None, usize::MAX).expect("scan") {
            let leader = String::from_utf8_lossy(&k[cprefix.len()..]).into_owned();
            let listed = s
                .scan(&keys::notice_escalation_of(n.id, &leader), None, usize::MAX)
                .expect("scan")
                .len() as u64;
            assert_eq!(count, listed, "notice {} leader {leader}", n.id);
        }
    }
}
