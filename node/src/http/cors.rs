//! Cross-origin requests between the cluster's own nodes. The web client
//! is loaded from one node and fails over to the others, which are other
//! origins (`https://host:port`). A node allows exactly the api origins of
//! the current members, nothing else; credentials are bearer tokens in a
//! header (no cookies), so an allowed origin gains nothing a page on it
//! could not already do. Other origins get no CORS headers at all and the
//! browser keeps their scripts out.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

use super::S;
use super::assets::api_origin;

/// Is `origin` (an `Origin` header's value) one of the members' api ports?
pub fn cluster_origin(state: &S, origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("https://") else {
        return false;
    };
    state
        .cluster
        .members()
        .iter()
        .filter_map(|(_, m)| api_origin(&m.api))
        .any(|o| o.eq_ignore_ascii_case(host))
}

/// Answer preflights from member origins and mark their answers readable.
pub async fn cors(State(state): State<S>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| cluster_origin(&state, o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, idempotency-key"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, retry-after"),
    );
    resp
}
