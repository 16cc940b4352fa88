//! Applying commands: every invariant of the domain is enforced here, on
//! every node alike. A refused command writes nothing.

use super::Ctx;
use super::keys;
use super::model::*;
use super::store::{Store, StoreExt, StoreFault};

/// Apply one command. `Err` is a storage failure; a refusal is an `Ok`
/// outcome carrying the reason. Events produced are returned in order.
pub fn apply<S: Store>(
    store: &mut S,
    ctx: &Ctx,
    cmd: &Command,
) -> Result<(Outcome, Vec<Event>), StoreFault> {
    // Run against an overlay so a refusal half-way leaves nothing behind.
    let mut tx = Overlay {
        base: &*store,
        writes: Default::default(),
        events: Vec::new(),
    };
    let outcome = run(&mut tx, ctx, cmd)?;
    let Overlay { writes, events, .. } = tx;
    if outcome.is_ok() {
        for (k, v) in writes {
            match v {
                Some(v) => store.put(&k, v),
                None => store.delete(&k),
            }
        }
        Ok((outcome, events))
    } else {
        Ok((outcome, Vec::new()))
    }
}

/// Buffered writes of one command over the store.
struct Overlay<'a, S: Store> {
    base: &'a S,
    writes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    events: Vec<Event>,
}

impl<S: Store> Store for Overlay<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<super::store::KvPair>, StoreFault> {
        // Merge the base with this command's writes (small).
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = self
            .base
            .scan(prefix, after, limit.saturating_add(self.writes.len()))?
            .into_iter()
            .collect();
        for (k, v) in &self.writes {
            if !k.starts_with(prefix) || after.is_some_and(|a| k.as_slice() <= a) {
                continue;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.insert(key.to_vec(), Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
}

type R<T> = Result<Result<T, Refusal>, StoreFault>;

/// `?` for the nested result: storage faults propagate, refusals return.
macro_rules! check {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        }
    };
}

/// A plain validation result: refusals return.
macro_rules! valid {
    ($e:expr) => {
        if let Err(r) = $e {
            return Ok(Err(r));
        }
    };
}

macro_rules! ensure {
    ($cond:expr, $code:expr, $($msg:tt)+) => {
        if !$cond {
            return Ok(refuse($code, format!($($msg)+)));
        }
    };
}

fn run<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, cmd: &Command) -> R<Done> {
    match cmd {
        Command::UpsertDepartment { dept } => upsert_department(s, dept),
        Command::DeleteDepartment { id } => delete_department(s, *id),
        Command::CreateMember {
            member,
            password_hash,
        } => create_member(s, member, password_hash.as_deref()),
        Command::UpdateMember { userid, patch } => update_member(s, userid, patch),
        Command::SetMemberStatus { userid, status } => set_status(s, userid, *status),
        Command::SetPassword {
            userid,
            password_hash,
        } => {
            let _ = check!(active_member(s, userid, false));
            let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
            acct.password_hash = Some(password_hash.clone());
            acct.must_change = true;
            acct.failed_logins = 0;
            acct.locked_until_ms = 0;
            s.put_as(&keys::account(userid), &acct)?;
            revoke_sessions(s, userid, None)?;
            Ok(Ok(Done::Ok))
        }
        Command::UnlockAccount { userid } => {
            let _ = check!(active_member(s, userid, false));
            let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
            acct.failed_logins = 0;
            acct.locked_until_ms = 0;
            s.put_as(&keys::account(userid), &acct)?;
            Ok(Ok(Done::Ok))
        }
        Command::SetPolicy { policy } => {
            ensure!(
                policy.max_group_members >= 2 && policy.max_text_chars >= 1,
                Code::InvalidArgument,
                "max_group_members must be >= 2 and max_text_chars >= 1"
            );
            ensure!(
                policy.session_ttl_ms >= 5_000 && policy.refresh_ttl_ms >= policy.session_ttl_ms,
                Code::InvalidArgument,
                "session_ttl_ms must be >= 5000 and refresh_ttl_ms >= session_ttl_ms"
            );
            ensure!(
                policy.audit_retention_days >= 180,
                Code::InvalidArgument,
                "audit_retention_days must be at least 180 (records are kept six months)"
            );
            s.put_as(keys::POLICY, policy)?;
            Ok(Ok(Done::Ok))
        }
        Command::LoginSucceeded {
            userid,
            token_hash,
            refresh_hash,
        } => login_succeeded(s, ctx, userid, token_hash, refresh_hash),
        Command::LoginFailed { userid } => login_failed(s, ctx, userid),
        Command::Logout { token_hash } => {
            let Some(sess) = s.get_as::<Session>(&keys::session(token_hash))? else {
                return Ok(refuse(Code::Unauthenticated, "no such session"));
            };
            drop_session(s, token_hash, &sess);
            Ok(Ok(Done::Ok))
        }
        Command::Refresh {
            refresh_hash,
            new_token_hash,
            new_refresh_hash,
        } => refresh(s, ctx, refresh_hash, new_token_hash, new_refresh_hash),
        Command::ChangePassword {
            userid,
            password_hash,
            keep_session,
        } => {
            let _ = check!(active_member(s, userid, true));
            let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
            acct.password_hash = Some(password_hash.clone());
            acct.must_change = false;
            s.put_as(&keys::account(userid), &acct)?;
            revoke_sessions(s, userid, Some(keep_session))?;
            Ok(Ok(Done::Ok))
        }
        Command::Send {
            actor,
            target,
            text,
            mentions,
            mention_all,
            reply_to,
        } => send(
            s,
            ctx,
            actor,
            target,
            text,
            mentions,
            *mention_all,
            *reply_to,
        ),
        Command::Recall { actor, conv, seq } => recall(s, ctx, actor, conv, *seq),
        Command::CreateGroup {
            actor,
            name,
            members,
        } => create_group(s, ctx, actor, name, members),
        Command::AddMembers {
            actor,
            conv,
            userids,
        } => add_members(s, ctx, actor, conv, userids),
        Command::RemoveMember {
            actor,
            conv,
            userid,
        } => remove_member(s, ctx, actor, conv, userid, false),
        Command::Leave { actor, conv } => remove_member(s, ctx, actor, conv, actor, true),
        Command::TransferOwner { actor, conv, to } => transfer_owner(s, ctx, actor, conv, to),
        Command::SetAdmins {
            actor,
            conv,
            admins,
        } => set_admins(s, ctx, actor, conv, admins),
        Command::Rename { actor, conv, name } => {
            let mut c = check!(group_as_manager(s, actor, conv, false));
            valid!(valid_name(name, "name"));
            c.name = name.clone();
            emit(
                s,
                ctx,
                &mut c,
                actor,
                EventBody::Renamed { name: name.clone() },
            )?;
            Ok(Ok(Done::Conversation(c)))
        }
        Command::SetAnnouncement { actor, conv, text } => {
            let mut c = check!(group_as_manager(s, actor, conv, false));
            let policy = policy(s)?;
            ensure!(
                text.chars().count() <= policy.max_announcement_chars as usize,
                Code::LimitExceeded,
                "announcement is longer than {} characters",
                policy.max_announcement_chars
            );
            c.announcement = text.clone();
            emit(
                s,
                ctx,
                &mut c,
                actor,
                EventBody::Announcement { text: text.clone() },
            )?;
            Ok(Ok(Done::Conversation(c)))
        }
        Command::Dissolve { actor, conv } => {
            let mut c = check!(group_as_manager(s, actor, conv, true));
            c.dissolved = true;
            emit(s, ctx, &mut c, actor, EventBody::Dissolved)?;
            Ok(Ok(Done::Conversation(c)))
        }
        Command::MarkRead { actor, conv, seq } => mark(s, ctx, actor, conv, *seq, true),
        Command::MarkDelivered { actor, conv, seq } => mark(s, ctx, actor, conv, *seq, false),
    }
}

// ---------------------------------------------------------------- helpers

pub fn policy<S: Store + ?Sized>(s: &S) -> Result<Policy, StoreFault> {
    Ok(s.get_as(keys::POLICY)?.unwrap_or_default())
}

/// A valid userid: 1–64 of `A-Z a-z 0-9 _ . @ -`.
pub fn valid_userid(u: &str) -> Result<(), Refusal> {
    if u.is_empty()
        || u.len() > 64
        || !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
    {
        return refuse(
            Code::InvalidArgument,
            format!("invalid userid {u:?}: 1-64 characters of A-Z a-z 0-9 _ . @ -"),
        );
    }
    Ok(())
}

/// A display name: 1–64 characters, no control characters.
pub fn valid_name(n: &str, what: &str) -> Result<(), Refusal> {
    let len = n.chars().count();
    if len == 0 || len > 64 || n.chars().any(char::is_control) || n.trim().is_empty() {
        return refuse(
            Code::InvalidArgument,
            format!("{what} must be 1-64 characters without control characters"),
        );
    }
    Ok(())
}

fn valid_field(v: &str, what: &str) -> Result<(), Refusal> {
    if v.chars().count() > 128 || v.chars().any(char::is_control) {
        return refuse(
            Code::InvalidArgument,
            format!("{what} must be at most 128 characters without control characters"),
        );
    }
    Ok(())
}

/// The member, which must exist (and be active if `need_active`).
fn active_member<S: Store>(s: &Overlay<'_, S>, userid: &str, need_active: bool) -> R<Member> {
    let Some(m) = s.get_as::<Member>(&keys::user(userid))? else {
        return Ok(refuse(Code::NotFound, format!("no member {userid:?}")));
    };
    if need_active && m.status != MemberStatus::Active {
        return Ok(refuse(
            Code::AccountInactive,
            format!("member {userid:?} is not active"),
        ));
    }
    Ok(Ok(m))
}

fn next_event<S: Store>(s: &mut Overlay<'_, S>) -> Result<u64, StoreFault> {
    let n = s.get_as::<u64>(keys::EVENT_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::EVENT_CTR, &n)?;
    Ok(n)
}

/// Record an event in a conversation (and save the conversation).
fn emit<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    actor: &str,
    body: EventBody,
) -> Result<u64, StoreFault> {
    let no = next_event(s)?;
    let ev = Event {
        no,
        conv: conv.id.clone(),
        time_ms: ctx.time_ms,
        actor: actor.to_string(),
        body,
    };
    s.put_as(&keys::event(&conv.id, no), &ev)?;
    conv.last_event = no;
    s.put_as(&keys::conv(&conv.id), conv)?;
    s.events.push(ev);
    Ok(no)
}

// -------------------------------------------------------------- directory

fn upsert_department<S: Store>(s: &mut Overlay<'_, S>, d: &Department) -> R<Done> {
    valid!(valid_name(&d.name, "department name"));
    ensure!(d.id > 0, Code::InvalidArgument, "department id must be > 0");
    for l in &d.leaders {
        let _ = check!(active_member(s, l, false));
    }
    let existing = s.get_as::<Department>(&keys::dept(d.id))?;
    match d.parent {
        None => ensure!(
            d.id == ROOT_DEPARTMENT,
            Code::InvalidArgument,
            "only the root department (id 1) has no parent"
        ),
        Some(p) => {
            ensure!(
                d.id != ROOT_DEPARTMENT,
                Code::InvalidArgument,
                "the root department (id 1) cannot have a parent"
            );
            ensure!(
                s.get(&keys::dept(p))?.is_some(),
                Code::NotFound,
                "parent department {p} does not exist"
            );
            // No cycles: walking up from the new parent must not meet d.
            let mut at = Some(p);
            let mut steps = 0;
            while let Some(cur) = at {
                ensure!(
                    cur != d.id,
                    Code::Cycle,
                    "moving department {} under {p} would make a cycle",
                    d.id
                );
                steps += 1;
                if steps > 10_000 {
                    return Err(StoreFault("department tree deeper than 10000".into()));
                }
                at = s
                    .get_as::<Department>(&keys::dept(cur))?
                    .and_then(|x| x.parent);
            }
        }
    }
    if let Some(old) = existing.as_ref().filter(|o| o.parent != d.parent) {
        s.delete(&keys::dept_child(old.parent.unwrap_or(0), d.id));
    }
    s.put(&keys::dept_child(d.parent.unwrap_or(0), d.id), Vec::new());
    s.put_as(&keys::dept(d.id), d)?;
    Ok(Ok(Done::Department(d.clone())))
}

fn delete_department<S: Store>(s: &mut Overlay<'_, S>, id: u64) -> R<Done> {
    let Some(d) = s.get_as::<Department>(&keys::dept(id))? else {
        return Ok(refuse(Code::NotFound, format!("no department {id}")));
    };
    ensure!(
        s.scan(&keys::dept_children(id), None, 1)?.is_empty(),
        Code::DepartmentNotEmpty,
        "department {id} still has sub-departments"
    );
    ensure!(
        s.scan(&keys::dept_members(id), None, 1)?.is_empty(),
        Code::DepartmentNotEmpty,
        "department {id} still has members"
    );
    s.delete(&keys::dept(id));
    s.delete(&keys::dept_child(d.parent.unwrap_or(0), id));
    Ok(Ok(Done::Ok))
}

fn check_member_fields<S: Store>(s: &Overlay<'_, S>, m: &Member) -> R<()> {
    valid!(valid_userid(&m.userid));
    valid!(valid_name(&m.name, "name"));
    valid!(valid_field(&m.title, "title"));
    valid!(valid_field(&m.email, "email"));
    valid!(valid_field(&m.mobile, "mobile"));
    ensure!(
        !m.departments.is_empty() && m.departments.len() <= 20,
        Code::InvalidArgument,
        "a member belongs to 1-20 departments"
    );
    for d in &m.departments {
        ensure!(
            s.get(&keys::dept(*d))?.is_some(),
            Code::NotFound,
            "department {d} does not exist"
        );
    }
    Ok(Ok(()))
}

fn create_member<S: Store>(
    s: &mut Overlay<'_, S>,
    m: &Member,
    password_hash: Option<&str>,
) -> R<Done> {
    check!(check_member_fields(s, m));
    ensure!(
        s.get(&keys::user(&m.userid))?.is_none(),
        Code::AlreadyExists,
        "userid {:?} is taken",
        m.userid
    );
    let mut m = m.clone();
    m.departments.sort_unstable();
    m.departments.dedup();
    m.status = MemberStatus::Active;
    for d in &m.departments {
        s.put(&keys::dept_member(*d, &m.userid), Vec::new());
    }
    s.put(&keys::name_index(&m.name, &m.userid), Vec::new());
    s.put_as(&keys::user(&m.userid), &m)?;
    let acct = Account {
        password_hash: password_hash.map(str::to_string),
        must_change: password_hash.is_some(),
        ..Default::default()
    };
    s.put_as(&keys::account(&m.userid), &acct)?;
    Ok(Ok(Done::Member(m)))
}

fn update_member<S: Store>(s: &mut Overlay<'_, S>, userid: &str, p: &MemberPatch) -> R<Done> {
    let old = check!(active_member(s, userid, false));
    ensure!(
        old.status != MemberStatus::Departed,
        Code::AccountInactive,
        "member {userid:?} has departed and cannot be changed"
    );
    let mut m = old.clone();
    if let Some(v) = &p.name {
        m.name = v.clone();
    }
    if let Some(v) = &p.departments {
        m.departments = v.clone();
        m.departments.sort_unstable();
        m.departments.dedup();
    }
    if let Some(v) = &p.title {
        m.title = v.clone();
    }
    if let Some(v) = &p.email {
        m.email = v.clone();
    }
    if let Some(v) = &p.mobile {
        m.mobile = v.clone();
    }
    check!(check_member_fields(s, &m));
    for d in &old.departments {
        s.delete(&keys::dept_member(*d, userid));
    }
    for d in &m.departments {
        s.put(&keys::dept_member(*d, userid), Vec::new());
    }
    s.delete(&keys::name_index(&old.name, userid));
    s.put(&keys::name_index(&m.name, userid), Vec::new());
    s.put_as(&keys::user(userid), &m)?;
    Ok(Ok(Done::Member(m)))
}

fn set_status<S: Store>(s: &mut Overlay<'_, S>, userid: &str, status: MemberStatus) -> R<Done> {
    let mut m = check!(active_member(s, userid, false));
    ensure!(
        m.status != MemberStatus::Departed || status == MemberStatus::Departed,
        Code::AccountInactive,
        "member {userid:?} has departed and cannot be reactivated"
    );
    m.status = status;
    if status == MemberStatus::Departed {
        // Departed members leave the org chart but keep their history.
        for d in &m.departments {
            s.delete(&keys::dept_member(*d, userid));
        }
    }
    if status != MemberStatus::Active {
        revoke_sessions(s, userid, None)?;
    }
    s.put_as(&keys::user(userid), &m)?;
    Ok(Ok(Done::Member(m)))
}

// --------------------------------------------------------------- sessions

fn drop_session<S: Store>(s: &mut Overlay<'_, S>, token_hash: &[u8; 32], sess: &Session) {
    s.delete(&keys::session(token_hash));
    s.delete(&keys::refresh(&sess.refresh_hash));
    s.delete(&keys::user_session(&sess.userid, token_hash));
}

/// Revoke every session of `userid` (but `keep`).
fn revoke_sessions<S: Store>(
    s: &mut Overlay<'_, S>,
    userid: &str,
    keep: Option<&[u8; 32]>,
) -> Result<(), StoreFault> {
    let prefix = keys::user_sessions(userid);
    let all = s.scan(&prefix, None, usize::MAX)?;
    for (k, _) in all {
        let Ok(hash) = <[u8; 32]>::try_from(&k[prefix.len()..]) else {
            continue;
        };
        if keep == Some(&hash) {
            continue;
        }
        if let Some(sess) = s.get_as::<Session>(&keys::session(&hash))? {
            drop_session(s, &hash, &sess);
        } else {
            s.delete(&k);
        }
    }
    Ok(())
}

fn login_succeeded<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
    token_hash: &[u8; 32],
    refresh_hash: &[u8; 32],
) -> R<Done> {
    let _ = check!(active_member(s, userid, true));
    let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
    // A lockout decided meanwhile (on another node) wins.
    ensure!(
        acct.locked_until_ms <= ctx.time_ms,
        Code::AccountLocked,
        "account {userid:?} is locked"
    );
    ensure!(
        s.get(&keys::session(token_hash))?.is_none(),
        Code::AlreadyExists,
        "session exists"
    );
    let policy = policy(s)?;
    acct.failed_logins = 0;
    s.put_as(&keys::account(userid), &acct)?;
    let sess = Session {
        userid: userid.to_string(),
        created_ms: ctx.time_ms,
        expires_ms: ctx.time_ms + policy.session_ttl_ms,
        refresh_hash: *refresh_hash,
        refresh_expires_ms: ctx.time_ms + policy.refresh_ttl_ms,
    };
    s.put_as(&keys::session(token_hash), &sess)?;
    s.put(&keys::refresh(refresh_hash), token_hash.to_vec());
    s.put(&keys::user_session(userid, token_hash), Vec::new());
    Ok(Ok(Done::Session {
        userid: userid.to_string(),
        expires_ms: sess.expires_ms,
        refresh_expires_ms: sess.refresh_expires_ms,
    }))
}

fn login_failed<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, userid: &str) -> R<Done> {
    // Unknown users are not recorded: there is no account to lock.
    if s.get(&keys::user(userid))?.is_none() {
        return Ok(Ok(Done::Ok));
    }
    let policy = policy(s)?;
    let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
    acct.failed_logins += 1;
    if acct.failed_logins >= policy.lockout_threshold {
        acct.locked_until_ms = ctx.time_ms + policy.lockout_ms;
        acct.failed_logins = 0;
    }
    s.put_as(&keys::account(userid), &acct)?;
    Ok(Ok(Done::Ok))
}

fn refresh<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    refresh_hash: &[u8; 32],
    new_token: &[u8; 32],
    new_refresh: &[u8; 32],
) -> R<Done> {
    let Some(old_token) = s.get(&keys::refresh(refresh_hash))? else {
        return Ok(refuse(
            Code::Unauthenticated,
            "unknown or used refresh token",
        ));
    };
    let Ok(old_token) = <[u8; 32]>::try_from(old_token.as_slice()) else {
        return Err(StoreFault("malformed refresh record".into()));
    };
    let Some(sess) = s.get_as::<Session>(&keys::session(&old_token))? else {
        return Ok(refuse(Code::Unauthenticated, "session is gone"));
    };
    drop_session(s, &old_token, &sess);
    if sess.refresh_expires_ms <= ctx.time_ms {
        // Expired: the stale session is dropped, the refresh refused.
        return Ok(refuse(Code::Unauthenticated, "refresh token expired"));
    }
    login_succeeded(s, ctx, &sess.userid, new_token, new_refresh)
}

// ----------------------------------------------------------- conversations

fn load_conv<S: Store>(s: &Overlay<'_, S>, conv: &str) -> R<Conversation> {
    match s.get_as::<Conversation>(&keys::conv(conv))? {
        Some(c) => Ok(Ok(c)),
        None => Ok(refuse(Code::NotFound, format!("no conversation {conv:?}"))),
    }
}

/// The conversation, which `actor` (an active member) belongs to.
fn conv_as_member<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    conv: &str,
) -> R<(Conversation, ConvMember)> {
    let _ = check!(active_member(s, actor, true));
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
fn group_as_manager<S: Store>(
    s: &Overlay<'_, S>,
    actor: &str,
    conv: &str,
    owner_only: bool,
) -> R<Conversation> {
    let (c, _) = check!(conv_as_member(s, actor, conv));
    ensure!(
        c.kind == ConvKind::Group,
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

fn join<S: Store>(
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
fn send<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    target: &Target,
    text: &str,
    mentions: &[String],
    mention_all: bool,
    reply_to: Option<u64>,
) -> R<Done> {
    let policy = policy(s)?;
    let len = text.chars().count();
    ensure!(len > 0, Code::InvalidArgument, "text is empty");
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
    if let Some(r) = reply_to {
        ensure!(
            r >= 1 && r <= conv.last_seq,
            Code::NotFound,
            "reply_to {r}: no such message in {:?}",
            conv.id
        );
    }
    if mention_all && conv.kind == ConvKind::Group {
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
    conv.last_seq += 1;
    let mut msg = Message {
        conv: conv.id.clone(),
        seq: conv.last_seq,
        sender: actor.to_string(),
        time_ms: ctx.time_ms,
        text: text.to_string(),
        mentions,
        mention_all,
        reply_to,
        recalled: false,
        event: 0,
    };
    // The event number is known before emitting: the counter is next.
    msg.event = s.get_as::<u64>(keys::EVENT_CTR)?.unwrap_or(0) + 1;
    s.put_as(&keys::message(&conv.id, msg.seq), &msg)?;
    emit(
        s,
        ctx,
        &mut conv,
        actor,
        EventBody::Message {
            message: msg.clone(),
        },
    )?;
    // The sender has read what they sent.
    let key = keys::conv_member(&conv.id, actor);
    if let Some(mut me) = s.get_as::<ConvMember>(&key)? {
        me.read_seq = msg.seq;
        me.delivered_seq = msg.seq;
        s.put_as(&key, &me)?;
    }
    Ok(Ok(Done::Message(msg)))
}

fn recall<S: Store>(
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
    ensure!(
        !msg.recalled,
        Code::InvalidArgument,
        "message {seq} is already recalled"
    );
    let policy = policy(s)?;
    ensure!(
        ctx.time_ms <= msg.time_ms + policy.recall_window_ms,
        Code::RecallWindowExpired,
        "messages can be recalled within {} s of sending",
        policy.recall_window_ms / 1000
    );
    msg.recalled = true;
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

fn check_new_members<S: Store>(
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

fn create_group<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    name: &str,
    members: &[String],
) -> R<Done> {
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
    let mut c = Conversation {
        id: format!("g{n}"),
        kind: ConvKind::Group,
        name: name.to_string(),
        owner: actor.to_string(),
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
        actor,
        EventBody::Created {
            kind: ConvKind::Group,
            name: name.to_string(),
            members: all.clone(),
        },
    )?;
    for u in &all {
        join(s, &c.id, u, no, 0)?;
    }
    Ok(Ok(Done::Conversation(c)))
}

fn add_members<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    userids: &[String],
) -> R<Done> {
    let mut c = check!(group_as_manager(s, actor, conv, false));
    let new = check!(check_new_members(s, Some(conv), userids));
    ensure!(!new.is_empty(), Code::InvalidArgument, "no members to add");
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

fn remove_member<S: Store>(
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
            c.kind == ConvKind::Group,
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

fn transfer_owner<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    to: &str,
) -> R<Done> {
    let mut c = check!(group_as_manager(s, actor, conv, true));
    let _ = check!(active_member(s, to, true));
    ensure!(
        s.get(&keys::conv_member(conv, to))?.is_some(),
        Code::NotAMember,
        "{to:?} is not a member of {conv:?}"
    );
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

fn set_admins<S: Store>(
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

fn mark<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    actor: &str,
    conv: &str,
    seq: u64,
    read: bool,
) -> R<Done> {
    let (mut c, mut me) = check!(conv_as_member(s, actor, conv));
    ensure!(
        seq <= c.last_seq,
        Code::InvalidArgument,
        "seq {seq} is beyond the last message ({})",
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
