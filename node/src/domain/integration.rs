//! Records and commands of integrated applications (the WeCom-compatible
//! API): the enterprise's identity, registered apps and their scopes,
//! member profiles, app messages and app group chats, bulk import jobs
//! with their uploaded files, one-time sign-in codes, and the queue of
//! event callbacks each app is sent.
//!
//! Like the rest of the domain these are postcard-encoded, decided at
//! apply from replicated state only. Secrets never enter the log in clear:
//! an app secret is stored as its SHA-256 (it is 256 random bits, so a
//! fast hash is enough), sign-in codes likewise.

use serde::{Deserialize, Serialize};

/// The enterprise as integrations see it (WeCom's "corp"): set by the
/// first app registration, from values the receiving node drew at random.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corp {
    /// `ww` + 16 hex digits, like WeCom's corpids.
    pub corpid: String,
    /// HMAC key of app access tokens and of the sign-in page's form
    /// tokens: any node can check what any node issued.
    pub token_key: [u8; 32],
}

/// What an app may call. `DirectoryWrite` implies `DirectoryRead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    DirectoryRead,
    DirectoryWrite,
    MessageSend,
    AppChat,
    OAuth,
    /// File approval requests for members and read approvals (`oa/*`).
    Approval,
    /// External contacts and customer groups (`externalcontact/*`).
    ExternalContact,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::DirectoryRead,
        Scope::DirectoryWrite,
        Scope::MessageSend,
        Scope::AppChat,
        Scope::OAuth,
        Scope::Approval,
        Scope::ExternalContact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::DirectoryRead => "directory:read",
            Scope::DirectoryWrite => "directory:write",
            Scope::MessageSend => "message:send",
            Scope::AppChat => "appchat",
            Scope::OAuth => "oauth",
            Scope::Approval => "approval",
            Scope::ExternalContact => "externalcontact",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

/// Where an app's event callbacks go (WeCom's 接收消息服务器).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackCfg {
    /// `https://` URL on the internal network.
    pub url: String,
    /// The signing token (1-32 letters and digits).
    pub token: String,
    /// The 43-character EncodingAESKey.
    pub aes_key: String,
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub agentid: u32,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub enabled: bool,
    /// SHA-256 of the secret (shown once, at creation or rotation).
    pub secret_hash: [u8; 32],
    /// Raised by every secret rotation: tokens of an earlier generation
    /// stop working.
    pub generation: u32,
    /// Hosts (`host` or `host:port`) sign-in redirects may go to.
    pub trusted_domains: Vec<String>,
    pub callback: Option<CallbackCfg>,
    pub created_ms: u64,
}

impl App {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope == Scope::DirectoryRead && self.scopes.contains(&Scope::DirectoryWrite))
    }
}

/// A change to an app (sysadmin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppChange {
    Enable(bool),
    RotateSecret { secret_hash: [u8; 32] },
    SetScopes(Vec<Scope>),
    SetCallback(Option<CallbackCfg>),
    SetTrustedDomains(Vec<String>),
}

/// Descriptive attributes of a member beyond the core record that every
/// message reads (`Member` stays small on that hot path). Kept for the
/// WeCom fields; the native API shows them too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub alias: String,
    /// 0 unset, 1 male, 2 female (WeCom's values).
    pub gender: u8,
    pub telephone: String,
    pub address: String,
    /// 0 = the first of the member's departments.
    pub main_department: u64,
    /// Sort order inside each department, parallel to `Member::departments`.
    pub orders: Vec<i64>,
    /// The last replace job (`batch/replaceuser`) whose file listed the
    /// member: those it did not list are disabled at its end.
    pub synced_by: String,
}

/// How a user write treats an existing (or missing) member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutMode {
    /// Refused if the userid exists (or existed: departed members keep it).
    Create,
    /// Refused unless an active or disabled member has the userid.
    Update,
    /// Create or update (bulk sync).
    Upsert,
}

/// A user write in WeCom's terms; `None` leaves a field unchanged (on
/// create: empty, departments default to the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFields {
    pub userid: String,
    pub name: Option<String>,
    pub departments: Option<Vec<u64>>,
    pub orders: Option<Vec<i64>>,
    pub position: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub alias: Option<String>,
    pub gender: Option<u8>,
    pub telephone: Option<String>,
    pub address: Option<String>,
    pub main_department: Option<u64>,
    /// Parallel to `departments` (or to the member's current departments).
    pub leader_in_dept: Option<Vec<bool>>,
    pub enabled: Option<bool>,
}

/// A department write in WeCom's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeptFields {
    /// `None` on create: the next free id.
    pub id: Option<u64>,
    pub parent: Option<u64>,
    pub name: Option<String>,
    pub order: Option<i64>,
}

/// One article of a `news` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub title: String,
    pub description: String,
    pub url: String,
    pub picurl: String,
}

/// Structured content beyond plain text. `Message::text` always carries a
/// plain rendering (for clients that show only text, and for search).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rich {
    Markdown {
        content: String,
    },
    TextCard {
        title: String,
        description: String,
        url: String,
        btntxt: String,
    },
    News {
        articles: Vec<Article>,
    },
}

/// What an app sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppContent {
    /// Plain rendering (the text of a `text` message).
    pub text: String,
    pub rich: Option<Rich>,
    /// WeCom's `safe`: confidential, clients must not allow forwarding.
    pub safe: bool,
    /// An image, file or voice note the app uploaded (`media/upload`),
    /// carried by every recipient's copy.
    pub file: Option<super::files::FileRef>,
}

/// Recipients of an app message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipients {
    pub users: Vec<String>,
    /// Departments, each with its sub-departments.
    pub parties: Vec<u64>,
    /// `@all`: every active member.
    pub all: bool,
}

/// An app message as recorded once, whatever its fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    pub msgid: String,
    pub agentid: u32,
    pub time_ms: u64,
    pub content: AppContent,
    /// Recipients resolved at send time.
    pub recipients: u64,
    /// Recipient chunks; `delivered` of them are delivered so far.
    pub chunks: u32,
    pub delivered: u32,
    pub recalled: bool,
}

/// Leader-driven work that continues a command too big for one entry.
/// The leader proposes `Continue { work, cursor }` until it is gone; the
/// cursor makes a repeated proposal (from a deposed leader) a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Work {
    /// Deliver the remaining recipient chunks of an app message.
    Deliver { msgid: String },
    /// Recall an app message chunk by chunk.
    Recall { msgid: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub work: Work,
    /// Steps done so far.
    pub cursor: u64,
}

/// A file uploaded with `media/upload`, kept three days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMeta {
    pub media_id: String,
    pub agentid: u32,
    pub kind: String,
    pub filename: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub chunks: u32,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// Bulk directory jobs (WeCom's `batch/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Create or update the members in the file.
    SyncUser,
    /// Same, then disable every active member absent from the file.
    ReplaceUser,
    /// Create or update the departments in the file, then delete those
    /// absent from it (their members move to the root if left without a
    /// department).
    ReplaceParty,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::SyncUser => "sync_user",
            JobKind::ReplaceUser => "replace_user",
            JobKind::ReplaceParty => "replace_party",
        }
    }
}

/// Where a job is: the leader proposes the next step from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobCursor {
    /// Applying rows. `pos` is a byte offset into a user file, or the
    /// index into a party file's rows in parents-first order.
    Rows {
        pos: u64,
        line: u64,
    },
    /// Replace jobs: dealing with what the file did not list.
    Absent {
        step: u64,
        after: String,
    },
    /// Dropping the job's bookkeeping of what the file listed.
    Cleanup {
        step: u64,
    },
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub jobid: String,
    pub agentid: u32,
    pub kind: JobKind,
    pub media_id: String,
    /// The parsed header (column positions), opaque to the domain.
    #[serde(with = "serde_bytes")]
    pub columns: Vec<u8>,
    pub cursor: JobCursor,
    /// Data rows in the file.
    pub total: u64,
    pub processed: u64,
    pub failed: u64,
    /// Absent members disabled / absent departments deleted.
    pub removed: u64,
    pub steps: u64,
    pub created_ms: u64,
    pub finished_ms: u64,
    /// Where the job's completion event goes (else the app's callback).
    pub callback: Option<CallbackCfg>,
}

/// The outcome of one row of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    /// userid, or department id.
    pub key: String,
    /// For party jobs: what was done (`create`, `update`, `delete`).
    pub action: String,
    /// `None`: applied.
    pub code: Option<super::Code>,
    pub message: String,
}

/// Rows a leader parsed for one step of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobRows {
    /// (line, userid as written, the row or why it is invalid)
    Users(Vec<(u64, String, Result<UserFields, String>)>),
    Parties(Vec<(u64, String, Result<DeptFields, String>)>),
    None,
}

/// A one-time sign-in code (OAuth2 `code`), valid five minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthCode {
    pub userid: String,
    pub agentid: u32,
    pub expires_ms: u64,
}

/// Delivery state of one app's callback queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackState {
    /// Sequence number of the next event queued (the first is 1).
    pub next: u64,
    /// Every event up to this one has been delivered.
    pub acked: u64,
    /// Events not queued because the queue was full.
    pub dropped: u64,
    pub delivered: u64,
    /// Consecutive failed attempts at the head of the queue.
    pub failures: u32,
    pub last_error: String,
    pub last_error_ms: u64,
    pub last_ok_ms: u64,
}

/// One queued callback event: the plaintext XML, encrypted and signed at
/// delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackItem {
    pub seq: u64,
    pub time_ms: u64,
    /// `change_contact`, `text`, `batch_job_result`.
    pub kind: String,
    pub xml: String,
    /// Another destination than the app's (a job's own callback).
    pub target: Option<CallbackCfg>,
}

/// What an app-originated command needs checked at apply: the app exists,
/// is enabled and has the scope. Carried by the command's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppCaller {
    pub agentid: u32,
}
