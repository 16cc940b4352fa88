//! External contacts (外部联系人): what is stored. The rules are applied in
//! `apply/external.rs`.
//!
//! People outside the organization (a customer, a partner's staff, a
//! citizen) are accounts of their own kind, `ext/<userid>`, never members:
//! nothing that walks the directory (`user/`) sees them, so broadcasts, bulk
//! sync jobs and directory reads leave them out by construction. They log
//! in like members (`acct/<userid>`, sessions) and take part only in the
//! conversations made for them: a 1:1 with each employee who serves them
//! ([`ConvKind::Contact`](super::model::ConvKind::Contact)) and customer
//! groups ([`ConvKind::Customer`](super::model::ConvKind::Customer)).
//!
//! The relationship belongs to the organization: `extc/<employee>\0<ext>`
//! names the employee who serves the contact now. When that employee
//! departs, the contacts and the customer groups they own are listed as
//! unassigned until an administrator transfers them; the new owner joins
//! the conversations from their first event and reads the whole history.
//!
//! Every record here exists only once the cluster has moved to log version
//! 3 (the commands that write them are version 3): the apply of older
//! commands is unchanged for every history an older build could have made.

use serde::{Deserialize, Serialize};

/// An external account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    pub userid: String,
    pub name: String,
    /// The company or agency they belong to.
    pub org: String,
    pub phone: String,
    pub email: String,
    /// The employee whose invitation they accepted.
    pub invited_by: String,
    pub created_ms: u64,
    /// Disabled by an administrator: cannot log in, sessions revoked.
    pub disabled: bool,
}

/// A one-time invitation (`exti/<code sha256>`); the code itself is never
/// stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub employee: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The account made with it (a used code is refused).
    pub used_by: Option<String>,
}

/// `extc/<employee>\0<external>`: the employee serves the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Their 1:1 conversation (`x<n>`), which moves with the contact.
    pub conv: String,
    pub since_ms: u64,
    /// The employee who served them before a transfer.
    pub previous: Option<String>,
}

/// Limits and windows for external contacts (`cfg/external`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalPolicy {
    /// Contacts plus open invitations an employee may have.
    pub max_contacts_per_employee: u32,
    /// Members (employees and externals) of a customer group.
    pub max_customer_group_members: u32,
    pub invitation_ttl_ms: u64,
    /// How long a contact of a still-active employee has to object before
    /// a transfer takes effect (WeCom: 24 h).
    pub transfer_window_ms: u64,
}

impl Default for ExternalPolicy {
    fn default() -> Self {
        ExternalPolicy {
            max_contacts_per_employee: 2_000,
            max_customer_group_members: 500,
            invitation_ttl_ms: 7 * 24 * 3600 * 1000,
            transfer_window_ms: 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Waiting for the window to end (in-service transfers).
    Waiting,
    Done,
    Cancelled,
}

/// A hand-over of contacts and customer groups (`extx/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub externals: Vec<String>,
    pub groups: Vec<String>,
    /// Who asked: a userid (a leader), or `admin`/`app:<agentid>`.
    pub by: String,
    /// Said to each contact with the hand-over notice (may be empty).
    pub message: String,
    pub created_ms: u64,
    /// When it takes effect (= `created_ms` for a departed employee).
    pub due_ms: u64,
    pub status: TransferStatus,
    /// Contacts who objected in the window: they stay with `from`.
    pub objected: Vec<String>,
    pub finished_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// The whole message (trimmed, case-insensitive) is the keyword.
    Exact,
    /// The message contains the keyword (case-insensitive).
    Contains,
}

/// A keyword auto-reply of a customer group (`extar/<conv>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReplyRule {
    pub keywords: Vec<String>,
    pub mode: MatchMode,
    pub answer: String,
}

pub const MAX_AUTO_REPLY_RULES: usize = 50;
pub const MAX_KEYWORDS: usize = 20;
pub const MAX_KEYWORD_CHARS: usize = 64;
pub const MAX_ANSWER_CHARS: usize = 1_000;
/// At most this many contacts or groups in one transfer (WeCom: 100).
pub const MAX_TRANSFER_ITEMS: usize = 100;

impl AutoReplyRule {
    /// Whether `text` triggers this rule.
    pub fn matches(&self, text: &str) -> bool {
        let t = text.trim().to_lowercase();
        self.keywords.iter().any(|k| {
            let k = k.trim().to_lowercase();
            match self.mode {
                MatchMode::Exact => t == k,
                MatchMode::Contains => t.contains(&k),
            }
        })
    }
}

/// The sender of a customer group's automatic replies.
pub fn assistant_sender(conv: &str) -> String {
    format!("assistant:{conv}")
}

/// The sender of hand-over notices (not a valid userid: `:`).
pub const HANDOVER_SENDER: &str = "system:handover";

/// Per employee and UTC day: messages they sent to external conversations
/// (`exts/<employee>\0<day>`).
pub fn day_of(ms: u64) -> u32 {
    (ms / 86_400_000) as u32
}

// ------------------------------------------------------------------ reads

use super::keys;
use super::model::{Conversation, Member, MemberStatus};
use super::store::{Store, StoreExt, StoreFault};

pub fn policy<S: Store + ?Sized>(s: &S) -> Result<ExternalPolicy, StoreFault> {
    Ok(s.get_as(keys::EXTERNAL_POLICY)?.unwrap_or_default())
}

pub fn external<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Option<External>, StoreFault> {
    s.get_as(&keys::external(userid))
}

/// A member, or the member view of an external account (`true`).
pub fn party<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Option<(Member, bool)>, StoreFault> {
    if let Some(m) = s.get_as::<Member>(&keys::user(userid))? {
        return Ok(Some((m, false)));
    }
    Ok(external(s, userid)?.map(|e| (super::apply::external::as_member(&e), true)))
}

/// External accounts by userid, after `cursor`.
pub fn externals<S: Store + ?Sized>(
    s: &S,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<External>, StoreFault> {
    let after = cursor.map(keys::external);
    Ok(
        s.scan_as::<External>(keys::EXTERNALS, after.as_deref(), limit)?
            .into_iter()
            .map(|(_, e)| e)
            .collect(),
    )
}

pub fn invitation<S: Store + ?Sized>(
    s: &S,
    code_hash: &[u8; 32],
) -> Result<Option<Invitation>, StoreFault> {
    s.get_as(&keys::invitation(code_hash))
}

/// The contacts an employee serves, by external userid.
pub fn contacts_of<S: Store + ?Sized>(
    s: &S,
    employee: &str,
) -> Result<Vec<(String, Contact)>, StoreFault> {
    let prefix = keys::contacts_of(employee);
    Ok(s.scan_as::<Contact>(&prefix, None, usize::MAX)?
        .into_iter()
        .map(|(k, c)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), c))
        .collect())
}

pub fn contact<S: Store + ?Sized>(
    s: &S,
    employee: &str,
    external: &str,
) -> Result<Option<Contact>, StoreFault> {
    s.get_as(&keys::contact(employee, external))
}

/// The employees who serve an external contact.
pub fn servers_of<S: Store + ?Sized>(s: &S, external: &str) -> Result<Vec<String>, StoreFault> {
    let prefix = keys::servers_of(external);
    Ok(s.scan(&prefix, None, usize::MAX)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
        .collect())
}

/// Customer groups owned by `owner` (dissolved ones included).
pub fn customer_groups_of<S: Store + ?Sized>(
    s: &S,
    owner: &str,
) -> Result<Vec<Conversation>, StoreFault> {
    let prefix = keys::customer_groups_of(owner);
    let mut out = Vec::new();
    for (k, _) in s.scan(&prefix, None, usize::MAX)? {
        let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        if let Some(c) = s.get_as::<Conversation>(&keys::conv(&id))? {
            out.push(c);
        }
    }
    Ok(out)
}

/// Every customer group, ordered by owner then id, after `cursor` (the
/// last one's `owner\0id`).
pub fn customer_groups<S: Store + ?Sized>(
    s: &S,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<Conversation>, StoreFault> {
    let after = cursor.map(|c| [b"extg/".as_slice(), c.as_bytes()].concat());
    let mut out = Vec::new();
    for (k, _) in s.scan(b"extg/", after.as_deref(), limit)? {
        let id = keys::tail_str(&k);
        if let Some(c) = s.get_as::<Conversation>(&keys::conv(&id))? {
            out.push(c);
        }
    }
    Ok(out)
}

/// A departed employee's contacts and customer groups waiting for a new
/// owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unassigned {
    pub employee: String,
    pub departed_ms: u64,
    pub externals: Vec<String>,
    pub groups: Vec<String>,
}

/// The unassigned list, by departed employee, after `cursor`.
pub fn unassigned<S: Store + ?Sized>(
    s: &S,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Vec<Unassigned>, StoreFault> {
    let after = cursor.map(keys::departed_with_contacts);
    let mut out = Vec::new();
    for (k, departed_ms) in
        s.scan_as::<u64>(keys::DEPARTED_WITH_CONTACTS, after.as_deref(), limit)?
    {
        let employee =
            String::from_utf8_lossy(&k[keys::DEPARTED_WITH_CONTACTS.len()..]).into_owned();
        let externals = contacts_of(s, &employee)?
            .into_iter()
            .map(|(x, _)| x)
            .collect();
        let groups = customer_groups_of(s, &employee)?
            .into_iter()
            .filter(|c| !c.dissolved && c.owner == employee)
            .map(|c| c.id)
            .collect();
        out.push(Unassigned {
            employee,
            departed_ms,
            externals,
            groups,
        });
    }
    Ok(out)
}

pub fn transfer<S: Store + ?Sized>(s: &S, id: u64) -> Result<Option<Transfer>, StoreFault> {
    s.get_as(&keys::transfer(id))
}

/// Transfers, newest first, before id `before` (exclusive), at most
/// `limit`, optionally only those of employee `from`.
pub fn transfers<S: Store + ?Sized>(
    s: &S,
    from: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Transfer>, StoreFault> {
    let top = match before {
        Some(b) => b.saturating_sub(1),
        None => s.get_as::<u64>(keys::TRANSFER_CTR)?.unwrap_or(0),
    };
    let mut out = Vec::new();
    let mut id = top;
    while id >= 1 && out.len() < limit {
        if let Some(t) = transfer(s, id)?
            && from.is_none_or(|f| t.from == f)
        {
            out.push(t);
        }
        id -= 1;
    }
    Ok(out)
}

/// Waiting transfers whose window has ended at `now`, the earliest first.
pub fn transfers_due<S: Store + ?Sized>(
    s: &S,
    now: u64,
    limit: usize,
) -> Result<Vec<Transfer>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::TRANSFERS_DUE, None, limit)? {
        let due = k
            .get(keys::TRANSFERS_DUE.len()..keys::TRANSFERS_DUE.len() + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(u64::MAX, u64::from_be_bytes);
        if due > now {
            break;
        }
        if let Some(t) = transfer(s, keys::tail_u64(&k))? {
            out.push(t);
        }
    }
    Ok(out)
}

pub fn auto_replies<S: Store + ?Sized>(
    s: &S,
    conv: &str,
) -> Result<Vec<AutoReplyRule>, StoreFault> {
    Ok(s.get_as(&keys::auto_replies(conv))?.unwrap_or_default())
}

/// What a supervisor sees of one employee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Supervision {
    pub userid: String,
    pub name: String,
    pub departed: bool,
    pub contacts: u64,
    pub customer_groups: u64,
    /// Messages they sent in external conversations in the period.
    pub messages_to_externals: u64,
}

/// Figures of `m` for UTC days `from_day..=to_day`.
pub fn supervision<S: Store + ?Sized>(
    s: &S,
    m: &Member,
    from_day: u32,
    to_day: u32,
) -> Result<Supervision, StoreFault> {
    let contacts = s
        .scan(&keys::contacts_of(&m.userid), None, usize::MAX)?
        .len() as u64;
    let customer_groups = customer_groups_of(s, &m.userid)?
        .into_iter()
        .filter(|c| !c.dissolved && c.owner == m.userid)
        .count() as u64;
    let after = from_day
        .checked_sub(1)
        .map(|d| keys::external_sent(&m.userid, d));
    let mut messages = 0;
    for (k, n) in s.scan_as::<u64>(
        &keys::external_sent_of(&m.userid),
        after.as_deref(),
        usize::MAX,
    )? {
        let day = k
            .len()
            .checked_sub(4)
            .and_then(|at| <[u8; 4]>::try_from(&k[at..]).ok())
            .map_or(u32::MAX, u32::from_be_bytes);
        if day > to_day {
            break;
        }
        if day >= from_day {
            messages += n;
        }
    }
    Ok(Supervision {
        userid: m.userid.clone(),
        name: m.name.clone(),
        departed: m.status == MemberStatus::Departed,
        contacts,
        customer_groups,
        messages_to_externals: messages,
    })
}

/// The waiting transfers that concern external contact `external` (one
/// per employee serving them at most).
pub fn waiting_transfers_of<S: Store + ?Sized>(
    s: &S,
    external: &str,
) -> Result<Vec<Transfer>, StoreFault> {
    let mut out = Vec::new();
    for employee in servers_of(s, external)? {
        let item = format!("c:{employee}\0{external}");
        if let Some(id) = s.get_as::<u64>(&keys::transfer_item(&item))?
            && let Some(t) = transfer(s, id)?
        {
            out.push(t);
        }
    }
    Ok(out)
}
