//! Keeping every node's copy whole: the repair loop (fetch chunks that
//! records need and this node lacks), the collector (delete chunks no
//! record uses), the scrub (`enclavectl blobs verify`: re-hash every chunk)
//! and the optional malware scanner.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::domain::files::BlobRecord;
use crate::domain::keys;
use crate::domain::store::{Store, StoreExt};
use crate::http::NodeState;

/// Chunk files younger than this are never collected: a resumable upload
/// may record them up to a day after they were sent (its session lives
/// on the node that took it; the other nodes only hold the chunks).
const GC_MIN_AGE_S: u64 = 25 * 3600;

/// Progress of the last scrub on this node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyStatus {
    pub running: bool,
    pub total: u64,
    pub checked: u64,
    pub ok: u64,
    pub repaired: u64,
    pub unrepairable: u64,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub errors: Vec<String>,
}

/// Every chunk the recorded files need, with whether this node has it.
fn needed(state: &NodeState) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let walked = state
        .view()
        .visit_as::<BlobRecord>(keys::FILES, None, |_, f| {
            out.extend(f.all_chunks().copied());
            Ok(true)
        });
    if let Err(e) = walked {
        tracing::warn!(error = %e, "reading the file records for repair");
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The chunks of files recorded after position `after` of `fileq/`, and
/// the last position seen.
fn needed_since(state: &NodeState, after: u64) -> (Vec<[u8; 32]>, u64) {
    let view = state.view();
    let mut out = Vec::new();
    let mut last = after;
    let walked = view.visit_as::<String>(
        keys::FILES_IN_ORDER,
        Some(&keys::file_in_order(after)),
        |k, id| {
            last = keys::tail_u64(k);
            if let Some(f) = view.get_as::<BlobRecord>(&keys::file(&id))? {
                out.extend(f.all_chunks().copied());
            }
            Ok(true)
        },
    );
    if let Err(e) = walked {
        tracing::warn!(error = %e, "reading the new file records for repair");
    }
    (out, last)
}

/// Where the repair loop is in `fileq/`.
fn file_counter(state: &NodeState) -> u64 {
    state
        .view()
        .get_as::<u64>(keys::FILE_CTR)
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// One repair pass over every recorded file: fetch every chunk this node
/// lacks. Returns (missing before, repaired).
pub async fn repair_pass(state: &Arc<NodeState>) -> (u64, u64) {
    let s = state.clone();
    let missing: Vec<[u8; 32]> = tokio::task::spawn_blocking(move || {
        needed(&s)
            .into_iter()
            .filter(|h| !s.blobs.store.has(h))
            .collect()
    })
    .await
    .unwrap_or_default();
    fetch_missing(state, missing).await
}

/// A pass over the files recorded since `cursor` only (the common case:
/// a file was just recorded); moves the cursor.
async fn repair_new(state: &Arc<NodeState>, cursor: &mut u64) -> (u64, u64) {
    let s = state.clone();
    let from = *cursor;
    let (missing, last) = tokio::task::spawn_blocking(move || {
        let (chunks, last) = needed_since(&s, from);
        let missing: Vec<[u8; 32]> = chunks
            .into_iter()
            .filter(|h| !s.blobs.store.has(h))
            .collect();
        (missing, last)
    })
    .await
    .unwrap_or_default();
    *cursor = last.max(from);
    fetch_missing(state, missing).await
}

async fn fetch_missing(state: &Arc<NodeState>, mut missing: Vec<[u8; 32]>) -> (u64, u64) {
    missing.sort_unstable();
    missing.dedup();
    let before = missing.len() as u64;
    let mut repaired = 0u64;
    let mut unrepaired: Vec<[u8; 32]> = Vec::new();
    for h in missing {
        match super::fetch_from_peers(state, h).await {
            Ok(bytes) => {
                let s = state.clone();
                let stored =
                    tokio::task::spawn_blocking(move || s.blobs.store.put_hashed(&h, &bytes)).await;
                if matches!(stored, Ok(Ok(()))) {
                    repaired += 1;
                    state.blobs.repaired_total.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "chunk not repaired yet");
                unrepaired.push(h);
            }
        }
    }
    state
        .blobs
        .missing
        .store(before - repaired, Ordering::Relaxed);
    if before > repaired {
        let mut names = lock_missing(state);
        names.clear();
        names.extend(unrepaired.iter().take(100).map(hex::encode));
    }
    if repaired > 0 {
        tracing::info!(
            repaired,
            still_missing = before - repaired,
            "blob repair pass"
        );
    }
    (before, repaired)
}

fn lock_missing(state: &NodeState) -> std::sync::MutexGuard<'_, Vec<String>> {
    state
        .blobs
        .missing_names
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Delete chunk files no record and no upload in progress uses (older
/// than a day), and expired upload sessions.
pub fn gc(state: &NodeState) -> usize {
    state.blobs.uploads.expire(crate::http::now_ms());
    let Ok(files) = state.blobs.store.list() else {
        return 0;
    };
    let view = state.view();
    let in_uploads: HashSet<[u8; 32]> = state.blobs.uploads.chunks_in_use();
    let mut removed = 0;
    for (h, _, age) in files {
        if age < GC_MIN_AGE_S || in_uploads.contains(&h) {
            continue;
        }
        let used = view
            .scan(&keys::chunk_users(&h), None, 1)
            .map(|v| !v.is_empty())
            .unwrap_or(true);
        if !used {
            state.blobs.store.remove(&h);
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "unused chunks collected");
    }
    removed
}

/// The node's background blob work: repair on start, after every recorded
/// file (woken) and every 30 s; collect every 10 minutes.
pub async fn work_loop(state: Arc<NodeState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut last_gc = std::time::Instant::now();
    // Let the node catch up with the log before the first pass.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        _ = shutdown.changed() => return,
    }
    // A full pass at start, hourly, and while chunks are still missing;
    // otherwise only the files recorded since the last pass.
    let mut cursor = 0u64;
    let mut last_full: Option<std::time::Instant> = None;
    loop {
        if state.cluster.is_initialized() {
            let full = last_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
                || state.blobs.missing.load(Ordering::Relaxed) > 0;
            if full {
                let head = file_counter(&state);
                repair_pass(&state).await;
                cursor = head;
                last_full = Some(std::time::Instant::now());
            } else {
                repair_new(&state, &mut cursor).await;
            }
            if last_gc.elapsed() >= Duration::from_secs(600) {
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || gc(&s)).await;
                last_gc = std::time::Instant::now();
            }
        }
        tokio::select! {
            _ = state.blobs.wake.notified() => {
                // Give the record time to be applied here.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Start a scrub unless one runs: re-hash every chunk file, move damaged
/// ones aside, then repair what the records need.
pub fn start_verify(state: &Arc<NodeState>) -> bool {
    {
        let mut v = state.blobs.verify.lock().unwrap_or_else(|p| p.into_inner());
        if v.running {
            return false;
        }
        *v = VerifyStatus {
            running: true,
            started_ms: crate::http::now_ms(),
            ..Default::default()
        };
    }
    let state = state.clone();
    tokio::spawn(async move {
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || scrub_files(&s)).await;
        let (_, repaired) = repair_pass(&state).await;
        let left = state.blobs.missing.load(Ordering::Relaxed);
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || gc(&s)).await;
        let names: Vec<String> = if left > 0 {
            lock_missing(&state).clone()
        } else {
            Vec::new()
        };
        let mut v = state.blobs.verify.lock().unwrap_or_else(|p| p.into_inner());
        v.repaired = repaired;
        v.unrepairable = left;
        for n in names {
            if v.errors.len() < 100 {
                v.errors.push(format!(
                    "chunk {n} is missing here and no peer has a sound copy"
                ));
            }
        }
        v.running = false;
        v.finished_ms = Some(crate::http::now_ms());
        tracing::info!(
            checked = v.checked,
            ok = v.ok,
            repaired,
            unrepairable = left,
            "blob scrub finished"
        );
    });
    true
}

fn scrub_files(state: &NodeState) {
    let files = match state.blobs.store.list() {
        Ok(f) => f,
        Err(e) => {
            let mut v = state.blobs.verify.lock().unwrap_or_else(|p| p.into_inner());
            v.errors.push(e.to_string());
            return;
        }
    };
    // The listing is the truth: counters drift when files are removed by
    // hand.
    state.blobs.store.set_usage(
        files.iter().map(|(_, len, _)| *len).sum(),
        files.len() as u64,
    );
    let needed: HashSet<[u8; 32]> = needed(state).into_iter().collect();
    {
        let mut v = state.blobs.verify.lock().unwrap_or_else(|p| p.into_inner());
        v.total =
            files.len() as u64 + needed.iter().filter(|h| !state.blobs.store.has(h)).count() as u64;
    }
    for (h, _, _) in files {
        let r = state.blobs.store.get(&h);
        let mut v = state.blobs.verify.lock().unwrap_or_else(|p| p.into_inner());
        v.checked += 1;
        match r {
            Ok(Some(_)) => v.ok += 1,
            Ok(None) => {}
            Err(super::store::ChunkError::Damaged { hash }) => {
                state.blobs.damaged_total.fetch_add(1, Ordering::Relaxed);
                if v.errors.len() < 100 {
                    v.errors.push(format!("chunk {hash} was damaged"));
                }
            }
            Err(e) => {
                if v.errors.len() < 100 {
                    v.errors.push(e.to_string());
                }
            }
        }
    }
}

/// Ask clamd (INSTREAM over its Unix socket) about the file's bytes:
/// `Ok(None)` clean, `Ok(Some(signature))` infected.
pub async fn scan(
    state: &Arc<NodeState>,
    socket: &Path,
    chunks: &[[u8; 32]],
) -> Result<Option<String>, String> {
    let fut = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"zINSTREAM\0")
            .await
            .map_err(|e| e.to_string())?;
        for h in chunks {
            let b = super::read_chunk(state, *h)
                .await
                .map_err(|e| e.to_string())?;
            for piece in b.chunks(1 << 20) {
                s.write_all(&(piece.len() as u32).to_be_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                s.write_all(piece).await.map_err(|e| e.to_string())?;
            }
        }
        s.write_all(&0u32.to_be_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer)
            .trim_end_matches(['\0', '\n'])
            .to_string();
        // "stream: OK" | "stream: <signature> FOUND" | "... ERROR"
        let verdict = text.strip_prefix("stream: ").unwrap_or(&text);
        if verdict == "OK" {
            Ok(None)
        } else if let Some(sig) = verdict.strip_suffix(" FOUND") {
            Ok(Some(sig.to_string()))
        } else {
            Err(format!("scanner answered {text:?}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .unwrap_or_else(|_| Err("no answer within 120 s".into()))
}
