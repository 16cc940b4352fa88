//! App messages (WeCom's `message/send`) and app group chats
//! (`appchat/*`).
//!
//! An app message is recorded once (`amsg/<msgid>`) and delivered as an
//! ordinary message into each recipient's conversation with the app, so
//! members sync and are pushed it like any other message, on every node.
//! A fan-out larger than [`FANOUT_CHUNK`] is delivered chunk by chunk:
//! the first chunk in the sending command, the rest by the leader's
//! `Continue` steps (one log entry per chunk, never one per recipient).

use std::collections::BTreeSet;

use super::*;
use crate::domain::files::BlobRecord;

/// Recipients delivered per log entry.
pub const FANOUT_CHUNK: usize = 2_000;
/// An app may recall its message within 24 hours (as in WeCom).
pub const APP_RECALL_MS: u64 = 24 * 3600 * 1000;
/// Longest plain text of an app message, in characters.
pub const MAX_APP_TEXT: usize = 4_096;

fn sender(agentid: u32) -> String {
    format!("app:{agentid}")
}

fn valid_content(c: &AppContent) -> Result<(), Refusal> {
    let n = c.text.chars().count();
    if n == 0 {
        return refuse(Code::InvalidArgument, "the message is empty");
    }
    if n > MAX_APP_TEXT {
        return refuse(
            Code::LimitExceeded,
            format!("the message is longer than {MAX_APP_TEXT} characters"),
        );
    }
    if let Some(Rich::News { articles }) = &c.rich
        && (articles.is_empty() || articles.len() > 8)
    {
        return refuse(Code::InvalidArgument, "news has 1-8 articles");
    }
    Ok(())
}

/// The file `content` is to carry, if any: one the app itself uploaded
/// (`app:<agentid>`). The content then carries the record's own reference.
fn with_app_file<S: Store>(
    s: &Overlay<'_, S>,
    agentid: u32,
    content: &AppContent,
) -> R<AppContent> {
    let Some(f) = &content.file else {
        return Ok(Ok(content.clone()));
    };
    let Some(rec) = s.get_as::<BlobRecord>(&keys::file(&f.id))? else {
        return Ok(refuse(Code::NotFound, format!("no file {:?}", f.id)));
    };
    ensure!(
        rec.uploader == sender(agentid),
        Code::NotFound,
        "no file {:?}",
        f.id
    );
    let mut c = content.clone();
    c.file = Some(rec.reference());
    Ok(Ok(c))
}

/// The members of department `d` and all its sub-departments.
fn subtree_members<S: Store>(
    s: &Overlay<'_, S>,
    d: u64,
    out: &mut BTreeSet<String>,
) -> Result<(), StoreFault> {
    let mut todo = vec![d];
    let mut seen = BTreeSet::new();
    while let Some(cur) = todo.pop() {
        if !seen.insert(cur) {
            continue;
        }
        let prefix = keys::dept_members(cur);
        for (k, _) in s.scan(&prefix, None, usize::MAX)? {
            out.insert(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        let prefix = keys::dept_children(cur);
        for (k, _) in s.scan(&prefix, None, usize::MAX)? {
            todo.push(keys::tail_u64(&k));
        }
    }
    Ok(())
}

/// Active recipients, and the userids and parties that are not valid.
type Resolved = (Vec<String>, Vec<String>, Vec<u64>);

fn resolve<S: Store>(s: &Overlay<'_, S>, to: &Recipients) -> Result<Resolved, StoreFault> {
    let mut all = BTreeSet::new();
    let mut bad_users = Vec::new();
    let mut bad_parties = Vec::new();
    if to.all {
        for (_, m) in s.scan_as::<Member>(keys::USERS, None, usize::MAX)? {
            if m.status == MemberStatus::Active {
                all.insert(m.userid);
            }
        }
    }
    for u in &to.users {
        match s.get_as::<Member>(&keys::user(u))? {
            Some(m) if m.status == MemberStatus::Active => {
                all.insert(m.userid);
            }
            _ => bad_users.push(u.clone()),
        }
    }
    for d in &to.parties {
        if s.get(&keys::dept(*d))?.is_none() {
            bad_parties.push(*d);
            continue;
        }
        let mut members = BTreeSet::new();
        subtree_members(s, *d, &mut members)?;
        for u in members {
            if let Some(m) = s.get_as::<Member>(&keys::user(&u))?
                && m.status == MemberStatus::Active
            {
                all.insert(u);
            }
        }
    }
    Ok((all.into_iter().collect(), bad_users, bad_parties))
}

/// A member's conversation with the app, created on first use.
fn app_conv<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    app: &App,
    userid: &str,
) -> Result<Conversation, StoreFault> {
    own_conv(
        s,
        ctx,
        keys::app_conv_id(app.agentid, userid),
        ConvKind::App,
        &app.name,
        &sender(app.agentid),
        userid,
    )
}

/// Post `content` from app `agentid` into `conv` (saved with it).
pub(super) fn post<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    agentid: u32,
    content: &AppContent,
) -> Result<Message, StoreFault> {
    conv.last_seq += 1;
    // A later delivery chunk finds the file gone (deleted by retention)
    // and posts the text alone.
    let file = match &content.file {
        Some(f) => match s.get_as::<BlobRecord>(&keys::file(&f.id))? {
            Some(rec) if rec.uploader == sender(agentid) => {
                super::files::add_ref(s, &rec, &conv.id, conv.last_seq)?;
                Some(rec.reference())
            }
            _ => None,
        },
        None => None,
    };
    let msg = Message {
        conv: conv.id.clone(),
        seq: conv.last_seq,
        sender: sender(agentid),
        time_ms: ctx.time_ms,
        text: content.text.clone(),
        mentions: Vec::new(),
        mention_all: false,
        reply_to: None,
        recalled: false,
        event: next_event(s)?,
        rich: content.rich.clone(),
        safe: content.safe,
        file,
    };
    s.put_as(&keys::message(&conv.id, msg.seq), &msg)?;
    let body = EventBody::Message {
        message: msg.clone(),
    };
    let sender = msg.sender.clone();
    emit_numbered(s, ctx, conv, &sender, body, msg.event)?;
    Ok(msg)
}

/// Deliver to `users`; `checked`: they were just resolved as active in
/// this same command (a later chunk checks again: members may have left).
fn deliver_chunk<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    app: &App,
    am: &AppMessage,
    chunk: u32,
    users: &[String],
    checked: bool,
) -> Result<(), StoreFault> {
    let mut done = Vec::with_capacity(users.len());
    for u in users {
        if !checked {
            match s.get_as::<Member>(&keys::user(u))? {
                Some(m) if m.status == MemberStatus::Active => {}
                _ => continue,
            }
        }
        let mut conv = app_conv(s, ctx, app, u)?;
        let msg = post(s, ctx, &mut conv, app.agentid, &am.content)?;
        done.push((u.clone(), msg.seq));
    }
    s.put_as(&keys::app_message_done(&am.msgid, chunk), &done)
}

fn new_work<S: Store>(s: &mut Overlay<'_, S>, work: Work) -> Result<(), StoreFault> {
    let id = s.get_as::<u64>(keys::WORK_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::WORK_CTR, &id)?;
    s.put_as(&keys::work(id), &WorkItem { work, cursor: 0 })
}

pub(super) fn app_send<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    to: &Recipients,
    content: &AppContent,
    dedup_ms: u64,
) -> R<Done> {
    let app = check!(apps::app_ok(s, agentid, Scope::MessageSend));
    valid!(valid_content(content));
    let content = &check!(with_app_file(s, agentid, content));
    ensure!(
        to.all || !to.users.is_empty() || !to.parties.is_empty(),
        Code::InvalidArgument,
        "no recipients: give touser, toparty or @all"
    );
    ensure!(
        to.users.len() <= 1000 && to.parties.len() <= 100,
        Code::LimitExceeded,
        "at most 1000 users and 100 departments per message"
    );
    let dedup_key = if dedup_ms > 0 {
        let bytes = postcard::to_stdvec(&(to, content)).map_err(|e| StoreFault(e.to_string()))?;
        let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let key = keys::app_dedup(agentid, d.as_ref());
        if let Some((msgid, at)) = s.get_as::<(String, u64)>(&key)?
            && ctx.time_ms < at.saturating_add(dedup_ms)
        {
            return Ok(Ok(Done::AppSent {
                msgid,
                invalid_users: Vec::new(),
                invalid_parties: Vec::new(),
                recipients: 0,
                duplicate: true,
            }));
        }
        Some(key)
    } else {
        None
    };
    let (users, bad_users, bad_parties) = resolve(s, to)?;
    if users.is_empty() {
        return Ok(refuse(
            Code::NoRecipients,
            "none of the recipients is a valid, active member or department",
        ));
    }
    let n = s.get_as::<u64>(keys::APPMSG_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::APPMSG_CTR, &n)?;
    let chunks: Vec<&[String]> = users.chunks(FANOUT_CHUNK).collect();
    let mut am = AppMessage {
        msgid: format!("m{n}"),
        agentid,
        time_ms: ctx.time_ms,
        content: content.clone(),
        recipients: users.len() as u64,
        chunks: chunks.len() as u32,
        delivered: 1,
        recalled: false,
    };
    if let Some(first) = chunks.first() {
        deliver_chunk(s, ctx, &app, &am, 0, first, true)?;
    }
    for (i, rest) in chunks.iter().enumerate().skip(1) {
        s.put_as(&keys::app_message_todo(&am.msgid, i as u32), &rest.to_vec())?;
    }
    if chunks.len() > 1 {
        new_work(
            s,
            Work::Deliver {
                msgid: am.msgid.clone(),
            },
        )?;
    } else {
        am.delivered = am.chunks;
    }
    s.put_as(&keys::app_message(&am.msgid), &am)?;
    if let Some(key) = dedup_key {
        s.put_as(&key, &(am.msgid.clone(), ctx.time_ms))?;
    }
    Ok(Ok(Done::AppSent {
        msgid: am.msgid,
        invalid_users: bad_users,
        invalid_parties: bad_parties,
        recipients: users.len() as u64,
        duplicate: false,
    }))
}

/// Tombstone one delivered chunk's messages.
fn recall_chunk<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    am: &AppMessage,
    chunk: u32,
) -> Result<(), StoreFault> {
    let key = keys::app_message_done(&am.msgid, chunk);
    let done: Vec<(String, u64)> = s.get_as(&key)?.unwrap_or_default();
    for (u, seq) in done {
        let conv_id = keys::app_conv_id(am.agentid, &u);
        let Some(mut c) = s.get_as::<Conversation>(&keys::conv(&conv_id))? else {
            continue;
        };
        tombstone(s, ctx, &mut c, &sender(am.agentid), seq)?;
    }
    Ok(())
}

/// Recall message `seq` of `c` (by its sender, checks done by the caller).
pub(super) fn tombstone<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    c: &mut Conversation,
    actor: &str,
    seq: u64,
) -> Result<(), StoreFault> {
    let Some(mut msg) = s.get_as::<Message>(&keys::message(&c.id, seq))? else {
        return Ok(());
    };
    if msg.recalled {
        return Ok(());
    }
    msg.recalled = true;
    if let Some(f) = msg.file.take() {
        super::files::drop_ref(s, &f.id, &c.id, seq)?;
    }
    msg.text.clear();
    msg.rich = None;
    msg.mentions.clear();
    msg.mention_all = false;
    s.put_as(&keys::message(&c.id, seq), &msg)?;
    let ev_key = keys::event(&c.id, msg.event);
    if let Some(mut ev) = s.get_as::<Event>(&ev_key)? {
        ev.body = EventBody::Message {
            message: msg.clone(),
        };
        s.put_as(&ev_key, &ev)?;
    }
    emit(s, ctx, c, actor, EventBody::Recalled { seq })?;
    Ok(())
}

pub(super) fn app_recall<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    msgid: &str,
) -> R<Done> {
    let _ = check!(apps::app_ok(s, agentid, Scope::MessageSend));
    let key = keys::app_message(msgid);
    let Some(mut am) = s.get_as::<AppMessage>(&key)? else {
        return Ok(refuse(Code::NotFound, format!("no message {msgid:?}")));
    };
    ensure!(
        am.agentid == agentid,
        Code::NotFound,
        "no message {msgid:?}"
    );
    ensure!(!am.recalled, Code::InvalidArgument, "already recalled");
    ensure!(
        ctx.time_ms <= am.time_ms + APP_RECALL_MS,
        Code::RecallWindowExpired,
        "app messages can be recalled within 24 hours"
    );
    am.recalled = true;
    // Undelivered chunks are simply never delivered.
    for c in am.delivered..am.chunks {
        s.delete(&keys::app_message_todo(msgid, c));
    }
    am.chunks = am.delivered;
    recall_chunk(s, ctx, &am, 0)?;
    if am.delivered > 1 {
        new_work(
            s,
            Work::Recall {
                msgid: msgid.to_string(),
            },
        )?;
    }
    s.put_as(&key, &am)?;
    Ok(Ok(Done::Ok))
}

/// One step of pending work.
pub(super) fn continue_work<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    work: u64,
    cursor: u64,
) -> R<Done> {
    let wkey = keys::work(work);
    let Some(mut item) = s.get_as::<WorkItem>(&wkey)? else {
        return Ok(refuse(Code::Stale, format!("work {work} is finished")));
    };
    ensure!(
        item.cursor == cursor,
        Code::Stale,
        "work {work} is at step {}, not {cursor}",
        item.cursor
    );
    item.cursor += 1;
    let finished = match &item.work {
        Work::Deliver { msgid } => {
            let key = keys::app_message(msgid);
            let Some(mut am) = s.get_as::<AppMessage>(&key)? else {
                s.delete(&wkey);
                return Ok(Ok(Done::Ok));
            };
            if am.delivered < am.chunks {
                let chunk = am.delivered;
                let todo = keys::app_message_todo(msgid, chunk);
                let users: Vec<String> = s.get_as(&todo)?.unwrap_or_default();
                s.delete(&todo);
                if let Some(app) = s.get_as::<App>(&keys::app(am.agentid))? {
                    deliver_chunk(s, ctx, &app, &am, chunk, &users, false)?;
                }
                am.delivered += 1;
                s.put_as(&key, &am)?;
            }
            am.delivered >= am.chunks
        }
        Work::Recall { msgid } => {
            let Some(am) = s.get_as::<AppMessage>(&keys::app_message(msgid))? else {
                s.delete(&wkey);
                return Ok(Ok(Done::Ok));
            };
            // Chunk 0 was recalled by the command itself.
            let chunk = item.cursor as u32;
            if chunk < am.delivered {
                recall_chunk(s, ctx, &am, chunk)?;
            }
            chunk + 1 >= am.delivered
        }
    };
    if finished {
        s.delete(&wkey);
    } else {
        s.put_as(&wkey, &item)?;
    }
    Ok(Ok(Done::Ok))
}

/// A chatid: 1-32 letters and digits.
fn valid_chatid(c: &str) -> Result<(), Refusal> {
    if c.is_empty() || c.len() > 32 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return refuse(
            Code::InvalidArgument,
            format!("invalid chatid {c:?}: 1-32 letters and digits"),
        );
    }
    Ok(())
}

/// The group behind an app's chat.
fn app_chat<S: Store>(s: &Overlay<'_, S>, agentid: u32, chatid: &str) -> R<Conversation> {
    valid!(valid_chatid(chatid));
    let conv = keys::chat_conv_id(chatid);
    match s.get_as::<u32>(&keys::app_chat(&conv))? {
        Some(a) if a == agentid => {}
        _ => return Ok(refuse(Code::NotFound, format!("no chat {chatid:?}"))),
    }
    let c = check!(conversations::load_conv(s, &conv));
    ensure!(
        !c.dissolved,
        Code::Dissolved,
        "chat {chatid:?} is dissolved"
    );
    Ok(Ok(c))
}

pub(super) fn chat_create<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    chatid: Option<&str>,
    name: &str,
    owner: Option<&str>,
    members: &[String],
) -> R<Done> {
    let _ = check!(apps::app_ok(s, agentid, Scope::AppChat));
    valid!(valid_name(name, "chat name"));
    let chatid = match chatid {
        Some(c) => {
            valid!(valid_chatid(c));
            c.to_string()
        }
        None => {
            let n = s.get_as::<u64>(keys::CHAT_CTR)?.unwrap_or(0) + 1;
            s.put_as(keys::CHAT_CTR, &n)?;
            format!("wr{n:08}")
        }
    };
    let conv = keys::chat_conv_id(&chatid);
    ensure!(
        s.get(&keys::conv(&conv))?.is_none(),
        Code::AlreadyExists,
        "chat {chatid:?} exists"
    );
    let all = check!(conversations::check_new_members(s, None, members));
    ensure!(
        all.len() >= 2,
        Code::InvalidArgument,
        "a chat has at least 2 members"
    );
    let policy = policy(s)?;
    ensure!(
        all.len() <= policy.max_group_members as usize,
        Code::LimitExceeded,
        "a group has at most {} members",
        policy.max_group_members
    );
    let owner = match owner {
        Some(o) => {
            ensure!(
                all.iter().any(|m| m == o),
                Code::NotAMember,
                "the owner {o:?} must be in the member list"
            );
            o.to_string()
        }
        None => members.first().cloned().unwrap_or_default(),
    };
    let mut c = Conversation {
        id: conv.clone(),
        kind: ConvKind::Group,
        name: name.to_string(),
        owner,
        admins: Vec::new(),
        announcement: String::new(),
        member_count: all.len() as u32,
        last_seq: 0,
        last_event: 0,
        created_ms: ctx.time_ms,
        dissolved: false,
    };
    let no = emit(
        s,
        ctx,
        &mut c,
        &sender(agentid),
        EventBody::Created {
            kind: ConvKind::Group,
            name: name.to_string(),
            members: all.clone(),
        },
    )?;
    for u in &all {
        join(s, &conv, u, no, 0)?;
    }
    s.put_as(&keys::app_chat(&conv), &agentid)?;
    Ok(Ok(Done::Created { id: chatid }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn chat_update<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    chatid: &str,
    name: Option<&str>,
    owner: Option<&str>,
    add: &[String],
    del: &[String],
) -> R<Done> {
    let _ = check!(apps::app_ok(s, agentid, Scope::AppChat));
    let mut c = check!(app_chat(s, agentid, chatid));
    let actor = sender(agentid);
    if let Some(n) = name
        && n != c.name
    {
        valid!(valid_name(n, "chat name"));
        c.name = n.to_string();
        emit(
            s,
            ctx,
            &mut c,
            &actor,
            EventBody::Renamed {
                name: n.to_string(),
            },
        )?;
    }
    if !add.is_empty() {
        let new = check!(conversations::check_new_members(s, Some(&c.id), add));
        let policy = policy(s)?;
        ensure!(
            c.member_count as usize + new.len() <= policy.max_group_members as usize,
            Code::LimitExceeded,
            "a group has at most {} members",
            policy.max_group_members
        );
        c.member_count += new.len() as u32;
        let no = emit(
            s,
            ctx,
            &mut c,
            &actor,
            EventBody::MembersAdded {
                userids: new.clone(),
            },
        )?;
        for u in &new {
            join(s, &c.id, u, no, c.last_seq)?;
        }
    }
    if let Some(o) = owner
        && o != c.owner
    {
        ensure!(
            s.get(&keys::conv_member(&c.id, o))?.is_some() || add.iter().any(|a| a == o),
            Code::NotAMember,
            "the new owner {o:?} is not in the chat"
        );
        let _ = check!(active_member(s, o, true));
        c.owner = o.to_string();
        c.admins.retain(|a| a != o);
        emit(
            s,
            ctx,
            &mut c,
            &actor,
            EventBody::OwnerChanged {
                owner: o.to_string(),
            },
        )?;
    }
    for u in del {
        ensure!(
            *u != c.owner,
            Code::Forbidden,
            "the owner cannot be removed; set another owner first"
        );
        ensure!(
            s.get(&keys::conv_member(&c.id, u))?.is_some(),
            Code::NotAMember,
            "{u:?} is not in the chat"
        );
        c.member_count = c.member_count.saturating_sub(1);
        c.admins.retain(|a| a != u);
        let no = emit(
            s,
            ctx,
            &mut c,
            &actor,
            EventBody::MemberRemoved { userid: u.clone() },
        )?;
        s.delete(&keys::conv_member(&c.id, u));
        let uc_key = keys::user_conv(u, &c.id);
        let mut uc: UserConv = s.get_as(&uc_key)?.unwrap_or(UserConv {
            joined_event: no,
            left_event: None,
        });
        uc.left_event = Some(no);
        s.put_as(&uc_key, &uc)?;
    }
    s.put_as(&keys::conv(&c.id), &c)?;
    Ok(Ok(Done::Conversation(c)))
}

pub(super) fn chat_send<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    chatid: &str,
    content: &AppContent,
) -> R<Done> {
    let _ = check!(apps::app_ok(s, agentid, Scope::AppChat));
    valid!(valid_content(content));
    let content = &check!(with_app_file(s, agentid, content));
    let mut c = check!(app_chat(s, agentid, chatid));
    let msg = post(s, ctx, &mut c, agentid, content)?;
    Ok(Ok(Done::Message(msg)))
}
