//! Applying committed entries: each request through the application (or
//! the cluster's control commands) with its idempotency check, and the
//! batch's writes made crash-atomic by the journal and whole to readers
//! by the gate (see the parent module and `journal.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use openraft::{EntryPayload, ErrorVerb};

use super::super::dedup::{expiry_key, prune_dedup};
use super::super::{Txn, sealed};
use super::{APPLIED, DEDUP_RETENTION_MS, MEMBERSHIP, StateMachineStore, sm_err};
use crate::app::{Application, ApplyContext};
use crate::control;
use crate::types::{LogId, Payload, Response, ResponsePayload, StorageError, StoredMembership};

/// Most entries, and approximate payload bytes, applied as one atomic
/// batch (one journal record); `apply` splits longer runs.
const APPLY_CHUNK_ENTRIES: usize = 256;
const APPLY_CHUNK_BYTES: usize = 4 << 20;

/// Approximate payload size of an entry, for chunking applies.
fn entry_weight(e: &crate::types::Entry) -> usize {
    fn request(r: &crate::types::Request) -> usize {
        64 + match &r.payload {
            Payload::App(b) => b.len(),
            Payload::Cluster(_) => 256,
            Payload::Batch(rs) => rs.iter().map(request).sum(),
        }
    }
    match &e.payload {
        EntryPayload::Normal(r) => request(r),
        _ => 256,
    }
}

/// Least number of expired dedup records pruned per batch (bounded work
/// per apply; see `prune_dedup`).
const DEDUP_PRUNE_PER_BATCH: usize = 256;

impl<A: Application> StateMachineStore<A> {
    /// Apply `entries` in order. A node catching up gets many entries in
    /// one call; each chunk is its own atomic batch (journal record +
    /// writes), so the record and the write set in memory stay bounded.
    pub(super) async fn apply_entries(
        &self,
        entries: impl IntoIterator<Item = crate::types::Entry>,
    ) -> Result<Vec<Response>, StorageError> {
        let mut out = Vec::new();
        let mut last = None;
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let mut chunk = Vec::new();
            let mut weight = 0usize;
            while let Some(e) = entries.peek() {
                let w = entry_weight(e);
                let fits = chunk.len() < APPLY_CHUNK_ENTRIES && weight + w <= APPLY_CHUNK_BYTES;
                if !chunk.is_empty() && !fits {
                    break;
                }
                let Some(e) = entries.next() else { break };
                weight += w;
                chunk.push(e);
            }
            let (responses, chunk_last) = {
                let _guard = self.inner.apply_lock.lock().await;
                let tree = self.tree();
                let started = std::time::Instant::now();
                let n = chunk.len();
                let applied = self.apply_batch(&tree, chunk)?;
                self.inner.metrics.observe(started, n);
                applied
            };
            out.extend(responses);
            last = chunk_last.or(last);
            self.inner
                .applied_bytes
                .fetch_add(weight as u64, Ordering::Relaxed);
        }
        if let Some(l) = last {
            self.inner.app.applied(l.index);
        }
        Ok(out)
    }

    fn apply_batch(
        &self,
        tree: &sled::Tree,
        entries: Vec<crate::types::Entry>,
    ) -> Result<(Vec<Response>, Option<LogId>), StorageError> {
        let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut out = Vec::with_capacity(entries.len());
        let mut last: Option<LogId> = None;
        let mut membership: Option<StoredMembership> = None;
        let mut latest_time = 0u64;
        for entry in entries {
            let log_id = entry.log_id;
            let mut ctx = ApplyContext {
                index: log_id.index,
                term: log_id.leader_id.term,
                time_ms: latest_time,
                sub: 0,
            };
            let response = match entry.payload {
                EntryPayload::Blank => Response {
                    index: log_id.index,
                    deduplicated: false,
                    payload: ResponsePayload::None,
                },
                EntryPayload::Membership(m) => {
                    self.inner
                        .app
                        .cluster_event(
                            &ctx,
                            &mut Txn::new(tree, &mut writes, b"a/"),
                            crate::app::ClusterEvent::Membership(&m),
                        )
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                    membership = Some(StoredMembership::new(Some(log_id), m));
                    Response {
                        index: log_id.index,
                        deduplicated: false,
                        payload: ResponsePayload::None,
                    }
                }
                EntryPayload::Normal(req) => {
                    ctx.time_ms = req.time_ms;
                    latest_time = latest_time.max(req.time_ms);
                    let mut keys = Vec::new();
                    let entry_time = req.time_ms;
                    let response = match req.payload {
                        Payload::Batch(reqs) => {
                            let mut outcomes = Vec::with_capacity(reqs.len());
                            for (i, sub) in reqs.into_iter().enumerate() {
                                ctx.sub = i as u32;
                                ctx.time_ms = sub.time_ms;
                                latest_time = latest_time.max(sub.time_ms);
                                outcomes.push(self.apply_request(
                                    tree,
                                    &mut writes,
                                    &mut keys,
                                    &ctx,
                                    sub,
                                )?);
                            }
                            Response {
                                index: log_id.index,
                                deduplicated: false,
                                payload: ResponsePayload::Batch(outcomes),
                            }
                        }
                        _ => self.apply_request(tree, &mut writes, &mut keys, &ctx, req)?,
                    };
                    // One expiry record per entry, not per request: the
                    // dedup table costs one insert per request.
                    if !keys.is_empty() {
                        let list = postcard::to_stdvec(&keys)
                            .map_err(|e| sm_err(ErrorVerb::Write, std::io::Error::other(e)))?;
                        writes.insert(expiry_key(entry_time, log_id.index), Some(list));
                    }
                    // Prune per entry, by the entry's own (leader-stamped)
                    // time, at least twice what it added: the same on every
                    // node whatever the apply batches.
                    if entry_time > DEDUP_RETENTION_MS {
                        let budget = DEDUP_PRUNE_PER_BATCH.max(2 * keys.len());
                        prune_dedup(tree, &mut writes, entry_time - DEDUP_RETENTION_MS, budget)
                            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                    }
                    response
                }
            };
            out.push(response);
            last = Some(log_id);
        }
        if let Some(l) = last {
            writes.insert(APPLIED.to_vec(), Some(sealed(&Some(l))));
        }
        if let Some(m) = &membership {
            writes.insert(MEMBERSHIP.to_vec(), Some(sealed(m)));
        }
        // A snapshot is being written: keep the old value of every key this
        // batch changes, before the change can be seen.
        self.inner
            .capture
            .record(tree, writes.keys().map(Vec::as_slice))
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        // The whole batch as one atomic value first, then plain inserts: a
        // crash anywhere in between is completed from the journal at open.
        let generation = self.inner.generation.load(Ordering::Acquire);
        self.inner
            .journal
            .record(generation, last, &writes)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let _readers_wait = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            match v {
                Some(v) => tree.insert(k, v).map(|_| ()),
                None => tree.remove(k).map(|_| ()),
            }
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        Ok((out, last))
    }

    /// Apply one request (not a batch) with its idempotency check.
    fn apply_request(
        &self,
        tree: &sled::Tree,
        writes: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        keys: &mut Vec<String>,
        ctx: &ApplyContext,
        req: crate::types::Request,
    ) -> Result<Response, StorageError> {
        let prior = match &req.idempotency_key {
            Some(key) => Txn::new(tree, writes, b"d/")
                .get(key.as_bytes())
                .map_err(|e| sm_err(ErrorVerb::Read, e))?
                .and_then(|b| super::super::unsealed::<Response>(&b)),
            None => None,
        };
        if let Some(mut r) = prior {
            r.deduplicated = true;
            return Ok(r);
        }
        let payload = match &req.payload {
            Payload::App(cmd) => ResponsePayload::App(
                self.inner
                    .app
                    .apply(ctx, &mut Txn::new(tree, writes, b"a/"), cmd)
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?,
            ),
            Payload::Cluster(c) => {
                let outcome = control::apply(ctx, &mut Txn::new(tree, writes, b"c/"), c)
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                self.inner
                    .app
                    .cluster_event(
                        ctx,
                        &mut Txn::new(tree, writes, b"a/"),
                        crate::app::ClusterEvent::Control {
                            command: c,
                            outcome: &outcome,
                        },
                    )
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                ResponsePayload::Cluster(outcome)
            }
            // Only the leader's proposer builds batches, one level deep; a
            // nested one is ignored the same way on every node.
            Payload::Batch(_) => ResponsePayload::None,
        };
        let r = Response {
            index: ctx.index,
            deduplicated: false,
            payload,
        };
        if let Some(key) = req.idempotency_key {
            let kept = match (&req.payload, &r.payload) {
                (Payload::App(cmd), ResponsePayload::App(out)) => {
                    self.inner
                        .app
                        .retry_outcome(&mut Txn::new(tree, writes, b"a/"), cmd, out)
                }
                _ => None,
            };
            let record = match kept {
                Some(small) => sealed(&Response {
                    payload: ResponsePayload::App(small),
                    ..r.clone()
                }),
                None => sealed(&r),
            };
            Txn::new(tree, writes, b"d/").put(key.as_bytes(), record);
            keys.push(key);
        }
        Ok(r)
    }
}
