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
//! Bodies declared larger than the limit go on to the handler as they
//! come: the route's own `DefaultBodyLimit` refuses them (or a route with
//! a larger limit, a file or WeCom media upload, reads them). What the
//! handler leaves unread is then read and dropped, up to 64 MiB or 3 s,
//! before the answer goes out (a lingering close, as web servers do), so
//! a client still sending its oversized body gets the refusal, not a
//! broken pipe. Chunked bodies of unknown length pass through untouched.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::BodyExt;

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
        Some(n) if n > limit as u64 => {
            let (parts, body) = req.into_parts();
            let held = Arc::new(tokio::sync::Mutex::new(Some(body)));
            let resp = next
                .run(Request::from_parts(parts, relay(held.clone())))
                .await;
            // The handler is done with its body: drain what it left.
            if let Ok(mut slot) = held.try_lock()
                && let Some(mut rest) = slot.take()
            {
                // Paced by the client: not a measure of this node's queue.
                super::admission::latency::not_a_sample();
                drain(&mut rest).await;
            }
            resp
        }
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

/// A body that reads from `held` frame by frame, leaving what it does not
/// read there (and `None` once the end is reached). Fused: a handler may
/// poll it again after its end (e.g. to drain), which must not panic.
fn relay(held: Arc<tokio::sync::Mutex<Option<Body>>>) -> Body {
    use futures_util::StreamExt;
    let frames = futures_util::stream::unfold(held, |held| async move {
        let next = {
            let mut slot = held.lock().await;
            let body = slot.as_mut()?;
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => break Some(Ok::<Bytes, axum::Error>(data)),
                        // Trailers: nothing a handler here reads.
                        Err(_) => continue,
                    },
                    Some(Err(e)) => break Some(Err(e)),
                    None => {
                        *slot = None;
                        break None;
                    }
                }
            }
        };
        next.map(|item| (item, held))
    });
    Body::from_stream(frames.fuse())
}

/// Read and discard what a refused body still sends: at most 64 MiB or
/// 3 s, then the connection closes (a lingering close, as web servers do).
pub async fn drain(body: &mut Body) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut seen = 0usize;
    while seen < 64 << 20 {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(chunks: &[&'static [u8]]) -> Arc<tokio::sync::Mutex<Option<Body>>> {
        let items: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Arc::new(tokio::sync::Mutex::new(Some(Body::from_stream(
            futures_util::stream::iter(items),
        ))))
    }

    #[tokio::test]
    async fn the_relay_leaves_what_it_did_not_read_and_may_be_polled_past_its_end() {
        // Read one frame, drop the relay: the rest is still held.
        let h = held(&[b"ab", b"cd", b"ef"]);
        let mut r = relay(h.clone());
        let first = r
            .frame()
            .await
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok());
        assert_eq!(first.as_deref(), Some(&b"ab"[..]));
        drop(r);
        let rest = h.lock().await.take();
        let rest = match rest {
            Some(b) => axum::body::to_bytes(b, 100).await.ok(),
            None => None,
        };
        assert_eq!(rest.as_deref(), Some(&b"cdef"[..]));

        // Read to the end: nothing held, and polling again is just the end.
        let h = held(&[b"xy"]);
        let mut r = relay(h.clone());
        assert!(r.frame().await.is_some());
        assert!(r.frame().await.is_none());
        assert!(r.frame().await.is_none(), "polled past its end");
        drain(&mut r).await;
        assert!(h.lock().await.is_none());
    }
}
