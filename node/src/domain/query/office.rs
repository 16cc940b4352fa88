//! Reads for urgent notices, announcements and approvals.

use crate::domain::keys;
use crate::domain::model::*;
use crate::domain::store::{Store, StoreExt, StoreFault};

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
