//! `media/upload` and the bulk directory jobs `batch/syncuser`,
//! `batch/replaceuser`, `batch/replaceparty`, `batch/getresult`.
//!
//! An upload goes into the replicated log in 1 MiB chunks (so any node can
//! read it back, whichever node took the upload) and is kept three days.
//! A job is created from an upload and its parsed header; the leader's
//! runner (`crate::runner`) then applies it in steps of 2,000 rows.

use axum::extract::{Multipart, State};
use base64::Engine;
use ring::rand::SecureRandom;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::apps::csv;
use crate::domain::apply::jobs::{MAX_MEDIA_BYTES, MEDIA_CHUNK};
use crate::domain::{self, CallbackCfg, Code, Command, Done, JobCursor, JobKind, Scope};
use crate::http::{S, now_ms, store_error};

/// Body limit of `media/upload`: the largest file plus the form's framing.
pub const MAX_UPLOAD_BODY: usize = MAX_MEDIA_BYTES as usize + (64 << 10);

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn media_id() -> Result<String, WeErr> {
    let mut b = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| err(code::BUSY, "no randomness"))?;
    Ok(format!(
        "3{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// `POST media/upload?type=file` (multipart, field `media`).
pub async fn media_upload(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<UploadQuery>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WeResult {
    // Uploads feed the bulk jobs, which write the directory.
    call.need(Scope::DirectoryWrite)?;
    match q.kind.as_deref() {
        Some("file") => {}
        Some(other) => {
            return Err(err(
                code::INVALID_MEDIA_TYPE,
                format!("invalid media type {other:?}: only type=file is supported"),
            ));
        }
        None => {
            return Err(err(
                code::INVALID_MEDIA_TYPE,
                "type is required (type=file)",
            ));
        }
    }
    let mut multipart =
        multipart.map_err(|e| invalid(format!("not a multipart upload: {}", e.body_text())))?;
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(err(
                    code::TOO_LARGE,
                    format!("files are at most {} MiB", MAX_MEDIA_BYTES >> 20),
                ));
            }
            Err(e) => return Err(invalid(format!("reading the upload: {}", e.body_text()))),
        };
        if field.name() != Some("media") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                err(
                    code::TOO_LARGE,
                    format!("files are at most {} MiB", MAX_MEDIA_BYTES >> 20),
                )
            } else {
                invalid(format!("reading the upload: {}", e.body_text()))
            }
        })?;
        file = Some((name, bytes.to_vec()));
    }
    let Some((filename, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Err(err(
            code::MISSING_MEDIA,
            "media data missing (multipart field \"media\")",
        ));
    };
    if bytes.len() as u64 > MAX_MEDIA_BYTES {
        return Err(err(
            code::TOO_LARGE,
            format!("files are at most {} MiB", MAX_MEDIA_BYTES >> 20),
        ));
    }
    let id = media_id()?;
    let chunks: Vec<&[u8]> = bytes.chunks(MEDIA_CHUNK).collect();
    for (i, c) in chunks.iter().enumerate() {
        let cmd = Command::PutMedia {
            media_id: id.clone(),
            agentid: call.app.agentid,
            index: i as u32,
            data: c.to_vec(),
        };
        propose(&state, &call, &cmd, Family::Job).await?;
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    let cmd = Command::SealMedia {
        media_id: id.clone(),
        agentid: call.app.agentid,
        kind: "file".into(),
        filename,
        size: bytes.len() as u64,
        sha256: sha,
        chunks: chunks.len() as u32,
    };
    propose(&state, &call, &cmd, Family::Job).await?;
    Ok(ok(json!({
        "type": "file",
        "media_id": id,
        "created_at": (now_ms() / 1000).to_string(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobCallbackReq {
    #[serde(default)]
    url: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    encodingaeskey: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchReq {
    media_id: String,
    #[serde(default)]
    #[serde(rename = "to_invite")]
    _to_invite: Option<IgnoredAny>,
    #[serde(default)]
    callback: Option<JobCallbackReq>,
}

/// The upload's bytes, if it is this app's and still kept.
fn upload(state: &S, call: &AppCall, media_id: &str) -> Result<Vec<u8>, WeErr> {
    let view = state.view();
    let bad = || {
        err(
            code::INVALID_MEDIA_ID,
            format!("invalid media_id {media_id:?}"),
        )
    };
    let meta = domain::query::media_meta(&view, media_id)
        .map_err(store_error)?
        .filter(|m| m.agentid == call.app.agentid && m.expires_ms > now_ms())
        .ok_or_else(bad)?;
    domain::query::media_bytes(&view, &meta).map_err(|e| {
        tracing::error!(error = %e, "reading an upload failed");
        err(code::BUSY, "reading the upload failed")
    })
}

/// The job's own callback, if the request named a URL (checked now).
async fn job_callback(state: &S, cb: Option<JobCallbackReq>) -> Result<Option<CallbackCfg>, WeErr> {
    let Some(cb) = cb.filter(|c| !c.url.is_empty()) else {
        return Ok(None);
    };
    let cfg = CallbackCfg {
        url: cb.url,
        token: cb.token,
        aes_key: cb.encodingaeskey,
    };
    domain::apply::valid_callback(&cfg).map_err(|r| invalid(format!("callback: {}", r.message)))?;
    state
        .delivery
        .check_url(&cfg.url)
        .await
        .map_err(|e| invalid(format!("callback: {e}")))?;
    Ok(Some(cfg))
}

async fn start(state: S, call: AppCall, req: BatchReq, kind: JobKind) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    let bytes = upload(&state, &call, &req.media_id)?;
    let (columns, start, total) = match kind {
        JobKind::ReplaceParty => {
            let cols =
                csv::party_header(&bytes).map_err(|e| invalid(format!("invalid file: {e}")))?;
            let total = csv::count_rows(&bytes, &cols);
            let columns = postcard::to_stdvec(&cols).map_err(|e| err(code::BUSY, e.to_string()))?;
            (
                columns,
                JobCursor::Rows {
                    pos: 0,
                    line: cols.data_start.line,
                },
                total,
            )
        }
        _ => {
            let cols =
                csv::user_header(&bytes).map_err(|e| invalid(format!("invalid file: {e}")))?;
            let total = csv::count_rows(&bytes, &cols);
            let columns = postcard::to_stdvec(&cols).map_err(|e| err(code::BUSY, e.to_string()))?;
            let at = cols.data_start;
            (
                columns,
                JobCursor::Rows {
                    pos: at.offset,
                    line: at.line,
                },
                total,
            )
        }
    };
    let callback = job_callback(&state, req.callback).await?;
    let cmd = Command::CreateJob {
        agentid: call.app.agentid,
        kind,
        media_id: req.media_id,
        columns,
        start,
        total,
        callback,
    };
    match propose(&state, &call, &cmd, Family::Job).await? {
        Done::Job(job) => {
            state.runner_wake.notify_one();
            Ok(ok(json!({ "jobid": job.jobid })))
        }
        other => Err(err(code::BUSY, format!("unexpected outcome {other:?}"))),
    }
}

/// `POST batch/syncuser`
pub async fn syncuser(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<BatchReq>,
) -> WeResult {
    start(state, call, req, JobKind::SyncUser).await
}

/// `POST batch/replaceuser`: members absent from the file are disabled
/// (not deleted).
pub async fn replaceuser(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<BatchReq>,
) -> WeResult {
    start(state, call, req, JobKind::ReplaceUser).await
}

/// `POST batch/replaceparty`
pub async fn replaceparty(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<BatchReq>,
) -> WeResult {
    start(state, call, req, JobKind::ReplaceParty).await
}

#[derive(Debug, Deserialize)]
pub struct ResultQuery {
    jobid: Option<String>,
}

/// A row's outcome as WeCom's errcode.
fn row_code(code_: Option<Code>, message: &str, family: Family) -> i64 {
    match code_ {
        None => 0,
        Some(Code::NotFound) if message.contains("department") => code::DEPT_NOT_FOUND,
        Some(c) => {
            super::errors::refusal(
                domain::Refusal {
                    code: c,
                    message: String::new(),
                },
                family,
            )
            .errcode
        }
    }
}

/// `GET batch/getresult?jobid=`
pub async fn getresult(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<ResultQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let Some(jobid) = q.jobid.filter(|j| !j.is_empty()) else {
        return Err(invalid("jobid is required"));
    };
    let view = state.view();
    let job = domain::query::job(&view, &jobid)
        .map_err(store_error)?
        .filter(|j| j.agentid == call.app.agentid)
        .ok_or_else(|| invalid(format!("invalid jobid {jobid:?}")))?;
    let done = job.cursor == JobCursor::Done;
    let status = if done {
        3
    } else if job.steps == 0 {
        1
    } else {
        2
    };
    let percentage = if done {
        100
    } else {
        (job.processed * 100)
            .checked_div(job.total)
            .unwrap_or(0)
            .min(99)
    };
    let results = domain::query::job_results(&view, &jobid).map_err(store_error)?;
    let result: Vec<Value> = match job.kind {
        JobKind::ReplaceParty => results
            .iter()
            .map(|r| {
                let action = match r.action.as_str() {
                    "create" => 1,
                    "update" => 2,
                    "delete" => 16,
                    _ => 0,
                };
                json!({
                    "action": action,
                    "partyid": r.key.parse::<u64>().unwrap_or(0),
                    "errcode": row_code(r.code, &r.message, Family::Department),
                    "errmsg": r.message,
                })
            })
            .collect(),
        _ => results
            .iter()
            .map(|r| {
                json!({
                    "userid": r.key,
                    "errcode": row_code(r.code, &r.message, Family::User),
                    "errmsg": if r.action == "disable" { "disabled: not in the file".to_string() } else { r.message.clone() },
                })
            })
            .collect(),
    };
    Ok(ok(json!({
        "status": status,
        "type": job.kind.as_str(),
        "total": job.total,
        "percentage": percentage,
        "result": result,
    })))
}
