//! Audiences of notices and announcements: who may address whom, the
//! departments a target names (with everything below them), and the
//! members found part by part as the leader sends one out.

use std::collections::BTreeSet;

use super::notices::{MAX_LISTED_DEPTS, MAX_LISTED_USERS};
use super::*;

/// Whether `userid` is an active member.
pub(super) fn is_active<T: Store + ?Sized>(s: &T, userid: &str) -> Result<bool, StoreFault> {
    Ok(s.get_as::<Member>(&keys::user(userid))?
        .is_some_and(|m| m.status == MemberStatus::Active))
}

/// `d` and every department below it.
pub(super) fn subtree<S: Store>(
    s: &Overlay<'_, S>,
    d: u64,
    out: &mut BTreeSet<u64>,
) -> Result<(), StoreFault> {
    let mut todo = vec![d];
    while let Some(cur) = todo.pop() {
        if !out.insert(cur) {
            continue;
        }
        for (k, _) in s.scan(&keys::dept_children(cur), None, usize::MAX)? {
            todo.push(keys::tail_u64(&k));
        }
    }
    Ok(())
}

/// The departments `userid` leads, with everything below them.
pub(super) fn led_subtrees<S: Store>(
    s: &Overlay<'_, S>,
    userid: &str,
) -> Result<BTreeSet<u64>, StoreFault> {
    let mut out = BTreeSet::new();
    for (_, d) in s.scan_as::<Department>(b"dept/", None, usize::MAX)? {
        if d.leaders.iter().any(|l| l == userid) {
            subtree(s, d.id, &mut out)?;
        }
    }
    Ok(out)
}

/// Whether anyone but `sender` would receive a notice to `t` (stops at
/// the first).
pub(super) fn anyone<S: Store>(
    s: &Overlay<'_, S>,
    t: &NoticeTargets,
    sender: &str,
) -> Result<bool, StoreFault> {
    for u in &t.users {
        if u != sender && is_active(s, u)? {
            return Ok(true);
        }
    }
    let mut after: Option<Vec<u8>> = None;
    if t.all {
        loop {
            let page = s.scan_as::<Member>(keys::USERS, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else {
                return Ok(false);
            };
            if page
                .iter()
                .any(|(_, m)| m.userid != sender && m.status == MemberStatus::Active)
            {
                return Ok(true);
            }
            after = Some(last.clone());
        }
    }
    for d in &t.depts {
        let prefix = keys::dept_members(*d);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = s.scan(&prefix, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            for (k, _) in &page {
                let u = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                if u != sender && is_active(s, &u)? {
                    return Ok(true);
                }
            }
            after = Some(last.clone());
        }
    }
    Ok(false)
}

/// Titles of notices and announcements.
pub const MAX_TITLE_CHARS: usize = 128;

/// A notice's or announcement's title: 1-128 characters, not blank, no
/// control characters.
pub(super) fn valid_title(title: &str) -> Result<(), Refusal> {
    let len = title.chars().count();
    if !(1..=MAX_TITLE_CHARS).contains(&len)
        || title.trim().is_empty()
        || title.chars().any(char::is_control)
    {
        return refuse(
            Code::InvalidArgument,
            format!("the title must be 1-{MAX_TITLE_CHARS} characters without control characters"),
        );
    }
    Ok(())
}

/// Check who `actor` may address and resolve `to` into targets. Holders
/// of `perm` address anyone; without it, department leaders may address
/// what they lead when the policy lets them. `what` names the thing for
/// messages ("urgent notices", "announcements").
pub(super) fn resolve<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    perm: Permission,
    to: &Recipients,
    what: &str,
) -> R<NoticeTargets> {
    let _ = check!(active_member(s, actor, true));
    let granted = s.get(&keys::permission(perm.as_str(), actor))?.is_some();
    let leaders_may: NoticePolicy = s.get_as(keys::NOTICE_POLICY)?.unwrap_or_default();
    let led = if granted || !leaders_may.leaders_may_send {
        BTreeSet::new()
    } else {
        led_subtrees(s, actor)?
    };
    ensure!(
        granted || !led.is_empty(),
        Code::Forbidden,
        "sending {what} needs the {} permission (granted by the system administrator)",
        perm.as_str()
    );
    ensure!(
        !to.users.is_empty() || !to.parties.is_empty() || to.all,
        Code::NoRecipients,
        "give users, departments or all"
    );
    ensure!(
        to.users.len() <= MAX_LISTED_USERS && to.parties.len() <= MAX_LISTED_DEPTS,
        Code::LimitExceeded,
        "at most {MAX_LISTED_USERS} users and {MAX_LISTED_DEPTS} departments: send to departments or to all"
    );
    let mut users = BTreeSet::new();
    for u in &to.users {
        match s.get_as::<Member>(&keys::user(u))? {
            Some(m) if m.status != MemberStatus::Departed => {
                users.insert(m.userid);
            }
            _ => return Ok(refuse(Code::NotFound, format!("no member {u:?}"))),
        }
    }
    let mut depts = BTreeSet::new();
    for dept in &to.parties {
        ensure!(
            s.get(&keys::dept(*dept))?.is_some(),
            Code::NotFound,
            "no department {dept}"
        );
        subtree(s, *dept, &mut depts)?;
    }
    if !granted {
        // A leader without the grant: only within what they lead.
        ensure!(
            !to.all || led.contains(&ROOT_DEPARTMENT),
            Code::Forbidden,
            "department leaders may address only their own departments (everyone needs the root department)"
        );
        ensure!(
            depts.iter().all(|x| led.contains(x)),
            Code::Forbidden,
            "department leaders may address only their own departments"
        );
        for u in &users {
            let m: Option<Member> = s.get_as(&keys::user(u))?;
            ensure!(
                m.is_some_and(|m| m.departments.iter().any(|x| led.contains(x))),
                Code::Forbidden,
                "department leaders may address only members of their own departments ({u} is not)"
            );
        }
    }
    let mut targets = NoticeTargets {
        all: to.all,
        ..Default::default()
    };
    if !targets.all {
        // Sent to everyone, the listed ones are already in.
        targets.users = users.into_iter().collect();
        targets.depts = depts.into_iter().collect();
    }
    ensure!(
        anyone(s, &targets, actor)?,
        Code::NoRecipients,
        "no active member other than the sender is among the recipients"
    );
    Ok(Ok(targets))
}

/// The parts of a target: the listed users (or the directory, for all),
/// then one part per department.
pub(super) fn parts(t: &NoticeTargets) -> u32 {
    1 + t.depts.len() as u32
}

/// Up to `budget` candidates of `part` after `after` (not yet checked to
/// be active; a member in several departments comes up more than once).
/// Fewer than `budget` means the part is finished.
pub(super) fn batch<S: Store>(
    s: &Overlay<'_, S>,
    t: &NoticeTargets,
    part: u32,
    after: &str,
    budget: usize,
) -> Result<Vec<String>, StoreFault> {
    Ok(if part == 0 && t.all {
        let start = (!after.is_empty()).then(|| keys::user(after));
        s.scan(keys::USERS, start.as_deref(), budget)?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[keys::USERS.len()..]).into_owned())
            .collect()
    } else if part == 0 {
        t.users
            .iter()
            .filter(|u| after.is_empty() || u.as_str() > after)
            .take(budget)
            .cloned()
            .collect()
    } else {
        let Some(dept) = t.depts.get(part as usize - 1) else {
            return Ok(Vec::new());
        };
        let prefix = keys::dept_members(*dept);
        let start = (!after.is_empty()).then(|| keys::dept_member(*dept, after));
        s.scan(&prefix, start.as_deref(), budget)?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            .collect()
    })
}
