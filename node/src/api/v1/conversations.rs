//! Conversations, messages, receipts.

use axum::Json;
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::domain::{self, Command, ConvMember, Conversation, Done, Message, Target};
use crate::http::ApiError;
use crate::http::extract::{KeyScope, PathArgs};
use crate::http::{
    Body, Params, S, header_key, page_limit, read_consistency, scoped_key, store_error, submit,
};

pub fn conv_json(c: &Conversation, me: Option<&ConvMember>) -> Value {
    let mut v = json!({
        "id": c.id,
        "kind": c.kind,
        "name": c.name,
        "owner": c.owner,
        "admins": c.admins,
        "announcement": c.announcement,
        "member_count": c.member_count,
        "last_seq": c.last_seq,
        "created_at_ms": c.created_ms,
        "dissolved": c.dissolved,
        // With people outside the organization (a contact's 1:1 or a
        // customer group): clients mark it.
        "external": c.kind.is_external(),
    });
    if c.kind == domain::ConvKind::App {
        // `a<agentid>.<userid>`: the app this conversation is with.
        v["agentid"] = json!(
            c.id.strip_prefix('a')
                .and_then(|r| r.split_once('.'))
                .and_then(|(a, _)| a.parse::<u32>().ok())
        );
    }
    if let Some(me) = me {
        v["read_seq"] = json!(me.read_seq);
        v["unread"] = json!(c.last_seq.saturating_sub(me.read_seq));
    }
    v
}

pub fn message_json(m: &Message) -> Value {
    let mut v = json!({
        "conversation": m.conv,
        "seq": m.seq,
        "sender": m.sender,
        "time_ms": m.time_ms,
        "text": m.text,
        "mentions": m.mentions,
        "mention_all": m.mention_all,
        "reply_to": m.reply_to,
        "recalled": m.recalled,
        "event": m.event,
        "safe": m.safe,
    });
    if let Some(r) = &m.rich {
        v["rich"] = rich_json(r);
    }
    v["file"] = match &m.file {
        Some(f) => crate::http::files::file_ref_json(f),
        None => Value::Null,
    };
    v
}

/// Structured content (app messages): `{"type": "markdown" | "textcard" |
/// "news", ...fields}`; `text` always carries a plain rendering.
fn rich_json(r: &domain::Rich) -> Value {
    match r {
        domain::Rich::Markdown { content } => json!({ "type": "markdown", "content": content }),
        domain::Rich::TextCard {
            title,
            description,
            url,
            btntxt,
        } => json!({
            "type": "textcard",
            "title": title,
            "description": description,
            "url": url,
            "btntxt": btntxt,
        }),
        domain::Rich::News { articles } => json!({
            "type": "news",
            "articles": articles.iter().map(|a| json!({
                "title": a.title,
                "description": a.description,
                "url": a.url,
                "picurl": a.picurl,
            })).collect::<Vec<_>>(),
        }),
    }
}

fn conv_of(done: Done) -> Result<Json<Value>, ApiError> {
    match done {
        Done::Conversation(c) => Ok(Json(conv_json(&c, None))),
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

fn seq_param(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a message sequence number"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    /// `local` or `linearizable`: see [`crate::http::read_consistency`].
    pub consistency: Option<String>,
}

/// `GET /v1/conversations`: the caller's conversations.
pub async fn list(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 500)?;
    read_consistency(&state, q.consistency.as_deref()).await?;
    let list =
        domain::query::conversations(&state.view(), &caller.userid, q.cursor.as_deref(), limit)
            .map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|(c, _)| c.id.clone()))
        .flatten();
    let out: Vec<Value> = list.iter().map(|(c, m)| conv_json(c, Some(m))).collect();
    Ok(Json(json!({ "conversations": out, "next_cursor": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupReq {
    pub name: String,
    pub members: Vec<String>,
}

/// `POST /v1/conversations`: a new group owned by the caller.
pub async fn create_group(
    State(state): State<S>,
    caller: Caller,
    headers: HeaderMap,
    Body(req): Body<CreateGroupReq>,
) -> Result<Json<Value>, ApiError> {
    caller.employee_only("create internal groups")?;
    let key = scoped_key(
        &caller.userid,
        KeyScope::CreateGroup,
        header_key(&headers)?.as_deref(),
    )?;
    let done = submit(
        &state,
        &caller.origin,
        &Command::CreateGroup {
            actor: caller.userid,
            name: req.name,
            members: req.members,
        },
        key,
    )
    .await?;
    conv_of(done)
}

/// `GET /v1/conversations/{conv}`
pub async fn get_one(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, me) = domain::query::conversation_for(&state.view(), &caller.userid, &conv)
        .map_err(store_error)?
        .map_err(crate::http::refusal)?;
    Ok(Json(conv_json(&c, Some(&me))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateReq {
    pub name: Option<String>,
    pub announcement: Option<String>,
}

/// `PATCH /v1/conversations/{conv}`: rename, pin an announcement.
pub async fn update(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<UpdateReq>,
) -> Result<Json<Value>, ApiError> {
    if req.name.is_none() && req.announcement.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "give name and/or announcement",
        ));
    }
    // Both changes are separate commands: check both values first, so a
    // refused announcement does not leave the rename applied (a refused
    // request changes nothing). Apply checks them again.
    if let Some(name) = &req.name {
        domain::apply::valid_name(name, "name").map_err(crate::http::refusal)?;
    }
    if let Some(text) = &req.announcement {
        let max = domain::apply::policy(&state.view())
            .map_err(store_error)?
            .max_announcement_chars;
        if text.chars().count() > max as usize {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                format!("announcement is longer than {max} characters"),
            ));
        }
    }
    let mut last = None;
    if let Some(name) = req.name {
        last = Some(
            submit(
                &state,
                &caller.origin,
                &Command::Rename {
                    actor: caller.userid.clone(),
                    conv: conv.clone(),
                    name,
                },
                None,
            )
            .await?,
        );
    }
    if let Some(text) = req.announcement {
        last = Some(
            submit(
                &state,
                &caller.origin,
                &Command::SetAnnouncement {
                    actor: caller.userid.clone(),
                    conv: conv.clone(),
                    text,
                },
                None,
            )
            .await?,
        );
    }
    conv_of(last.unwrap_or(Done::Ok))
}

/// `DELETE /v1/conversations/{conv}`: the owner dissolves a group.
pub async fn dissolve(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::Dissolve {
                actor: caller.userid,
                conv,
            },
            None,
        )
        .await?,
    )
}

/// `GET /v1/conversations/{conv}/members`
pub async fn members(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Params(q): Params<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 500, 2000)?;
    read_consistency(&state, q.consistency.as_deref()).await?;
    let view = state.view();
    let (c, _) = domain::query::conversation_for(&view, &caller.userid, &conv)
        .map_err(store_error)?
        .map_err(crate::http::refusal)?;
    let list = domain::query::conversation_members(&view, &conv, q.cursor.as_deref(), limit)
        .map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|(u, _)| u.clone()))
        .flatten();
    let mut out: Vec<Value> = Vec::with_capacity(list.len());
    for (u, m) in &list {
        let mut v =
            json!({ "userid": u, "read_seq": m.read_seq, "delivered_seq": m.delivered_seq });
        if c.kind.is_external() {
            // External members cannot read the directory: names (and
            // which side each member is on) come with the list.
            if let Some((p, ext)) = domain::external::party(&view, u).map_err(store_error)? {
                v["name"] = json!(p.name);
                v["external"] = json!(ext);
                if ext {
                    v["org"] = json!(p.title);
                }
            }
        }
        out.push(v);
    }
    Ok(Json(json!({ "members": out, "next_cursor": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseridsReq {
    pub userids: Vec<String>,
}

/// `POST /v1/conversations/{conv}/members`
pub async fn add_members(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<UseridsReq>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::AddMembers {
                actor: caller.userid,
                conv,
                userids: req.userids,
            },
            None,
        )
        .await?,
    )
}

/// `DELETE /v1/conversations/{conv}/members/{userid}`
pub async fn remove_member(
    State(state): State<S>,
    caller: Caller,
    PathArgs((conv, userid)): PathArgs<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::RemoveMember {
                actor: caller.userid,
                conv,
                userid,
            },
            None,
        )
        .await?,
    )
}

/// `POST /v1/conversations/{conv}/leave`
pub async fn leave(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::Leave {
                actor: caller.userid,
                conv,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerReq {
    pub userid: String,
}

/// `PUT /v1/conversations/{conv}/owner`
pub async fn transfer_owner(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<OwnerReq>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::TransferOwner {
                actor: caller.userid,
                conv,
                to: req.userid,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminsReq {
    pub admins: Vec<String>,
}

/// `PUT /v1/conversations/{conv}/admins`
pub async fn set_admins(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<AdminsReq>,
) -> Result<Json<Value>, ApiError> {
    conv_of(
        submit(
            &state,
            &caller.origin,
            &Command::SetAdmins {
                actor: caller.userid,
                conv,
                admins: req.admins,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Messages with a sequence number above this (default 0: from the start).
    pub after_seq: Option<u64>,
    pub limit: Option<usize>,
    /// `local` (default: this node's applied state) or `linearizable`
    /// (a read-index barrier first: the answer includes every message
    /// acknowledged before the request began, whichever node took it).
    pub consistency: Option<String>,
}

/// `GET /v1/conversations/{conv}/messages?after_seq=&limit=&consistency=`
pub async fn messages(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Params(q): Params<MessagesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    read_consistency(&state, q.consistency.as_deref()).await?;
    let view = state.view();
    let (c, me) = domain::query::conversation_for(&view, &caller.userid, &conv)
        .map_err(store_error)?
        .map_err(crate::http::refusal)?;
    let list = domain::query::messages(&view, &me, &conv, q.after_seq.unwrap_or(0), limit)
        .map_err(store_error)?;
    let next = list.last().map(|m| m.seq).filter(|s| *s < c.last_seq);
    let out: Vec<Value> = list.iter().map(message_json).collect();
    Ok(Json(json!({ "messages": out, "next_after_seq": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReq {
    /// The message, or a file's caption (may then be empty).
    #[serde(default)]
    pub text: String,
    /// A file id from `POST /v1/files` (or one received: forwarding).
    pub file: Option<String>,
    #[serde(default)]
    pub mentions: Vec<String>,
    #[serde(default)]
    pub mention_all: bool,
    pub reply_to: Option<u64>,
    /// Idempotency key (or the `Idempotency-Key` header): a retry with the
    /// same id returns the first message instead of sending twice.
    pub client_msg_id: Option<String>,
}

async fn send(
    state: S,
    caller: Caller,
    headers: HeaderMap,
    target: Target,
    req: SendReq,
) -> Result<Json<Value>, ApiError> {
    let client_msg_id = match req.client_msg_id {
        Some(id) => Some(id),
        None => header_key(&headers)?,
    };
    let key = scoped_key(&caller.userid, KeyScope::Send, client_msg_id.as_deref())?;
    if matches!(&target, Target::Direct(peer) if *peer == caller.userid) {
        // The domain refuses it too (as invalid_argument); answered here
        // as what it is: a well-formed request this caller may not make
        // (only a userid other than yours is a valid path here, which no
        // schema can say).
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "cannot message yourself",
        ));
    }
    let done = submit(
        &state,
        &caller.origin,
        &Command::Send {
            actor: caller.userid,
            target,
            text: req.text,
            mentions: req.mentions,
            mention_all: req.mention_all,
            reply_to: req.reply_to,
            file: req.file,
        },
        key,
    )
    .await?;
    match done {
        Done::Message(m) => {
            // The sender's own id back, so a client with several sends in
            // flight matches answers to its outbox without a lookup.
            let mut v = message_json(&m);
            if let Some(id) = client_msg_id {
                v["client_msg_id"] = Value::String(id);
            }
            Ok(Json(v))
        }
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            "unexpected outcome",
        )),
    }
}

/// `POST /v1/conversations/{conv}/messages`
pub async fn send_to_conv(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    headers: HeaderMap,
    Body(req): Body<SendReq>,
) -> Result<Json<Value>, ApiError> {
    send(state, caller, headers, Target::Conv(conv), req).await
}

/// `POST /v1/direct/{userid}/messages`: the 1:1 conversation is created on
/// the first message.
pub async fn send_direct(
    State(state): State<S>,
    caller: Caller,
    PathArgs(userid): PathArgs<String>,
    headers: HeaderMap,
    Body(req): Body<SendReq>,
) -> Result<Json<Value>, ApiError> {
    send(state, caller, headers, Target::Direct(userid), req).await
}

/// `POST /v1/conversations/{conv}/messages/{seq}/recall`
pub async fn recall(
    State(state): State<S>,
    caller: Caller,
    PathArgs((conv, seq)): PathArgs<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let seq = seq_param(&seq)?;
    match submit(
        &state,
        &caller.origin,
        &Command::Recall {
            actor: caller.userid,
            conv,
            seq,
        },
        None,
    )
    .await?
    {
        Done::Message(m) => Ok(Json(message_json(&m))),
        _ => Ok(Json(json!({ "status": "recalled" }))),
    }
}

/// `GET /v1/conversations/{conv}/messages/{seq}/receipts`: who has read
/// it (the sender, and the group's owner and admins, may look).
pub async fn receipts(
    State(state): State<S>,
    caller: Caller,
    PathArgs((conv, seq)): PathArgs<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let seq = seq_param(&seq)?;
    let view = state.view();
    let (c, _) = domain::query::conversation_for(&view, &caller.userid, &conv)
        .map_err(store_error)?
        .map_err(crate::http::refusal)?;
    let m = domain::query::message(&view, &conv, seq)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no message {seq} in {conv:?}")))?;
    let may =
        m.sender == caller.userid || c.owner == caller.userid || c.admins.contains(&caller.userid);
    if !may {
        return Err(ApiError::forbidden(
            "only the sender and the group's owner and admins see receipts",
        ));
    }
    let r = domain::query::receipts(&view, &m).map_err(store_error)?;
    Ok(Json(json!({
        "seq": r.seq,
        "read_count": r.read.len(),
        "unread_count": r.unread.len(),
        "delivered_count": r.delivered,
        "read": r.read,
        "unread": r.unread,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReq {
    pub seq: u64,
}

/// `POST /v1/conversations/{conv}/read`: everything up to `seq` is read.
pub async fn mark_read(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<MarkReq>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &caller.origin,
        &Command::MarkRead {
            actor: caller.userid,
            conv,
            seq: req.seq,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "read_seq": req.seq })))
}

/// `POST /v1/conversations/{conv}/delivered`
pub async fn mark_delivered(
    State(state): State<S>,
    caller: Caller,
    PathArgs(conv): PathArgs<String>,
    Body(req): Body<MarkReq>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &caller.origin,
        &Command::MarkDelivered {
            actor: caller.userid,
            conv,
            seq: req.seq,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "delivered_seq": req.seq })))
}
