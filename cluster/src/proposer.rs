//! Proposal batching on the leader.
//!
//! openraft 0.9 turns every `client_write` into its own log entry, its own
//! append and its own fsync on the leader. Under many concurrent writers
//! that per-entry cost, not the disk, limits throughput. The proposer
//! collects the writes that arrive while earlier proposals are still in
//! flight into one entry (`Payload::Batch`): one append, one fsync, one
//! replication round and one state-machine batch for all of them. Each
//! request inside keeps its own idempotency key and gets its own outcome.
//!
//! A lone writer is never delayed: with a free in-flight slot a request is
//! proposed at once. Batches only form while `max_in_flight` proposals are
//! already on their way, which is exactly when waiting costs nothing.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{ClusterError, ForwardResult};
use crate::types::{Payload, Raft, Request, Response, ResponsePayload};

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Proposals in flight before new writes wait (and batch up).
    pub max_in_flight: usize,
    /// Requests per batch entry.
    pub max_requests: usize,
    /// Approximate encoded bytes per batch entry.
    pub max_bytes: usize,
    /// Longest wait for one proposal before its outcome is reported
    /// unknown and its in-flight slot freed (a backstop; see [`write`]).
    pub max_wait: std::time::Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_in_flight: 2,
            max_requests: 512,
            max_bytes: 1 << 20,
            max_wait: std::time::Duration::from_secs(10),
        }
    }
}

type Reply = oneshot::Sender<Result<Response, ForwardResult>>;

/// Handle to the batching task. Dropping every handle stops the task.
#[derive(Debug, Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Request, Reply)>,
}

/// Queue depth in front of the batcher: a full queue makes writers wait
/// (back-pressure) instead of growing memory.
const QUEUE: usize = 8192;

impl Proposer {
    pub fn start(raft: Raft, limits: BatchLimits) -> Proposer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, limits, rx));
        Proposer { tx }
    }

    /// Propose `req` on this node (which should be the leader) and wait for
    /// its outcome. `req.time_ms` is stamped by the batch.
    pub async fn propose(&self, req: Request) -> Result<Response, ForwardResult> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((req, reply)).await.is_err() {
            return Err(ForwardResult::Failed(ClusterError::Rejected(
                "the node is shutting down".into(),
            )));
        }
        // A dropped reply means the proposal task died mid-write (shutdown):
        // the entry may still commit.
        answer.await.unwrap_or_else(|_| {
            Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(
                "the node shut down while the write was in flight".into(),
            )))
        })
    }
}

fn approx_size(req: &Request) -> usize {
    let payload = match &req.payload {
        Payload::App(b) => b.len(),
        _ => 256,
    };
    payload + req.idempotency_key.as_ref().map_or(0, String::len) + 16
}

async fn run(raft: Raft, limits: BatchLimits, mut rx: mpsc::Receiver<(Request, Reply)>) {
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: writes arriving meanwhile join this batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = approx_size(&first.0);
        let mut batch = vec![first];
        while batch.len() < limits.max_requests && bytes < limits.max_bytes {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += approx_size(&next.0);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tracing::debug!(requests = batch.len(), "proposing a batch");
        tokio::spawn(async move {
            let n = batch.len();
            let started = std::time::Instant::now();
            submit(&raft, batch, limits.max_wait).await;
            tracing::debug!(
                requests = n,
                ms = started.elapsed().as_millis() as u64,
                "batch done"
            );
            drop(permit);
        });
    }
}

async fn submit(raft: &Raft, mut batch: Vec<(Request, Reply)>, max_wait: std::time::Duration) {
    let now = crate::fault::now_ms();
    if batch.len() == 1 {
        if let Some((mut req, reply)) = batch.pop() {
            req.time_ms = now;
            let _ = reply.send(write(raft, req, max_wait).await);
        }
        return;
    }
    let (reqs, replies): (Vec<Request>, Vec<Reply>) = batch
        .into_iter()
        .map(|(mut r, reply)| {
            r.time_ms = now;
            (r, reply)
        })
        .unzip();
    let entry = Request {
        time_ms: now,
        idempotency_key: None,
        payload: Payload::Batch(reqs),
    };
    match write(raft, entry, max_wait).await {
        Ok(Response {
            payload: ResponsePayload::Batch(outcomes),
            ..
        }) if outcomes.len() == replies.len() => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(other) => {
            // Cannot happen with a well-formed state machine; never guess.
            let msg = format!("batch applied with an unexpected outcome: {other:?}");
            tracing::error!("{msg}");
            for reply in replies {
                let _ = reply.send(Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(
                    msg.clone(),
                ))));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// One `client_write`, with openraft's errors mapped for the caller.
///
/// openraft 0.9 never answers a `client_write` taken by a leader that then
/// quits (e.g. a restarted node that briefly believes its old leadership
/// from its stored vote and takes writes before it hears of the new term):
/// the future hangs forever. With two such writes both in-flight slots
/// were gone and the node could never propose again, even as leader — the
/// failover suite found clusters that stopped taking writes after a kill.
/// So a proposal stops waiting once this node no longer leads in the term
/// it proposed in (or after `max_wait`), and reports the outcome unknown:
/// the entry may still commit under the new leader, and the caller's retry
/// with the same idempotency key applies it at most once.
async fn write(
    raft: &Raft,
    req: Request,
    max_wait: std::time::Duration,
) -> Result<Response, ForwardResult> {
    let (me, term, leading) = {
        let m = raft.metrics();
        let m = m.borrow();
        (m.id, m.current_term, m.current_leader == Some(m.id))
    };
    let proposal = raft.client_write(req);
    // Not leading: openraft answers ForwardToLeader at once.
    let watch_leadership = async {
        if leading {
            lost_leadership(raft, me, term).await
        } else {
            std::future::pending().await
        }
    };
    let answer = tokio::select! {
        a = proposal => a,
        () = watch_leadership => {
            return Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(format!(
                "this node stopped leading term {term} while the write was in flight"
            ))));
        }
        () = tokio::time::sleep(max_wait) => {
            return Err(ForwardResult::Failed(ClusterError::OutcomeUnknown(format!(
                "no answer from Raft within {} ms",
                max_wait.as_millis()
            ))));
        }
    };
    match answer {
        Ok(r) => Ok(r.data),
        Err(openraft::error::RaftError::APIError(
            openraft::error::ClientWriteError::ForwardToLeader(_),
        )) => Err(ForwardResult::NotLeader),
        // A fatal storage or shutdown error after proposing: the entry may
        // still commit (it may already be on disk), so the outcome is unknown.
        Err(e @ openraft::error::RaftError::Fatal(_)) => Err(ForwardResult::Failed(
            ClusterError::OutcomeUnknown(e.to_string()),
        )),
        Err(e) => Err(ForwardResult::Failed(ClusterError::Rejected(e.to_string()))),
    }
}

/// Resolves once `me` is no longer the leader of `term`.
async fn lost_leadership(raft: &Raft, me: crate::types::NodeId, term: u64) {
    // An error means Raft shut down: leadership is lost too.
    let _ = raft
        .metrics()
        .wait_for(|m| m.current_term != term || m.current_leader != Some(me))
        .await;
}
