//! Uploaded files (`media/upload`) and bulk directory jobs (`batch/*`).
//!
//! A file goes into the log in chunks, then is sealed (size and SHA-256
//! checked at apply) and kept three days. A job records the file and the
//! parsed header; the leader then parses the next rows from the job's
//! cursor and proposes them as a `JobStep`. A step applies only at the
//! cursor it was parsed from, so a step proposed twice (by a deposed
//! leader and its successor) applies once; one bad row is reported and
//! the rest still apply.

use super::*;

/// Uploaded files are kept this long (WeCom: three days).
pub const MEDIA_TTL_MS: u64 = 3 * 24 * 3600 * 1000;
/// An upload not sealed within this long is dropped.
pub const UNSEALED_TTL_MS: u64 = 3600 * 1000;
/// Largest file (WeCom's limit for files).
pub const MAX_MEDIA_BYTES: u64 = 20 << 20;
/// Bytes per chunk in the log.
pub const MEDIA_CHUNK: usize = 1 << 20;
/// Rows (or absent members) per job step.
pub const JOB_STEP_ROWS: usize = 2_000;
/// Party rows (or absent departments) per step: deleting a department can
/// move its members.
pub const PARTY_STEP: usize = JOB_STEP_ROWS / 4;

pub(super) fn put_media<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    media_id: &str,
    index: u32,
    data: &[u8],
) -> R<Done> {
    ensure!(
        !media_id.is_empty() && media_id.len() <= 64,
        Code::InvalidArgument,
        "invalid media id"
    );
    ensure!(
        data.len() <= MEDIA_CHUNK && u64::from(index) * (MEDIA_CHUNK as u64) < MAX_MEDIA_BYTES,
        Code::LimitExceeded,
        "files are at most {} MiB",
        MAX_MEDIA_BYTES >> 20
    );
    ensure!(
        s.get(&keys::media_meta(media_id))?.is_none(),
        Code::AlreadyExists,
        "media {media_id:?} is sealed"
    );
    if s.get(&keys::media_unsealed(media_id))?.is_none() {
        s.put_as(&keys::media_unsealed(media_id), &ctx.time_ms)?;
    }
    s.put(&keys::media_chunk(media_id, index), data.to_vec());
    Ok(Ok(Done::Ok))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn seal_media<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    media_id: &str,
    agentid: u32,
    kind: &str,
    filename: &str,
    size: u64,
    sha256: &[u8; 32],
    chunks: u32,
) -> R<Done> {
    ensure!(
        s.get(&keys::media_unsealed(media_id))?.is_some(),
        Code::NotFound,
        "no upload {media_id:?} in progress"
    );
    ensure!(
        size <= MAX_MEDIA_BYTES,
        Code::LimitExceeded,
        "file too large"
    );
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total = 0u64;
    for i in 0..chunks {
        let Some(b) = s.get(&keys::media_chunk(media_id, i))? else {
            return Ok(refuse(
                Code::InvalidArgument,
                format!("upload {media_id:?} lacks chunk {i}"),
            ));
        };
        total += b.len() as u64;
        hash.update(&b);
    }
    ensure!(
        total == size && hash.finish().as_ref() == sha256,
        Code::InvalidArgument,
        "upload {media_id:?} does not match its size and SHA-256"
    );
    prune_media(s, ctx)?;
    let meta = MediaMeta {
        media_id: media_id.to_string(),
        agentid,
        kind: kind.to_string(),
        filename: filename.chars().take(128).collect(),
        size,
        sha256: *sha256,
        chunks,
        created_ms: ctx.time_ms,
        expires_ms: ctx.time_ms + MEDIA_TTL_MS,
    };
    s.delete(&keys::media_unsealed(media_id));
    s.put(&keys::media_expiry(meta.expires_ms, media_id), Vec::new());
    s.put_as(&keys::media_meta(media_id), &meta)?;
    Ok(Ok(Done::Created {
        id: media_id.to_string(),
    }))
}

fn drop_media<S: Store>(s: &mut Overlay<'_, S>, media_id: &str) -> Result<(), StoreFault> {
    let prefix = [b"media/".as_slice(), media_id.as_bytes(), b"\0"].concat();
    for (k, _) in s.scan(&prefix, None, usize::MAX)? {
        s.delete(&k);
    }
    s.delete(&keys::media_meta(media_id));
    s.delete(&keys::media_unsealed(media_id));
    Ok(())
}

/// Drop expired files and abandoned uploads (bounded per call).
fn prune_media<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx) -> Result<(), StoreFault> {
    for (k, _) in s.scan(keys::MEDIA_EXPIRY, None, 8)? {
        let rest = &k[keys::MEDIA_EXPIRY.len()..];
        let Some(at) = rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            continue;
        };
        if u64::from_be_bytes(at) > ctx.time_ms {
            break;
        }
        let id = String::from_utf8_lossy(&rest[8..]).into_owned();
        drop_media(s, &id)?;
        s.delete(&k);
    }
    for (k, since) in s.scan_as::<u64>(keys::MEDIA_UNSEALED, None, 64)? {
        if since + UNSEALED_TTL_MS <= ctx.time_ms {
            let id = String::from_utf8_lossy(&k[keys::MEDIA_UNSEALED.len()..]).into_owned();
            drop_media(s, &id)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create_job<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    kind: JobKind,
    media_id: &str,
    columns: &[u8],
    start: &JobCursor,
    total: u64,
    callback: &Option<CallbackCfg>,
) -> R<Done> {
    let _ = check!(apps::app_ok(s, agentid, Scope::DirectoryWrite));
    let Some(meta) = s.get_as::<MediaMeta>(&keys::media_meta(media_id))? else {
        return Ok(refuse(Code::NotFound, format!("no media {media_id:?}")));
    };
    ensure!(
        meta.agentid == agentid,
        Code::NotFound,
        "no media {media_id:?}"
    );
    ensure!(
        meta.expires_ms > ctx.time_ms,
        Code::Expired,
        "media {media_id:?} has expired"
    );
    if let Some(cb) = callback {
        valid!(apps::valid_callback(cb));
    }
    let n = s.get_as::<u64>(keys::JOB_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::JOB_CTR, &n)?;
    let job = Job {
        jobid: format!("job{n:08}"),
        agentid,
        kind,
        media_id: media_id.to_string(),
        columns: columns.to_vec(),
        cursor: start.clone(),
        total,
        processed: 0,
        failed: 0,
        removed: 0,
        steps: 0,
        created_ms: ctx.time_ms,
        finished_ms: 0,
        callback: callback.clone(),
    };
    s.put_as(&keys::job(&job.jobid), &job)?;
    Ok(Ok(Done::Job(job)))
}

/// Mark a member as listed by replace job `jobid` (members not so marked
/// when the job reaches its end are absent from the file).
fn stamp<S: Store>(s: &mut Overlay<'_, S>, userid: &str, jobid: &str) -> Result<(), StoreFault> {
    if s.get(&keys::user(userid))?.is_none() {
        return Ok(());
    }
    let mut p = users::profile_of(s, userid)?;
    if p.synced_by != jobid {
        p.synced_by = jobid.to_string();
        s.put_as(&keys::profile(userid), &p)?;
    }
    Ok(())
}

/// Run `f` as one row: its writes stay only if it succeeds.
fn row<S: Store>(
    s: &mut Overlay<'_, S>,
    f: impl FnOnce(&mut Overlay<'_, Overlay<'_, S>>) -> R<Done>,
) -> Result<Result<Done, Refusal>, StoreFault> {
    let mut sub = Overlay {
        base: &*s,
        writes: Default::default(),
        events: Vec::new(),
        log_version: s.log_version,
    };
    let out = f(&mut sub)?;
    let Overlay { writes, events, .. } = sub;
    if out.is_ok() {
        for (k, v) in writes {
            match v {
                Some(v) => s.put(&k, v),
                None => s.delete(&k),
            }
        }
        s.events.extend(events);
    }
    Ok(out)
}

fn result(key: &str, action: &str, out: Result<Done, Refusal>) -> RowResult {
    match out {
        Ok(_) => RowResult {
            key: key.to_string(),
            action: action.to_string(),
            code: None,
            message: String::new(),
        },
        Err(r) => RowResult {
            key: key.to_string(),
            action: action.to_string(),
            code: Some(r.code),
            message: r.message,
        },
    }
}

pub(super) fn job_step<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    jobid: &str,
    at: &JobCursor,
    next: &JobCursor,
    rows: &JobRows,
) -> R<Done> {
    let jkey = keys::job(jobid);
    let Some(mut job) = s.get_as::<Job>(&jkey)? else {
        return Ok(refuse(Code::NotFound, format!("no job {jobid:?}")));
    };
    ensure!(
        job.cursor == *at && job.cursor != JobCursor::Done,
        Code::Stale,
        "job {jobid} is at {:?}, not {at:?}",
        job.cursor
    );
    // Bulk jobs run as the system on behalf of their app: no per-row
    // change events (the app gets one batch_job_result).
    let row_ctx = Ctx {
        time_ms: ctx.time_ms,
        app: Some(job.agentid),
    };
    let mut results = Vec::new();
    let replace = job.kind != JobKind::SyncUser;
    // Row steps go where the leader parsed to (the file does not change);
    // the other phases depend on the state and decide here.
    let mut next_cursor: Option<JobCursor> = None;
    match rows {
        JobRows::Users(list) => {
            for (_, key, r) in list {
                let out = match r {
                    Ok(f) => row(s, |t| {
                        users::put_user(t, &row_ctx, PutMode::Upsert, f, false)
                    })?,
                    Err(msg) => refuse(Code::InvalidArgument, msg.clone()),
                };
                if replace && !key.is_empty() {
                    // Listed in the file, even if the row was bad: not
                    // "absent", so not disabled at the end.
                    stamp(s, key, jobid)?;
                }
                job.processed += 1;
                job.failed += u64::from(out.is_err());
                results.push(result(key, "", out));
            }
        }
        JobRows::Parties(list) => {
            for (_, key, r) in list {
                let (action, out) = match r {
                    Ok(f) => {
                        let exists = match f.id {
                            Some(id) => s.get(&keys::dept(id))?.is_some(),
                            None => false,
                        };
                        let action = if exists { "update" } else { "create" };
                        let out =
                            row(s, |t| users::put_department(t, &row_ctx, !exists, f, false))?;
                        (action, out)
                    }
                    Err(msg) => ("", refuse(Code::InvalidArgument, msg.clone())),
                };
                if !key.is_empty() {
                    s.put(&keys::job_seen(jobid, key), Vec::new());
                }
                job.processed += 1;
                job.failed += u64::from(out.is_err());
                results.push(result(key, action, out));
            }
        }
        JobRows::None => match (&job.kind, at) {
            (JobKind::ReplaceUser, JobCursor::Absent { step, after }) => {
                let start = keys::user(after);
                let page = s.scan_as::<Member>(
                    keys::USERS,
                    (!after.is_empty()).then_some(start.as_slice()),
                    JOB_STEP_ROWS,
                )?;
                let full = page.len() == JOB_STEP_ROWS;
                let last = page.last().map(|(_, m)| m.userid.clone());
                for (_, m) in page {
                    if m.status == MemberStatus::Active
                        && users::profile_of(s, &m.userid)?.synced_by != jobid
                    {
                        let out = row(s, |t| {
                            directory::set_status(t, &row_ctx, &m.userid, MemberStatus::Disabled)
                        })?;
                        job.removed += u64::from(out.is_ok());
                        results.push(result(&m.userid, "disable", out));
                    }
                }
                // Where the next step starts is decided here, from what
                // this step saw (members may have been added meanwhile).
                next_cursor = Some(match last {
                    Some(after) if full => JobCursor::Absent {
                        step: step + 1,
                        after,
                    },
                    _ => JobCursor::Done,
                });
            }
            (JobKind::ReplaceParty, JobCursor::Absent { step, .. }) => {
                for id in absent_departments(s, jobid, PARTY_STEP)? {
                    let out = row(s, |t| remove_department(t, &row_ctx, id))?;
                    if out.is_err() {
                        // Reported once, not retried: the job moves on.
                        s.put(&keys::job_seen(jobid, &id.to_string()), Vec::new());
                    }
                    job.removed += u64::from(out.is_ok());
                    results.push(result(&id.to_string(), "delete", out));
                }
                next_cursor = Some(if absent_departments(s, jobid, 1)?.is_empty() {
                    JobCursor::Cleanup { step: 0 }
                } else {
                    JobCursor::Absent {
                        step: step + 1,
                        after: String::new(),
                    }
                });
            }
            (_, JobCursor::Cleanup { step }) => {
                let seen = s.scan(&keys::job_seen_all(jobid), None, JOB_STEP_ROWS * 4 + 1)?;
                let more = seen.len() > JOB_STEP_ROWS * 4;
                for (k, _) in seen.into_iter().take(JOB_STEP_ROWS * 4) {
                    s.delete(&k);
                }
                next_cursor = Some(if more {
                    JobCursor::Cleanup { step: step + 1 }
                } else {
                    JobCursor::Done
                });
            }
            _ => {}
        },
    }
    if !results.is_empty() {
        s.put_as(&keys::job_result(jobid, job.steps), &results)?;
    }
    job.steps += 1;
    job.cursor = next_cursor.unwrap_or_else(|| next.clone());
    if job.cursor == JobCursor::Done {
        job.finished_ms = ctx.time_ms;
        finished(s, ctx, &job)?;
    }
    s.put_as(&jkey, &job)?;
    Ok(Ok(Done::Ok))
}

/// Departments a replace-party job's file did not list, deepest first
/// (children go before their parents), at most `limit`. Never the root.
pub fn absent_departments<S: Store + ?Sized>(
    s: &S,
    jobid: &str,
    limit: usize,
) -> Result<Vec<u64>, StoreFault> {
    let mut found = Vec::new();
    let all = s.scan_as::<Department>(b"dept/", None, usize::MAX)?;
    let parents: std::collections::BTreeMap<u64, Option<u64>> =
        all.iter().map(|(_, d)| (d.id, d.parent)).collect();
    for (_, d) in &all {
        if d.id == ROOT_DEPARTMENT || s.get(&keys::job_seen(jobid, &d.id.to_string()))?.is_some() {
            continue;
        }
        let mut depth = 0u32;
        let mut at = d.parent;
        while let Some(p) = at {
            depth += 1;
            if depth > 10_000 {
                break;
            }
            at = parents.get(&p).copied().flatten();
        }
        found.push((std::cmp::Reverse(depth), d.id));
    }
    found.sort();
    Ok(found.into_iter().take(limit).map(|(_, id)| id).collect())
}

/// Delete a department a replace-party file left out: its members who
/// belong nowhere else move to the root department first.
fn remove_department<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, id: u64) -> R<Done> {
    let prefix = keys::dept_members(id);
    for (k, _) in s.scan(&prefix, None, usize::MAX)? {
        let userid = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let Some(m) = s.get_as::<Member>(&keys::user(&userid))? else {
            continue;
        };
        let mut depts: Vec<u64> = m.departments.iter().copied().filter(|d| *d != id).collect();
        if depts.is_empty() {
            depts.push(ROOT_DEPARTMENT);
        }
        let f = UserFields {
            userid,
            departments: Some(depts),
            ..Default::default()
        };
        let _ = check!(users::put_user(s, ctx, PutMode::Update, &f, false));
    }
    directory::delete_department(s, ctx, id)
}

/// The job is done: its app (or the job's own callback) is told.
fn finished<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, job: &Job) -> Result<(), StoreFault> {
    let Some(app) = s.get_as::<App>(&keys::app(job.agentid))? else {
        return Ok(());
    };
    if job.callback.is_none() && app.callback.is_none() {
        return Ok(());
    }
    callbacks::enqueue(
        s,
        ctx,
        job.agentid,
        "batch_job_result",
        callbacks::Header {
            from: "sys",
            msg_type: "event",
        },
        vec![
            ("Event", callbacks::cdata("batch_job_result")),
            (
                "BatchJob",
                format!(
                    "<JobId>{}</JobId><JobType>{}</JobType><ErrCode>0</ErrCode><ErrMsg>{}</ErrMsg>",
                    callbacks::cdata(&job.jobid),
                    callbacks::cdata(job.kind.as_str()),
                    callbacks::cdata("ok")
                ),
            ),
        ],
        job.callback.clone(),
    )
}
