//! Uploads: in one request (`POST /v1/files`) or resumable, chunk by chunk
//! (`/v1/uploads`). A resumable upload's progress is kept by the node that
//! took it, in `<data_dir>/blobs/uploads/<id>.json`, so it survives a
//! dropped connection and a restart of that node; its chunks are already on
//! a majority. Finishing checks the whole file (size, SHA-256, type sniffed
//! from the bytes, image limits, the optional malware scanner) and only
//! then proposes the `RecordFile` command.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use serde::{Deserialize, Serialize};

use super::sniff;
use super::store::sha256;
use crate::domain::files::{BlobRecord, CHUNK_SIZE, FileKind, MAX_VOICE_MS};
use crate::domain::{Command, Done};
use crate::http::{ApiError, NodeState};
use http::StatusCode;

/// An upload not finished within this is dropped.
pub const SESSION_TTL_MS: u64 = 24 * 3600 * 1000;
/// Images larger than this are stored as plain files (no thumbnail).
pub const MAX_IMAGE_BYTES: u64 = 32 << 20;

/// What the uploader declares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Declared {
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    pub duration_ms: u32,
}

/// A resumable upload's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub owner: String,
    pub declared: Declared,
    /// Hex SHA-256 of each chunk received (majority-durable).
    pub chunks: Vec<Option<String>>,
    pub created_ms: u64,
}

impl Session {
    pub fn received(&self) -> Vec<usize> {
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i)
            .collect()
    }
}

/// The uploads in progress on this node.
#[derive(Debug)]
pub struct Sessions {
    dir: PathBuf,
    map: Mutex<HashMap<String, Session>>,
    saving: Mutex<()>,
    tmp_seq: std::sync::atomic::AtomicU64,
    /// The whole file's SHA-256 over the chunks that arrived in order so
    /// far (next index, digest): finishing an upload sent in order needs
    /// no second pass over its bytes. In memory only; a restart or
    /// chunks out of order fall back to reading the chunks back.
    running: Mutex<HashMap<String, Running>>,
}

/// A running digest over the chunks of an upload received in order.
struct Running {
    ctx: ring::digest::Context,
    /// The chunks it covers, in order.
    fed: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("chunks", &self.fed.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    pub fn open(dir: &Path) -> Sessions {
        let mut map = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let Ok(b) = std::fs::read(e.path()) else {
                    continue;
                };
                match serde_json::from_slice::<Session>(&b) {
                    Ok(s) => {
                        map.insert(s.id.clone(), s);
                    }
                    Err(err) => {
                        tracing::warn!(path = %e.path().display(), error = %err, "unreadable upload session dropped");
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        Sessions {
            dir: dir.to_path_buf(),
            map: Mutex::new(map),
            saving: Mutex::new(()),
            tmp_seq: std::sync::atomic::AtomicU64::new(0),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Write a session's progress (one writer at a time, each through a
    /// temporary file of its own, so concurrent chunk PUTs of one upload
    /// never collide and the newest progress is what stays on disk).
    fn save(&self, s: &Session) -> Result<(), ApiError> {
        let _one_at_a_time = lock(&self.saving);
        let current = lock(&self.map).get(&s.id).cloned();
        let s = current.as_ref().unwrap_or(s);
        let path = self.dir.join(format!("{}.json", s.id));
        let n = self
            .tmp_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!("{}.json.{n}.tmp", s.id));
        let bytes = serde_json::to_vec(s).map_err(|e| internal(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                storage_error(&path, e)
            })
    }

    pub fn create(&self, s: Session) -> Result<(), ApiError> {
        lock(&self.map).insert(s.id.clone(), s.clone());
        if let Err(e) = self.save(&s) {
            lock(&self.map).remove(&s.id);
            return Err(e);
        }
        Ok(())
    }

    /// The session, if `owner` owns it.
    pub fn get(&self, id: &str, owner: &str) -> Option<Session> {
        lock(&self.map)
            .get(id)
            .filter(|s| s.owner == owner)
            .cloned()
    }

    pub fn set_chunk(&self, id: &str, index: usize, hash: &[u8; 32]) -> Result<(), ApiError> {
        let snapshot = {
            let mut m = lock(&self.map);
            let Some(s) = m.get_mut(id) else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no upload {id:?} in progress"),
                ));
            };
            if let Some(slot) = s.chunks.get_mut(index) {
                *slot = Some(hex::encode(hash));
            }
            s.clone()
        };
        self.save(&snapshot)
    }

    /// Chunk `index` of upload `id` arrived (durable): extend the running
    /// digest if it is the next one in order.
    pub fn feed(&self, id: &str, index: usize, hash: &[u8; 32], bytes: &[u8]) {
        let mut r = lock(&self.running);
        let run = r.entry(id.to_string()).or_insert_with(|| Running {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            fed: Vec::new(),
        });
        if run.fed.len() == index {
            run.ctx.update(bytes);
            run.fed.push(*hash);
        }
    }

    /// The whole file's SHA-256, if exactly these chunks arrived in order.
    pub fn running_digest(&self, id: &str, chunks: &[[u8; 32]]) -> Option<[u8; 32]> {
        let r = lock(&self.running);
        let run = r.get(id)?;
        (run.fed == chunks).then(|| {
            let mut out = [0u8; 32];
            out.copy_from_slice(run.ctx.clone().finish().as_ref());
            out
        })
    }

    pub fn remove(&self, id: &str) {
        lock(&self.running).remove(id);
        lock(&self.map).remove(id);
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
    }

    /// Chunks that uploads in progress hold (kept from the collector).
    pub fn chunks_in_use(&self) -> HashSet<[u8; 32]> {
        let mut out = HashSet::new();
        for s in lock(&self.map).values() {
            for h in s.chunks.iter().flatten() {
                let mut b = [0u8; 32];
                if hex::decode_to_slice(h, &mut b).is_ok() {
                    out.insert(b);
                }
            }
        }
        out
    }

    /// Drop sessions older than [`SESSION_TTL_MS`]; their chunks go to
    /// the collector.
    pub fn expire(&self, now_ms: u64) -> usize {
        let old: Vec<String> = lock(&self.map)
            .values()
            .filter(|s| s.created_ms + SESSION_TTL_MS <= now_ms)
            .map(|s| s.id.clone())
            .collect();
        for id in &old {
            self.remove(id);
        }
        old.len()
    }

    pub fn count(&self) -> usize {
        lock(&self.map).len()
    }
}

pub fn internal(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg)
}

fn storage_error(path: &Path, e: std::io::Error) -> ApiError {
    if super::store::is_disk_full(&e) {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!("no space left on {}", path.display()),
        )
    } else {
        internal(format!("{}: {e}", path.display()))
    }
}

/// A new random id: `prefix` + 32 hex digits.
pub fn new_id(prefix: char) -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| internal("no randomness"))?;
    Ok(format!("{prefix}{}", hex::encode(b)))
}

/// Check what an uploader declares before any byte is stored: name, kind,
/// size against the policy and their quota (413 before reading a body).
pub fn check_declared(state: &NodeState, owner: &str, d: &Declared) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", m);
    let n = d.name.chars().count();
    if n == 0 || n > 255 || d.name.chars().any(char::is_control) {
        return Err(bad(
            "name must be 1-255 characters without control characters".into(),
        ));
    }
    if d.size == 0 {
        return Err(bad("the file is empty".into()));
    }
    if d.kind == FileKind::Voice && (d.duration_ms == 0 || d.duration_ms > MAX_VOICE_MS) {
        return Err(bad(format!(
            "a voice note needs duration_ms between 1 and {MAX_VOICE_MS}"
        )));
    }
    let view = state.view();
    let policy =
        crate::domain::apply::files::file_policy(&view).map_err(crate::http::store_error)?;
    if d.size > policy.max_file_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the file is {} bytes; files are at most {} bytes (policy max_file_bytes)",
                d.size, policy.max_file_bytes
            ),
        ));
    }
    let used = crate::domain::query::file_usage(&view, owner).map_err(crate::http::store_error)?;
    if used.saturating_add(d.size) > policy.user_quota_bytes {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "quota_exceeded",
            format!(
                "you hold {used} bytes of files; this one ({} bytes) would pass your quota of {} bytes",
                d.size, policy.user_quota_bytes
            ),
        ));
    }
    Ok(())
}

/// A chunk could not be made durable: 507 when disks are full, else 503.
pub fn replicate_error(e: super::ReplicateError) -> ApiError {
    match e {
        super::ReplicateError::DiskFull { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!("the upload was not stored: {e}"),
        ),
        super::ReplicateError::NoMajority { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the upload was not stored: {e}"),
        ),
    }
}

/// Read a recorded or uploaded chunk list back in full (images, scans).
async fn read_all(state: &Arc<NodeState>, chunks: &[[u8; 32]]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    for h in chunks {
        let b = super::read_chunk(state, *h)
            .await
            .map_err(|e| internal(e.to_string()))?;
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// Check a fully uploaded file and record it. `chunks` are
/// majority-durable. On a refusal the chunks are dropped everywhere.
pub async fn finish(
    state: &Arc<NodeState>,
    origin: &crate::audit::Origin,
    owner: &str,
    declared: &Declared,
    chunks: Vec<[u8; 32]>,
    whole_sha256: [u8; 32],
) -> Result<BlobRecord, ApiError> {
    let result = finish_inner(state, origin, owner, declared, &chunks, whole_sha256).await;
    if let Err(e) = &result {
        // Not after a cluster error: the record may still be applied (an
        // unknown outcome), and its chunks must then be there. Leftovers
        // go to the collector.
        let cluster_trouble = matches!(
            e.code,
            "unavailable"
                | "no_leader"
                | "outcome_unknown"
                | "peer_unreachable"
                | "no_quorum"
                | "storage"
        );
        if !cluster_trouble {
            super::drop_everywhere(state, chunks).await;
        }
    }
    result
}

async fn finish_inner(
    state: &Arc<NodeState>,
    origin: &crate::audit::Origin,
    owner: &str,
    d: &Declared,
    chunks: &[[u8; 32]],
    whole_sha256: [u8; 32],
) -> Result<BlobRecord, ApiError> {
    let bad = |code: &'static str, status: StatusCode, m: String| ApiError::new(status, code, m);
    let first = match chunks.first() {
        Some(h) => super::read_chunk(state, *h)
            .await
            .map_err(|e| internal(e.to_string()))?,
        None => {
            return Err(bad(
                "invalid_argument",
                StatusCode::BAD_REQUEST,
                "the file is empty".into(),
            ));
        }
    };
    let (mime, class) = sniff::sniff(&first[..first.len().min(8192)]);
    let mut rec = BlobRecord {
        id: new_id('f')?,
        name: d.name.clone(),
        kind: d.kind,
        mime: mime.clone(),
        class: class.to_string(),
        size: d.size,
        sha256: whole_sha256,
        chunks: chunks.to_vec(),
        uploader: owner.to_string(),
        created_ms: 0,
        width: 0,
        height: 0,
        thumb: None,
        duration_ms: 0,
    };
    match d.kind {
        FileKind::Image => {
            if class != "image" {
                return Err(bad(
                    "type_not_allowed",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("sent as an image, but the bytes are {mime} ({class})"),
                ));
            }
            if d.size > MAX_IMAGE_BYTES {
                return Err(bad(
                    "too_large",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "images are at most {} MiB; send larger pictures as kind=file",
                        MAX_IMAGE_BYTES >> 20
                    ),
                ));
            }
            let bytes = read_all(state, chunks).await?;
            let made = tokio::task::spawn_blocking(move || sniff::thumbnail(&bytes))
                .await
                .map_err(|e| internal(e.to_string()))?;
            let (w, h, thumb) = made.map_err(|e| match e {
                sniff::ImageError::TooLarge { .. } => bad(
                    "image_too_large",
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.to_string(),
                ),
                sniff::ImageError::Unreadable(_) => bad(
                    "invalid_image",
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.to_string(),
                ),
            })?;
            let len = thumb.len() as u32;
            let th = super::replicate(state, Bytes::from(thumb))
                .await
                .map_err(replicate_error)?;
            rec.width = w;
            rec.height = h;
            rec.thumb = Some((th, len));
        }
        FileKind::Voice => {
            // Browsers record voice as audio-only WebM (or Ogg), which the
            // container's magic alone calls video: as a voice note it is
            // audio.
            if matches!(mime.as_str(), "video/webm" | "audio/webm" | "video/ogg") {
                let audio = if mime.ends_with("ogg") {
                    "audio/ogg"
                } else {
                    "audio/webm"
                };
                rec.mime = audio.into();
                rec.class = "audio".into();
            } else if class != "audio" {
                return Err(bad(
                    "type_not_allowed",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("sent as a voice note, but the bytes are {mime} ({class})"),
                ));
            }
            rec.duration_ms = d.duration_ms;
        }
        FileKind::File => {}
    }
    if let Some(sock) = state.blobs.clamd.clone() {
        let verdict = super::repair::scan(state, &sock, chunks).await;
        match verdict {
            Ok(None) => {}
            Ok(Some(sig)) => {
                tracing::warn!(uploader = owner, name = %d.name, signature = %sig, "upload blocked by the malware scanner");
                return Err(bad(
                    "malware_detected",
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the malware scanner blocked this file ({sig})"),
                ));
            }
            Err(e) => {
                return Err(bad(
                    "scanner_unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the malware scanner at {} could not check the file: {e}",
                        sock.display()
                    ),
                ));
            }
        }
    }
    match crate::http::submit(
        state,
        origin,
        &Command::RecordFile { file: rec.clone() },
        None,
    )
    .await?
    {
        Done::Created { .. } => {}
        _ => return Err(internal("unexpected outcome")),
    }
    state.blobs.wake.notify_one();
    let view = state.view();
    crate::domain::query::file(&view, &rec.id)
        .map_err(crate::http::store_error)?
        .ok_or_else(|| internal("the recorded file is not visible yet"))
}

/// Verify a resumable upload's chunks add up to the declared size and
/// compute the whole file's SHA-256.
pub async fn whole_hash(
    state: &Arc<NodeState>,
    s: &Session,
) -> Result<(Vec<[u8; 32]>, [u8; 32]), ApiError> {
    let mut hashes = Vec::with_capacity(s.chunks.len());
    for (i, c) in s.chunks.iter().enumerate() {
        let Some(c) = c else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "incomplete",
                format!("chunk {i} has not been uploaded"),
            ));
        };
        let mut b = [0u8; 32];
        hex::decode_to_slice(c, &mut b).map_err(|_| internal("bad session record"))?;
        hashes.push(b);
    }
    if let Some(whole) = state.blobs.uploads.running_digest(&s.id, &hashes) {
        return Ok((hashes, whole));
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total = 0u64;
    for h in &hashes {
        let b = super::read_chunk(state, *h)
            .await
            .map_err(|e| internal(e.to_string()))?;
        total += b.len() as u64;
        ctx.update(&b);
    }
    if total != s.declared.size {
        return Err(internal("chunk sizes do not add up"));
    }
    let mut whole = [0u8; 32];
    whole.copy_from_slice(ctx.finish().as_ref());
    Ok((hashes, whole))
}

/// Expected length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, index: u64) -> Option<u64> {
    let start = index.checked_mul(CHUNK_SIZE)?;
    (start < size).then(|| (size - start).min(CHUNK_SIZE))
}

/// A stream stored on a majority: (chunk hashes, whole SHA-256, size).
pub type Chunked = (Vec<[u8; 32]>, [u8; 32], u64);

/// Cuts a byte stream into chunks and replicates each while the next is
/// read (at most [`Chunker::IN_FLIGHT`] transfers at a time, awaited in
/// order), keeping the whole stream's SHA-256. Every chunk is listed
/// before it is stored, so [`Chunker::abort`] drops a failed one too.
pub struct Chunker {
    state: std::sync::Arc<NodeState>,
    buf: Vec<u8>,
    chunks: Vec<[u8; 32]>,
    flying: std::collections::VecDeque<
        tokio::task::JoinHandle<Result<[u8; 32], super::ReplicateError>>,
    >,
    whole: ring::digest::Context,
    size: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("chunks", &self.chunks.len())
            .field("size", &self.size)
            .finish()
    }
}

impl Chunker {
    pub const IN_FLIGHT: usize = 2;

    pub fn new(state: &std::sync::Arc<NodeState>) -> Chunker {
        Chunker {
            state: state.clone(),
            buf: Vec::with_capacity(CHUNK_SIZE as usize),
            chunks: Vec::new(),
            flying: Default::default(),
            whole: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        }
    }

    /// Bytes taken so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    async fn land(&mut self) -> Result<(), ApiError> {
        match self.flying.pop_front() {
            None => Ok(()),
            Some(t) => match t.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(replicate_error(e)),
                Err(e) => Err(internal(format!("chunk transfer: {e}"))),
            },
        }
    }

    fn send(&mut self, full: Vec<u8>) {
        let h = sha256(&full);
        self.chunks.push(h);
        let st = self.state.clone();
        self.flying.push_back(tokio::spawn(async move {
            super::replicate_hashed(&st, h, Bytes::from(full)).await
        }));
    }

    pub async fn push(&mut self, data: &[u8]) -> Result<(), ApiError> {
        self.size += data.len() as u64;
        self.whole.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let take = (CHUNK_SIZE as usize - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == CHUNK_SIZE as usize {
                if self.flying.len() >= Self::IN_FLIGHT {
                    self.land().await?;
                }
                let full =
                    std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE as usize));
                self.send(full);
            }
        }
        Ok(())
    }

    /// Store the rest; (chunks, whole SHA-256, size) once all are on a
    /// majority.
    pub async fn finish(&mut self) -> Result<Chunked, ApiError> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.send(rest);
        }
        while !self.flying.is_empty() {
            self.land().await?;
        }
        let mut sha = [0u8; 32];
        sha.copy_from_slice(self.whole.clone().finish().as_ref());
        Ok((self.chunks.clone(), sha, self.size))
    }

    /// Give up: let transfers still running end, then drop every chunk
    /// of this stream on every node.
    pub async fn abort(mut self) {
        for t in std::mem::take(&mut self.flying) {
            let _ = t.await;
        }
        super::drop_everywhere(&self.state, std::mem::take(&mut self.chunks)).await;
    }
}
