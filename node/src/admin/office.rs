//! Announcements and approvals for operators. The sysadmin (and the
//! auditor) see every announcement with its read statistics and export
//! who has read it; the sysadmin withdraws one published by mistake,
//! defines approval templates and exports finished approvals as CSV.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::domain::{self, Command, Done};
use crate::http::office::{
    TemplateReq, announcement_json, approval_json, approvals_csv, readers_csv, readers_page,
    template_from, template_json,
};
use crate::http::{ApiError, Body, Params, S, now_ms, page_limit, store_error, submit};

fn id_of(s: &str, what: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not {what} id"),
        )
    })
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected",
        "unexpected outcome",
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The last id of the previous page.
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/announcements?cursor=&limit=`: every announcement, newest
/// first, with its statistics.
pub async fn announcements(
    State(state): State<S>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    let view = state.view();
    let list = domain::query::announcements_all(&view, q.cursor, limit).map_err(store_error)?;
    let now = now_ms();
    let mut out = Vec::new();
    for a in &list {
        out.push(announcement_json(&view, a, false, true, now)?);
    }
    let next = (list.len() == limit)
        .then(|| list.last().map(|a| a.id))
        .flatten();
    Ok(Json(json!({ "announcements": out, "next_cursor": next })))
}

fn announcement(state: &S, id: &str) -> Result<domain::Announcement, ApiError> {
    let id = id_of(id, "an announcement")?;
    domain::query::announcement(&state.view(), id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no announcement {id}")))
}

/// `GET /v1/announcements/{id}`
pub async fn announcement_show(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = announcement(&state, &id)?;
    Ok(Json(announcement_json(
        &state.view(),
        &a,
        true,
        true,
        now_ms(),
    )?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadersQuery {
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/announcements/{id}/readers?state=all|read|unread|late`
pub async fn announcement_readers(
    State(state): State<S>,
    Path(id): Path<String>,
    Params(q): Params<ReadersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let a = announcement(&state, &id)?;
    Ok(Json(readers_page(
        &state.view(),
        a.id,
        q.state.as_deref(),
        q.cursor.as_deref(),
        limit,
    )?))
}

/// `GET /v1/announcements/{id}/readers.csv`
pub async fn announcement_export(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let a = announcement(&state, &id)?;
    readers_csv(&state.view(), &a)
}

/// `POST /v1/announcements/{id}/withdraw` (sysadmin).
pub async fn announcement_withdraw(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id_of(&id, "an announcement")?;
    let done = submit(
        &state,
        &op.0,
        &Command::WithdrawAnnouncement { actor: None, id },
        None,
    )
    .await?;
    match done {
        Done::Announcement(a) => Ok(Json(announcement_json(
            &state.view(),
            &a,
            false,
            true,
            now_ms(),
        )?)),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/approvals/templates`: every template, disabled ones too.
pub async fn templates(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = domain::query::approval_templates(&state.view())
        .map_err(store_error)?
        .iter()
        .map(template_json)
        .collect();
    Ok(Json(json!({ "templates": list })))
}

/// `PUT /v1/approvals/templates/{id}` (sysadmin): create or replace.
pub async fn put_template(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<TemplateReq>,
) -> Result<Json<Value>, ApiError> {
    let template = template_from(&id, req)?;
    let done = submit(
        &state,
        &op.0,
        &Command::PutApprovalTemplate { template },
        None,
    )
    .await?;
    match done {
        Done::ApprovalTemplate(t) => Ok(Json(template_json(&t))),
        _ => Err(unexpected()),
    }
}

async fn set_disabled(
    state: &S,
    op: &OperatorOrigin,
    id: String,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    let done = submit(
        state,
        &op.0,
        &Command::SetApprovalTemplateDisabled { id, disabled },
        None,
    )
    .await?;
    match done {
        Done::ApprovalTemplate(t) => Ok(Json(template_json(&t))),
        _ => Err(unexpected()),
    }
}

/// `POST /v1/approvals/templates/{id}/disable` (sysadmin): no new
/// requests; those filed go on.
pub async fn disable_template(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&state, &op, id, true).await
}

/// `POST /v1/approvals/templates/{id}/enable` (sysadmin).
pub async fn enable_template(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&state, &op, id, false).await
}

/// `GET /v1/approvals/{id}`: any request with its trail.
pub async fn approval(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id_of(&id, "an approval request")?;
    let view = state.view();
    let r = domain::query::approval(&view, id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no approval request {id}")))?;
    Ok(Json(approval_json(&view, &r)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Finished at or after (ms since the epoch; default 0).
    pub from_ms: Option<u64>,
    /// Finished at or before (default: now).
    pub to_ms: Option<u64>,
    pub template: Option<String>,
}

/// `GET /v1/approvals/export.csv?from_ms=&to_ms=&template=` (sysadmin):
/// finished approvals, oldest first.
pub async fn export(
    State(state): State<S>,
    Params(q): Params<ExportQuery>,
) -> Result<Response, ApiError> {
    let from = q.from_ms.unwrap_or(0);
    let to = q.to_ms.unwrap_or(u64::MAX);
    if from > to {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("from_ms ({from}) is after to_ms ({to})"),
        ));
    }
    approvals_csv(&state.view(), from, to, q.template.as_deref())
}
