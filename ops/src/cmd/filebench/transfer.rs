//! Upload and download phases against one api port, and their report lines.

use super::*;

#[derive(Debug, Serialize)]
pub(super) struct Phase {
    pub(super) direction: &'static str,
    pub(super) node: String,
    pub(super) node_role: &'static str,
    pub(super) file_bytes: u64,
    pub(super) files: usize,
    pub(super) ok: usize,
    pub(super) errors: usize,
    pub(super) concurrency: usize,
    /// Chunk PUTs in flight within one upload.
    pub(super) streams: usize,
    pub(super) seconds: f64,
    pub(super) mb_per_sec: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    /// This phase's MB/s over the floor's.
    pub(super) ratio_to_floor: Option<f64>,
    /// Downloads equal byte for byte to what was uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) verified: Option<usize>,
    pub(super) rate_limited: u64,
    /// Chunked uploads: each chunk PUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) chunk_put: Option<Breakdown>,
    /// Chunked uploads: each `finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) finish: Option<Breakdown>,
}

/// p50/p99 of one step, ms.
#[derive(Debug, Serialize, Clone, Copy, PartialEq)]
pub(super) struct Breakdown {
    pub(super) count: usize,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

impl Breakdown {
    /// From sorted latencies; `None` when there are none.
    pub(super) fn of(sorted: &[f64]) -> Option<Breakdown> {
        (!sorted.is_empty()).then(|| Breakdown {
            count: sorted.len(),
            p50_ms: percentile(sorted, 0.5),
            p99_ms: percentile(sorted, 0.99),
        })
    }
}

/// What one worker needs to talk to one api port as the bench member.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) client: Client,
    pub(super) auth: String,
    /// 429 answers waited out so far (shared by every worker).
    pub(super) rate_limited: Arc<AtomicU64>,
}

impl Api {
    /// One request; a 429 is waited out (Retry-After, else 200 ms) from a
    /// budget shared by the whole run. `body` makes the body for each try.
    pub(super) async fn send(
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

pub(super) fn api_error(what: &str, st: StatusCode, v: &Value, raw: &[u8]) -> anyhow::Error {
    let msg = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned());
    let code = v["error"]["code"].as_str().unwrap_or_default();
    anyhow::anyhow!("{what}: HTTP {st} {code}: {msg}")
}

pub(super) fn file_id(v: &Value) -> Option<String> {
    match &v["file"]["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The files of one upload phase.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) run: u64,
    /// Bytes per file.
    pub(super) size: usize,
    /// Through the resumable path (else one `POST /v1/files`).
    pub(super) chunked: bool,
    /// Chunk PUTs in flight within one file.
    pub(super) streams: usize,
}

/// Where a chunked upload's time went (ms).
#[derive(Debug, Default)]
pub(super) struct Timings {
    /// Each chunk PUT: received, hashed and durable on a majority.
    pub(super) chunks: Vec<f64>,
    /// `finish`: the whole-file check and the Raft record.
    pub(super) finish: Option<f64>,
}

/// Upload file `i` of the phase; returns its id.
pub(super) async fn upload(
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

pub(super) struct Uploaded {
    /// `(file index, id)` of every acknowledged upload.
    pub(super) ids: Vec<(u64, String)>,
    pub(super) phase: Phase,
}

/// `count` files numbered from `first`, `concurrency` at a time.
pub(super) async fn upload_phase(
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
pub(super) async fn download_phase(
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
pub(super) fn size_label(bytes: u64) -> String {
    if bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{} MB", bytes as f64 / MB as f64)
    }
}

pub(super) fn phase_line(p: &Phase) -> String {
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
