//! The WeCom-compatible face (`/cgi-bin/...`, `/connect/oauth2/...`) on
//! the api port: what integrations written against WeCom's server API
//! (wechatpy, WxJava, Go SDKs) call, mapped onto the same directory and
//! messaging core. Integrations change only the base URL and trust the
//! cluster CA.
//!
//! Every answer is HTTP 200 with `errcode`/`errmsg` ([`errors`]); the app
//! is identified by `?access_token=` ([`extract::AppCall`]) and limited to
//! its scopes; what it changes is recorded in the audit trail as actor
//! kind `app`. Every route is listed once in [`routes`] and checked
//! against docs/api/wecom-compat.md by a test.

pub mod batch;
pub mod directory;
pub mod errors;
pub mod externalcontact;
pub mod extract;
pub mod groupchat;
pub mod message;
pub mod oa;
pub mod oauth;
pub mod token;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};

use crate::domain::{Command, Done, Outcome};
use crate::http::{S, write_app};
use crate::messaging::encode_domain;
use errors::{Family, WeErr, refusal};
use extract::AppCall;

/// Every route of this face: (method, path, handler).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<S>)> {
    vec![
        ("get", "/cgi-bin/gettoken", get(token::gettoken)),
        (
            "post",
            "/cgi-bin/department/create",
            post(directory::dept_create),
        ),
        (
            "post",
            "/cgi-bin/department/update",
            post(directory::dept_update),
        ),
        (
            "get",
            "/cgi-bin/department/delete",
            get(directory::dept_delete),
        ),
        ("get", "/cgi-bin/department/list", get(directory::dept_list)),
        (
            "get",
            "/cgi-bin/department/simplelist",
            get(directory::dept_simplelist),
        ),
        ("get", "/cgi-bin/department/get", get(directory::dept_get)),
        ("post", "/cgi-bin/user/create", post(directory::user_create)),
        ("get", "/cgi-bin/user/get", get(directory::user_get)),
        ("post", "/cgi-bin/user/update", post(directory::user_update)),
        ("get", "/cgi-bin/user/delete", get(directory::user_delete)),
        (
            "post",
            "/cgi-bin/user/batchdelete",
            post(directory::user_batchdelete),
        ),
        (
            "get",
            "/cgi-bin/user/simplelist",
            get(directory::user_simplelist),
        ),
        ("get", "/cgi-bin/user/list", get(directory::user_list)),
        (
            "post",
            "/cgi-bin/user/list_id",
            post(directory::user_list_id),
        ),
        ("post", "/cgi-bin/media/upload", post(batch::media_upload)),
        ("get", "/cgi-bin/media/get", get(batch::media_get)),
        ("post", "/cgi-bin/batch/syncuser", post(batch::syncuser)),
        (
            "post",
            "/cgi-bin/batch/replaceuser",
            post(batch::replaceuser),
        ),
        (
            "post",
            "/cgi-bin/batch/replaceparty",
            post(batch::replaceparty),
        ),
        ("get", "/cgi-bin/batch/getresult", get(batch::getresult)),
        ("post", "/cgi-bin/message/send", post(message::send)),
        ("post", "/cgi-bin/message/recall", post(message::recall)),
        (
            "post",
            "/cgi-bin/appchat/create",
            post(message::chat_create),
        ),
        (
            "post",
            "/cgi-bin/appchat/update",
            post(message::chat_update),
        ),
        ("get", "/cgi-bin/appchat/get", get(message::chat_get)),
        ("post", "/cgi-bin/appchat/send", post(message::chat_send)),
        ("get", "/cgi-bin/auth/getuserinfo", get(oauth::getuserinfo)),
        ("post", "/cgi-bin/oa/applyevent", post(oa::applyevent)),
        (
            "post",
            "/cgi-bin/oa/getapprovalinfo",
            post(oa::getapprovalinfo),
        ),
        (
            "post",
            "/cgi-bin/oa/getapprovaldetail",
            post(oa::getapprovaldetail),
        ),
        (
            "get",
            "/cgi-bin/externalcontact/list",
            get(externalcontact::list),
        ),
        (
            "get",
            "/cgi-bin/externalcontact/get",
            get(externalcontact::get),
        ),
        (
            "get",
            "/cgi-bin/externalcontact/get_follow_user_list",
            get(externalcontact::get_follow_user_list),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/get_unassigned_list",
            post(externalcontact::get_unassigned_list),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/transfer_customer",
            post(externalcontact::transfer_customer),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/transfer_result",
            post(externalcontact::transfer_result),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/resigned/transfer_customer",
            post(externalcontact::resigned_transfer_customer),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/resigned/transfer_result",
            post(externalcontact::transfer_result),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/transfer",
            post(externalcontact::transfer),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/groupchat/list",
            post(groupchat::groupchat_list),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/groupchat/get",
            post(groupchat::groupchat_get),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/groupchat/transfer",
            post(groupchat::groupchat_transfer),
        ),
        (
            "post",
            "/cgi-bin/externalcontact/groupchat/onjob_transfer",
            post(groupchat::groupchat_onjob_transfer),
        ),
        (
            "get",
            "/cgi-bin/user/getuserinfo",
            get(oauth::getuserinfo_legacy),
        ),
        ("get", "/connect/oauth2/authorize", get(oauth::authorize)),
        ("post", "/connect/oauth2/authorize", post(oauth::login)),
        ("get", "/connect/oauth2/login.css", get(oauth::stylesheet)),
    ]
}

/// The face's router (merged into the api port's). Uploads may be larger
/// than other bodies. Every app call is counted for the audit trail.
pub fn router(state: S) -> Router<S> {
    let max_body = state.config.max_body_bytes;
    let mut r = Router::new();
    for (_, path, handler) in routes() {
        let handler = if path == "/cgi-bin/media/upload" {
            handler.layer(DefaultBodyLimit::max(batch::MAX_UPLOAD_BODY))
        } else {
            handler.layer(DefaultBodyLimit::max(max_body))
        };
        r = r.route(path, handler);
    }
    r.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        audit_calls,
    ))
    .layer(axum::middleware::from_fn_with_state(state, admit))
}

/// The node's request bound, refusing in WeCom's dialect (-1, system busy)
/// before the call is audited: a refused call did nothing.
async fn admit(
    axum::extract::State(state): axum::extract::State<S>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    crate::http::admission::admit_with(&state, req, next, |e| {
        axum::response::IntoResponse::into_response(errors::WeErr::from(e))
    })
    .await
}

/// Attribute every call to its app: counted per (app, route, errcode) and
/// written to the audit trail as aggregated `app.call` records (48002
/// refusals as `authz.denied`) with the admin port's denials, every 30 s
/// and before any audit read. What a call changes is recorded on its own,
/// in the same apply as the change.
async fn audit_calls(
    axum::extract::State(state): axum::extract::State<S>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let slot = extract::CallSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let resp = next.run(req).await;
    let who = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((agentid, name)) = who {
        let code = resp
            .extensions()
            .get::<errors::Errcode>()
            .map_or(0, |c| c.0);
        state.note_app_call(&agentid, &name, &format!("{method} {route} {code}"));
    }
    resp
}

/// Propose a domain command on behalf of the app; a refusal comes back in
/// WeCom's terms for `family`.
pub async fn propose(
    state: &S,
    call: &AppCall,
    cmd: &Command,
    family: Family,
) -> Result<Done, WeErr> {
    crate::lifecycle::gate(state, cmd)?;
    let outcome: Outcome = write_app(state, encode_domain(&call.origin, cmd), None).await?;
    outcome.map_err(|r| refusal(r, family))
}

pub const COMPAT_DOC: &str = include_str!("../../../docs/api/wecom-compat.md");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// docs/api/wecom-compat.md lists exactly the routes served.
    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let mut documented = BTreeSet::new();
        for line in super::COMPAT_DOC.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [_, method @ ("GET" | "POST"), path, ..] = cells[..] {
                let path = path.trim_matches('`');
                if path.starts_with('/') {
                    documented.insert((method.to_lowercase(), path.to_string()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<_> = served.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "not in wecom-compat.md: {missing:?}");
        assert!(stale.is_empty(), "documented but not served: {stale:?}");
    }
}
