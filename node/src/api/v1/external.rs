//! External contacts (外部联系人) on the client API: invitations and
//! their acceptance, contacts, customer groups and their auto-replies, a
//! leader's hand-over of an employee's contacts, the contact's objection,
//! and a leader's supervision figures. The rules are in
//! `domain/apply/external.rs`; docs/api/README.md § External contacts.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use enclave_cluster::listener::ConnInfo;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use super::conversations::conv_json;
use crate::audit::ActorKind;
use crate::domain::{self, AutoReplyRule, Command, Done, MatchMode, Transfer};
use crate::http::accounts::{check_password_rules, hash_password, new_token, token_hash};
use crate::http::extract::PathArgs;
use crate::http::{ApiError, Body, Params, S, store_error, submit};

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected",
        "unexpected outcome",
    )
}

pub fn transfer_json(t: &Transfer) -> Value {
    json!({
        "id": t.id,
        "from": t.from,
        "to": t.to,
        "externals": t.externals,
        "groups": t.groups,
        "by": t.by,
        "message": t.message,
        "created_ms": t.created_ms,
        "due_ms": t.due_ms,
        "status": t.status,
        "objected": t.objected,
        "finished_ms": t.finished_ms,
    })
}

/// Propose a transfer command (a transfer, its cancellation or an
/// objection) and answer the transfer as it now stands.
pub async fn submit_transfer(
    state: &S,
    origin: &crate::audit::Origin,
    cmd: Command,
) -> Result<Json<Value>, ApiError> {
    let done = submit(state, origin, &cmd, None).await?;
    // A transfer due now is carried out by the leader's next step.
    state.runner_wake.notify_one();
    match done {
        Done::Transfer(t) => Ok(Json(transfer_json(&t))),
        _ => Err(unexpected()),
    }
}

pub fn external_json(e: &domain::External) -> Value {
    json!({
        "userid": e.userid,
        "name": e.name,
        "org": e.org,
        "phone": e.phone,
        "email": e.email,
        "invited_by": e.invited_by,
        "created_ms": e.created_ms,
        "disabled": e.disabled,
    })
}

/// `POST /v1/external/invitations`: a one-time code (employees holding
/// `external:add`). The code is shown once; only its hash is stored.
pub async fn invite(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.employee_only("invite contacts")?;
    let code = new_token("inv_");
    let done = submit(
        &state,
        &caller.origin,
        &Command::CreateInvitation {
            actor: caller.userid.clone(),
            code_hash: token_hash(&code),
        },
        None,
    )
    .await?;
    match done {
        Done::Invitation { expires_ms } => Ok(Json(json!({
            "code": code,
            "expires_ms": expires_ms,
            // The web client's acceptance page.
            "link": format!("/#/accept/{code}"),
        }))),
        _ => Err(unexpected()),
    }
}

fn code_hash(code: &str) -> Result<[u8; 32], ApiError> {
    if code.is_empty() || code.len() > 128 || !code.is_ascii() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            "malformed invitation code",
        ));
    }
    Ok(token_hash(code.trim()))
}

/// `GET /v1/external/invitations/{code}` (no login): who invites, and
/// whether the code can still be used — for the acceptance page.
pub async fn invitation(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    PathArgs(code): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    state.limits.check_source(conn.remote.ip())?;
    let hash = code_hash(&code)?;
    let view = state.view();
    let Some(inv) = domain::external::invitation(&view, &hash).map_err(store_error)? else {
        state.limits.record_failure(conn.remote.ip());
        return Err(ApiError::not_found("unknown invitation code"));
    };
    let inviter = domain::query::member(&view, &inv.employee)
        .map_err(store_error)?
        .map_or_else(|| inv.employee.clone(), |m| m.name);
    let status = if inv.used_by.is_some() {
        "used"
    } else if inv.expires_ms <= crate::http::now_ms() {
        "expired"
    } else {
        "open"
    };
    Ok(Json(json!({
        "inviter": inviter,
        "expires_ms": inv.expires_ms,
        "status": status,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptReq {
    pub code: String,
    /// The login name the person chooses (1-64 of `A-Z a-z 0-9 _ . @ -`).
    pub userid: String,
    pub name: String,
    /// The company or agency they belong to.
    pub org: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
    pub password: String,
}

/// `POST /v1/external/accept` (no login): the invited person consents,
/// sets a password and becomes a contact of the inviting employee.
pub async fn accept(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    ext: http::Extensions,
    Body(req): Body<AcceptReq>,
) -> Result<Json<Value>, ApiError> {
    let ip = conn.remote.ip();
    state.limits.check_source(ip)?;
    let hash = code_hash(&req.code)?;
    if domain::external::invitation(&state.view(), &hash)
        .map_err(store_error)?
        .is_none()
    {
        // Guessing codes counts as failed logins from this source.
        state.limits.record_failure(ip);
        return Err(ApiError::not_found("unknown invitation code"));
    }
    check_password_rules(&req.password)?;
    let password_hash = hash_password(&state, req.password).await?;
    let origin = crate::http::origin(
        &ext,
        ActorKind::User,
        &req.userid,
        "external",
        &state.node_id,
    );
    let done = submit(
        &state,
        &origin,
        &Command::AcceptInvitation {
            code_hash: hash,
            userid: req.userid,
            name: req.name,
            org: req.org,
            phone: req.phone,
            email: req.email,
            password_hash,
        },
        None,
    )
    .await?;
    match done {
        Done::ExternalAccount { external, conv } => Ok(Json(json!({
            "userid": external.userid,
            "conversation": conv,
            "account": external_json(&external),
        }))),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/external/contacts`: an employee's external contacts, or, for an
/// external account, the employees who serve them.
pub async fn contacts(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let mut out = Vec::new();
    if caller.external {
        for employee in domain::external::servers_of(&view, &caller.userid).map_err(store_error)? {
            let Some(m) = domain::query::member(&view, &employee).map_err(store_error)? else {
                continue;
            };
            let conv = domain::external::contact(&view, &employee, &caller.userid)
                .map_err(store_error)?
                .map(|c| c.conv);
            out.push(json!({
                "userid": m.userid, "name": m.name, "title": m.title,
                "external": false, "conversation": conv,
            }));
        }
    } else {
        for (x, c) in domain::external::contacts_of(&view, &caller.userid).map_err(store_error)? {
            let Some(e) = domain::external::external(&view, &x).map_err(store_error)? else {
                continue;
            };
            let mut v = external_json(&e);
            v["external"] = json!(true);
            v["conversation"] = json!(c.conv);
            v["since_ms"] = json!(c.since_ms);
            v["previous"] = json!(c.previous);
            out.push(v);
        }
    }
    Ok(Json(json!({ "contacts": out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupReq {
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
}

/// `POST /v1/external/groups`: a customer group (客户群) owned by the
/// caller, with employees and the caller's own contacts.
pub async fn create_group(
    State(state): State<S>,
    caller: Caller,
    Body(req): Body<GroupReq>,
) -> Result<Json<Value>, ApiError> {
    caller.employee_only("create groups")?;
    let done = submit(
        &state,
        &caller.origin,
        &Command::CreateCustomerGroup {
            actor: caller.userid.clone(),
            name: req.name,
            members: req.members,
        },
        None,
    )
    .await?;
    match done {
        Done::Conversation(c) => Ok(Json(conv_json(&c, None))),
        _ => Err(unexpected()),
    }
}

/// `GET /v1/external/groups`: customer groups the caller owns.
pub async fn groups(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.employee_only("own groups")?;
    let view = state.view();
    let out: Vec<Value> = domain::external::customer_groups_of(&view, &caller.userid)
        .map_err(store_error)?
        .iter()
        .filter(|c| !c.dissolved && c.owner == caller.userid)
        .map(|c| conv_json(c, None))
        .collect();
    Ok(Json(json!({ "groups": out })))
}

fn rule_json(r: &AutoReplyRule) -> Value {
    json!({
        "keywords": r.keywords,
        "mode": r.mode,
        "answer": r.answer,
    })
}

/// `GET /v1/external/groups/{conv}/auto-replies` (members of the group).
pub async fn auto_replies(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    domain::query::conversation_for(&view, &caller.userid, &conv)
        .map_err(store_error)?
        .map_err(crate::http::refusal)?;
    let rules = domain::external::auto_replies(&view, &conv).map_err(store_error)?;
    Ok(Json(
        json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleReq {
    pub keywords: Vec<String>,
    /// `exact` or `contains`.
    pub mode: MatchMode,
    pub answer: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesReq {
    pub rules: Vec<RuleReq>,
}

/// `PUT /v1/external/groups/{conv}/auto-replies` (the owner): replaces
/// the rules; an empty list removes them.
pub async fn set_auto_replies(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<RulesReq>,
) -> Result<Json<Value>, ApiError> {
    let rules: Vec<AutoReplyRule> = req
        .rules
        .into_iter()
        .map(|r| AutoReplyRule {
            keywords: r.keywords,
            mode: r.mode,
            answer: r.answer,
        })
        .collect();
    submit(
        &state,
        &caller.origin,
        &Command::SetAutoReplies {
            actor: caller.userid.clone(),
            conv,
            rules: rules.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(
        json!({ "rules": rules.iter().map(rule_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub externals: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub message: String,
}

/// `POST /v1/external/transfers`: a department leader hands an active
/// employee's contacts and customer groups to a colleague (after the
/// contacts' objection window).
pub async fn transfer(
    State(state): State<S>,
    caller: Caller,
    Body(req): Body<TransferReq>,
) -> Result<Json<Value>, ApiError> {
    caller.employee_only("transfer contacts")?;
    submit_transfer(
        &state,
        &caller.origin,
        Command::TransferContacts {
            actor: Some(caller.userid.clone()),
            from: req.from,
            to: req.to,
            externals: req.externals,
            groups: req.groups,
            message: req.message,
        },
    )
    .await
}

fn id_param(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a transfer id"),
        )
    })
}

/// `GET /v1/external/transfers`: for an external account, the waiting
/// hand-overs that concern them (each may be objected to until `due_ms`);
/// for an employee, the newest transfers they asked for, gave or received
/// (up to 100 among the newest 1,000).
pub async fn transfers(State(state): State<S>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let list = if caller.external {
        domain::external::waiting_transfers_of(&view, &caller.userid).map_err(store_error)?
    } else {
        domain::external::transfers(&view, None, None, 1_000)
            .map_err(store_error)?
            .into_iter()
            .filter(|t| {
                let me = &caller.userid;
                t.by == *me || t.from == *me || t.to == *me
            })
            .take(100)
            .collect()
    };
    Ok(Json(
        json!({ "transfers": list.iter().map(transfer_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /v1/external/transfers/{id}`: for who asked, both employees and
/// the contacts it concerns.
pub async fn show_transfer(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id_param(&id)?;
    let view = state.view();
    let t = domain::external::transfer(&view, id)
        .map_err(store_error)?
        .filter(|t| {
            let me = &caller.userid;
            t.by == *me || t.from == *me || t.to == *me || t.externals.contains(me)
        })
        .ok_or_else(|| ApiError::not_found(format!("no transfer {id}")))?;
    Ok(Json(transfer_json(&t)))
}

/// `POST /v1/external/transfers/{id}/cancel` (who asked for it).
pub async fn cancel_transfer(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id_param(&id)?;
    submit_transfer(
        &state,
        &caller.origin,
        Command::CancelTransfer {
            actor: Some(caller.userid.clone()),
            id,
        },
    )
    .await
}

/// `POST /v1/external/transfers/{id}/object` (a contact it concerns): they
/// stay with the employee who serves them now.
pub async fn object_transfer(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id_param(&id)?;
    submit_transfer(
        &state,
        &caller.origin,
        Command::ObjectTransfer {
            actor: caller.userid.clone(),
            id,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionQuery {
    pub department: u64,
    /// First and last UTC day (days since 1970-01-01); default: the last 30.
    pub from_day: Option<u32>,
    pub to_day: Option<u32>,
}

/// The day range of a supervision query (at most 366 days).
pub fn day_range(from: Option<u32>, to: Option<u32>) -> Result<(u32, u32), ApiError> {
    let today = domain::day_of(crate::http::now_ms());
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to.saturating_sub(29));
    if from > to || to - from > 366 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "from_day must be <= to_day and the range at most 366 days",
        ));
    }
    Ok((from, to))
}

/// Supervision rows for the members of `dept` (not its subdepartments).
pub fn supervision_rows(
    view: &crate::messaging::ViewStore,
    dept: u64,
    from: u32,
    to: u32,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = domain::query::department_members(view, dept, cursor.as_deref(), 500)
            .map_err(store_error)?;
        for m in &page {
            let s = domain::external::supervision(view, m, from, to).map_err(store_error)?;
            out.push(json!(s));
        }
        if page.len() < 500 {
            break;
        }
        cursor = page.last().map(|m| m.userid.clone());
    }
    // Departed members leave the department's index; those whose contacts
    // or groups still wait for a new owner are listed too.
    for u in domain::external::unassigned(view, None, usize::MAX).map_err(store_error)? {
        if let Some(m) = domain::query::member(view, &u.employee).map_err(store_error)?
            && m.departments.contains(&dept)
        {
            let s = domain::external::supervision(view, &m, from, to).map_err(store_error)?;
            out.push(json!(s));
        }
    }
    Ok(out)
}

/// `GET /v1/external/supervision?department=&from_day=&to_day=`: per
/// member of a department the caller leads — external contacts, customer
/// groups, messages sent to externals in the period.
pub async fn supervision(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<SupervisionQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.employee_only("supervise")?;
    let view = state.view();
    let dept = domain::query::department(&view, q.department)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no department {}", q.department)))?;
    if !dept.leaders.contains(&caller.userid) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{:?} is not a leader of department {}",
                caller.userid, dept.id
            ),
        ));
    }
    let (from, to) = day_range(q.from_day, q.to_day)?;
    let rows = supervision_rows(&view, dept.id, from, to)?;
    Ok(Json(json!({
        "department": dept.id, "from_day": from, "to_day": to, "members": rows,
    })))
}
