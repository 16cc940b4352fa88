//! Announcements (公告): publish, list (pinned first), read, read
//! statistics with who has not read, CSV export, withdraw. The rules are
//! in `domain/apply/announcements.rs` and docs/api/README.md.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::domain::{self, AnnouncementDraft, Attachment, Block, Command, Done, Recipients};
use crate::http::extract::{KeyScope, PathArgs};
use crate::http::office::{announcement_json, readers_csv, readers_page};
use crate::http::{
    ApiError, Body, Params, S, header_key, now_ms, page_limit, scoped_key, store_error, submit,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    #[serde(default)]
    pub departments: Vec<u64>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishReq {
    pub to: To,
    pub title: String,
    pub body: Vec<Block>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub pinned_until_ms: u64,
}

pub fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected",
        "unexpected outcome",
    )
}

/// `POST /v1/announcements` (holders of `announcement:publish`, or
/// leaders for what they lead when the policy lets them).
pub async fn publish(
    State(state): State<S>,
    caller: Caller,
    headers: HeaderMap,
    Body(req): Body<PublishReq>,
) -> Result<Json<Value>, ApiError> {
    let key = scoped_key(
        &caller.userid,
        KeyScope::Announcement,
        header_key(&headers)?.as_deref(),
    )?;
    let draft = AnnouncementDraft {
        to: Recipients {
            users: Vec::new(),
            parties: req.to.departments,
            all: req.to.all,
        },
        title: req.title,
        body: req.body,
        attachment: req.attachment,
        pinned_until_ms: req.pinned_until_ms,
    };
    let done = submit(
        &state,
        &caller.origin,
        &Command::PublishAnnouncement {
            actor: caller.userid.clone(),
            draft,
        },
        key,
    )
    .await?;
    state.runner_wake.notify_one();
    match done {
        Done::Announcement(a) => Ok(Json(announcement_json(
            &state.view(),
            &a,
            true,
            true,
            now_ms(),
        )?)),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `inbox` (the default) or `sent`.
    #[serde(rename = "box")]
    pub which: Option<String>,
    /// The last id of the previous page.
    pub cursor: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/announcements?box=inbox|sent&cursor=&limit=`: newest first.
/// The first inbox page also carries the pinned announcements in scope
/// that were published before the caller joined (`late: true`).
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
    let now = now_ms();
    let list = domain::query::announcements_of(&view, &caller.userid, sent, q.cursor, limit)
        .map_err(store_error)?;
    let mut out = Vec::new();
    let mine = |a: &domain::Announcement| -> Result<Value, ApiError> {
        let mut v = announcement_json(&view, a, false, sent, now)?;
        if !sent {
            let r = domain::query::announcement_reader(&view, a.id, &caller.userid)
                .map_err(store_error)?;
            v["read_ms"] = json!(r.map_or(0, |r| r.read_ms));
        }
        Ok(v)
    };
    if !sent && q.cursor.is_none() {
        let me = domain::query::member(&view, &caller.userid)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found("no such member"))?;
        for a in domain::query::announcements_late_for(&view, &me, now).map_err(store_error)? {
            let mut v = mine(&a)?;
            v["late"] = json!(true);
            out.push(v);
        }
    }
    for a in &list {
        out.push(mine(a)?);
    }
    let next = (list.len() == limit)
        .then(|| list.last().map(|a| a.id))
        .flatten();
    Ok(Json(json!({ "announcements": out, "next_cursor": next })))
}

/// The announcement if the caller may see it: the sender, a member of its
/// audience, or (while it is pinned) a member in scope who joined later.
fn visible(
    view: &crate::messaging::ViewStore,
    caller: &Caller,
    id: u64,
) -> Result<(domain::Announcement, bool), ApiError> {
    let none = || ApiError::not_found(format!("no announcement {id}"));
    let a = domain::query::announcement(view, id)
        .map_err(store_error)?
        .ok_or_else(none)?;
    let sender = a.sender == caller.userid;
    if sender {
        return Ok((a, true));
    }
    if a.withdrawn_ms != 0 {
        return Err(ApiError::new(
            StatusCode::GONE,
            "withdrawn",
            format!("announcement {id} was withdrawn"),
        ));
    }
    let reader =
        domain::query::announcement_reader(view, id, &caller.userid).map_err(store_error)?;
    if reader.is_some() {
        return Ok((a, false));
    }
    let me = domain::query::member(view, &caller.userid)
        .map_err(store_error)?
        .ok_or_else(none)?;
    let t = domain::query::announcement_targets(view, id).map_err(store_error)?;
    if a.expanding.is_none() && domain::apply::announcements::in_scope(&a, &t, &me) {
        return Ok((a, false));
    }
    Err(none())
}

/// `GET /v1/announcements/{id}`: the announcement with its body; the
/// sender also sees the read statistics.
pub async fn show(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let (a, sender) = visible(&view, &caller, id)?;
    let mut v = announcement_json(&view, &a, true, sender, now_ms())?;
    let r = domain::query::announcement_reader(&view, id, &caller.userid).map_err(store_error)?;
    v["read_ms"] = json!(r.map_or(0, |r| r.read_ms));
    Ok(Json(v))
}

/// `POST /v1/announcements/{id}/read`: counted once.
pub async fn read(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let done = submit(
        &state,
        &caller.origin,
        &Command::ReadAnnouncement {
            actor: caller.userid.clone(),
            id,
        },
        None,
    )
    .await?;
    match done {
        Done::AnnouncementRead {
            id,
            read_ms,
            changed,
        } => Ok(Json(
            json!({ "id": id, "read_ms": read_ms, "already": !changed }),
        )),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadersQuery {
    /// all (default), read, unread, late.
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

fn own(
    view: &crate::messaging::ViewStore,
    caller: &Caller,
    id: u64,
) -> Result<domain::Announcement, ApiError> {
    domain::query::announcement(view, id)
        .map_err(store_error)?
        .filter(|a| a.sender == caller.userid)
        .ok_or_else(|| ApiError::not_found(format!("no announcement {id} sent by you")))
}

/// `GET /v1/announcements/{id}/readers?state=&cursor=&limit=` (the
/// sender).
pub async fn readers(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
    Params(q): Params<ReadersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let view = state.view();
    own(&view, &caller, id)?;
    Ok(Json(readers_page(
        &view,
        id,
        q.state.as_deref(),
        q.cursor.as_deref(),
        limit,
    )?))
}

/// `GET /v1/announcements/{id}/readers.csv` (the sender).
pub async fn readers_export(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Response, ApiError> {
    let view = state.view();
    let a = own(&view, &caller, id)?;
    readers_csv(&view, &a)
}

/// `POST /v1/announcements/{id}/withdraw` (the sender).
pub async fn withdraw(
    State(state): State<S>,
    caller: Caller,
    PathArgs(id): PathArgs<u64>,
) -> Result<Json<Value>, ApiError> {
    let done = submit(
        &state,
        &caller.origin,
        &Command::WithdrawAnnouncement {
            actor: Some(caller.userid.clone()),
            id,
        },
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
