//! Approvals (审批): what is stored. The rules are applied in
//! `apply/approvals.rs`.
//!
//! A system administrator defines templates: typed fields and a flow of
//! steps. A member files a request against a template; it walks the steps
//! one at a time. Each step's approvers are found from the directory when
//! the step starts, and found again whenever the directory changes under
//! a pending step (a new department leader takes over the step; a
//! departed or disabled approver's step moves up to the leaders above
//! them). Any one of a step's approvers decides it.

use serde::{Deserialize, Serialize};

/// The type of a template field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    /// A decimal number, e.g. `3` or `2.5`.
    Number,
    /// An amount with at most two decimals, kept in hundredths (分).
    Money,
    /// Two dates `YYYY-MM-DD`, start not after end.
    DateRange,
    /// One of the field's options.
    Choice,
    /// An active member's userid.
    Member,
}

impl FieldKind {
    pub const ALL: [FieldKind; 6] = [
        FieldKind::Text,
        FieldKind::Number,
        FieldKind::Money,
        FieldKind::DateRange,
        FieldKind::Choice,
        FieldKind::Member,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Money => "money",
            FieldKind::DateRange => "date_range",
            FieldKind::Choice => "choice",
            FieldKind::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<FieldKind> {
        FieldKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Stable key: 1-32 of `a-z 0-9 _`.
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    /// The choices of a `choice` field.
    pub options: Vec<String>,
}

/// One step of a template's flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStep {
    /// The applicant's department leaders upward: one step per level.
    Leaders(u32),
    /// A fixed approver.
    User(String),
    /// Any one of a group.
    AnyOf(Vec<String>),
}

/// An approval template (`apt/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalTemplate {
    /// Stable id: 1-32 of `a-z 0-9 _ -`.
    pub id: String,
    pub name: String,
    pub fields: Vec<FieldDef>,
    pub flow: Vec<FlowStep>,
    /// Told of every step.
    pub cc: Vec<String>,
    pub disabled: bool,
    /// Bumped by every change.
    pub version: u32,
}

/// A checked field value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    Text(String),
    /// Normalised decimal text.
    Number(String),
    /// Hundredths.
    Money(i64),
    DateRange(String, String),
    Choice(String),
    Member(String),
}

impl FieldValue {
    /// As shown in lists and exports.
    pub fn display(&self) -> String {
        match self {
            FieldValue::Text(t) | FieldValue::Number(t) | FieldValue::Choice(t) => t.clone(),
            FieldValue::Member(u) => u.clone(),
            FieldValue::Money(c) => {
                let sign = if *c < 0 { "-" } else { "" };
                let a = c.unsigned_abs();
                format!("{sign}{}.{:02}", a / 100, a % 100)
            }
            FieldValue::DateRange(a, b) => format!("{a}/{b}"),
        }
    }
}

/// A step as planned at filing (leader levels one step each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRule {
    /// The applicant's n-th level of leaders (1 = nearest).
    Leader(u32),
    User(String),
    AnyOf(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Withdrawn => "withdrawn",
        }
    }
}

/// What happened, in the request's trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailAction {
    Submitted,
    /// Step `step` went to these approvers.
    Assigned {
        approvers: Vec<String>,
    },
    /// The directory changed under the step: it went from/to.
    Reassigned {
        from: Vec<String>,
        to: Vec<String>,
        why: String,
    },
    /// Nobody could decide this step (no leader at that level, the
    /// approvers gone with nobody above them): passed over.
    Skipped {
        why: String,
    },
    Approved {
        comment: String,
    },
    Rejected {
        reason: String,
    },
    Commented {
        text: String,
    },
    Withdrawn,
}

impl TrailAction {
    pub fn name(&self) -> &'static str {
        match self {
            TrailAction::Submitted => "submitted",
            TrailAction::Assigned { .. } => "assigned",
            TrailAction::Reassigned { .. } => "reassigned",
            TrailAction::Skipped { .. } => "skipped",
            TrailAction::Approved { .. } => "approved",
            TrailAction::Rejected { .. } => "rejected",
            TrailAction::Commented { .. } => "commented",
            TrailAction::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEntry {
    pub time_ms: u64,
    /// Who acted ("system" for assignments).
    pub actor: String,
    /// The step (0-based) it concerns.
    pub step: u32,
    pub action: TrailAction,
}

/// A request (`apr/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: u64,
    pub template: String,
    pub template_name: String,
    pub applicant: String,
    /// The department the leader steps start from.
    pub department: u64,
    pub values: Vec<(String, FieldValue)>,
    pub submitted_ms: u64,
    pub plan: Vec<StepRule>,
    /// The step now being decided (== plan.len() when finished).
    pub current: u32,
    /// Who may decide the current step.
    pub approvers: Vec<String>,
    /// For a leader step: the department whose leaders they are.
    pub approver_dept: u64,
    pub cc: Vec<String>,
    pub status: ApprovalStatus,
    pub finished_ms: u64,
    pub trail: Vec<TrailEntry>,
}

impl ApprovalRequest {
    /// Whether `userid` takes part: the applicant, a CC, a current
    /// approver, or anyone who acted on or was assigned a step.
    pub fn involves(&self, userid: &str) -> bool {
        self.applicant == userid
            || self.cc.iter().any(|c| c == userid)
            || self.approvers.iter().any(|a| a == userid)
            || self.trail.iter().any(|t| {
                t.actor == userid
                    || matches!(&t.action, TrailAction::Assigned { approvers } if approvers.iter().any(|a| a == userid))
            })
    }
}

/// Steps and CCs given with a request instead of the template's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRoute {
    pub steps: Vec<StepRule>,
    pub cc: Vec<String>,
}
