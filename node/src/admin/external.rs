//! External contacts for operators: the unassigned list of departed
//! employees' contacts and customer groups, hand-over (离职继承 and
//! 在职继承), transfers and their cancellation, external accounts and
//! their disabling, the policy, and supervision figures per department.
//! `enclavectl external …` drives these; docs/operator/external.md.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::api::v1::external::{
    day_range, external_json, submit_transfer, supervision_rows, transfer_json,
};
use crate::domain::{self, Command, ExternalPolicy};
use crate::http::{ApiError, Body, Params, S, page_limit, store_error, submit};

fn transfer_id(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a transfer id"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/external/unassigned?cursor=&limit=`: departed employees whose
/// contacts or customer groups wait for a new owner.
pub async fn unassigned(
    State(state): State<S>,
    Params(q): Params<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    let list =
        domain::external::unassigned(&view, q.cursor.as_deref(), limit).map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|u| u.employee.clone()))
        .flatten();
    let mut out = Vec::new();
    for u in &list {
        let mut contacts = Vec::new();
        for x in &u.externals {
            if let Some(e) = domain::external::external(&view, x).map_err(store_error)? {
                contacts.push(json!({ "userid": e.userid, "name": e.name, "org": e.org }));
            }
        }
        let mut groups = Vec::new();
        for g in &u.groups {
            if let Some(c) = domain::query::conversation(&view, g).map_err(store_error)? {
                groups.push(json!({ "id": c.id, "name": c.name, "member_count": c.member_count }));
            }
        }
        let name = domain::query::member(&view, &u.employee)
            .map_err(store_error)?
            .map(|m| m.name);
        out.push(json!({
            "employee": u.employee,
            "name": name,
            "departed_ms": u.departed_ms,
            "contacts": contacts,
            "groups": groups,
        }));
    }
    Ok(Json(json!({ "unassigned": out, "next_cursor": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    pub from: String,
    pub to: String,
    /// External userids; omit both lists with `all: true` for everything
    /// `from` has.
    #[serde(default)]
    pub externals: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub message: String,
}

/// `POST /v1/external/transfers` (sysadmin): hand contacts and customer
/// groups of `from` to `to`. Immediate for a departed employee; after the
/// objection window for an active one.
pub async fn transfer(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<TransferReq>,
) -> Result<Json<Value>, ApiError> {
    let (mut externals, mut groups) = (req.externals, req.groups);
    if req.all {
        if !externals.is_empty() || !groups.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "give either all: true or externals/groups, not both",
            ));
        }
        let view = state.view();
        externals = domain::external::contacts_of(&view, &req.from)
            .map_err(store_error)?
            .into_iter()
            .map(|(x, _)| x)
            .collect();
        groups = domain::external::customer_groups_of(&view, &req.from)
            .map_err(store_error)?
            .into_iter()
            .filter(|c| !c.dissolved && c.owner == req.from)
            .map(|c| c.id)
            .collect();
    }
    submit_transfer(
        &state,
        &op.0,
        Command::TransferContacts {
            actor: None,
            from: req.from,
            to: req.to,
            externals,
            groups,
            message: req.message,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransfersQuery {
    pub from: Option<String>,
    /// The last id of the previous page.
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/external/transfers?from=&cursor=&limit=`: newest first.
pub async fn transfers(
    State(state): State<S>,
    Params(q): Params<TransfersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    let view = state.view();
    let list = domain::external::transfers(&view, q.from.as_deref(), q.cursor, limit)
        .map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|t| t.id))
        .flatten();
    Ok(Json(json!({
        "transfers": list.iter().map(transfer_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /v1/external/transfers/{id}`
pub async fn show_transfer(
    State(state): State<S>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = transfer_id(&id)?;
    let t = domain::external::transfer(&state.view(), id)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no transfer {id}")))?;
    Ok(Json(transfer_json(&t)))
}

/// `POST /v1/external/transfers/{id}/cancel` (sysadmin): before the
/// window ends.
pub async fn cancel_transfer(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = transfer_id(&id)?;
    submit_transfer(&state, &op.0, Command::CancelTransfer { actor: None, id }).await
}

/// `GET /v1/external/accounts?cursor=&limit=`
pub async fn accounts(
    State(state): State<S>,
    Params(q): Params<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    let list =
        domain::external::externals(&view, q.cursor.as_deref(), limit).map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|e| e.userid.clone()))
        .flatten();
    let mut out = Vec::new();
    for e in &list {
        let mut v = external_json(e);
        v["served_by"] =
            json!(domain::external::servers_of(&view, &e.userid).map_err(store_error)?);
        out.push(v);
    }
    Ok(Json(json!({ "accounts": out, "next_cursor": next })))
}

/// `GET /v1/external/accounts/{userid}`
pub async fn account(
    State(state): State<S>,
    Path(userid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let e = domain::external::external(&view, &userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no external account {userid:?}")))?;
    let mut v = external_json(&e);
    v["served_by"] = json!(domain::external::servers_of(&view, &userid).map_err(store_error)?);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableReq {
    pub disabled: bool,
}

/// `PUT /v1/external/accounts/{userid}/disabled` (sysadmin): a disabled
/// account cannot log in and its sessions end.
pub async fn set_disabled(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(req): Body<DisableReq>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::SetExternalDisabled {
            userid: userid.clone(),
            disabled: req.disabled,
        },
        None,
    )
    .await?;
    account(State(state), Path(userid)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployeeQuery {
    pub employee: String,
}

/// `GET /v1/external/contacts?employee=`: whom an employee serves.
pub async fn contacts(
    State(state): State<S>,
    Params(q): Params<EmployeeQuery>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let mut out = Vec::new();
    for (x, c) in domain::external::contacts_of(&view, &q.employee).map_err(store_error)? {
        if let Some(e) = domain::external::external(&view, &x).map_err(store_error)? {
            let mut v = external_json(&e);
            v["conversation"] = json!(c.conv);
            v["since_ms"] = json!(c.since_ms);
            v["previous"] = json!(c.previous);
            out.push(v);
        }
    }
    let groups: Vec<Value> = domain::external::customer_groups_of(&view, &q.employee)
        .map_err(store_error)?
        .iter()
        .filter(|c| !c.dissolved && c.owner == q.employee)
        .map(|c| json!({ "id": c.id, "name": c.name, "member_count": c.member_count }))
        .collect();
    Ok(Json(
        json!({ "employee": q.employee, "contacts": out, "groups": groups }),
    ))
}

/// `GET /v1/policy/external`
pub async fn get_policy(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let p = domain::external::policy(&state.view()).map_err(store_error)?;
    Ok(Json(json!(p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyReq {
    pub max_contacts_per_employee: Option<u32>,
    pub max_customer_group_members: Option<u32>,
    pub invitation_ttl_ms: Option<u64>,
    pub transfer_window_ms: Option<u64>,
}

/// `PUT /v1/policy/external` (secadmin): fields given change, others stay.
pub async fn put_policy(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<PolicyReq>,
) -> Result<Json<Value>, ApiError> {
    let old = domain::external::policy(&state.view()).map_err(store_error)?;
    let policy = ExternalPolicy {
        max_contacts_per_employee: req
            .max_contacts_per_employee
            .unwrap_or(old.max_contacts_per_employee),
        max_customer_group_members: req
            .max_customer_group_members
            .unwrap_or(old.max_customer_group_members),
        invitation_ttl_ms: req.invitation_ttl_ms.unwrap_or(old.invitation_ttl_ms),
        transfer_window_ms: req.transfer_window_ms.unwrap_or(old.transfer_window_ms),
    };
    submit(
        &state,
        &op.0,
        &Command::SetExternalPolicy {
            policy: policy.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!(policy)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionQuery {
    pub department: u64,
    pub from_day: Option<u32>,
    pub to_day: Option<u32>,
}

/// `GET /v1/external/supervision?department=&from_day=&to_day=`
pub async fn supervision(
    State(state): State<S>,
    Params(q): Params<SupervisionQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = day_range(q.from_day, q.to_day)?;
    let view = state.view();
    domain::query::department(&view, q.department)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no department {}", q.department)))?;
    let rows = supervision_rows(&view, q.department, from, to)?;
    Ok(Json(json!({
        "department": q.department, "from_day": from, "to_day": to, "members": rows,
    })))
}
