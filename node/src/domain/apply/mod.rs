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
    let log_version = cluster_version(&*store)?;
    let mut tx = Overlay {
        base: &*store,
        writes: Default::default(),
        events: Vec::new(),
        log_version,
    };
    let outcome = run(&mut tx, ctx, cmd)?;
    if outcome.is_ok() {
        follow_directory(&mut tx, ctx)?;
    }
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
    /// The cluster's log version when the command began (read once).
    log_version: u32,
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

pub mod announcements;
mod appmsg;
mod approval_templates;
pub mod approvals;
mod apps;
mod audience;
mod callbacks;
mod conversations;
mod directory;
pub mod external;
pub mod files;
mod handover;
pub mod jobs;
pub mod notices;
mod sessions;
mod users;

pub use appmsg::{APP_RECALL_MS, FANOUT_CHUNK};
pub use apps::{OAUTH_CODE_MS, valid_callback};
pub use callbacks::{MAX_QUEUED, cdata};
pub use users::MAX_BATCH_DELETE;

use conversations::*;
use directory::*;
use sessions::*;

/// The scope an app needs for a command it issues itself, if it may issue
/// it at all (`None`: only members or operators do this).
fn app_scope(cmd: &Command) -> Option<Scope> {
    Some(match cmd {
        Command::PutUser { .. }
        | Command::PutDepartment { .. }
        | Command::DeleteUsers { .. }
        | Command::DeleteDepartment { .. }
        | Command::CreateJob { .. }
        | Command::PutMedia { .. }
        | Command::SealMedia { .. } => Scope::DirectoryWrite,
        Command::AppSend { .. } | Command::AppRecall { .. } => Scope::MessageSend,
        Command::AppChatCreate { .. }
        | Command::AppChatUpdate { .. }
        | Command::AppChatSend { .. } => Scope::AppChat,
        Command::RedeemOAuthCode { .. } => Scope::OAuth,
        Command::SubmitApproval { .. } => Scope::Approval,
        Command::TransferContacts { .. } | Command::CancelTransfer { .. } => Scope::ExternalContact,
        _ => return None,
    })
}

/// The app a command names, if it names one.
fn cmd_agentid(cmd: &Command) -> Option<u32> {
    match cmd {
        Command::AppSend { agentid, .. }
        | Command::AppRecall { agentid, .. }
        | Command::AppChatCreate { agentid, .. }
        | Command::AppChatUpdate { agentid, .. }
        | Command::AppChatSend { agentid, .. }
        | Command::PutMedia { agentid, .. }
        | Command::SealMedia { agentid, .. }
        | Command::CreateJob { agentid, .. }
        | Command::RedeemOAuthCode { agentid, .. } => Some(*agentid),
        _ => None,
    }
}

fn run<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, cmd: &Command) -> R<Done> {
    // The same check the proposing node made, repeated deterministically
    // here: a kind newer than the cluster's log version changes nothing.
    if !matches!(cmd, Command::SetClusterVersion { .. }) {
        let at = s.log_version;
        if cmd.log_version() > at {
            return Ok(refuse(
                Code::ClusterUpgrading,
                format!(
                    "this needs log version {}; the cluster is at {at} until every voter runs a build that has it",
                    cmd.log_version()
                ),
            ));
        }
    }
    if let Some(caller) = ctx.app
        && cmd_agentid(cmd).is_some_and(|a| a != caller)
    {
        return Ok(refuse(Code::ScopeDenied, "an app may act only as itself"));
    }
    if ctx.app.is_some() {
        // An app may issue only what its scopes allow, and only while it
        // is enabled — checked here, so a disable wins any race.
        match app_scope(cmd) {
            Some(scope) => check!(apps::caller_may(s, ctx, scope)),
            // Its own upload (`media/upload`, uploader `app:<agentid>`,
            // see `files::record`): an app that sends or runs jobs.
            None if matches!(cmd, Command::RecordFile { .. }) => {
                let mut refused = None;
                for scope in [Scope::MessageSend, Scope::AppChat, Scope::DirectoryWrite] {
                    match apps::caller_may(s, ctx, scope)? {
                        Ok(()) => {
                            refused = None;
                            break;
                        }
                        Err(r) => {
                            refused.get_or_insert(r);
                        }
                    }
                }
                if let Some(r) = refused {
                    return Ok(Err(r));
                }
            }
            None => {
                return Ok(refuse(Code::ScopeDenied, "apps may not issue this command"));
            }
        }
    }
    match cmd {
        Command::UpsertDepartment { dept } => {
            let existed = s.get(&keys::dept(dept.id))?.is_some();
            let done = check!(upsert_department(s, dept));
            let change = if existed {
                "update_party"
            } else {
                "create_party"
            };
            callbacks::contact_changed(s, ctx, change, callbacks::party_fields(dept))?;
            Ok(Ok(done))
        }
        Command::DeleteDepartment { id } => delete_department(s, ctx, *id),
        Command::CreateMember {
            member,
            password_hash,
        } => create_member(s, ctx, member, password_hash.as_deref()),
        Command::UpdateMember { userid, patch } => update_member(s, ctx, userid, patch),
        Command::SetMemberStatus { userid, status } => set_status(s, ctx, userid, *status),
        Command::SetPassword {
            userid,
            password_hash,
        } => {
            let _ = check!(external::active_party(s, userid, false));
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
            let _ = check!(external::active_party(s, userid, false));
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
            let _ = check!(external::active_party(s, userid, true));
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
            file,
        } => send(
            s,
            ctx,
            actor,
            target,
            text,
            mentions,
            *mention_all,
            *reply_to,
            file.as_deref(),
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
        Command::CreateApp {
            name,
            scopes,
            secret_hash,
            trusted_domains,
            corp,
        } => apps::create_app(s, ctx, name, scopes, secret_hash, trusted_domains, corp),
        Command::UpdateApp { agentid, change } => apps::update_app(s, *agentid, change),
        Command::PutUser { mode, fields } => users::put_user(s, ctx, *mode, fields, true),
        Command::PutDepartment { create, fields } => {
            users::put_department(s, ctx, *create, fields, true)
        }
        Command::DeleteUsers { userids } => users::delete_users(s, ctx, userids),
        Command::AppSend {
            agentid,
            to,
            content,
            dedup_ms,
        } => appmsg::app_send(s, ctx, *agentid, to, content, *dedup_ms),
        Command::AppRecall { agentid, msgid } => appmsg::app_recall(s, ctx, *agentid, msgid),
        Command::Continue { work, cursor } => appmsg::continue_work(s, ctx, *work, *cursor),
        Command::AppChatCreate {
            agentid,
            chatid,
            name,
            owner,
            members,
        } => appmsg::chat_create(
            s,
            ctx,
            *agentid,
            chatid.as_deref(),
            name,
            owner.as_deref(),
            members,
        ),
        Command::AppChatUpdate {
            agentid,
            chatid,
            name,
            owner,
            add,
            del,
        } => appmsg::chat_update(
            s,
            ctx,
            *agentid,
            chatid,
            name.as_deref(),
            owner.as_deref(),
            add,
            del,
        ),
        Command::AppChatSend {
            agentid,
            chatid,
            content,
        } => appmsg::chat_send(s, ctx, *agentid, chatid, content),
        Command::PutMedia {
            media_id,
            index,
            data,
            ..
        } => jobs::put_media(s, ctx, media_id, *index, data),
        Command::SealMedia {
            media_id,
            agentid,
            kind,
            filename,
            size,
            sha256,
            chunks,
        } => jobs::seal_media(
            s, ctx, media_id, *agentid, kind, filename, *size, sha256, *chunks,
        ),
        Command::CreateJob {
            agentid,
            kind,
            media_id,
            columns,
            start,
            total,
            callback,
        } => jobs::create_job(
            s, ctx, *agentid, *kind, media_id, columns, start, *total, callback,
        ),
        Command::JobStep {
            jobid,
            at,
            next,
            rows,
        } => jobs::job_step(s, ctx, jobid, at, next, rows),
        Command::IssueOAuthCode {
            code_hash,
            userid,
            agentid,
        } => apps::issue_oauth_code(s, ctx, code_hash, userid, *agentid),
        Command::RedeemOAuthCode { code_hash, agentid } => {
            apps::redeem_oauth_code(s, ctx, code_hash, *agentid)
        }
        Command::CallbackDelivered { agentid, upto } => {
            callbacks::delivered(s, ctx, *agentid, *upto)
        }
        Command::CallbackFailed {
            agentid,
            seq,
            error,
        } => callbacks::failed(s, ctx, *agentid, *seq, error),
        Command::SetPermission {
            userid,
            permission,
            granted,
        } => directory::set_permission(s, userid, *permission, *granted),
        Command::SendNotice { actor, draft } => notices::send_notice(s, ctx, actor, draft),
        Command::NoticeExpand { id, step } => notices::notice_expand(s, ctx, *id, *step),
        Command::NoticeRemind { id, round, step } => notices::remind(s, ctx, *id, *round, *step),
        Command::NoticeEscalate { id, step } => notices::escalate(s, ctx, *id, *step),
        Command::WithdrawNotice { actor, id } => notices::withdraw(s, ctx, actor.as_deref(), *id),
        Command::NoticeWithdrawStep { id, step } => notices::withdraw_step(s, ctx, *id, *step),
        Command::AckNotice { actor, id } => notices::mark(s, ctx, actor, *id, NoticeLevel::Acked),
        Command::ReadNotice { actor, id } => notices::mark(s, ctx, actor, *id, NoticeLevel::Read),
        Command::NoticeDelivered { actor, ids } => notices::delivered(s, ctx, actor, ids),
        Command::RecordFile { file } => files::record(s, ctx, file),
        Command::SweepFiles => files::sweep(s, ctx),
        Command::SetFilePolicy { policy } => files::set_policy(s, policy),
        Command::SetClusterVersion { version, forced } => {
            let current = cluster_version(s)?;
            if *version <= current {
                return Ok(refuse(
                    Code::InvalidArgument,
                    format!("the cluster is at log version {current} already; it never moves back"),
                ));
            }
            s.put_as(
                keys::CLUSTER_VERSION,
                &super::model::ClusterVersion {
                    version: *version,
                    set_ms: ctx.time_ms,
                    forced: *forced,
                },
            )?;
            if current < keys::CHANGE_INDEX_VERSION && *version >= keys::CHANGE_INDEX_VERSION {
                // Events from here on are indexed for sync.
                let head = s.get_as::<u64>(keys::EVENT_CTR)?.unwrap_or(0);
                s.put_as(keys::CHANGES_FROM, &head)?;
            }
            s.log_version = *version;
            Ok(Ok(Done::Ok))
        }
        Command::SetNoticePolicy { policy } => {
            s.put_as(keys::NOTICE_POLICY, policy)?;
            Ok(Ok(Done::Ok))
        }
        Command::PublishAnnouncement { actor, draft } => {
            announcements::publish(s, ctx, actor, draft)
        }
        Command::AnnouncementExpand { id, step } => announcements::expand_step(s, ctx, *id, *step),
        Command::ReadAnnouncement { actor, id } => announcements::read(s, ctx, actor, *id),
        Command::WithdrawAnnouncement { actor, id } => {
            announcements::withdraw(s, ctx, actor.as_deref(), *id)
        }
        Command::PutApprovalTemplate { template } => approval_templates::put_template(s, template),
        Command::SetApprovalTemplateDisabled { id, disabled } => {
            approval_templates::set_template_disabled(s, id, *disabled)
        }
        Command::SubmitApproval {
            actor,
            template,
            values,
            route,
        } => approvals::submit(s, ctx, actor, template, values, route.as_ref()),
        Command::ActOnApproval {
            actor,
            id,
            step,
            action,
        } => approvals::act(s, ctx, actor, *id, *step, action),
        Command::CreateInvitation { actor, code_hash } => {
            external::create_invitation(s, ctx, actor, code_hash)
        }
        Command::AcceptInvitation {
            code_hash,
            userid,
            name,
            org,
            phone,
            email,
            password_hash,
        } => external::accept_invitation(
            s,
            ctx,
            code_hash,
            userid,
            name,
            org,
            phone,
            email,
            password_hash,
        ),
        Command::SetExternalDisabled { userid, disabled } => {
            external::set_disabled(s, userid, *disabled)
        }
        Command::SetExternalPolicy { policy } => external::set_policy(s, policy),
        Command::CreateCustomerGroup {
            actor,
            name,
            members,
        } => external::create_customer_group(s, ctx, actor, name, members),
        Command::SetAutoReplies { actor, conv, rules } => {
            external::set_auto_replies(s, actor, conv, rules)
        }
        Command::TransferContacts {
            actor,
            from,
            to,
            externals,
            groups,
            message,
        } => handover::transfer(
            s,
            ctx,
            actor.as_deref(),
            from,
            to,
            externals,
            groups,
            message,
        ),
        Command::CancelTransfer { actor, id } => handover::cancel(s, ctx, actor.as_deref(), *id),
        Command::ObjectTransfer { actor, id } => handover::object(s, actor, *id),
        Command::TransferStep { id } => handover::step(s, ctx, *id),
    }
}

/// After a command that changed departments or members: pending approval
/// steps follow the directory.
fn follow_directory<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx) -> Result<(), StoreFault> {
    let mut depts = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    for k in s
        .writes
        .range(b"dept/".to_vec()..b"dept0".to_vec())
        .map(|(k, _)| k)
    {
        if k.len() == 13 {
            depts.insert(keys::tail_u64(k));
        }
    }
    for k in s
        .writes
        .range(b"user/".to_vec()..b"user0".to_vec())
        .map(|(k, _)| k)
    {
        users.insert(String::from_utf8_lossy(&k[5..]).into_owned());
    }
    if depts.is_empty() && users.is_empty() {
        return Ok(());
    }
    approvals::directory_changed(s, ctx, &depts, &users)
}

// ---------------------------------------------------------------- helpers

/// The replicated-log version the cluster has moved to (1 until the first
/// `SetClusterVersion`).
pub fn cluster_version<S: Store + ?Sized>(s: &S) -> Result<u32, StoreFault> {
    Ok(s.get_as::<ClusterVersion>(keys::CLUSTER_VERSION)?
        .map_or(1, |v| v.version))
}

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
    emit_numbered(s, ctx, conv, actor, body, no)
}

/// [`emit`] with the number [`next_event`] gave (for a body that carries
/// its own event number, like a message).
fn emit_numbered<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    conv: &mut Conversation,
    actor: &str,
    body: EventBody,
    no: u64,
) -> Result<u64, StoreFault> {
    let ev = Event {
        no,
        conv: conv.id.clone(),
        time_ms: ctx.time_ms,
        actor: actor.to_string(),
        body,
    };
    // A message's event is its message record (log version 5): not stored
    // a second time.
    let derived =
        s.log_version >= keys::MESSAGE_ONCE_VERSION && matches!(ev.body, EventBody::Message { .. });
    if !derived {
        s.put_as(&keys::event(&conv.id, no), &ev)?;
    }
    if s.log_version >= keys::CHANGE_INDEX_VERSION {
        s.put(&keys::change(no), conv.id.as_bytes().to_vec());
    }
    conv.last_event = no;
    s.put_as(&keys::conv(&conv.id), conv)?;
    s.events.push(ev);
    Ok(no)
}
