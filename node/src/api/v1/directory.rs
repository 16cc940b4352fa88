//! Directory reads for members (通讯录). Changes are made by
//! administrators on the admin port (`admin/directory.rs`).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::domain;
use crate::http::extract::PathArgs;
use crate::http::views::member_json;
use crate::http::{ApiError, Params, S, page_limit, store_error};

/// `GET /v1/directory/departments`: the visible part of the tree.
pub async fn departments(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.employee_only("read the directory")?;
    let view = state.view();
    let me = domain::query::member(&view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::unauthenticated("the account is gone"))?;
    let visible = domain::query::visible_departments(&view, &me).map_err(store_error)?;
    let depts: Vec<_> = domain::query::departments(&view)
        .map_err(store_error)?
        .into_iter()
        .filter(|d| visible.as_ref().is_none_or(|v| v.contains(&d.id)))
        .collect();
    Ok(Json(json!({ "departments": depts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// Members of this department only.
    pub department: Option<u64>,
    /// Name prefix (case-insensitive).
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/directory/members?department=&q=&cursor=&limit=`
pub async fn members(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<MembersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    caller.employee_only("read the directory")?;
    let view = state.view();
    let me = domain::query::member(&view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::unauthenticated("the account is gone"))?;
    let visible = domain::query::visible_departments(&view, &me).map_err(store_error)?;
    let (list, next) = crate::http::views::member_page(
        &view,
        q.q.as_deref(),
        q.department,
        q.cursor.as_deref(),
        limit,
    )?;
    let out: Vec<Value> = list
        .iter()
        .filter(|m| domain::query::can_see(&visible, m))
        .map(member_json)
        .collect();
    Ok(Json(json!({ "members": out, "next_cursor": next })))
}

/// `GET /v1/directory/members/{userid}`
pub async fn member(
    State(state): State<S>,
    caller: Caller,
    PathArgs(userid): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    caller.employee_only("read the directory")?;
    let view = state.view();
    let me = domain::query::member(&view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::unauthenticated("the account is gone"))?;
    let visible = domain::query::visible_departments(&view, &me).map_err(store_error)?;
    match domain::query::member(&view, &userid).map_err(store_error)? {
        Some(m) if domain::query::can_see(&visible, &m) => Ok(Json(member_json(&m))),
        _ => Err(ApiError::not_found(format!("no member {userid:?}"))),
    }
}
