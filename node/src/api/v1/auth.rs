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
use crate::audit::{ActorKind, Origin};
use crate::domain::{self, Command, Done, MemberStatus};
use crate::http::accounts::{
    check_password_rules, hash_password, new_token, token_hash, verify_password,
};
use crate::http::{ApiError, Body, S, now_ms, store_error, submit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    pub userid: String,
    pub password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthenticated("wrong userid or password")
}

/// Make a fresh token pair, commit the session `command(access_hash,
/// refresh_hash)` opens, and answer with the pair. Used by login and refresh.
async fn issue_tokens(
    state: &S,
    origin: &Origin,
    command: impl FnOnce([u8; 32], [u8; 32]) -> Command,
) -> Result<Json<Value>, ApiError> {
    let access = new_token("eat_");
    let refresh = new_token("ert_");
    let done = submit(
        state,
        origin,
        &command(token_hash(&access), token_hash(&refresh)),
        None,
    )
    .await?;
    let Done::Session {
        userid,
        expires_ms,
        refresh_expires_ms,
    } = done
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            "unexpected outcome",
        ));
    };
    let must_change = domain::query::account(&state.view(), &userid)
        .map_err(store_error)?
        .is_some_and(|a| a.must_change);
    Ok(Json(json!({
        "userid": userid,
        "access_token": access,
        "expires_at_ms": expires_ms,
        "refresh_token": refresh,
        "refresh_expires_at_ms": refresh_expires_ms,
        "must_change_password": must_change,
    })))
}

/// `POST /v1/login`
pub async fn login(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    ext: http::Extensions,
    Body(req): Body<LoginReq>,
) -> Result<Json<Value>, ApiError> {
    let ip = conn.remote.ip();
    state.limits.check_source(ip)?;
    let origin = crate::http::origin(&ext, ActorKind::User, &req.userid, "member", &state.node_id);
    if domain::apply::valid_userid(&req.userid).is_err() || req.password.len() > 1024 {
        state.limits.record_failure(ip);
        return Err(invalid_credentials());
    }
    let view = state.view();
    let member = domain::query::member(&view, &req.userid).map_err(store_error)?;
    let account = domain::query::account(&view, &req.userid).map_err(store_error)?;
    if let Some(a) = &account
        && a.locked_until_ms > now_ms()
    {
        return Err(ApiError::new(
            StatusCode::LOCKED,
            "account_locked",
            format!(
                "too many failed logins; the account is locked for {} more s (an administrator can unlock it)",
                (a.locked_until_ms - now_ms()).div_ceil(1000)
            ),
        ));
    }
    let hash = account.and_then(|a| a.password_hash);
    let ok = verify_password(req.password, hash).await;
    if !ok {
        state.limits.record_failure(ip);
        if member.is_some() {
            submit(
                &state,
                &origin,
                &Command::LoginFailed {
                    userid: req.userid.clone(),
                },
                None,
            )
            .await?;
        }
        tracing::info!(userid = %req.userid, source = %ip, "login failed");
        return Err(invalid_credentials());
    }
    match member.map(|m| m.status) {
        Some(MemberStatus::Active) => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_inactive",
                "this account is disabled or has departed",
            ));
        }
    }
    let userid = req.userid.clone();
    let out = issue_tokens(&state, &origin, |token_hash, refresh_hash| {
        Command::LoginSucceeded {
            userid,
            token_hash,
            refresh_hash,
        }
    })
    .await;
    if out.is_ok() {
        tracing::info!(userid = %req.userid, source = %ip, "login succeeded");
    }
    out
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
    issue_tokens(&state, &origin, |new_token_hash, new_refresh_hash| {
        Command::Refresh {
            refresh_hash,
            new_token_hash,
            new_refresh_hash,
        }
    })
    .await
}

/// `GET /v1/me`
pub async fn me(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let m = domain::query::member(&view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::unauthenticated("the account is gone"))?;
    let must_change = domain::query::account(&view, &caller.userid)
        .map_err(store_error)?
        .is_some_and(|a| a.must_change);
    Ok(Json(json!({
        "member": crate::http::views::member_json(&m),
        "session_expires_at_ms": caller.session.expires_ms,
        "must_change_password": must_change,
        "sync_head": domain::query::head(&view).map_err(store_error)?,
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
    if req.old_password.len() > 1024 || !verify_password(req.old_password, stored).await {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the old password is wrong",
        ));
    }
    let hash = hash_password(req.new_password).await?;
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
