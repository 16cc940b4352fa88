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

mod conversations;
mod directory;
mod sessions;

use conversations::*;
use directory::*;
use sessions::*;

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
