//! `oa/applyevent`, `oa/getapprovalinfo`, `oa/getapprovaldetail`: an OA
//! or ERP system files approvals for members and reads them back in
//! WeCom's shapes. Enclave's template id is WeCom's `template_id`; a
//! field's key is its control `id`; a choice option's text is its `key`.
//! Approvals are the native ones (docs/api/README.md § Approvals): filed
//! here, they walk the same flow, appear in the web client and are
//! audited alike.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{Family, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson};
use super::propose;
use crate::domain::{
    self, ApprovalRequest, ApprovalRoute, ApprovalStatus, Command, Done, FieldKind, FieldValue,
    Scope, StepRule, TrailAction,
};
use crate::http::{S, store_error};

#[derive(Debug, Deserialize)]
pub struct Approver {
    /// 1: any one of them (或签); 2: all of them (会签), one step each.
    #[serde(default = "one")]
    attr: u8,
    #[serde(default)]
    userid: Vec<String>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
pub struct ApplyData {
    #[serde(default)]
    contents: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct ApplyReq {
    creator_userid: String,
    template_id: String,
    #[serde(default)]
    use_template_approver: u8,
    #[serde(default)]
    approver: Vec<Approver>,
    #[serde(default)]
    notifyer: Vec<String>,
    #[serde(default)]
    apply_data: Option<ApplyData>,
    // Accepted and not used: WeCom's display hints.
    #[serde(default)]
    #[serde(rename = "choose_department")]
    _choose_department: Option<Value>,
    #[serde(default)]
    #[serde(rename = "notify_type")]
    _notify_type: Option<Value>,
    #[serde(default)]
    #[serde(rename = "summary_list")]
    _summary_list: Option<Value>,
}

/// A unix time (seconds, as a number or a string) as the day it falls on
/// in UTC+08:00, WeCom's convention for dates.
fn day(v: &Value) -> Option<String> {
    let secs = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let t = time::OffsetDateTime::from_unix_timestamp(secs.checked_add(8 * 3600)?).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        t.year(),
        u8::from(t.month()),
        t.day()
    ))
}

/// One control's value as the text the domain checks.
fn control_value(c: &Value) -> Result<(String, String), super::errors::WeErr> {
    let id = c["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("apply_data.contents[].id is required"))?;
    let control = c["control"].as_str().unwrap_or_default();
    let v = &c["value"];
    let text = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let raw = match control {
        "Text" | "Textarea" => text(&v["text"]),
        "Number" => text(&v["new_number"]),
        "Money" => text(&v["new_money"]),
        "Selector" => v["selector"]["options"]
            .as_array()
            .and_then(|o| o.first())
            .and_then(|o| o["key"].as_str())
            .map(str::to_string),
        "Contact" => v["members"]
            .as_array()
            .and_then(|m| m.first())
            .and_then(|m| m["userid"].as_str())
            .map(str::to_string),
        "DateRange" => {
            let r = &v["date_range"];
            match (day(&r["new_begin"]), day(&r["new_end"])) {
                (Some(a), Some(b)) => Some(format!("{a}/{b}")),
                _ => None,
            }
        }
        other => {
            return Err(invalid(format!(
                "apply_data control {id:?}: control type {other:?} is not supported (Text, Textarea, Number, Money, Selector, Contact, DateRange)"
            )));
        }
    };
    let raw = raw.ok_or_else(|| {
        invalid(format!(
            "apply_data control {id:?} ({control}): its value is missing or has the wrong shape"
        ))
    })?;
    Ok((id.to_string(), raw))
}

/// `POST oa/applyevent`: file a request for `creator_userid`.
pub async fn applyevent(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<ApplyReq>,
) -> WeResult {
    call.need(Scope::Approval)?;
    if req.template_id.is_empty() {
        return Err(invalid("template_id is required"));
    }
    let mut values = Vec::new();
    for c in req.apply_data.map(|d| d.contents).unwrap_or_default() {
        values.push(control_value(&c)?);
    }
    let route = if req.use_template_approver == 1 {
        None
    } else {
        if req.approver.is_empty() {
            return Err(invalid(
                "approver is required unless use_template_approver is 1",
            ));
        }
        let mut steps = Vec::new();
        for a in req.approver {
            match (a.attr, a.userid.len()) {
                (_, 0) => return Err(invalid("approver[].userid is empty")),
                (1, _) => steps.push(StepRule::AnyOf(a.userid)),
                (2, _) => steps.extend(a.userid.into_iter().map(StepRule::User)),
                (n, _) => {
                    return Err(invalid(format!(
                        "approver[].attr {n}: 1 (any one) or 2 (all)"
                    )));
                }
            }
        }
        Some(ApprovalRoute {
            steps,
            cc: req.notifyer,
        })
    };
    let done = propose(
        &state,
        &call,
        &Command::SubmitApproval {
            actor: req.creator_userid,
            template: req.template_id,
            values,
            route,
        },
        Family::User,
    )
    .await?;
    match done {
        Done::Approval(r) => Ok(ok(json!({ "sp_no": r.id.to_string() }))),
        _ => Err(err(code::BUSY, "unexpected outcome")),
    }
}

#[derive(Debug, Deserialize)]
pub struct Filter {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
pub struct InfoReq {
    starttime: Value,
    endtime: Value,
    #[serde(default)]
    new_cursor: Option<String>,
    #[serde(default)]
    cursor: Option<Value>,
    #[serde(default)]
    size: Option<u32>,
    /// wechatpy sends `filter`.
    #[serde(default, alias = "filter")]
    filters: Option<Vec<Filter>>,
}

fn secs(v: &Value, what: &str) -> Result<u64, super::errors::WeErr> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(format!("{what} must be a unix time in seconds")))
}

/// WeCom's status numbers: 1 pending, 2 approved, 3 rejected, 4 withdrawn.
fn sp_status(s: ApprovalStatus) -> u8 {
    match s {
        ApprovalStatus::Pending => 1,
        ApprovalStatus::Approved => 2,
        ApprovalStatus::Rejected => 3,
        ApprovalStatus::Withdrawn => 4,
    }
}

/// `POST oa/getapprovalinfo`: request numbers filed between two times
/// (at most 31 days apart), 100 a page.
pub async fn getapprovalinfo(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<InfoReq>,
) -> WeResult {
    call.need(Scope::Approval)?;
    let start = secs(&req.starttime, "starttime")?;
    let end = secs(&req.endtime, "endtime")?;
    if end < start || end - start > 31 * 86_400 {
        return Err(invalid(
            "endtime must be after starttime, at most 31 days apart",
        ));
    }
    let size = req.size.unwrap_or(100).clamp(1, 100) as usize;
    let cursor: u64 = match (req.new_cursor.as_deref(), &req.cursor) {
        (Some(c), _) if !c.is_empty() => c
            .parse()
            .map_err(|_| invalid(format!("new_cursor {c:?} is not a cursor")))?,
        (_, Some(Value::Number(n))) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    let filters = req.filters.unwrap_or_default();
    for f in &filters {
        if !["template_id", "creator", "department", "sp_status"].contains(&f.key.as_str()) {
            return Err(invalid(format!(
                "filters: key {:?} is not supported (template_id, creator, department, sp_status)",
                f.key
            )));
        }
    }
    let view = state.view();
    let (list, next) =
        domain::query::approvals_filed(&view, start * 1000, end * 1000 + 999, cursor, size, |r| {
            filters.iter().all(|f| match f.key.as_str() {
                "template_id" => r.template == f.value,
                "creator" => r.applicant == f.value,
                "department" => r.department.to_string() == f.value,
                "sp_status" => sp_status(r.status).to_string() == f.value,
                _ => false,
            })
        })
        .map_err(store_error)?;
    let sp_no: Vec<String> = list.iter().map(|r| r.id.to_string()).collect();
    let mut v = json!({ "sp_no_list": sp_no });
    if let Some(n) = next {
        v["new_next_cursor"] = json!(n.to_string());
    }
    Ok(ok(v))
}

#[derive(Debug, Deserialize)]
pub struct DetailReq {
    sp_no: Value,
}

fn control_of(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "Text",
        FieldKind::Number => "Number",
        FieldKind::Money => "Money",
        FieldKind::DateRange => "DateRange",
        FieldKind::Choice => "Selector",
        FieldKind::Member => "Contact",
    }
}

/// A day `YYYY-MM-DD` as the unix time of its start in UTC+08:00.
fn day_secs(d: &str) -> i64 {
    let parse = || -> Option<i64> {
        let date = time::Date::parse(
            d,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()?;
        Some(date.midnight().assume_utc().unix_timestamp() - 8 * 3600)
    };
    parse().unwrap_or(0)
}

fn value_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Text(t) => json!({ "text": t }),
        FieldValue::Number(n) => json!({ "new_number": n }),
        FieldValue::Money(_) => json!({ "new_money": v.display() }),
        FieldValue::Choice(c) => {
            json!({ "selector": { "type": "single", "options": [{ "key": c, "value": [{ "text": c, "lang": "zh_CN" }] }] } })
        }
        FieldValue::Member(u) => json!({ "members": [{ "userid": u }] }),
        FieldValue::DateRange(a, b) => json!({ "date_range": {
            "type": "day", "new_begin": day_secs(a), "new_end": day_secs(b),
            "new_duration": (day_secs(b) - day_secs(a)) + 86_400,
        } }),
    }
}

/// WeCom's `sp_record`: one entry per step reached, with who decided.
fn sp_record(r: &ApprovalRequest) -> Vec<Value> {
    let mut out = Vec::new();
    let last = (r.current as usize).min(r.plan.len().saturating_sub(1)) as u32;
    for step in 0..=last {
        let assigned: Vec<String> = r
            .trail
            .iter()
            .rev()
            .find_map(|t| match &t.action {
                TrailAction::Assigned { approvers } if t.step == step => Some(approvers.clone()),
                TrailAction::Reassigned { to, .. } if t.step == step => Some(to.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if assigned.is_empty() {
            continue;
        }
        let decided = r.trail.iter().find(|t| {
            t.step == step
                && matches!(
                    t.action,
                    TrailAction::Approved { .. } | TrailAction::Rejected { .. }
                )
        });
        let details: Vec<Value> = assigned
            .iter()
            .map(|u| {
                let (status, speech, when) = match decided {
                    Some(t) if &t.actor == u => match &t.action {
                        TrailAction::Approved { comment } => (2, comment.clone(), t.time_ms / 1000),
                        TrailAction::Rejected { reason } => (3, reason.clone(), t.time_ms / 1000),
                        _ => (1, String::new(), 0),
                    },
                    Some(_) => (2, String::new(), 0),
                    None if r.status == ApprovalStatus::Withdrawn => (4, String::new(), 0),
                    None => (1, String::new(), 0),
                };
                json!({ "approver": { "userid": u }, "speech": speech, "sp_status": status, "sptime": when, "media_id": [] })
            })
            .collect();
        let step_status = match decided.map(|t| &t.action) {
            Some(TrailAction::Approved { .. }) => 2,
            Some(TrailAction::Rejected { .. }) => 3,
            _ if r.status == ApprovalStatus::Withdrawn => 4,
            _ => 1,
        };
        // Any one of a step's approvers decides it (或签).
        out.push(json!({ "sp_status": step_status, "approverattr": 1, "details": details }));
    }
    out
}

/// `POST oa/getapprovaldetail {"sp_no"}`
pub async fn getapprovaldetail(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<DetailReq>,
) -> WeResult {
    call.need(Scope::Approval)?;
    let id: u64 = match &req.sp_no {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| invalid("sp_no is not an approval number"))?;
    let view = state.view();
    let r = domain::query::approval(&view, id)
        .map_err(store_error)?
        .ok_or_else(|| invalid(format!("sp_no {id} not found")))?;
    let t = domain::query::approval_template(&view, &r.template).map_err(store_error)?;
    let contents: Vec<Value> = r
        .values
        .iter()
        .map(|(k, v)| {
            let f = t.as_ref().and_then(|t| t.fields.iter().find(|f| &f.key == k));
            json!({
                "control": f.map_or("Text", |f| control_of(f.kind)),
                "id": k,
                "title": [{ "text": f.map(|f| f.label.clone()).unwrap_or_else(|| k.clone()), "lang": "zh_CN" }],
                "value": value_json(v),
            })
        })
        .collect();
    let comments: Vec<Value> = r
        .trail
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.action {
            TrailAction::Commented { text } => Some(json!({
                "commentUserInfo": { "userid": t.actor },
                "commenttime": t.time_ms / 1000,
                "commentcontent": text,
                "commentid": format!("{}-{i}", r.id),
                "media_id": [],
            })),
            _ => None,
        })
        .collect();
    Ok(ok(json!({
        "info": {
            "sp_no": r.id.to_string(),
            "sp_name": r.template_name,
            "sp_status": sp_status(r.status),
            "template_id": r.template,
            "apply_time": r.submitted_ms / 1000,
            "applyer": { "userid": r.applicant, "partyid": r.department.to_string() },
            "sp_record": sp_record(&r),
            "notifyer": r.cc.iter().map(|u| json!({ "userid": u })).collect::<Vec<_>>(),
            "apply_data": { "contents": contents },
            "comments": comments,
        }
    })))
}
