//! `enclavectl bench files`: file upload and download throughput against a
//! running cluster, next to the disk's own sequential fsync'd write speed
//! measured in the same run (the physical floor every durable upload pays
//! at least once).
//!
//! 1. Floor: `dd if=/dev/zero of=<--data-dir>/... bs=4M oflag=direct
//!    conv=fsync` (`--floor-mib`, 256), timed, the file removed after.
//! 2. Uploads to the leader's api port: `--small-count` (50) files of
//!    `--small-mb` (1) MB with `POST /v1/files`, then `--large-count` (3)
//!    of `--large-mb` (100) MB through the resumable path (`POST
//!    /v1/uploads`, one `PUT` per chunk, `finish`), `--concurrency` (1)
//!    at a time: MB/s (1 MB = 10^6 bytes, as dd counts), p50/p99 per file
//!    and the ratio to the floor.
//! 3. Downloads of every uploaded file from a follower, one at a time,
//!    each compared byte for byte with what was sent.
//!
//! Every file is different in every 64 KiB block (a random buffer stamped
//! with the run, the file and the block), so content addressing cannot
//! deduplicate anything. A fresh member `bench-files-<run>` uploads them,
//! so runs do not share a quota; the files stay until the policy's
//! `unreferenced_hours` removes them (no message refers to them).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::blobs::{NodeAddr, members};
use super::files::FILES_POLICY_PATH;
use super::msgbench::{PASSWORD, percentile};
use super::{Output, print_json};
use crate::client::{Client, Session};

const MB: u64 = 1_000_000;
/// Every file differs from every other in each block of this size.
const STAMP_BLOCK: usize = 64 * 1024;
const STAMP_MAGIC: &[u8; 8] = b"ENCLBNCH";
/// 429 answers the whole run may wait out before giving up.
const RETRY_BUDGET: u64 = 2000;

#[derive(Debug, Args)]
pub struct FilesBench {
    /// Size of the small files in MB (10^6 bytes); 0 skips them.
    #[arg(long, default_value_t = 1)]
    pub small_mb: u64,
    /// How many small files.
    #[arg(long, default_value_t = 50)]
    pub small_count: usize,
    /// Size of the large files in MB, uploaded in chunks; 0 skips them.
    #[arg(long, default_value_t = 100)]
    pub large_mb: u64,
    /// How many large files.
    #[arg(long, default_value_t = 3)]
    pub large_count: usize,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Chunk PUTs in flight within one large upload (the web client sends
    /// one at a time).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// MiB the floor measurement writes with dd; 0 skips it.
    #[arg(long, default_value_t = 256)]
    pub floor_mib: u64,
    /// A directory on the same filesystem as the first node's data
    /// directory (e.g. its data dir): where dd writes its test file.
    /// Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Skip the downloads from a follower.
    #[arg(long)]
    pub no_download: bool,
}

#[derive(Debug, Serialize)]
struct Floor {
    dir: PathBuf,
    bytes: u64,
    seconds: f64,
    mb_per_sec: f64,
    /// `oflag=direct` was accepted (false: the filesystem refused O_DIRECT
    /// and the floor is `conv=fsync` alone).
    direct: bool,
    dd_summary: String,
}

#[derive(Debug, Serialize)]
struct Phase {
    direction: &'static str,
    node: String,
    node_role: &'static str,
    file_bytes: u64,
    files: usize,
    ok: usize,
    errors: usize,
    concurrency: usize,
    /// Chunk PUTs in flight within one upload.
    streams: usize,
    seconds: f64,
    mb_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// This phase's MB/s over the floor's.
    ratio_to_floor: Option<f64>,
    /// Downloads equal byte for byte to what was uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<usize>,
    rate_limited: u64,
    /// Chunked uploads: each chunk PUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk_put: Option<Breakdown>,
    /// Chunked uploads: each `finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    finish: Option<Breakdown>,
}

/// p50/p99 of one step, ms.
#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
struct Breakdown {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
}

impl Breakdown {
    /// From sorted latencies; `None` when there are none.
    fn of(sorted: &[f64]) -> Option<Breakdown> {
        (!sorted.is_empty()).then(|| Breakdown {
            count: sorted.len(),
            p50_ms: percentile(sorted, 0.5),
            p99_ms: percentile(sorted, 0.99),
        })
    }
}

/// Random bytes (xorshift64*, seeded), the body every file is cut from.
fn random_buffer(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes `[start, end)` of file `file` of run `run`: `base` with a stamp
/// (magic, run, file, block) at the start of every 64 KiB block.
fn piece(base: &[u8], run: u64, file: u64, start: usize, end: usize) -> Vec<u8> {
    let mut out = base[start..end].to_vec();
    // From the block `start` is in: its stamp may reach past `start`.
    let mut block = start / STAMP_BLOCK;
    while block * STAMP_BLOCK < end {
        let mut stamp = [0u8; 32];
        stamp[..8].copy_from_slice(STAMP_MAGIC);
        stamp[8..16].copy_from_slice(&run.to_le_bytes());
        stamp[16..24].copy_from_slice(&file.to_le_bytes());
        stamp[24..].copy_from_slice(&(block as u64).to_le_bytes());
        let at = block * STAMP_BLOCK;
        for (k, b) in stamp.iter().enumerate() {
            if at + k >= start && at + k < end {
                out[at + k - start] = *b;
            }
        }
        block += 1;
    }
    out
}

/// `(bytes, seconds)` from dd's summary line (`LC_ALL=C`):
/// `268435456 bytes (268 MB, 256 MiB) copied, 0.92 s, 291 MB/s`.
fn parse_dd(stderr: &str) -> Option<(u64, f64)> {
    let line = stderr.lines().rev().find(|l| l.contains(" copied"))?;
    let bytes = line.split_whitespace().next()?.parse().ok()?;
    let secs = line
        .split(", ")
        .find_map(|p| p.trim().strip_suffix(" s")?.trim().parse::<f64>().ok())?;
    Some((bytes, secs))
}

/// The physical floor: sequential 4 MiB direct writes, fsync'd at the end.
fn measure_floor(dir: &Path, mib: u64) -> anyhow::Result<Floor> {
    if !dir.is_dir() {
        bail!("--data-dir {}: not a directory", dir.display());
    }
    let file = dir.join(format!(".enclave-bench-floor-{}", std::process::id()));
    let count = mib.div_ceil(4);
    let run = |direct: bool| -> anyhow::Result<(std::process::Output, f64)> {
        let mut cmd = std::process::Command::new("dd");
        cmd.env("LC_ALL", "C").args([
            "if=/dev/zero".to_string(),
            format!("of={}", file.display()),
            "bs=4M".into(),
            format!("count={count}"),
            "conv=fsync".into(),
        ]);
        if direct {
            cmd.arg("oflag=direct");
        }
        let t = Instant::now();
        let out = cmd
            .output()
            .context("running dd (is coreutils installed?)")?;
        Ok((out, t.elapsed().as_secs_f64()))
    };
    let result = (|| {
        let (mut out, mut secs) = run(true)?;
        let mut direct = true;
        if !out.status.success() {
            eprintln!(
                "  dd with oflag=direct failed ({}); measuring with conv=fsync alone",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            (out, secs) = run(false)?;
            direct = false;
            if !out.status.success() {
                bail!("dd failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let (bytes, secs) = parse_dd(&stderr).unwrap_or((count * 4 * 1024 * 1024, secs));
        Ok(Floor {
            dir: dir.to_path_buf(),
            bytes,
            seconds: secs,
            mb_per_sec: bytes as f64 / MB as f64 / secs.max(1e-9),
            direct,
            dd_summary: stderr
                .lines()
                .rev()
                .find(|l| l.contains(" copied"))
                .unwrap_or_default()
                .to_string(),
        })
    })();
    let _ = std::fs::remove_file(&file);
    result
}

/// What one worker needs to talk to one api port as the bench member.
#[derive(Clone)]
struct Api {
    client: Client,
    auth: String,
    /// 429 answers waited out so far (shared by every worker).
    rate_limited: Arc<AtomicU64>,
}

impl Api {
    /// One request; a 429 is waited out (Retry-After, else 200 ms) from a
    /// budget shared by the whole run. `body` makes the body for each try.
    async fn send(
        &self,
        session: &mut Session,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &(dyn Fn() -> Option<Vec<u8>> + Sync),
    ) -> anyhow::Result<(StatusCode, Value, hyper::body::Bytes)> {
        loop {
            let mut headers = vec![("authorization", self.auth.as_str())];
            if let Some(ct) = content_type {
                headers.push(("content-type", ct));
            }
            let (st, head, bytes) = session
                .request_with_headers(method.clone(), path, body(), &headers)
                .await?;
            if st == StatusCode::TOO_MANY_REQUESTS {
                if self.rate_limited.fetch_add(1, Ordering::Relaxed) >= RETRY_BUDGET {
                    bail!(
                        "{path}: rate limited {RETRY_BUDGET} times; start the cluster with ENCLAVE_API__TOKEN_RATE_PER_SEC=0"
                    );
                }
                let wait = head
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or(Duration::from_millis(200), |s| {
                        Duration::from_secs(s.min(5))
                    });
                tokio::time::sleep(wait).await;
                continue;
            }
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok((st, v, bytes));
        }
    }
}

fn api_error(what: &str, st: StatusCode, v: &Value, raw: &[u8]) -> anyhow::Error {
    let msg = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned());
    let code = v["error"]["code"].as_str().unwrap_or_default();
    anyhow::anyhow!("{what}: HTTP {st} {code}: {msg}")
}

fn file_id(v: &Value) -> Option<String> {
    match &v["file"]["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The files of one upload phase.
#[derive(Debug, Clone, Copy)]
struct Shape {
    run: u64,
    /// Bytes per file.
    size: usize,
    /// Through the resumable path (else one `POST /v1/files`).
    chunked: bool,
    /// Chunk PUTs in flight within one file.
    streams: usize,
}

/// Where a chunked upload's time went (ms).
#[derive(Debug, Default)]
struct Timings {
    /// Each chunk PUT: received, hashed and durable on a majority.
    chunks: Vec<f64>,
    /// `finish`: the whole-file check and the Raft record.
    finish: Option<f64>,
}

/// Upload file `i` of the phase; returns its id.
async fn upload(
    api: &Api,
    session: &mut Session,
    base: &[u8],
    shape: Shape,
    i: u64,
) -> anyhow::Result<(String, Timings)> {
    let Shape {
        run,
        size,
        chunked,
        streams,
    } = shape;
    let name = format!("bench-{run}-{i}.bin");
    if !chunked {
        let path = format!("/v1/files?name={name}&kind=file");
        let (st, v, raw) = api
            .send(
                session,
                Method::POST,
                &path,
                Some("application/octet-stream"),
                &|| Some(piece(base, run, i, 0, size)),
            )
            .await?;
        if !st.is_success() {
            return Err(api_error("POST /v1/files", st, &v, &raw));
        }
        let id = file_id(&v).with_context(|| format!("POST /v1/files: no file.id in {v}"))?;
        return Ok((id, Timings::default()));
    }
    let start = json!({ "name": name, "size": size, "kind": "file" }).to_string();
    let (st, v, raw) = api
        .send(
            session,
            Method::POST,
            "/v1/uploads",
            Some("application/json"),
            &|| Some(start.clone().into_bytes()),
        )
        .await?;
    if !st.is_success() {
        return Err(api_error("POST /v1/uploads", st, &v, &raw));
    }
    let id = match &v["upload_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => bail!("POST /v1/uploads: no upload_id in {v}"),
    };
    let chunk = v["chunk_size"].as_u64().unwrap_or(0) as usize;
    if chunk == 0 {
        bail!("POST /v1/uploads: no chunk_size in {v}");
    }
    let chunks = size.div_ceil(chunk);
    if let Some(n) = v["chunks"].as_u64()
        && n as usize != chunks
    {
        bail!(
            "POST /v1/uploads: {n} chunks announced, {chunks} expected for {size} bytes of {chunk}"
        );
    }
    // `streams` chunk PUTs in flight, each on its own connection (the
    // web client sends one at a time: --streams 1).
    let next = AtomicUsize::new(0);
    let mut extra: Vec<Session> = (1..streams.min(chunks).max(1))
        .map(|_| api.client.session())
        .collect();
    let sessions: Vec<&mut Session> = std::iter::once(&mut *session)
        .chain(extra.iter_mut())
        .collect();
    let workers = sessions.into_iter().map(|conn| {
        let (next, id) = (&next, &id);
        async move {
            let mut lat = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= chunks {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                let (a, b) = (k * chunk, ((k + 1) * chunk).min(size));
                let path = format!("/v1/uploads/{id}/chunks/{k}");
                let (st, v, raw) = api
                    .send(
                        conn,
                        Method::PUT,
                        &path,
                        Some("application/octet-stream"),
                        &|| Some(piece(base, run, i, a, b)),
                    )
                    .await?;
                if !st.is_success() {
                    return Err(api_error(&format!("PUT {path}"), st, &v, &raw));
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    });
    let mut timings = Timings {
        chunks: futures_util::future::try_join_all(workers)
            .await?
            .into_iter()
            .flatten()
            .collect(),
        finish: None,
    };
    let t = Instant::now();
    let path = format!("/v1/uploads/{id}/finish");
    let (st, v, raw) = api
        .send(
            session,
            Method::POST,
            &path,
            Some("application/json"),
            &|| Some(b"{}".to_vec()),
        )
        .await?;
    if !st.is_success() {
        return Err(api_error(&format!("POST {path}"), st, &v, &raw));
    }
    timings.finish = Some(t.elapsed().as_secs_f64() * 1000.0);
    let id = file_id(&v).with_context(|| format!("POST {path}: no file.id in {v}"))?;
    Ok((id, timings))
}

struct Uploaded {
    /// `(file index, id)` of every acknowledged upload.
    ids: Vec<(u64, String)>,
    phase: Phase,
}

/// `count` files numbered from `first`, `concurrency` at a time.
async fn upload_phase(
    api: &Api,
    node: &NodeAddr,
    base: Arc<Vec<u8>>,
    shape: Shape,
    first: u64,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Uploaded> {
    let Shape { size, streams, .. } = shape;
    let next = Arc::new(AtomicUsize::new(0));
    let limited_before = api.rate_limited.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(count) {
        let api = api.clone();
        let base = base.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut session = api.client.session();
            let mut done = Vec::new();
            let mut errors = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let i = first + k as u64;
                let t = Instant::now();
                match upload(&api, &mut session, &base, shape, i).await {
                    Ok((id, timings)) => {
                        done.push((i, id, t.elapsed().as_secs_f64() * 1000.0, timings))
                    }
                    Err(e) => {
                        errors.push(format!("{e:#}"));
                        // Do not hammer a node that refuses.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (done, errors)
        }));
    }
    let mut ids = Vec::new();
    let mut lat = Vec::new();
    let mut chunk_lat = Vec::new();
    let mut finish_lat = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (d, e) = t.await.context("upload task")?;
        for (i, id, ms, timings) in d {
            ids.push((i, id));
            lat.push(ms);
            chunk_lat.extend(timings.chunks);
            finish_lat.extend(timings.finish);
        }
        errors.extend(e);
    }
    chunk_lat.sort_by(f64::total_cmp);
    finish_lat.sort_by(f64::total_cmp);
    let seconds = start.elapsed().as_secs_f64();
    for e in errors.iter().take(3) {
        eprintln!("  upload failed: {e}");
    }
    if ids.is_empty() && !errors.is_empty() {
        bail!("every upload failed; the first: {}", errors[0]);
    }
    lat.sort_by(f64::total_cmp);
    ids.sort();
    let bytes = (ids.len() * size) as f64;
    Ok(Uploaded {
        phase: Phase {
            direction: "upload",
            node: node.name.clone(),
            node_role: if node.leader { "leader" } else { "follower" },
            file_bytes: size as u64,
            files: count,
            ok: ids.len(),
            errors: errors.len(),
            concurrency: concurrency.min(count),
            streams,
            seconds,
            mb_per_sec: bytes / MB as f64 / seconds.max(1e-9),
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().copied().unwrap_or(0.0),
            ratio_to_floor: None,
            verified: None,
            rate_limited: api.rate_limited.load(Ordering::Relaxed) - limited_before,
            chunk_put: Breakdown::of(&chunk_lat),
            finish: Breakdown::of(&finish_lat),
        },
        ids,
    })
}

/// Download every file in `ids` from `node`, one at a time, and compare
/// each with what was uploaded. A 404 right after the upload is the
/// follower not having applied the record yet: retried for up to 10 s.
async fn download_phase(
    api: &Api,
    node: &NodeAddr,
    base: &[u8],
    run: u64,
    ids: &[(u64, String)],
    size: usize,
) -> anyhow::Result<Phase> {
    let mut session = api.client.session();
    let limited_before = api.rate_limited.load(Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut verified = 0;
    let mut errors = 0;
    let mut busy = 0.0;
    for (i, id) in ids {
        let path = format!("/v1/files/{id}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let (got, ms) = loop {
            let t = Instant::now();
            let (st, v, raw) = api
                .send(&mut session, Method::GET, &path, None, &|| None)
                .await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if st == StatusCode::NOT_FOUND && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if !st.is_success() {
                break (Err(api_error(&format!("GET {path}"), st, &v, &raw)), ms);
            }
            break (Ok(raw), ms);
        };
        match got {
            Ok(raw) => {
                lat.push(ms);
                busy += ms / 1000.0;
                if raw.len() == size && raw[..] == piece(base, run, *i, 0, size)[..] {
                    verified += 1;
                } else {
                    eprintln!(
                        "  {path}: {} bytes that differ from the {size} uploaded",
                        raw.len()
                    );
                }
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("  download failed: {e:#}");
                }
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(Phase {
        direction: "download",
        node: node.name.clone(),
        node_role: if node.leader { "leader" } else { "follower" },
        file_bytes: size as u64,
        files: ids.len(),
        ok: lat.len(),
        errors,
        concurrency: 1,
        streams: 1,
        seconds: busy,
        mb_per_sec: (lat.len() * size) as f64 / MB as f64 / f64::max(busy, 1e-9),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        ratio_to_floor: None,
        verified: Some(verified),
        rate_limited: api.rate_limited.load(Ordering::Relaxed) - limited_before,
        chunk_put: None,
        finish: None,
    })
}

/// `1 MB`, `0.25 MB`, `100 MB`.
fn size_label(bytes: u64) -> String {
    if bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} MB", bytes as f64 / MB as f64)
    }
}

fn phase_line(p: &Phase) -> String {
    let (verb, prep) = if p.direction == "upload" {
        ("upload  ", "to")
    } else {
        ("download", "from")
    };
    let mut s = format!(
        "{verb}  {} x {} {prep} {} ({}), {} at a time{}: {:.1} MB/s  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        size_label(p.file_bytes),
        p.files,
        p.node,
        p.node_role,
        p.concurrency,
        if p.streams > 1 {
            format!(" ({} chunks in flight)", p.streams)
        } else {
            String::new()
        },
        p.mb_per_sec,
        p.p50_ms,
        p.p99_ms,
        p.max_ms
    );
    if let Some(r) = p.ratio_to_floor {
        s.push_str(&format!("  {:.0}% of floor", r * 100.0));
    }
    if let Some(v) = p.verified {
        s.push_str(&format!("  verified {v}/{}", p.ok));
    }
    if let (Some(c), Some(f)) = (p.chunk_put, p.finish) {
        s.push_str(&format!(
            "\n          each chunk PUT p50 {:.1} ms p99 {:.1} ms ({} chunks), finish p50 {:.1} ms p99 {:.1} ms",
            c.p50_ms, c.p99_ms, c.count, f.p50_ms, f.p99_ms
        ));
    }
    if p.errors > 0 {
        s.push_str(&format!("  errors {}", p.errors));
    }
    if p.rate_limited > 0 {
        s.push_str(&format!("  429s waited out {}", p.rate_limited));
    }
    s
}

fn floor_line(f: &Floor) -> String {
    format!(
        "floor     dd bs=4M {}conv=fsync, {} MiB in {}: {:.1} MB/s ({:.2} s)",
        if f.direct { "oflag=direct " } else { "" },
        f.bytes / (1024 * 1024),
        f.dir.display(),
        f.mb_per_sec,
        f.seconds
    )
}

/// Refuse early, with the command that fixes it, when the file policy
/// would refuse the bench's uploads. A policy the caller may not read is
/// no reason to stop.
async fn check_policy(admin: &Client, largest: u64, total: u64) -> anyhow::Result<()> {
    let p: Value = match admin.get_json(FILES_POLICY_PATH).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  (could not read the file policy, going on: {e})");
            return Ok(());
        }
    };
    if let Some(max) = p["max_file_bytes"].as_u64()
        && max < largest
    {
        bail!(
            "the file policy allows files up to {max} bytes, the bench uploads {largest}: lower --large-mb/--small-mb or, as secadmin, `enclavectl files policy set --max-file-mib {}`",
            largest.div_ceil(1024 * 1024)
        );
    }
    if let Some(q) = p["user_quota_bytes"].as_u64()
        && q < total
    {
        bail!(
            "the per-member quota is {q} bytes, the bench uploads {total}: lower the counts or, as secadmin, `enclavectl files policy set --quota-gib {}`",
            total.div_ceil(1024 * 1024 * 1024)
        );
    }
    if let Some(types) = p["allowed_types"].as_array()
        && !types.iter().any(|t| t == "other")
    {
        bail!(
            "the file policy does not allow type \"other\" (the bench uploads random bytes): as secadmin, add it with `enclavectl files policy set --allow ...,other`"
        );
    }
    Ok(())
}

/// Create the bench member for this run and log it in on `api`.
async fn bench_member(admin: &Client, api: &Client, userid: &str) -> anyhow::Result<String> {
    let depts: Value = admin.get_json("/v1/directory/departments").await?;
    let has_root = depts["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["id"] == 1);
    if !has_root {
        let (s, b) = admin
            .request(
                Method::PUT,
                "/v1/directory/departments/1",
                Some(json!({ "name": "Enterprise" }).to_string().into_bytes()),
            )
            .await?;
        if !s.is_success() {
            bail!(
                "creating the root department: {s} {}",
                String::from_utf8_lossy(&b)
            );
        }
    }
    let body = json!({ "userid": userid, "name": "Files bench", "departments": [1], "password": PASSWORD });
    let (s, b) = admin
        .request(
            Method::POST,
            "/v1/directory/members",
            Some(body.to_string().into_bytes()),
        )
        .await?;
    if !s.is_success() && s != StatusCode::CONFLICT {
        bail!("creating {userid}: {s} {}", String::from_utf8_lossy(&b));
    }
    let v: Value = api
        .post_json(
            "/v1/login",
            &json!({ "userid": userid, "password": PASSWORD }),
        )
        .await
        .with_context(|| format!("logging in {userid}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access token in the login answer")
}

fn validate(args: &FilesBench) -> anyhow::Result<()> {
    if args.small_mb > 1024 {
        bail!("--small-mb must be at most 1024");
    }
    if args.large_mb > 10_240 {
        bail!("--large-mb must be at most 10240");
    }
    if args.small_count > 10_000 || args.large_count > 100 {
        bail!("--small-count must be at most 10000 and --large-count at most 100");
    }
    if args.streams == 0 || args.streams > 16 {
        bail!("--streams must be between 1 and 16");
    }
    if args.concurrency == 0 || args.concurrency > 64 {
        bail!("--concurrency must be between 1 and 64");
    }
    if args.floor_mib > 16_384 {
        bail!("--floor-mib must be at most 16384");
    }
    if (args.small_mb == 0 || args.small_count == 0)
        && (args.large_mb == 0 || args.large_count == 0)
    {
        bail!("nothing to upload: give --small-mb/--small-count or --large-mb/--large-count");
    }
    Ok(())
}

pub async fn run(
    args: FilesBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    validate(&args)?;
    let ca = cert_dir.join("ca.pem");
    let nodes = members(admin).await?;
    let leader = nodes
        .iter()
        .find(|n| n.leader && !n.api.is_empty())
        .cloned()
        .context("no leader with an api address in the cluster status (is the cluster initialized and led?)")?;
    let follower = nodes
        .iter()
        .find(|n| !n.leader && !n.api.is_empty())
        .cloned();
    let api_client = |n: &NodeAddr| -> anyhow::Result<Client> {
        Ok(Client::anonymous(&format!("https://{}", n.api), &ca)?
            .with_timeout(Duration::from_secs(600)))
    };

    // 1. The floor, while the disk is quiet.
    let floor = if args.floor_mib > 0 {
        let dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?,
        };
        eprintln!(
            "floor: dd {} MiB into {} ...",
            args.floor_mib,
            dir.display()
        );
        let mib = args.floor_mib;
        Some(tokio::task::spawn_blocking(move || measure_floor(&dir, mib)).await??)
    } else {
        None
    };
    if let (Some(f), Output::Text) = (&floor, output) {
        println!("{}", floor_line(f));
    }

    // 2. The member and the data.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let small = (args.small_mb * MB) as usize;
    let large = (args.large_mb * MB) as usize;
    let (small_n, large_n) = (
        if small > 0 { args.small_count } else { 0 },
        if large > 0 { args.large_count } else { 0 },
    );
    let total = (small * small_n + large * large_n) as u64;
    check_policy(admin, if large_n > 0 { large } else { small } as u64, total).await?;
    let userid = format!("bench-files-{run}");
    let up_client = api_client(&leader)?;
    eprintln!(
        "creating member {userid} and logging in on {} ...",
        leader.name
    );
    let token = bench_member(admin, &up_client, &userid).await?;
    let rate_limited = Arc::new(AtomicU64::new(0));
    let up = Api {
        client: up_client,
        auth: format!("Bearer {token}"),
        rate_limited: rate_limited.clone(),
    };
    let base = Arc::new(random_buffer(small.max(large), run));

    // 3. Uploads to the leader.
    let mut phases = Vec::new();
    let mut uploaded = Vec::new();
    for (n, size, chunked, first) in [
        (small_n, small, false, 0u64),
        (large_n, large, true, 1_000_000),
    ] {
        if n == 0 {
            continue;
        }
        eprintln!(
            "uploading {n} x {} to {} ({}) ...",
            size_label(size as u64),
            leader.name,
            if chunked {
                "resumable, chunk by chunk"
            } else {
                "POST /v1/files"
            }
        );
        let shape = Shape {
            run,
            size,
            chunked,
            streams: if chunked { args.streams } else { 1 },
        };
        let mut u = upload_phase(
            &up,
            &leader,
            base.clone(),
            shape,
            first,
            n,
            args.concurrency,
        )
        .await?;
        u.phase.ratio_to_floor = floor.as_ref().map(|f| u.phase.mb_per_sec / f.mb_per_sec);
        if output == Output::Text {
            println!("{}", phase_line(&u.phase));
        }
        phases.push(u.phase);
        uploaded.push((u.ids, size));
    }

    // 4. Downloads from a follower.
    if !args.no_download {
        let from = follower.clone().unwrap_or_else(|| {
            eprintln!("  (no follower with an api address: downloading from the leader)");
            leader.clone()
        });
        let down = Api {
            client: api_client(&from)?,
            auth: up.auth.clone(),
            rate_limited,
        };
        for (ids, size) in &uploaded {
            if ids.is_empty() {
                continue;
            }
            eprintln!(
                "downloading {} x {} from {} ...",
                ids.len(),
                size_label(*size as u64),
                from.name
            );
            let p = download_phase(&down, &from, &base, run, ids, *size).await?;
            if output == Output::Text {
                println!("{}", phase_line(&p));
            }
            phases.push(p);
        }
    }

    let target = phases
        .iter()
        .filter(|p| p.direction == "upload")
        .max_by_key(|p| p.file_bytes)
        .and_then(|p| p.ratio_to_floor.map(|r| (p.file_bytes, r)));
    if output == Output::Text {
        if let Some((size, r)) = target {
            println!(
                "target    {} uploads with 3-way replication at >= 40% of the floor: {:.0}% ({})",
                size_label(size),
                r * 100.0,
                if r >= 0.4 { "met" } else { "not met" }
            );
        }
    } else {
        print_json(&json!({
            "member": userid,
            "nodes": nodes.iter().map(|n| json!({"name": n.name, "api": n.api, "leader": n.leader})).collect::<Vec<_>>(),
            "floor": floor,
            "phases": phases,
            "target": target.map(|(size, r)| json!({"file_bytes": size, "ratio_to_floor": r, "met": r >= 0.4})),
        }))?;
    }
    let bad: usize = phases
        .iter()
        .map(|p| p.errors + (p.ok - p.verified.unwrap_or(p.ok)))
        .sum();
    if bad > 0 {
        bail!("{bad} uploads or downloads failed or came back different (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_into_the_whole_file() {
        let base = random_buffer(3 * STAMP_BLOCK + 123, 7);
        let whole = piece(&base, 1, 2, 0, base.len());
        assert_eq!(whole.len(), base.len());
        // Any cut gives the same bytes as the whole file.
        for cut in [
            1,
            31,
            STAMP_BLOCK - 5,
            STAMP_BLOCK,
            STAMP_BLOCK + 17,
            2 * STAMP_BLOCK + 9,
        ] {
            let mut joined = piece(&base, 1, 2, 0, cut);
            joined.extend(piece(&base, 1, 2, cut, base.len()));
            assert!(joined == whole, "cut at {cut}");
        }
        assert_eq!(&whole[..8], STAMP_MAGIC);
        assert_eq!(&whole[STAMP_BLOCK..STAMP_BLOCK + 8], STAMP_MAGIC);
    }

    #[test]
    fn every_block_of_every_file_differs() {
        let base = random_buffer(4 * STAMP_BLOCK, 9);
        let a = piece(&base, 5, 0, 0, base.len());
        let b = piece(&base, 5, 1, 0, base.len());
        let c = piece(&base, 6, 0, 0, base.len());
        for k in 0..4 {
            let r = k * STAMP_BLOCK..(k + 1) * STAMP_BLOCK;
            assert_ne!(a[r.clone()], b[r.clone()]);
            assert_ne!(a[r.clone()], c[r.clone()]);
        }
        // Deterministic: the downloads are checked against a recomputation.
        assert_eq!(a, piece(&base, 5, 0, 0, base.len()));
        assert_ne!(random_buffer(64, 1), random_buffer(64, 2));
        assert_eq!(random_buffer(13, 3).len(), 13);
    }

    #[test]
    fn dd_summary_is_parsed() {
        let gnu = "64+0 records in\n64+0 records out\n268435456 bytes (268 MB, 256 MiB) copied, 0.923451 s, 291 MB/s\n";
        assert_eq!(parse_dd(gnu), Some((268_435_456, 0.923451)));
        let old = "268435456 bytes (268 MB) copied, 1.5 s, 179 MB/s";
        assert_eq!(parse_dd(old), Some((268_435_456, 1.5)));
        assert_eq!(parse_dd("dd: failed to open 'x': Permission denied"), None);
    }

    #[test]
    fn floor_is_measured_and_its_file_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = measure_floor(dir.path(), 4).expect("dd runs");
        assert_eq!(f.bytes, 4 * 1024 * 1024);
        assert!(f.mb_per_sec > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        assert!(measure_floor(&dir.path().join("absent"), 4).is_err());
    }

    #[test]
    fn lines_say_size_node_rate_and_ratio() {
        let p = Phase {
            direction: "upload",
            node: "node-1".into(),
            node_role: "leader",
            file_bytes: 100 * MB,
            files: 3,
            ok: 3,
            errors: 0,
            concurrency: 1,
            streams: 1,
            seconds: 2.0,
            mb_per_sec: 150.0,
            p50_ms: 640.0,
            p99_ms: 700.04,
            max_ms: 700.04,
            ratio_to_floor: Some(0.4167),
            verified: None,
            rate_limited: 0,
            chunk_put: None,
            finish: None,
        };
        assert_eq!(
            phase_line(&p),
            "upload    100 MB x 3 to node-1 (leader), 1 at a time: 150.0 MB/s  p50 640.0 ms  p99 700.0 ms  max 700.0 ms  42% of floor"
        );
        let chunked = Phase {
            chunk_put: Breakdown::of(&[40.0, 50.0, 60.0]),
            finish: Breakdown::of(&[12.0]),
            streams: 4,
            ratio_to_floor: None,
            ..p
        };
        assert_eq!(
            phase_line(&chunked),
            "upload    100 MB x 3 to node-1 (leader), 1 at a time (4 chunks in flight): 150.0 MB/s  p50 640.0 ms  p99 700.0 ms  max 700.0 ms\n          each chunk PUT p50 50.0 ms p99 60.0 ms (3 chunks), finish p50 12.0 ms p99 12.0 ms"
        );
        assert_eq!(Breakdown::of(&[]), None);
        assert_eq!(size_label(MB / 4), "0.25 MB");
        let v = validate(&FilesBench {
            small_mb: 0,
            small_count: 50,
            large_mb: 100,
            large_count: 0,
            concurrency: 1,
            streams: 1,
            floor_mib: 256,
            data_dir: None,
            no_download: false,
        });
        assert!(v.is_err());
    }
}
