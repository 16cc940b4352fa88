//! Records, commands, outcomes and events of the messaging domain.
//!
//! Stored records and commands are postcard-encoded; new fields go at the
//! end of a struct only with a new command/record version, never in the
//! middle (the encoding is positional).

use serde::{Deserialize, Serialize};

pub use super::announcements::*;
pub use super::approvals::*;
pub use super::command::*;
pub use super::external::*;
pub use super::integration::*;
pub use super::notices::*;

/// Replicated limits and policy (changed with [`Command::SetPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub max_group_members: u32,
    /// Longest message text, in characters (Unicode scalar values).
    pub max_text_chars: u32,
    /// How long after sending a sender may recall a message.
    pub recall_window_ms: u64,
    pub session_ttl_ms: u64,
    pub refresh_ttl_ms: u64,
    /// Failed logins (without a success in between) that lock an account.
    pub lockout_threshold: u32,
    pub lockout_ms: u64,
    /// Who may see whom in the directory.
    pub directory_visibility: Visibility,
    pub max_announcement_chars: u32,
    /// Audit records are kept at least this long (minimum 180).
    pub audit_retention_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_group_members: 2_000,
            max_text_chars: 4_000,
            recall_window_ms: 2 * 60 * 1000,
            session_ttl_ms: 8 * 3600 * 1000,
            refresh_ttl_ms: 7 * 24 * 3600 * 1000,
            lockout_threshold: 5,
            lockout_ms: 15 * 60 * 1000,
            directory_visibility: Visibility::All,
            max_announcement_chars: 2_000,
            audit_retention_days: 180,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every active member sees the whole directory.
    All,
    /// Members see the departments they belong to (and their subtrees).
    OwnDepartments,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: u64,
    /// `None` only for the root (id 1).
    pub parent: Option<u64>,
    pub name: String,
    pub order: i64,
    pub leaders: Vec<String>,
}

/// The root department's id (WeCom's convention).
pub const ROOT_DEPARTMENT: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Disabled,
    /// Left the organization: keeps their history, cannot log in, cannot
    /// be made active again.
    Departed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub userid: String,
    pub name: String,
    pub departments: Vec<u64>,
    pub title: String,
    pub email: String,
    pub mobile: String,
    pub status: MemberStatus,
}

/// Fields of a member an update may change (`None` = unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPatch {
    pub name: Option<String>,
    pub departments: Option<Vec<u64>>,
    pub title: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// Credentials and login state of a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// argon2id PHC string; hashed by the receiving node, never in clear.
    pub password_hash: Option<String>,
    pub failed_logins: u32,
    pub locked_until_ms: u64,
    /// The user must change the password set by an administrator.
    pub must_change: bool,
}

/// A login session. Stored under the SHA-256 of the bearer token; the
/// token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub userid: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// SHA-256 of the refresh token that renews this session.
    pub refresh_hash: [u8; 32],
    pub refresh_expires_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvKind {
    Direct,
    Group,
    /// A member's conversation with an integrated app (its messages to
    /// them, their replies to it). Id `a<agentid>.<userid>`.
    App,
    /// A member's notice inbox: the urgent notices sent to them, their
    /// reminders, and escalations they are told of. Id `n.<userid>`;
    /// takes no messages.
    Notice,
    // --- log version 3 (external contacts): appended, never moved ---
    /// An employee's 1:1 with an external contact (`x<n>`). `owner` is the
    /// employee serving the contact now; it moves with a transfer.
    Contact,
    /// A customer group (客户群, `xg<n>`): employees and external contacts,
    /// owned by an employee.
    Customer,
}

impl ConvKind {
    /// A conversation with people outside the organization.
    pub fn is_external(self) -> bool {
        matches!(self, ConvKind::Contact | ConvKind::Customer)
    }

    /// A group: members are added and removed, it has an owner.
    pub fn is_group(self) -> bool {
        matches!(self, ConvKind::Group | ConvKind::Customer)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub kind: ConvKind,
    /// Group name (empty for 1:1).
    pub name: String,
    /// Group owner (empty for 1:1).
    pub owner: String,
    pub admins: Vec<String>,
    pub announcement: String,
    pub member_count: u32,
    /// Last message sequence number (messages are 1, 2, 3, … gap-free).
    pub last_seq: u64,
    /// Last event of this conversation.
    pub last_event: u64,
    pub created_ms: u64,
    pub dissolved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvMember {
    /// Event number at which this member joined; events before it are not
    /// theirs to see.
    pub joined_event: u64,
    pub read_seq: u64,
    pub delivered_seq: u64,
}

/// A user's view of one of their conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConv {
    pub joined_event: u64,
    /// Set when the user left or was removed (the last event they see).
    pub left_event: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub conv: String,
    pub seq: u64,
    pub sender: String,
    pub time_ms: u64,
    /// Empty once recalled (the tombstone keeps sender, time and seq).
    pub text: String,
    pub mentions: Vec<String>,
    pub mention_all: bool,
    pub reply_to: Option<u64>,
    pub recalled: bool,
    /// The event that posted it.
    pub event: u64,
    /// Structured content (app messages); `text` is its plain rendering.
    pub rich: Option<Rich>,
    /// Confidential (WeCom's `safe`): clients must not offer forwarding.
    pub safe: bool,
    /// A file, image or voice note (cleared on recall).
    pub file: Option<super::files::FileRef>,
}

impl Message {
    /// The event that posted it: from log version 5 the only record of
    /// that event (`keys::MESSAGE_ONCE_VERSION`); before, a copy of it.
    pub fn into_event(self) -> Event {
        Event {
            no: self.event,
            conv: self.conv.clone(),
            time_ms: self.time_ms,
            actor: self.sender.clone(),
            body: EventBody::Message { message: self },
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The 1:1 conversation with this user (created on first message).
    Direct(String),
    /// An existing conversation.
    Conv(String),
}

/// Something that happened in a conversation, in the order of the global
/// event counter. Clients sync and are pushed these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global, gap-free event number: the sync position.
    pub no: u64,
    pub conv: String,
    pub time_ms: u64,
    pub actor: String,
    pub body: EventBody,
}

/// Stored externally tagged (postcard cannot do internal tags); the API
/// renders it as `{"type": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBody {
    Created {
        kind: ConvKind,
        name: String,
        members: Vec<String>,
    },
    Message {
        message: Message,
    },
    Recalled {
        seq: u64,
    },
    MembersAdded {
        userids: Vec<String>,
    },
    MemberRemoved {
        userid: String,
    },
    MemberLeft {
        userid: String,
    },
    OwnerChanged {
        owner: String,
    },
    AdminsChanged {
        admins: Vec<String>,
    },
    Renamed {
        name: String,
    },
    Announcement {
        text: String,
    },
    Dissolved,
    Read {
        userid: String,
        seq: u64,
    },
    // --- urgent notices (in the notice inbox `n.<userid>`) ---
    /// An urgent notice for the inbox's owner, to acknowledge.
    Notice {
        notice: NoticeCard,
    },
    /// Reminder round `round` of a notice not yet acknowledged.
    NoticeReminder {
        id: u64,
        round: u32,
        deadline_ms: u64,
    },
    NoticeWithdrawn {
        id: u64,
    },
    /// The owner read or acknowledged it (for their other devices).
    NoticeMarked {
        id: u64,
        read_ms: u64,
        acked_ms: u64,
    },
    /// To a leader: `count` of their members had not acknowledged a
    /// notice by its deadline (`sample`: up to 100 of them).
    NoticeEscalation {
        id: u64,
        title: String,
        sender: String,
        deadline_ms: u64,
        count: u64,
        sample: Vec<String>,
    },
    /// To the sender: the notice's counts changed (`by` did `action`).
    NoticeProgress {
        id: u64,
        counts: NoticeCounts,
        phase: String,
        by: String,
        action: String,
    },
    // --- announcements and approvals (also in the notice inbox) ---
    AnnouncementPublished {
        announcement: AnnouncementCard,
    },
    /// The owner read it (for their other devices).
    AnnouncementRead {
        id: u64,
        read_ms: u64,
    },
    /// An approval request moved: `waiting` when it now waits for the
    /// inbox's owner.
    ApprovalUpdate {
        id: u64,
        template_name: String,
        applicant: String,
        status: String,
        /// The step it is at (from 1, as in the API).
        step: u32,
        action: String,
        actor: String,
        waiting: bool,
    },
}

/// What a member does to an approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalAction {
    Approve { comment: String },
    Reject { reason: String },
    Comment { text: String },
    Withdraw,
}

/// `cfg/version`: the replicated-log version the cluster has moved to.
/// Absent: version 1 (every build understands it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVersion {
    pub version: u32,
    pub set_ms: u64,
    pub forced: bool,
}

/// A right a sysadmin grants to a member, beyond what every member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Send urgent notices (紧急通知) to users, departments or everyone.
    NoticeUrgent,
    /// Publish announcements (公告) to departments or everyone.
    AnnouncementPublish,
    /// Invite people outside the organization as external contacts.
    ExternalAdd,
}

impl Permission {
    pub const ALL: [Permission; 3] = [
        Permission::NoticeUrgent,
        Permission::AnnouncementPublish,
        Permission::ExternalAdd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::NoticeUrgent => "notice:urgent",
            Permission::AnnouncementPublish => "announcement:publish",
            Permission::ExternalAdd => "external:add",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s.trim())
    }
}

/// Stable error codes: clients and tests match on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    Forbidden,
    NotAMember,
    DepartmentNotEmpty,
    Cycle,
    LimitExceeded,
    RecallWindowExpired,
    AccountLocked,
    AccountInactive,
    Unauthenticated,
    Dissolved,
    /// An app message whose recipients are all invalid.
    NoRecipients,
    /// A one-time code or an uploaded file that has expired.
    Expired,
    /// A step proposed from a cursor that has moved on (a repeat).
    Stale,
    /// The app is disabled (or gone).
    AppDisabled,
    /// The app lacks the scope.
    ScopeDenied,
    /// A deadline that has already passed.
    DeadlinePassed,
    /// The notice, announcement or approval request was withdrawn.
    Withdrawn,
    /// The step or request was already decided.
    AlreadyDecided,
    /// An uploader's files would exceed their quota.
    QuotaExceeded,
    /// A file type the policy does not allow.
    TypeNotAllowed,
    /// A file larger than the policy allows.
    TooLarge,
    /// A command kind the cluster has not moved to yet (a rolling upgrade
    /// is under way: see docs/operator/upgrade.md).
    ClusterUpgrading,
    /// A one-time code that was used already.
    AlreadyUsed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::Forbidden => "forbidden",
            Code::NotAMember => "not_a_member",
            Code::DepartmentNotEmpty => "department_not_empty",
            Code::Cycle => "cycle",
            Code::LimitExceeded => "limit_exceeded",
            Code::RecallWindowExpired => "recall_window_expired",
            Code::AccountLocked => "account_locked",
            Code::AccountInactive => "account_inactive",
            Code::Unauthenticated => "unauthenticated",
            Code::Dissolved => "dissolved",
            Code::NoRecipients => "no_recipients",
            Code::Expired => "expired",
            Code::Stale => "stale",
            Code::AppDisabled => "app_disabled",
            Code::ScopeDenied => "scope_denied",
            Code::DeadlinePassed => "deadline_passed",
            Code::Withdrawn => "withdrawn",
            Code::AlreadyDecided => "already_decided",
            Code::QuotaExceeded => "quota_exceeded",
            Code::TypeNotAllowed => "type_not_allowed",
            Code::TooLarge => "too_large",
            Code::ClusterUpgrading => "cluster_upgrading",
            Code::AlreadyUsed => "already_used",
        }
    }
}

/// A refusal: the command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

pub fn refuse<T>(code: Code, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        code,
        message: message.into(),
    })
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done {
    Ok,
    Department(Department),
    Member(Member),
    Session {
        userid: String,
        expires_ms: u64,
        refresh_expires_ms: u64,
    },
    Message(Message),
    Conversation(Conversation),
    App(App),
    AppSent {
        msgid: String,
        invalid_users: Vec<String>,
        invalid_parties: Vec<u64>,
        recipients: u64,
        duplicate: bool,
    },
    Job(Job),
    OAuthUser {
        userid: String,
    },
    /// The id of what was created (a department, a chat, a file).
    Created {
        id: String,
    },
    Notice(Notice),
    /// A recipient's marks after a read, ack or delivery.
    NoticeMark {
        id: u64,
        mark: NoticeRecipient,
        changed: bool,
    },
    Announcement(Announcement),
    AnnouncementRead {
        id: u64,
        read_ms: u64,
        changed: bool,
    },
    ApprovalTemplate(ApprovalTemplate),
    Approval(Box<ApprovalRequest>),
    /// An accepted invitation: the account and its 1:1 conversation.
    ExternalAccount {
        external: External,
        conv: String,
    },
    Invitation {
        expires_ms: u64,
    },
    Transfer(Transfer),
    /// The message a send posted, by reference: what a send's idempotency
    /// record keeps from log version 5 (`NodeApp::retry_outcome`). Expanded
    /// into [`Done::Message`] before a retry is answered
    /// (`http::write_app`), never seen by a client.
    Posted {
        conv: String,
        seq: u64,
    },
}

pub type Outcome = Result<Done, Refusal>;
