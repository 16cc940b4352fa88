//! `externalcontact/groupchat/*`: customer groups (客户群) in WeCom's
//! shapes — list with status filters, details with member types, and the
//! hand-over of groups to a new owner (after a departure at once, in
//! service after the contacts' window). See `externalcontact.rs` for the
//! contacts and the shared rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::externalcontact::{Handover, active_member, departed, secs, userid_field, waiting};
use super::extract::{AppCall, WeJson};
use super::propose;
use crate::domain::store::{Store, StoreExt};
use crate::domain::{
    self, Command, ConvKind, Conversation, Event, MAX_TRANSFER_ITEMS, Scope, TransferStatus, keys,
};
use crate::http::{S, store_error};
use crate::messaging::ViewStore;

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
