//! Extractors of the WeCom face, whose every failure is a WeCom error:
//! the calling app (from `?access_token=`), JSON bodies (SDKs often send
//! them without a content type), query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::errors::{WeErr, code, err, invalid};
use crate::apps::tokens::{self, TokenError};
use crate::audit::{ActorKind, Origin};
use crate::domain::{self, App, Corp, Scope};
use crate::http::{S, now_ms};

/// The app behind a valid access token.
#[derive(Debug, Clone)]
pub struct AppCall {
    pub app: App,
    pub corp: Corp,
    /// For the audit record of what the app does.
    pub origin: Origin,
}

impl AppCall {
    /// WeCom's 48002 unless the app holds `scope`.
    pub fn need(&self, scope: Scope) -> Result<(), WeErr> {
        if self.app.allows(scope) {
            Ok(())
        } else {
            Err(err(
                code::FORBIDDEN,
                format!(
                    "api forbidden: app {} ({}) lacks the scope {}",
                    self.app.agentid,
                    self.app.name,
                    scope.as_str()
                ),
            ))
        }
    }
}

/// Where the app extractor leaves who called, for the call's audit
/// record (see `wecom::audit_calls`).
#[derive(Debug, Clone, Default)]
pub struct CallSlot(pub std::sync::Arc<std::sync::Mutex<Option<(String, String)>>>);

/// A query parameter by name, percent-decoded.
pub fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    form_pairs(q)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` pairs (also a query string).
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

impl FromRequestParts<S> for AppCall {
    type Rejection = WeErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WeErr> {
        let Some(token) = query_param(parts, "access_token").filter(|t| !t.is_empty()) else {
            return Err(err(code::MISSING_TOKEN, "access_token missing"));
        };
        let mut view = state.view();
        let mut corp = domain::query::corp(&view).map_err(crate::http::store_error)?;
        if corp.is_none() && state.cluster.read_barrier().await.is_ok() {
            view = state.view();
            corp = domain::query::corp(&view).map_err(crate::http::store_error)?;
        }
        let corp = corp.ok_or_else(|| {
            err(
                code::INVALID_TOKEN,
                "invalid access_token (no apps are registered)",
            )
        })?;
        let claims = tokens::open(&corp, &token).map_err(token_error)?;
        let mut app =
            domain::query::app(&view, claims.agentid).map_err(crate::http::store_error)?;
        if app
            .as_ref()
            .is_none_or(|a| a.generation < claims.generation)
            && state.cluster.read_barrier().await.is_ok()
        {
            // The token was issued by a node that knows more than this
            // one yet (a new app, a rotated secret): catch up, look again.
            app = domain::query::app(&state.view(), claims.agentid)
                .map_err(crate::http::store_error)?;
        }
        let app =
            app.ok_or_else(|| err(code::INVALID_TOKEN, "invalid access_token (no such app)"))?;
        tokens::check(&app, &claims, now_ms()).map_err(token_error)?;
        if let Some(slot) = parts.extensions.get::<CallSlot>() {
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((app.agentid.to_string(), app.name.clone()));
        }
        if !state.limits.apps.take(app.agentid) {
            state.metrics.rate_limited("app");
            return Err(err(
                code::RATE_LIMITED,
                format!(
                    "api freq out of limit: more than {} requests/s for app {} on this node",
                    state.limits.apps.rate, app.agentid
                ),
            ));
        }
        let origin = crate::http::origin(
            &parts.extensions,
            ActorKind::App,
            &app.agentid.to_string(),
            &app.name,
            &state.node_id,
        );
        Ok(AppCall { app, corp, origin })
    }
}

fn token_error(e: TokenError) -> WeErr {
    match e {
        TokenError::Expired => err(code::EXPIRED_TOKEN, "access_token expired"),
        other => err(
            code::INVALID_TOKEN,
            format!("invalid access_token: {other}"),
        ),
    }
}

/// A JSON body. Malformed JSON is 47001; wrong types, missing or unknown
/// fields 40058 naming the field; an empty body 44002; too large 45002.
#[derive(Debug)]
pub struct WeJson<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequest<St> for WeJson<T> {
    type Rejection = WeErr;

    async fn from_request(req: Request, state: &St) -> Result<Self, WeErr> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                err(
                    code::TOO_LARGE,
                    "request body too large (api.max_body_bytes)",
                )
            } else {
                invalid(format!("reading the body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(err(code::EMPTY_POST, "empty post data"));
        }
        parse_json(&bytes).map(WeJson)
    }
}

/// Decode a JSON body with WeCom's error codes.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WeErr> {
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                err(code::JSON_FORMAT, format!("data format error: {e}"))
            }
            Category::Data => invalid(format!("invalid parameter: {e}")),
        }
    })
}

/// Query parameters (besides `access_token`, which the app extractor
/// reads); WeCom ignores parameters it does not know, and so do we.
#[derive(Debug)]
pub struct WeQuery<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequestParts<St> for WeQuery<T> {
    type Rejection = WeErr;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, WeErr> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| WeQuery(v))
            .map_err(|e| invalid(format!("invalid parameter: {}", e.body_text())))
    }
}
