//! External contacts: invitations, accounts, customer groups, hand-over
//! and keyword auto-replies (see `domain/external.rs` for the records).

use super::conversations::{emit_system_message, open_conv};
use super::*;

pub(super) use crate::domain::external::{external, policy as external_policy};

/// The member view of an external account: no departments, active unless
/// disabled. Lets the login, session and conversation paths treat both
/// kinds of account alike.
pub fn as_member(e: &External) -> Member {
    Member {
        userid: e.userid.clone(),
        name: e.name.clone(),
        departments: Vec::new(),
        title: e.org.clone(),
        email: e.email.clone(),
        mobile: e.phone.clone(),
        status: if e.disabled {
            MemberStatus::Disabled
        } else {
            MemberStatus::Active
        },
    }
}

/// A member or an external account, which must exist (and be active if
/// `need_active`). The bool says it is external.
pub(super) fn active_party<S: Store>(
    s: &Overlay<'_, S>,
    userid: &str,
    need_active: bool,
) -> R<(Member, bool)> {
    // Members first: an internal message costs no extra read.
    if let Some(m) = s.get_as::<Member>(&keys::user(userid))? {
        ensure!(
            !(need_active && m.status != MemberStatus::Active),
            Code::AccountInactive,
            "member {userid:?} is not active"
        );
        return Ok(Ok((m, false)));
    }
    if let Some(e) = external(s, userid)? {
        ensure!(
            !(need_active && e.disabled),
            Code::AccountInactive,
            "external account {userid:?} is disabled"
        );
        return Ok(Ok((as_member(&e), true)));
    }
    Ok(refuse(Code::NotFound, format!("no member {userid:?}")))
}

/// Refuse an external account where only employees may act.
pub(super) fn not_external<S: Store>(s: &Overlay<'_, S>, userid: &str, what: &str) -> R<()> {
    ensure!(
        s.get(&keys::external(userid))?.is_none(),
        Code::Forbidden,
        "{userid:?} is an external account: external accounts cannot {what}"
    );
    Ok(Ok(()))
}

pub(super) fn count_prefix<S: Store>(
    s: &Overlay<'_, S>,
    prefix: &[u8],
) -> Result<usize, StoreFault> {
    Ok(s.scan(prefix, None, usize::MAX)?.len())
}

/// Open (unused, unexpired) invitations of an employee; drops the index
/// entries of the others.
fn open_invitations<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    employee: &str,
) -> Result<usize, StoreFault> {
    let prefix = keys::invitations_of(employee);
    let mut open = 0;
    for (k, _) in s.scan(&prefix, None, usize::MAX)? {
        let Ok(hash) = <[u8; 32]>::try_from(&k[prefix.len()..]) else {
            continue;
        };
        match s.get_as::<Invitation>(&keys::invitation(&hash))? {
            Some(inv) if inv.used_by.is_none() && inv.expires_ms > ctx.time_ms => open += 1,
            _ => s.delete(&k),
        }
    }
    Ok(open)
}

pub(super) fn create_invitation<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    code_hash: &[u8; 32],
) -> R<Done> {
    check!(not_external(s, actor, "invite"));
    let _ = check!(active_member(s, actor, true));
    ensure!(
        s.get(&keys::permission(Permission::ExternalAdd.as_str(), actor))?
            .is_some(),
        Code::Forbidden,
        "{actor:?} lacks the external:add permission"
    );
    ensure!(
        s.get(&keys::invitation(code_hash))?.is_none(),
        Code::AlreadyExists,
        "invitation code exists"
    );
    let policy = external_policy(s)?;
    let have = count_prefix(s, &keys::contacts_of(actor))? + open_invitations(s, ctx, actor)?;
    ensure!(
        have < policy.max_contacts_per_employee as usize,
        Code::LimitExceeded,
        "{actor:?} has {have} external contacts and open invitations; the policy allows {}",
        policy.max_contacts_per_employee
    );
    let inv = Invitation {
        employee: actor.to_string(),
        created_ms: ctx.time_ms,
        expires_ms: ctx.time_ms + policy.invitation_ttl_ms,
        used_by: None,
    };
    s.put_as(&keys::invitation(code_hash), &inv)?;
    s.put(&keys::invitation_of(actor, code_hash), Vec::new());
    Ok(Ok(Done::Invitation {
        expires_ms: inv.expires_ms,
    }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn accept_invitation<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    code_hash: &[u8; 32],
    userid: &str,
    name: &str,
    org: &str,
    phone: &str,
    email: &str,
    password_hash: &str,
) -> R<Done> {
    let Some(mut inv) = s.get_as::<Invitation>(&keys::invitation(code_hash))? else {
        return Ok(refuse(Code::NotFound, "unknown invitation code"));
    };
    ensure!(
        inv.used_by.is_none(),
        Code::AlreadyUsed,
        "this invitation has been used already"
    );
    ensure!(
        inv.expires_ms > ctx.time_ms,
        Code::Expired,
        "this invitation has expired; ask for a new one"
    );
    let employee = inv.employee.clone();
    ensure!(
        s.get_as::<Member>(&keys::user(&employee))?
            .is_some_and(|m| m.status == MemberStatus::Active),
        Code::AccountInactive,
        "the employee who invited you is no longer active"
    );
    valid!(valid_userid(userid));
    valid!(valid_name(name, "name"));
    valid!(valid_name(org, "org"));
    valid!(valid_field(phone, "phone"));
    valid!(valid_field(email, "email"));
    ensure!(
        s.get(&keys::user(userid))?.is_none() && s.get(&keys::external(userid))?.is_none(),
        Code::AlreadyExists,
        "userid {userid:?} is taken"
    );
    let policy = external_policy(s)?;
    let have = count_prefix(s, &keys::contacts_of(&employee))?;
    ensure!(
        have < policy.max_contacts_per_employee as usize,
        Code::LimitExceeded,
        "{employee:?} has the most external contacts the policy allows ({})",
        policy.max_contacts_per_employee
    );
    let ext = External {
        userid: userid.to_string(),
        name: name.to_string(),
        org: org.to_string(),
        phone: phone.to_string(),
        email: email.to_string(),
        invited_by: employee.clone(),
        created_ms: ctx.time_ms,
        disabled: false,
    };
    s.put_as(&keys::external(userid), &ext)?;
    s.put_as(
        &keys::account(userid),
        &Account {
            password_hash: Some(password_hash.to_string()),
            ..Default::default()
        },
    )?;
    let conv = contact_conv(s, ctx, &employee, userid)?;
    inv.used_by = Some(userid.to_string());
    s.put_as(&keys::invitation(code_hash), &inv)?;
    s.delete(&keys::invitation_of(&employee, code_hash));
    Ok(Ok(Done::ExternalAccount {
        external: ext,
        conv: conv.id,
    }))
}

/// A new 1:1 of `employee` with `external`, and the contact records.
fn contact_conv<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    employee: &str,
    external: &str,
) -> Result<Conversation, StoreFault> {
    let n = s.get_as::<u64>(keys::XCONV_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::XCONV_CTR, &n)?;
    let mut members = vec![employee.to_string(), external.to_string()];
    members.sort();
    let c = open_conv(
        s,
        ctx,
        format!("x{n}"),
        ConvKind::Contact,
        "",
        employee,
        external,
        &members,
    )?;
    s.put_as(
        &keys::contact(employee, external),
        &Contact {
            conv: c.id.clone(),
            since_ms: ctx.time_ms,
            previous: None,
        },
    )?;
    s.put(&keys::served_by(external, employee), Vec::new());
    Ok(c)
}

pub(super) fn set_disabled<S: Store>(
    s: &mut Overlay<'_, S>,
    userid: &str,
    disabled: bool,
) -> R<Done> {
    let Some(mut e) = external(s, userid)? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no external account {userid:?}"),
        ));
    };
    e.disabled = disabled;
    s.put_as(&keys::external(userid), &e)?;
    if disabled {
        revoke_sessions(s, userid, None)?;
    }
    Ok(Ok(Done::Ok))
}

pub(super) fn set_policy<S: Store>(s: &mut Overlay<'_, S>, p: &ExternalPolicy) -> R<Done> {
    ensure!(
        p.max_contacts_per_employee >= 1 && p.max_contacts_per_employee <= 100_000,
        Code::InvalidArgument,
        "max_contacts_per_employee must be 1-100000"
    );
    ensure!(
        p.max_customer_group_members >= 2 && p.max_customer_group_members <= 2_000,
        Code::InvalidArgument,
        "max_customer_group_members must be 2-2000"
    );
    ensure!(
        p.invitation_ttl_ms >= 60_000 && p.invitation_ttl_ms <= 90 * 86_400_000,
        Code::InvalidArgument,
        "invitation_ttl_ms must be from 1 minute to 90 days"
    );
    ensure!(
        p.transfer_window_ms <= 30 * 86_400_000,
        Code::InvalidArgument,
        "transfer_window_ms must be at most 30 days"
    );
    s.put_as(keys::EXTERNAL_POLICY, p)?;
    Ok(Ok(Done::Ok))
}

/// Check new members of a customer group whose employee-side member
/// `actor` adds them: employees (active) and `actor`'s own contacts.
pub(super) fn check_customer_members<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    conv: Option<&str>,
    userids: &[String],
) -> R<Vec<String>> {
    let mut out: Vec<String> = userids.to_vec();
    out.sort();
    out.dedup();
    for u in &out {
        let (_, is_ext) = check!(active_party(s, u, true));
        if is_ext {
            ensure!(
                s.get(&keys::contact(actor, u))?.is_some(),
                Code::Forbidden,
                "{u:?} is not an external contact of {actor:?}"
            );
        }
        if let Some(c) = conv {
            ensure!(
                s.get(&keys::conv_member(c, u))?.is_none(),
                Code::AlreadyExists,
                "{u:?} is already a member"
            );
        }
    }
    Ok(Ok(out))
}

pub(super) fn create_customer_group<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    name: &str,
    members: &[String],
) -> R<Done> {
    check!(not_external(s, actor, "create groups"));
    let _ = check!(active_member(s, actor, true));
    valid!(valid_name(name, "group name"));
    let mut all = members.to_vec();
    all.push(actor.to_string());
    let all = check!(check_customer_members(s, actor, None, &all));
    let policy = external_policy(s)?;
    ensure!(
        all.len() <= policy.max_customer_group_members as usize,
        Code::LimitExceeded,
        "a customer group has at most {} members",
        policy.max_customer_group_members
    );
    let n = s.get_as::<u64>(keys::XCONV_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::XCONV_CTR, &n)?;
    let c = open_conv(
        s,
        ctx,
        format!("xg{n}"),
        ConvKind::Customer,
        name,
        actor,
        actor,
        &all,
    )?;
    s.put(&keys::customer_group(actor, &c.id), Vec::new());
    Ok(Ok(Done::Conversation(c)))
}

/// The size limit of a group of this kind.
pub(super) fn group_limit<S: Store>(s: &Overlay<'_, S>, kind: ConvKind) -> Result<u32, StoreFault> {
    Ok(if kind == ConvKind::Customer {
        external_policy(s)?.max_customer_group_members
    } else {
        policy(s)?.max_group_members
    })
}

pub(super) fn set_auto_replies<S: Store>(
    s: &mut Overlay<'_, S>,
    actor: &str,
    conv: &str,
    rules: &[AutoReplyRule],
) -> R<Done> {
    let (c, _) = check!(conv_as_member(s, actor, conv));
    ensure!(
        c.kind == ConvKind::Customer,
        Code::NotFound,
        "{conv:?} is not a customer group (auto-replies are for customer groups)"
    );
    ensure!(
        c.owner == actor,
        Code::Forbidden,
        "only the group's owner sets its auto-replies"
    );
    ensure!(
        rules.len() <= MAX_AUTO_REPLY_RULES,
        Code::LimitExceeded,
        "at most {MAX_AUTO_REPLY_RULES} rules"
    );
    for (i, r) in rules.iter().enumerate() {
        let n = i + 1;
        ensure!(
            !r.keywords.is_empty() && r.keywords.len() <= MAX_KEYWORDS,
            Code::InvalidArgument,
            "rule {n}: 1-{MAX_KEYWORDS} keywords"
        );
        for k in &r.keywords {
            let len = k.trim().chars().count();
            ensure!(
                (1..=MAX_KEYWORD_CHARS).contains(&len) && !k.chars().any(char::is_control),
                Code::InvalidArgument,
                "rule {n}: keyword {k:?} must be 1-{MAX_KEYWORD_CHARS} characters without control characters"
            );
        }
        let len = r.answer.trim().chars().count();
        ensure!(
            len >= 1 && r.answer.chars().count() <= MAX_ANSWER_CHARS,
            Code::InvalidArgument,
            "rule {n}: the answer must be 1-{MAX_ANSWER_CHARS} characters"
        );
    }
    if rules.is_empty() {
        s.delete(&keys::auto_replies(conv));
    } else {
        s.put_as(&keys::auto_replies(conv), &rules.to_vec())?;
    }
    Ok(Ok(Done::Ok))
}

/// After a message was posted in `conv` (an external conversation): count
/// an employee's message, and answer an external member's message that
/// matches a rule — in the same command, so exactly once.
pub(super) fn after_message<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    msg: &Message,
) -> Result<(), StoreFault> {
    let sender_external = s.get(&keys::external(&msg.sender))?.is_some();
    if !sender_external {
        let key = keys::external_sent(&msg.sender, day_of(ctx.time_ms));
        let n = s.get_as::<u64>(&key)?.unwrap_or(0) + 1;
        s.put_as(&key, &n)?;
        return Ok(());
    }
    if conv.kind != ConvKind::Customer || msg.text.is_empty() {
        return Ok(());
    }
    let Some(rules) = s.get_as::<Vec<AutoReplyRule>>(&keys::auto_replies(&conv.id))? else {
        return Ok(());
    };
    if let Some(rule) = rules.iter().find(|r| r.matches(&msg.text)) {
        let sender = assistant_sender(&conv.id);
        emit_system_message(s, ctx, conv, &sender, &rule.answer, Some(msg.seq))?;
    }
    Ok(())
}

/// Mark an employee who departs with contacts or customer groups: they
/// appear in the unassigned list until transferred.
pub(super) fn member_departed<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
) -> Result<(), StoreFault> {
    if has_relationships(s, userid)? {
        s.put_as(&keys::departed_with_contacts(userid), &ctx.time_ms)?;
    }
    Ok(())
}

pub(super) fn has_relationships<S: Store>(
    s: &Overlay<'_, S>,
    userid: &str,
) -> Result<bool, StoreFault> {
    Ok(!s.scan(&keys::contacts_of(userid), None, 1)?.is_empty()
        || owned_groups(s, userid)?.next().is_some())
}

/// Customer groups `owner` owns that are not dissolved.
fn owned_groups<S: Store>(
    s: &Overlay<'_, S>,
    owner: &str,
) -> Result<impl Iterator<Item = String>, StoreFault> {
    let prefix = keys::customer_groups_of(owner);
    let mut out = Vec::new();
    for (k, _) in s.scan(&prefix, None, usize::MAX)? {
        let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        if s.get_as::<Conversation>(&keys::conv(&id))?
            .is_some_and(|c| !c.dissolved)
        {
            out.push(id);
        }
    }
    Ok(out.into_iter())
}

/// The customer group's owner moved (a transfer or the owner's own
/// `TransferOwner`): move the index entry.
pub(super) fn owner_moved<S: Store>(s: &mut Overlay<'_, S>, conv: &str, from: &str, to: &str) {
    s.delete(&keys::customer_group(from, conv));
    s.put(&keys::customer_group(to, conv), Vec::new());
}
