//! `department/*` and `user/*`: WeCom's directory calls on the same
//! departments and members the native API and `enclavectl directory` see.
//!
//! Differences from WeCom (docs/api/wecom-compat.md): a deleted member
//! departs (their history is kept, the userid is not reused); userids are
//! case-sensitive; mobile and email are not required to be unique;
//! `extattr`, `avatar_mediaid`, `direct_leader`, `to_invite` and a few
//! others are accepted and ignored.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::domain::{
    self, Command, DeptFields, Done, Member, MemberStatus, PutMode, ROOT_DEPARTMENT, Scope,
    UserFields,
};
use crate::http::{S, store_error};
use crate::messaging::ViewStore;

/// A number WeCom documents as a string (`"gender":"1"`) or an integer.
fn num_or_str<'de, D: Deserializer<'de>, T: std::str::FromStr + Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        N(T),
        S(String),
    }
    match Option::<Either<T>>::deserialize(d)? {
        None => Ok(None),
        Some(Either::N(n)) => Ok(Some(n)),
        Some(Either::S(s)) if s.is_empty() => Ok(None),
        Some(Either::S(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number"))),
    }
}

// ------------------------------------------------------------ departments

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptReq {
    #[serde(default, deserialize_with = "num_or_str")]
    id: Option<u64>,
    name: Option<String>,
    #[serde(default)]
    #[serde(rename = "name_en")]
    _name_en: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "num_or_str")]
    parentid: Option<u64>,
    #[serde(default, deserialize_with = "num_or_str")]
    order: Option<i64>,
}

fn dept_name_ok(name: &Option<String>) -> Result<(), WeErr> {
    if let Some(n) = name {
        let bad = n.trim().is_empty()
            || n.chars().count() > 64
            || n.chars()
                .any(|c| c.is_control() || "\\:*?\"<>|".contains(c));
        if bad {
            return Err(err(
                code::DEPT_NAME_INVALID,
                "department name must be 1-64 characters without \\:*?\"<>|",
            ));
        }
    }
    Ok(())
}

fn dept_exists(view: &ViewStore, id: u64) -> Result<bool, WeErr> {
    Ok(domain::query::department(view, id)
        .map_err(store_error)?
        .is_some())
}

/// `POST department/create`
pub async fn dept_create(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<DeptReq>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    if req.name.is_none() {
        return Err(invalid("name is required"));
    }
    dept_name_ok(&req.name)?;
    let view = state.view();
    let parent = req.parentid.unwrap_or(ROOT_DEPARTMENT);
    if !dept_exists(&view, parent)? {
        return Err(err(
            code::PARENT_NOT_FOUND,
            format!("parent department {parent} not found"),
        ));
    }
    let fields = DeptFields {
        id: req.id.filter(|i| *i > 0),
        parent: Some(parent),
        name: req.name,
        order: req.order,
    };
    match propose(
        &state,
        &call,
        &Command::PutDepartment {
            create: true,
            fields,
        },
        Family::Department,
    )
    .await?
    {
        Done::Department(d) => Ok(ok(json!({ "id": d.id }))),
        _ => Ok(ok(json!({}))),
    }
}

/// `POST department/update`
pub async fn dept_update(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<DeptReq>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    let Some(id) = req.id else {
        return Err(invalid("id is required"));
    };
    dept_name_ok(&req.name)?;
    let view = state.view();
    if !dept_exists(&view, id)? {
        return Err(err(
            code::DEPT_NOT_FOUND,
            format!("department {id} not found"),
        ));
    }
    if let Some(p) = req.parentid
        && !dept_exists(&view, p)?
    {
        return Err(err(
            code::PARENT_NOT_FOUND,
            format!("parent department {p} not found"),
        ));
    }
    let fields = DeptFields {
        id: Some(id),
        parent: req.parentid,
        name: req.name,
        order: req.order,
    };
    propose(
        &state,
        &call,
        &Command::PutDepartment {
            create: false,
            fields,
        },
        Family::Department,
    )
    .await?;
    Ok(ok(json!({})))
}

#[derive(Debug, Deserialize)]
pub struct IdQuery {
    #[serde(default, deserialize_with = "num_or_str")]
    id: Option<u64>,
}

/// `GET department/delete?id=`
pub async fn dept_delete(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<IdQuery>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    let Some(id) = q.id else {
        return Err(invalid("id is required"));
    };
    let view = state.view();
    if id == ROOT_DEPARTMENT {
        return Err(err(
            code::ROOT_UNDELETABLE,
            "the root department cannot be deleted",
        ));
    }
    if !dept_exists(&view, id)? {
        return Err(err(
            code::DEPT_NOT_FOUND,
            format!("department {id} not found"),
        ));
    }
    if domain::query::has_children(&view, id).map_err(store_error)? {
        return Err(err(
            code::DEPT_HAS_CHILDREN,
            format!("department {id} has sub-departments"),
        ));
    }
    propose(
        &state,
        &call,
        &Command::DeleteDepartment { id },
        Family::Department,
    )
    .await?;
    Ok(ok(json!({})))
}

fn dept_json(d: &domain::Department) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "name_en": "",
        "department_leader": d.leaders,
        "parentid": d.parent.unwrap_or(0),
        "order": d.order,
    })
}

/// The subtree under `id`, or everything.
fn depts(view: &ViewStore, id: Option<u64>) -> Result<Vec<domain::Department>, WeErr> {
    match id {
        Some(id) => {
            if !dept_exists(view, id)? {
                return Err(err(
                    code::DEPT_NOT_FOUND,
                    format!("department {id} not found"),
                ));
            }
            let mut v = domain::query::department_subtree(view, id).map_err(store_error)?;
            v.sort_by_key(|d| d.id);
            Ok(v)
        }
        None => Ok(domain::query::departments(view).map_err(store_error)?),
    }
}

/// `GET department/list?id=`
pub async fn dept_list(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<IdQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let list: Vec<Value> = depts(&state.view(), q.id)?.iter().map(dept_json).collect();
    Ok(ok(json!({ "department": list })))
}

/// `GET department/simplelist?id=`
pub async fn dept_simplelist(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<IdQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let list: Vec<Value> = depts(&state.view(), q.id)?
        .iter()
        .map(|d| json!({ "id": d.id, "parentid": d.parent.unwrap_or(0), "order": d.order }))
        .collect();
    Ok(ok(json!({ "department_id": list })))
}

/// `GET department/get?id=`
pub async fn dept_get(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<IdQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let Some(id) = q.id else {
        return Err(invalid("id is required"));
    };
    match domain::query::department(&state.view(), id).map_err(store_error)? {
        Some(d) => Ok(ok(json!({ "department": dept_json(&d) }))),
        None => Err(err(
            code::DEPT_NOT_FOUND,
            format!("department {id} not found"),
        )),
    }
}

// ------------------------------------------------------------------ users

/// `user/create` and `user/update` bodies. Fields WeCom documents but
/// Enclave does not keep are accepted and ignored; any other field is an
/// error naming it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserReq {
    userid: String,
    name: Option<String>,
    alias: Option<String>,
    mobile: Option<String>,
    department: Option<Vec<u64>>,
    order: Option<Vec<i64>>,
    position: Option<String>,
    #[serde(default, deserialize_with = "num_or_str")]
    gender: Option<u8>,
    email: Option<String>,
    telephone: Option<String>,
    address: Option<String>,
    is_leader_in_dept: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "num_or_str")]
    main_department: Option<u64>,
    #[serde(default, deserialize_with = "num_or_str")]
    enable: Option<u8>,
    /// Changing a userid is not supported (refused if different).
    new_userid: Option<String>,
    // Accepted and ignored:
    #[serde(default)]
    #[serde(rename = "biz_mail")]
    _biz_mail: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "direct_leader")]
    _direct_leader: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "avatar_mediaid")]
    _avatar_mediaid: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "extattr")]
    _extattr: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "to_invite")]
    _to_invite: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "external_position")]
    _external_position: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "external_profile")]
    _external_profile: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "english_name")]
    _english_name: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "weixinid")]
    _weixinid: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "tel")]
    _tel: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "isleader")]
    _isleader: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "hide_mobile")]
    _hide_mobile: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "nickname")]
    _nickname: Option<IgnoredAny>,
}

fn userid_ok(u: &str) -> Result<(), WeErr> {
    domain::apply::valid_userid(u).map_err(|r| err(code::INVALID_USERID, r.message))
}

fn user_fields(view: &ViewStore, req: UserReq) -> Result<UserFields, WeErr> {
    userid_ok(&req.userid)?;
    if let Some(n) = &req.new_userid
        && *n != req.userid
    {
        return Err(invalid("changing a userid (new_userid) is not supported"));
    }
    if let Some(n) = &req.name
        && domain::apply::valid_name(n, "name").is_err()
    {
        return Err(err(code::NAME_INVALID, "name must be 1-64 characters"));
    }
    if let Some(depts) = &req.department {
        if depts.is_empty() || depts.len() > 20 {
            return Err(invalid("a member belongs to 1-20 departments"));
        }
        for d in depts {
            if !dept_exists(view, *d)? {
                return Err(err(
                    code::DEPT_NOT_FOUND,
                    format!("department {d} not found"),
                ));
            }
        }
    }
    if req.gender.is_some_and(|g| g > 2) {
        return Err(invalid("gender must be 0, 1 or 2"));
    }
    Ok(UserFields {
        userid: req.userid,
        name: req.name,
        departments: req.department,
        orders: req.order,
        position: req.position,
        mobile: req.mobile,
        email: req.email,
        alias: req.alias,
        gender: req.gender,
        telephone: req.telephone,
        address: req.address,
        main_department: req.main_department,
        leader_in_dept: req
            .is_leader_in_dept
            .map(|v| v.iter().map(|x| *x != 0).collect()),
        enabled: req.enable.map(|e| e != 0),
    })
}

/// The member as integrations see it: departed members do not exist.
fn live_member(view: &ViewStore, userid: &str) -> Result<Member, WeErr> {
    match domain::query::member(view, userid).map_err(store_error)? {
        Some(m) if m.status != MemberStatus::Departed => Ok(m),
        _ => Err(err(
            code::USERID_NOT_FOUND,
            format!("userid {userid:?} not found"),
        )),
    }
}

/// `POST user/create`
pub async fn user_create(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<UserReq>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    if req.name.is_none() {
        return Err(err(code::NAME_INVALID, "name is required"));
    }
    let view = state.view();
    let fields = user_fields(&view, req)?;
    if domain::query::member(&view, &fields.userid)
        .map_err(store_error)?
        .is_some()
    {
        return Err(err(
            code::USERID_EXISTS,
            format!("userid {:?} exists", fields.userid),
        ));
    }
    let userid = fields.userid.clone();
    propose(
        &state,
        &call,
        &Command::PutUser {
            mode: PutMode::Create,
            fields,
        },
        Family::User,
    )
    .await?;
    Ok(ok(json!({ "created_userid": userid })))
}

/// `POST user/update`
pub async fn user_update(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<UserReq>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    let view = state.view();
    let fields = user_fields(&view, req)?;
    live_member(&view, &fields.userid)?;
    propose(
        &state,
        &call,
        &Command::PutUser {
            mode: PutMode::Update,
            fields,
        },
        Family::User,
    )
    .await?;
    Ok(ok(json!({})))
}

#[derive(Debug, Deserialize)]
pub struct UseridQuery {
    userid: Option<String>,
}

/// `GET user/get?userid=`
pub async fn user_get(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<UseridQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let Some(u) = q.userid else {
        return Err(invalid("userid is required"));
    };
    userid_ok(&u)?;
    let view = state.view();
    let m = live_member(&view, &u)?;
    Ok(ok(user_json(&view, &m)?))
}

/// A member in WeCom's shape.
fn user_json(view: &ViewStore, m: &Member) -> Result<Value, WeErr> {
    let p = domain::query::profile(view, &m.userid).map_err(store_error)?;
    let mut leader = Vec::new();
    for d in &m.departments {
        let lead = domain::query::department(view, *d)
            .map_err(store_error)?
            .is_some_and(|d| d.leaders.contains(&m.userid));
        leader.push(u8::from(lead));
    }
    let orders: Vec<i64> = (0..m.departments.len())
        .map(|i| p.orders.get(i).copied().unwrap_or(0))
        .collect();
    let main = if p.main_department != 0 {
        p.main_department
    } else {
        m.departments.first().copied().unwrap_or(ROOT_DEPARTMENT)
    };
    Ok(json!({
        "userid": m.userid,
        "name": m.name,
        "department": m.departments,
        "order": orders,
        "position": m.title,
        "mobile": m.mobile,
        "gender": p.gender.to_string(),
        "email": m.email,
        "is_leader_in_dept": leader,
        "direct_leader": [],
        "avatar": "",
        "thumb_avatar": "",
        "telephone": p.telephone,
        "alias": p.alias,
        "address": p.address,
        "main_department": main,
        "extattr": { "attrs": [] },
        "status": match m.status {
            MemberStatus::Active => 1,
            MemberStatus::Disabled => 2,
            MemberStatus::Departed => 5,
        },
        "qr_code": "",
        "external_position": "",
    }))
}

/// `GET user/delete?userid=`
pub async fn user_delete(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<UseridQuery>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    let Some(u) = q.userid else {
        return Err(invalid("userid is required"));
    };
    userid_ok(&u)?;
    live_member(&state.view(), &u)?;
    propose(
        &state,
        &call,
        &Command::DeleteUsers { userids: vec![u] },
        Family::User,
    )
    .await?;
    Ok(ok(json!({})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDeleteReq {
    useridlist: Vec<String>,
}

/// `POST user/batchdelete`: all or nothing.
pub async fn user_batchdelete(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<BatchDeleteReq>,
) -> WeResult {
    call.need(Scope::DirectoryWrite)?;
    if req.useridlist.is_empty() || req.useridlist.len() > domain::apply::MAX_BATCH_DELETE {
        return Err(invalid(format!(
            "useridlist must hold 1-{} userids",
            domain::apply::MAX_BATCH_DELETE
        )));
    }
    let view = state.view();
    for u in &req.useridlist {
        userid_ok(u)?;
        live_member(&view, u)?;
    }
    let mut ids = req.useridlist;
    ids.sort();
    ids.dedup();
    propose(
        &state,
        &call,
        &Command::DeleteUsers { userids: ids },
        Family::User,
    )
    .await?;
    Ok(ok(json!({})))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "num_or_str")]
    department_id: Option<u64>,
    #[serde(default, deserialize_with = "num_or_str")]
    fetch_child: Option<u8>,
    #[serde(default)]
    #[serde(rename = "status")]
    _status: Option<IgnoredAny>,
}

/// Members of a department (and its subtree with `fetch_child=1`).
fn list_members(view: &ViewStore, q: &ListQuery) -> Result<Vec<Member>, WeErr> {
    let Some(d) = q.department_id else {
        return Err(invalid("department_id is required"));
    };
    if !dept_exists(view, d)? {
        return Err(err(
            code::DEPT_NOT_FOUND,
            format!("department {d} not found"),
        ));
    }
    let ids: Vec<u64> = if q.fetch_child.unwrap_or(0) != 0 {
        domain::query::department_subtree(view, d)
            .map_err(store_error)?
            .iter()
            .map(|x| x.id)
            .collect()
    } else {
        vec![d]
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for id in ids {
        for m in
            domain::query::department_members(view, id, None, usize::MAX).map_err(store_error)?
        {
            if m.status != MemberStatus::Departed && seen.insert(m.userid.clone()) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// `GET user/simplelist?department_id=&fetch_child=`
pub async fn user_simplelist(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<ListQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let list: Vec<Value> = list_members(&state.view(), &q)?
        .iter()
        .map(|m| json!({ "userid": m.userid, "name": m.name, "department": m.departments }))
        .collect();
    Ok(ok(json!({ "userlist": list })))
}

/// `GET user/list?department_id=&fetch_child=`
pub async fn user_list(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<ListQuery>,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    let view = state.view();
    let mut list = Vec::new();
    for m in list_members(&view, &q)? {
        list.push(user_json(&view, &m)?);
    }
    Ok(ok(json!({ "userlist": list })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListIdReq {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    limit: Option<usize>,
}

/// `POST user/list_id`: every userid with its departments, paged by an
/// opaque cursor (the last userid, hex).
pub async fn user_list_id(
    State(state): State<S>,
    call: AppCall,
    body: axum::body::Bytes,
) -> WeResult {
    call.need(Scope::DirectoryRead)?;
    // The body is optional (all defaults).
    let req: ListIdReq = if body.iter().all(u8::is_ascii_whitespace) {
        ListIdReq {
            cursor: String::new(),
            limit: None,
        }
    } else {
        super::extract::parse_json(&body)?
    };
    let limit = req.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid("limit must be 1-10000"));
    }
    let after = if req.cursor.is_empty() {
        None
    } else {
        Some(
            hex::decode(&req.cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid("invalid cursor"))?,
        )
    };
    let view = state.view();
    let page = domain::query::members(&view, after.as_deref(), limit).map_err(store_error)?;
    let next = if page.len() == limit {
        page.last()
            .map(|m| hex::encode(&m.userid))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut out = Vec::new();
    for m in page.iter().filter(|m| m.status != MemberStatus::Departed) {
        for d in &m.departments {
            out.push(json!({ "userid": m.userid, "department": d }));
        }
    }
    Ok(Json(
        json!({ "errcode": 0, "errmsg": "ok", "next_cursor": next, "dept_user": out }),
    ))
}
