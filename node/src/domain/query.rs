//! Reads: what a member may see, computed from the replicated state.

use std::collections::BTreeSet;

use super::keys;
use super::model::*;
use super::store::{Store, StoreExt, StoreFault};

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

// ------------------------------------------------------ integrated apps

pub fn corp<S: Store + ?Sized>(s: &S) -> Result<Option<Corp>, StoreFault> {
    s.get_as(keys::CORP)
}

pub fn app<S: Store + ?Sized>(s: &S, agentid: u32) -> Result<Option<App>, StoreFault> {
    s.get_as(&keys::app(agentid))
}

/// The app whose secret has this SHA-256.
pub fn app_by_secret<S: Store + ?Sized>(s: &S, hash: &[u8; 32]) -> Result<Option<App>, StoreFault> {
    match s.get_as::<u32>(&keys::app_secret(hash))? {
        Some(id) => app(s, id),
        None => Ok(None),
    }
}

pub fn apps<S: Store + ?Sized>(s: &S) -> Result<Vec<App>, StoreFault> {
    Ok(s.scan_as::<App>(keys::APPS, None, usize::MAX)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

pub fn profile<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Profile, StoreFault> {
    Ok(s.get_as(&keys::profile(userid))?.unwrap_or_default())
}

pub fn callback_state<S: Store + ?Sized>(s: &S, agentid: u32) -> Result<CallbackState, StoreFault> {
    Ok(s.get_as(&keys::callback_state(agentid))?
        .unwrap_or_default())
}

/// Queued callback events of an app, oldest first.
pub fn callback_items<S: Store + ?Sized>(
    s: &S,
    agentid: u32,
    limit: usize,
) -> Result<Vec<CallbackItem>, StoreFault> {
    Ok(
        s.scan_as::<CallbackItem>(&keys::callback_items(agentid), None, limit)?
            .into_iter()
            .map(|(_, i)| i)
            .collect(),
    )
}

/// Apps with a callback configured.
pub fn apps_with_callback<S: Store + ?Sized>(s: &S) -> Result<Vec<App>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::APPS_WITH_CALLBACK, None, usize::MAX)? {
        let Some(id) = k
            .get(keys::APPS_WITH_CALLBACK.len()..)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            continue;
        };
        if let Some(a) = app(s, id)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Pending leader-driven work: (id, item).
pub fn work<S: Store + ?Sized>(s: &S) -> Result<Vec<(u64, WorkItem)>, StoreFault> {
    Ok(s.scan_as::<WorkItem>(keys::WORK, None, usize::MAX)?
        .into_iter()
        .map(|(k, w)| (keys::tail_u64(&k), w))
        .collect())
}

pub fn job<S: Store + ?Sized>(s: &S, jobid: &str) -> Result<Option<Job>, StoreFault> {
    s.get_as(&keys::job(jobid))
}

/// Jobs not finished yet.
pub fn running_jobs<S: Store + ?Sized>(s: &S) -> Result<Vec<Job>, StoreFault> {
    Ok(s.scan_as::<Job>(keys::JOBS, None, usize::MAX)?
        .into_iter()
        .map(|(_, j)| j)
        .filter(|j| j.cursor != JobCursor::Done)
        .collect())
}

/// Every row result of a job, in order.
pub fn job_results<S: Store + ?Sized>(s: &S, jobid: &str) -> Result<Vec<RowResult>, StoreFault> {
    Ok(
        s.scan_as::<Vec<RowResult>>(&keys::job_results(jobid), None, usize::MAX)?
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect(),
    )
}

pub fn media_meta<S: Store + ?Sized>(s: &S, id: &str) -> Result<Option<MediaMeta>, StoreFault> {
    s.get_as(&keys::media_meta(id))
}

/// The bytes of a sealed upload.
pub fn media_bytes<S: Store + ?Sized>(s: &S, meta: &MediaMeta) -> Result<Vec<u8>, StoreFault> {
    let mut out = Vec::with_capacity(meta.size as usize);
    for i in 0..meta.chunks {
        match s.get(&keys::media_chunk(&meta.media_id, i))? {
            Some(b) => out.extend_from_slice(&b),
            None => {
                return Err(StoreFault(format!(
                    "upload {} lacks chunk {i}",
                    meta.media_id
                )));
            }
        }
    }
    Ok(out)
}

/// The app that owns an app chat, by chatid.
pub fn app_chat_owner<S: Store + ?Sized>(s: &S, chatid: &str) -> Result<Option<u32>, StoreFault> {
    s.get_as(&keys::app_chat(&keys::chat_conv_id(chatid)))
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

/// Notices whose next step is due at `now` (the leader's schedule), the
/// earliest first.
pub fn notices_due<S: Store + ?Sized>(
    s: &S,
    now: u64,
    limit: usize,
) -> Result<Vec<Notice>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::NOTICE_DUE, None, limit)? {
        let Some(due) = k
            .get(5..13)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            continue;
        };
        if due > now {
            break;
        }
        let id = keys::tail_u64(&k);
        if let Some(n) = s.get_as::<Notice>(&keys::notice(id))? {
            out.push(n);
        }
    }
    Ok(out)
}

pub fn notice<S: Store + ?Sized>(s: &S, id: u64) -> Result<Option<Notice>, StoreFault> {
    s.get_as(&keys::notice(id))
}

pub fn notice_recipient<S: Store + ?Sized>(
    s: &S,
    id: u64,
    userid: &str,
) -> Result<Option<NoticeRecipient>, StoreFault> {
    s.get_as(&keys::notice_recipient(id, userid))
}

pub fn notice_card<S: Store + ?Sized>(s: &S, n: &Notice) -> Result<NoticeCard, StoreFault> {
    Ok(NoticeCard {
        id: n.id,
        sender: n.sender.clone(),
        title: n.title.clone(),
        body: s.get_as(&keys::notice_body(n.id))?.unwrap_or_default(),
        sent_ms: n.sent_ms,
        deadline_ms: n.deadline_ms,
    })
}

/// A member's notices, newest first: received (`sent` false) or sent.
pub fn notices_of<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    sent: bool,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Notice>, StoreFault> {
    let (prefix, start) = if sent {
        (
            keys::notice_sent_by(userid),
            before.map(|b| keys::notice_sent(userid, b)),
        )
    } else {
        (
            keys::notice_inbox_of(userid),
            before.map(|b| keys::notice_inbox(userid, b)),
        )
    };
    let mut out = Vec::new();
    for (k, _) in s.scan(&prefix, start.as_deref(), limit)? {
        let id = u64::MAX - keys::tail_u64(&k);
        if let Some(n) = notice(s, id)? {
            out.push(n);
        }
    }
    Ok(out)
}

/// A page of a notice's recipients and the cursor of the next page.
pub type RecipientPage = Page<NoticeRecipient>;

/// Records by userid and the cursor of the next page.
pub type Page<T> = (Vec<(String, T)>, Option<String>);

/// Recipients of a notice after `cursor`, by userid, with their state;
/// `filter` keeps some of them. At most `budget` records are looked at,
/// so a sparse filter may return a short page with a next cursor.
pub fn notice_recipients<S: Store + ?Sized>(
    s: &S,
    id: u64,
    filter: impl Fn(&NoticeRecipient) -> bool,
    cursor: Option<&str>,
    limit: usize,
    budget: usize,
) -> Result<RecipientPage, StoreFault> {
    by_userid(
        s,
        &keys::notice_recipients(id),
        filter,
        cursor,
        limit,
        budget,
    )
}

/// Records `<prefix><userid>` after `cursor` kept by `filter` (at most
/// `limit`, looking at most at `budget`), and the next cursor.
fn by_userid<S: Store + ?Sized, T: serde::de::DeserializeOwned>(
    s: &S,
    prefix: &[u8],
    filter: impl Fn(&T) -> bool,
    cursor: Option<&str>,
    limit: usize,
    budget: usize,
) -> Result<Page<T>, StoreFault> {
    let mut after = cursor.map(|c| [prefix, c.as_bytes()].concat());
    let mut out = Vec::new();
    let mut looked = 0;
    loop {
        let page = s.scan_as::<T>(prefix, after.as_deref(), 1000)?;
        let Some((last, _)) = page.last() else {
            return Ok((out, None));
        };
        let last = last.clone();
        for (k, r) in page {
            looked += 1;
            let u = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let keep = filter(&r);
            if keep {
                out.push((u.clone(), r));
            }
            if out.len() == limit || looked == budget {
                return Ok((out, Some(u)));
            }
        }
        after = Some(last);
    }
}

/// Who a leader was told about for notice `id`, after `cursor`.
pub fn notice_escalation_of<S: Store + ?Sized>(
    s: &S,
    id: u64,
    leader: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, StoreFault> {
    let prefix = keys::notice_escalation_of(id, leader);
    let after = cursor.map(|c| keys::notice_escalation(id, leader, c));
    Ok(s.scan(&prefix, after.as_deref(), limit)?
        .into_iter()
        .map(|(k, _)| keys::tail_str(&k))
        .collect())
}

/// The newest notice id (ids are 1, 2, 3, ...).
pub fn notice_count<S: Store + ?Sized>(s: &S) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(keys::NOTICE_CTR)?.unwrap_or(0))
}

pub fn notice_policy<S: Store + ?Sized>(s: &S) -> Result<NoticePolicy, StoreFault> {
    Ok(s.get_as(keys::NOTICE_POLICY)?.unwrap_or_default())
}

// ------------------------------------------------------------ announcements

pub fn announcement<S: Store + ?Sized>(s: &S, id: u64) -> Result<Option<Announcement>, StoreFault> {
    s.get_as(&keys::announcement(id))
}

pub fn announcement_body<S: Store + ?Sized>(s: &S, id: u64) -> Result<Vec<Block>, StoreFault> {
    Ok(s.get_as(&keys::announcement_body(id))?.unwrap_or_default())
}

pub fn announcement_targets<S: Store + ?Sized>(
    s: &S,
    id: u64,
) -> Result<NoticeTargets, StoreFault> {
    Ok(s.get_as(&keys::announcement_targets(id))?
        .unwrap_or_default())
}

pub fn announcement_reader<S: Store + ?Sized>(
    s: &S,
    id: u64,
    userid: &str,
) -> Result<Option<AnnouncementReader>, StoreFault> {
    s.get_as(&keys::announcement_reader(id, userid))
}

/// Readers of an announcement (audience and late readers) after `cursor`.
pub fn announcement_readers<S: Store + ?Sized>(
    s: &S,
    id: u64,
    filter: impl Fn(&AnnouncementReader) -> bool,
    cursor: Option<&str>,
    limit: usize,
    budget: usize,
) -> Result<Page<AnnouncementReader>, StoreFault> {
    by_userid(
        s,
        &keys::announcement_readers(id),
        filter,
        cursor,
        limit,
        budget,
    )
}

/// Announcements pinned now that `m` sees though they were not sent to
/// them (they joined or moved into scope later), among the newest 500.
pub fn announcements_late_for<S: Store + ?Sized>(
    s: &S,
    m: &Member,
    now_ms: u64,
) -> Result<Vec<Announcement>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::ANNOUNCEMENTS_LISTED, None, 500)? {
        let id = u64::MAX - keys::tail_u64(&k);
        let Some(a) = announcement(s, id)? else {
            continue;
        };
        if a.withdrawn_ms != 0 || a.pinned_until_ms <= now_ms || a.expanding.is_some() {
            continue;
        }
        let t = announcement_targets(s, id)?;
        if crate::domain::apply::announcements::in_scope(&a, &t, m)
            && s.get(&keys::announcement_inbox(&m.userid, id))?.is_none()
        {
            out.push(a);
        }
    }
    Ok(out)
}

/// A member's announcements, newest first: received (`sent` false) or
/// published by them; withdrawn ones left out of the received.
pub fn announcements_of<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    sent: bool,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Announcement>, StoreFault> {
    let (prefix, start) = if sent {
        (
            keys::announcement_sent_by(userid),
            before.map(|b| keys::announcement_sent(userid, b)),
        )
    } else {
        (
            keys::announcement_inbox_of(userid),
            before.map(|b| keys::announcement_inbox(userid, b)),
        )
    };
    let mut out = Vec::new();
    let mut after = start;
    loop {
        let page = s.scan(&prefix, after.as_deref(), limit)?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        after = Some(last.clone());
        for (k, _) in page {
            let id = u64::MAX - keys::tail_u64(&k);
            if let Some(a) = announcement(s, id)?
                && (sent || a.withdrawn_ms == 0)
            {
                out.push(a);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
    }
}

/// Every announcement, newest first (operators).
pub fn announcements_all<S: Store + ?Sized>(
    s: &S,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Announcement>, StoreFault> {
    let start = before.map(keys::announcement_listed);
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::ANNOUNCEMENTS_LISTED, start.as_deref(), limit)? {
        if let Some(a) = announcement(s, u64::MAX - keys::tail_u64(&k))? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Announcements still being sent out (the leader proposes their steps).
pub fn announcements_due<S: Store + ?Sized>(
    s: &S,
    limit: usize,
) -> Result<Vec<Announcement>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::ANNOUNCEMENT_DUE, None, limit)? {
        if let Some(a) = announcement(s, keys::tail_u64(&k))? {
            out.push(a);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- approvals

pub fn approval_templates<S: Store + ?Sized>(s: &S) -> Result<Vec<ApprovalTemplate>, StoreFault> {
    Ok(
        s.scan_as::<ApprovalTemplate>(keys::APPROVAL_TEMPLATES, None, usize::MAX)?
            .into_iter()
            .map(|(_, t)| t)
            .collect(),
    )
}

pub fn approval_template<S: Store + ?Sized>(
    s: &S,
    id: &str,
) -> Result<Option<ApprovalTemplate>, StoreFault> {
    s.get_as(&keys::approval_template(id))
}

pub fn approval<S: Store + ?Sized>(s: &S, id: u64) -> Result<Option<ApprovalRequest>, StoreFault> {
    s.get_as(&keys::approval(id))
}

/// One of a member's approval lists, newest first.
pub fn approvals_of<S: Store + ?Sized>(
    s: &S,
    list: &[u8; 4],
    userid: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<ApprovalRequest>, StoreFault> {
    let prefix = keys::approval_list_of(list, userid);
    let start = before.map(|b| keys::approval_listed(list, userid, b));
    let mut out = Vec::new();
    for (k, _) in s.scan(&prefix, start.as_deref(), limit)? {
        if let Some(r) = approval(s, u64::MAX - keys::tail_u64(&k))? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Finished requests between `from_ms` and `to_ms` (inclusive), oldest
/// first, after request id `after` at the same time.
pub fn approvals_finished<S: Store + ?Sized>(
    s: &S,
    from_ms: u64,
    to_ms: u64,
    after: Option<(u64, u64)>,
    limit: usize,
) -> Result<Vec<ApprovalRequest>, StoreFault> {
    let start = match after {
        Some((ms, id)) => keys::approval_finished(ms, id),
        None => keys::approval_finished(from_ms, 0),
    };
    // No request has id 0: the first start is before every real key.
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::APPROVALS_FINISHED, Some(&start), limit)? {
        let ms = k
            .get(4..12)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        if ms > to_ms || out.len() >= limit {
            break;
        }
        if let Some(r) = approval(s, keys::tail_u64(&k))? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Requests filed between `from_ms` and `to_ms` with id above `after`,
/// kept by `filter`: at most `limit`, looking at no more than 10,000
/// records; the next cursor (an id) when there may be more.
pub fn approvals_filed<S: Store + ?Sized>(
    s: &S,
    from_ms: u64,
    to_ms: u64,
    after: u64,
    limit: usize,
    filter: impl Fn(&ApprovalRequest) -> bool,
) -> Result<(Vec<ApprovalRequest>, Option<u64>), StoreFault> {
    let mut out = Vec::new();
    let mut at = keys::approval(after);
    let mut looked = 0;
    loop {
        let page = s.scan_as::<ApprovalRequest>(b"apr/", Some(&at), 500)?;
        let Some((last, _)) = page.last() else {
            return Ok((out, None));
        };
        at = last.clone();
        for (_, r) in page {
            looked += 1;
            let id = r.id;
            if (from_ms..=to_ms).contains(&r.submitted_ms) && filter(&r) {
                out.push(r);
            }
            if out.len() == limit || looked == 10_000 {
                return Ok((out, Some(id)));
            }
        }
    }
}

// ---------------------------------------------------------------- files

pub fn file<S: Store + ?Sized>(s: &S, id: &str) -> Result<Option<super::BlobRecord>, StoreFault> {
    s.get_as(&keys::file(id))
}

/// Bytes of live files held by `uploader`.
pub fn file_usage<S: Store + ?Sized>(s: &S, uploader: &str) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(&keys::file_usage(uploader))?.unwrap_or(0))
}

pub fn file_policy<S: Store + ?Sized>(s: &S) -> Result<super::FilePolicy, StoreFault> {
    super::apply::files::file_policy(s)
}

/// The file if `userid` may read it: `NotFound` when there is no such
/// file (never recorded, recalled, past retention), `Forbidden` when it
/// exists but no conversation of theirs carries it.
pub fn file_for<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    id: &str,
) -> Result<Result<super::BlobRecord, Refusal>, StoreFault> {
    let Some(f) = file(s, id)? else {
        return Ok(refuse(Code::NotFound, format!("no file {id:?}")));
    };
    if super::apply::files::may_read(s, userid, &f)? {
        Ok(Ok(f))
    } else {
        Ok(refuse(
            Code::Forbidden,
            format!("file {id:?} is not in any conversation of yours"),
        ))
    }
}

/// Recorded files and their bytes (the replicated view, same on every node).
pub fn file_totals<S: Store + ?Sized>(s: &S) -> Result<(u64, u64), StoreFault> {
    let (mut n, mut bytes) = (0u64, 0u64);
    s.visit_as::<super::BlobRecord>(keys::FILES, None, |_, f| {
        n += 1;
        bytes += f.size;
        Ok(true)
    })?;
    Ok((n, bytes))
}
