//! `media/upload`, `media/get` and the bulk directory jobs
//! `batch/syncuser`, `batch/replaceuser`, `batch/replaceparty`,
//! `batch/getresult`.
//!
//! An upload (`type=image|voice|file`) goes into the blob store
//! (`crate::blobs`): 4 MiB chunks, each on a majority of the nodes before
//! a `RecordFile` names them, uploader `app:<agentid>`. Its `media_id` is
//! the file id; `message/send` and `appchat/send` attach it, `media/get`
//! serves it back to the app that uploaded it. Like any upload never sent
//! in a conversation, it is deleted after the files policy's
//! `unreferenced_hours` (24 h by default; WeCom keeps media three days).
//!
//! A bulk job reads its CSV from the log, not from the blob store: when a
//! job is created from an uploaded file, its bytes (at most 20 MiB) are
//! copied into the log in 1 MiB `PutMedia` chunks under a fresh internal
//! media id, sealed, and the job refers to that copy, which is kept three
//! days. So every node's runner reads the same rows, whatever happens to
//! the file afterwards. Media ids from before the blob store (uploads that
//! went into the log directly) still work for jobs. A job is created from
//! an upload and its parsed header; the leader's runner
//! (`crate::runner`) then applies it in steps of 2,000 rows.

use axum::extract::{Multipart, State};
use axum::response::Response;
use base64::Engine;
use ring::rand::SecureRandom;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::apps::csv;
use crate::blobs::upload::{self, Declared};
use crate::domain::apply::jobs::{MAX_MEDIA_BYTES, MEDIA_CHUNK};
use crate::domain::files::{BlobRecord, FileKind, MAX_VOICE_MS};
use crate::domain::{self, CallbackCfg, Code, Command, Done, JobCursor, JobKind, Scope};
use crate::http::{ApiError, S, now_ms, store_error};

/// Body limit of `media/upload`: the largest file plus the form's framing.
pub const MAX_UPLOAD_BODY: usize = MAX_MEDIA_BYTES as usize + (64 << 10);
/// WeCom's limits: images 10 MB (JPG, PNG), voice 2 MB (AMR), files 20 MB.
pub const MAX_IMAGE_BYTES: u64 = 10 << 20;
pub const MAX_VOICE_BYTES: u64 = 2 << 20;

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

/// Media are for apps that send messages or run bulk jobs.
fn need_media_scope(call: &AppCall) -> Result<(), WeErr> {
    if [Scope::MessageSend, Scope::AppChat, Scope::DirectoryWrite]
        .into_iter()
        .any(|sc| call.app.allows(sc))
    {
        Ok(())
    } else {
        call.need(Scope::MessageSend)
    }
}

/// The uploader name of the calling app's files.
fn owner(call: &AppCall) -> String {
    format!("app:{}", call.app.agentid)
}

/// WeCom's size refusal for an upload of `kind`.
fn too_large(kind: &str) -> WeErr {
    match kind {
        "image" => err(
            code::INVALID_IMAGE_SIZE,
            format!("images are at most {} MB", MAX_IMAGE_BYTES >> 20),
        ),
        "voice" => err(
            code::INVALID_VOICE_SIZE,
            format!("voice files are at most {} MB", MAX_VOICE_BYTES >> 20),
        ),
        _ => err(
            code::TOO_LARGE,
            format!("files are at most {} MiB", MAX_MEDIA_BYTES >> 20),
        ),
    }
}

/// The blob store's refusal of an upload, in WeCom's terms.
fn upload_refusal(e: ApiError, kind: &str) -> WeErr {
    use http::StatusCode;
    match (e.status, e.code) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => too_large(kind),
        (_, "image_too_large") => err(code::INVALID_IMAGE_SIZE, e.message),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, _) | (_, "invalid_image" | "malware_detected") => {
            err(code::INVALID_FILE_TYPE, e.message)
        }
        _ => WeErr::from(e),
    }
}

/// Length of an AMR-NB file (`#!AMR\n` then 20 ms frames, each a header
/// byte whose frame type gives its size), or `None` if it is not one.
pub fn amr_duration_ms(b: &[u8]) -> Option<u32> {
    // Bytes per frame, header included, by frame type (0-7 speech, 8 SID,
    // 15 no data; 9-14 are not used by AMR-NB).
    const SIZE: [usize; 16] = [13, 14, 16, 18, 20, 21, 27, 32, 6, 0, 0, 0, 0, 0, 0, 1];
    let mut rest = b.strip_prefix(b"#!AMR\n")?;
    let mut frames = 0u64;
    while let Some(h) = rest.first() {
        let n = SIZE[usize::from((h >> 3) & 0x0f)];
        if n == 0 || rest.len() < n {
            return None;
        }
        rest = &rest[n..];
        frames += 1;
    }
    u32::try_from(frames * 20).ok().filter(|ms| *ms > 0)
}

/// A streamed upload: its chunks are on a majority already.
struct Streamed {
    chunks: Vec<[u8; 32]>,
    size: u64,
    sha256: [u8; 32],
    /// The first bytes (type sniffing).
    head: Vec<u8>,
    /// All of it, for voice (AMR duration); at most 2 MB.
    whole: Option<Vec<u8>>,
}

/// Read the `media` field into 4 MiB chunks, replicating each; on a
/// failure the chunks stored so far are dropped.
async fn stream_field(
    state: &S,
    field: &mut axum::extract::multipart::Field<'_>,
    kind: &str,
    limit: u64,
) -> Result<Streamed, WeErr> {
    let mut out = Streamed {
        chunks: Vec::new(),
        size: 0,
        sha256: [0; 32],
        head: Vec::new(),
        whole: (kind == "voice").then(Vec::new),
    };
    let mut chunker = upload::Chunker::new(state);
    let outcome: Result<(), WeErr> = async {
        loop {
            let data = match field.chunk().await {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(too_large(kind));
                }
                Err(e) => return Err(invalid(format!("reading the upload: {}", e.body_text()))),
            };
            if chunker.size() + data.len() as u64 > limit {
                return Err(too_large(kind));
            }
            if out.head.len() < 8192 {
                let take = (8192 - out.head.len()).min(data.len());
                out.head.extend_from_slice(&data[..take]);
            }
            if let Some(w) = &mut out.whole {
                w.extend_from_slice(&data);
            }
            chunker.push(&data).await.map_err(WeErr::from)?;
        }
        let (chunks, sha256, size) = chunker.finish().await.map_err(WeErr::from)?;
        out.chunks = chunks;
        out.sha256 = sha256;
        out.size = size;
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        chunker.abort().await;
        return Err(e);
    }
    Ok(out)
}

/// A file name the blob store takes: 1-255 characters, no control
/// characters.
fn clean_name(name: &str, kind: &str) -> String {
    let n: String = name.chars().filter(|c| !c.is_control()).take(255).collect();
    if n.trim().is_empty() {
        match kind {
            "image" => "image".into(),
            "voice" => "voice.amr".into(),
            _ => "file".into(),
        }
    } else {
        n
    }
}

/// `POST media/upload?type=image|voice|file` (multipart, field `media`).
pub async fn media_upload(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<UploadQuery>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> WeResult {
    // Paced by the client's network, not this node's queue.
    crate::http::admission::latency::not_a_sample();
    need_media_scope(&call)?;
    let kind = match q.kind.as_deref() {
        Some(k @ ("image" | "voice" | "file")) => k,
        Some(other) => {
            return Err(err(
                code::INVALID_MEDIA_TYPE,
                format!("invalid media type {other:?}: supported are image, voice and file"),
            ));
        }
        None => {
            return Err(err(
                code::INVALID_MEDIA_TYPE,
                "type is required (image, voice or file)",
            ));
        }
    };
    let limit = match kind {
        "image" => MAX_IMAGE_BYTES,
        "voice" => MAX_VOICE_BYTES,
        _ => MAX_MEDIA_BYTES,
    };
    let mut multipart =
        multipart.map_err(|e| invalid(format!("not a multipart upload: {}", e.body_text())))?;
    let (name, got) = loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(err(
                    code::MISSING_MEDIA,
                    "media data missing (multipart field \"media\")",
                ));
            }
            Err(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large(kind));
            }
            Err(e) => return Err(invalid(format!("reading the upload: {}", e.body_text()))),
        };
        if field.name() != Some("media") {
            continue;
        }
        let name = clean_name(field.file_name().unwrap_or_default(), kind);
        let got = stream_field(&state, &mut field, kind, limit).await?;
        break (name, got);
    };
    // What WeCom takes of each type, decided from the bytes.
    let (mime, _) = crate::blobs::sniff::sniff(&got.head);
    let mut declared = Declared {
        name,
        kind: FileKind::File,
        size: got.size,
        duration_ms: 0,
    };
    let checked: Result<(), WeErr> = match kind {
        _ if got.size == 0 => Err(err(
            code::MISSING_MEDIA,
            "media data missing (the file is empty)",
        )),
        "image" if mime == "image/jpeg" || mime == "image/png" => {
            declared.kind = FileKind::Image;
            Ok(())
        }
        "image" => Err(err(
            code::INVALID_FILE_TYPE,
            format!("images are JPG or PNG; this is {mime}"),
        )),
        "voice" => match got.whole.as_deref().and_then(amr_duration_ms) {
            Some(ms) if ms <= MAX_VOICE_MS => {
                declared.kind = FileKind::Voice;
                declared.duration_ms = ms;
                Ok(())
            }
            Some(_) => Err(err(
                code::INVALID_VOICE_SIZE,
                format!("voice notes are at most {} s", MAX_VOICE_MS / 1000),
            )),
            None => Err(err(
                code::INVALID_FILE_TYPE,
                "voice files are AMR (AMR-NB, \"#!AMR\" header)",
            )),
        },
        _ => Ok(()),
    }
    .and_then(|()| {
        upload::check_declared(&state, &owner(&call), &declared)
            .map_err(|e| upload_refusal(e, kind))
    });
    if let Err(e) = checked {
        crate::blobs::drop_everywhere(&state, got.chunks).await;
        return Err(e);
    }
    let rec = upload::finish(
        &state,
        &call.origin,
        &owner(&call),
        &declared,
        got.chunks,
        got.sha256,
    )
    .await
    .map_err(|e| upload_refusal(e, kind))?;
    Ok(ok(json!({
        "type": kind,
        "media_id": rec.id,
        "created_at": (rec.created_ms / 1000).to_string(),
    })))
}

/// The calling app's own recorded file `id` (waiting for the log once
/// before saying no: it may have been uploaded through another node).
pub async fn app_file(state: &S, call: &AppCall, id: &str) -> Result<BlobRecord, WeErr> {
    let mine = owner(call);
    crate::http::find_or_catch_up(state, |st| -> Result<_, WeErr> {
        Ok(domain::query::file(&st.view(), id)
            .map_err(store_error)?
            .filter(|f| f.uploader == mine))
    })
    .await?
    .ok_or_else(|| err(code::INVALID_MEDIA_ID, format!("invalid media_id {id:?}")))
}

#[derive(Debug, Deserialize)]
pub struct GetQuery {
    media_id: Option<String>,
}

/// `GET media/get?media_id=`: the bytes of a file this app uploaded, with
/// its type and name (as `GET /v1/files/{id}`; one `Range` honoured).
pub async fn media_get(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<GetQuery>,
    headers: http::HeaderMap,
) -> Result<Response, WeErr> {
    need_media_scope(&call)?;
    let Some(id) = q.media_id.filter(|m| !m.is_empty()) else {
        return Err(err(code::MISSING_MEDIA_ID, "media_id is required"));
    };
    let f = app_file(&state, &call, &id).await?;
    crate::api::v1::files::serve(state, f, headers.get(http::header::RANGE))
        .await
        .map_err(WeErr::from)
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

/// Where a job's input is.
enum Input {
    /// An upload that went into the log directly (before the blob store).
    Log(String),
    /// A file of the blob store: copied into the log for the job.
    Blob(Box<BlobRecord>),
}

/// A job input's bytes: a file of the blob store this app uploaded, or an
/// upload already in the log, if it is this app's and still kept.
async fn upload(state: &S, call: &AppCall, media_id: &str) -> Result<(Input, Vec<u8>), WeErr> {
    let bad = || {
        err(
            code::INVALID_MEDIA_ID,
            format!("invalid media_id {media_id:?}"),
        )
    };
    if media_id.starts_with('f') {
        let f = app_file(state, call, media_id).await?;
        let bytes = read_blob(state, &f).await?;
        return Ok((Input::Blob(Box::new(f)), bytes));
    }
    let view = state.view();
    let meta = domain::query::media_meta(&view, media_id)
        .map_err(store_error)?
        .filter(|m| m.agentid == call.app.agentid && m.expires_ms > now_ms())
        .ok_or_else(bad)?;
    let bytes = domain::query::media_bytes(&view, &meta).map_err(|e| {
        tracing::error!(error = %e, "reading an upload failed");
        err(code::BUSY, "reading the upload failed")
    })?;
    Ok((Input::Log(media_id.to_string()), bytes))
}

/// A (CSV) file of the blob store, whole; at most the log's 20 MiB.
async fn read_blob(state: &S, f: &BlobRecord) -> Result<Vec<u8>, WeErr> {
    if f.size > MAX_MEDIA_BYTES {
        return Err(err(
            code::TOO_LARGE,
            format!("job files are at most {} MiB", MAX_MEDIA_BYTES >> 20),
        ));
    }
    let mut bytes = Vec::with_capacity(f.size as usize);
    for h in &f.chunks {
        let b = crate::blobs::read_chunk(state, *h).await.map_err(|e| {
            err(
                code::BUSY,
                format!("system busy: the file cannot be read right now: {e}"),
            )
        })?;
        bytes.extend_from_slice(&b);
    }
    if bytes.len() as u64 != f.size {
        return Err(err(
            code::BUSY,
            "system busy: the file's chunks do not add up",
        ));
    }
    Ok(bytes)
}

/// Copy a job's input from the blob store into the log: `PutMedia`
/// chunks and a `SealMedia` under a fresh internal media id.
async fn copy_into_log(
    state: &S,
    call: &AppCall,
    f: &BlobRecord,
    bytes: &[u8],
) -> Result<String, WeErr> {
    let id = media_id()?;
    let chunks: Vec<&[u8]> = bytes.chunks(MEDIA_CHUNK).collect();
    for (i, c) in chunks.iter().enumerate() {
        let cmd = Command::PutMedia {
            media_id: id.clone(),
            agentid: call.app.agentid,
            index: i as u32,
            data: c.to_vec(),
        };
        propose(state, call, &cmd, Family::Job).await?;
    }
    let cmd = Command::SealMedia {
        media_id: id.clone(),
        agentid: call.app.agentid,
        kind: "file".into(),
        filename: f.name.clone(),
        size: f.size,
        sha256: f.sha256,
        chunks: chunks.len() as u32,
    };
    propose(state, call, &cmd, Family::Job).await?;
    Ok(id)
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
    let (input, bytes) = upload(&state, &call, &req.media_id).await?;
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
    let media_id = match input {
        Input::Log(id) => id,
        Input::Blob(f) => copy_into_log(&state, &call, &f, &bytes).await?,
    };
    let cmd = Command::CreateJob {
        agentid: call.app.agentid,
        kind,
        media_id,
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

#[cfg(test)]
mod tests {
    use super::amr_duration_ms;

    #[test]
    fn amr_length_is_counted_from_its_frames() {
        // 12.2 kbit/s speech frames (type 7, 32 bytes) and one no-data frame.
        let mut b = b"#!AMR\n".to_vec();
        for _ in 0..50 {
            b.push(7 << 3 | 0x04);
            b.extend_from_slice(&[0u8; 31]);
        }
        b.push(15 << 3);
        assert_eq!(amr_duration_ms(&b), Some(51 * 20));
        // Cut inside a frame, a reserved frame type, no header, no frames.
        assert_eq!(amr_duration_ms(&b[..b.len() - 10]), None);
        assert_eq!(amr_duration_ms(b"#!AMR\n\x48"), None);
        assert_eq!(amr_duration_ms(b"ID3\x03"), None);
        assert_eq!(amr_duration_ms(b"#!AMR\n"), None);
    }
}
