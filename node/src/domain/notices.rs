//! Urgent notices (紧急通知): what is stored. The rules are applied in
//! `apply/notices.rs`.
//!
//! A notice is recorded once (`ntc/<id>`, small: rewritten by every
//! acknowledgement), with its body and targets beside it (written once),
//! and one small record per recipient (`ntr/<id><userid>`). Recipients get
//! it, its reminders and its withdrawal as events in their notice inbox, a
//! one-member conversation `n.<userid>`, so sync, resume and live push
//! work as for messages. Everything that happens later (expanding a large
//! audience, reminder rounds, escalation to leaders, telling recipients of
//! a withdrawal) is a step the leader proposes from the replicated state:
//! each step names the notice's step counter and applies only at it.

use serde::{Deserialize, Serialize};

use super::integration::Recipients;

/// What a sender asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeDraft {
    pub to: Recipients,
    pub title: String,
    pub body: String,
    /// Unacknowledged recipients are reported to their leaders then.
    pub deadline_ms: u64,
    /// Interval between reminder rounds (0 = the default, 5 minutes).
    pub remind_every_ms: u64,
    /// At most this many reminder rounds (0 = the default, 6).
    pub max_rounds: u32,
}

/// Live counts, kept in the notice record itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeCounts {
    pub recipients: u64,
    pub delivered: u64,
    pub read: u64,
    pub acked: u64,
    /// Recipients reminded at least once.
    pub reminded: u64,
    /// Reminder events sent (all rounds).
    pub reminders: u64,
    /// Recipients reported to their leaders.
    pub escalated: u64,
    /// Leaders told.
    pub leaders: u64,
}

/// Where a notice is in its life. Each active phase carries its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticePhase {
    /// Finding the recipients: part 0 is the listed users (or every
    /// member when sent to all), part i the (i-1)th target department;
    /// `after` is the last userid done in that part.
    Expand {
        part: u32,
        after: String,
    },
    /// Nothing to do until `due_ms`: the next round, or the deadline.
    Waiting,
    /// Reminding round `round`, recipients after `after`.
    Remind {
        round: u32,
        after: String,
    },
    /// Collecting the unacknowledged recipients per leader.
    Escalate {
        after: String,
    },
    /// Telling each leader (after `after`).
    Tell {
        after: String,
    },
    /// Telling recipients it was withdrawn (after `after`).
    Withdraw {
        after: String,
    },
    Done,
}

impl NoticePhase {
    pub fn name(&self) -> &'static str {
        match self {
            NoticePhase::Expand { .. } => "sending",
            NoticePhase::Waiting => "waiting",
            NoticePhase::Remind { .. } => "reminding",
            NoticePhase::Escalate { .. } | NoticePhase::Tell { .. } => "escalating",
            NoticePhase::Withdraw { .. } => "withdrawing",
            NoticePhase::Done => "done",
        }
    }
}

/// A notice (`ntc/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: u64,
    pub sender: String,
    pub title: String,
    pub sent_ms: u64,
    pub deadline_ms: u64,
    pub remind_every_ms: u64,
    pub max_rounds: u32,
    pub phase: NoticePhase,
    /// Bumped by every leader step and every phase change: a step applies
    /// only when it names this value.
    pub steps: u64,
    pub rounds_done: u32,
    /// When the leader should act next (0 = now, in an active phase).
    pub due_ms: u64,
    pub counts: NoticeCounts,
    /// When it was withdrawn (0 = not withdrawn).
    pub withdrawn_ms: u64,
}

/// Who a notice is for, resolved at sending (`ntt/<id>`, written once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeTargets {
    /// Listed users, sorted, without repeats.
    pub users: Vec<String>,
    /// The listed departments and every department below them, sorted.
    pub depts: Vec<u64>,
    pub all: bool,
}

/// One recipient's state (`ntr/<id><userid>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecipient {
    pub delivered_ms: u64,
    pub read_ms: u64,
    pub acked_ms: u64,
    /// Reminders received.
    pub reminded: u32,
    /// The last round that reminded them.
    pub last_round: u32,
    pub escalated: bool,
}

/// What a recipient is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeCard {
    pub id: u64,
    pub sender: String,
    pub title: String,
    pub body: String,
    pub sent_ms: u64,
    pub deadline_ms: u64,
}

/// How far a recipient has got with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeLevel {
    Delivered,
    Read,
    Acked,
}

/// Who besides holders of `notice:urgent` may send (`cfg/notices`, set by
/// the security administrator). Kept apart from `Policy` so a stored
/// policy record keeps its shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticePolicy {
    /// Department leaders may send to the departments they lead (with
    /// everything below them) and to the members there.
    pub leaders_may_send: bool,
}
