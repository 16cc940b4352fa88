//! Urgent notices for operators: the sysadmin (and the auditor) can list
//! every notice, see its counts and who has not acknowledged; the sysadmin
//! can withdraw one (e.g. a notice sent to everyone by mistake).

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::domain::{self, Command, Done};
use crate::http::views::{mark_json, notice_json, recipient_filter};
use crate::http::{ApiError, Params, S, page_limit, store_error, submit};

fn notice_id(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a notice id"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The last id of the previous page.
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/notices?cursor=&limit=`: every notice, newest first.
pub async fn list(
    State(state): State<S>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    let view = state.view();
    let newest = domain::query::notice_count(&view).map_err(store_error)?;
    let top = q.cursor.map_or(newest, |c| c.saturating_sub(1).min(newest));
    let mut out = Vec::new();
    let mut id = top;
    while id > 0 && out.len() < limit {
        if let Some(n) = domain::query::notice(&view, id).map_err(store_error)? {
            out.push(notice_json(&n));
        }
        id -= 1;
    }
    let next = (id > 0).then_some(id + 1);
    Ok(Json(json!({ "notices": out, "next_cursor": next })))
}

/// `GET /v1/notices/{id}`: the notice with its body, counts and schedule.
pub async fn show(State(state): State<S>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = notice_id(&id)?;
    let view = state.view();
    let n = domain::query::notice(&view, id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no notice {id}")))?;
    let mut v = notice_json(&n);
    v["body"] = json!(
        domain::query::notice_card(&view, &n)
            .map_err(store_error)?
            .body
    );
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientsQuery {
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/notices/{id}/recipients?state=&cursor=&limit=`
pub async fn recipients(
    State(state): State<S>,
    Path(id): Path<String>,
    Params(q): Params<RecipientsQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = notice_id(&id)?;
    let filter = recipient_filter(q.state.as_deref())?;
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    domain::query::notice(&view, id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no notice {id}")))?;
    let (list, next) =
        domain::query::notice_recipients(&view, id, filter, q.cursor.as_deref(), limit, 10_000)
            .map_err(store_error)?;
    let out: Vec<Value> = list
        .iter()
        .map(|(u, r)| {
            let mut v = mark_json(r);
            v["userid"] = json!(u);
            v
        })
        .collect();
    Ok(Json(json!({ "recipients": out, "next_cursor": next })))
}

/// `POST /v1/notices/{id}/withdraw` (sysadmin): as if the sender had.
pub async fn withdraw(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = notice_id(&id)?;
    let done = submit(
        &state,
        &op.0,
        &Command::WithdrawNotice { actor: None, id },
        None,
    )
    .await?;
    state.runner_wake.notify_one();
    match done {
        Done::Notice(n) => Ok(Json(notice_json(&n))),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            "unexpected outcome",
        )),
    }
}
