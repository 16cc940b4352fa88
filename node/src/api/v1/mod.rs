//! The client API under `/v1`: login, directory reads, conversations,
//! messages, receipts, sync and the live stream. JSON over HTTPS, one error
//! shape, cursor pagination, body limits, per-token rate limits.
//!
//! Every route is listed once in [`ROUTES`]; the router is built from that
//! table and a test checks it against `docs/api/openapi.json`.

pub mod auth;
pub mod conversations;
pub mod directory;
pub mod stream;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use enclave_cluster::types::{Payload, ResponsePayload};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::domain::{self, Code, Command, Done, Refusal, Session};
use crate::http::ApiError;
use crate::messaging::{ViewStore, encode_domain};
use crate::server::NodeState;

type S = Arc<NodeState>;

/// Every `/v1` route of the api port: (method, path, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<S>)> {
    vec![
        ("post", "/v1/login", post(auth::login)),
        ("post", "/v1/logout", post(auth::logout)),
        ("post", "/v1/token/refresh", post(auth::refresh)),
        ("get", "/v1/me", get(auth::me)),
        ("post", "/v1/me/password", post(auth::change_password)),
        (
            "get",
            "/v1/directory/departments",
            get(directory::departments),
        ),
        ("get", "/v1/directory/members", get(directory::members)),
        (
            "get",
            "/v1/directory/members/{userid}",
            get(directory::member),
        ),
        ("get", "/v1/conversations", get(conversations::list)),
        (
            "post",
            "/v1/conversations",
            post(conversations::create_group),
        ),
        (
            "get",
            "/v1/conversations/{conv}",
            get(conversations::get_one),
        ),
        (
            "patch",
            "/v1/conversations/{conv}",
            patch(conversations::update),
        ),
        (
            "delete",
            "/v1/conversations/{conv}",
            delete(conversations::dissolve),
        ),
        (
            "get",
            "/v1/conversations/{conv}/members",
            get(conversations::members),
        ),
        (
            "post",
            "/v1/conversations/{conv}/members",
            post(conversations::add_members),
        ),
        (
            "delete",
            "/v1/conversations/{conv}/members/{userid}",
            delete(conversations::remove_member),
        ),
        (
            "post",
            "/v1/conversations/{conv}/leave",
            post(conversations::leave),
        ),
        (
            "put",
            "/v1/conversations/{conv}/owner",
            put(conversations::transfer_owner),
        ),
        (
            "put",
            "/v1/conversations/{conv}/admins",
            put(conversations::set_admins),
        ),
        (
            "get",
            "/v1/conversations/{conv}/messages",
            get(conversations::messages),
        ),
        (
            "post",
            "/v1/conversations/{conv}/messages",
            post(conversations::send_to_conv),
        ),
        (
            "post",
            "/v1/conversations/{conv}/messages/{seq}/recall",
            post(conversations::recall),
        ),
        (
            "get",
            "/v1/conversations/{conv}/messages/{seq}/receipts",
            get(conversations::receipts),
        ),
        (
            "post",
            "/v1/conversations/{conv}/read",
            post(conversations::mark_read),
        ),
        (
            "post",
            "/v1/conversations/{conv}/delivered",
            post(conversations::mark_delivered),
        ),
        (
            "post",
            "/v1/direct/{userid}/messages",
            post(conversations::send_direct),
        ),
        ("get", "/v1/sync", get(stream::sync)),
        ("get", "/v1/stream", get(stream::websocket)),
        ("get", "/v1/openapi.json", get(openapi)),
    ]
}

/// The `/v1` router (merged into the api port's router).
pub fn router() -> Router<S> {
    let mut r = Router::new();
    for (_, path, handler) in routes() {
        r = r.route(path, handler);
    }
    r
}

pub const OPENAPI: &str = include_str!("../../../../docs/api/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

// ------------------------------------------------------------- extractors

/// A JSON body whose every failure is an [`ApiError`] in the one shape.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequest<St> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let status = rej.status();
    let text = rej.body_text();
    match rej {
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body exceeds api.max_body_bytes",
        ),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", text),
    }
}

/// Query parameters whose failures are [`ApiError`]s.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequestParts<St> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
}

/// The authenticated member behind a bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub userid: String,
    pub token_hash: [u8; 32],
    pub session: Session,
    /// For the audit record of what the caller does.
    pub origin: crate::audit::Origin,
}

/// This node's wall clock in ms (see `enclave_cluster::fault` for the
/// test-only clock offset).
pub fn now_ms() -> u64 {
    enclave_cluster::fault::now_ms()
}

pub fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn bearer(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some(t.trim().to_string());
    }
    // Browsers cannot set headers on a WebSocket: the stream also takes
    // the token as a query parameter.
    if parts.uri.path() == "/v1/stream" {
        let q = parts.uri.query()?;
        for pair in q.split('&') {
            if let Some(t) = pair.strip_prefix("access_token=") {
                return Some(t.to_string());
            }
        }
    }
    None
}

impl FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthenticated(
                "missing bearer token (Authorization: Bearer <access_token>)",
            ));
        };
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::unauthenticated("malformed bearer token"));
        }
        // The lookup is by SHA-256 of the token: the stored key reveals
        // nothing, and timing of the lookup says nothing about the token.
        let hash = token_hash(&token);
        let view = state.view();
        let session = domain::query::session(&view, &hash)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::unauthenticated("unknown, revoked or expired token"))?;
        if session.expires_ms <= now_ms() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "the access token has expired; refresh it or log in again",
            ));
        }
        match domain::query::member(&view, &session.userid).map_err(store_error)? {
            Some(m) if m.status == domain::MemberStatus::Active => {}
            _ => return Err(ApiError::unauthenticated("the account is not active")),
        }
        state.limits.check_token(&hash)?;
        Ok(Caller {
            origin: crate::http::origin(
                &parts.extensions,
                crate::audit::ActorKind::User,
                &session.userid,
                "member",
                &state.node_id,
            ),
            userid: session.userid.clone(),
            token_hash: hash,
            session,
        })
    }
}

// ---------------------------------------------------------------- helpers

impl NodeState {
    /// This node's applied state, for reads.
    pub fn view(&self) -> ViewStore {
        ViewStore(self.cluster.sm.view())
    }
}

pub fn store_error(e: domain::StoreFault) -> ApiError {
    tracing::error!(error = %e, "reading the state failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        "reading the state failed (see the node's log)",
    )
}

pub fn refusal(r: Refusal) -> ApiError {
    let status = match r.code {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::DepartmentNotEmpty | Code::Cycle => StatusCode::CONFLICT,
        Code::Forbidden | Code::NotAMember | Code::AccountInactive => StatusCode::FORBIDDEN,
        Code::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
        Code::RecallWindowExpired => StatusCode::CONFLICT,
        Code::AccountLocked => StatusCode::LOCKED,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Dissolved => StatusCode::GONE,
    };
    ApiError::new(status, r.code.as_str(), r.message)
}

/// Propose a domain command through the cluster; answer after commit + apply.
pub async fn submit(
    state: &NodeState,
    origin: &crate::audit::Origin,
    cmd: &Command,
    idempotency_key: Option<String>,
) -> Result<Done, ApiError> {
    let outcome: domain::Outcome =
        write_app(state, encode_domain(origin, cmd), idempotency_key).await?;
    outcome.map_err(refusal)
}

/// Propose an application command through the cluster and decode its
/// (postcard) outcome: the one path every node-side write takes.
pub async fn write_app<T: DeserializeOwned>(
    state: &NodeState,
    command: Vec<u8>,
    idempotency_key: Option<String>,
) -> Result<T, ApiError> {
    let resp = state
        .cluster
        .write(Payload::App(command), idempotency_key)
        .await
        .map_err(crate::admin::cluster::cluster_error)?;
    match resp.payload {
        ResponsePayload::App(b) => postcard::from_bytes(&b).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decode",
                format!("undecodable outcome: {e}"),
            )
        }),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

/// A client's idempotency key, scoped to the caller so two members can
/// never collide (or replay each other's outcomes).
pub fn scoped_key(userid: &str, key: Option<&str>) -> Result<Option<String>, ApiError> {
    match key {
        None => Ok(None),
        Some(k) if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) => {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "the idempotency key must be 1-128 printable characters",
            ))
        }
        Some(k) => Ok(Some(format!("u:{userid}:{k}"))),
    }
}

pub fn header_key(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit must be at least 1",
        )),
        Some(n) if n > max => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be at most {max}"),
        )),
        Some(n) => Ok(n),
    }
}

// ------------------------------------------------------------ rate limits

/// In-memory limits of this node: requests per token, failed logins per
/// source address.
#[derive(Debug)]
pub struct Limits {
    tokens: Mutex<HashMap<[u8; 32], Bucket>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub per_token_rps: f64,
    pub per_token_burst: f64,
    pub failures_per_source: u32,
    pub failure_window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens: Mutex::default(),
            failures: Mutex::default(),
            per_token_rps: 50.0,
            per_token_burst: 200.0,
            failures_per_source: 20,
            failure_window: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// `rate` requests/s per token (0 = unlimited), bursts up to `burst`.
    pub fn new(rate: u64, burst: u64) -> Limits {
        Limits {
            per_token_rps: rate as f64,
            per_token_burst: burst as f64,
            ..Default::default()
        }
    }

    pub fn check_token(&self, hash: &[u8; 32]) -> Result<(), ApiError> {
        if self.per_token_rps <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bounded: forget idle buckets.
            map.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
        }
        let b = map.entry(*hash).or_insert(Bucket {
            tokens: self.per_token_burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.per_token_rps;
        b.tokens = (b.tokens + refill).min(self.per_token_burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} requests/s with this token; slow down",
                    self.per_token_rps
                ),
            ));
        }
        b.tokens -= 1.0;
        Ok(())
    }

    /// Refuse a login attempt from an address with too many recent failures.
    pub fn check_source(&self, ip: IpAddr) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, since)) = map.get(&ip)
            && *n >= self.failures_per_source
            && since.elapsed() < self.failure_window
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!(
                    "too many failed logins from {ip}; try again in {} s",
                    self.failure_window
                        .saturating_sub(since.elapsed())
                        .as_secs()
                ),
            ));
        }
        Ok(())
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let window = self.failure_window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.failure_window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The OpenAPI document and the router describe the same routes.
    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<_> = served.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "routes missing from docs/api/openapi.json: {missing:?}"
        );
        assert!(stale.is_empty(), "documented but not served: {stale:?}");
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
