//! Approvals (审批): templates, filing, deciding, withdrawing, and keeping
//! pending steps in line with the directory. What is stored:
//! `domain/approvals.rs`.
//!
//! Rules:
//! - A template's flow becomes the request's plan at filing: `leaders K`
//!   is K steps (levels 1..K), a fixed user one step, a group one step.
//! - A step's approvers are found when it starts. Level n is the n-th
//!   department going up from the applicant's department (their main
//!   department, else their first) that has active leaders other than the
//!   applicant; those leaders decide it. A fixed approver who is no
//!   longer active is replaced by the nearest leaders above them (the
//!   step "moves up"); a group by its active members. The applicant never
//!   approves their own request: a step left with nobody else is passed
//!   over, as is a leader level above the top of the tree (both written in
//!   the trail). A request whose every step is passed over is approved.
//! - Any one of a step's approvers decides it: approve (the next step
//!   starts; after the last, the request is approved) or reject with a
//!   reason (the request ends rejected). Acting names the step seen, so a
//!   second click never decides the next step by accident.
//! - While a step is pending the directory may change under it. A leader
//!   step follows the leaders of its department: new leaders take it
//!   over, and if none are left it moves up to the next level. An
//!   approver who departs or is disabled leaves the step; if nobody is
//!   left it moves up as above. Each change is in the trail.
//! - The applicant may withdraw while the request is pending. Applicant,
//!   approvers and CCs may comment at any time; nobody acts on a finished
//!   request.
//! - The applicant and the CCs are told of every step; each new approver
//!   is told it waits for them.

use std::collections::{BTreeMap, BTreeSet};

use super::approval_templates::{parse_value, valid_text};
use super::audience::is_active;
use super::*;

pub const MAX_STEPS: usize = 20;
pub const MAX_GROUP: usize = 50;
pub const MAX_CC: usize = 50;
pub const MAX_LEVELS: u32 = 10;
pub const MAX_REASON_CHARS: usize = 1_000;
/// Trail entries kept per request (comments beyond it are refused).
pub const MAX_TRAIL: usize = 500;

fn load<S: Store>(s: &Overlay<'_, S>, id: u64) -> R<ApprovalRequest> {
    match s.get_as::<ApprovalRequest>(&keys::approval(id))? {
        Some(r) => Ok(Ok(r)),
        None => Ok(refuse(Code::NotFound, format!("no approval request {id}"))),
    }
}

/// The nearest active leaders above `m` (their departments first, then up
/// the tree), other than `m` and `not`, with the department found.
fn leaders_above<T: Store + ?Sized>(
    s: &T,
    m: &Member,
    not: &str,
) -> Result<Option<(u64, Vec<String>)>, StoreFault> {
    for d in &m.departments {
        let mut cur = Some(*d);
        let mut hops = 0;
        while let Some(id) = cur {
            hops += 1;
            let Some(dept) = s.get_as::<Department>(&keys::dept(id))? else {
                break;
            };
            if hops > 64 {
                break;
            }
            let mut found = Vec::new();
            for l in &dept.leaders {
                if l != &m.userid && l != not && is_active(s, l)? {
                    found.push(l.clone());
                }
            }
            if !found.is_empty() {
                return Ok(Some((id, found)));
            }
            cur = dept.parent;
        }
    }
    Ok(None)
}

/// The active leaders of department `d` other than `not`.
pub fn dept_leaders<T: Store + ?Sized>(
    s: &T,
    d: u64,
    not: &str,
) -> Result<Option<(Department, Vec<String>)>, StoreFault> {
    let Some(dept) = s.get_as::<Department>(&keys::dept(d))? else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for l in &dept.leaders {
        if l != not && is_active(s, l)? {
            found.push(l.clone());
        }
    }
    Ok(Some((dept, found)))
}

/// Where a pending leader step at `d` goes when the directory changed:
/// to `d`'s leaders, or else to the nearest leaders up the tree.
fn follow_leaders<T: Store + ?Sized>(
    s: &T,
    r: &ApprovalRequest,
    d: u64,
) -> Result<Result<(u64, Vec<String>), String>, StoreFault> {
    let mut cur = Some(d);
    let mut hops = 0;
    while let Some(id) = cur {
        hops += 1;
        let Some((dept, found)) = dept_leaders(s, id, &r.applicant)? else {
            return Ok(Err(format!("department {id} was deleted")));
        };
        if !found.is_empty() {
            return Ok(Ok((id, found)));
        }
        if hops > 64 {
            break;
        }
        cur = dept.parent;
    }
    Ok(Err(format!(
        "the leaders of department {d} left and there are none above"
    )))
}

/// The n-th level of leaders above the applicant.
fn leader_level<T: Store + ?Sized>(
    s: &T,
    r: &ApprovalRequest,
    level: u32,
) -> Result<Option<(u64, Vec<String>)>, StoreFault> {
    let mut cur = Some(r.department);
    let mut seen = 0;
    let mut hops = 0;
    while let Some(id) = cur {
        hops += 1;
        let Some((dept, found)) = dept_leaders(s, id, &r.applicant)? else {
            return Ok(None);
        };
        if hops > 64 {
            return Ok(None);
        }
        if !found.is_empty() {
            seen += 1;
            if seen == level {
                return Ok(Some((id, found)));
            }
        }
        cur = dept.parent;
    }
    Ok(None)
}

/// Who decides the current step now: (department for a leader step,
/// approvers) or why nobody does.
fn find_approvers<T: Store + ?Sized>(
    s: &T,
    r: &ApprovalRequest,
) -> Result<Result<(u64, Vec<String>), String>, StoreFault> {
    let Some(rule) = r.plan.get(r.current as usize) else {
        return Ok(Err("no such step".into()));
    };
    let mut gone = Vec::new();
    let mut active = Vec::new();
    match rule {
        StepRule::Leader(n) => {
            return Ok(match leader_level(s, r, *n)? {
                Some(found) => Ok(found),
                None => Err(format!("no leader at level {n} above the applicant")),
            });
        }
        StepRule::User(u) => {
            if is_active(s, u)? {
                active.push(u.clone());
            } else {
                gone.push(u.clone());
            }
        }
        StepRule::AnyOf(g) => {
            for u in g {
                if is_active(s, u)? {
                    active.push(u.clone());
                } else {
                    gone.push(u.clone());
                }
            }
        }
    }
    active.retain(|u| u != &r.applicant);
    if !active.is_empty() {
        return Ok(Ok((0, active)));
    }
    // Everyone of the step has gone (or is the applicant): up from the
    // first who has gone.
    if let Some(first) = gone.first()
        && let Some(m) = s.get_as::<Member>(&keys::user(first))?
        && let Some(found) = leaders_above(s, &m, &r.applicant)?
    {
        return Ok(Ok(found));
    }
    Ok(Err(if gone.is_empty() {
        "the applicant is this step's only approver".into()
    } else {
        format!(
            "{} is no longer active and has no leader above",
            gone.join(", ")
        )
    }))
}

fn list(s: &mut Overlay<'_, impl Store>, which: &[u8; 4], userid: &str, id: u64, on: bool) {
    let k = keys::approval_listed(which, userid, id);
    if on {
        s.put(&k, Vec::new());
    } else {
        s.delete(&k);
    }
}

/// Stop waiting on the current approvers.
fn unassign<S: Store>(s: &mut Overlay<'_, S>, r: &mut ApprovalRequest) {
    for a in std::mem::take(&mut r.approvers) {
        list(s, keys::APPROVALS_WAITING, &a, r.id, false);
    }
    if r.approver_dept != 0 {
        s.delete(&keys::approval_at_dept(r.approver_dept, r.id));
        r.approver_dept = 0;
    }
}

fn assign<S: Store>(s: &mut Overlay<'_, S>, r: &mut ApprovalRequest, dept: u64, who: Vec<String>) {
    for a in &who {
        list(s, keys::APPROVALS_WAITING, a, r.id, true);
    }
    if dept != 0 && matches!(r.plan.get(r.current as usize), Some(StepRule::Leader(_))) {
        s.put(&keys::approval_at_dept(dept, r.id), Vec::new());
        r.approver_dept = dept;
    } else {
        r.approver_dept = 0;
    }
    r.approvers = who;
}

fn trail(r: &mut ApprovalRequest, ctx: &Ctx, actor: &str, action: TrailAction) {
    let step = r.current.min(r.plan.len().saturating_sub(1) as u32);
    r.trail.push(TrailEntry {
        time_ms: ctx.time_ms,
        actor: actor.to_string(),
        step,
        action,
    });
}

/// Tell the applicant, the CCs and `also` what happened, and `waiting`
/// that it now waits for them.
fn notify<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    r: &ApprovalRequest,
    actor: &str,
    action: &str,
    waiting: &[String],
    also: &[String],
) -> Result<(), StoreFault> {
    let body = |waiting: bool| EventBody::ApprovalUpdate {
        id: r.id,
        template_name: r.template_name.clone(),
        applicant: r.applicant.clone(),
        status: r.status.as_str().into(),
        step: (r.current + 1).min(r.plan.len() as u32),
        action: action.into(),
        actor: actor.into(),
        waiting,
    };
    let mut told = BTreeSet::new();
    for u in waiting {
        if told.insert(u.clone()) {
            notices::tell(s, ctx, u, actor, body(true))?;
        }
    }
    for u in std::iter::once(&r.applicant)
        .chain(r.cc.iter())
        .chain(also.iter())
    {
        if told.insert(u.clone()) && is_active(s, u)? {
            notices::tell(s, ctx, u, actor, body(false))?;
        }
    }
    Ok(())
}

fn finish<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    r: &mut ApprovalRequest,
    st: ApprovalStatus,
) {
    unassign(s, r);
    r.status = st;
    r.finished_ms = ctx.time_ms;
    s.put(&keys::approval_finished(r.finished_ms, r.id), Vec::new());
}

/// Start the current step (passing over steps nobody can decide); after
/// the last, the request is approved. Returns who now waits.
fn start_step<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    r: &mut ApprovalRequest,
) -> Result<Vec<String>, StoreFault> {
    while (r.current as usize) < r.plan.len() {
        match find_approvers(s, r)? {
            Ok((dept, who)) => {
                trail(
                    r,
                    ctx,
                    "system",
                    TrailAction::Assigned {
                        approvers: who.clone(),
                    },
                );
                assign(s, r, dept, who.clone());
                return Ok(who);
            }
            Err(why) => {
                trail(r, ctx, "system", TrailAction::Skipped { why });
                r.current += 1;
            }
        }
    }
    finish(s, ctx, r, ApprovalStatus::Approved);
    Ok(Vec::new())
}

pub(super) fn submit<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    template: &str,
    values: &[(String, String)],
    route: Option<&ApprovalRoute>,
) -> R<Done> {
    let m = check!(active_member(s, actor, true));
    if let Some(route) = route {
        ensure!(
            !route.steps.is_empty() && route.steps.len() <= MAX_STEPS,
            Code::InvalidArgument,
            "give 1-{MAX_STEPS} approval steps"
        );
        ensure!(
            route.cc.len() <= MAX_CC,
            Code::LimitExceeded,
            "at most {MAX_CC} CC recipients"
        );
        for st in &route.steps {
            let users: &[String] = match st {
                StepRule::Leader(n) => {
                    ensure!(
                        (1..=MAX_LEVELS).contains(n),
                        Code::InvalidArgument,
                        "leader levels are 1-{MAX_LEVELS}"
                    );
                    &[]
                }
                StepRule::User(u) => std::slice::from_ref(u),
                StepRule::AnyOf(g) => {
                    ensure!(
                        !g.is_empty() && g.len() <= MAX_GROUP,
                        Code::InvalidArgument,
                        "a group of approvers has 1-{MAX_GROUP} members"
                    );
                    g
                }
            };
            for u in users.iter().chain(route.cc.iter()) {
                let _ = check!(active_member(s, u, true));
            }
        }
    }
    let Some(t) = s.get_as::<ApprovalTemplate>(&keys::approval_template(template))? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no approval template {template:?}"),
        ));
    };
    ensure!(
        !t.disabled,
        Code::Forbidden,
        "approval template {template:?} is disabled"
    );
    let given: BTreeMap<&str, &str> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ensure!(
        given.len() == values.len(),
        Code::InvalidArgument,
        "a field is given twice"
    );
    for k in given.keys() {
        ensure!(
            t.fields.iter().any(|f| f.key == *k),
            Code::InvalidArgument,
            "template {template:?} has no field {k:?}"
        );
    }
    let mut out = Vec::new();
    for f in &t.fields {
        match given.get(f.key.as_str()) {
            Some(raw) if !raw.trim().is_empty() => {
                out.push((f.key.clone(), check!(parse_value(s, f, raw))));
            }
            _ => ensure!(
                !f.required,
                Code::InvalidArgument,
                "field {} ({}) is required",
                f.key,
                f.label
            ),
        }
    }
    let profile: Profile = s.get_as(&keys::profile(actor))?.unwrap_or_default();
    let department = if profile.main_department != 0 {
        profile.main_department
    } else {
        m.departments.first().copied().unwrap_or(ROOT_DEPARTMENT)
    };
    let plan = match route {
        Some(r) => r.steps.clone(),
        None => t
            .flow
            .iter()
            .flat_map(|st| match st {
                FlowStep::Leaders(k) => (1..=*k).map(StepRule::Leader).collect::<Vec<_>>(),
                FlowStep::User(u) => vec![StepRule::User(u.clone())],
                FlowStep::AnyOf(g) => vec![StepRule::AnyOf(g.clone())],
            })
            .collect(),
    };
    let cc = route.map_or(&t.cc, |r| &r.cc);
    let id = s.get_as::<u64>(keys::APPROVAL_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::APPROVAL_CTR, &id)?;
    let mut r = ApprovalRequest {
        id,
        template: t.id.clone(),
        template_name: t.name.clone(),
        applicant: actor.to_string(),
        department,
        values: out,
        submitted_ms: ctx.time_ms,
        plan,
        current: 0,
        approvers: Vec::new(),
        approver_dept: 0,
        cc: cc
            .iter()
            .filter(|u| *u != actor)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        status: ApprovalStatus::Pending,
        finished_ms: 0,
        trail: Vec::new(),
    };
    trail(&mut r, ctx, actor, TrailAction::Submitted);
    list(s, keys::APPROVALS_MINE, actor, id, true);
    for c in r.cc.clone() {
        list(s, keys::APPROVALS_CC, &c, id, true);
    }
    let waiting = start_step(s, ctx, &mut r)?;
    notify(s, ctx, &r, actor, "submitted", &waiting, &[])?;
    s.put_as(&keys::approval(id), &r)?;
    Ok(Ok(Done::Approval(Box::new(r))))
}

/// What a member does to a request.
pub(super) fn act<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    id: u64,
    step: Option<u32>,
    action: &ApprovalAction,
) -> R<Done> {
    let _ = check!(active_member(s, actor, true));
    let mut r = check!(load(s, id));
    let is_party = r.involves(actor);
    ensure!(
        is_party,
        Code::Forbidden,
        "{actor} is not the applicant, an approver or a CC of approval request {id}"
    );
    if let ApprovalAction::Comment { text } = action {
        ensure!(
            !text.trim().is_empty(),
            Code::InvalidArgument,
            "the comment is empty"
        );
        valid!(valid_text(text, MAX_REASON_CHARS, "the comment"));
        ensure!(
            r.trail.len() < MAX_TRAIL,
            Code::LimitExceeded,
            "approval request {id} has {MAX_TRAIL} trail entries; no more comments"
        );
        trail(
            &mut r,
            ctx,
            actor,
            TrailAction::Commented { text: text.clone() },
        );
        notify(s, ctx, &r, actor, "commented", &[], &r.approvers.clone())?;
        s.put_as(&keys::approval(id), &r)?;
        return Ok(Ok(Done::Approval(Box::new(r))));
    }
    ensure!(
        r.status != ApprovalStatus::Withdrawn,
        Code::Withdrawn,
        "approval request {id} was withdrawn by {}",
        r.applicant
    );
    ensure!(
        r.status == ApprovalStatus::Pending,
        Code::AlreadyDecided,
        "approval request {id} is already {}",
        r.status.as_str()
    );
    if let ApprovalAction::Withdraw = action {
        ensure!(
            actor == r.applicant,
            Code::Forbidden,
            "only the applicant ({}) may withdraw approval request {id}",
            r.applicant
        );
        finish(s, ctx, &mut r, ApprovalStatus::Withdrawn);
        trail(&mut r, ctx, actor, TrailAction::Withdrawn);
        notify(s, ctx, &r, actor, "withdrawn", &[], &[])?;
        s.put_as(&keys::approval(id), &r)?;
        return Ok(Ok(Done::Approval(Box::new(r))));
    }
    if let Some(seen) = step {
        ensure!(
            seen == r.current,
            Code::AlreadyDecided,
            "step {} of approval request {id} was already decided (it is at step {})",
            seen + 1,
            r.current + 1
        );
    }
    if !r.approvers.iter().any(|a| a == actor) {
        let decided = r.trail.iter().rev().find(|t| {
            t.actor == actor
                && matches!(
                    t.action,
                    TrailAction::Approved { .. } | TrailAction::Rejected { .. }
                )
        });
        return Ok(match decided {
            Some(t) => refuse(
                Code::AlreadyDecided,
                format!(
                    "{actor} already {} step {} of approval request {id}",
                    t.action.name(),
                    t.step + 1
                ),
            ),
            None => refuse(
                Code::Forbidden,
                format!(
                    "{actor} is not an approver of step {} of approval request {id}",
                    r.current + 1
                ),
            ),
        });
    }
    match action {
        ApprovalAction::Approve { comment } => {
            valid!(valid_text(comment, MAX_REASON_CHARS, "the comment"));
            trail(
                &mut r,
                ctx,
                actor,
                TrailAction::Approved {
                    comment: comment.clone(),
                },
            );
            list(s, keys::APPROVALS_DONE, actor, id, true);
            unassign(s, &mut r);
            r.current += 1;
            let waiting = start_step(s, ctx, &mut r)?;
            notify(s, ctx, &r, actor, "approved", &waiting, &[])?;
        }
        ApprovalAction::Reject { reason } => {
            ensure!(
                !reason.trim().is_empty(),
                Code::InvalidArgument,
                "a rejection needs a reason"
            );
            valid!(valid_text(reason, MAX_REASON_CHARS, "the reason"));
            trail(
                &mut r,
                ctx,
                actor,
                TrailAction::Rejected {
                    reason: reason.clone(),
                },
            );
            list(s, keys::APPROVALS_DONE, actor, id, true);
            finish(s, ctx, &mut r, ApprovalStatus::Rejected);
            notify(s, ctx, &r, actor, "rejected", &[], &[])?;
        }
        ApprovalAction::Comment { .. } | ApprovalAction::Withdraw => {}
    }
    s.put_as(&keys::approval(id), &r)?;
    Ok(Ok(Done::Approval(Box::new(r))))
}

/// The directory changed under these departments and members: find the
/// current approvers of the pending steps concerned again.
pub(super) fn directory_changed<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    depts: &BTreeSet<u64>,
    users: &BTreeSet<String>,
) -> Result<(), StoreFault> {
    let mut ids = BTreeSet::new();
    for d in depts {
        for (k, _) in s.scan(&keys::approvals_at_dept(*d), None, usize::MAX)? {
            ids.insert(keys::tail_u64(&k));
        }
    }
    for u in users {
        for (k, _) in s.scan(
            &keys::approval_list_of(keys::APPROVALS_WAITING, u),
            None,
            usize::MAX,
        )? {
            ids.insert(u64::MAX - keys::tail_u64(&k));
        }
    }
    for id in ids {
        let Some(mut r) = s.get_as::<ApprovalRequest>(&keys::approval(id))? else {
            continue;
        };
        if r.status != ApprovalStatus::Pending {
            continue;
        }
        let leader_step = matches!(r.plan.get(r.current as usize), Some(StepRule::Leader(_)));
        let now = if leader_step && r.approver_dept != 0 {
            follow_leaders(s, &r, r.approver_dept)?
        } else {
            find_approvers(s, &r)?
        };
        let from = r.approvers.clone();
        let waiting = match now {
            Ok((dept, who))
                if dept == r.approver_dept
                    && who.iter().collect::<BTreeSet<_>>() == from.iter().collect() =>
            {
                continue;
            }
            Ok((dept, who)) => {
                let why = match r.plan.get(r.current as usize) {
                    Some(StepRule::Leader(_)) if dept == r.approver_dept => {
                        "the department's leaders changed".to_string()
                    }
                    Some(StepRule::Leader(_)) => {
                        "the department's leaders left: the step moved up".into()
                    }
                    _ => "an approver left".into(),
                };
                unassign(s, &mut r);
                trail(
                    &mut r,
                    ctx,
                    "system",
                    TrailAction::Reassigned {
                        from,
                        to: who.clone(),
                        why,
                    },
                );
                assign(s, &mut r, dept, who.clone());
                who
            }
            Err(why) => {
                unassign(s, &mut r);
                trail(&mut r, ctx, "system", TrailAction::Skipped { why });
                r.current += 1;
                start_step(s, ctx, &mut r)?
            }
        };
        notify(s, ctx, &r, "system", "reassigned", &waiting, &[])?;
        s.put_as(&keys::approval(id), &r)?;
    }
    Ok(())
}
