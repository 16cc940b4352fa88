//! The web UI: static files built from `web/` (TypeScript) and committed
//! as `web/dist/`, embedded in the binary at compile time, so a node needs
//! neither Node.js nor files beside it. The api port serves the employees'
//! client (`/`), the admin port the administrators' console (`/`); both
//! serve `/assets/*`.
//!
//! Every answer carries the browser protections: a strict Content Security
//! Policy (scripts and styles only from the node itself, nothing inline,
//! no framing), HSTS, `nosniff`, no referrer. The client may talk to the
//! cluster's other nodes (it fails over to them), so `connect-src` lists
//! their api origins, read from the current membership.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use include_dir::{Dir, include_dir};

use super::{ApiError, S};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../web/dist");

/// Which page `/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The employees' web client (api port).
    Client,
    /// The administrators' console (admin port).
    Console,
}

impl Page {
    fn file(self) -> &'static str {
        match self {
            Page::Client => "index.html",
            Page::Console => "console.html",
        }
    }
}

/// The routes of one page: `/`, `/index.html` or `/console.html`, and
/// `/assets/*`.
pub fn routes(page: Page) -> Router<S> {
    let root = get(
        move |State(state): State<S>, headers: http::HeaderMap| async move {
            html(&state, page, &headers)
        },
    );
    Router::new()
        .route("/", root.clone())
        .route(&format!("/{}", page.file()), root)
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/assets/{*path}",
            get(
                move |State(state): State<S>,
                      Path(path): Path<String>,
                      headers: http::HeaderMap| async move {
                    asset(&state, page, &path, &headers)
                },
            ),
        )
}

/// Whether the client takes gzip (`Accept-Encoding`, without `q=0`).
fn takes_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or_default().trim();
            let refused = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// A file of the build as the client takes it: its gzip copy (written by
/// `web/scripts/precompress.mjs`) when there is one and the client
/// accepts gzip, else the file itself.
fn respond(path: &str, headers: &http::HeaderMap) -> Option<Response> {
    let plain = DIST.get_file(path)?;
    let gz = takes_gzip(headers)
        .then(|| DIST.get_file(format!("{path}.gz")))
        .flatten();
    let mut r = match gz {
        Some(g) => {
            let mut r = g.contents().into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => plain.contents().into_response(),
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(r)
}

fn html(state: &S, page: Page, headers: &http::HeaderMap) -> Response {
    match respond(page.file(), headers) {
        Some(mut r) => {
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            protect(h, &csp(state, page));
            r
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this build has no web UI (web/dist was empty when it was compiled)",
        )
        .into_response(),
    }
}

fn asset(state: &S, page: Page, path: &str, headers: &http::HeaderMap) -> Response {
    // `.gz` copies are served only through `Accept-Encoding`.
    let file = (!path.contains("..") && !path.ends_with(".gz"))
        .then(|| respond(&format!("assets/{path}"), headers));
    match file.flatten() {
        Some(mut r) => {
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(path)));
            // File names carry a hash of their content.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            protect(h, &csp(state, page));
            r
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no asset /assets/{path}"),
        )
        .into_response(),
    }
}

fn mime(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The Content Security Policy of a page. The client may connect to every
/// node's api port (REST and WebSocket) for failover; the console talks
/// only to its own node.
pub fn csp(state: &S, page: Page) -> String {
    let mut connect = String::from("'self'");
    if page == Page::Client {
        for (_, m) in state.cluster.members() {
            if let Some(origin) = api_origin(&m.api) {
                connect.push_str(&format!(" https://{origin} wss://{origin}"));
            }
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob:; font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// A member's api address as an origin host (`host:port`), if it is one a
/// browser can use (not a wildcard listen address).
pub fn api_origin(api: &str) -> Option<String> {
    let addr: std::net::SocketAddr = api.parse().ok().or_else(|| {
        // `name:port`
        let (host, port) = api.rsplit_once(':')?;
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port: u16 = port.parse().ok()?;
        valid.then(|| std::net::SocketAddr::from(([0, 0, 0, 1], port)))
    })?;
    if addr.ip().is_unspecified() {
        return None;
    }
    Some(api.to_ascii_lowercase())
}

/// The headers every page and asset carries.
pub fn protect(h: &mut HeaderMap, csp: &str) {
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(self), geolocation=()"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_members() {
        assert_eq!(
            api_origin("127.0.0.1:8443").as_deref(),
            Some("127.0.0.1:8443")
        );
        assert_eq!(
            api_origin("Node-1.corp:8443").as_deref(),
            Some("node-1.corp:8443")
        );
        assert_eq!(api_origin("0.0.0.0:8443"), None);
        assert_eq!(api_origin("[::]:8443"), None);
        assert_eq!(api_origin("a b:1"), None);
        assert_eq!(api_origin("host"), None);
    }

    #[test]
    fn both_pages_are_embedded_without_inline_script() {
        for page in [Page::Client, Page::Console] {
            let f = DIST.get_file(page.file()).expect("page embedded");
            let text = std::str::from_utf8(f.contents()).expect("utf-8");
            // Every <script> has a src: nothing inline for the CSP to block.
            for tag in text.split("<script").skip(1) {
                let head = tag.split('>').next().unwrap_or("");
                assert!(head.contains("src="), "inline script in {}", page.file());
            }
            assert!(!text.contains("<style"), "inline style in {}", page.file());
        }
    }

    fn accept(v: &str) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        m.insert(header::ACCEPT_ENCODING, v.parse().expect("header"));
        m
    }

    #[test]
    fn gzip_only_when_the_client_takes_it() {
        assert!(takes_gzip(&accept("gzip, deflate, br, zstd")));
        assert!(takes_gzip(&accept("br;q=1.0, GZIP;q=0.5")));
        assert!(takes_gzip(&accept("*")));
        assert!(!takes_gzip(&accept("gzip;q=0")));
        assert!(!takes_gzip(&accept("br, deflate")));
        assert!(!takes_gzip(&http::HeaderMap::new()));
    }

    #[test]
    fn every_gzip_copy_is_the_file_compressed() {
        // The copies are made by the web build; a stale one would serve
        // another file's bytes. Check each names a file that exists and
        // starts with the gzip magic.
        fn walk(d: &'static Dir<'static>, out: &mut Vec<&'static include_dir::File<'static>>) {
            out.extend(d.files());
            for sub in d.dirs() {
                walk(sub, out);
            }
        }
        let mut files = Vec::new();
        walk(&DIST, &mut files);
        let gz: Vec<_> = files
            .iter()
            .filter(|f| f.path().to_string_lossy().ends_with(".gz"))
            .collect();
        assert!(!gz.is_empty(), "the build has gzip copies");
        for g in gz {
            let name = g.path().to_string_lossy();
            let plain = name.trim_end_matches(".gz");
            assert!(DIST.get_file(plain).is_some(), "{name} has no {plain}");
            assert_eq!(&g.contents()[..2], &[0x1f, 0x8b], "{name}");
        }
    }
}
