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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::domain::store::{Store, StoreExt};
use crate::domain::{
    self, Command, ConvKind, Conversation, Event, MAX_TRANSFER_ITEMS, Member, MemberStatus,
    Permission, Scope, TransferStatus, keys,
};
use crate::http::{S, store_error};
use crate::messaging::ViewStore;

/// The most rows a page of `get_unassigned_list` holds (WeCom's limit).
const MAX_PAGE: usize = 1000;

/// WeCom's limit on a transfer's success message.
const MAX_MESSAGE_CHARS: usize = 200;

fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// A required userid field: 41009 when missing, 40003 when malformed.
fn userid_field(v: Option<String>, field: &str) -> Result<String, WeErr> {
    let u = v
        .filter(|u| !u.is_empty())
        .ok_or_else(|| err(code::MISSING_USERID, format!("{field} is required")))?;
    domain::apply::valid_userid(&u)
        .map_err(|r| err(code::INVALID_USERID, format!("{field}: {}", r.message)))?;
    Ok(u)
}

/// A member of any status (60111 for anyone else, external accounts
/// included).
fn member(view: &ViewStore, userid: &str, field: &str) -> Result<Member, WeErr> {
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
fn active_member(view: &ViewStore, userid: &str, field: &str) -> Result<Member, WeErr> {
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
fn waiting(view: &ViewStore, item: &str) -> Result<bool, WeErr> {
    Ok(view
        .get(&keys::transfer_item(item))
        .map_err(store_error)?
        .is_some())
}

fn departed(view: &ViewStore, userid: &str) -> Result<bool, WeErr> {
    Ok(domain::query::member(view, userid)
        .map_err(store_error)?
        .is_some_and(|m| m.status == MemberStatus::Departed))
}

/// Errors of the call itself (not of one item): the shared layer, the
/// app's token or scopes, the request.
fn call_error(e: &WeErr) -> bool {
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
enum Handover {
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

// ------------------------------------------------------------ customer groups

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerFilter {
    #[serde(default)]
    userid_list: Option<Vec<String>>,
    #[serde(default)]
    partyid_list: Option<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupListReq {
    #[serde(default)]
    status_filter: Option<u8>,
    #[serde(default)]
    owner_filter: Option<OwnerFilter>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    /// WeCom's older paging (`offset` + `limit`), without a cursor.
    #[serde(default)]
    offset: Option<u64>,
}

/// The newest done transfer of each customer group: (from, to, whether it
/// took effect at once), for status 3 (inherited from a departed owner).
fn inherited(view: &ViewStore) -> Result<HashMap<String, (String, String, bool)>, WeErr> {
    let mut out = HashMap::new();
    for t in domain::external::transfers(view, None, None, usize::MAX).map_err(store_error)? {
        if t.status != TransferStatus::Done {
            continue;
        }
        for g in &t.groups {
            out.entry(g.clone())
                .or_insert_with(|| (t.from.clone(), t.to.clone(), t.due_ms == t.created_ms));
        }
    }
    Ok(out)
}

/// WeCom's group status: 0 the owner is employed, 1 the owner departed
/// and the group waits for a new owner, 2 its hand-over is waiting, 3 it
/// was inherited from a departed owner.
fn group_status(
    view: &ViewStore,
    c: &Conversation,
    done: &HashMap<String, (String, String, bool)>,
    departed_cache: &mut HashMap<String, bool>,
) -> Result<u8, WeErr> {
    let mut is_departed = |u: &str| -> Result<bool, WeErr> {
        if let Some(d) = departed_cache.get(u) {
            return Ok(*d);
        }
        let d = departed(view, u)?;
        departed_cache.insert(u.to_string(), d);
        Ok(d)
    };
    if is_departed(&c.owner)? {
        return Ok(if waiting(view, &format!("g:{}", c.id))? {
            2
        } else {
            1
        });
    }
    if let Some((from, to, at_once)) = done.get(&c.id)
        && *to == c.owner
        && *at_once
        && is_departed(from)?
    {
        return Ok(3);
    }
    Ok(0)
}

/// Customer groups after `after` (`owner\0id`), of `owners` or all.
fn groups_after(
    view: &ViewStore,
    owners: Option<&[String]>,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<Conversation>, WeErr> {
    match owners {
        None => Ok(domain::external::customer_groups(view, after, n).map_err(store_error)?),
        Some(owners) => {
            let mut out = Vec::new();
            for o in owners {
                for c in domain::external::customer_groups_of(view, o).map_err(store_error)? {
                    let key = format!("{}\0{}", o, c.id);
                    if after.is_none_or(|a| key.as_str() > a) && c.owner == *o {
                        out.push(c);
                    }
                }
            }
            out.truncate(n);
            Ok(out)
        }
    }
}

/// `POST externalcontact/groupchat/list`
pub async fn groupchat_list(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<GroupListReq>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let limit = match req.limit {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => return Err(invalid(format!("limit {n}: 1-1000"))),
    };
    let filter = req.status_filter.unwrap_or(0);
    if filter > 3 {
        return Err(invalid(format!(
            "status_filter {filter}: 0 all, 1 owner departed, 2 hand-over waiting, 3 inherited"
        )));
    }
    let owners = match req.owner_filter {
        None => None,
        Some(f) => {
            if f.partyid_list.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(invalid(
                    "owner_filter.partyid_list is not supported: name the owners in userid_list",
                ));
            }
            let mut l = f.userid_list.unwrap_or_default();
            for u in &l {
                domain::apply::valid_userid(u).map_err(|r| {
                    err(
                        code::INVALID_USERID,
                        format!("owner_filter.userid_list: {}", r.message),
                    )
                })?;
            }
            l.sort();
            l.dedup();
            (!l.is_empty()).then_some(l)
        }
    };
    let mut after = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.split_once(':')
                .map(|(o, id)| format!("{o}\0{id}"))
                .ok_or_else(|| err(code::INVALID_CURSOR, format!("invalid cursor {c:?}")))?,
        ),
        None => None,
    };
    let mut skip = if after.is_none() {
        req.offset.unwrap_or(0)
    } else {
        0
    };
    let view = state.view();
    let done = inherited(&view)?;
    let mut cache = HashMap::new();
    let mut out: Vec<Value> = Vec::new();
    let mut last: Option<String> = None;
    let mut next = None;
    'pages: loop {
        let batch = groups_after(&view, owners.as_deref(), after.as_deref(), 256)?;
        if batch.is_empty() {
            break;
        }
        for c in &batch {
            let key = format!("{}\0{}", c.owner, c.id);
            after = Some(key.clone());
            if c.dissolved || c.kind != ConvKind::Customer {
                continue;
            }
            let status = group_status(&view, c, &done, &mut cache)?;
            if filter != 0 && status != filter {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if out.len() == limit {
                next = last.take();
                break 'pages;
            }
            out.push(json!({ "chat_id": c.id, "status": status }));
            last = Some(format!("{}:{}", c.owner, c.id));
        }
    }
    let mut v = json!({ "group_chat_list": out });
    if let Some(n) = next {
        v["next_cursor"] = json!(n);
    }
    Ok(ok(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupGetReq {
    #[serde(default)]
    chat_id: Option<String>,
    /// 1: also each member's `name`.
    #[serde(default)]
    need_name: Option<u8>,
}

/// A customer group by id: 86003 unknown, 90501 not a customer group,
/// 49008 dissolved.
fn customer_group(view: &ViewStore, id: &str) -> Result<Conversation, WeErr> {
    let c = domain::query::conversation(view, id)
        .map_err(store_error)?
        .ok_or_else(|| err(code::CHAT_NOT_FOUND, format!("chat {id:?} not found")))?;
    if c.kind != ConvKind::Customer {
        return Err(err(
            code::NOT_CUSTOMER_GROUP,
            format!("{id:?} is not a customer group"),
        ));
    }
    if c.dissolved {
        return Err(err(
            code::GROUP_DISSOLVED,
            format!("customer group {id:?} was dissolved"),
        ));
    }
    Ok(c)
}

/// `POST externalcontact/groupchat/get {"chat_id"}`
pub async fn groupchat_get(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<GroupGetReq>,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let Some(id) = req.chat_id.filter(|c| !c.is_empty()) else {
        return Err(invalid("chat_id is required"));
    };
    let view = state.view();
    let c = customer_group(&view, &id)?;
    let mut members = Vec::new();
    for (u, m) in
        domain::query::conversation_members(&view, &id, None, usize::MAX).map_err(store_error)?
    {
        let party = domain::external::party(&view, &u).map_err(store_error)?;
        let joined = if m.joined_event == 0 {
            None
        } else {
            view.get_as::<Event>(&keys::event(&id, m.joined_event))
                .map_err(store_error)?
        };
        let mut v = json!({
            "userid": u,
            "type": if party.as_ref().is_some_and(|(_, ext)| *ext) { 2 } else { 1 },
            "join_time": secs(joined.map_or(c.created_ms, |e| e.time_ms)),
            "join_scene": 1,
            "group_nickname": "",
        });
        if req.need_name == Some(1) {
            v["name"] = json!(party.map(|(p, _)| p.name).unwrap_or_default());
        }
        members.push(v);
    }
    let admins: Vec<Value> = c.admins.iter().map(|a| json!({ "userid": a })).collect();
    Ok(ok(json!({
        "group_chat": {
            "chat_id": c.id,
            "name": c.name,
            "owner": c.owner,
            "create_time": secs(c.created_ms),
            "notice": c.announcement,
            "member_list": members,
            "admin_list": admins,
        }
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupTransferReq {
    #[serde(default)]
    chat_id_list: Option<Vec<String>>,
    #[serde(default)]
    new_owner: Option<String>,
}

/// Why `id` cannot go to `new_owner`, or its owner.
fn group_transferable(
    view: &ViewStore,
    id: &str,
    new_owner: &str,
    kind: Handover,
    max_members: u32,
) -> Result<Result<String, WeErr>, WeErr> {
    let c = match customer_group(view, id) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if c.owner == new_owner {
        return Ok(Err(err(
            code::OWNER_UNCHANGED,
            format!("{new_owner:?} owns {id:?} already"),
        )));
    }
    let gone = departed(view, &c.owner)?;
    if kind == Handover::Resigned && !gone {
        return Ok(Err(err(
            code::OWNER_NOT_DEPARTED,
            format!(
                "the owner of {id:?}, {:?}, has not departed: use groupchat/onjob_transfer",
                c.owner
            ),
        )));
    }
    if kind == Handover::InService && gone {
        return Ok(Err(err(
            code::OWNER_DEPARTED,
            format!(
                "the owner of {id:?}, {:?}, has departed: use groupchat/transfer",
                c.owner
            ),
        )));
    }
    if waiting(view, &format!("g:{id}"))? {
        return Ok(Err(err(
            code::GROUP_IN_TRANSFER,
            format!("{id:?} is in a waiting transfer already"),
        )));
    }
    let is_member = view
        .get(&keys::conv_member(id, new_owner))
        .map_err(store_error)?
        .is_some();
    if !is_member && c.member_count >= max_members {
        return Ok(Err(err(
            code::GROUP_FULL,
            format!("{id:?} is full ({max_members} members): {new_owner:?} cannot join"),
        )));
    }
    Ok(Ok(c.owner))
}

/// One transfer per distinct owner: an owner's chats in the call move
/// together or not at all; each chat that does not move is listed with
/// its code.
async fn transfer_groups(
    state: &S,
    call: &AppCall,
    req: GroupTransferReq,
    kind: Handover,
) -> WeResult {
    call.need(Scope::ExternalContact)?;
    let chats = req.chat_id_list.unwrap_or_default();
    if chats.is_empty() {
        return Err(invalid(format!(
            "chat_id_list is required (1-{MAX_TRANSFER_ITEMS} chat ids)"
        )));
    }
    if chats.len() > MAX_TRANSFER_ITEMS {
        return Err(invalid(format!(
            "chat_id_list: at most {MAX_TRANSFER_ITEMS} per call, got {}",
            chats.len()
        )));
    }
    let new_owner = userid_field(req.new_owner, "new_owner")?;
    let view = state.view();
    active_member(&view, &new_owner, "new_owner")?;
    let max = domain::external::policy(&view)
        .map_err(store_error)?
        .max_customer_group_members;
    let mut failed: Vec<Value> = Vec::new();
    let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for id in chats {
        if !seen.insert(id.clone()) {
            continue;
        }
        match group_transferable(&view, &id, &new_owner, kind, max)? {
            Ok(owner) => by_owner.entry(owner).or_default().push(id),
            Err(e) => {
                failed.push(json!({ "chat_id": id, "errcode": e.errcode, "errmsg": e.errmsg }))
            }
        }
    }
    for (owner, ids) in by_owner {
        let cmd = Command::TransferContacts {
            actor: None,
            from: owner,
            to: new_owner.clone(),
            externals: Vec::new(),
            groups: ids.clone(),
            message: String::new(),
        };
        if let Err(e) = propose(state, call, &cmd, Family::CustomerGroup).await {
            for id in ids {
                failed.push(json!({ "chat_id": id, "errcode": e.errcode, "errmsg": e.errmsg }));
            }
        }
    }
    Ok(ok(json!({ "failed_chat_list": failed })))
}

/// `POST externalcontact/groupchat/transfer` (离职继承): groups whose
/// owner has departed move to `new_owner` at once.
pub async fn groupchat_transfer(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<GroupTransferReq>,
) -> WeResult {
    transfer_groups(&state, &call, req, Handover::Resigned).await
}

/// `POST externalcontact/groupchat/onjob_transfer` (在职继承): groups of
/// an employed owner move when the policy's window ends.
pub async fn groupchat_onjob_transfer(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<GroupTransferReq>,
) -> WeResult {
    transfer_groups(&state, &call, req, Handover::InService).await
}
