//! Announcements and approvals as the employees' api and the operators'
//! admin port both show them: JSON views, reader pages and CSV exports.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::error::{ApiError, store_error};
use crate::domain::{
    self, Announcement, AnnouncementReader, ApprovalRequest, ApprovalTemplate, FlowStep, StepRule,
    TrailAction,
};
use crate::messaging::ViewStore;

fn time(ms: u64) -> String {
    if ms == 0 {
        String::new()
    } else {
        enclave_certs::inspect::rfc3339((ms / 1000) as i64)
    }
}

fn name_of(view: &ViewStore, userid: &str) -> Result<String, ApiError> {
    Ok(domain::query::member(view, userid)
        .map_err(store_error)?
        .map(|m| m.name)
        .unwrap_or_default())
}

/// An announcement: everyone sees the card and body; `counts` only for
/// the sender and operators.
pub fn announcement_json(
    view: &ViewStore,
    a: &Announcement,
    with_body: bool,
    with_counts: bool,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let mut v = json!({
        "id": a.id,
        "sender": a.sender,
        "sender_name": name_of(view, &a.sender)?,
        "title": a.title,
        "sent_ms": a.sent_ms,
        "pinned_until_ms": a.pinned_until_ms,
        "pinned": a.withdrawn_ms == 0 && a.pinned_until_ms > now_ms,
        "attachment": a.attachment,
        "to": { "all": a.all, "departments": a.departments },
        "sending": a.expanding.is_some(),
        "withdrawn": a.withdrawn_ms != 0,
        "withdrawn_ms": a.withdrawn_ms,
    });
    if with_body {
        v["body"] = json!(domain::query::announcement_body(view, a.id).map_err(store_error)?);
    }
    if with_counts {
        v["counts"] = json!({
            "audience": a.counts.audience,
            "read": a.counts.read,
            "unread": a.counts.audience.saturating_sub(a.counts.read),
            "late_read": a.counts.late_read,
        });
    }
    Ok(v)
}

/// Which readers a `state` query keeps.
pub fn reader_filter(state: Option<&str>) -> Result<fn(&AnnouncementReader) -> bool, ApiError> {
    Ok(match state.unwrap_or("all") {
        "all" => |_| true,
        "read" => |r| r.read_ms != 0 && !r.late,
        "unread" => |r| r.read_ms == 0 && !r.late,
        "late" => |r| r.late,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("state must be all, read, unread or late, not {other:?}"),
            ));
        }
    })
}

/// A page of readers `{userid, name, read_ms, late}` and the next cursor.
pub fn readers_page(
    view: &ViewStore,
    id: u64,
    state: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Value, ApiError> {
    let filter = reader_filter(state)?;
    let (list, next) = domain::query::announcement_readers(view, id, filter, cursor, limit, 10_000)
        .map_err(store_error)?;
    let mut out = Vec::new();
    for (u, r) in &list {
        out.push(json!({
            "userid": u, "name": name_of(view, u)?, "read_ms": r.read_ms, "late": r.late,
        }));
    }
    Ok(json!({ "readers": out, "next_cursor": next }))
}

fn csv_response(filename: &str, w: csv::Writer<Vec<u8>>) -> Result<Response, ApiError> {
    let bytes = w.into_inner().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            e.to_string(),
        )
    })?;
    // A BOM so spreadsheet programs read the names as UTF-8.
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend(bytes);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn csv_error(e: csv::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "export_failed",
        e.to_string(),
    )
}

/// Every reader of an announcement as CSV: userid, name, departments,
/// state (read / unread / late), read at.
pub fn readers_csv(view: &ViewStore, a: &Announcement) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["userid", "name", "departments", "state", "read_at"])
        .map_err(csv_error)?;
    let mut cursor: Option<String> = None;
    loop {
        let (list, next) = domain::query::announcement_readers(
            view,
            a.id,
            |_| true,
            cursor.as_deref(),
            1000,
            1000,
        )
        .map_err(store_error)?;
        for (u, r) in &list {
            let m = domain::query::member(view, u).map_err(store_error)?;
            let depts = m
                .as_ref()
                .map(|m| {
                    m.departments
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .unwrap_or_default();
            let state = match (r.late, r.read_ms != 0) {
                (true, _) => "late",
                (false, true) => "read",
                (false, false) => "unread",
            };
            w.write_record([
                u.as_str(),
                &m.map(|m| m.name).unwrap_or_default(),
                &depts,
                state,
                &time(r.read_ms),
            ])
            .map_err(csv_error)?;
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    csv_response(&format!("announcement-{}-readers.csv", a.id), w)
}

pub fn template_json(t: &ApprovalTemplate) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "fields": t.fields.iter().map(|f| json!({
            "key": f.key, "label": f.label, "type": f.kind.as_str(),
            "required": f.required, "options": f.options,
        })).collect::<Vec<_>>(),
        "flow": t.flow.iter().map(|s| match s {
            FlowStep::Leaders(k) => json!({ "leaders": k }),
            FlowStep::User(u) => json!({ "user": u }),
            FlowStep::AnyOf(g) => json!({ "any_of": g }),
        }).collect::<Vec<_>>(),
        "cc": t.cc,
        "disabled": t.disabled,
        "version": t.version,
    })
}

fn rule_json(r: &StepRule) -> Value {
    match r {
        StepRule::Leader(n) => json!({ "leader_level": n }),
        StepRule::User(u) => json!({ "user": u }),
        StepRule::AnyOf(g) => json!({ "any_of": g }),
    }
}

/// A request with its values, plan, approvers and trail (names included).
pub fn approval_json(view: &ViewStore, r: &ApprovalRequest) -> Result<Value, ApiError> {
    let t = domain::query::approval_template(view, &r.template).map_err(store_error)?;
    let values: Vec<Value> = r
        .values
        .iter()
        .map(|(k, v)| {
            let f = t
                .as_ref()
                .and_then(|t| t.fields.iter().find(|f| &f.key == k));
            json!({
                "key": k,
                "label": f.map(|f| f.label.clone()).unwrap_or_else(|| k.clone()),
                "type": f.map_or("text", |f| f.kind.as_str()),
                "value": v.display(),
            })
        })
        .collect();
    let mut approvers = Vec::new();
    for a in &r.approvers {
        approvers.push(json!({ "userid": a, "name": name_of(view, a)? }));
    }
    let trail: Vec<Value> = r
        .trail
        .iter()
        .map(|t| {
            let mut v = json!({
                "time_ms": t.time_ms, "actor": t.actor, "step": t.step + 1,
                "action": t.action.name(),
            });
            match &t.action {
                TrailAction::Assigned { approvers } => v["approvers"] = json!(approvers),
                TrailAction::Reassigned { from, to, why } => {
                    v["from"] = json!(from);
                    v["to"] = json!(to);
                    v["why"] = json!(why);
                }
                TrailAction::Skipped { why } => v["why"] = json!(why),
                TrailAction::Approved { comment } => v["comment"] = json!(comment),
                TrailAction::Rejected { reason } => v["reason"] = json!(reason),
                TrailAction::Commented { text } => v["text"] = json!(text),
                TrailAction::Submitted | TrailAction::Withdrawn => {}
            }
            v
        })
        .collect();
    Ok(json!({
        "id": r.id,
        "template": r.template,
        "template_name": r.template_name,
        "applicant": r.applicant,
        "applicant_name": name_of(view, &r.applicant)?,
        "department": r.department,
        "values": values,
        "submitted_ms": r.submitted_ms,
        "status": r.status.as_str(),
        "step": (r.current + 1).min(r.plan.len() as u32),
        "steps": r.plan.iter().map(rule_json).collect::<Vec<_>>(),
        "approvers": approvers,
        "cc": r.cc,
        "finished_ms": r.finished_ms,
        "trail": trail,
    }))
}

/// Finished requests as CSV: one row each, the fields in one column.
pub fn approvals_csv(
    view: &ViewStore,
    from_ms: u64,
    to_ms: u64,
    template: Option<&str>,
) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "template",
        "applicant",
        "applicant_name",
        "status",
        "submitted_at",
        "finished_at",
        "fields",
        "decided_by",
        "trail",
    ])
    .map_err(csv_error)?;
    let mut after = None;
    loop {
        let page = domain::query::approvals_finished(view, from_ms, to_ms, after, 1000)
            .map_err(store_error)?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.finished_ms, last.id));
        for r in &page {
            if template.is_some_and(|t| t != r.template) {
                continue;
            }
            let fields = r
                .values
                .iter()
                .map(|(k, v)| format!("{k}={}", v.display()))
                .collect::<Vec<_>>()
                .join("; ");
            let decided = r
                .trail
                .iter()
                .filter(|t| {
                    matches!(
                        t.action,
                        TrailAction::Approved { .. } | TrailAction::Rejected { .. }
                    )
                })
                .map(|t| format!("{}:{}", t.actor, t.action.name()))
                .collect::<Vec<_>>()
                .join("; ");
            let trail = r
                .trail
                .iter()
                .map(|t| match &t.action {
                    TrailAction::Rejected { reason } => {
                        format!(
                            "{} {} {} ({reason})",
                            time(t.time_ms),
                            t.actor,
                            t.action.name()
                        )
                    }
                    TrailAction::Approved { comment }
                    | TrailAction::Commented { text: comment }
                        if !comment.is_empty() =>
                    {
                        format!(
                            "{} {} {} ({comment})",
                            time(t.time_ms),
                            t.actor,
                            t.action.name()
                        )
                    }
                    _ => format!("{} {} {}", time(t.time_ms), t.actor, t.action.name()),
                })
                .collect::<Vec<_>>()
                .join(" | ");
            w.write_record([
                r.id.to_string().as_str(),
                &r.template,
                &r.applicant,
                &name_of(view, &r.applicant)?,
                r.status.as_str(),
                &time(r.submitted_ms),
                &time(r.finished_ms),
                &fields,
                &decided,
                &trail,
            ])
            .map_err(csv_error)?;
        }
        if page.len() < 1000 {
            break;
        }
    }
    csv_response("approvals.csv", w)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldReq {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum FlowReq {
    Leaders(u32),
    User(String),
    AnyOf(Vec<String>),
}

/// `PUT /v1/approvals/templates/{id}`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateReq {
    pub name: String,
    #[serde(default)]
    pub fields: Vec<FieldReq>,
    pub flow: Vec<FlowReq>,
    #[serde(default)]
    pub cc: Vec<String>,
}

/// A template from its request; an unknown field type is refused here
/// (the rest is checked by the domain).
pub fn template_from(id: &str, req: TemplateReq) -> Result<ApprovalTemplate, ApiError> {
    let mut fields = Vec::new();
    for (i, f) in req.fields.into_iter().enumerate() {
        let Some(kind) = domain::FieldKind::parse(&f.kind) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!(
                    "fields[{i}] ({}): unknown field type {:?}; the types are {}",
                    f.key,
                    f.kind,
                    domain::FieldKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        fields.push(domain::FieldDef {
            key: f.key,
            label: f.label,
            kind,
            required: f.required,
            options: f.options,
        });
    }
    Ok(ApprovalTemplate {
        id: id.to_string(),
        name: req.name,
        fields,
        flow: req
            .flow
            .into_iter()
            .map(|s| match s {
                FlowReq::Leaders(k) => FlowStep::Leaders(k),
                FlowReq::User(u) => FlowStep::User(u),
                FlowReq::AnyOf(g) => FlowStep::AnyOf(g),
            })
            .collect(),
        cc: req.cc,
        disabled: false,
        version: 0,
    })
}
