//! The node's application on the replicated log: the messaging domain
//! (and the diagnostic key-value store), plus the push hub that hands
//! applied events to this node's connected clients.
//!
//! Commands carry a one-byte tag: `D` + postcard [`Command`], `K` +
//! postcard [`KvCommand`](crate::kv::KvCommand).

use std::sync::{Arc, Mutex};

use enclave_cluster::app::{Application, ApplyContext};
use enclave_cluster::store::{StateView, Txn};
use tokio::sync::{broadcast, watch};

use crate::audit::{self, Origin};
use crate::domain::store::StoreExt;
use crate::domain::store::{KvPair, Store, StoreFault};
use crate::domain::{self, Command, Ctx, Event, Outcome};
use crate::kv::Kv;

const TAG_DOMAIN: u8 = b'D';
const TAG_KV: u8 = b'K';
const TAG_CHECKPOINT: u8 = b'A';
const TAG_RECORD: u8 = b'R';
const TAG_ARCHIVE: u8 = b'X';

/// Move audit records up to `upto` out of the chain (see `audit::archive`).
pub fn encode_archive(origin: &Origin, upto: u64, export_sha256: &str) -> Vec<u8> {
    let mut b = vec![TAG_ARCHIVE];
    b.extend(postcard::to_stdvec(&(origin, upto, export_sha256)).unwrap_or_default());
    b
}

/// An audit record of an action that happened outside the domain (cluster
/// operations, backups, aggregated denials): (origin, action, target, outcome).
pub fn encode_record(origin: &Origin, action: &str, target: &str, outcome: &str) -> Vec<u8> {
    let mut b = vec![TAG_RECORD];
    b.extend(postcard::to_stdvec(&(origin, action, target, outcome)).unwrap_or_default());
    b
}

pub fn encode_checkpoint(cp: &audit::Checkpoint) -> Vec<u8> {
    let mut b = vec![TAG_CHECKPOINT];
    b.extend(postcard::to_stdvec(cp).unwrap_or_default());
    b
}

/// Applied batches kept for live subscribers; one that falls further
/// behind is told to resync from its token (bounded memory, no
/// slow-consumer leak).
pub const PUSH_BUFFER: usize = 1024;

/// A domain command with who asked for it (for its audit record).
/// A deduplicated answer whose outcome is a [`domain::Done::Posted`]
/// reference (see `NodeApp::retry_outcome`): the outcome with the message
/// read from `view`, encoded as the original was. `None`: not such an
/// answer. `Some(Err)`: the message is not in this node's state.
pub fn expand_retry(view: &ViewStore, outcome: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let Ok(Ok(domain::Done::Posted { conv, seq })) = decode_exact::<Outcome>(outcome) else {
        return None;
    };
    Some(match domain::query::message(view, &conv, seq) {
        Ok(Some(m)) => {
            postcard::to_stdvec(&Outcome::Ok(domain::Done::Message(m))).map_err(|e| e.to_string())
        }
        Ok(None) => Err(format!(
            "message {seq} of {conv:?} is not in this node's state"
        )),
        Err(e) => Err(e.to_string()),
    })
}

pub fn encode_domain(origin: &Origin, cmd: &Command) -> Vec<u8> {
    let mut b = vec![TAG_DOMAIN];
    b.extend(postcard::to_stdvec(&(origin, cmd)).unwrap_or_default());
    b
}

/// The audit action and target of a command, if it is security-relevant.
fn audited(cmd: &Command) -> Option<(&'static str, String)> {
    Some(match cmd {
        Command::UpsertDepartment { dept } => {
            ("directory.department.put", format!("dept:{}", dept.id))
        }
        Command::DeleteDepartment { id } => ("directory.department.delete", format!("dept:{id}")),
        Command::CreateMember { member, .. } => ("directory.member.create", member.userid.clone()),
        Command::UpdateMember { userid, .. } => ("directory.member.update", userid.clone()),
        Command::SetMemberStatus { userid, status } => (
            match status {
                domain::MemberStatus::Active => "directory.member.activate",
                domain::MemberStatus::Disabled => "directory.member.disable",
                domain::MemberStatus::Departed => "directory.member.depart",
            },
            userid.clone(),
        ),
        Command::SetPassword { userid, .. } => ("account.password.reset", userid.clone()),
        Command::UnlockAccount { userid } => ("account.unlock", userid.clone()),
        Command::SetPolicy { .. } => ("policy.set", "policy".into()),
        Command::SetClusterVersion { version, forced } => (
            "cluster.version.set",
            format!(
                "log_version:{version}{}",
                if *forced { ",forced" } else { "" }
            ),
        ),
        Command::SetNoticePolicy { policy } => (
            "policy.set",
            format!("notices:leaders_may_send={}", policy.leaders_may_send),
        ),
        Command::SetFilePolicy { policy } => (
            "policy.set",
            format!(
                "files:max_file_bytes={};user_quota_bytes={};allowed_types={};retention_days={};unreferenced_hours={}",
                policy.max_file_bytes,
                policy.user_quota_bytes,
                policy.allowed_types.join("|"),
                policy.retention_days,
                policy.unreferenced_hours
            ),
        ),
        Command::RecordFile { file } => (
            "file.upload",
            format!(
                "{}:{}:{}:{}:{}",
                file.id,
                file.uploader,
                file.size,
                file.mime,
                hex::encode(file.sha256)
            ),
        ),
        Command::SweepFiles => ("file.sweep", String::new()),
        Command::LoginSucceeded { userid, .. } => ("auth.login", userid.clone()),
        Command::LoginFailed { userid } => ("auth.login", userid.clone()),
        Command::Logout { .. } => ("auth.logout", String::new()),
        Command::Refresh { .. } => ("auth.refresh", String::new()),
        Command::ChangePassword { userid, .. } => ("account.password.change", userid.clone()),
        Command::TransferOwner { conv, to, .. } => {
            ("group.owner.transfer", format!("{conv}->{to}"))
        }
        Command::SetAdmins { conv, .. } => ("group.admins.set", conv.clone()),
        Command::Dissolve { conv, .. } => ("group.dissolve", conv.clone()),
        Command::CreateApp { name, .. } => ("app.create", name.clone()),
        Command::UpdateApp { agentid, change } => (
            match change {
                domain::AppChange::Enable(true) => "app.enable",
                domain::AppChange::Enable(false) => "app.disable",
                domain::AppChange::RotateSecret { .. } => "app.secret.rotate",
                domain::AppChange::SetScopes(_) => "app.scopes.set",
                domain::AppChange::SetCallback(_) => "app.callback.set",
                domain::AppChange::SetTrustedDomains(_) => "app.trusted_domains.set",
            },
            agentid.to_string(),
        ),
        Command::PutUser { mode, fields } => (
            match mode {
                domain::PutMode::Create => "directory.member.create",
                _ => "directory.member.update",
            },
            fields.userid.clone(),
        ),
        Command::PutDepartment { fields, .. } => (
            "directory.department.put",
            format!(
                "dept:{}",
                fields
                    .id
                    .map_or_else(|| "new".to_string(), |i| i.to_string())
            ),
        ),
        Command::DeleteUsers { userids } => ("directory.member.depart", userids.join(",")),
        Command::AppSend { agentid, .. } => ("app.message.send", agentid.to_string()),
        Command::AppRecall { msgid, .. } => ("app.message.recall", msgid.clone()),
        Command::AppChatCreate { agentid, .. } => ("app.chat.create", agentid.to_string()),
        Command::AppChatUpdate { chatid, .. } => ("app.chat.update", chatid.clone()),
        Command::SealMedia { media_id, .. } => ("app.media.upload", media_id.clone()),
        Command::CreateJob { kind, media_id, .. } => (
            "directory.job.create",
            format!("{}:{media_id}", kind.as_str()),
        ),
        Command::JobStep { jobid, .. } => ("directory.job.step", jobid.clone()),
        Command::IssueOAuthCode {
            userid, agentid, ..
        } => ("auth.oauth.code", format!("{userid}->{agentid}")),
        Command::RedeemOAuthCode { agentid, .. } => ("auth.oauth.redeem", agentid.to_string()),
        Command::SendNotice { draft, .. } => (
            "notice.send",
            format!(
                "users={};depts={:?};all={}",
                draft.to.users.len(),
                draft.to.parties,
                draft.to.all
            ),
        ),
        Command::WithdrawNotice { id, .. } => ("notice.withdraw", format!("notice:{id}")),
        Command::AckNotice { id, .. } => ("notice.ack", format!("notice:{id}")),
        Command::NoticeRemind { id, round, .. } => {
            ("notice.remind", format!("notice:{id}:round:{round}"))
        }
        Command::NoticeEscalate { id, .. } => ("notice.escalate", format!("notice:{id}")),
        Command::PublishAnnouncement { draft, .. } => (
            "announcement.publish",
            format!("depts={:?};all={}", draft.to.parties, draft.to.all),
        ),
        Command::WithdrawAnnouncement { id, .. } => {
            ("announcement.withdraw", format!("announcement:{id}"))
        }
        Command::PutApprovalTemplate { template } => ("approval.template.put", template.id.clone()),
        Command::SetApprovalTemplateDisabled { id, disabled } => (
            if *disabled {
                "approval.template.disable"
            } else {
                "approval.template.enable"
            },
            id.clone(),
        ),
        Command::SubmitApproval { template, .. } => {
            ("approval.submit", format!("template:{template}"))
        }
        Command::ActOnApproval { id, action, .. } => (
            match action {
                domain::ApprovalAction::Approve { .. } => "approval.approve",
                domain::ApprovalAction::Reject { .. } => "approval.reject",
                domain::ApprovalAction::Comment { .. } => "approval.comment",
                domain::ApprovalAction::Withdraw => "approval.withdraw",
            },
            format!("approval:{id}"),
        ),
        Command::SetPermission {
            userid,
            permission,
            granted,
        } => (
            if *granted {
                "permission.grant"
            } else {
                "permission.revoke"
            },
            format!("{userid}:{}", permission.as_str()),
        ),
        Command::CreateInvitation { actor, .. } => ("external.invite", actor.clone()),
        Command::AcceptInvitation { userid, .. } => ("external.accept", userid.clone()),
        Command::SetExternalDisabled { userid, disabled } => (
            if *disabled {
                "external.disable"
            } else {
                "external.enable"
            },
            userid.clone(),
        ),
        Command::SetExternalPolicy { policy } => (
            "policy.set",
            format!(
                "external:max_contacts_per_employee={};max_customer_group_members={};invitation_ttl_ms={};transfer_window_ms={}",
                policy.max_contacts_per_employee,
                policy.max_customer_group_members,
                policy.invitation_ttl_ms,
                policy.transfer_window_ms
            ),
        ),
        Command::CreateCustomerGroup { actor, .. } => ("external.group.create", actor.clone()),
        Command::SetAutoReplies { conv, rules, .. } => (
            "external.autoreply.set",
            format!("{conv}:rules={}", rules.len()),
        ),
        Command::TransferContacts {
            from,
            to,
            externals,
            groups,
            ..
        } => (
            "external.transfer",
            format!(
                "{from}->{to}:contacts={};groups={}",
                externals.join("|"),
                groups.join("|")
            ),
        ),
        Command::CancelTransfer { id, .. } => {
            ("external.transfer.cancel", format!("transfer:{id}"))
        }
        Command::ObjectTransfer { actor, id } => {
            ("external.transfer.object", format!("transfer:{id}:{actor}"))
        }
        Command::TransferStep { id } => ("external.transfer.step", format!("transfer:{id}")),
        _ => return None,
    })
}

pub fn encode_kv(cmd: &crate::kv::KvCommand) -> Vec<u8> {
    let mut b = vec![TAG_KV];
    b.extend(postcard::to_stdvec(cmd).unwrap_or_default());
    b
}

/// What live subscribers are sent: the events of one applied batch
/// together, so a subscriber wakes once per batch however many events it
/// holds (an app message to 2,000 members is 2,000 events; each connected
/// member wants one of them).
#[derive(Debug)]
pub enum Push {
    Events(Vec<Event>),
    /// A snapshot replaced the state: resync from storage.
    Reset,
}

/// Live events of this node, in apply order.
#[derive(Debug)]
pub struct Hub {
    pub events: broadcast::Sender<Arc<Push>>,
    /// Last applied log index: wakes long-polls (then they read storage).
    pub applied: watch::Sender<u64>,
}

#[derive(Debug)]
pub struct NodeApp {
    kv: Kv,
    pending: Mutex<Vec<Event>>,
    pub hub: Hub,
    halted: Mutex<Option<Halt>>,
}

/// Why this node stopped applying the log: an entry it cannot decode,
/// written by a newer version (see docs/operator/upgrade.md).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Halt {
    /// The log index of the entry this build cannot apply.
    pub index: u64,
    pub reason: String,
}

/// Decode `bytes` as exactly one `T`: trailing bytes are an error, so an
/// entry written by a build whose type has grown a field is refused, not
/// half-read (postcard itself ignores what follows the value).
pub fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(format!("{} unexpected trailing bytes", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

impl NodeApp {
    /// Set once this node met an entry it cannot apply; Raft is stopped.
    pub fn halted(&self) -> Option<Halt> {
        self.halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stop applying at this entry. The error stops Raft on this node
    /// (openraft treats a state-machine error as fatal): nothing of the
    /// apply batch is written, and a build that understands the entry
    /// resumes from exactly here. Skipping it instead would let this node's
    /// state silently diverge from the others'.
    fn halt(&self, ctx: &ApplyContext, what: &str, error: &str) -> sled::Error {
        let reason = format!(
            "log entry {} is {what} this build (enclave {}) cannot decode ({error}); \
             it was written by a newer version: upgrade this node",
            ctx.index,
            crate::lifecycle::RELEASE,
        );
        tracing::error!(index = ctx.index, %reason, "stopped applying the replicated log");
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(Halt {
            index: ctx.index,
            reason: reason.clone(),
        });
        sled::Error::Unsupported(reason)
    }
}

impl Default for NodeApp {
    fn default() -> Self {
        NodeApp {
            kv: Kv,
            pending: Mutex::new(Vec::new()),
            halted: Mutex::new(None),
            hub: Hub {
                events: broadcast::channel(PUSH_BUFFER).0,
                applied: watch::channel(0).0,
            },
        }
    }
}

impl Application for NodeApp {
    fn apply(
        &self,
        ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        command: &[u8],
    ) -> Result<Vec<u8>, sled::Error> {
        match command.split_first() {
            Some((&TAG_KV, rest)) => {
                if let Err(e) = decode_exact::<crate::kv::KvCommand>(rest) {
                    return Err(self.halt(ctx, "a key-value command", &e));
                }
                self.kv.apply(ctx, txn, rest)
            }
            Some((&TAG_ARCHIVE, rest)) => {
                let io = |e: StoreFault| sled::Error::Io(std::io::Error::other(e));
                let (origin, upto, sha) = decode_exact::<(Origin, u64, String)>(rest)
                    .map_err(|e| self.halt(ctx, "an audit archive command", &e))?;
                let mut store = TxnStore(txn);
                let days = domain::apply::policy(&store)
                    .map_err(io)?
                    .audit_retention_days;
                let result: Result<u64, String> =
                    audit::archive(&mut store, ctx.time_ms, &origin, upto, &sha, days)
                        .map_err(io)?;
                Ok(postcard::to_stdvec(&result).unwrap_or_default())
            }
            Some((&TAG_RECORD, rest)) => {
                let (origin, action, target, outcome) =
                    decode_exact::<(Origin, String, String, String)>(rest)
                        .map_err(|e| self.halt(ctx, "an audit record", &e))?;
                audit::append(
                    &mut TxnStore(txn),
                    ctx.time_ms,
                    &origin,
                    &action,
                    &target,
                    &outcome,
                )
                .map_err(|e| sled::Error::Io(std::io::Error::other(e)))?;
                Ok(Vec::new())
            }
            Some((&TAG_CHECKPOINT, rest)) => {
                let cp = decode_exact::<audit::Checkpoint>(rest)
                    .map_err(|e| self.halt(ctx, "an audit checkpoint", &e))?;
                let result: Result<(), String> =
                    audit::apply_checkpoint(&mut TxnStore(txn), &cp)
                        .map_err(|e| sled::Error::Io(std::io::Error::other(e)))?;
                Ok(postcard::to_stdvec(&result).unwrap_or_default())
            }
            Some((&TAG_DOMAIN, rest)) => {
                let (origin, cmd) = decode_exact::<(Origin, Command)>(rest)
                    .map_err(|e| self.halt(ctx, "a domain command", &e))?;
                let outcome: Outcome = {
                    {
                        let mut store = TxnStore(txn);
                        let io = |e: StoreFault| sled::Error::Io(std::io::Error::other(e));
                        let (outcome, events) = domain::apply(
                            &mut store,
                            &Ctx {
                                time_ms: ctx.time_ms,
                                app: (origin.kind == audit::ActorKind::App)
                                    .then(|| origin.id.parse::<u32>().ok())
                                    .flatten(),
                            },
                            &cmd,
                        )
                        .map_err(io)?;
                        // The record goes into the same batch as the action:
                        // both happen, or neither. Refusals are recorded too.
                        if let Some((action, target)) = audited(&cmd) {
                            let result = match (&outcome, &cmd) {
                                (Err(r), _) => format!("refused:{}", r.code.as_str()),
                                (Ok(_), Command::LoginFailed { userid }) => {
                                    let locked = store
                                        .get_as::<domain::Account>(&domain::keys::account(userid))
                                        .map_err(io)?
                                        .is_some_and(|a| a.locked_until_ms > ctx.time_ms);
                                    if locked {
                                        "failed,locked".into()
                                    } else {
                                        "failed".into()
                                    }
                                }
                                (Ok(domain::Done::Notice(n)), Command::SendNotice { .. }) => {
                                    format!("ok,notice:{}", n.id)
                                }
                                (
                                    Ok(domain::Done::Announcement(a)),
                                    Command::PublishAnnouncement { .. },
                                ) => format!("ok,announcement:{}", a.id),
                                (Ok(domain::Done::Approval(r)), Command::SubmitApproval { .. }) => {
                                    format!("ok,approval:{},{}", r.id, r.status.as_str())
                                }
                                (Ok(domain::Done::Approval(r)), _) => {
                                    format!("ok,{}", r.status.as_str())
                                }
                                (Ok(domain::Done::Transfer(t)), _) => format!(
                                    "ok,transfer:{},{}",
                                    t.id,
                                    match t.status {
                                        domain::TransferStatus::Waiting => "waiting",
                                        domain::TransferStatus::Done => "done",
                                        domain::TransferStatus::Cancelled => "cancelled",
                                    }
                                ),
                                (Ok(domain::Done::NoticeMark { changed: false, .. }), _) => {
                                    "ok,already".into()
                                }
                                (Ok(_), _) => "ok".into(),
                            };
                            audit::append(
                                &mut store,
                                ctx.time_ms,
                                &origin,
                                action,
                                &target,
                                &result,
                            )
                            .map_err(io)?;
                        }
                        self.pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(events);
                        outcome
                    }
                };
                Ok(postcard::to_stdvec(&outcome).unwrap_or_default())
            }
            Some((tag, _)) => Err(self.halt(
                ctx,
                &format!("an entry of kind {:?}", char::from(*tag)),
                "unknown kind",
            )),
            None => Err(self.halt(ctx, "an empty entry", "no kind byte")),
        }
    }

    fn applied(&self, last_index: u64) {
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !events.is_empty() {
            // No receivers is fine: nobody is connected.
            let _ = self.hub.events.send(Arc::new(Push::Events(events)));
        }
        self.hub.applied.send_replace(last_index);
    }

    /// Cluster-layer events get their audit record in the same batch.
    fn cluster_event(
        &self,
        ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        event: enclave_cluster::app::ClusterEvent<'_>,
    ) -> Result<(), sled::Error> {
        use enclave_cluster::app::ClusterEvent;
        use enclave_cluster::types::{ControlCommand, ControlOutcome};
        let mut origin = Origin::system("raft");
        let (action, target, outcome) = match event {
            ClusterEvent::Membership(m) => {
                let names = |ids: Vec<u64>| {
                    ids.iter()
                        .map(|id| {
                            m.get_node(id)
                                .map_or_else(|| id.to_string(), |n| n.name.clone())
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                (
                    "cluster.membership",
                    format!(
                        "voters {}; learners {}",
                        names(m.voter_ids().collect()),
                        names(m.learner_ids().collect())
                    ),
                    "ok".to_string(),
                )
            }
            ClusterEvent::Control { command, outcome } => {
                let result = match outcome {
                    ControlOutcome::JoinTokenRefused { reason } => format!("refused:{reason}"),
                    ControlOutcome::JoinTokenCreated { expires_at_ms, .. } => {
                        format!("ok, expires {expires_at_ms}")
                    }
                    _ => "ok".to_string(),
                };
                match command {
                    ControlCommand::CreateJoinToken { id, created_by, .. } => {
                        origin.kind = audit::ActorKind::Operator;
                        origin.id = created_by.clone();
                        ("cluster.join_token.create", format!("token {id}"), result)
                    }
                    ControlCommand::ConsumeJoinToken { id, node, .. } => {
                        origin.id = format!("joining node {node}");
                        (
                            "cluster.join_token.use",
                            format!("token {id} -> {node}"),
                            result,
                        )
                    }
                    ControlCommand::SetClusterId { id } => {
                        ("cluster.init", format!("cluster {id}"), result)
                    }
                }
            }
        };
        let io = |e: StoreFault| sled::Error::Io(std::io::Error::other(e));
        let mut store = TxnStore(txn);
        // A membership entry carries no leader time, and the batch it is
        // applied in differs between nodes: stamp it with the time of the
        // chain's previous record, which every node has.
        let time_ms = match event {
            ClusterEvent::Membership(_) => audit::head_time(&store).map_err(io)?,
            ClusterEvent::Control { .. } => ctx.time_ms,
        };
        audit::append(&mut store, time_ms, &origin, action, &target, &outcome).map_err(io)?;
        Ok(())
    }

    /// The audit trail records operations on the state (a backup, the
    /// comparison itself), so it is left out of the state hash; it has its
    /// own (`enclavectl audit verify --live`).
    fn in_state_hash(&self, key: &[u8]) -> bool {
        !key.starts_with(b"audit/")
    }

    /// Compressed once the cluster's log version says every voter reads it
    /// (`lifecycle::SNAPSHOT_DEFLATE_VERSION`).
    fn snapshot_format(&self, state: &enclave_cluster::store::StateView) -> u32 {
        use enclave_cluster::store::snapshot;
        match crate::domain::apply::cluster_version(&ViewStore(state.clone())) {
            Ok(v) if v >= crate::lifecycle::SNAPSHOT_DEFLATE_VERSION => snapshot::VERSION_DEFLATE,
            Ok(_) => snapshot::VERSION,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster's log version: snapshot written uncompressed");
                snapshot::VERSION
            }
        }
    }

    /// A send's idempotency record keeps the message by reference (log
    /// version 5): the message is not stored a third time. Expanded again
    /// by `http::write_app` ([`expand_retry`]).
    fn retry_outcome(&self, txn: &mut Txn<'_>, command: &[u8], outcome: &[u8]) -> Option<Vec<u8>> {
        if command.first() != Some(&TAG_DOMAIN) {
            return None;
        }
        let version = domain::apply::cluster_version(&TxnStore(txn)).ok()?;
        if version < domain::keys::MESSAGE_ONCE_VERSION {
            return None;
        }
        match decode_exact::<Outcome>(outcome) {
            Ok(Ok(domain::Done::Message(m))) => {
                postcard::to_stdvec(&Outcome::Ok(domain::Done::Posted {
                    conv: m.conv,
                    seq: m.seq,
                }))
                .ok()
            }
            _ => None,
        }
    }

    fn installed(&self, last_index: u64) {
        // A snapshot replaced the state: live subscribers must reread it.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.hub.events.send(Arc::new(Push::Reset));
        self.hub.applied.send_replace(last_index);
    }
}

fn fault(e: sled::Error) -> StoreFault {
    StoreFault(e.to_string())
}

/// The replicated state during apply, as the domain's [`Store`].
struct TxnStore<'a, 'b>(&'a mut Txn<'b>);

impl Store for TxnStore<'_, '_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        self.0.get(key).map_err(fault)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreFault> {
        self.0.scan(prefix, after, limit).map_err(fault)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.0.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        self.0.delete(key)
    }
}

/// The replicated state as this node has applied it, for reads. The
/// write methods are never called on it (reads only).
#[derive(Debug)]
pub struct ViewStore(pub StateView);

impl Store for ViewStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        self.0.get(key).map_err(fault)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreFault> {
        self.0.scan(prefix, after, limit).map_err(fault)
    }
    fn put(&mut self, _key: &[u8], _value: Vec<u8>) {
        tracing::error!("bug: write through a read-only view ignored");
    }
    fn delete(&mut self, _key: &[u8]) {
        tracing::error!("bug: delete through a read-only view ignored");
    }
}
