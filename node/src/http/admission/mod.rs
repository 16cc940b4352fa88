//! Admission control: how much work this node takes on at once.
//!
//! Under a surge a server that queues everything it is sent runs out of
//! memory or answers so late that every client has timed out and retried,
//! which doubles the surge. So the api port bounds what it holds — requests
//! being served, writes waiting for commit, passwords being hashed — and
//! refuses what is beyond, at once, with 503 `overloaded` and a
//! `Retry-After` the client can honour. Per-token limits (429) come on top.
//! The request bound adapts to how quickly the node answers
//! ([`latency`]): a fixed count alone lets a loaded node queue for seconds.
//! Nothing here is replicated: each node protects itself.

pub mod latency;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, NodeState};
use crate::config::Admission as Bounds;
use crate::metrics::LimitLabels;
use latency::{Entered, LatencyBound};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Seconds a refused client is told to wait before it retries.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The bounds of one node and what is in use.
#[derive(Debug)]
pub struct Admission {
    pub bounds: Bounds,
    requests: LatencyBound,
    /// `enclave_admission_request_limit`: the request bound now.
    limit_gauge: Gauge,
    writes: Arc<Semaphore>,
    hashing: Arc<Semaphore>,
    hash_waiting: AtomicUsize,
    /// `enclave_rate_limited_requests{limit="requests"|"writes"|"password_hashing"}`.
    refused: Family<LimitLabels, Counter>,
}

/// Which bound refused a request (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    Requests,
    Writes,
    Hashing,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Requests => "requests",
            Shed::Writes => "writes",
            Shed::Hashing => "password_hashing",
        }
    }
}

impl Admission {
    /// `refused` counts refusals by bound (the node's rate-limit family);
    /// `limit_gauge` shows the request bound as it adapts.
    pub fn new(
        bounds: Bounds,
        refused: Family<LimitLabels, Counter>,
        limit_gauge: Gauge,
    ) -> Admission {
        limit_gauge.set(bounds.max_concurrent_requests as i64);
        Admission {
            refused,
            limit_gauge,
            bounds,
            requests: LatencyBound::new(
                bounds.max_concurrent_requests,
                bounds.latency_target,
                std::time::Instant::now(),
            ),
            writes: Arc::new(Semaphore::new(bounds.max_pending_writes)),
            hashing: Arc::new(Semaphore::new(bounds.password_hash_concurrency.max(1))),
            hash_waiting: AtomicUsize::new(0),
        }
    }

    /// A place for one request, or 503 `overloaded` saying which bound
    /// refused it.
    pub fn request(&self) -> Result<Entered<'_>, ApiError> {
        self.requests
            .enter(std::time::Instant::now())
            .map_err(|r| {
                let why = match r.slow {
                    Some(d) => format!(
                        "this node is answering slowly (half its answers in the last {} ms took over {} ms; api.latency_target_ms) and serves at most {} requests at once until it catches up",
                        latency::INTERVAL.as_millis(),
                        d.as_millis(),
                        r.limit
                    ),
                    None => format!(
                        "this node is serving {} requests already (api.max_concurrent_requests)",
                        r.limit
                    ),
                };
                self.overloaded(
                    Shed::Requests,
                    format!("{why}; retry after {RETRY_AFTER_SECS} s"),
                )
            })
    }

    /// `entered` was answered with `status`; `sample`: its time was this
    /// node's (see [`latency`]).
    fn answered(&self, entered: Entered<'_>, status: StatusCode, sample: bool) {
        let refused =
            status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
        if let Some(limit) = entered.answered(std::time::Instant::now(), sample && !refused) {
            self.limit_gauge.set(limit as i64);
        }
    }

    /// A slot for one write waiting for commit.
    pub fn write(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.writes.clone().try_acquire_owned().map_err(|_| {
            self.overloaded(
                Shed::Writes,
                format!(
                    "this node already has {} writes waiting for commit (api.max_pending_writes); retry after {RETRY_AFTER_SECS} s",
                    self.bounds.max_pending_writes
                ),
            )
        })
    }

    /// A hashing slot: waits while fewer than `password_hash_queue`
    /// others wait, refuses beyond. Argon2id is deliberately expensive
    /// (19 MiB and a core for tens of ms): unbounded, a login surge would
    /// take every core and gigabytes from message traffic.
    pub async fn hashing(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = self.hashing.clone().try_acquire_owned() {
            return Ok(p);
        }
        let waiting = self.hash_waiting.fetch_add(1, Ordering::AcqRel);
        let _undo = Undo(&self.hash_waiting);
        if waiting >= self.bounds.password_hash_queue {
            return Err(self.overloaded(
                Shed::Hashing,
                format!(
                    "{waiting} sign-ins are already waiting on this node (api.password_hash_queue); retry after {RETRY_AFTER_SECS} s"
                ),
            ));
        }
        self.hashing.clone().acquire_owned().await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node is shutting down",
            )
        })
    }
}

impl Admission {
    /// 503 `overloaded` (`Retry-After` is added on the way out), counted.
    pub fn overloaded(&self, shed: Shed, message: String) -> ApiError {
        // A refusal takes no time and says nothing about how fast this
        // node answers, whatever status it is finally rendered with (the
        // WeCom face answers HTTP 200 with an errcode).
        latency::not_a_sample();
        self.refused
            .get_or_create(&LimitLabels {
                limit: shed.label().into(),
            })
            .inc();
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
    }
}

struct Undo<'a>(&'a AtomicUsize);
impl Drop for Undo<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Middleware on the api port: take a request slot or refuse at once.
/// Health checks and WebSocket upgrades (long-lived, bounded by the push
/// hub) are not counted; the WeCom face (`/cgi-bin/`) takes its slots in
/// its own layer, to refuse in its own dialect ([`admit_with`]).
pub async fn admit(State(state): State<Arc<NodeState>>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path(), req.headers()) {
        return next.run(req).await;
    }
    admit_with(&state, req, next, IntoResponse::into_response).await
}

/// Whether a request on the api port is outside [`admit`]'s bound.
fn exempt(path: &str, headers: &http::HeaderMap) -> bool {
    path == "/healthz"
        || path == "/readyz"
        || path.starts_with("/cgi-bin/")
        // Only the stream route: an `Upgrade` header elsewhere must not
        // slip a request past the bound.
        || (path == "/v1/stream" && headers.contains_key(http::header::UPGRADE))
}

/// Take a request slot for `req` or answer `refuse(503 overloaded)`.
pub async fn admit_with(
    state: &NodeState,
    req: Request,
    next: Next,
    refuse: impl FnOnce(ApiError) -> Response,
) -> Response {
    let entered = match state.admission.request() {
        Ok(e) => e,
        Err(e) => return refuse(e),
    };
    let (resp, sample) = latency::scoped(next.run(req)).await;
    state.admission.answered(entered, resp.status(), sample);
    resp
}

/// Middleware: every 429 and 503 answer tells the client when to retry.
pub async fn retry_after(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let s = resp.status();
    if (s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::SERVICE_UNAVAILABLE)
        && !resp.headers().contains_key(http::header::RETRY_AFTER)
    {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(RETRY_AFTER_SECS),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(req: usize, writes: usize, hash: usize, queue: usize) -> Bounds {
        Bounds {
            max_concurrent_requests: req,
            max_pending_writes: writes,
            password_hash_concurrency: hash,
            password_hash_queue: queue,
            latency_target: Some(std::time::Duration::from_millis(100)),
        }
    }

    #[tokio::test]
    async fn a_refusal_is_not_a_latency_sample_whatever_status_it_is_rendered_with() {
        let a = Admission::new(bounds(2, 1, 1, 0), Family::default(), Gauge::default());
        let _held = a.write();
        // As the WeCom face renders it: HTTP 200 with an errcode.
        let (status, sample) = latency::scoped(async {
            let refused = a.write().err();
            assert!(refused.is_some());
            StatusCode::OK
        })
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !sample,
            "a refusal answered quickly must not pull the bound up"
        );
        let ((), sample) = latency::scoped(async {}).await;
        assert!(sample);
    }

    #[test]
    fn requests_and_writes_are_refused_beyond_the_bound_and_freed_after() {
        let a = Admission::new(bounds(2, 1, 1, 0), Family::default(), Gauge::default());
        let r1 = a.request();
        let r2 = a.request();
        assert!(r1.is_ok() && r2.is_ok());
        let e = a.request().err();
        assert!(
            e.is_some_and(|e| e.status == StatusCode::SERVICE_UNAVAILABLE
                && e.message.contains("api.max_concurrent_requests"))
        );
        drop(r1);
        assert!(a.request().is_ok());
        let w = a.write();
        assert!(w.is_ok());
        let e = a.write().err();
        assert_eq!(
            e.as_ref().map(|e| e.status),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(
            e.is_some_and(|e| e.code == "overloaded" && e.message.contains("max_pending_writes"))
        );
        drop(w);
        assert!(a.write().is_ok());
    }

    #[test]
    fn only_health_wecom_and_the_stream_upgrade_skip_the_request_bound() {
        let none = http::HeaderMap::new();
        let mut upgrade = http::HeaderMap::new();
        upgrade.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        assert!(exempt("/healthz", &none) && exempt("/readyz", &none));
        assert!(
            exempt("/cgi-bin/message/send", &none),
            "bounded in its own layer"
        );
        assert!(exempt("/v1/stream", &upgrade));
        // A forged Upgrade header on any other route is still counted.
        for path in ["/v1/messages", "/v1/login", "/v1/sync", "/v1/stream/x"] {
            assert!(
                !exempt(path, &upgrade),
                "{path} with Upgrade must be bounded"
            );
            assert!(!exempt(path, &none));
        }
        assert!(
            !exempt("/v1/stream", &none),
            "a plain GET of the stream route is counted"
        );
    }

    #[tokio::test]
    async fn hashing_waits_within_the_queue_and_refuses_beyond() {
        let a = Arc::new(Admission::new(
            bounds(16, 1, 1, 1),
            Family::default(),
            Gauge::default(),
        ));
        let held = a.hashing().await;
        assert!(held.is_ok());
        // One may wait...
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.hashing().await.is_ok() });
        while a.hash_waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        // ...a second is refused at once.
        let e = a.hashing().await.err();
        assert!(
            e.is_some_and(|e| e.code == "overloaded" && e.message.contains("password_hash_queue"))
        );
        drop(held);
        assert!(waiter.await.unwrap_or(false), "the waiter gets the slot");
        assert_eq!(a.hash_waiting.load(Ordering::Acquire), 0);
    }
}
