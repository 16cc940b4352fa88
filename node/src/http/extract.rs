//! Extractors whose every failure is an [`ApiError`] in the one shape, and
//! the small request helpers every face shares (idempotency keys, page
//! limits).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

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

/// Path segments whose failures (e.g. a segment that is not UTF-8 once
/// percent-decoded) are [`ApiError`]s, not axum's plain-text answers.
#[derive(Debug)]
pub struct PathArgs<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<St> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathArgs(v)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    // A missing parameter is a routing mistake (500); everything else is
    // the client's path.
    ApiError::new(e.status(), "invalid_path", e.body_text())
}

/// What an idempotency key protects: a key given to one operation never
/// replays the outcome of another (a group's creation answered to a send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Sending a message (`client_msg_id` or `Idempotency-Key`).
    Send,
    /// Creating a group.
    CreateGroup,
    /// Sending an urgent notice.
    Notice,
    /// Publishing an announcement.
    Announcement,
    /// Filing an approval request.
    Approval,
}

/// A client's idempotency key, scoped to the caller so two members can
/// never collide (or replay each other's outcomes), and to the operation.
/// 1-128 characters without control characters.
pub fn scoped_key(
    userid: &str,
    scope: KeyScope,
    key: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match key {
        None => Ok(None),
        Some(k) if k.is_empty() || k.chars().count() > 128 || k.chars().any(char::is_control) => {
            Err(bad_key())
        }
        // Userids have no `:`, so the prefixes cannot run into each other.
        Some(k) => Ok(Some(match scope {
            KeyScope::Send => format!("u:{userid}:{k}"),
            KeyScope::CreateGroup => format!("ug:{userid}:{k}"),
            KeyScope::Notice => format!("un:{userid}:{k}"),
            KeyScope::Announcement => format!("ua:{userid}:{k}"),
            KeyScope::Approval => format!("up:{userid}:{k}"),
        })),
    }
}

fn bad_key() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
        "the idempotency key must be 1-128 printable characters",
    )
}

/// The `Idempotency-Key` header. A value that is not printable ASCII is
/// refused (it used to be ignored, which silently dropped the protection).
pub fn header_key(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| bad_key()),
    }
}

/// A `?box=` (or similar) choice: absent means the first; anything not
/// listed is a 400 naming the choices.
pub fn choose<T: Copy>(
    param: &str,
    given: Option<&str>,
    choices: &[(&str, T)],
) -> Result<T, ApiError> {
    let Some(g) = given else {
        return Ok(choices[0].1);
    };
    choices
        .iter()
        .find(|(name, _)| *name == g)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{param} must be {}, not {g:?}", names.join(" or ")),
            )
        })
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
