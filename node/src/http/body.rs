//! Read a request's whole body before its handler runs.
//!
//! A handler that refuses a request early (no token, a bad header, an
//! unknown conversation) answers without reading the body. hyper then
//! closes the connection with the rest of the body unread, and the kernel
//! answers the client's next bytes with a TCP reset — which can reach the
//! client before it has read the refusal, so it sees "connection reset" or
//! "EOF in violation of protocol" instead of the error. Under load this
//! happens to ordinary bodies split over two TLS records. Reading bodies
//! that fit the limit first means every refusal arrives intact and the
//! connection stays open for the next request.
//!
//! Bodies declared larger than the limit pass through untouched: the
//! route's own `DefaultBodyLimit` refuses them (or a route with a larger
//! limit, the WeCom media upload, reads them). Chunked bodies of unknown
//! length pass through too.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::ApiError;

/// Middleware (with the face's body limit as its state).
pub async fn read_whole_body(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(0) | None => next.run(req).await,
        Some(n) if n > limit as u64 => next.run(req).await,
        Some(_) => {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                // The client stopped sending, or sent more than it declared.
                Err(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the request body could not be read: {e}"),
                )
                .into_response(),
            }
        }
    }
}
