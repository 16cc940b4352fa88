//! Sync (`GET /v1/sync`, long-poll) and the live stream (`GET /v1/stream`,
//! WebSocket).
//!
//! A sync token is a global event number: "every event of mine up to N".
//! Event numbers are assigned in apply, so they are the same on every
//! node: a token taken on one node resumes exactly on any other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::Caller;
use crate::domain::{self, Event, EventBody, UserConv};
use crate::http::{ApiError, Params, S, page_limit, store_error};
use crate::messaging::Push;

/// `{"no", "conversation", "time_ms", "actor", "type", ...fields}`.
pub fn event_json(ev: &Event) -> Value {
    let mut v = json!({
        "token": ev.no.to_string(),
        "no": ev.no,
        "conversation": ev.conv,
        "time_ms": ev.time_ms,
        "actor": ev.actor,
    });
    let body = match &ev.body {
        EventBody::Message { message } => {
            json!({ "type": "message", "message": super::conversations::message_json(message) })
        }
        other => match serde_json::to_value(other) {
            Ok(Value::String(s)) => json!({ "type": s }),
            Ok(Value::Object(map)) => match map.into_iter().next() {
                Some((k, Value::Object(mut fields))) => {
                    fields.insert("type".into(), Value::String(k));
                    Value::Object(fields)
                }
                Some((k, _)) => json!({ "type": k }),
                None => json!({}),
            },
            _ => json!({}),
        },
    };
    if let (Value::Object(v), Value::Object(b)) = (&mut v, body) {
        v.extend(b);
    }
    v
}

fn parse_token(s: Option<&str>) -> Result<u64, ApiError> {
    match s {
        None | Some("") => Ok(0),
        Some(t) => t.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                format!("{t:?} is not a sync token (use the token of the last event received)"),
            )
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// Token of the last event received; absent = from the beginning.
    pub since: Option<String>,
    /// Wait up to this long for something new (long-poll), max 60000.
    pub timeout_ms: Option<u64>,
    pub limit: Option<usize>,
    /// `local` (default) or `linearizable`: see
    /// [`crate::http::read_consistency`].
    pub consistency: Option<String>,
}

/// `GET /v1/sync?since=TOKEN&timeout_ms=&limit=&consistency=`
pub async fn sync(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<SyncQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = parse_token(q.since.as_deref())?;
    let limit = page_limit(q.limit, 500, 5000)?;
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(0).min(60_000));
    crate::http::read_consistency(&state, q.consistency.as_deref()).await?;
    let deadline = Instant::now() + timeout;
    let mut applied = state.cluster.sm.app().hub.applied.subscribe();
    loop {
        applied.borrow_and_update();
        let page = domain::query::sync(&state.view(), &caller.userid, since, limit)
            .map_err(store_error)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !page.events.is_empty() || remaining.is_zero() {
            let events: Vec<Value> = page.events.iter().map(event_json).collect();
            return Ok(Json(json!({
                "events": events,
                "next": page.next.to_string(),
                "more": page.more,
            })));
        }
        // Wake when this node applies more (or at the deadline).
        if tokio::time::timeout(remaining, applied.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the node is shutting down",
            ));
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub since: Option<String>,
    /// For browsers, which cannot set an Authorization header on a
    /// WebSocket (read by the authentication extractor).
    pub access_token: Option<String>,
}

/// `GET /v1/stream?since=TOKEN` (WebSocket): first everything since the
/// token, then `{"type":"synced"}`, then events live as this node applies
/// them. A client too slow to keep up gets `{"type":"resync","token":T}`
/// and the socket is closed: it reconnects with that token.
pub async fn websocket(
    State(state): State<S>,
    caller: Caller,
    Params(q): Params<StreamQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let since = parse_token(q.since.as_deref())?;
    let ws = ws.map_err(upgrade_rejection)?;
    let userid = caller.userid;
    Ok(ws
        .max_message_size(64 << 10)
        .on_upgrade(move |socket| async move {
            if let Err(e) = run_stream(state, userid.clone(), since, socket).await {
                tracing::debug!(%userid, error = %e, "stream ended");
            }
        }))
}

/// A request that is not a WebSocket handshake, in the one error shape
/// (axum answers these in plain text).
fn upgrade_rejection(rej: WebSocketUpgradeRejection) -> ApiError {
    let status = rej.status();
    let code = if status == StatusCode::UPGRADE_REQUIRED {
        "upgrade_required"
    } else {
        "not_a_websocket"
    };
    ApiError::new(
        status,
        code,
        format!("{}: /v1/stream is a WebSocket", rej.body_text()),
    )
}

/// The user's conversations, by id. A stream checks every event of every
/// applied batch against it (an app message to 2,000 members is 2,000
/// events, one per member), so the hash is a fast one (FxHash; the keys
/// come from the replicated state, not from a client).
type Convs = HashMap<String, UserConv, fxhash::FxBuildHasher>;

/// Which events of a conversation a user sees: `joined..=left`.
fn visible(convs: &Convs, userid: &str, ev: &Event) -> bool {
    // A conversation with an app belongs to one member, named in its id
    // (`a<agentid>.<userid>`): decided without a lookup.
    if let Some(rest) = ev.conv.strip_prefix('a')
        && let Some((agent, owner)) = rest.split_once('.')
        && agent.bytes().all(|b| b.is_ascii_digit())
        && owner != userid
    {
        return false;
    }
    convs
        .get(&ev.conv)
        .is_some_and(|uc| ev.no >= uc.joined_event && uc.left_event.is_none_or(|l| ev.no <= l))
}

/// Track membership changes of `userid` carried by live events.
fn track(convs: &mut Convs, userid: &str, ev: &Event) {
    match &ev.body {
        EventBody::Created { members, .. } if members.iter().any(|m| m == userid) => {
            convs.insert(
                ev.conv.clone(),
                UserConv {
                    joined_event: ev.no,
                    left_event: None,
                },
            );
        }
        EventBody::MembersAdded { userids } if userids.iter().any(|m| m == userid) => {
            convs.insert(
                ev.conv.clone(),
                UserConv {
                    joined_event: ev.no,
                    left_event: None,
                },
            );
        }
        EventBody::MemberRemoved { userid: u } | EventBody::MemberLeft { userid: u }
            if u == userid =>
        {
            if let Some(uc) = convs.get_mut(&ev.conv) {
                uc.left_event = Some(ev.no);
            }
        }
        _ => {}
    }
}

async fn run_stream(
    state: S,
    userid: String,
    since: u64,
    socket: WebSocket,
) -> Result<(), axum::Error> {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before reading the state: nothing applied after the read
    // can be missed, and what the read covered is skipped by number.
    let mut live = state.cluster.sm.app().hub.events.subscribe();
    let mut token = since;
    let view = state.view();
    loop {
        let page = match domain::query::sync(&view, &userid, token, 500) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "stream: reading the state failed");
                return Ok(());
            }
        };
        for ev in &page.events {
            tx.send(WsMessage::Text(event_json(ev).to_string().into()))
                .await?;
        }
        token = page.next;
        if !page.more {
            break;
        }
    }
    let mut convs: Convs = match domain::query::user_convs(&view, &userid) {
        Ok(c) => c.into_iter().collect(),
        Err(e) => {
            tracing::error!(error = %e, "stream: reading the state failed");
            return Ok(());
        }
    };
    tx.send(WsMessage::Text(
        json!({ "type": "synced", "token": token.to_string() })
            .to_string()
            .into(),
    ))
    .await?;
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            msg = live.recv() => match msg {
                Ok(push) => match &*push {
                    Push::Events(evs) => {
                        for ev in evs {
                            if ev.no <= token {
                                continue;
                            }
                            track(&mut convs, &userid, ev);
                            if visible(&convs, &userid, ev) {
                                tx.send(WsMessage::Text(event_json(ev).to_string().into())).await?;
                                token = ev.no;
                            }
                        }
                    }
                    Push::Reset => {
                        return resync(&mut tx, token).await;
                    }
                },
                Err(RecvError::Lagged(_)) => return resync(&mut tx, token).await,
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = rx.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                tx.send(WsMessage::Ping(Vec::new().into())).await?;
            }
        }
    }
}

async fn resync(
    tx: &mut futures_util::stream::SplitSink<WebSocket, WsMessage>,
    token: u64,
) -> Result<(), axum::Error> {
    tx.send(WsMessage::Text(
        json!({ "type": "resync", "token": token.to_string() })
            .to_string()
            .into(),
    ))
    .await?;
    tx.send(WsMessage::Close(None)).await
}
