//! Integrated apps on the admin port (sysadmin changes, any operator
//! reads): register an app, enable or disable it, rotate its secret, set
//! its scopes, trusted sign-in domains and event callback.
//!
//! A secret is generated here, shown once in the answer, and stored only
//! as its SHA-256. Setting a callback first runs WeCom's URL verification
//! handshake against it: a URL that does not answer it is refused.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::apps::crypto;
use crate::apps::tokens;
use crate::domain::{self, App, AppChange, CallbackCfg, Command, Done, Scope};
use crate::http::{ApiError, Body, S, store_error, submit};

fn agentid(s: &str) -> Result<u32, ApiError> {
    s.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not an agentid"),
        )
    })
}

fn scopes(list: &[String]) -> Result<Vec<Scope>, ApiError> {
    list.iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!(
                        "unknown scope {s:?}; scopes are {}",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// An app as operators see it (never its secret).
fn app_json(state: &S, a: &App) -> Result<Value, ApiError> {
    let view = state.view();
    let st = domain::query::callback_state(&view, a.agentid).map_err(store_error)?;
    let corp = domain::query::corp(&view).map_err(store_error)?;
    Ok(json!({
        "corpid": corp.map(|c| c.corpid).unwrap_or_default(),
        "agentid": a.agentid,
        "name": a.name,
        "enabled": a.enabled,
        "scopes": a.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "trusted_domains": a.trusted_domains,
        "secret_generation": a.generation,
        "created_ms": a.created_ms,
        "callback": a.callback.as_ref().map(|c| json!({
            // The token and key are secrets: shown masked.
            "url": c.url,
            "token": mask(&c.token),
            "aes_key": mask(&c.aes_key),
        })),
        "callback_status": {
            "queued": st.next.saturating_sub(1).saturating_sub(st.acked),
            "delivered": st.delivered,
            "dropped": st.dropped,
            "failures": st.failures,
            "last_error": st.last_error,
            "last_error_ms": st.last_error_ms,
            "last_ok_ms": st.last_ok_ms,
        },
    }))
}

fn mask(s: &str) -> String {
    let head: String = s.chars().take(3).collect();
    format!("{head}…")
}

fn app_of(done: Done) -> Result<App, ApiError> {
    match done {
        Done::App(a) => Ok(a),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

fn no_randomness() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no_randomness",
        "the system has no randomness",
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReq {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub trusted_domains: Vec<String>,
}

/// `POST /v1/apps`: register; the answer carries the secret, once.
pub async fn create(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<CreateReq>,
) -> Result<Json<Value>, ApiError> {
    let scopes = scopes(&req.scopes)?;
    let (secret, secret_hash) = tokens::new_secret().ok_or_else(no_randomness)?;
    let corp = tokens::new_corp().ok_or_else(no_randomness)?;
    let cmd = Command::CreateApp {
        name: req.name,
        scopes,
        secret_hash,
        trusted_domains: req.trusted_domains,
        corp,
    };
    let app = app_of(submit(&state, &op.0, &cmd, None).await?)?;
    let mut v = app_json(&state, &app)?;
    v["secret"] = json!(secret);
    Ok(Json(v))
}

/// `GET /v1/apps`
pub async fn list(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let apps = domain::query::apps(&state.view()).map_err(store_error)?;
    let list = apps
        .iter()
        .map(|a| app_json(&state, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "apps": list })))
}

/// The app; one created through another node a moment ago is found too
/// (an operator's tool may reach any node), so a 404 means the cluster has
/// no such app.
async fn load(state: &S, id: u32) -> Result<App, ApiError> {
    crate::http::find_or_catch_up(state, |st| {
        domain::query::app(&st.view(), id).map_err(store_error)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no app {id}")))
}

/// `GET /v1/apps/{agentid}`
pub async fn show(State(state): State<S>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let app = load(&state, agentid(&id)?).await?;
    Ok(Json(app_json(&state, &app)?))
}

async fn change(
    state: &S,
    op: &OperatorOrigin,
    id: u32,
    change: AppChange,
) -> Result<App, ApiError> {
    app_of(
        submit(
            state,
            &op.0,
            &Command::UpdateApp {
                agentid: id,
                change,
            },
            None,
        )
        .await?,
    )
}

/// `POST /v1/apps/{agentid}/enable`
pub async fn enable(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let app = change(&state, &op, agentid(&id)?, AppChange::Enable(true)).await?;
    Ok(Json(app_json(&state, &app)?))
}

/// `POST /v1/apps/{agentid}/disable`: its tokens stop working at once.
pub async fn disable(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let app = change(&state, &op, agentid(&id)?, AppChange::Enable(false)).await?;
    Ok(Json(app_json(&state, &app)?))
}

/// `POST /v1/apps/{agentid}/rotate-secret`: a new secret (shown once);
/// the old one and every token issued with it stop working.
pub async fn rotate_secret(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (secret, secret_hash) = tokens::new_secret().ok_or_else(no_randomness)?;
    let app = change(
        &state,
        &op,
        agentid(&id)?,
        AppChange::RotateSecret { secret_hash },
    )
    .await?;
    let mut v = app_json(&state, &app)?;
    v["secret"] = json!(secret);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesReq {
    pub scopes: Vec<String>,
}

/// `PUT /v1/apps/{agentid}/scopes`
pub async fn set_scopes(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<ScopesReq>,
) -> Result<Json<Value>, ApiError> {
    let app = change(
        &state,
        &op,
        agentid(&id)?,
        AppChange::SetScopes(scopes(&req.scopes)?),
    )
    .await?;
    Ok(Json(app_json(&state, &app)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainsReq {
    pub trusted_domains: Vec<String>,
}

/// `PUT /v1/apps/{agentid}/trusted-domains`
pub async fn set_domains(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<DomainsReq>,
) -> Result<Json<Value>, ApiError> {
    let app = change(
        &state,
        &op,
        agentid(&id)?,
        AppChange::SetTrustedDomains(req.trusted_domains),
    )
    .await?;
    Ok(Json(app_json(&state, &app)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackReq {
    pub url: String,
    /// Generated if absent.
    pub token: Option<String>,
    /// Generated if absent.
    pub aes_key: Option<String>,
}

/// `PUT /v1/apps/{agentid}/callback`: check the URL (https, internal
/// network, WeCom's echostr handshake), then set it. The answer shows
/// the token and key once (generated ones included).
pub async fn set_callback(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<CallbackReq>,
) -> Result<Json<Value>, ApiError> {
    let id = agentid(&id)?;
    load(&state, id).await?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_callback", m);
    let token = match req.token {
        Some(t) => t,
        None => {
            let k = crypto::generate_aes_key().map_err(|_| no_randomness())?;
            k.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(24)
                .collect()
        }
    };
    let aes_key = match req.aes_key {
        Some(k) => k,
        None => crypto::generate_aes_key().map_err(|_| no_randomness())?,
    };
    let cfg = CallbackCfg {
        url: req.url,
        token,
        aes_key,
    };
    domain::apply::valid_callback(&cfg).map_err(|r| bad(r.message))?;
    let corp = domain::query::corp(&state.view())
        .map_err(store_error)?
        .ok_or_else(|| bad("no enterprise identity yet".into()))?;
    state
        .delivery
        .verify(&cfg, &corp.corpid)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "callback_unverified",
                e.to_string(),
            )
        })?;
    let app = change(&state, &op, id, AppChange::SetCallback(Some(cfg.clone()))).await?;
    let mut v = app_json(&state, &app)?;
    v["callback"] = json!({ "url": cfg.url, "token": cfg.token, "aes_key": cfg.aes_key });
    Ok(Json(v))
}

/// `DELETE /v1/apps/{agentid}/callback`: stop callbacks (the queue is
/// dropped).
pub async fn clear_callback(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let app = change(&state, &op, agentid(&id)?, AppChange::SetCallback(None)).await?;
    Ok(Json(app_json(&state, &app)?))
}
