//! Files, images and voice notes on the client API: upload in one request
//! or resumably, download with ranges, thumbnails.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::blobs::upload::{self, Declared, Session};
use crate::domain::files::{BlobRecord, CHUNK_SIZE, FileKind};
use crate::http::extract::PathArgs;
use crate::http::files::file_json;
use crate::http::{ApiError, Body, NodeState, Params, S, now_ms, refusal, store_error};

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", msg)
}

fn parse_kind(k: Option<&str>) -> Result<FileKind, ApiError> {
    match k {
        None => Ok(FileKind::File),
        Some(k) => {
            FileKind::parse(k).ok_or_else(|| bad(format!("kind {k:?}: use file, image or voice")))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    name: String,
    kind: Option<String>,
    duration_ms: Option<u32>,
}

/// `POST /v1/files?name=&kind=&duration_ms=`: the raw bytes as the body.
/// The size comes from `Content-Length` when given (413 before reading);
/// a chunked body is cut off at the policy's limit.
pub async fn upload_whole(
    State(state): State<S>,
    caller: Result<Caller, ApiError>,
    q: Result<Params<UploadQuery>, ApiError>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Paced by the client's network, not this node's queue.
    crate::http::admission::latency::not_a_sample();
    let mut body = body;
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let early = (|| {
        let caller = caller?;
        let Params(q) = q?;
        let policy = crate::domain::query::file_policy(&state.view()).map_err(store_error)?;
        let d = Declared {
            name: q.name,
            kind: parse_kind(q.kind.as_deref())?,
            size: declared_len.unwrap_or(1),
            duration_ms: q.duration_ms.unwrap_or(0),
        };
        upload::check_declared(&state, &caller.userid, &d)?;
        Ok::<_, ApiError>((caller, policy, d))
    })();
    let (caller, policy, mut d) = match early {
        Ok(v) => v,
        Err(e) => {
            // Refused before the body was read: let the client finish
            // sending (bounded) so it reads the refusal instead of a reset.
            crate::http::body::drain(&mut body).await;
            return Err(e);
        }
    };
    let limit = policy.max_file_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("files are at most {limit} bytes (policy max_file_bytes)"),
        )
    };
    let mut chunker = upload::Chunker::new(&state);
    let outcome: Result<upload::Chunked, ApiError> = async {
        loop {
            let frame = match body.frame().await {
                None => break,
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    return Err(bad(format!("the upload was interrupted: {e}")));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if chunker.size() + data.len() as u64 > limit {
                return Err(too_large());
            }
            chunker.push(&data).await?;
        }
        let done = chunker.finish().await?;
        let total = done.2;
        if total == 0 {
            return Err(bad("the file is empty"));
        }
        if let Some(n) = declared_len
            && n != total
        {
            return Err(bad(format!(
                "Content-Length said {n} bytes, {total} arrived"
            )));
        }
        Ok(done)
    }
    .await;
    let (chunks, sha, total) = match outcome {
        Ok(done) => done,
        Err(e) => {
            crate::http::body::drain(&mut body).await;
            chunker.abort().await;
            return Err(e);
        }
    };
    d.size = total;
    let rec = upload::finish(&state, &caller.origin, &caller.userid, &d, chunks, sha).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "file": file_json(&rec) })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    name: String,
    size: u64,
    kind: Option<String>,
    duration_ms: Option<u32>,
}

fn session_json(s: &Session) -> Value {
    json!({
        "upload_id": s.id,
        "name": s.declared.name,
        "size": s.declared.size,
        "kind": s.declared.kind.as_str(),
        "chunk_size": CHUNK_SIZE,
        "chunks": s.chunks.len(),
        "received": s.received(),
        "created_ms": s.created_ms,
    })
}

/// `POST /v1/uploads`: start a resumable upload.
pub async fn upload_start(
    State(state): State<S>,
    caller: Caller,
    Body(req): Body<NewUpload>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d = Declared {
        name: req.name,
        kind: parse_kind(req.kind.as_deref())?,
        size: req.size,
        duration_ms: req.duration_ms.unwrap_or(0),
    };
    upload::check_declared(&state, &caller.userid, &d)?;
    let s = Session {
        id: upload::new_id('u')?,
        owner: caller.userid.clone(),
        chunks: vec![None; d.size.div_ceil(CHUNK_SIZE) as usize],
        declared: d,
        created_ms: now_ms(),
    };
    state.blobs.uploads.create(s.clone())?;
    Ok((StatusCode::CREATED, Json(session_json(&s))))
}

fn session(state: &NodeState, caller: &Caller, id: &str) -> Result<Session, ApiError> {
    state.blobs.uploads.get(id, &caller.userid).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no upload {id:?} of yours in progress on this node (uploads resume on the node that started them, for 24 h)"
            ),
        )
    })
}

/// `GET /v1/uploads/{id}`: what has arrived (to resume).
pub async fn upload_status(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&session(&state, &caller, &id)?)))
}

/// `PUT /v1/uploads/{id}/chunks/{index}`: one chunk, exactly `chunk_size`
/// bytes (the last one shorter). Durable on a majority when answered.
pub async fn upload_chunk(
    State(state): State<S>,
    caller: Caller,
    PathArgs((id, index)): PathArgs<(String, u64)>,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    crate::http::admission::latency::not_a_sample();
    let s = session(&state, &caller, &id)?;
    let Some(expected) = upload::chunk_len(s.declared.size, index) else {
        return Err(bad(format!(
            "chunk {index}: this upload has chunks 0 to {}",
            s.chunks.len().saturating_sub(1)
        )));
    };
    let bytes = axum::body::to_bytes(body, expected as usize)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("chunk {index} must be exactly {expected} bytes"),
            )
        })?;
    if bytes.len() as u64 != expected {
        return Err(bad(format!(
            "chunk {index} must be exactly {expected} bytes, got {}",
            bytes.len()
        )));
    }
    let h = crate::blobs::store::sha256(&bytes);
    if let Err(e) = crate::blobs::replicate_hashed(&state, h, bytes.clone()).await {
        crate::blobs::drop_everywhere(&state, vec![h]).await;
        return Err(upload::replicate_error(e));
    }
    state.blobs.uploads.set_chunk(&id, index as usize, &h)?;
    state.blobs.uploads.feed(&id, index as usize, &h, &bytes);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/uploads/{id}/finish`: check and record the file.
pub async fn upload_finish(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s = session(&state, &caller, &id)?;
    let (chunks, sha) = upload::whole_hash(&state, &s).await?;
    let result = upload::finish(
        &state,
        &caller.origin,
        &caller.userid,
        &s.declared,
        chunks,
        sha,
    )
    .await;
    // Finished or refused for good: the session is over either way,
    // unless the cluster could not be reached (then the client retries).
    match &result {
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {}
        _ => state.blobs.uploads.remove(&id),
    }
    let rec = result?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "file": file_json(&rec) })),
    ))
}

/// `DELETE /v1/uploads/{id}`: give up; the chunks are dropped.
pub async fn upload_cancel(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<StatusCode, ApiError> {
    let s = session(&state, &caller, &id)?;
    state.blobs.uploads.remove(&id);
    let hashes: Vec<[u8; 32]> = s
        .chunks
        .iter()
        .flatten()
        .filter_map(|h| {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b).ok().map(|_| b)
        })
        .collect();
    crate::blobs::drop_everywhere(&state, hashes).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The file, if the caller may read it, on any node: a record or message
/// not applied here yet is waited for (read barrier) before refusing.
pub async fn readable(state: &S, userid: &str, id: &str) -> Result<BlobRecord, ApiError> {
    let view = state.view();
    let first = crate::domain::query::file_for(&view, userid, id).map_err(store_error)?;
    if let Ok(f) = first {
        return Ok(f);
    }
    barrier_through_elections(state).await?;
    crate::domain::query::file_for(&state.view(), userid, id)
        .map_err(store_error)?
        .map_err(refusal)
}

/// A read barrier that rides out a leader change (the leader that took a
/// file's message may just have died): retried for up to 10 s while no
/// leader answers.
async fn barrier_through_elections(state: &S) -> Result<(), ApiError> {
    use enclave_cluster::error::ClusterError;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match state.cluster.read_barrier().await {
            Ok(()) => return Ok(()),
            Err(
                ClusterError::NoLeader | ClusterError::Peer(_) | ClusterError::Unavailable { .. },
            ) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            Err(e) => return Err(crate::http::cluster_error(e)),
        }
    }
}

/// `GET /v1/files/{id}/info`
pub async fn info(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let f = readable(&state, &caller.userid, &id).await?;
    Ok(Json(json!({ "file": file_json(&f) })))
}

/// `GET /v1/files/{id}`: the bytes (one `Range` honoured).
pub async fn download(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let f = readable(&state, &caller.userid, &id).await?;
    serve(state, f, headers.get(header::RANGE)).await
}

/// A byte range of a file: `bytes=a-b`, `bytes=a-`, `bytes=-n`. `None`
/// serves the whole file (several ranges are answered whole, as RFC 9110
/// allows); `Err` is a 416.
fn parse_range(v: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = v.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(size - 1)
        };
        (start, end)
    };
    if start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn disposition(f: &BlobRecord) -> String {
    let inline = matches!(f.kind, FileKind::Image | FileKind::Voice);
    let ascii: String = f
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(f.name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    )
}

pub(crate) async fn serve(
    state: S,
    f: BlobRecord,
    range: Option<&HeaderValue>,
) -> Result<Response, ApiError> {
    let Ok(range) = parse_range(range, f.size) else {
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{}", f.size))],
        )
            .into_response());
    };
    let (start, end) = range.unwrap_or((0, f.size - 1));
    // Fail before the headers if the first chunk cannot be had at all.
    let first = (start / CHUNK_SIZE) as usize;
    let first_bytes = crate::blobs::read_chunk(&state, f.chunks[first])
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("file {:?} cannot be read right now: {e}", f.id),
            )
        })?;
    let stream = chunk_stream(state, f.clone(), start, end, first_bytes);
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    let h = resp.headers_mut();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
    h.insert(header::CONTENT_TYPE, hv(&f.mime));
    h.insert(header::CONTENT_LENGTH, hv(&(end - start + 1).to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, hv(&format!("\"{}\"", hex::encode(f.sha256))));
    h.insert(header::CONTENT_DISPOSITION, hv(&disposition(&f)));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        resp.headers_mut().insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {start}-{end}/{}", f.size)),
        );
    }
    Ok(resp)
}

/// The bytes `start..=end` of `f`, chunk by chunk (each verified; missing
/// or damaged chunks come from peers).
fn chunk_stream(
    state: S,
    f: BlobRecord,
    start: u64,
    end: u64,
    first_bytes: Bytes,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let first = start / CHUNK_SIZE;
    let last = end / CHUNK_SIZE;
    futures_util::stream::unfold((first, Some(first_bytes)), move |(i, prefetched)| {
        let state: Arc<NodeState> = state.clone();
        let f = f.clone();
        async move {
            if i > last {
                return None;
            }
            let bytes = match prefetched {
                Some(b) => b,
                None => match crate::blobs::read_chunk(&state, f.chunks[i as usize]).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(file = %f.id, chunk = i, error = %e, "download cut short");
                        return Some((Err(std::io::Error::other(e.to_string())), (last + 1, None)));
                    }
                },
            };
            let base = i * CHUNK_SIZE;
            let from = start.saturating_sub(base) as usize;
            let to = ((end - base + 1) as usize).min(bytes.len());
            Some((Ok(bytes.slice(from..to)), (i + 1, None)))
        }
    })
}

/// `GET /v1/files/{id}/thumbnail`: a JPEG of at most 320 px a side.
pub async fn thumbnail(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Response, ApiError> {
    let f = readable(&state, &caller.userid, &id).await?;
    let Some((h, _)) = f.thumb else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("file {id:?} has no thumbnail (only images do)"),
        ));
    };
    let b = crate::blobs::read_chunk(&state, h).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        b,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |s: &str| HeaderValue::from_str(s).expect("header");
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some(&h("bytes=0-3")), 10), Ok(Some((0, 3))));
        assert_eq!(parse_range(Some(&h("bytes=5-")), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some(&h("bytes=-4")), 10), Ok(Some((6, 9))));
        assert_eq!(parse_range(Some(&h("bytes=8-100")), 10), Ok(Some((8, 9))));
        assert_eq!(parse_range(Some(&h("bytes=10-")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=4-2")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=x-2")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=0-1,4-5")), 10), Ok(None));
        assert_eq!(parse_range(Some(&h("items=0-1")), 10), Ok(None));
    }
}
