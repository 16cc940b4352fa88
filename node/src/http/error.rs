//! The one error shape on the wire, `{"error": {"code", "message"}}`, and
//! the mapping of domain refusals and cluster failures onto it.

use axum::Json;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use enclave_cluster::error::ClusterError;
use http::StatusCode;
use serde::Serialize;

use crate::domain::{self, Code, Refusal};

/// The one error shape: `{"error": {"code": "...", "message": "..."}}`.
/// Codes are stable identifiers clients may match on; messages are for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}
#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Fallback for unknown routes, in the one error shape.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Middleware: axum answers a known path with the wrong method with an
/// empty 405; give it the one error shape (keeping `Allow`).
pub async fn method_not_allowed_json(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED
        || resp.headers().contains_key(http::header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(http::header::ALLOW).cloned();
    let mut out = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {path} (allowed: {})",
            allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or("none")
        ),
    )
    .into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(http::header::ALLOW, a);
    }
    out
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
        Code::NoRecipients => StatusCode::UNPROCESSABLE_ENTITY,
        Code::Expired => StatusCode::GONE,
        Code::Stale => StatusCode::CONFLICT,
        Code::AppDisabled | Code::ScopeDenied => StatusCode::FORBIDDEN,
        Code::DeadlinePassed => StatusCode::UNPROCESSABLE_ENTITY,
        Code::Withdrawn => StatusCode::GONE,
        Code::AlreadyDecided | Code::AlreadyUsed => StatusCode::CONFLICT,
        Code::QuotaExceeded => StatusCode::FORBIDDEN,
        Code::TypeNotAllowed => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::ClusterUpgrading => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, r.code.as_str(), r.message)
}

/// A cluster failure in the one error shape.
pub fn cluster_error(e: ClusterError) -> ApiError {
    let (status, code) = match &e {
        ClusterError::NotInitialized => (StatusCode::CONFLICT, "not_initialized"),
        ClusterError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ClusterError::NoLeader => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
        ClusterError::OutcomeUnknown(_) => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
        ClusterError::Rejected(_) => (StatusCode::CONFLICT, "rejected"),
        ClusterError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
        ClusterError::Peer(_) => (StatusCode::BAD_GATEWAY, "peer_unreachable"),
        ClusterError::NoQuorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_quorum"),
        ClusterError::ApplyBehind { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    ApiError::new(status, code, e.to_string())
}
