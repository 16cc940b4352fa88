//! A tracing span and metrics for every request, the request id that links
//! log lines and audit records, and the audit origin of a caller.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use enclave_cluster::listener::ConnInfo;
use ring::rand::SecureRandom;
use tracing::Instrument;

use crate::metrics::{ListenerOnly, Metrics, RequestLabels};

/// A short random id that links a request's log lines (and, later, its
/// audit record).
///
/// A random per-process prefix and a counter: unique across restarts and
/// nodes without a system call per request.
fn request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        u32::from_be_bytes(b)
    });
    format!("{prefix:08x}{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The id of the request being served (in the request's extensions): it
/// links log lines and audit records.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Who is calling and from where, for the audit record of what they do.
pub fn origin(
    parts: &http::Extensions,
    kind: crate::audit::ActorKind,
    id: &str,
    role: &str,
    node: &str,
) -> crate::audit::Origin {
    crate::audit::Origin {
        kind,
        id: id.to_string(),
        role: role.to_string(),
        source: parts
            .get::<ConnInfo>()
            .map(|c| c.remote.ip().to_string())
            .unwrap_or_default(),
        node: node.to_string(),
        request_id: parts
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
    }
}

/// Span + metrics for every request. Apply with
/// `axum::middleware::from_fn_with_state(metrics, trace_request)`.
pub async fn trace_request(
    State(metrics): State<Arc<Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let rid = request_id();
    req.extensions_mut().insert(RequestId(rid.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let listener = conn.as_ref().map_or("unknown", |c| c.listener);
    let caller = conn
        .as_ref()
        .and_then(|c| c.identity.as_ref())
        .map(|i| format!("{}:{}", i.role, i.name))
        .unwrap_or_default();
    let remote = conn
        .as_ref()
        .map(|c| c.remote.to_string())
        .unwrap_or_default();
    let method = req.method().to_string();
    // Debug level: recorded when an operator asks for request logs
    // (log.level = "info,enclave_node::http=debug"), free otherwise.
    let span = tracing::debug_span!(
        "request",
        request_id = %rid,
        listener,
        %method,
        path = %req.uri().path(),
        remote,
        caller,
        status = tracing::field::Empty,
        ms = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = start.elapsed();
    span.record("status", status.as_u16());
    span.record("ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::debug!("request done"));
    metrics
        .requests
        .get_or_create(&RequestLabels {
            listener: listener.into(),
            method,
            route,
            status: status.as_u16(),
        })
        .inc();
    metrics
        .request_seconds
        .get_or_create(&ListenerOnly {
            listener: listener.into(),
        })
        .observe(elapsed.as_secs_f64());
    response
}
