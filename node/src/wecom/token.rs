//! `GET /cgi-bin/gettoken?corpid=&corpsecret=`: an access token for the
//! app whose secret this is ([`crate::apps::tokens`]). No write to the
//! log per token; failed attempts count against the source address like
//! failed logins, and issuance is recorded in the audit trail.

use axum::Extension;
use axum::extract::State;
use enclave_cluster::listener::ConnInfo;
use serde::Deserialize;
use serde_json::json;

use super::errors::{WeResult, code, err, ok};
use super::extract::WeQuery;
use crate::apps::tokens;
use crate::audit::ActorKind;
use crate::domain;
use crate::http::{S, now_ms, store_error};

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    corpid: Option<String>,
    corpsecret: Option<String>,
}

/// `GET /cgi-bin/gettoken`
pub async fn gettoken(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    ext: http::Extensions,
    WeQuery(q): WeQuery<TokenQuery>,
) -> WeResult {
    let ip = conn.remote.ip();
    state.limits.check_source(ip).map_err(|e| {
        state.metrics.rate_limited("login_source");
        err(code::RATE_LIMITED, e.message)
    })?;
    let Some(corpid) = q.corpid.filter(|c| !c.is_empty()) else {
        return Err(err(code::MISSING_CORPID, "corpid missing"));
    };
    let Some(secret) = q.corpsecret.filter(|c| !c.is_empty()) else {
        return Err(err(code::MISSING_SECRET, "corpsecret missing"));
    };
    let mut view = state.view();
    let mut corp = domain::query::corp(&view).map_err(store_error)?;
    if corp.as_ref().is_none_or(|c| c.corpid != corpid)
        && state.cluster.read_barrier().await.is_ok()
    {
        // The first app may have been registered a moment ago through
        // another node: catch up with the leader, look again.
        view = state.view();
        corp = domain::query::corp(&view).map_err(store_error)?;
    }
    let Some(corp) = corp.filter(|c| c.corpid == corpid) else {
        state.limits.record_failure(ip);
        return Err(err(code::INVALID_CORPID, "invalid corpid"));
    };
    if secret.len() > 128 {
        state.limits.record_failure(ip);
        return Err(err(code::INVALID_SECRET, "invalid credential: corpsecret"));
    }
    // Looked up by SHA-256: the timing says nothing about the secret.
    let hash = tokens::secret_hash(&secret);
    let mut app = domain::query::app_by_secret(&view, &hash).map_err(store_error)?;
    if app.is_none() && state.cluster.read_barrier().await.is_ok() {
        // An app registered or a secret rotated a moment ago (through any
        // node) is not yet applied here: catch up, look again.
        view = state.view();
        app = domain::query::app_by_secret(&view, &hash).map_err(store_error)?;
    }
    let Some(app) = app else {
        state.limits.record_failure(ip);
        tracing::info!(source = %ip, "gettoken with an unknown secret");
        return Err(err(code::INVALID_SECRET, "invalid credential: corpsecret"));
    };
    if !app.enabled {
        return Err(err(
            code::INVALID_TOKEN,
            format!("app {} is disabled", app.agentid),
        ));
    }
    if !state.limits.apps.take(app.agentid) {
        state.metrics.rate_limited("app");
        return Err(err(code::RATE_LIMITED, "api freq out of limit"));
    }
    let ttl = state.config.apps.token_ttl_secs;
    let token = tokens::mint(&corp, &app, now_ms() + ttl * 1000);
    let origin = crate::http::origin(
        &ext,
        ActorKind::App,
        &app.agentid.to_string(),
        &app.name,
        &state.node_id,
    );
    crate::http::record(&state, &origin, "app.token", &app.agentid.to_string(), "ok").await;
    Ok(ok(json!({ "access_token": token, "expires_in": ttl })))
}
