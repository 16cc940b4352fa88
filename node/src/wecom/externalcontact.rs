//! `externalcontact/*`: a CRM or HR system reads who serves which external
//! contact (外部联系人) and which customer groups (客户群) exist, and hands
//! contacts and groups over to another employee, in WeCom's shapes:
//! in service (在职继承: the contacts have the policy's window to object)
//! and after a departure (离职继承: at once). The records are the native
//! ones (`domain/external.rs`): a hand-over filed here is the same transfer
//! the web client and the admin port show, applied and audited alike.
//!
//! Ids: an `external_userid` is the external account's userid; a `chat_id`
//! is the customer group's conversation id (`xg<n>`). Every call needs the
//! app scope `externalcontact`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::domain::store::{Store, StoreExt};
use crate::domain::{
    self, Command, MAX_TRANSFER_ITEMS, Member, MemberStatus, Permission, Scope, TransferStatus,
    keys,
};
use crate::http::{S, store_error};
use crate::messaging::ViewStore;

/// The most rows a page of `get_unassigned_list` holds (WeCom's limit).
pub(super) const MAX_PAGE: usize = 1000;

/// WeCom's limit on a transfer's success message.
pub(super) const MAX_MESSAGE_CHARS: usize = 200;

pub(super) fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// A required userid field: 41009 when missing, 40003 when malformed.
pub(super) fn userid_field(v: Option<String>, field: &str) -> Result<String, WeErr> {
    let u = v
        .filter(|u| !u.is_empty())
        .ok_or_else(|| err(code::MISSING_USERID, format!("{field} is required")))?;
    domain::apply::valid_userid(&u)
        .map_err(|r| err(code::INVALID_USERID, format!("{field}: {}", r.message)))?;
    Ok(u)
}

/// A member of any status (60111 for anyone else, external accounts
/// included).
pub(super) fn member(view: &ViewStore, userid: &str, field: &str) -> Result<Member, WeErr> {
    domain::query::member(view, userid)
        .map_err(store_error)?
        .ok_or_else(|| {
            err(
                code::USERID_NOT_FOUND,
                format!("{field} {userid:?} is not a member"),
            )
        })
}

/// A member who may receive contacts or groups: active (60111 otherwise).
pub(super) fn active_member(view: &ViewStore, userid: &str, field: &str) -> Result<Member, WeErr> {
    let m = member(view, userid, field)?;
    match m.status {
        MemberStatus::Active => Ok(m),
        MemberStatus::Departed => Err(err(
            code::USERID_NOT_FOUND,
            format!("{field} {userid:?} has departed"),
        )),
        _ => Err(err(
            code::USERID_NOT_FOUND,
            format!("{field} {userid:?} is disabled"),
        )),
    }
}

/// Whether an item (`c:<from>\0<external>` or `g:<conv>`) is in a waiting
/// transfer (an objection takes the contact out of it).
pub(super) fn waiting(view: &ViewStore, item: &str) -> Result<bool, WeErr> {
    Ok(view
        .get(&keys::transfer_item(item))
        .map_err(store_error)?
        .is_some())
}

pub(super) fn departed(view: &ViewStore, userid: &str) -> Result<bool, WeErr> {
    Ok(domain::query::member(view, userid)
        .map_err(store_error)?
        .is_some_and(|m| m.status == MemberStatus::Departed))
}

/// Errors of the call itself (not of one item): the shared layer, the
/// app's token or scopes, the request.
pub(super) fn call_error(e: &WeErr) -> bool {
    [
        code::BUSY,
        code::FORBIDDEN,
        code::INVALID_TOKEN,
        code::RATE_LIMITED,
        code::INVALID_PARAMETER,
    ]
    .contains(&e.errcode)
}

// ------------------------------------------------------------ reads

#[derive(Debug, Deserialize)]
pub struct UseridQuery {
    userid: Option<String>,
}

/// `GET externalcontact/list?userid=`: the contacts an employee serves
/// (also a departed one's, until they are handed over).
pub async fn list(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<UseridQuery>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let userid = userid_field(q.userid, "userid")?;
    let view = state.view();
    member(&view, &userid, "userid")?;
    let ids: Vec<String> = domain::external::contacts_of(&view, &userid)
        .map_err(store_error)?
        .into_iter()
        .map(|(x, _)| x)
        .collect();
    Ok(ok(json!({ "external_userid": ids })))
}

#[derive(Debug, Deserialize)]
pub struct ExternalQuery {
    external_userid: Option<String>,
}

/// `GET externalcontact/get?external_userid=`: the contact and the
/// employees who serve them.
pub async fn get(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<ExternalQuery>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let Some(x) = q.external_userid.filter(|x| !x.is_empty()) else {
        return Err(err(
            code::MISSING_EXTERNAL_USERID,
            "external_userid is required",
        ));
    };
    let view = state.view();
    let e = domain::external::external(&view, &x)
        .map_err(store_error)?
        .ok_or_else(|| {
            err(
                code::INVALID_EXTERNAL_USERID,
                format!("invalid external_userid {x:?}: no such external contact"),
            )
        })?;
    let mut follow = Vec::new();
    for employee in domain::external::servers_of(&view, &x).map_err(store_error)? {
        let Some(c) = domain::external::contact(&view, &employee, &x).map_err(store_error)? else {
            continue;
        };
        let mut f = json!({
            "userid": employee,
            "remark": "",
            "description": "",
            "createtime": secs(c.since_ms),
            "tags": [],
            "remark_corp_name": "",
            "remark_mobiles": [],
        });
        if c.previous.is_some() {
            // 202: assigned by an administrator (a hand-over).
            f["add_way"] = json!(202);
        } else {
            // The contact accepted the employee's invitation.
            f["add_way"] = json!(0);
            f["oper_userid"] = json!(x);
        }
        follow.push(f);
    }
    Ok(ok(json!({
        "external_contact": {
            "external_userid": e.userid,
            "name": e.name,
            "position": "",
            "avatar": "",
            "corp_name": e.org,
            "corp_full_name": e.org,
            "type": 1,
            "gender": 0,
        },
        "follow_user": follow,
    })))
}

/// `GET externalcontact/get_follow_user_list`: the members who may have
/// external contacts (the `external:add` permission), active ones only.
pub async fn get_follow_user_list(State(state): State<S>, call: AppCall) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let view = state.view();
    let mut out = Vec::new();
    for u in domain::query::permission_holders(&view, Permission::ExternalAdd, None, usize::MAX)
        .map_err(store_error)?
    {
        if domain::query::member(&view, &u)
            .map_err(store_error)?
            .is_some_and(|m| m.status == MemberStatus::Active)
        {
            out.push(u);
        }
    }
    Ok(ok(json!({ "follow_user": out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnassignedReq {
    #[serde(default)]
    page_id: Option<u64>,
    #[serde(default)]
    page_size: Option<u64>,
    #[serde(default)]
    cursor: Option<String>,
}

/// One page of `get_unassigned_list`, filled employee by employee.
struct Page {
    rows: Vec<Value>,
    size: usize,
    /// Rows still to pass over (`page_id` paging).
    skip: usize,
    /// Where the next page starts, once this one is full.
    next: Option<String>,
}

impl Page {
    /// Add `employee`'s contacts from the `from`th on; false once the page
    /// is full and another row exists.
    fn add(&mut self, employee: &str, departed_ms: u64, externals: &[String], from: usize) -> bool {
        for (i, x) in externals.iter().enumerate().skip(from) {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            if self.rows.len() == self.size {
                self.next = Some(format!("{employee}:{i}"));
                return false;
            }
            self.rows.push(json!({
                "handover_userid": employee,
                "external_userid": x,
                "dimission_time": secs(departed_ms),
            }));
        }
        true
    }
}

/// `POST externalcontact/get_unassigned_list`: departed employees'
/// contacts waiting for a new owner, one row per contact.
pub async fn get_unassigned_list(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<UnassignedReq>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let size = match req.page_size {
        None | Some(0) => MAX_PAGE,
        Some(n) if n as usize <= MAX_PAGE => n as usize,
        Some(n) => {
            return Err(invalid(format!("page_size {n}: at most {MAX_PAGE}")));
        }
    };
    // Start at the cursor (`<employee>:<index of their contact>`), or
    // `page_id` pages in.
    let (resume, skip) = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let (e, i) = c
                .rsplit_once(':')
                .and_then(|(e, i)| Some((e.to_string(), i.parse::<usize>().ok()?)))
                .ok_or_else(|| err(code::INVALID_CURSOR, format!("invalid cursor {c:?}")))?;
            (Some((e, i)), 0)
        }
        None => {
            let skip = req
                .page_id
                .unwrap_or(0)
                .checked_mul(size as u64)
                .filter(|n| *n < 1_000_000)
                .ok_or_else(|| invalid("page_id is too large; page with cursor"))?;
            (None, skip as usize)
        }
    };
    let view = state.view();
    let mut page = Page {
        rows: Vec::new(),
        size,
        skip,
        next: None,
    };
    let mut full = false;
    let mut after = None;
    if let Some((e, i)) = resume {
        if let Some(ms) = view
            .get_as::<u64>(&keys::departed_with_contacts(&e))
            .map_err(store_error)?
        {
            let xs: Vec<String> = domain::external::contacts_of(&view, &e)
                .map_err(store_error)?
                .into_iter()
                .map(|(x, _)| x)
                .collect();
            full = !page.add(&e, ms, &xs, i);
        }
        after = Some(e);
    }
    while !full {
        let batch =
            domain::external::unassigned(&view, after.as_deref(), 64).map_err(store_error)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.employee.clone());
        for u in &batch {
            if !page.add(&u.employee, u.departed_ms, &u.externals, 0) {
                full = true;
                break;
            }
        }
    }
    Ok(ok(json!({
        "info": page.rows,
        "is_last": page.next.is_none(),
        "next_cursor": page.next.unwrap_or_default(),
    })))
}

// ------------------------------------------------------------ hand-over of contacts

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerTransferReq {
    #[serde(default)]
    handover_userid: Option<String>,
    #[serde(default)]
    takeover_userid: Option<String>,
    #[serde(default)]
    external_userid: Option<Vec<String>>,
    /// Told to each contact with the notice (in service only in WeCom;
    /// used for both here).
    #[serde(default)]
    transfer_success_msg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// `transfer_customer`: the handover is still employed.
    InService,
    /// `resigned/transfer_customer`: the handover has departed.
    Resigned,
    /// The older `transfer`: either, by the handover's status.
    Either,
}

/// One contact's outcome.
struct Item {
    external: String,
    errcode: i64,
    errmsg: String,
}

/// Check each contact, then hand those that may move over in one
/// transfer (all or none of them). A contact that may not move gets its
/// own code; the call fails as a whole only for a bad request.
async fn transfer_customers(
    state: &S,
    call: &AppCall,
    req: CustomerTransferReq,
    kind: Handover,
) -> Result<Vec<Item>, WeErr> {
    call.need(Scope::ExternalContact)?;
    let from = userid_field(req.handover_userid, "handover_userid")?;
    let to = userid_field(req.takeover_userid, "takeover_userid")?;
    let externals = req.external_userid.unwrap_or_default();
    if externals.is_empty() {
        return Err(err(
            code::MISSING_EXTERNAL_USERID,
            format!("external_userid is required (1-{MAX_TRANSFER_ITEMS} userids)"),
        ));
    }
    if externals.len() > MAX_TRANSFER_ITEMS {
        return Err(invalid(format!(
            "external_userid: at most {MAX_TRANSFER_ITEMS} per call, got {}",
            externals.len()
        )));
    }
    let message = req.transfer_success_msg.unwrap_or_default();
    if message.chars().count() > MAX_MESSAGE_CHARS || message.chars().any(char::is_control) {
        return Err(invalid(format!(
            "transfer_success_msg: at most {MAX_MESSAGE_CHARS} characters without control characters"
        )));
    }
    let view = state.view();
    let from_m = member(&view, &from, "handover_userid")?;
    let gone = from_m.status == MemberStatus::Departed;
    match kind {
        Handover::InService if gone => {
            return Err(err(
                code::USERID_NOT_FOUND,
                format!(
                    "handover_userid {from:?} has departed: hand their contacts over with resigned/transfer_customer"
                ),
            ));
        }
        Handover::Resigned if !gone => {
            return Err(err(
                code::NOT_DEPARTED,
                format!(
                    "handover_userid {from:?} has not departed: use transfer_customer (the contacts may object within the window)"
                ),
            ));
        }
        _ => {}
    }
    if from == to {
        return Err(err(
            code::SAME_FOLLOWER,
            "handover_userid and takeover_userid are the same",
        ));
    }
    active_member(&view, &to, "takeover_userid")?;
    let policy = domain::external::policy(&view).map_err(store_error)?;
    let have = domain::external::contacts_of(&view, &to)
        .map_err(store_error)?
        .len();
    let mut room = (policy.max_contacts_per_employee as usize).saturating_sub(have);
    let mut items: Vec<Item> = Vec::new();
    let mut chosen: Vec<String> = Vec::new();
    let mut seen: HashMap<String, (i64, String)> = HashMap::new();
    for x in externals {
        let (errcode, errmsg) = if let Some(r) = seen.get(&x) {
            r.clone()
        } else {
            let r = if domain::external::external(&view, &x)
                .map_err(store_error)?
                .is_none()
            {
                (
                    code::INVALID_EXTERNAL_USERID,
                    format!("{x:?} is not an external contact"),
                )
            } else if domain::external::contact(&view, &from, &x)
                .map_err(store_error)?
                .is_none()
            {
                (code::NOT_FOLLOWER, format!("{from:?} does not serve {x:?}"))
            } else if domain::external::contact(&view, &to, &x)
                .map_err(store_error)?
                .is_some()
            {
                (code::SAME_FOLLOWER, format!("{to:?} serves {x:?} already"))
            } else if waiting(&view, &format!("c:{from}\0{x}"))? {
                (
                    code::IN_TRANSFER,
                    format!("{x:?} is in a waiting transfer already"),
                )
            } else if room == 0 {
                (
                    code::CONTACT_LIMIT,
                    format!(
                        "{to:?} would pass the policy's {} contacts",
                        policy.max_contacts_per_employee
                    ),
                )
            } else {
                room -= 1;
                chosen.push(x.clone());
                (0, "ok".to_string())
            };
            seen.insert(x.clone(), r.clone());
            r
        };
        items.push(Item {
            external: x,
            errcode,
            errmsg,
        });
    }
    if chosen.is_empty() {
        return Ok(items);
    }
    let cmd = Command::TransferContacts {
        actor: None,
        from,
        to,
        externals: chosen,
        groups: Vec::new(),
        message,
    };
    match propose(state, call, &cmd, Family::External).await {
        Ok(_) => {}
        Err(e) if call_error(&e) => return Err(e),
        Err(e) => {
            for i in items.iter_mut().filter(|i| i.errcode == 0) {
                i.errcode = e.errcode;
                i.errmsg = e.errmsg.clone();
            }
        }
    }
    Ok(items)
}

fn customers_answer(items: Vec<Item>) -> WeResult {
    let customer: Vec<Value> = items
        .into_iter()
        .map(|i| json!({ "external_userid": i.external, "errcode": i.errcode }))
        .collect();
    Ok(ok(json!({ "customer": customer })))
}

/// `POST externalcontact/transfer_customer` (在职继承): the handover is
/// still employed; each contact is told and may object until the policy's
/// window ends (`transfer_result` shows status 2 until then).
pub async fn transfer_customer(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<CustomerTransferReq>,
) -> WeResult {
    customers_answer(transfer_customers(&state, &call, req, Handover::InService).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResignedTransferReq {
    #[serde(default)]
    handover_userid: Option<String>,
    #[serde(default)]
    takeover_userid: Option<String>,
    #[serde(default)]
    external_userid: Option<Vec<String>>,
}

/// `POST externalcontact/resigned/transfer_customer` (离职继承): the
/// handover has departed; the contacts move at once.
pub async fn resigned_transfer_customer(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<ResignedTransferReq>,
) -> WeResult {
    let req = CustomerTransferReq {
        handover_userid: req.handover_userid,
        takeover_userid: req.takeover_userid,
        external_userid: req.external_userid,
        transfer_success_msg: None,
    };
    customers_answer(transfer_customers(&state, &call, req, Handover::Resigned).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyTransferReq {
    #[serde(default)]
    external_userid: Option<String>,
    #[serde(default)]
    handover_userid: Option<String>,
    #[serde(default)]
    takeover_userid: Option<String>,
    #[serde(default)]
    transfer_success_msg: Option<String>,
}

/// `POST externalcontact/transfer`: WeCom's older call for one contact
/// (wechatpy's `external_contact.transfer`), in service or resigned by the
/// handover's status; the contact's code is the answer's.
pub async fn transfer(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<LegacyTransferReq>,
) -> WeResult {
    let req = CustomerTransferReq {
        handover_userid: req.handover_userid,
        takeover_userid: req.takeover_userid,
        external_userid: req.external_userid.map(|x| vec![x]),
        transfer_success_msg: req.transfer_success_msg,
    };
    let items = transfer_customers(&state, &call, req, Handover::Either).await?;
    match items.into_iter().find(|i| i.errcode != 0) {
        Some(i) => Err(err(i.errcode, i.errmsg)),
        None => Ok(ok(json!({}))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferResultReq {
    #[serde(default)]
    handover_userid: Option<String>,
    #[serde(default)]
    takeover_userid: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `POST externalcontact/transfer_result` and
/// `resigned/transfer_result`: each contact handed from `handover` to
/// `takeover`, by its latest transfer: status 1 done, 2 waiting (then
/// `takeover_time` is when it will take effect), 3 the contact objected,
/// 5 cancelled (by whoever asked, or because the takeover left in the
/// window).
pub async fn transfer_result(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<TransferResultReq>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let from = userid_field(req.handover_userid, "handover_userid")?;
    let to = userid_field(req.takeover_userid, "takeover_userid")?;
    let offset: usize = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => c
            .parse()
            .map_err(|_| err(code::INVALID_CURSOR, format!("invalid cursor {c:?}")))?,
        None => 0,
    };
    let view = state.view();
    member(&view, &from, "handover_userid")?;
    member(&view, &to, "takeover_userid")?;
    let mut seen = BTreeSet::new();
    let mut rows = Vec::new();
    for t in domain::external::transfers(&view, Some(&from), None, usize::MAX)
        .map_err(store_error)?
        .iter()
        .filter(|t| t.to == to)
    {
        for x in &t.externals {
            if !seen.insert(x.clone()) {
                continue;
            }
            let objected = t.objected.contains(x);
            let (status, when) = match t.status {
                TransferStatus::Waiting if objected => (3, 0),
                TransferStatus::Waiting => (2, secs(t.due_ms)),
                TransferStatus::Done if objected => (3, secs(t.finished_ms)),
                TransferStatus::Done => (1, secs(t.finished_ms)),
                TransferStatus::Cancelled => (5, secs(t.finished_ms)),
            };
            rows.push(json!({ "external_userid": x, "status": status, "takeover_time": when }));
        }
    }
    let more = rows.len() > offset.saturating_add(MAX_PAGE);
    let page: Vec<Value> = rows.into_iter().skip(offset).take(MAX_PAGE).collect();
    Ok(ok(json!({
        "customer": page,
        "next_cursor": if more { (offset + MAX_PAGE).to_string() } else { String::new() },
    })))
}
