//! Directory administration on the admin port (sysadmin): departments,
//! members, passwords, lockouts; the messaging policy (secadmin).
//! Administrators manage the directory; nothing here reads conversations.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperatorOrigin;
use crate::domain::{
    self, Command, Department, Done, Member, MemberPatch, MemberStatus, Permission, Policy,
};
use crate::http::accounts::{check_password_rules, hash_password};
use crate::http::views::member_json;
use crate::http::{ApiError, Body, Params, S, page_limit, store_error, submit};

fn dept_id(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a department id (a positive integer)"),
        )
    })
}

/// `GET /v1/directory/departments`
pub async fn departments(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let d = domain::query::departments(&state.view()).map_err(store_error)?;
    Ok(Json(json!({ "departments": d })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptReq {
    /// Parent department; absent only for the root (id 1).
    pub parent: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub leaders: Vec<String>,
}

/// `PUT /v1/directory/departments/{id}`: create, rename or move.
pub async fn put_department(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<DeptReq>,
) -> Result<Json<Value>, ApiError> {
    let dept = Department {
        id: dept_id(&id)?,
        parent: req.parent,
        name: req.name,
        order: req.order,
        leaders: req.leaders,
    };
    match submit(&state, &op.0, &Command::UpsertDepartment { dept }, None).await? {
        Done::Department(d) => Ok(Json(json!(d))),
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

/// `DELETE /v1/directory/departments/{id}`: only an empty department.
pub async fn delete_department(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = dept_id(&id)?;
    submit(&state, &op.0, &Command::DeleteDepartment { id }, None).await?;
    Ok(Json(json!({ "status": "deleted", "id": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMemberReq {
    pub userid: String,
    pub name: String,
    pub departments: Vec<u64>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub mobile: String,
    /// Initial password; the member must change it at first login.
    pub password: Option<String>,
}

fn member_done(done: Done) -> Result<Json<Value>, ApiError> {
    match done {
        Done::Member(m) => Ok(Json(member_json(&m))),
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

/// `POST /v1/directory/members`
pub async fn create_member(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<CreateMemberReq>,
) -> Result<Json<Value>, ApiError> {
    let password_hash = match req.password {
        Some(p) => {
            check_password_rules(&p)?;
            Some(hash_password(&state, p).await?)
        }
        None => None,
    };
    let member = Member {
        userid: req.userid,
        name: req.name,
        departments: req.departments,
        title: req.title,
        email: req.email,
        mobile: req.mobile,
        status: MemberStatus::Active,
    };
    member_done(
        submit(
            &state,
            &op.0,
            &Command::CreateMember {
                member,
                password_hash,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only members of this department (not its sub-departments).
    pub department: Option<u64>,
    /// Members whose name, full pinyin or pinyin initials start with this.
    pub q: Option<String>,
    /// The last userid of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/directory/members?department=&q=&cursor=&limit=` (operators):
/// the whole directory, whatever the employees' visibility policy, with
/// every member's status (departed members included).
pub async fn list_members(
    State(state): State<S>,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    let (list, next) = crate::http::views::member_page(
        &view,
        q.q.as_deref(),
        q.department,
        q.cursor.as_deref(),
        limit,
    )?;
    let out: Vec<Value> = list.iter().map(member_json).collect();
    Ok(Json(json!({ "members": out, "next_cursor": next })))
}

/// `GET /v1/directory/members/{userid}`
pub async fn get_member(
    State(state): State<S>,
    Path(userid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let m = domain::query::member(&view, &userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no member {userid:?}")))?;
    let acct = domain::query::account(&view, &userid)
        .map_err(store_error)?
        .unwrap_or_default();
    let mut v = member_json(&m);
    v["has_password"] = json!(acct.password_hash.is_some());
    v["permissions"] = json!(
        domain::query::permissions_of(&view, &userid)
            .map_err(store_error)?
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
    );
    v["locked_until_ms"] = json!(acct.locked_until_ms);
    v["failed_logins"] = json!(acct.failed_logins);
    Ok(Json(v))
}

/// `PATCH /v1/directory/members/{userid}`
pub async fn update_member(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(patch): Body<MemberPatchReq>,
) -> Result<Json<Value>, ApiError> {
    let patch = MemberPatch {
        name: patch.name,
        departments: patch.departments,
        title: patch.title,
        email: patch.email,
        mobile: patch.mobile,
    };
    member_done(
        submit(
            &state,
            &op.0,
            &Command::UpdateMember { userid, patch },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatchReq {
    pub name: Option<String>,
    pub departments: Option<Vec<u64>>,
    pub title: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReq {
    pub status: MemberStatus,
}

/// `PUT /v1/directory/members/{userid}/status`: active, disabled or
/// departed. Disabling or departing revokes every session at once.
pub async fn set_status(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(req): Body<StatusReq>,
) -> Result<Json<Value>, ApiError> {
    member_done(
        submit(
            &state,
            &op.0,
            &Command::SetMemberStatus {
                userid,
                status: req.status,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReq {
    pub password: String,
}

/// `PUT /v1/directory/members/{userid}/password`: set or reset; the member
/// must change it at next login, and their sessions are revoked.
pub async fn set_password(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(req): Body<PasswordReq>,
) -> Result<Json<Value>, ApiError> {
    check_password_rules(&req.password)?;
    let password_hash = hash_password(&state, req.password).await?;
    submit(
        &state,
        &op.0,
        &Command::SetPassword {
            userid: userid.clone(),
            password_hash,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "password_set", "userid": userid })))
}

/// `POST /v1/directory/members/{userid}/unlock`: lift a login lockout.
pub async fn unlock(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::UnlockAccount {
            userid: userid.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "unlocked", "userid": userid })))
}

fn permission(p: &str) -> Result<Permission, ApiError> {
    Permission::parse(p).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!(
                "unknown permission {p:?} (known: {})",
                Permission::ALL.map(Permission::as_str).join(", ")
            ),
        )
    })
}

async fn set_permission(
    state: &S,
    op: &OperatorOrigin,
    userid: String,
    perm: &str,
    granted: bool,
) -> Result<Json<Value>, ApiError> {
    let permission = permission(perm)?;
    submit(
        state,
        &op.0,
        &Command::SetPermission {
            userid: userid.clone(),
            permission,
            granted,
        },
        None,
    )
    .await?;
    Ok(Json(json!({
        "userid": userid,
        "permission": permission.as_str(),
        "granted": granted,
    })))
}

/// `PUT /v1/directory/members/{userid}/permissions/{perm}` (sysadmin).
pub async fn grant_permission(
    State(state): State<S>,
    op: OperatorOrigin,
    Path((userid, perm)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_permission(&state, &op, userid, &perm, true).await
}

/// `DELETE /v1/directory/members/{userid}/permissions/{perm}` (sysadmin).
pub async fn revoke_permission(
    State(state): State<S>,
    op: OperatorOrigin,
    Path((userid, perm)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_permission(&state, &op, userid, &perm, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldersQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/permissions/{perm}?cursor=&limit=` (operators): who holds it.
pub async fn permission_holders(
    State(state): State<S>,
    Path(perm): Path<String>,
    Params(q): Params<HoldersQuery>,
) -> Result<Json<Value>, ApiError> {
    let permission = permission(&perm)?;
    let limit = page_limit(q.limit, 100, 1000)?;
    let holders =
        domain::query::permission_holders(&state.view(), permission, q.cursor.as_deref(), limit)
            .map_err(store_error)?;
    let next = (holders.len() == limit)
        .then(|| holders.last().cloned())
        .flatten();
    Ok(Json(json!({
        "permission": permission.as_str(),
        "holders": holders,
        "next_cursor": next,
    })))
}

/// `GET /v1/policy`
pub async fn get_policy(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let p = domain::apply::policy(&state.view()).map_err(store_error)?;
    Ok(Json(json!(p)))
}

/// `PUT /v1/policy` (secadmin): limits, lockout, session lifetimes,
/// directory visibility — the same on every node.
pub async fn put_policy(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(policy): Body<Policy>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::SetPolicy {
            policy: policy.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!(policy)))
}

/// `GET /v1/policy/notices` (operators): who besides `notice:urgent`
/// holders may send urgent notices.
pub async fn get_notice_policy(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let p: domain::NoticePolicy =
        domain::query::notice_policy(&state.view()).map_err(store_error)?;
    Ok(Json(json!(p)))
}

/// `PUT /v1/policy/notices` (secadmin).
pub async fn put_notice_policy(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(policy): Body<domain::NoticePolicy>,
) -> Result<Json<Value>, ApiError> {
    submit(&state, &op.0, &Command::SetNoticePolicy { policy }, None).await?;
    Ok(Json(json!(policy)))
}
