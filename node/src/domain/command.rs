//! The commands of the messaging domain: every change goes through one.
//! Postcard-encoded in the replicated log like the records
//! ([`super::model`]): variants and fields are positional, so new ones go
//! at the end, with a new log version ([`Command::log_version`]).

use serde::{Deserialize, Serialize};

use super::model::*;

/// Every change to the domain. The API layer builds these after checking
/// the caller; apply checks everything again against the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    // --- directory (administrators) ---
    UpsertDepartment {
        dept: Department,
    },
    DeleteDepartment {
        id: u64,
    },
    CreateMember {
        member: Member,
        password_hash: Option<String>,
    },
    UpdateMember {
        userid: String,
        patch: MemberPatch,
    },
    SetMemberStatus {
        userid: String,
        status: MemberStatus,
    },
    /// An administrator sets a password (initial or reset).
    SetPassword {
        userid: String,
        password_hash: String,
    },
    UnlockAccount {
        userid: String,
    },
    SetPolicy {
        policy: Policy,
    },
    // --- sessions ---
    LoginSucceeded {
        userid: String,
        token_hash: [u8; 32],
        refresh_hash: [u8; 32],
    },
    LoginFailed {
        userid: String,
    },
    Logout {
        token_hash: [u8; 32],
    },
    Refresh {
        refresh_hash: [u8; 32],
        new_token_hash: [u8; 32],
        new_refresh_hash: [u8; 32],
    },
    /// The user changes their own password (the old one was checked by the
    /// receiving node); every other session is revoked.
    ChangePassword {
        userid: String,
        password_hash: String,
        keep_session: [u8; 32],
    },
    // --- conversations (members) ---
    Send {
        actor: String,
        target: Target,
        text: String,
        mentions: Vec<String>,
        mention_all: bool,
        reply_to: Option<u64>,
        /// A recorded file (`file/<id>`) to carry; `text` is then a
        /// caption and may be empty.
        file: Option<String>,
    },
    Recall {
        actor: String,
        conv: String,
        seq: u64,
    },
    CreateGroup {
        actor: String,
        name: String,
        members: Vec<String>,
    },
    AddMembers {
        actor: String,
        conv: String,
        userids: Vec<String>,
    },
    RemoveMember {
        actor: String,
        conv: String,
        userid: String,
    },
    Leave {
        actor: String,
        conv: String,
    },
    TransferOwner {
        actor: String,
        conv: String,
        to: String,
    },
    SetAdmins {
        actor: String,
        conv: String,
        admins: Vec<String>,
    },
    Rename {
        actor: String,
        conv: String,
        name: String,
    },
    SetAnnouncement {
        actor: String,
        conv: String,
        text: String,
    },
    Dissolve {
        actor: String,
        conv: String,
    },
    MarkRead {
        actor: String,
        conv: String,
        seq: u64,
    },
    MarkDelivered {
        actor: String,
        conv: String,
        seq: u64,
    },
    // --- integrated apps (sysadmin) ---
    CreateApp {
        name: String,
        scopes: Vec<Scope>,
        secret_hash: [u8; 32],
        trusted_domains: Vec<String>,
        /// Used only if the enterprise has no identity yet.
        corp: Corp,
    },
    UpdateApp {
        agentid: u32,
        change: AppChange,
    },
    // --- the directory in WeCom's terms (apps, bulk jobs) ---
    PutUser {
        mode: PutMode,
        fields: UserFields,
    },
    PutDepartment {
        create: bool,
        fields: DeptFields,
    },
    /// WeCom's delete: the members depart (history kept). All or nothing.
    DeleteUsers {
        userids: Vec<String>,
    },
    // --- app messages and app group chats ---
    AppSend {
        agentid: u32,
        to: Recipients,
        content: AppContent,
        /// Skip an identical message sent within this window (0 = off).
        dedup_ms: u64,
    },
    AppRecall {
        agentid: u32,
        msgid: String,
    },
    /// The leader continues pending work (see [`Work`]).
    Continue {
        work: u64,
        cursor: u64,
    },
    AppChatCreate {
        agentid: u32,
        chatid: Option<String>,
        name: String,
        owner: Option<String>,
        members: Vec<String>,
    },
    AppChatUpdate {
        agentid: u32,
        chatid: String,
        name: Option<String>,
        owner: Option<String>,
        add: Vec<String>,
        del: Vec<String>,
    },
    AppChatSend {
        agentid: u32,
        chatid: String,
        content: AppContent,
    },
    // --- uploaded files and bulk jobs ---
    PutMedia {
        media_id: String,
        agentid: u32,
        index: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    SealMedia {
        media_id: String,
        agentid: u32,
        kind: String,
        filename: String,
        size: u64,
        sha256: [u8; 32],
        chunks: u32,
    },
    CreateJob {
        agentid: u32,
        kind: JobKind,
        media_id: String,
        #[serde(with = "serde_bytes")]
        columns: Vec<u8>,
        start: JobCursor,
        total: u64,
        callback: Option<CallbackCfg>,
    },
    /// One step of a job, proposed by the leader from the job's cursor.
    JobStep {
        jobid: String,
        at: JobCursor,
        next: JobCursor,
        rows: JobRows,
    },
    // --- sign-in for integrated web apps ---
    IssueOAuthCode {
        code_hash: [u8; 32],
        userid: String,
        agentid: u32,
    },
    RedeemOAuthCode {
        code_hash: [u8; 32],
        agentid: u32,
    },
    // --- callback delivery (the leader reports) ---
    CallbackDelivered {
        agentid: u32,
        upto: u64,
    },
    CallbackFailed {
        agentid: u32,
        seq: u64,
        error: String,
    },
    // --- permissions (sysadmin) ---
    SetPermission {
        userid: String,
        permission: Permission,
        granted: bool,
    },
    // --- urgent notices ---
    SendNotice {
        actor: String,
        draft: NoticeDraft,
    },
    /// Leader: the next expansion step of notice `id` at step `step`.
    NoticeExpand {
        id: u64,
        step: u64,
    },
    /// Leader: start or continue reminder round `round`.
    NoticeRemind {
        id: u64,
        round: u32,
        step: u64,
    },
    /// Leader: start or continue the escalation.
    NoticeEscalate {
        id: u64,
        step: u64,
    },
    /// The sender withdraws it (or an operator: `actor` None).
    WithdrawNotice {
        actor: Option<String>,
        id: u64,
    },
    /// Leader: tell the next recipients of a withdrawal.
    NoticeWithdrawStep {
        id: u64,
        step: u64,
    },
    AckNotice {
        actor: String,
        id: u64,
    },
    ReadNotice {
        actor: String,
        id: u64,
    },
    /// A client got these notices (at most 100 ids).
    NoticeDelivered {
        actor: String,
        ids: Vec<u64>,
    },
    /// Secadmin: who besides `notice:urgent` holders may send.
    SetNoticePolicy {
        policy: NoticePolicy,
    },
    // --- files (issue 17) ---
    /// A file whose chunks a majority of nodes hold durably.
    RecordFile {
        file: super::files::BlobRecord,
    },
    /// Leader step: delete files past retention and uploads never sent
    /// (bounded per step).
    SweepFiles,
    SetFilePolicy {
        policy: super::files::FilePolicy,
    },
    PublishAnnouncement {
        actor: String,
        draft: AnnouncementDraft,
    },
    /// Leader: send it out to the next part of its audience.
    AnnouncementExpand {
        id: u64,
        step: u64,
    },
    ReadAnnouncement {
        actor: String,
        id: u64,
    },
    /// The sender withdraws it (or an operator: `actor` None).
    WithdrawAnnouncement {
        actor: Option<String>,
        id: u64,
    },
    /// Sysadmin: create or replace a template.
    PutApprovalTemplate {
        template: ApprovalTemplate,
    },
    SetApprovalTemplateDisabled {
        id: String,
        disabled: bool,
    },
    /// File a request: raw values by field key, checked against the
    /// template at apply.
    SubmitApproval {
        actor: String,
        template: String,
        values: Vec<(String, String)>,
        /// Approvers chosen by the caller instead of the template's flow
        /// (WeCom's `use_template_approver: 0`).
        route: Option<ApprovalRoute>,
    },
    /// Approve, reject, comment or withdraw; `step` is the step the actor
    /// saw (refused if it has moved on).
    ActOnApproval {
        actor: String,
        id: u64,
        step: Option<u32>,
        action: ApprovalAction,
    },
    // --- log version 2 (issue 18). New kinds go below, never between or
    // inside the ones above: see docs/operator/upgrade.md § Format rules.
    /// The cluster moves to replicated-log version `version`: from here on
    /// commands of that version may be proposed. Proposed by the leader once
    /// every voter reports a build that understands them (or forced by an
    /// operator). Never lowers the version.
    SetClusterVersion {
        version: u32,
        forced: bool,
    },
    // --- log version 3 (issue 19): external contacts ---
    /// An employee with `external:add` issues a one-time invitation; only
    /// the code's SHA-256 is in the log.
    CreateInvitation {
        actor: String,
        code_hash: [u8; 32],
    },
    /// The invited person accepts: an external account and a contact of
    /// the inviting employee, with their 1:1 conversation.
    AcceptInvitation {
        code_hash: [u8; 32],
        userid: String,
        name: String,
        org: String,
        phone: String,
        email: String,
        /// argon2id PHC string, hashed by the receiving node.
        password_hash: String,
    },
    /// An administrator disables (or enables again) an external account.
    SetExternalDisabled {
        userid: String,
        disabled: bool,
    },
    SetExternalPolicy {
        policy: ExternalPolicy,
    },
    /// A customer group: employees and the actor's external contacts.
    CreateCustomerGroup {
        actor: String,
        name: String,
        members: Vec<String>,
    },
    /// The owner replaces a customer group's keyword auto-replies (empty:
    /// none).
    SetAutoReplies {
        actor: String,
        conv: String,
        rules: Vec<AutoReplyRule>,
    },
    /// Hand contacts and customer groups of `from` to `to`: at once when
    /// `from` has departed, after the policy's window otherwise. `actor`:
    /// a leader of `from` (active employees only); `None`: an
    /// administrator or an app, checked by the receiving node.
    TransferContacts {
        actor: Option<String>,
        from: String,
        to: String,
        externals: Vec<String>,
        groups: Vec<String>,
        message: String,
    },
    /// Cancel a waiting transfer (its requester, or an administrator).
    CancelTransfer {
        actor: Option<String>,
        id: u64,
    },
    /// A contact objects to a waiting transfer: they stay where they are.
    ObjectTransfer {
        actor: String,
        id: u64,
    },
    /// Leader: a waiting transfer whose window has ended takes effect.
    TransferStep {
        id: u64,
    },
}

impl Command {
    /// The replicated-log version that introduced this kind: a node whose
    /// build is older cannot decode it. Proposals of a kind newer than the
    /// cluster's version are refused until the cluster moves to it.
    pub fn log_version(&self) -> u32 {
        match self {
            Command::SetClusterVersion { .. } => 2,
            Command::CreateInvitation { .. }
            | Command::AcceptInvitation { .. }
            | Command::SetExternalDisabled { .. }
            | Command::SetExternalPolicy { .. }
            | Command::CreateCustomerGroup { .. }
            | Command::SetAutoReplies { .. }
            | Command::TransferContacts { .. }
            | Command::CancelTransfer { .. }
            | Command::ObjectTransfer { .. }
            | Command::TransferStep { .. } => 3,
            _ => 1,
        }
    }
}
