//! JSON renderings shared by the faces that show the same records.

use serde_json::{Value, json};

use http::StatusCode;

use super::ApiError;
use crate::domain::{self, Member, Notice, NoticePhase, NoticeRecipient};
use crate::messaging::ViewStore;

use super::store_error;

/// A member as the native API and the admin API show it.
pub fn member_json(m: &Member) -> Value {
    json!({
        "userid": m.userid,
        "name": m.name,
        "departments": m.departments,
        "title": m.title,
        "email": m.email,
        "mobile": m.mobile,
        "status": m.status,
    })
}

/// The notice as its sender (or an operator) sees it.
pub fn notice_json(n: &Notice) -> Value {
    json!({
        "id": n.id,
        "sender": n.sender,
        "title": n.title,
        "sent_ms": n.sent_ms,
        "deadline_ms": n.deadline_ms,
        "remind_every_ms": n.remind_every_ms,
        "max_rounds": n.max_rounds,
        "phase": n.phase.name(),
        "rounds_done": n.rounds_done,
        "next_due_ms": (n.phase != NoticePhase::Done).then_some(n.due_ms),
        "withdrawn": n.withdrawn_ms != 0,
        "withdrawn_ms": (n.withdrawn_ms != 0).then_some(n.withdrawn_ms),
        "counts": n.counts,
    })
}

pub fn mark_json(r: &NoticeRecipient) -> Value {
    json!({
        "delivered_ms": (r.delivered_ms != 0).then_some(r.delivered_ms),
        "read_ms": (r.read_ms != 0).then_some(r.read_ms),
        "acked_ms": (r.acked_ms != 0).then_some(r.acked_ms),
        "reminded": r.reminded,
        "escalated": r.escalated,
    })
}

/// A recipient filter by name (`state=` of the recipient lists).
pub fn recipient_filter(state: Option<&str>) -> Result<fn(&NoticeRecipient) -> bool, ApiError> {
    Ok(match state.unwrap_or("all") {
        "all" => |_| true,
        "unacked" => |r| r.acked_ms == 0,
        "acked" => |r| r.acked_ms != 0,
        "read" => |r| r.read_ms != 0,
        "unread" => |r| r.read_ms == 0,
        "reminded" => |r| r.reminded > 0,
        "escalated" => |r| r.escalated,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!(
                    "state must be all, unacked, acked, read, unread, reminded or escalated, not {other:?}"
                ),
            ));
        }
    })
}

/// One page of the directory, as both the employees' and the operators'
/// member lists take it: by name/pinyin prefix `q` (one page, no cursor),
/// one department, or everyone; with the next page's cursor.
pub fn member_page(
    view: &ViewStore,
    q: Option<&str>,
    department: Option<u64>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Member>, Option<String>), ApiError> {
    if let Some(prefix) = q {
        if prefix.is_empty() || prefix.chars().count() > 64 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "q must be 1-64 characters",
            ));
        }
        let list = domain::query::search_members(view, prefix, limit).map_err(store_error)?;
        return Ok((list, None));
    }
    let list = match department {
        Some(d) => {
            if domain::query::department(view, d)
                .map_err(store_error)?
                .is_none()
            {
                return Err(ApiError::not_found(format!("no department {d}")));
            }
            domain::query::department_members(view, d, cursor, limit)
        }
        None => domain::query::members(view, cursor, limit),
    }
    .map_err(store_error)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|m| m.userid.clone()))
        .flatten();
    Ok((list, next))
}
