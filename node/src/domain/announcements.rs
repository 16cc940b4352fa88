//! Announcements (公告): what is stored. The rules are applied in
//! `apply/announcements.rs`.
//!
//! An announcement goes to the whole enterprise or to departments (with
//! everything below them). Its audience is fixed as it is sent out: every
//! active member in scope then gets a recipient record (`anr/<id><userid>`)
//! and the announcement in their notice inbox. Read statistics count that
//! audience exactly. A member who joins (or moves into scope) later still
//! sees the announcement while it is pinned, but is not counted as unread;
//! if they read it they are counted apart, as a late reader.
//!
//! The body is rich text in a safe subset, kept as structure, never as
//! HTML: paragraphs and bullet or numbered lists of runs, each run plain
//! or bold, optionally a link (http or https only).

use serde::{Deserialize, Serialize};

use super::integration::Recipients;

/// A run of text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub text: String,
    #[serde(default)]
    pub bold: bool,
    /// An http or https address.
    #[serde(default)]
    pub link: Option<String>,
}

/// A block of an announcement's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Paragraph(Vec<Run>),
    /// Items of a bullet list.
    Bullets(Vec<Vec<Run>>),
    /// Items of a numbered list.
    Numbered(Vec<Vec<Run>>),
}

/// A reference to a document kept elsewhere (the site's document system
/// today; the replicated file store once it exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    /// An http or https address.
    pub url: String,
    /// Bytes, if known (0 = unknown).
    #[serde(default)]
    pub size: u64,
}

/// What a publisher asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementDraft {
    /// Departments or everyone (listed users are refused: an announcement
    /// is for a whole organisation or part of it).
    pub to: Recipients,
    pub title: String,
    pub body: Vec<Block>,
    pub attachment: Option<Attachment>,
    /// Shown pinned until then (0 = not pinned).
    pub pinned_until_ms: u64,
}

/// Read statistics, kept in the announcement record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementCounts {
    /// Members in scope when it was sent out.
    pub audience: u64,
    /// Of those, how many have read it.
    pub read: u64,
    /// Readers who were not in the audience (joined later).
    pub late_read: u64,
}

/// An announcement (`anc/<id>`); the body is kept apart (`anb/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub id: u64,
    pub sender: String,
    pub title: String,
    pub sent_ms: u64,
    pub pinned_until_ms: u64,
    pub attachment: Option<Attachment>,
    /// Whole enterprise.
    pub all: bool,
    /// The departments named (the audience includes those below them).
    pub departments: Vec<u64>,
    /// Sending out: `Some((part, after))` (part i = the i-th department of
    /// the scope, or the directory when `all`); `None` when everyone in
    /// scope has it.
    pub expanding: Option<(u32, String)>,
    /// Bumped by every expansion step: a step applies only at this value.
    pub steps: u64,
    pub counts: AnnouncementCounts,
    pub withdrawn_ms: u64,
}

/// A reader's record (`anr/<id><userid>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementReader {
    pub read_ms: u64,
    /// Not in the audience: read it after joining later.
    pub late: bool,
}

/// What a member is shown of an announcement in their inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementCard {
    pub id: u64,
    pub sender: String,
    pub title: String,
    pub sent_ms: u64,
    pub pinned_until_ms: u64,
}
