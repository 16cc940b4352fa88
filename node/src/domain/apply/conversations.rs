//! Conversations, messages, receipts.

use super::*;

pub(super) fn load_conv<S: Store>(s: &Overlay<'_, S>, conv: &str) -> R<Conversation> {
    match s.get_as::<Conversation>(&keys::conv(conv))? {
        Some(c) => Ok(Ok(c)),
        None => Ok(refuse(Code::NotFound, format!("no conversation {conv:?}"))),
    }
}

/// The conversation, which `actor` (an active member) belongs to.
pub(super) fn conv_as_member<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    conv: &str,
) -> R<(Conversation, ConvMember)> {
    // A member or an external account (who is only ever in the external
    // conversations made for them).
    let _ = check!(super::external::active_party(s, actor, true));
    let c = check!(load_conv(s, conv));
    let Some(me) = s.get_as::<ConvMember>(&keys::conv_member(conv, actor))? else {
        // Same answer as for a conversation that does not exist: members
        // only learn of conversations they are in.
        return Ok(refuse(
            Code::NotAMember,
            format!("{actor:?} is not a member of conversation {conv:?}"),
        ));
    };
    ensure!(
        !c.dissolved,
        Code::Dissolved,
        "conversation {conv:?} has been dissolved"
    );
    Ok(Ok((c, me)))
}

/// A group the actor manages (owner, or admin unless `owner_only`).
pub(super) fn group_as_manager<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    conv: &str,
    owner_only: bool,
) -> R<Conversation> {
    let (c, _) = check!(conv_as_member(s, actor, conv));
    ensure!(
        c.kind.is_group(),
        Code::InvalidArgument,
        "{conv:?} is a 1:1 conversation"
    );
    let allowed = c.owner == actor || (!owner_only && c.admins.iter().any(|a| a == actor));
    ensure!(
        allowed,
        Code::Forbidden,
        "only the group's {} may do this",
        if owner_only {
            "owner"
        } else {
            "owner or admins"
        }
    );
    Ok(Ok(c))
}

pub(super) fn join<S: Store>(
    s: &mut Overlay<'_, S>,
    conv: &str,
    userid: &str,
    joined_event: u64,
    last_seq: u64,
) -> Result<(), StoreFault> {
    s.put_as(
        &keys::conv_member(conv, userid),
        &ConvMember {
            joined_event,
            read_seq: last_seq,
            delivered_seq: last_seq,
        },
    )?;
    s.put_as(
        &keys::user_conv(userid, conv),
        &UserConv {
            joined_event,
            left_event: None,
        },
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn send<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    target: &Target,
    text: &str,
    mentions: &[String],
    mention_all: bool,
    reply_to: Option<u64>,
    file: Option<&str>,
) -> R<Done> {
    let policy = policy(s)?;
    let len = text.chars().count();
    ensure!(
        len > 0 || file.is_some(),
        Code::InvalidArgument,
        "text is empty"
    );
    ensure!(
        len <= policy.max_text_chars as usize,
        Code::LimitExceeded,
        "text is longer than {} characters",
        policy.max_text_chars
    );
    ensure!(
        mentions.len() <= 100,
        Code::LimitExceeded,
        "at most 100 mentions"
    );
    let mut conv = match target {
        Target::Conv(id) => check!(conv_as_member(s, actor, id)).0,
        Target::Direct(peer) => {
            let _ = check!(active_member(s, actor, true));
            ensure!(
                peer != actor,
                Code::InvalidArgument,
                "cannot message yourself"
            );
            let _ = check!(active_member(s, peer, true));
            let id = keys::direct_conv_id(actor, peer);
            match s.get_as::<Conversation>(&keys::conv(&id))? {
                Some(c) => c,
                None => {
                    let mut c = Conversation {
                        id: id.clone(),
                        kind: ConvKind::Direct,
                        name: String::new(),
                        owner: String::new(),
                        admins: Vec::new(),
                        announcement: String::new(),
                        member_count: 2,
                        last_seq: 0,
                        last_event: 0,
                        created_ms: ctx.time_ms,
                        dissolved: false,
                    };
                    let mut members = vec![actor.to_string(), peer.clone()];
                    members.sort();
                    let no = emit(
                        s,
                        ctx,
                        &mut c,
                        actor,
                        EventBody::Created {
                            kind: ConvKind::Direct,
                            name: String::new(),
                            members: members.clone(),
                        },
                    )?;
                    for m in &members {
                        join(s, &id, m, no, 0)?;
                    }
                    c
                }
            }
        }
    };
    ensure!(
        conv.kind != ConvKind::Notice,
        Code::Forbidden,
        "a notice inbox takes no messages"
    );
    if let Some(r) = reply_to {
        ensure!(
            r >= 1 && r <= conv.last_seq,
            Code::NotFound,
            "reply_to {r}: no such message in {:?}",
            conv.id
        );
    }
    if mention_all && conv.kind.is_group() {
        ensure!(
            conv.owner == actor || conv.admins.iter().any(|a| a == actor),
            Code::Forbidden,
            "only the group's owner or admins may mention everyone"
        );
    }
    let mut mentions: Vec<String> = mentions.to_vec();
    mentions.sort();
    mentions.dedup();
    for m in &mentions {
        ensure!(
            s.get(&keys::conv_member(&conv.id, m))?.is_some(),
            Code::NotAMember,
            "mentioned {m:?} is not in the conversation"
        );
    }
    let attached = match file {
        Some(id) => Some(check!(super::files::attach(s, actor, id))),
        None => None,
    };
    let msg = post(
        s,
        ctx,
        &mut conv,
        actor,
        text,
        mentions,
        mention_all,
        reply_to,
        attached,
    )?;
    // The sender has read what they sent.
    let key = keys::conv_member(&conv.id, actor);
    if let Some(mut me) = s.get_as::<ConvMember>(&key)? {
        me.read_seq = msg.seq;
        me.delivered_seq = msg.seq;
        s.put_as(&key, &me)?;
    }
    if conv.kind == ConvKind::App
        && let Some(agentid) = conv
            .id
            .strip_prefix('a')
            .and_then(|r| r.split_once('.'))
            .and_then(|(a, _)| a.parse::<u32>().ok())
    {
        // A reply to an app: the app is told (if it has a callback).
        super::callbacks::reply_to_app(s, ctx, agentid, &msg)?;
    }
    if conv.kind.is_external() {
        super::external::after_message(s, ctx, &mut conv, &msg)?;
    }
    Ok(Ok(Done::Message(msg)))
}

/// Post a message in `conv` (its next seq, its event).
#[allow(clippy::too_many_arguments)]
fn post<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    sender: &str,
    text: &str,
    mentions: Vec<String>,
    mention_all: bool,
    reply_to: Option<u64>,
    attached: Option<crate::domain::BlobRecord>,
) -> Result<Message, StoreFault> {
    conv.last_seq += 1;
    if let Some(f) = &attached {
        super::files::add_ref(s, f, &conv.id, conv.last_seq)?;
    }
    let mut msg = Message {
        conv: conv.id.clone(),
        seq: conv.last_seq,
        sender: sender.to_string(),
        time_ms: ctx.time_ms,
        text: text.to_string(),
        mentions,
        mention_all,
        reply_to,
        recalled: false,
        event: 0,
        rich: None,
        safe: false,
        file: attached.map(|f| f.reference()),
    };
    // The message carries the number of its event.
    msg.event = next_event(s)?;
    s.put_as(&keys::message(&conv.id, msg.seq), &msg)?;
    emit_numbered(
        s,
        ctx,
        conv,
        sender,
        EventBody::Message {
            message: msg.clone(),
        },
        msg.event,
    )?;
    Ok(msg)
}

/// A plain-text message from the system or a group's assistant (a sender
/// that is not an account).
pub(super) fn emit_system_message<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    sender: &str,
    text: &str,
    reply_to: Option<u64>,
) -> Result<Message, StoreFault> {
    post(
        s,
        ctx,
        conv,
        sender,
        text,
        Vec::new(),
        false,
        reply_to,
        None,
    )
}

pub(super) fn recall<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    seq: u64,
) -> R<Done> {
    let (mut c, _) = check!(conv_as_member(s, actor, conv));
    let Some(mut msg) = s.get_as::<Message>(&keys::message(conv, seq))? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no message {seq} in {conv:?}"),
        ));
    };
    ensure!(
        msg.sender == actor,
        Code::Forbidden,
        "only the sender may recall a message"
    );
    if msg.recalled {
        // A repeat (e.g. a retry after a lost answer) changes nothing and
        // answers the tombstone, like the first recall did.
        return Ok(Ok(Done::Message(msg)));
    }
    let policy = policy(s)?;
    ensure!(
        ctx.time_ms <= msg.time_ms + policy.recall_window_ms,
        Code::RecallWindowExpired,
        "messages can be recalled within {} s of sending",
        policy.recall_window_ms / 1000
    );
    msg.recalled = true;
    if let Some(f) = msg.file.take() {
        super::files::drop_ref(s, &f.id, conv, seq)?;
    }
    msg.text.clear();
    msg.mentions.clear();
    msg.mention_all = false;
    s.put_as(&keys::message(conv, seq), &msg)?;
    // Scrub the text from the posting event too: a later sync sees only
    // the tombstone.
    let ev_key = keys::event(conv, msg.event);
    if let Some(mut ev) = s.get_as::<Event>(&ev_key)? {
        ev.body = EventBody::Message {
            message: msg.clone(),
        };
        s.put_as(&ev_key, &ev)?;
    }
    emit(s, ctx, &mut c, actor, EventBody::Recalled { seq })?;
    Ok(Ok(Done::Message(msg)))
}

pub(super) fn check_new_members<S: Store>(
    s: &Overlay<'_, S>,
    conv: Option<&str>,
    userids: &[String],
) -> R<Vec<String>> {
    let mut out: Vec<String> = userids.to_vec();
    out.sort();
    out.dedup();
    for u in &out {
        let _ = check!(active_member(s, u, true));
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

pub(super) fn create_group<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    name: &str,
    members: &[String],
) -> R<Done> {
    check!(super::external::not_external(
        s,
        actor,
        "create internal groups"
    ));
    for u in members {
        check!(super::external::not_external(s, u, "join internal groups"));
    }
    let _ = check!(active_member(s, actor, true));
    valid!(valid_name(name, "group name"));
    let mut all = members.to_vec();
    all.push(actor.to_string());
    let all = check!(check_new_members(s, None, &all));
    let policy = policy(s)?;
    ensure!(
        all.len() <= policy.max_group_members as usize,
        Code::LimitExceeded,
        "a group has at most {} members",
        policy.max_group_members
    );
    let n = s.get_as::<u64>(keys::GROUP_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::GROUP_CTR, &n)?;
    let c = open_conv(
        s,
        ctx,
        format!("g{n}"),
        ConvKind::Group,
        name,
        actor,
        actor,
        &all,
    )?;
    Ok(Ok(Done::Conversation(c)))
}

/// A new conversation of `kind` owned by `owner`: its `created` event (by
/// `actor`) and every member joining at it.
#[allow(clippy::too_many_arguments)]
pub(super) fn open_conv<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: String,
    kind: ConvKind,
    name: &str,
    owner: &str,
    actor: &str,
    members: &[String],
) -> Result<Conversation, StoreFault> {
    let mut c = Conversation {
        id,
        kind,
        name: name.to_string(),
        owner: owner.to_string(),
        admins: Vec::new(),
        announcement: String::new(),
        member_count: members.len() as u32,
        last_seq: 0,
        last_event: 0,
        created_ms: ctx.time_ms,
        dissolved: false,
    };
    let no = emit(
        s,
        ctx,
        &mut c,
        actor,
        EventBody::Created {
            kind,
            name: name.to_string(),
            members: members.to_vec(),
        },
    )?;
    for u in members {
        join(s, &c.id, u, no, 0)?;
    }
    Ok(c)
}

pub(super) fn add_members<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    userids: &[String],
) -> R<Done> {
    let mut c = check!(group_as_manager(s, actor, conv, false));
    let new = if c.kind == ConvKind::Customer {
        check!(super::external::check_customer_members(
            s,
            actor,
            Some(conv),
            userids
        ))
    } else {
        for u in userids {
            check!(super::external::not_external(s, u, "join internal groups"));
        }
        check!(check_new_members(s, Some(conv), userids))
    };
    ensure!(!new.is_empty(), Code::InvalidArgument, "no members to add");
    let limit = super::external::group_limit(s, c.kind)?;
    ensure!(
        c.member_count as usize + new.len() <= limit as usize,
        Code::LimitExceeded,
        "a group has at most {limit} members"
    );
    c.member_count += new.len() as u32;
    let no = emit(
        s,
        ctx,
        &mut c,
        actor,
        EventBody::MembersAdded {
            userids: new.clone(),
        },
    )?;
    for u in &new {
        join(s, conv, u, no, c.last_seq)?;
    }
    Ok(Ok(Done::Conversation(c)))
}

pub(super) fn remove_member<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    userid: &str,
    leaving: bool,
) -> R<Done> {
    let mut c = if leaving {
        let (c, _) = check!(conv_as_member(s, actor, conv));
        ensure!(
            c.kind.is_group(),
            Code::InvalidArgument,
            "cannot leave a 1:1 conversation"
        );
        ensure!(
            c.owner != actor,
            Code::Forbidden,
            "the owner must transfer ownership before leaving"
        );
        c
    } else {
        let c = check!(group_as_manager(s, actor, conv, false));
        ensure!(
            userid != c.owner,
            Code::Forbidden,
            "the owner cannot be removed"
        );
        ensure!(
            c.owner == actor || !c.admins.iter().any(|a| a == userid),
            Code::Forbidden,
            "only the owner may remove an admin"
        );
        c
    };
    ensure!(
        s.get(&keys::conv_member(conv, userid))?.is_some(),
        Code::NotAMember,
        "{userid:?} is not a member of {conv:?}"
    );
    c.member_count = c.member_count.saturating_sub(1);
    c.admins.retain(|a| a != userid);
    let body = if leaving {
        EventBody::MemberLeft {
            userid: userid.to_string(),
        }
    } else {
        EventBody::MemberRemoved {
            userid: userid.to_string(),
        }
    };
    let no = emit(s, ctx, &mut c, actor, body)?;
    s.delete(&keys::conv_member(conv, userid));
    let uc_key = keys::user_conv(userid, conv);
    let mut uc: UserConv = s.get_as(&uc_key)?.unwrap_or(UserConv {
        joined_event: no,
        left_event: None,
    });
    uc.left_event = Some(no);
    s.put_as(&uc_key, &uc)?;
    Ok(Ok(Done::Conversation(c)))
}

pub(super) fn transfer_owner<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    to: &str,
) -> R<Done> {
    let mut c = check!(group_as_manager(s, actor, conv, true));
    check!(super::external::not_external(s, to, "own groups"));
    let _ = check!(active_member(s, to, true));
    ensure!(
        s.get(&keys::conv_member(conv, to))?.is_some(),
        Code::NotAMember,
        "{to:?} is not a member of {conv:?}"
    );
    if c.kind == ConvKind::Customer {
        super::external::owner_moved(s, conv, &c.owner, to);
    }
    c.owner = to.to_string();
    c.admins.retain(|a| a != to);
    emit(
        s,
        ctx,
        &mut c,
        actor,
        EventBody::OwnerChanged {
            owner: to.to_string(),
        },
    )?;
    Ok(Ok(Done::Conversation(c)))
}

pub(super) fn set_admins<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    admins: &[String],
) -> R<Done> {
    let mut c = check!(group_as_manager(s, actor, conv, true));
    let mut admins = admins.to_vec();
    admins.sort();
    admins.dedup();
    ensure!(admins.len() <= 10, Code::LimitExceeded, "at most 10 admins");
    for a in &admins {
        check!(super::external::not_external(s, a, "be group admins"));
        ensure!(
            s.get(&keys::conv_member(conv, a))?.is_some(),
            Code::NotAMember,
            "{a:?} is not a member of {conv:?}"
        );
        ensure!(
            *a != c.owner,
            Code::InvalidArgument,
            "the owner is not an admin"
        );
    }
    c.admins = admins.clone();
    emit(s, ctx, &mut c, actor, EventBody::AdminsChanged { admins })?;
    Ok(Ok(Done::Conversation(c)))
}

pub(super) fn mark<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    seq: u64,
    read: bool,
) -> R<Done> {
    let (mut c, mut me) = check!(conv_as_member(s, actor, conv));
    // Like recall, receipts and reply_to: a message that does not exist
    // (yet) is not found, not a malformed request.
    ensure!(
        seq <= c.last_seq,
        Code::NotFound,
        "no message {seq} in {conv:?} (the last is {})",
        c.last_seq
    );
    let key = keys::conv_member(conv, actor);
    if read {
        // Markers only move forward; reading implies delivery.
        if seq <= me.read_seq {
            return Ok(Ok(Done::Ok));
        }
        me.read_seq = seq;
        me.delivered_seq = me.delivered_seq.max(seq);
        s.put_as(&key, &me)?;
        emit(
            s,
            ctx,
            &mut c,
            actor,
            EventBody::Read {
                userid: actor.to_string(),
                seq,
            },
        )?;
    } else if seq > me.delivered_seq {
        me.delivered_seq = seq;
        s.put_as(&key, &me)?;
    }
    Ok(Ok(Done::Ok))
}

/// A one-member conversation (`kind` App or Notice), created on first use
/// with its `created` event from `actor`.
pub(super) fn own_conv<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    id: String,
    kind: ConvKind,
    name: &str,
    actor: &str,
    userid: &str,
) -> Result<Conversation, StoreFault> {
    if let Some(c) = s.get_as::<Conversation>(&keys::conv(&id))? {
        return Ok(c);
    }
    let mut c = Conversation {
        id: id.clone(),
        kind,
        name: name.to_string(),
        owner: String::new(),
        admins: Vec::new(),
        announcement: String::new(),
        member_count: 1,
        last_seq: 0,
        last_event: 0,
        created_ms: ctx.time_ms,
        dissolved: false,
    };
    let no = emit(
        s,
        ctx,
        &mut c,
        actor,
        EventBody::Created {
            kind,
            name: name.to_string(),
            members: vec![userid.to_string()],
        },
    )?;
    join(s, &id, userid, no, 0)?;
    Ok(c)
}
