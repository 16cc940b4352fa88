//! Approvals (审批): templates to fill in, filing, the lists (mine,
//! waiting for me, done, copied to me), a request with its trail, and
//! approve / reject / comment / withdraw. The rules are in
//! `domain/apply/approvals.rs` and docs/api/README.md.

use axum::Json;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Caller;
use super::announcements::unexpected;
use crate::domain::{self, ApprovalAction, Command, Done, keys};
use crate::http::extract::{KeyScope, PathArgs};
use crate::http::office::{approval_json, template_json};
use crate::http::{
    ApiError, Body, Params, S, header_key, page_limit, scoped_key, store_error, submit,
};

/// `GET /v1/approvals/templates`: the templates a member can file against.
pub async fn templates(State(state): State<S>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let list: Vec<Value> = domain::query::approval_templates(&view)
        .map_err(store_error)?
        .iter()
        .filter(|t| !t.disabled)
        .map(template_json)
        .collect();
    Ok(Json(json!({ "templates": list })))
}

/// A submitted value as the text the domain checks: strings as they are,
/// numbers as written, a date range `{"start", "end"}` as `start/end`.
pub fn raw_values(values: Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in values {
        let raw = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Object(o) => match (o.get("start"), o.get("end"), o.len()) {
                (Some(Value::String(a)), Some(Value::String(b)), 2) => format!("{a}/{b}"),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_argument",
                        format!(
                            "values.{k}: a date range is {{\"start\": \"YYYY-MM-DD\", \"end\": \"YYYY-MM-DD\"}}"
                        ),
                    ));
                }
            },
            Value::Null => continue,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    format!("values.{k}: give a string, a number or a date range object"),
                ));
            }
        };
        out.push((k, raw));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitReq {
    pub template: String,
    #[serde(default)]
    pub values: Map<String, Value>,
}

/// `POST /v1/approvals {"template", "values": {key: value}}`.
pub async fn file(
    State(state): State<S>,
    caller: Caller,
    headers: HeaderMap,
    Body(req): Body<SubmitReq>,
) -> Result<Json<Value>, ApiError> {
    let key = scoped_key(
        &caller.userid,
        KeyScope::Approval,
        header_key(&headers)?.as_deref(),
    )?;
    let values = raw_values(req.values)?;
    let done = submit(
        &state,
        &caller.origin,
        &Command::SubmitApproval {
            actor: caller.userid.clone(),
            template: req.template,
            values,
            route: None,
        },
        key,
    )
    .await?;
    match done {
        Done::Approval(r) => Ok(Json(approval_json(&state.view(), &r)?)),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// mine (default), waiting, done, cc.
    #[serde(rename = "box")]
    pub which: Option<String>,
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/approvals?box=mine|waiting|done|cc&cursor=&limit=`: newest
/// first.
pub async fn list(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 200)?;
    let which = crate::http::choose(
        "box",
        q.which.as_deref(),
        &[
            ("mine", keys::APPROVALS_MINE),
            ("waiting", keys::APPROVALS_WAITING),
            ("done", keys::APPROVALS_DONE),
            ("cc", keys::APPROVALS_CC),
        ],
    )?;
    let view = state.view();
    let list = domain::query::approvals_of(&view, which, &caller.userid, q.cursor, limit)
        .map_err(store_error)?;
    let mut out = Vec::new();
    for r in &list {
        out.push(approval_json(&view, r)?);
    }
    let next = (list.len() == limit)
        .then(|| list.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({ "approvals": out, "next_cursor": next })))
}

/// `GET /v1/approvals/{id}`: applicant, approvers (past and present) and
/// CCs.
pub async fn show(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let r = domain::query::approval(&view, id)
        .map_err(store_error)?
        .filter(|r| r.involves(&caller.userid))
        .ok_or_else(|| ApiError::not_found(format!("no approval request {id}")))?;
    Ok(Json(approval_json(&view, &r)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActReq {
    /// The step (1-based) the actor saw; refused if it has moved on.
    #[serde(default)]
    pub step: Option<u32>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

async fn act(
    state: &S,
    caller: &Caller,
    id: u64,
    step: Option<u32>,
    action: ApprovalAction,
) -> Result<Json<Value>, ApiError> {
    if step == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "step counts from 1",
        ));
    }
    let done = submit(
        state,
        &caller.origin,
        &Command::ActOnApproval {
            actor: caller.userid.clone(),
            id,
            step: step.map(|s| s - 1),
            action,
        },
        None,
    )
    .await?;
    match done {
        Done::Approval(r) => Ok(Json(approval_json(&state.view(), &r)?)),
        _ => Err(unexpected()),
    }
}

/// `POST /v1/approvals/{id}/approve {"step"?, "comment"?}`
pub async fn approve(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Body(req): Body<ActReq>,
) -> Result<Json<Value>, ApiError> {
    let comment = req.comment.unwrap_or_default();
    act(
        &state,
        &caller,
        id,
        req.step,
        ApprovalAction::Approve { comment },
    )
    .await
}

/// `POST /v1/approvals/{id}/reject {"step"?, "reason"}`
pub async fn reject(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Body(req): Body<ActReq>,
) -> Result<Json<Value>, ApiError> {
    let reason = req.reason.unwrap_or_default();
    act(
        &state,
        &caller,
        id,
        req.step,
        ApprovalAction::Reject { reason },
    )
    .await
}

/// `POST /v1/approvals/{id}/comment {"text"}`
pub async fn comment(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Body(req): Body<ActReq>,
) -> Result<Json<Value>, ApiError> {
    let text = req.text.unwrap_or_default();
    act(&state, &caller, id, None, ApprovalAction::Comment { text }).await
}

/// `POST /v1/approvals/{id}/withdraw` (the applicant, while pending).
pub async fn withdraw(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    act(&state, &caller, id, None, ApprovalAction::Withdraw).await
}
