//! Hand-over of external contacts and customer groups (离职继承 and
//! 在职继承): a transfer, its objection window, its cancellation, and the
//! leader's step that carries it out (see `domain/external.rs`).

use super::conversations::{emit_system_message, join};
use super::external::{count_prefix, external_policy, has_relationships, owner_moved};
use super::*;

fn contact_item(from: &str, external: &str) -> String {
    format!("c:{from}\0{external}")
}

fn group_item(conv: &str) -> String {
    format!("g:{conv}")
}

#[allow(clippy::too_many_arguments)]
pub(super) fn transfer<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: Option<&str>,
    from: &str,
    to: &str,
    externals: &[String],
    groups: &[String],
    message: &str,
) -> R<Done> {
    let Some(from_m) = s.get_as::<Member>(&keys::user(from))? else {
        return Ok(refuse(Code::NotFound, format!("no employee {from:?}")));
    };
    let departed = from_m.status == MemberStatus::Departed;
    // Who may ask comes first.
    let by = match actor {
        Some(a) => {
            let _ = check!(active_member(s, a, true));
            ensure!(
                !departed,
                Code::Forbidden,
                "the contacts of a departed employee are transferred by an administrator"
            );
            let mut leads = false;
            for d in &from_m.departments {
                if s.get_as::<Department>(&keys::dept(*d))?
                    .is_some_and(|dept| dept.leaders.iter().any(|l| l == a))
                {
                    leads = true;
                }
            }
            ensure!(
                leads,
                Code::Forbidden,
                "{a:?} is not a leader of {from:?}'s departments"
            );
            a.to_string()
        }
        None => match ctx.app {
            Some(agentid) => format!("app:{agentid}"),
            None => "admin".to_string(),
        },
    };
    ensure!(
        from != to,
        Code::InvalidArgument,
        "from and to are the same"
    );
    ensure!(
        s.get(&keys::external(to))?.is_none(),
        Code::InvalidArgument,
        "{to:?} is an external account: contacts go to an employee"
    );
    let Some(to_m) = s.get_as::<Member>(&keys::user(to))? else {
        return Ok(refuse(Code::NotFound, format!("no employee {to:?}")));
    };
    ensure!(
        to_m.status == MemberStatus::Active,
        Code::AccountInactive,
        "{to:?} is not an active employee ({})",
        match to_m.status {
            MemberStatus::Departed => "departed",
            _ => "disabled",
        }
    );
    ensure!(
        !externals.is_empty() || !groups.is_empty(),
        Code::InvalidArgument,
        "nothing to transfer: name external contacts or customer groups"
    );
    ensure!(
        externals.len() <= MAX_TRANSFER_ITEMS && groups.len() <= MAX_TRANSFER_ITEMS,
        Code::LimitExceeded,
        "at most {MAX_TRANSFER_ITEMS} contacts and {MAX_TRANSFER_ITEMS} groups per transfer"
    );
    ensure!(
        message.chars().count() <= 200 && !message.chars().any(char::is_control),
        Code::InvalidArgument,
        "message must be at most 200 characters without control characters"
    );
    let mut externals = externals.to_vec();
    externals.sort();
    externals.dedup();
    let mut groups = groups.to_vec();
    groups.sort();
    groups.dedup();
    for x in &externals {
        ensure!(
            s.get(&keys::contact(from, x))?.is_some(),
            Code::NotFound,
            "{x:?} is not an external contact of {from:?}"
        );
        ensure!(
            s.get(&keys::contact(to, x))?.is_none(),
            Code::AlreadyExists,
            "{x:?} is already a contact of {to:?}"
        );
        if let Some(id) = s.get_as::<u64>(&keys::transfer_item(&contact_item(from, x)))? {
            return Ok(refuse(
                Code::AlreadyExists,
                format!("{x:?} is in waiting transfer {id} already"),
            ));
        }
    }
    for g in &groups {
        let Some(c) = s.get_as::<Conversation>(&keys::conv(g))? else {
            return Ok(refuse(Code::NotFound, format!("no customer group {g:?}")));
        };
        ensure!(
            c.kind == ConvKind::Customer && c.owner == from && !c.dissolved,
            Code::NotFound,
            "{g:?} is not a customer group owned by {from:?}"
        );
        if let Some(id) = s.get_as::<u64>(&keys::transfer_item(&group_item(g)))? {
            return Ok(refuse(
                Code::AlreadyExists,
                format!("{g:?} is in waiting transfer {id} already"),
            ));
        }
    }
    let policy = external_policy(s)?;
    let have = count_prefix(s, &keys::contacts_of(to))?;
    ensure!(
        have + externals.len() <= policy.max_contacts_per_employee as usize,
        Code::LimitExceeded,
        "{to:?} has {have} external contacts; {} more would pass the policy's {}",
        externals.len(),
        policy.max_contacts_per_employee
    );
    let id = s.get_as::<u64>(keys::TRANSFER_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::TRANSFER_CTR, &id)?;
    let due_ms = if departed {
        ctx.time_ms
    } else {
        ctx.time_ms + policy.transfer_window_ms
    };
    let mut t = Transfer {
        id,
        from: from.to_string(),
        to: to.to_string(),
        externals,
        groups,
        by,
        message: message.to_string(),
        created_ms: ctx.time_ms,
        due_ms,
        status: TransferStatus::Waiting,
        objected: Vec::new(),
        finished_ms: 0,
    };
    if departed || policy.transfer_window_ms == 0 {
        perform(s, ctx, &mut t)?;
    } else {
        // The contacts are told, and may object until the window ends.
        let to_name = to_m.name.clone();
        for x in &t.externals {
            if let Some(contact) = s.get_as::<Contact>(&keys::contact(from, x))?
                && let Some(mut c) = s.get_as::<Conversation>(&keys::conv(&contact.conv))?
            {
                let when = utc_minute(due_ms);
                let text = format!(
                    "{to_name} 将于 {when}（UTC）接替 {from} 作为您的对接人；如有异议，请在此之前提出。 / {to_name} will take over from {from} as your contact on {when} (UTC) unless you object before then. {}",
                    t.message,
                    from = from_m.name,
                );
                emit_system_message(s, ctx, &mut c, HANDOVER_SENDER, text.trim_end(), None)?;
            }
            s.put_as(&keys::transfer_item(&contact_item(from, x)), &id)?;
        }
        for g in &t.groups {
            s.put_as(&keys::transfer_item(&group_item(g)), &id)?;
        }
        s.put(&keys::transfer_due(due_ms, id), Vec::new());
    }
    s.put_as(&keys::transfer(id), &t)?;
    Ok(Ok(Done::Transfer(t)))
}

/// `YYYY-MM-DD HH:MM` of a time in ms (UTC), for system messages.
fn utc_minute(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Carry out a transfer (now `Done`): each contact's 1:1 and each group
/// moves to `to`, who reads their whole history.
fn perform<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    t: &mut Transfer,
) -> Result<(), StoreFault> {
    let from = t.from.clone();
    let to = t.to.clone();
    let from_name = s
        .get_as::<Member>(&keys::user(&from))?
        .map_or_else(|| from.clone(), |m| m.name);
    let to_name = s
        .get_as::<Member>(&keys::user(&to))?
        .map_or_else(|| to.clone(), |m| m.name);
    let from_departed = s
        .get_as::<Member>(&keys::user(&from))?
        .is_some_and(|m| m.status == MemberStatus::Departed);
    for x in t.externals.clone() {
        release_item(s, &contact_item(&from, &x), t.id)?;
        if t.objected.contains(&x) {
            continue;
        }
        let Some(contact) = s.get_as::<Contact>(&keys::contact(&from, &x))? else {
            continue;
        };
        if s.get(&keys::contact(&to, &x))?.is_some() {
            continue;
        }
        let Some(mut c) = s.get_as::<Conversation>(&keys::conv(&contact.conv))? else {
            continue;
        };
        handover_member(s, ctx, &mut c, &from, &to)?;
        c.owner = to.clone();
        s.put_as(&keys::conv(&c.id), &c)?;
        let text = format!(
            "您的对接人已由 {from_name} 变更为 {to_name}。 / {to_name} now serves you in place of {from_name}. {}",
            t.message
        );
        emit_system_message(s, ctx, &mut c, HANDOVER_SENDER, text.trim_end(), None)?;
        s.delete(&keys::contact(&from, &x));
        s.delete(&keys::served_by(&x, &from));
        s.put_as(
            &keys::contact(&to, &x),
            &Contact {
                conv: c.id.clone(),
                since_ms: ctx.time_ms,
                previous: Some(from.clone()),
            },
        )?;
        s.put(&keys::served_by(&x, &to), Vec::new());
    }
    for g in t.groups.clone() {
        release_item(s, &group_item(&g), t.id)?;
        let Some(mut c) = s.get_as::<Conversation>(&keys::conv(&g))? else {
            continue;
        };
        if c.owner != from || c.dissolved {
            continue;
        }
        if s.get(&keys::conv_member(&g, &to))?.is_none() {
            c.member_count += 1;
            // The owner must be in the group: the size limit gives way.
            emit(
                s,
                ctx,
                &mut c,
                HANDOVER_SENDER,
                EventBody::MembersAdded {
                    userids: vec![to.clone()],
                },
            )?;
            join(s, &g, &to, 0, c.last_seq)?;
        } else {
            // A member already: from now on they see the whole history.
            let key = keys::conv_member(&g, &to);
            if let Some(mut m) = s.get_as::<ConvMember>(&key)? {
                m.joined_event = 0;
                s.put_as(&key, &m)?;
            }
            let ukey = keys::user_conv(&to, &g);
            if let Some(mut u) = s.get_as::<UserConv>(&ukey)? {
                u.joined_event = 0;
                s.put_as(&ukey, &u)?;
            }
        }
        c.owner = to.clone();
        c.admins.retain(|a| a != &to);
        emit(
            s,
            ctx,
            &mut c,
            HANDOVER_SENDER,
            EventBody::OwnerChanged { owner: to.clone() },
        )?;
        if from_departed {
            leave_conv(s, ctx, &mut c, &from)?;
        }
        owner_moved(s, &g, &from, &to);
        let text = format!(
            "群主已由 {from_name} 变更为 {to_name}。 / {to_name} now owns this group in place of {from_name}."
        );
        emit_system_message(s, ctx, &mut c, HANDOVER_SENDER, &text, None)?;
    }
    if !has_relationships(s, &from)? {
        s.delete(&keys::departed_with_contacts(&from));
    }
    s.delete(&keys::transfer_due(t.due_ms, t.id));
    t.status = TransferStatus::Done;
    t.finished_ms = ctx.time_ms;
    Ok(())
}

/// In a contact's 1:1: `to` joins seeing everything, `from` leaves.
fn handover_member<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    c: &mut Conversation,
    from: &str,
    to: &str,
) -> Result<(), StoreFault> {
    emit(
        s,
        ctx,
        c,
        HANDOVER_SENDER,
        EventBody::MembersAdded {
            userids: vec![to.to_string()],
        },
    )?;
    join(s, &c.id, to, 0, c.last_seq)?;
    leave_conv(s, ctx, c, from)
}

fn leave_conv<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    c: &mut Conversation,
    userid: &str,
) -> Result<(), StoreFault> {
    if s.get(&keys::conv_member(&c.id, userid))?.is_none() {
        return Ok(());
    }
    c.admins.retain(|a| a != userid);
    let no = emit(
        s,
        ctx,
        c,
        HANDOVER_SENDER,
        EventBody::MemberRemoved {
            userid: userid.to_string(),
        },
    )?;
    if c.kind == ConvKind::Customer {
        c.member_count = c.member_count.saturating_sub(1);
        s.put_as(&keys::conv(&c.id), c)?;
    }
    s.delete(&keys::conv_member(&c.id, userid));
    let uc_key = keys::user_conv(userid, &c.id);
    let mut uc: UserConv = s.get_as(&uc_key)?.unwrap_or(UserConv {
        joined_event: no,
        left_event: None,
    });
    uc.left_event = Some(no);
    s.put_as(&uc_key, &uc)
}

fn load_transfer<S: Store>(s: &Overlay<'_, S>, id: u64) -> R<Transfer> {
    match s.get_as::<Transfer>(&keys::transfer(id))? {
        Some(t) => Ok(Ok(t)),
        None => Ok(refuse(Code::NotFound, format!("no transfer {id}"))),
    }
}

fn release_items<S: Store>(s: &mut Overlay<'_, S>, t: &Transfer) -> Result<(), StoreFault> {
    for x in &t.externals {
        release_item(s, &contact_item(&t.from, x), t.id)?;
    }
    for g in &t.groups {
        release_item(s, &group_item(g), t.id)?;
    }
    s.delete(&keys::transfer_due(t.due_ms, t.id));
    Ok(())
}

/// Free an item's "waiting in a transfer" mark if `id` holds it: a
/// contact who objected was freed at once and may since wait in a newer
/// transfer, whose mark must stay.
fn release_item<S: Store>(s: &mut Overlay<'_, S>, item: &str, id: u64) -> Result<(), StoreFault> {
    let key = keys::transfer_item(item);
    if s.get_as::<u64>(&key)? == Some(id) {
        s.delete(&key);
    }
    Ok(())
}

pub(super) fn cancel<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: Option<&str>,
    id: u64,
) -> R<Done> {
    let mut t = check!(load_transfer(s, id));
    if let Some(a) = actor {
        ensure!(
            t.by == a,
            Code::Forbidden,
            "only who asked for transfer {id} (or an administrator) may cancel it"
        );
    }
    ensure!(
        t.status == TransferStatus::Waiting,
        Code::AlreadyDecided,
        "transfer {id} is {} already",
        if t.status == TransferStatus::Done {
            "done"
        } else {
            "cancelled"
        }
    );
    release_items(s, &t)?;
    t.status = TransferStatus::Cancelled;
    t.finished_ms = ctx.time_ms;
    for x in &t.externals {
        if let Some(contact) = s.get_as::<Contact>(&keys::contact(&t.from, x))?
            && let Some(mut c) = s.get_as::<Conversation>(&keys::conv(&contact.conv))?
        {
            emit_system_message(
                s,
                ctx,
                &mut c,
                HANDOVER_SENDER,
                "已取消更换对接人。 / The announced change of your contact has been cancelled.",
                None,
            )?;
        }
    }
    s.put_as(&keys::transfer(id), &t)?;
    Ok(Ok(Done::Transfer(t)))
}

pub(super) fn object<S: Store>(s: &mut Overlay<'_, S>, actor: &str, id: u64) -> R<Done> {
    let mut t = check!(load_transfer(s, id));
    ensure!(
        t.externals.iter().any(|x| x == actor),
        Code::NotFound,
        "transfer {id} does not concern {actor:?}"
    );
    ensure!(
        t.status == TransferStatus::Waiting,
        Code::AlreadyDecided,
        "transfer {id} has ended"
    );
    if !t.objected.iter().any(|x| x == actor) {
        t.objected.push(actor.to_string());
        t.objected.sort();
        s.delete(&keys::transfer_item(&contact_item(&t.from, actor)));
        s.put_as(&keys::transfer(id), &t)?;
    }
    Ok(Ok(Done::Transfer(t)))
}

pub(super) fn step<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, id: u64) -> R<Done> {
    let mut t = check!(load_transfer(s, id));
    ensure!(
        t.status == TransferStatus::Waiting,
        Code::Stale,
        "transfer {id} has ended"
    );
    ensure!(
        ctx.time_ms >= t.due_ms,
        Code::Stale,
        "transfer {id} is due at {}",
        t.due_ms
    );
    let to_ok = s
        .get_as::<Member>(&keys::user(&t.to))?
        .is_some_and(|m| m.status == MemberStatus::Active);
    if to_ok {
        perform(s, ctx, &mut t)?;
    } else {
        // The receiving employee left in the window: nothing moves.
        release_items(s, &t)?;
        t.status = TransferStatus::Cancelled;
        t.finished_ms = ctx.time_ms;
    }
    s.put_as(&keys::transfer(id), &t)?;
    Ok(Ok(Done::Transfer(t)))
}
