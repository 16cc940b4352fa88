//! Login, logout, token refresh, password change.
//!
//! Passwords are checked (argon2id) on the node that received the request,
//! off the async runtime; only the outcome goes through the log
//! (`LoginSucceeded` with the *hashes* of the new tokens, or
//! `LoginFailed`), so every node agrees on sessions and lockouts.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use enclave_cluster::listener::ConnInfo;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::audit::ActorKind;
use crate::domain::{self, Command};
use crate::http::accounts::{
    Tokens, check_password_rules, hash_password, open_session, password_login, token_hash,
    verify_password,
};
use crate::http::{ApiError, Body, S, store_error, submit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    pub userid: String,
    pub password: String,
}

fn tokens_json(t: Tokens) -> Json<Value> {
    Json(json!({
        "userid": t.userid,
        "access_token": t.access,
        "expires_at_ms": t.expires_ms,
        "refresh_token": t.refresh,
        "refresh_expires_at_ms": t.refresh_expires_ms,
        "must_change_password": t.must_change,
    }))
}

/// `POST /v1/login`
pub async fn login(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    ext: http::Extensions,
    Body(req): Body<LoginReq>,
) -> Result<Json<Value>, ApiError> {
    let origin = crate::http::origin(&ext, ActorKind::User, &req.userid, "member", &state.node_id);
    password_login(&state, &origin, conn.remote.ip(), &req.userid, req.password)
        .await
        .inspect_err(|e| {
            if e.status == StatusCode::TOO_MANY_REQUESTS {
                state.metrics.rate_limited("login_source");
            }
        })
        .map(tokens_json)
}

/// `POST /v1/logout`: revoke the caller's token (and its refresh token).
pub async fn logout(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &caller.origin,
        &Command::Logout {
            token_hash: caller.token_hash,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "logged_out" })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshReq {
    pub refresh_token: String,
}

/// `POST /v1/token/refresh`: a used refresh token is spent; the old access
/// token is revoked and a new pair returned.
pub async fn refresh(
    State(state): State<S>,
    ext: http::Extensions,
    Body(req): Body<RefreshReq>,
) -> Result<Json<Value>, ApiError> {
    if req.refresh_token.is_empty() || req.refresh_token.len() > 256 {
        return Err(ApiError::unauthenticated("malformed refresh token"));
    }
    // The refresh token names no user until it is checked in apply.
    let origin = crate::http::origin(&ext, ActorKind::User, "", "member", &state.node_id);
    let refresh_hash = token_hash(&req.refresh_token);
    open_session(&state, &origin, |new_token_hash, new_refresh_hash| {
        Command::Refresh {
            refresh_hash,
            new_token_hash,
            new_refresh_hash,
        }
    })
    .await
    .map(tokens_json)
}

/// `GET /v1/me`
pub async fn me(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let (m, _) = domain::external::party(&view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::unauthenticated("the account is gone"))?;
    let must_change = domain::query::account(&view, &caller.userid)
        .map_err(store_error)?
        .is_some_and(|a| a.must_change);
    Ok(Json(json!({
        "member": crate::http::views::member_json(&m),
        "session_expires_at_ms": caller.session.expires_ms,
        "must_change_password": must_change,
        "external": caller.external,
        "sync_head": domain::query::head(&view).map_err(store_error)?,
        "permissions": domain::query::permissions_of(&view, &caller.userid)
            .map_err(store_error)?
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordReq {
    pub old_password: String,
    pub new_password: String,
}

/// `POST /v1/me/password`: other sessions are revoked, this one is kept.
pub async fn change_password(
    State(state): State<S>,
    caller: Caller,
    Body(req): Body<ChangePasswordReq>,
) -> Result<Json<Value>, ApiError> {
    check_password_rules(&req.new_password)?;
    let stored = domain::query::account(&state.view(), &caller.userid)
        .map_err(store_error)?
        .and_then(|a| a.password_hash);
    if req.old_password.len() > 1024 || !verify_password(&state, req.old_password, stored).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the old password is wrong",
        ));
    }
    let hash = hash_password(&state, req.new_password).await?;
    submit(
        &state,
        &caller.origin,
        &Command::ChangePassword {
            userid: caller.userid.clone(),
            password_hash: hash,
            keep_session: caller.token_hash,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "changed" })))
}

/// The cluster's nodes as a client reaches them (`https://host:port` of
/// each api port), so a client can fail over when its node goes away. The
/// node answering is first; members whose api address is a wildcard are
/// left out.
pub async fn nodes(State(state): State<S>, _caller: Caller) -> Json<Value> {
    let me = state.cluster.id;
    let mut members = state.cluster.members();
    members.sort_by_key(|(id, _)| (*id != me, *id));
    let nodes: Vec<Value> = members
        .into_iter()
        .filter_map(|(_, m)| {
            let origin = crate::http::assets::api_origin(&m.api)?;
            Some(json!({ "id": m.name, "api_url": format!("https://{origin}") }))
        })
        .collect();
    Json(json!({ "nodes": nodes }))
}
