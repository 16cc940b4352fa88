//! Urgent notices (紧急通知): send, list, read, acknowledge, withdraw, and
//! the sender's live counts and lists. The rules are in
//! `domain/apply/notices.rs` and docs/api/README.md.

use axum::Json;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::domain::{self, Command, Done, NoticeDraft, Recipients};
use crate::http::ApiError;
use crate::http::extract::{KeyScope, PathArgs};
use crate::http::views::{mark_json, notice_json, recipient_filter};
use crate::http::{Body, Params, S, header_key, page_limit, scoped_key, store_error, submit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub departments: Vec<u64>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReq {
    pub to: To,
    pub title: String,
    pub body: String,
    pub deadline_ms: u64,
    #[serde(default)]
    pub remind_every_ms: u64,
    #[serde(default)]
    pub max_rounds: u32,
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected",
        "unexpected outcome",
    )
}

/// `POST /v1/notices` (members holding `notice:urgent`).
pub async fn send(
    State(state): State<S>,
    caller: Caller,
    headers: HeaderMap,
    Body(req): Body<SendReq>,
) -> Result<Json<Value>, ApiError> {
    let key = scoped_key(
        &caller.userid,
        KeyScope::Notice,
        header_key(&headers)?.as_deref(),
    )?;
    let draft = NoticeDraft {
        to: Recipients {
            users: req.to.users,
            parties: req.to.departments,
            all: req.to.all,
        },
        title: req.title,
        body: req.body,
        deadline_ms: req.deadline_ms,
        remind_every_ms: req.remind_every_ms,
        max_rounds: req.max_rounds,
    };
    let done = submit(
        &state,
        &caller.origin,
        &Command::SendNotice {
            actor: caller.userid.clone(),
            draft,
        },
        key,
    )
    .await?;
    // Whatever is left of a large audience goes out in leader steps.
    state.runner_wake.notify_one();
    match done {
        Done::Notice(n) => Ok(Json(notice_json(&n))),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `inbox` (received, the default) or `sent`.
    #[serde(rename = "box")]
    pub which: Option<String>,
    /// The last id of the previous page.
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/notices?box=inbox|sent&cursor=&limit=`: newest first.
pub async fn list(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 50, 200)?;
    let sent = crate::http::choose(
        "box",
        q.which.as_deref(),
        &[("inbox", false), ("sent", true)],
    )?;
    let view = state.view();
    let list = domain::query::notices_of(&view, &caller.userid, sent, q.cursor, limit)
        .map_err(store_error)?;
    let mut out = Vec::new();
    for n in &list {
        let card = domain::query::notice_card(&view, n).map_err(store_error)?;
        let mut v = if sent {
            notice_json(n)
        } else {
            json!({
                "id": n.id, "sender": n.sender, "title": n.title, "sent_ms": n.sent_ms,
                "deadline_ms": n.deadline_ms, "withdrawn": n.withdrawn_ms != 0,
            })
        };
        v["body"] = json!(card.body);
        if !sent
            && let Some(r) =
                domain::query::notice_recipient(&view, n.id, &caller.userid).map_err(store_error)?
        {
            v["my"] = mark_json(&r);
        }
        out.push(v);
    }
    let next = (list.len() == limit)
        .then(|| list.last().map(|n| n.id))
        .flatten();
    Ok(Json(json!({ "notices": out, "next_cursor": next })))
}

/// `GET /v1/notices/{id}`: a recipient sees the card and their marks; the
/// sender also the counts and the schedule; a leader told of it, how many
/// of their members had not acknowledged.
pub async fn show(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let none = || ApiError::not_found(format!("no notice {id}"));
    let n = domain::query::notice(&view, id)
        .map_err(store_error)?
        .ok_or_else(none)?;
    let mine = domain::query::notice_recipient(&view, id, &caller.userid).map_err(store_error)?;
    let told = domain::query::notice_escalation_of(&view, id, &caller.userid, None, 1)
        .map_err(store_error)?;
    let sender = n.sender == caller.userid;
    if !sender && mine.is_none() && told.is_empty() {
        return Err(none());
    }
    let card = domain::query::notice_card(&view, &n).map_err(store_error)?;
    let mut v = if sender {
        notice_json(&n)
    } else {
        json!({
            "id": n.id, "sender": n.sender, "title": n.title, "sent_ms": n.sent_ms,
            "deadline_ms": n.deadline_ms, "withdrawn": n.withdrawn_ms != 0,
        })
    };
    v["body"] = json!(card.body);
    if let Some(r) = mine {
        v["my"] = mark_json(&r);
    }
    if !told.is_empty() {
        v["escalated_to_me"] = json!(true);
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientsQuery {
    /// all (default), unacked, acked, read, unread, reminded, escalated.
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/notices/{id}/recipients?state=&cursor=&limit=` (the sender):
/// who has and has not acknowledged, with names.
pub async fn recipients(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Params(q): Params<RecipientsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    let n = domain::query::notice(&view, id)
        .map_err(store_error)?
        .filter(|n| n.sender == caller.userid)
        .ok_or_else(|| ApiError::not_found(format!("no notice {id}")))?;
    let filter = recipient_filter(q.state.as_deref())?;
    let (list, next) =
        domain::query::notice_recipients(&view, n.id, filter, q.cursor.as_deref(), limit, 10_000)
            .map_err(store_error)?;
    let mut out = Vec::new();
    for (u, r) in &list {
        let name = domain::query::member(&view, u)
            .map_err(store_error)?
            .map(|m| m.name)
            .unwrap_or_default();
        let mut v = mark_json(r);
        v["userid"] = json!(u);
        v["name"] = json!(name);
        out.push(v);
    }
    Ok(Json(json!({ "recipients": out, "next_cursor": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `GET /v1/notices/{id}/escalation?cursor=&limit=` (a leader told of
/// it): their members who had not acknowledged by the deadline, with
/// their state now.
pub async fn escalation(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Params(q): Params<EscalationQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    let users =
        domain::query::notice_escalation_of(&view, id, &caller.userid, q.cursor.as_deref(), limit)
            .map_err(store_error)?;
    if users.is_empty() && q.cursor.is_none() {
        return Err(ApiError::not_found(format!("no notice {id}")));
    }
    let mut out = Vec::new();
    for u in &users {
        let r = domain::query::notice_recipient(&view, id, u)
            .map_err(store_error)?
            .unwrap_or_default();
        let name = domain::query::member(&view, u)
            .map_err(store_error)?
            .map(|m| m.name)
            .unwrap_or_default();
        let mut v = mark_json(&r);
        v["userid"] = json!(u);
        v["name"] = json!(name);
        out.push(v);
    }
    let next = (users.len() == limit)
        .then(|| users.last().cloned())
        .flatten();
    Ok(Json(json!({ "members": out, "next_cursor": next })))
}

async fn mark(state: &S, caller: &Caller, cmd: Command) -> Result<Json<Value>, ApiError> {
    let done = submit(state, &caller.origin, &cmd, None).await?;
    match done {
        Done::NoticeMark { id, mark, changed } => {
            let mut v = mark_json(&mark);
            v["id"] = json!(id);
            v["already"] = json!(!changed);
            Ok(Json(v))
        }
        _ => Err(unexpected()),
    }
}

/// `POST /v1/notices/{id}/ack`: acknowledge (确认收到); implies read.
/// Repeating it changes nothing (`already: true`).
pub async fn ack(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let cmd = Command::AckNotice {
        actor: caller.userid.clone(),
        id,
    };
    mark(&state, &caller, cmd).await
}

/// `POST /v1/notices/{id}/read`
pub async fn read(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let cmd = Command::ReadNotice {
        actor: caller.userid.clone(),
        id,
    };
    mark(&state, &caller, cmd).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveredReq {
    pub ids: Vec<u64>,
}

/// `POST /v1/notices/delivered {"ids": [...]}`: the client got these.
pub async fn delivered(
    State(state): State<S>,
    caller: Caller,
    Body(req): Body<DeliveredReq>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &caller.origin,
        &Command::NoticeDelivered {
            actor: caller.userid.clone(),
            ids: req.ids,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// `POST /v1/notices/{id}/withdraw` (the sender).
pub async fn withdraw(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let done = submit(
        &state,
        &caller.origin,
        &Command::WithdrawNotice {
            actor: Some(caller.userid.clone()),
            id,
        },
        None,
    )
    .await?;
    state.runner_wake.notify_one();
    match done {
        Done::Notice(n) => Ok(Json(notice_json(&n))),
        _ => Err(unexpected()),
    }
}
