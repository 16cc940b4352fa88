//! Reads: what a member may see, computed from the replicated state.
//! Here: the directory, conversations, messages and sync; integrated
//! apps and files in `apps.rs`; notices, announcements and approvals in
//! `office.rs`.

use std::collections::BTreeSet;

use super::keys;
use super::model::*;
use super::store::{Store, StoreExt, StoreFault};

mod apps;
mod office;
pub use apps::*;
pub use office::*;

/// The last event applied on this node: the newest possible sync token.
pub fn head<S: Store + ?Sized>(s: &S) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(keys::EVENT_CTR)?.unwrap_or(0))
}

pub fn member<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Option<Member>, StoreFault> {
    s.get_as(&keys::user(userid))
}

pub fn account<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Option<Account>, StoreFault> {
    s.get_as(&keys::account(userid))
}

pub fn session<S: Store + ?Sized>(
    s: &S,
    token_hash: &[u8; 32],
) -> Result<Option<Session>, StoreFault> {
    s.get_as(&keys::session(token_hash))
}

pub fn department<S: Store + ?Sized>(s: &S, id: u64) -> Result<Option<Department>, StoreFault> {
    s.get_as(&keys::dept(id))
}

pub fn departments<S: Store + ?Sized>(s: &S) -> Result<Vec<Department>, StoreFault> {
    Ok(s.scan_as::<Department>(b"dept/", None, usize::MAX)?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// Department ids a viewer may see under the configured visibility.
pub fn visible_departments<S: Store + ?Sized>(
    s: &S,
    viewer: &Member,
) -> Result<Option<BTreeSet<u64>>, StoreFault> {
    let policy = super::apply::policy(s)?;
    if policy.directory_visibility == Visibility::All {
        return Ok(None);
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<u64> = viewer.departments.clone();
    while let Some(d) = todo.pop() {
        if seen.insert(d) {
            for (k, _) in s.scan(&keys::dept_children(d), None, usize::MAX)? {
                todo.push(keys::tail_u64(&k));
            }
        }
    }
    Ok(Some(seen))
}

pub fn can_see(visible: &Option<BTreeSet<u64>>, m: &Member) -> bool {
    match visible {
        None => true,
        Some(set) => m.departments.iter().any(|d| set.contains(d)),
    }
}

/// Members of a department, by userid, after `cursor`.
pub fn department_members<S: Store + ?Sized>(
    s: &S,
    dept: u64,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<Member>, StoreFault> {
    let prefix = keys::dept_members(dept);
    let after = cursor.map(|c| keys::dept_member(dept, c));
    let mut out = Vec::new();
    for (k, _) in s.scan(&prefix, after.as_deref(), limit)? {
        let userid = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        if let Some(m) = member(s, &userid)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// All members by userid, after `cursor`.
pub fn members<S: Store + ?Sized>(
    s: &S,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<Member>, StoreFault> {
    let after = cursor.map(keys::user);
    Ok(s.scan_as::<Member>(keys::USERS, after.as_deref(), limit)?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// Members whose name, its full pinyin or its pinyin initials start with
/// `prefix` (case-insensitive; `domain::names`), each once.
pub fn search_members<S: Store + ?Sized>(
    s: &S,
    prefix: &str,
    limit: usize,
) -> Result<Vec<Member>, StoreFault> {
    let mut out: Vec<Member> = Vec::new();
    let start = keys::name_prefix(prefix);
    let mut after: Option<Vec<u8>> = None;
    while out.len() < limit {
        let page = s.scan(&start, after.as_deref(), limit)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (k, _) in &page {
            let userid = keys::tail_str(k);
            if out.len() < limit
                && !out.iter().any(|m| m.userid == userid)
                && let Some(m) = member(s, &userid)?
            {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// A conversation as its member sees it.
pub fn conversation_for<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    conv: &str,
) -> Result<Result<(Conversation, ConvMember), Refusal>, StoreFault> {
    let Some(me) = s.get_as::<ConvMember>(&keys::conv_member(conv, userid))? else {
        return Ok(refuse(
            Code::NotAMember,
            format!("{userid:?} is not a member of conversation {conv:?}"),
        ));
    };
    match s.get_as::<Conversation>(&keys::conv(conv))? {
        Some(c) => Ok(Ok((c, me))),
        None => Ok(refuse(Code::NotFound, format!("no conversation {conv:?}"))),
    }
}

/// The user's current conversations (ordered by id), after `cursor`.
pub fn conversations<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<(Conversation, ConvMember)>, StoreFault> {
    let prefix = keys::user_convs(userid);
    let mut after = cursor.map(|c| keys::user_conv(userid, c));
    let mut out = Vec::new();
    while out.len() < limit {
        let page = s.scan_as::<UserConv>(&prefix, after.as_deref(), limit)?;
        if page.is_empty() {
            break;
        }
        for (k, uc) in &page {
            if uc.left_event.is_some() || out.len() >= limit {
                continue;
            }
            let conv = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if let Ok((c, me)) = conversation_for(s, userid, &conv)? {
                out.push((c, me));
            }
        }
        after = page.last().map(|(k, _)| k.clone());
    }
    Ok(out)
}

/// Every conversation the user is or was in, with when they joined/left.
pub fn user_convs<S: Store + ?Sized>(
    s: &S,
    userid: &str,
) -> Result<Vec<(String, UserConv)>, StoreFault> {
    let prefix = keys::user_convs(userid);
    Ok(s.scan_as::<UserConv>(&prefix, None, usize::MAX)?
        .into_iter()
        .map(|(k, uc)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), uc))
        .collect())
}

/// Members of a conversation with their markers, after `cursor`.
pub fn conversation_members<S: Store + ?Sized>(
    s: &S,
    conv: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, ConvMember)>, StoreFault> {
    let prefix = keys::conv_members(conv);
    let after = cursor.map(|c| keys::conv_member(conv, c));
    Ok(s.scan_as::<ConvMember>(&prefix, after.as_deref(), limit)?
        .into_iter()
        .map(|(k, m)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), m))
        .collect())
}

/// Messages of a conversation the member may see: seq > `after_seq`,
/// oldest first, at most `limit`.
pub fn messages<S: Store + ?Sized>(
    s: &S,
    me: &ConvMember,
    conv: &str,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<Message>, StoreFault> {
    let after = keys::message(conv, after_seq);
    Ok(
        s.scan_as::<Message>(&keys::messages(conv), Some(&after), limit)?
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m.event >= me.joined_event)
            .collect(),
    )
}

pub fn message<S: Store + ?Sized>(
    s: &S,
    conv: &str,
    seq: u64,
) -> Result<Option<Message>, StoreFault> {
    s.get_as(&keys::message(conv, seq))
}

/// Who has read message `seq` (the 回执 view), and who has not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipts {
    pub seq: u64,
    pub read: Vec<String>,
    pub unread: Vec<String>,
    pub delivered: u32,
}

pub fn receipts<S: Store + ?Sized>(s: &S, msg: &Message) -> Result<Receipts, StoreFault> {
    let mut r = Receipts {
        seq: msg.seq,
        read: Vec::new(),
        unread: Vec::new(),
        delivered: 0,
    };
    for (userid, m) in conversation_members(s, &msg.conv, None, usize::MAX)? {
        if userid == msg.sender || m.joined_event > msg.event {
            continue;
        }
        if m.delivered_seq >= msg.seq {
            r.delivered += 1;
        }
        if m.read_seq >= msg.seq {
            r.read.push(userid);
        } else {
            r.unread.push(userid);
        }
    }
    Ok(r)
}

/// One page of a user's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub events: Vec<Event>,
    /// Resume from here: every event of this user up to it has been
    /// returned (now or before).
    pub next: u64,
    /// More events are waiting beyond `next`.
    pub more: bool,
}

/// Events of `userid` with number > `since`, oldest first.
///
/// Exact across nodes: only events up to this node's head are considered,
/// and an event's number is the same on every node, so a token taken on
/// one node resumes on any other without a gap or a repeat.
pub fn sync<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    since: u64,
    limit: usize,
) -> Result<SyncPage, StoreFault> {
    let head = head(s)?;
    if head <= since {
        return Ok(SyncPage {
            events: Vec::new(),
            next: since,
            more: false,
        });
    }
    let limit = limit.max(1);
    let mut events: Vec<Event> = Vec::new();
    for (conv, uc) in changed_convs(s, userid, since, head)? {
        let upto = uc.left_event.unwrap_or(u64::MAX).min(head);
        if upto <= since {
            continue;
        }
        let Some(c) = s.get_as::<Conversation>(&keys::conv(&conv))? else {
            continue;
        };
        if c.last_event <= since {
            continue;
        }
        let from = since.max(uc.joined_event.saturating_sub(1));
        let after = keys::event(&conv, from);
        for (_, ev) in s.scan_as::<Event>(&keys::events(&conv), Some(&after), limit + 1)? {
            if ev.no > upto {
                break;
            }
            events.push(ev);
        }
        // Messages are their own posting events from log version 5 (and
        // before it were stored in both places: the duplicates go below).
        for m in messages_posted_after(s, &conv, c.last_seq, from, limit + 1)? {
            if m.event > upto {
                break;
            }
            events.push(m.into_event());
        }
    }
    events.sort_by_key(|e| e.no);
    events.dedup_by_key(|e| e.no);
    let more = events.len() > limit;
    events.truncate(limit);
    let next = if more {
        events.last().map_or(since, |e| e.no)
    } else {
        head
    };
    Ok(SyncPage { events, next, more })
}

/// The messages of `conv` posted by an event after `from`, oldest first, at
/// most `limit`. Event numbers grow with seq, so they are a suffix of the
/// conversation: found by probing back from `last_seq` in doubling steps,
/// then halving (a client that keeps up reads two or three messages).
pub fn messages_posted_after<S: Store + ?Sized>(
    s: &S,
    conv: &str,
    last_seq: u64,
    from: u64,
    limit: usize,
) -> Result<Vec<Message>, StoreFault> {
    let posted_after = |seq: u64| -> Result<bool, StoreFault> {
        Ok(s.get_as::<Message>(&keys::message(conv, seq))?
            .is_some_and(|m| m.event > from))
    };
    // Every seq ≥ `top` was posted after `from`; `lo` (0: none) was not.
    let (mut lo, mut top, mut step) = (0u64, last_seq + 1, 1u64);
    while top > 1 {
        let probe = top.saturating_sub(step).max(1);
        if posted_after(probe)? {
            top = probe;
            step = step.saturating_mul(2);
        } else {
            lo = probe;
            break;
        }
    }
    while lo + 1 < top {
        let mid = lo + (top - lo) / 2;
        if posted_after(mid)? {
            top = mid;
        } else {
            lo = mid;
        }
    }
    if top > last_seq {
        return Ok(Vec::new());
    }
    let after = keys::message(conv, top - 1);
    Ok(
        s.scan_as::<Message>(&keys::messages(conv), Some(&after), limit)?
            .into_iter()
            .map(|(_, m)| m)
            .collect(),
    )
}

/// Longest stretch of the change index one sync reads: beyond it (a
/// client back after a long absence) the member's own conversations are
/// fewer to go through.
pub const CHANGE_SCAN_MAX: u64 = 100_000;

/// The conversations of `userid` that may hold events after `since`, with
/// their membership.
///
/// Cost: min(events since the token, the member's conversations). The
/// member's list is read up to the number of events since the token; if
/// it is longer, the change index names the conversations changed since
/// (log version 4: `chg/`), each checked for membership. So a client that
/// keeps up never goes through all of its member's conversations, and one
/// with a stale token never through more events than its member has
/// conversations.
fn changed_convs<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    since: u64,
    head: u64,
) -> Result<Vec<(String, UserConv)>, StoreFault> {
    let prefix = keys::user_convs(userid);
    let indexed_from = s.get_as::<u64>(keys::CHANGES_FROM)?;
    let budget = head.saturating_sub(since);
    let use_index = indexed_from.is_some_and(|f| since >= f) && budget <= CHANGE_SCAN_MAX;
    // Up to `budget + 1` of the member's conversations: more than that
    // and the index is cheaper.
    let cap = if use_index {
        budget as usize + 1
    } else {
        usize::MAX
    };
    let mine = s.scan_as::<UserConv>(&prefix, None, cap)?;
    if mine.len() < cap {
        return Ok(mine
            .into_iter()
            .map(|(k, uc)| {
                let conv = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                (conv, uc)
            })
            .collect());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let after = keys::change(since);
    for (_, conv) in s.scan(keys::CHANGES, Some(&after), budget as usize)? {
        let conv = String::from_utf8_lossy(&conv).into_owned();
        if !seen.insert(conv.clone()) {
            continue;
        }
        if let Some(uc) = s.get_as::<UserConv>(&keys::user_conv(userid, &conv))? {
            out.push((conv, uc));
        }
    }
    Ok(out)
}

/// Departments under `id` (itself included), depth first.
pub fn department_subtree<S: Store + ?Sized>(
    s: &S,
    id: u64,
) -> Result<Vec<Department>, StoreFault> {
    let mut out = Vec::new();
    let mut todo = vec![id];
    let mut seen = BTreeSet::new();
    while let Some(cur) = todo.pop() {
        if !seen.insert(cur) {
            continue;
        }
        if let Some(d) = department(s, cur)? {
            out.push(d);
        }
        let prefix = keys::dept_children(cur);
        for (k, _) in s.scan(&prefix, None, usize::MAX)? {
            todo.push(keys::tail_u64(&k));
        }
    }
    Ok(out)
}

/// Whether department `id` has sub-departments.
pub fn has_children<S: Store + ?Sized>(s: &S, id: u64) -> Result<bool, StoreFault> {
    Ok(!s.scan(&keys::dept_children(id), None, 1)?.is_empty())
}

/// A conversation by id, whoever asks (for faces that check access
/// themselves, e.g. an app's own chats).
pub fn conversation<S: Store + ?Sized>(
    s: &S,
    id: &str,
) -> Result<Option<Conversation>, StoreFault> {
    s.get_as(&keys::conv(id))
}

/// Whether `userid` holds `perm`.
pub fn has_permission<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    perm: Permission,
) -> Result<bool, StoreFault> {
    Ok(s.get(&keys::permission(perm.as_str(), userid))?.is_some())
}

/// The permissions `userid` holds.
pub fn permissions_of<S: Store + ?Sized>(
    s: &S,
    userid: &str,
) -> Result<Vec<Permission>, StoreFault> {
    let mut out = Vec::new();
    for p in Permission::ALL {
        if has_permission(s, userid, p)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Who holds `perm`, by userid, after `cursor`.
pub fn permission_holders<S: Store + ?Sized>(
    s: &S,
    perm: Permission,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, StoreFault> {
    let prefix = keys::permission_holders(perm.as_str());
    let after = cursor.map(|c| keys::permission(perm.as_str(), c));
    Ok(s.scan(&prefix, after.as_deref(), limit)?
        .into_iter()
        .map(|(k, _)| keys::tail_str(&k))
        .collect())
}
