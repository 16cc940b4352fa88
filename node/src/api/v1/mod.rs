//! The client API under `/v1`: login, directory reads, conversations,
//! messages, receipts, sync and the live stream. JSON over HTTPS, one error
//! shape, cursor pagination, body limits, per-token rate limits.
//!
//! Every route is listed once in [`ROUTES`]; the router is built from that
//! table and a test checks it against `docs/api/openapi.json`.

pub mod announcements;
pub mod approvals;
pub mod auth;
pub mod conversations;
pub mod directory;
pub mod external;
pub mod files;
pub mod notices;
pub mod stream;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use http::StatusCode;

use crate::domain::{self, Session};
use crate::http::accounts::token_hash;
use crate::http::{ApiError, S, now_ms, store_error};

/// Every `/v1` route of the api port: (method, path, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<S>)> {
    vec![
        ("post", "/v1/login", post(auth::login)),
        ("post", "/v1/logout", post(auth::logout)),
        ("post", "/v1/token/refresh", post(auth::refresh)),
        ("get", "/v1/me", get(auth::me)),
        ("post", "/v1/me/password", post(auth::change_password)),
        ("get", "/v1/nodes", get(auth::nodes)),
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
        ("post", "/v1/notices", post(notices::send)),
        ("get", "/v1/notices", get(notices::list)),
        ("post", "/v1/notices/delivered", post(notices::delivered)),
        ("get", "/v1/notices/{id}", get(notices::show)),
        (
            "get",
            "/v1/notices/{id}/recipients",
            get(notices::recipients),
        ),
        (
            "get",
            "/v1/notices/{id}/escalation",
            get(notices::escalation),
        ),
        ("post", "/v1/notices/{id}/ack", post(notices::ack)),
        ("post", "/v1/notices/{id}/read", post(notices::read)),
        ("post", "/v1/notices/{id}/withdraw", post(notices::withdraw)),
        ("post", "/v1/announcements", post(announcements::publish)),
        ("get", "/v1/announcements", get(announcements::list)),
        ("get", "/v1/announcements/{id}", get(announcements::show)),
        (
            "post",
            "/v1/announcements/{id}/read",
            post(announcements::read),
        ),
        (
            "get",
            "/v1/announcements/{id}/readers",
            get(announcements::readers),
        ),
        (
            "get",
            "/v1/announcements/{id}/readers.csv",
            get(announcements::readers_export),
        ),
        (
            "post",
            "/v1/announcements/{id}/withdraw",
            post(announcements::withdraw),
        ),
        ("get", "/v1/approvals/templates", get(approvals::templates)),
        ("post", "/v1/approvals", post(approvals::file)),
        ("get", "/v1/approvals", get(approvals::list)),
        ("get", "/v1/approvals/{id}", get(approvals::show)),
        (
            "post",
            "/v1/approvals/{id}/approve",
            post(approvals::approve),
        ),
        ("post", "/v1/approvals/{id}/reject", post(approvals::reject)),
        (
            "post",
            "/v1/approvals/{id}/comment",
            post(approvals::comment),
        ),
        (
            "post",
            "/v1/approvals/{id}/withdraw",
            post(approvals::withdraw),
        ),
        ("post", "/v1/files", post(files::upload_whole)),
        ("get", "/v1/files/{id}", get(files::download)),
        ("get", "/v1/files/{id}/info", get(files::info)),
        ("get", "/v1/files/{id}/thumbnail", get(files::thumbnail)),
        ("post", "/v1/uploads", post(files::upload_start)),
        ("get", "/v1/uploads/{id}", get(files::upload_status)),
        ("delete", "/v1/uploads/{id}", delete(files::upload_cancel)),
        (
            "put",
            "/v1/uploads/{id}/chunks/{index}",
            put(files::upload_chunk),
        ),
        (
            "post",
            "/v1/uploads/{id}/finish",
            post(files::upload_finish),
        ),
        ("post", "/v1/external/invitations", post(external::invite)),
        (
            "get",
            "/v1/external/invitations/{code}",
            get(external::invitation),
        ),
        ("post", "/v1/external/accept", post(external::accept)),
        ("get", "/v1/external/contacts", get(external::contacts)),
        ("get", "/v1/external/groups", get(external::groups)),
        ("post", "/v1/external/groups", post(external::create_group)),
        (
            "get",
            "/v1/external/groups/{conv}/auto-replies",
            get(external::auto_replies),
        ),
        (
            "put",
            "/v1/external/groups/{conv}/auto-replies",
            put(external::set_auto_replies),
        ),
        ("post", "/v1/external/transfers", post(external::transfer)),
        ("get", "/v1/external/transfers", get(external::transfers)),
        (
            "get",
            "/v1/external/transfers/{id}",
            get(external::show_transfer),
        ),
        (
            "post",
            "/v1/external/transfers/{id}/cancel",
            post(external::cancel_transfer),
        ),
        (
            "post",
            "/v1/external/transfers/{id}/object",
            post(external::object_transfer),
        ),
        (
            "get",
            "/v1/external/supervision",
            get(external::supervision),
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

/// The authenticated member behind a bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub userid: String,
    pub token_hash: [u8; 32],
    pub session: Session,
    /// An external account (a contact from outside the organization):
    /// no directory, no internal groups, only its own conversations.
    pub external: bool,
    /// For the audit record of what the caller does.
    pub origin: crate::audit::Origin,
}

impl Caller {
    /// Refuse an external account: 403 `external_account`.
    pub fn employee_only(&self, what: &str) -> Result<(), ApiError> {
        if self.external {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "external_account",
                format!("external accounts cannot {what}"),
            ));
        }
        Ok(())
    }
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
        let external = match domain::external::party(&view, &session.userid).map_err(store_error)? {
            Some((m, external)) if m.status == domain::MemberStatus::Active => external,
            _ => return Err(ApiError::unauthenticated("the account is not active")),
        };
        state
            .limits
            .check_token(&hash)
            .inspect_err(|_| state.metrics.rate_limited("token"))?;
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
            external,
        })
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
