//! Announcements (公告): publishing, sending out, reading, withdrawal.
//! What is stored: `domain/announcements.rs`.
//!
//! Rules:
//! - Holders of `announcement:publish` publish to departments or to
//!   everyone; department leaders to what they lead when the notice policy
//!   lets leaders send (`leaders_may_send`). Listed users are refused.
//! - The audience is every active member in scope, other than the sender,
//!   found as the leader sends it out (a step per 2,000 candidates). Each
//!   is counted once; the read count is exact for that audience.
//! - A member outside the audience who is in scope when they read it (they
//!   joined or moved in later) is counted as a late reader, never as
//!   unread.
//! - The sender or an operator may withdraw it: it leaves every list and
//!   can no longer be read or counted; its statistics stay for the record.

use super::audience::{self, is_active};
use super::*;

/// Candidates looked at per sending step.
pub const SEND_STEP: usize = 2_000;
/// Characters of text in the whole body.
pub const MAX_BODY_CHARS: usize = 20_000;
pub const MAX_BLOCKS: usize = 200;
/// Runs per paragraph or list item, items per list.
pub const MAX_PARTS: usize = 200;
pub const MAX_LINK_CHARS: usize = 2_048;
/// Pinned for at most a year.
pub const MAX_PIN_MS: u64 = 366 * 24 * 3600 * 1000;

fn load<S: Store>(s: &Overlay<'_, S>, id: u64) -> R<Announcement> {
    match s.get_as::<Announcement>(&keys::announcement(id))? {
        Some(a) => Ok(Ok(a)),
        None => Ok(refuse(Code::NotFound, format!("no announcement {id}"))),
    }
}

/// An http(s) address without spaces or control characters.
pub fn valid_link(url: &str, what: &str) -> Result<(), Refusal> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        url.get(8..).unwrap_or("")
    } else if lower.starts_with("http://") {
        url.get(7..).unwrap_or("")
    } else {
        ""
    };
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().count() > MAX_LINK_CHARS
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return refuse(
            Code::InvalidArgument,
            format!(
                "{what} must be an http:// or https:// address (at most {MAX_LINK_CHARS} characters, no spaces)"
            ),
        );
    }
    Ok(())
}

fn valid_runs(runs: &[Run], at: &str, chars: &mut usize) -> Result<(), Refusal> {
    if runs.is_empty() || runs.len() > MAX_PARTS {
        return refuse(
            Code::InvalidArgument,
            format!("{at} must have 1-{MAX_PARTS} runs"),
        );
    }
    for (i, r) in runs.iter().enumerate() {
        if r.text.is_empty() || r.text.chars().any(char::is_control) {
            return refuse(
                Code::InvalidArgument,
                format!("{at}[{i}].text must be non-empty text without control characters"),
            );
        }
        *chars += r.text.chars().count();
        if let Some(l) = &r.link {
            valid_link(l, &format!("{at}[{i}].link"))?;
        }
    }
    Ok(())
}

/// The body's shape and size: a safe subset by construction.
pub fn valid_body(body: &[Block]) -> Result<(), Refusal> {
    if body.is_empty() || body.len() > MAX_BLOCKS {
        return refuse(
            Code::InvalidArgument,
            format!("the body must have 1-{MAX_BLOCKS} blocks"),
        );
    }
    let mut chars = 0usize;
    for (i, b) in body.iter().enumerate() {
        match b {
            Block::Paragraph(runs) => {
                valid_runs(runs, &format!("body[{i}].paragraph"), &mut chars)?
            }
            Block::Bullets(items) | Block::Numbered(items) => {
                if items.is_empty() || items.len() > MAX_PARTS {
                    return refuse(
                        Code::InvalidArgument,
                        format!("body[{i}] must be a list of 1-{MAX_PARTS} items"),
                    );
                }
                for (j, runs) in items.iter().enumerate() {
                    valid_runs(runs, &format!("body[{i}][{j}]"), &mut chars)?;
                }
            }
        }
    }
    if chars > MAX_BODY_CHARS {
        return refuse(
            Code::LimitExceeded,
            format!("the body has {chars} characters of text; at most {MAX_BODY_CHARS}"),
        );
    }
    Ok(())
}

pub(super) fn publish<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    d: &AnnouncementDraft,
) -> R<Done> {
    ensure!(
        d.to.users.is_empty(),
        Code::InvalidArgument,
        "announcements go to departments or to everyone, not to listed people (send them a notice or a message)"
    );
    // Who may publish, and to whom, before the content.
    let targets = check!(audience::resolve(
        s,
        actor,
        Permission::AnnouncementPublish,
        &d.to,
        "announcements"
    ));
    valid!(audience::valid_title(&d.title));
    valid!(valid_body(&d.body));
    if let Some(a) = &d.attachment {
        valid!(valid_name(&a.name, "attachment name"));
        valid!(valid_link(&a.url, "attachment url"));
    }
    ensure!(
        d.pinned_until_ms == 0
            || (d.pinned_until_ms > ctx.time_ms
                && d.pinned_until_ms <= ctx.time_ms.saturating_add(MAX_PIN_MS)),
        Code::InvalidArgument,
        "pinned_until_ms must be 0 (not pinned) or a time within the next year (now {} ms)",
        ctx.time_ms
    );
    let id = s.get_as::<u64>(keys::ANNOUNCEMENT_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::ANNOUNCEMENT_CTR, &id)?;
    s.put_as(&keys::announcement_body(id), &d.body)?;
    s.put_as(&keys::announcement_targets(id), &targets)?;
    s.put(&keys::announcement_sent(actor, id), Vec::new());
    s.put(&keys::announcement_listed(id), Vec::new());
    let mut a = Announcement {
        id,
        sender: actor.to_string(),
        title: d.title.clone(),
        sent_ms: ctx.time_ms,
        pinned_until_ms: d.pinned_until_ms,
        attachment: d.attachment.clone(),
        all: d.to.all,
        departments: d.to.parties.clone(),
        expanding: Some((0, String::new())),
        steps: 0,
        counts: AnnouncementCounts::default(),
        withdrawn_ms: 0,
    };
    send_out(s, ctx, &mut a, &targets)?;
    save(s, &a)?;
    Ok(Ok(Done::Announcement(a)))
}

fn save<S: Store>(s: &mut Overlay<'_, S>, a: &Announcement) -> Result<(), StoreFault> {
    if a.expanding.is_some() {
        s.put(&keys::announcement_due(a.id), Vec::new());
    } else {
        s.delete(&keys::announcement_due(a.id));
    }
    s.put_as(&keys::announcement(a.id), a)
}

/// One sending step.
fn send_out<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    a: &mut Announcement,
    targets: &NoticeTargets,
) -> Result<(), StoreFault> {
    let Some((mut part, mut after)) = a.expanding.clone() else {
        return Ok(());
    };
    let card = AnnouncementCard {
        id: a.id,
        sender: a.sender.clone(),
        title: a.title.clone(),
        sent_ms: a.sent_ms,
        pinned_until_ms: a.pinned_until_ms,
    };
    let parts = audience::parts(targets);
    let mut budget = SEND_STEP;
    while budget > 0 && part < parts {
        let batch = audience::batch(s, targets, part, &after, budget)?;
        let short = batch.len() < budget;
        budget -= batch.len();
        for u in &batch {
            let key = keys::announcement_reader(a.id, u);
            if u == &a.sender || s.get(&key)?.is_some() || !is_active(s, u)? {
                continue;
            }
            s.put_as(&key, &AnnouncementReader::default())?;
            s.put(&keys::announcement_inbox(u, a.id), Vec::new());
            notices::tell(
                s,
                ctx,
                u,
                &a.sender,
                EventBody::AnnouncementPublished {
                    announcement: card.clone(),
                },
            )?;
            a.counts.audience += 1;
        }
        if let Some(last) = batch.last() {
            after = last.clone();
        }
        if short {
            part += 1;
            after = String::new();
        }
    }
    a.expanding = (part < parts).then_some((part, after));
    a.steps += 1;
    Ok(())
}

pub(super) fn expand_step<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: u64,
    step: u64,
) -> R<Done> {
    let mut a = check!(load(s, id));
    ensure!(
        a.steps == step && a.expanding.is_some(),
        Code::Stale,
        "announcement {id} is at step {}, not {step}",
        a.steps
    );
    if a.withdrawn_ms != 0 {
        a.expanding = None;
        a.steps += 1;
    } else {
        let targets: NoticeTargets = s
            .get_as(&keys::announcement_targets(id))?
            .unwrap_or_default();
        send_out(s, ctx, &mut a, &targets)?;
    }
    save(s, &a)?;
    Ok(Ok(Done::Announcement(a)))
}

/// Whether `userid` is in the scope of `a` now (for late readers).
pub fn in_scope(a: &Announcement, targets: &NoticeTargets, m: &Member) -> bool {
    m.status == MemberStatus::Active
        && m.userid != a.sender
        && (targets.all
            || m.departments
                .iter()
                .any(|d| targets.depts.binary_search(d).is_ok()))
}

pub(super) fn read<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, actor: &str, id: u64) -> R<Done> {
    let m = check!(active_member(s, actor, true));
    let mut a = check!(load(s, id));
    ensure!(
        a.withdrawn_ms == 0,
        Code::Withdrawn,
        "announcement {id} was withdrawn"
    );
    let key = keys::announcement_reader(id, actor);
    let mut r = match s.get_as::<AnnouncementReader>(&key)? {
        Some(r) => r,
        None => {
            let targets: NoticeTargets = s
                .get_as(&keys::announcement_targets(id))?
                .unwrap_or_default();
            ensure!(
                a.expanding.is_none() && in_scope(&a, &targets, &m),
                Code::NotFound,
                "no announcement {id} for {actor}"
            );
            AnnouncementReader {
                read_ms: 0,
                late: true,
            }
        }
    };
    if r.read_ms != 0 {
        return Ok(Ok(Done::AnnouncementRead {
            id,
            read_ms: r.read_ms,
            changed: false,
        }));
    }
    r.read_ms = ctx.time_ms;
    s.put_as(&key, &r)?;
    notices::tell(
        s,
        ctx,
        actor,
        actor,
        EventBody::AnnouncementRead {
            id,
            read_ms: r.read_ms,
        },
    )?;
    if r.late {
        a.counts.late_read += 1;
    } else {
        a.counts.read += 1;
    }
    s.put_as(&keys::announcement(id), &a)?;
    Ok(Ok(Done::AnnouncementRead {
        id,
        read_ms: r.read_ms,
        changed: true,
    }))
}

/// The sender (or an operator: `actor` None) withdraws it.
pub(super) fn withdraw<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: Option<&str>,
    id: u64,
) -> R<Done> {
    let mut a = check!(load(s, id));
    if let Some(actor) = actor {
        ensure!(
            actor == a.sender,
            Code::Forbidden,
            "only the sender (or an operator) may withdraw announcement {id}"
        );
    }
    ensure!(
        a.withdrawn_ms == 0,
        Code::Withdrawn,
        "announcement {id} was already withdrawn"
    );
    a.withdrawn_ms = ctx.time_ms;
    // Whoever has not got it yet will not.
    a.expanding = None;
    a.steps += 1;
    save(s, &a)?;
    Ok(Ok(Done::Announcement(a)))
}
