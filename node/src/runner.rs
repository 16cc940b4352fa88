//! The leader's runner: what integrated apps started and the log carries
//! on with, driven from replicated state by whichever node leads.
//!
//! - **Work and jobs.** Large app-message fan-outs and recalls continue in
//!   `Continue` steps; bulk directory jobs in `JobStep`s the leader parses
//!   from the uploaded file at the job's cursor. A step applies only at
//!   the cursor it was made from, so a new leader resumes where the old
//!   one stopped and a step proposed twice applies once.
//! - **Callbacks.** Each app's queue is delivered in order, one event at a
//!   time, retried with backoff (1 s doubling to 60 s), each app on its
//!   own so one slow receiver holds up nobody else. The leader reports
//!   `CallbackDelivered` / `CallbackFailed` through the log: after a
//!   leader change the next leader starts at the first unacknowledged
//!   event (at-least-once; receivers dedup by `EnclaveEventId`).
//!
//! - **Urgent notices.** Expansion to a large audience, reminder rounds,
//!   escalation to leaders and telling recipients of a withdrawal are
//!   steps the leader proposes when a notice's `due_ms` has come
//!   (`domain::apply::notices::next_step`). Each names the notice's step
//!   counter, so a repeat or a deposed leader's copy is stale: a leader
//!   change neither drops nor doubles a round.
//!
//! Nothing here runs on the messaging path: a member's send never waits
//! for a job or a callback.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::apps::csv;
use crate::audit::Origin;
use crate::domain::apply::jobs::{JOB_STEP_ROWS, PARTY_STEP};
use crate::domain::{
    self, CallbackItem, Command, DeptFields, Job, JobCursor, JobKind, JobRows, UserFields,
};
use crate::http::NodeState;
use crate::messaging::{ViewStore, encode_domain};
use crate::metrics::{AppLabels, AppResultLabels};

/// Row steps of one job proposed together.
const PIPELINE: usize = 3;

fn is_leader(state: &NodeState) -> bool {
    state.cluster.leader().map(|(id, _)| id) == Some(state.cluster.id)
}

/// Propose `cmd` as the system; the outcome's refusal (e.g. a stale step)
/// is returned as `Ok(Err(..))`.
async fn propose(
    state: &NodeState,
    cmd: &Command,
    key: Option<String>,
) -> Result<domain::Outcome, crate::http::ApiError> {
    crate::lifecycle::gate(state, cmd)?;
    let origin = Origin::system(&state.node_id);
    crate::http::write_app(state, encode_domain(&origin, cmd), key).await
}

/// Run the work-and-jobs loop until shutdown.
pub async fn work_loop(state: Arc<NodeState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.runner_wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        // Keep going while there is something to do and we lead.
        while is_leader(&state) && !*shutdown.borrow() {
            match round(&state).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "runner step failed; retrying");
                    break;
                }
            }
        }
    }
}

/// One step of each pending work item and job; whether anything moved.
async fn round(state: &NodeState) -> Result<bool, String> {
    let view = state.view();
    let mut moved = false;
    for (id, item) in domain::query::work(&view).map_err(|e| e.to_string())? {
        let cmd = Command::Continue {
            work: id,
            cursor: item.cursor,
        };
        let out = propose(state, &cmd, Some(format!("work:{id}:{}", item.cursor)))
            .await
            .map_err(|e| e.message)?;
        count(state, "work", &out);
        moved = true;
    }
    let now = crate::http::now_ms();
    for n in domain::query::notices_due(&view, now, 64).map_err(|e| e.to_string())? {
        let Some(cmd) = domain::apply::notices::next_step(&n) else {
            continue;
        };
        // The step counter makes a step apply at most once; a repeat (the
        // view lagging the log) is stale and harmless.
        let out = propose(state, &cmd, None).await.map_err(|e| e.message)?;
        count(state, "notice", &out);
        moved |= out.is_ok();
    }
    for a in domain::query::announcements_due(&view, 64).map_err(|e| e.to_string())? {
        let cmd = Command::AnnouncementExpand {
            id: a.id,
            step: a.steps,
        };
        let out = propose(state, &cmd, None).await.map_err(|e| e.message)?;
        count(state, "announcement", &out);
        moved |= out.is_ok();
    }
    for t in domain::external::transfers_due(&view, now, 64).map_err(|e| e.to_string())? {
        // A repeat (the view lagging the log) finds it done: stale.
        let out = propose(state, &Command::TransferStep { id: t.id }, None)
            .await
            .map_err(|e| e.message)?;
        count(state, "transfer", &out);
        moved |= out.is_ok();
    }
    // Files past retention and uploads never sent: one bounded step per
    // round (not counted as movement, so a backlog drains a step a second
    // without starving other work).
    if domain::apply::files::sweep_due(&view, now).map_err(|e| e.to_string())? {
        let out = propose(state, &Command::SweepFiles, None)
            .await
            .map_err(|e| e.message)?;
        count(state, "files", &out);
    }
    for job in domain::query::running_jobs(&view).map_err(|e| e.to_string())? {
        // Row steps depend only on the file: the next few are proposed
        // together (the leader batches them), each still applying only at
        // its own cursor. Other phases depend on the state: one at a time.
        let mut steps = Vec::new();
        let mut j = job.clone();
        for _ in 0..PIPELINE {
            let cmd = match next_step(&view, &j) {
                Ok(c) => c,
                Err(e) if steps.is_empty() => {
                    tracing::error!(job = %job.jobid, error = %e, "job cannot continue; ending it");
                    Command::JobStep {
                        jobid: job.jobid.clone(),
                        at: job.cursor.clone(),
                        next: JobCursor::Done,
                        rows: JobRows::None,
                    }
                }
                Err(_) => break,
            };
            let more = match (&j.cursor, &cmd) {
                (JobCursor::Rows { .. }, Command::JobStep { next, .. })
                    if matches!(next, JobCursor::Rows { .. }) =>
                {
                    Some(next.clone())
                }
                _ => None,
            };
            steps.push(cmd);
            match more {
                Some(next) => {
                    j.cursor = next;
                    j.steps += 1;
                }
                None => break,
            }
        }
        // No idempotency keys: the cursor already makes a step apply at
        // most once, and a step refused as early must be proposable again.
        let outs =
            futures_util::future::join_all(steps.iter().map(|c| propose(state, c, None))).await;
        for out in outs {
            let out = out.map_err(|e| e.message)?;
            count(state, &job.agentid.to_string(), &out);
        }
        moved = true;
    }
    Ok(moved)
}

fn count(state: &NodeState, agentid: &str, out: &domain::Outcome) {
    let result = match out {
        Ok(_) => "ok",
        Err(r) if r.code == domain::Code::Stale => "stale",
        Err(_) => "refused",
    };
    state
        .metrics
        .runner_steps
        .get_or_create(&AppResultLabels {
            agentid: agentid.into(),
            result: result.into(),
        })
        .inc();
}

fn user_fields(r: csv::UserRow) -> UserFields {
    UserFields {
        userid: r.userid,
        name: Some(r.name),
        departments: r.departments,
        orders: r.order,
        position: r.position,
        mobile: r.mobile,
        email: r.email,
        alias: r.alias,
        gender: r.gender,
        telephone: r.telephone,
        address: r.address,
        main_department: r.main_department,
        leader_in_dept: r.leader,
        enabled: r.enabled,
    }
}

/// A party file's rows, parents before children (a department may be
/// listed before its parent), errors last. Party files are small: the
/// whole file is parsed each step, the cursor is an index into this order.
type PartyList = Vec<(u64, String, Result<DeptFields, String>)>;

fn parties_in_order(bytes: &[u8], cols: &csv::PartyColumns) -> Result<PartyList, String> {
    let mut rows = Vec::new();
    let mut at = cols.data_start;
    loop {
        let chunk = csv::party_rows(bytes, cols, at, 10_000).map_err(|e| e.to_string())?;
        rows.extend(chunk.rows);
        at = chunk.next;
        if chunk.done {
            break;
        }
    }
    let parent_of: BTreeMap<u64, Option<u64>> = rows
        .iter()
        .filter_map(|r| r.result.as_ref().ok().map(|p| (p.id, p.parentid)))
        .collect();
    let depth = |id: u64| {
        let mut d = 0u32;
        let mut cur = parent_of.get(&id).copied().flatten();
        while let Some(p) = cur {
            if !parent_of.contains_key(&p) || d > 10_000 {
                break;
            }
            d += 1;
            cur = parent_of.get(&p).copied().flatten();
        }
        d
    };
    type Keyed = (u32, usize, (u64, String, Result<DeptFields, String>));
    let mut keyed: Vec<Keyed> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r.result {
            Ok(p) => (
                depth(p.id),
                i,
                (
                    r.line,
                    p.id.to_string(),
                    Ok(DeptFields {
                        id: Some(p.id),
                        parent: p.parentid,
                        name: Some(p.name),
                        order: p.order,
                    }),
                ),
            ),
            Err(e) => (u32::MAX, i, (r.line, e.key, Err(e.message))),
        })
        .collect();
    keyed.sort_by_key(|(d, i, _)| (*d, *i));
    Ok(keyed.into_iter().map(|(_, _, r)| r).collect())
}

/// The next step of `job`, as the leader sees the state now.
pub fn next_step(view: &ViewStore, job: &Job) -> Result<Command, String> {
    let step = |next: JobCursor, rows: JobRows| Command::JobStep {
        jobid: job.jobid.clone(),
        at: job.cursor.clone(),
        next,
        rows,
    };
    let replace = job.kind != JobKind::SyncUser;
    let absent = JobCursor::Absent {
        step: 0,
        after: String::new(),
    };
    match &job.cursor {
        JobCursor::Rows { pos, line } => {
            let meta = domain::query::media_meta(view, &job.media_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the upload {} is gone (expired?)", job.media_id))?;
            let bytes = domain::query::media_bytes(view, &meta).map_err(|e| e.to_string())?;
            match job.kind {
                JobKind::ReplaceParty => {
                    let cols: csv::PartyColumns =
                        postcard::from_bytes(&job.columns).map_err(|e| e.to_string())?;
                    let all = parties_in_order(&bytes, &cols)?;
                    let from = (*pos as usize).min(all.len());
                    let to = (from + PARTY_STEP).min(all.len());
                    let rows = all[from..to].to_vec();
                    let next = if to >= all.len() {
                        absent
                    } else {
                        JobCursor::Rows {
                            pos: to as u64,
                            line: *line,
                        }
                    };
                    Ok(step(next, JobRows::Parties(rows)))
                }
                _ => {
                    let cols: csv::UserColumns =
                        postcard::from_bytes(&job.columns).map_err(|e| e.to_string())?;
                    let from = csv::Cursor {
                        offset: *pos,
                        line: *line,
                    };
                    let chunk = csv::user_rows(&bytes, &cols, from, JOB_STEP_ROWS)
                        .map_err(|e| e.to_string())?;
                    let rows = chunk
                        .rows
                        .into_iter()
                        .map(|r| match r.result {
                            Ok(u) => (r.line, u.userid.clone(), Ok(user_fields(u))),
                            Err(e) => (r.line, e.key, Err(e.message)),
                        })
                        .collect();
                    let next = match (chunk.done, replace) {
                        (false, _) => JobCursor::Rows {
                            pos: chunk.next.offset,
                            line: chunk.next.line,
                        },
                        (true, true) => absent,
                        (true, false) => JobCursor::Done,
                    };
                    Ok(step(next, JobRows::Users(rows)))
                }
            }
        }
        // These phases depend on the state as the step applies: the step
        // decides where the next one starts.
        JobCursor::Absent { .. } | JobCursor::Cleanup { .. } => {
            Ok(step(job.cursor.clone(), JobRows::None))
        }
        JobCursor::Done => Err("the job is done".into()),
    }
}

/// Per-app delivery state on this leader (not replicated: a new leader
/// starts afresh at the first unacknowledged event).
#[derive(Debug, Default)]
struct AppDelivery {
    next_at: Option<Instant>,
    backoff: Duration,
    busy: bool,
}

/// Run the callback deliveries until shutdown.
pub async fn callback_loop(state: Arc<NodeState>, mut shutdown: watch::Receiver<bool>) {
    let mut apps: HashMap<u32, AppDelivery> = HashMap::new();
    let mut inflight: JoinSet<(u32, u64, Result<(), String>)> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok((agentid, seq, result)) = done {
                    finish(&state, &mut apps, agentid, seq, result).await;
                }
                continue;
            }
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let view = state.view();
        let Ok(all) = domain::query::apps(&view) else {
            continue;
        };
        let corp = match domain::query::corp(&view) {
            Ok(Some(c)) => c,
            _ => continue,
        };
        let leading = is_leader(&state);
        for app in all {
            let Ok(st) = domain::query::callback_state(&view, app.agentid) else {
                continue;
            };
            let label = AppLabels {
                agentid: app.agentid.to_string(),
            };
            let pending = st.next.saturating_sub(1).saturating_sub(st.acked);
            state
                .metrics
                .app_callback_queue
                .get_or_create(&label)
                .set(pending as i64);
            state
                .metrics
                .app_callback_dropped
                .get_or_create(&label)
                .set(st.dropped as i64);
            if !leading || pending == 0 {
                apps.remove(&app.agentid);
                continue;
            }
            let d = apps.entry(app.agentid).or_default();
            if d.busy || d.next_at.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            let Ok(items) = domain::query::callback_items(&view, app.agentid, 1) else {
                continue;
            };
            let Some(item) = items.into_iter().next() else {
                continue;
            };
            let Some(target) = item.target.clone().or(app.callback.clone()) else {
                continue;
            };
            d.busy = true;
            let delivery = state.delivery.clone();
            let corpid = corp.corpid.clone();
            let agentid = app.agentid;
            inflight.spawn(async move {
                let CallbackItem { seq, xml, .. } = item;
                let r = delivery
                    .post(&target, &corpid, agentid, &xml)
                    .await
                    .map_err(|e| e.to_string());
                (agentid, seq, r)
            });
        }
    }
}

/// Report a delivery attempt through the log and schedule the next one.
async fn finish(
    state: &NodeState,
    apps: &mut HashMap<u32, AppDelivery>,
    agentid: u32,
    seq: u64,
    result: Result<(), String>,
) {
    let label = AppResultLabels {
        agentid: agentid.to_string(),
        result: if result.is_ok() { "ok" } else { "failed" }.into(),
    };
    state.metrics.app_callbacks.get_or_create(&label).inc();
    let d = apps.entry(agentid).or_default();
    d.busy = false;
    let cmd = match &result {
        Ok(()) => {
            d.backoff = Duration::ZERO;
            d.next_at = None;
            Command::CallbackDelivered { agentid, upto: seq }
        }
        Err(e) => {
            d.backoff = (d.backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
            d.next_at = Some(Instant::now() + d.backoff);
            tracing::warn!(agentid, seq, error = %e, retry_in_s = d.backoff.as_secs(), "callback delivery failed");
            Command::CallbackFailed {
                agentid,
                seq,
                error: e.clone(),
            }
        }
    };
    if let Err(e) = propose(state, &cmd, None).await {
        tracing::warn!(agentid, seq, error = %e.message, "could not record the callback outcome");
        d.next_at = Some(Instant::now() + Duration::from_secs(1));
    }
}
