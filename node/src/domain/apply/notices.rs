//! Urgent notices (紧急通知): sending, expansion, marks, reminder rounds,
//! escalation and withdrawal. What is stored: `domain/notices.rs`.
//!
//! Rules:
//! - Only an active member holding `notice:urgent` sends. Listed users
//!   and departments must exist (a departed user or an unknown department
//!   refuses the notice: nothing is sent to a partial list by accident).
//! - Recipients are the active members other than the sender in the
//!   listed users, the listed departments and everything below them (or
//!   everyone), each once, found when the leader expands that part.
//! - Reminder round k is due at `sent + k·interval`; a round that ends
//!   late pushes the next to at least its end + interval/2. Rounds stop at
//!   `max_rounds` or before the deadline, whichever comes first. At the
//!   deadline each unacknowledged, still active recipient is reported to
//!   the nearest leaders above them (the leaders of their department, or
//!   of the first department up the tree that has leaders other than
//!   them; the sender if none), each leader told once.
//! - Acknowledging implies reading, reading implies delivery; each is
//!   counted once. Acknowledgements after the deadline still count. When
//!   everyone has acknowledged, the notice is done.
//! - The sender (or an operator) may withdraw it at any time: no more
//!   rounds, and every recipient is told.
//! - Leader steps never look at the clock: the leader proposes the step
//!   the state names when `due_ms` has come, and a step applies only at
//!   the notice's step counter (a repeat or a deposed leader's copy is
//!   `stale`). So a leader change neither drops nor doubles a round.

use std::collections::{BTreeMap, BTreeSet};

use super::audience::{self, is_active};
use super::*;

/// Candidates looked at per expansion step (the sending command runs the
/// first step itself).
pub const EXPAND_STEP: usize = FANOUT_CHUNK;
/// Recipient records per reminder, escalation or withdrawal step.
pub const ROUND_STEP: usize = 2_000;
/// Leaders told per step.
pub const TELL_STEP: usize = 500;
pub const MIN_REMIND_MS: u64 = 10_000;
pub const DEFAULT_REMIND_MS: u64 = 5 * 60_000;
pub const DEFAULT_ROUNDS: u32 = 6;
pub const MAX_ROUNDS: u32 = 50;
/// The latest deadline: 30 days after sending.
pub const MAX_NOTICE_MS: u64 = 30 * 24 * 3600 * 1000;
pub const MAX_LISTED_USERS: usize = 1_000;
pub const MAX_LISTED_DEPTS: usize = 100;
/// Names of unacknowledged members in an escalation event.
pub const ESCALATION_SAMPLE: usize = 100;
/// Ids per delivery receipt.
pub const MAX_DELIVERED_IDS: usize = 100;

fn load<S: Store>(s: &Overlay<'_, S>, id: u64) -> R<Notice> {
    match s.get_as::<Notice>(&keys::notice(id))? {
        Some(n) => Ok(Ok(n)),
        None => Ok(refuse(Code::NotFound, format!("no notice {id}"))),
    }
}

/// Save `n`, moving its entry in the leader's schedule.
fn save<S: Store>(
    s: &mut Overlay<'_, S>,
    before: Option<&Notice>,
    n: &Notice,
) -> Result<(), StoreFault> {
    if let Some(b) = before
        && b.phase != NoticePhase::Done
    {
        s.delete(&keys::notice_due(b.due_ms, b.id));
    }
    if n.phase != NoticePhase::Done {
        s.put(&keys::notice_due(n.due_ms, n.id), Vec::new());
    }
    s.put_as(&keys::notice(n.id), n)
}

fn at_step(n: &Notice, step: u64) -> Result<(), Refusal> {
    if step != n.steps {
        return refuse(
            Code::Stale,
            format!("notice {} is at step {}, not {step}", n.id, n.steps),
        );
    }
    Ok(())
}

/// Whether the next thing due in `Waiting` is a reminder round (else the
/// deadline).
pub fn round_due(n: &Notice) -> bool {
    n.rounds_done < n.max_rounds && n.due_ms < n.deadline_ms
}

/// When the leader should act next in `Waiting`: the next round, or the
/// deadline. `round_end`: when the round just finished ended.
pub fn schedule(n: &Notice, round_end: Option<u64>) -> u64 {
    let mut next = n
        .sent_ms
        .saturating_add((u64::from(n.rounds_done) + 1).saturating_mul(n.remind_every_ms));
    if let Some(end) = round_end {
        next = next.max(end.saturating_add(n.remind_every_ms / 2));
    }
    if n.rounds_done < n.max_rounds && next < n.deadline_ms {
        next
    } else {
        n.deadline_ms
    }
}

/// The step the leader proposes next for `n` (when `due_ms` has come), if
/// any: the one place that decides it.
pub fn next_step(n: &Notice) -> Option<Command> {
    let (id, step) = (n.id, n.steps);
    Some(match &n.phase {
        NoticePhase::Expand { .. } => Command::NoticeExpand { id, step },
        NoticePhase::Waiting if round_due(n) => Command::NoticeRemind {
            id,
            round: n.rounds_done + 1,
            step,
        },
        NoticePhase::Waiting => Command::NoticeEscalate { id, step },
        NoticePhase::Remind { round, .. } => Command::NoticeRemind {
            id,
            round: *round,
            step,
        },
        NoticePhase::Escalate { .. } | NoticePhase::Tell { .. } => {
            Command::NoticeEscalate { id, step }
        }
        NoticePhase::Withdraw { .. } => Command::NoticeWithdrawStep { id, step },
        NoticePhase::Done => return None,
    })
}

/// A member's notice inbox, created on first use.
fn inbox<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
) -> Result<Conversation, StoreFault> {
    own_conv(
        s,
        ctx,
        keys::notice_conv_id(userid),
        ConvKind::Notice,
        "",
        "system",
        userid,
    )
}

pub(super) fn tell<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
    actor: &str,
    body: EventBody,
) -> Result<(), StoreFault> {
    let mut c = inbox(s, ctx, userid)?;
    emit(s, ctx, &mut c, actor, body)?;
    Ok(())
}

/// Tell the sender the counts changed.
fn progress<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    n: &Notice,
    by: &str,
    action: &str,
) -> Result<(), StoreFault> {
    tell(
        s,
        ctx,
        &n.sender,
        by,
        EventBody::NoticeProgress {
            id: n.id,
            counts: n.counts,
            phase: n.phase.name().into(),
            by: by.into(),
            action: action.into(),
        },
    )
}

pub(super) fn send_notice<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    d: &NoticeDraft,
) -> R<Done> {
    let targets = check!(audience::resolve(
        s,
        actor,
        Permission::NoticeUrgent,
        &d.to,
        "urgent notices"
    ));
    valid!(audience::valid_title(&d.title));
    let policy = policy(s)?;
    let body_len = d.body.chars().count();
    ensure!(
        body_len > 0 && !d.body.trim().is_empty(),
        Code::InvalidArgument,
        "the body is empty"
    );
    ensure!(
        body_len <= policy.max_text_chars as usize,
        Code::LimitExceeded,
        "the body is longer than {} characters",
        policy.max_text_chars
    );
    ensure!(
        d.deadline_ms > ctx.time_ms,
        Code::DeadlinePassed,
        "the deadline ({} ms) has passed (now {} ms)",
        d.deadline_ms,
        ctx.time_ms
    );
    ensure!(
        d.deadline_ms >= ctx.time_ms.saturating_add(MIN_REMIND_MS)
            && d.deadline_ms <= ctx.time_ms.saturating_add(MAX_NOTICE_MS),
        Code::InvalidArgument,
        "the deadline must be between 10 seconds and 30 days from now"
    );
    let every = match d.remind_every_ms {
        0 => DEFAULT_REMIND_MS,
        e => e,
    };
    ensure!(
        every >= MIN_REMIND_MS,
        Code::InvalidArgument,
        "reminders at most every {MIN_REMIND_MS} ms"
    );
    let rounds = match d.max_rounds {
        0 => DEFAULT_ROUNDS,
        r => r,
    };
    ensure!(
        rounds <= MAX_ROUNDS,
        Code::LimitExceeded,
        "at most {MAX_ROUNDS} reminder rounds"
    );
    let id = s.get_as::<u64>(keys::NOTICE_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::NOTICE_CTR, &id)?;
    s.put_as(&keys::notice_body(id), &d.body)?;
    s.put_as(&keys::notice_targets(id), &targets)?;
    s.put(&keys::notice_sent(actor, id), Vec::new());
    let mut n = Notice {
        id,
        sender: actor.to_string(),
        title: d.title.clone(),
        sent_ms: ctx.time_ms,
        deadline_ms: d.deadline_ms,
        remind_every_ms: every,
        max_rounds: rounds,
        phase: NoticePhase::Expand {
            part: 0,
            after: String::new(),
        },
        steps: 0,
        rounds_done: 0,
        due_ms: 0,
        counts: NoticeCounts::default(),
        withdrawn_ms: 0,
    };
    // The first step in the sending entry: most notices are done here.
    expand(s, ctx, &mut n)?;
    save(s, None, &n)?;
    Ok(Ok(Done::Notice(n)))
}

/// One expansion step of `n` (in `Expand`).
fn expand<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, n: &mut Notice) -> Result<(), StoreFault> {
    let NoticePhase::Expand {
        mut part,
        mut after,
    } = n.phase.clone()
    else {
        return Ok(());
    };
    let targets: NoticeTargets = s.get_as(&keys::notice_targets(n.id))?.unwrap_or_default();
    let card = NoticeCard {
        id: n.id,
        sender: n.sender.clone(),
        title: n.title.clone(),
        body: s.get_as(&keys::notice_body(n.id))?.unwrap_or_default(),
        sent_ms: n.sent_ms,
        deadline_ms: n.deadline_ms,
    };
    let parts = audience::parts(&targets);
    let mut budget = EXPAND_STEP;
    while budget > 0 && part < parts {
        let batch = audience::batch(s, &targets, part, &after, budget)?;
        let short = batch.len() < budget;
        budget -= batch.len();
        for u in &batch {
            deliver(s, ctx, n, &card, u)?;
        }
        if let Some(last) = batch.last() {
            after = last.clone();
        }
        if short {
            part += 1;
            after = String::new();
        }
    }
    if part >= parts {
        n.phase = NoticePhase::Waiting;
        n.due_ms = schedule(n, None);
        let sender = n.sender.clone();
        progress(s, ctx, n, &sender, "sent")?;
    } else {
        n.phase = NoticePhase::Expand { part, after };
        n.due_ms = 0;
    }
    n.steps += 1;
    Ok(())
}

fn deliver<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    n: &mut Notice,
    card: &NoticeCard,
    userid: &str,
) -> Result<(), StoreFault> {
    let key = keys::notice_recipient(n.id, userid);
    if userid == n.sender || s.get(&key)?.is_some() || !is_active(s, userid)? {
        return Ok(());
    }
    s.put_as(&key, &NoticeRecipient::default())?;
    s.put(&keys::notice_inbox(userid, n.id), Vec::new());
    tell(
        s,
        ctx,
        userid,
        &n.sender,
        EventBody::Notice {
            notice: card.clone(),
        },
    )?;
    n.counts.recipients += 1;
    Ok(())
}

pub(super) fn notice_expand<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: u64,
    step: u64,
) -> R<Done> {
    let mut n = check!(load(s, id));
    valid!(at_step(&n, step));
    ensure!(
        matches!(n.phase, NoticePhase::Expand { .. }),
        Code::Stale,
        "notice {id} is not being sent"
    );
    let before = n.clone();
    expand(s, ctx, &mut n)?;
    save(s, Some(&before), &n)?;
    Ok(Ok(Done::Notice(n)))
}

/// Recipient records of `id` after `after`, one step's worth.
fn recipients_page<S: Store>(
    s: &Overlay<'_, S>,
    id: u64,
    after: &str,
) -> Result<Vec<(String, NoticeRecipient)>, StoreFault> {
    let prefix = keys::notice_recipients(id);
    let start = (!after.is_empty()).then(|| keys::notice_recipient(id, after));
    Ok(
        s.scan_as::<NoticeRecipient>(&prefix, start.as_deref(), ROUND_STEP)?
            .into_iter()
            .map(|(k, r)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), r))
            .collect(),
    )
}

pub(super) fn remind<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: u64,
    round: u32,
    step: u64,
) -> R<Done> {
    let mut n = check!(load(s, id));
    valid!(at_step(&n, step));
    let after = match &n.phase {
        NoticePhase::Waiting if round_due(&n) && round == n.rounds_done + 1 => String::new(),
        NoticePhase::Remind { round: r, after } if *r == round => after.clone(),
        _ => {
            return Ok(refuse(
                Code::Stale,
                format!("notice {id} is not at round {round}"),
            ));
        }
    };
    let before = n.clone();
    let page = recipients_page(s, id, &after)?;
    for (u, mut r) in page.iter().cloned() {
        if r.acked_ms != 0 || r.last_round >= round || !is_active(s, &u)? {
            continue;
        }
        r.reminded += 1;
        r.last_round = round;
        if r.reminded == 1 {
            n.counts.reminded += 1;
        }
        n.counts.reminders += 1;
        s.put_as(&keys::notice_recipient(id, &u), &r)?;
        tell(
            s,
            ctx,
            &u,
            &n.sender,
            EventBody::NoticeReminder {
                id,
                round,
                deadline_ms: n.deadline_ms,
            },
        )?;
    }
    if page.len() < ROUND_STEP {
        n.rounds_done = round;
        n.phase = NoticePhase::Waiting;
        n.due_ms = schedule(&n, Some(ctx.time_ms));
        let sender = n.sender.clone();
        progress(s, ctx, &n, &sender, "reminded")?;
    } else {
        let last = page.last().map(|(u, _)| u.clone()).unwrap_or_default();
        n.phase = NoticePhase::Remind { round, after: last };
        n.due_ms = 0;
    }
    n.steps += 1;
    save(s, Some(&before), &n)?;
    Ok(Ok(Done::Notice(n)))
}

/// The leaders `m` is reported to: for each of their departments, the
/// leaders of the nearest department up the tree (itself first) that has
/// active leaders other than `m`. Empty if there are none.
fn leaders_of<S: Store>(
    s: &Overlay<'_, S>,
    m: &Member,
    cache: &mut BTreeMap<u64, Option<Department>>,
) -> Result<BTreeSet<String>, StoreFault> {
    let mut out = BTreeSet::new();
    for d in &m.departments {
        let mut cur = Some(*d);
        let mut hops = 0;
        while let Some(id) = cur {
            hops += 1;
            if hops > 64 {
                break;
            }
            let dept = match cache.get(&id) {
                Some(d) => d.clone(),
                None => {
                    let d = s.get_as::<Department>(&keys::dept(id))?;
                    cache.insert(id, d.clone());
                    d
                }
            };
            let Some(dept) = dept else {
                break;
            };
            let mut found = false;
            for l in &dept.leaders {
                if l != &m.userid && is_active(s, l)? {
                    out.insert(l.clone());
                    found = true;
                }
            }
            if found {
                break;
            }
            cur = dept.parent;
        }
    }
    Ok(out)
}

pub(super) fn escalate<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, id: u64, step: u64) -> R<Done> {
    let mut n = check!(load(s, id));
    valid!(at_step(&n, step));
    let before = n.clone();
    match &n.phase {
        NoticePhase::Waiting if !round_due(&n) => {
            n.phase = NoticePhase::Escalate {
                after: String::new(),
            }
        }
        NoticePhase::Escalate { .. } | NoticePhase::Tell { .. } => {}
        _ => {
            return Ok(refuse(
                Code::Stale,
                format!("notice {id} is not due for escalation"),
            ));
        }
    }
    match n.phase.clone() {
        NoticePhase::Escalate { after } => {
            let page = recipients_page(s, id, &after)?;
            let mut per_leader: BTreeMap<String, u64> = BTreeMap::new();
            let mut cache = BTreeMap::new();
            for (u, mut r) in page.iter().cloned() {
                if r.acked_ms != 0 || r.escalated {
                    continue;
                }
                let Some(m) = s.get_as::<Member>(&keys::user(&u))? else {
                    continue;
                };
                if m.status != MemberStatus::Active {
                    continue;
                }
                let mut leaders = leaders_of(s, &m, &mut cache)?;
                if leaders.is_empty() {
                    leaders.insert(n.sender.clone());
                }
                for l in leaders {
                    s.put(&keys::notice_escalation(id, &l, &u), Vec::new());
                    *per_leader.entry(l).or_default() += 1;
                }
                r.escalated = true;
                n.counts.escalated += 1;
                s.put_as(&keys::notice_recipient(id, &u), &r)?;
            }
            for (l, c) in per_leader {
                let key = keys::notice_escalation_count(id, &l);
                let cur = s.get_as::<u64>(&key)?.unwrap_or(0);
                s.put_as(&key, &(cur + c))?;
            }
            n.phase = if page.len() < ROUND_STEP {
                NoticePhase::Tell {
                    after: String::new(),
                }
            } else {
                NoticePhase::Escalate {
                    after: page.last().map(|(u, _)| u.clone()).unwrap_or_default(),
                }
            };
        }
        NoticePhase::Tell { after } => {
            let prefix = keys::notice_escalation_counts(id);
            let start = (!after.is_empty()).then(|| keys::notice_escalation_count(id, &after));
            let page = s.scan_as::<u64>(&prefix, start.as_deref(), TELL_STEP)?;
            for (k, count) in &page {
                let leader = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let sample: Vec<String> = s
                    .scan(
                        &keys::notice_escalation_of(id, &leader),
                        None,
                        ESCALATION_SAMPLE,
                    )?
                    .iter()
                    .map(|(k, _)| keys::tail_str(k))
                    .collect();
                tell(
                    s,
                    ctx,
                    &leader,
                    &n.sender,
                    EventBody::NoticeEscalation {
                        id,
                        title: n.title.clone(),
                        sender: n.sender.clone(),
                        deadline_ms: n.deadline_ms,
                        count: *count,
                        sample,
                    },
                )?;
                n.counts.leaders += 1;
            }
            if page.len() < TELL_STEP {
                n.phase = NoticePhase::Done;
                let sender = n.sender.clone();
                progress(s, ctx, &n, &sender, "escalated")?;
            } else {
                let last = page
                    .last()
                    .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
                    .unwrap_or_default();
                n.phase = NoticePhase::Tell { after: last };
            }
        }
        _ => {}
    }
    n.due_ms = 0;
    n.steps += 1;
    save(s, Some(&before), &n)?;
    Ok(Ok(Done::Notice(n)))
}

pub(super) fn withdraw<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: Option<&str>,
    id: u64,
) -> R<Done> {
    let mut n = check!(load(s, id));
    if let Some(a) = actor {
        let _ = check!(active_member(s, a, true));
        // Someone else's notice is as good as none.
        ensure!(a == n.sender, Code::NotFound, "no notice {id}");
    }
    ensure!(
        n.withdrawn_ms == 0,
        Code::Withdrawn,
        "notice {id} was already withdrawn"
    );
    let before = n.clone();
    n.withdrawn_ms = ctx.time_ms;
    n.phase = NoticePhase::Withdraw {
        after: String::new(),
    };
    n.due_ms = 0;
    n.steps += 1;
    save(s, Some(&before), &n)?;
    let by = actor.unwrap_or("operator").to_string();
    progress(s, ctx, &n, &by, "withdrawn")?;
    Ok(Ok(Done::Notice(n)))
}

pub(super) fn withdraw_step<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: u64,
    step: u64,
) -> R<Done> {
    let mut n = check!(load(s, id));
    valid!(at_step(&n, step));
    let NoticePhase::Withdraw { after } = n.phase.clone() else {
        return Ok(refuse(
            Code::Stale,
            format!("notice {id} is not being withdrawn"),
        ));
    };
    let before = n.clone();
    let page = recipients_page(s, id, &after)?;
    for (u, _) in &page {
        tell(s, ctx, u, &n.sender, EventBody::NoticeWithdrawn { id })?;
    }
    n.phase = if page.len() < ROUND_STEP {
        NoticePhase::Done
    } else {
        NoticePhase::Withdraw {
            after: page.last().map(|(u, _)| u.clone()).unwrap_or_default(),
        }
    };
    n.steps += 1;
    save(s, Some(&before), &n)?;
    Ok(Ok(Done::Notice(n)))
}

fn rank(l: NoticeLevel) -> u8 {
    match l {
        NoticeLevel::Delivered => 0,
        NoticeLevel::Read => 1,
        NoticeLevel::Acked => 2,
    }
}

/// Record that `actor` got, read or acknowledged notice `id`.
pub(super) fn mark<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    id: u64,
    level: NoticeLevel,
) -> R<Done> {
    let _ = check!(active_member(s, actor, true));
    let key = keys::notice_recipient(id, actor);
    let Some(mut r) = s.get_as::<NoticeRecipient>(&key)? else {
        return Ok(refuse(Code::NotFound, format!("no notice {id}")));
    };
    let mut n = check!(load(s, id));
    ensure!(
        n.withdrawn_ms == 0,
        Code::Withdrawn,
        "notice {id} was withdrawn"
    );
    let t = ctx.time_ms;
    let mut changed = false;
    if r.delivered_ms == 0 {
        r.delivered_ms = t;
        n.counts.delivered += 1;
        changed = true;
    }
    if rank(level) >= 1 && r.read_ms == 0 {
        r.read_ms = t;
        n.counts.read += 1;
        changed = true;
    }
    if rank(level) >= 2 && r.acked_ms == 0 {
        r.acked_ms = t;
        n.counts.acked += 1;
        changed = true;
    }
    if !changed {
        return Ok(Ok(Done::NoticeMark {
            id,
            mark: r,
            changed: false,
        }));
    }
    let before = n.clone();
    s.put_as(&key, &r)?;
    if n.counts.acked == n.counts.recipients && n.phase == NoticePhase::Waiting {
        // Everyone has acknowledged: no rounds, no escalation.
        n.phase = NoticePhase::Done;
        n.steps += 1;
    }
    save(s, Some(&before), &n)?;
    if level != NoticeLevel::Delivered {
        tell(
            s,
            ctx,
            actor,
            actor,
            EventBody::NoticeMarked {
                id,
                read_ms: r.read_ms,
                acked_ms: r.acked_ms,
            },
        )?;
        let action = if level == NoticeLevel::Acked {
            "acked"
        } else {
            "read"
        };
        progress(s, ctx, &n, actor, action)?;
    }
    Ok(Ok(Done::NoticeMark {
        id,
        mark: r,
        changed: true,
    }))
}

/// A client's delivery receipt for several notices: unknown and withdrawn
/// ones are skipped.
pub(super) fn delivered<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    ids: &[u64],
) -> R<Done> {
    let _ = check!(active_member(s, actor, true));
    ensure!(
        ids.len() <= MAX_DELIVERED_IDS,
        Code::LimitExceeded,
        "at most {MAX_DELIVERED_IDS} ids at a time"
    );
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    for id in unique {
        // A refusal for one id (not theirs, withdrawn) skips it.
        let _ = mark(s, ctx, actor, id, NoticeLevel::Delivered)?;
    }
    Ok(Ok(Done::Ok))
}
