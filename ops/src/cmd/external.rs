//! `enclavectl external ...`: external contacts as operators handle them —
//! the unassigned contacts and customer groups of departed employees,
//! hand-over (离职继承 for departed employees, 在职继承 for active ones,
//! which waits for the contacts' objection window), transfers and their
//! cancellation, external accounts and disabling them, whom an employee
//! serves, supervision figures per department, and the external-contact
//! policy. docs/operator/external.md.
//!
//! Reads: sysadmin and auditor (the policy: every operator). Transfers,
//! cancelling and disabling: sysadmin. The policy: secadmin.

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::Output;
use super::directory::{call, show};
use crate::client::Client;

/// The external-contact policy on the admin port.
pub const EXTERNAL_POLICY_PATH: &str = "/v1/policy/external";

/// At most this many contacts and this many customer groups per transfer
/// (the node refuses more); `transfer --all` splits into batches.
pub const MAX_TRANSFER_ITEMS: usize = 100;

/// Longest hand-over message the node takes.
pub const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, Subcommand)]
pub enum ExternalCommand {
    /// Departed employees whose external contacts and customer groups wait
    /// for a new owner (sysadmin, auditor).
    Unassigned {
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Hand contacts and customer groups of --from to --to (sysadmin): at
    /// once when --from has departed; otherwise after the objection window
    /// of the policy, during which each contact may object and the
    /// transfer may be cancelled.
    Transfer(TransferArgs),
    /// Transfers, newest first, optionally only those from one employee
    /// (sysadmin, auditor).
    Transfers {
        /// Only transfers from this employee.
        #[arg(long, value_name = "USERID")]
        from: Option<String>,
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One transfer: what it moves, its state, who objected.
    TransferShow { id: u64 },
    /// Cancel a waiting transfer before its window ends (sysadmin).
    Cancel { id: u64 },
    /// External accounts with who serves them (sysadmin, auditor).
    Accounts {
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One external account.
    Account { userid: String },
    /// Disable an external account: it cannot log in and its sessions end
    /// (sysadmin).
    Disable { userid: String },
    /// Enable a disabled external account again (sysadmin).
    Enable { userid: String },
    /// The external contacts an employee serves and the customer groups
    /// they own (sysadmin, auditor).
    Contacts {
        #[arg(long, value_name = "USERID")]
        employee: String,
    },
    /// Per member of a department (not its subdepartments): external
    /// contacts, customer groups, messages sent to externals in a range of
    /// UTC days — the last 30 by default (sysadmin, auditor).
    Supervision {
        #[arg(long, value_name = "ID")]
        department: u64,
        /// First day: YYYY-MM-DD or a day number (days since 1970-01-01, UTC).
        #[arg(long, value_name = "DAY", value_parser = parse_day)]
        from_day: Option<u32>,
        /// Last day, inclusive (default: today); at most 366 days after
        /// --from-day.
        #[arg(long, value_name = "DAY", value_parser = parse_day)]
        to_day: Option<u32>,
    },
    /// The external-contact policy: show (operators), set (secadmin).
    Policy {
        #[command(subcommand)]
        cmd: Option<ExternalPolicyCommand>,
    },
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("what")
        .required(true)
        .multiple(true)
        .args(["contacts", "groups", "all"])
))]
pub struct TransferArgs {
    /// The employee whose contacts and groups move (departed or active).
    #[arg(long, value_name = "USERID")]
    pub from: String,
    /// The active employee who takes them over.
    #[arg(long, value_name = "USERID")]
    pub to: String,
    /// An external contact of --from (their userid), repeatable.
    #[arg(long = "contact", value_name = "USERID", conflicts_with = "all")]
    pub contacts: Vec<String>,
    /// A customer group --from owns (its conversation id), repeatable.
    #[arg(long = "group", value_name = "CONV", conflicts_with = "all")]
    pub groups: Vec<String>,
    /// Every contact and customer group of --from (more than 100 of
    /// either: several transfers of at most 100 each).
    #[arg(long)]
    pub all: bool,
    /// Said to each contact with the hand-over notice (at most 200
    /// characters).
    #[arg(long, default_value = "")]
    pub message: String,
}

#[derive(Debug, Subcommand)]
pub enum ExternalPolicyCommand {
    /// Show the policy (the same as `external policy`).
    Show,
    /// Change the fields given; the others keep their values (secadmin).
    Set(PolicySet),
}

#[derive(Debug, Args, Default, Clone, PartialEq, Eq)]
pub struct PolicySet {
    /// External contacts (plus open invitations) an employee may have,
    /// 1-100000.
    #[arg(long, value_name = "N")]
    pub max_contacts: Option<u32>,
    /// Members (employees and externals) of a customer group, 2-2000.
    #[arg(long, value_name = "N")]
    pub max_group_members: Option<u32>,
    /// How long an invitation code is valid: 30m, 12h, 7d (1 minute to 90
    /// days).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub invitation_ttl: Option<u64>,
    /// How long contacts of an active employee may object before a
    /// transfer takes effect: 24h, 3d; 0 makes it immediate (at most 30
    /// days).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub transfer_window: Option<u64>,
}

/// The policy fields and the flags that set them.
const POLICY_FLAGS: &[(&str, &str)] = &[
    ("max_contacts_per_employee", "--max-contacts"),
    ("max_customer_group_members", "--max-group-members"),
    ("invitation_ttl_ms", "--invitation-ttl"),
    ("transfer_window_ms", "--transfer-window"),
];

/// `30s`, `15m`, `24h`, `7d` (the CLI's duration syntax) in milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let secs = super::cluster::parse_duration(s).map_err(|e| e.to_string())?;
    secs.checked_mul(1000)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

/// A UTC day: `YYYY-MM-DD` or a day number (days since 1970-01-01).
pub fn parse_day(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt)
        .map_err(|_| format!("{s:?}: expected YYYY-MM-DD or a day number"))?;
    let n = d.to_julian_day()
        - time::Date::from_calendar_date(1970, time::Month::January, 1)
            .map_err(|e| e.to_string())?
            .to_julian_day();
    u32::try_from(n).map_err(|_| format!("{s:?} is before 1970"))
}

/// `YYYY-MM-DD` of a day number.
pub fn day_text(day: u64) -> String {
    let secs = i64::try_from(day.saturating_mul(86_400)).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| day.to_string())
}

/// A time in ms as RFC 3339 to the second; `-` for 0 or none.
pub fn time_text(ms: &Value) -> String {
    match ms.as_u64() {
        None | Some(0) => "-".into(),
        Some(ms) => time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.replace_nanosecond(0).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| ms.to_string()),
    }
}

/// A duration in ms as people say it: `7d`, `24h`, `90m`, `45s`, `1500ms`
/// (each a form `--invitation-ttl` and `--transfer-window` take back).
pub fn duration_text(ms: u64) -> String {
    const UNITS: &[(u64, &str)] = &[
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    if ms == 0 {
        return "0".into();
    }
    for (size, unit) in UNITS {
        // A day reads better as 24h; from two days on, in days.
        if ms.is_multiple_of(*size) && (*unit != "d" || ms >= 2 * size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// How many columns a string takes in a terminal: East Asian wide
/// characters take two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = matches!(c,
                0x1100..=0x115F
                | 0x2E80..=0x303E
                | 0x3041..=0x33FF
                | 0x3400..=0x4DBF
                | 0x4E00..=0x9FFF
                | 0xA000..=0xA4CF
                | 0xAC00..=0xD7A3
                | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F
                | 0xFF00..=0xFF60
                | 0xFFE0..=0xFFE6
                | 0x20000..=0x3FFFD);
            if wide { 2 } else { 1 }
        })
        .sum()
}

/// Rows under a header, columns padded to their widest cell (two spaces
/// between columns, the last one not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        out
    };
    let mut out = vec![line(header.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
        .collect()
}

fn joined(v: &Value) -> String {
    let l = list(v);
    if l.is_empty() {
        "-".into()
    } else {
        l.join(", ")
    }
}

fn more(v: &Value) -> Option<String> {
    match &v["next_cursor"] {
        Value::String(c) => Some(format!("more: --cursor {c}")),
        Value::Number(c) => Some(format!("more: --cursor {c}")),
        _ => None,
    }
}

fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

/// `Transfer` as one line of the transfers table.
fn transfer_row(t: &Value) -> Vec<String> {
    let status = s(&t["status"]);
    let when = if status == "waiting" {
        format!("due {}", time_text(&t["due_ms"]))
    } else {
        time_text(&t["finished_ms"])
    };
    let objected = list(&t["objected"]).len();
    vec![
        s(&t["id"]),
        s(&t["from"]),
        s(&t["to"]),
        list(&t["externals"]).len().to_string(),
        list(&t["groups"]).len().to_string(),
        if objected > 0 {
            format!("{status} ({objected} objected)")
        } else {
            status
        },
        time_text(&t["created_ms"]),
        when,
        s(&t["by"]),
    ]
}

const TRANSFER_HEADER: &[&str] = &[
    "ID",
    "FROM",
    "TO",
    "CONTACTS",
    "GROUPS",
    "STATUS",
    "CREATED",
    "FINISHED / DUE",
    "BY",
];

/// A transfer in full.
pub fn transfer_text(t: &Value) -> String {
    let objected = list(&t["objected"]);
    let contacts: Vec<String> = list(&t["externals"])
        .into_iter()
        .map(|x| {
            if objected.contains(&x) {
                format!("{x} (objected: stays with {})", s(&t["from"]))
            } else {
                x
            }
        })
        .collect();
    let status = s(&t["status"]);
    let mut lines = vec![
        format!(
            "transfer {}: {} -> {}  {status}",
            s(&t["id"]),
            s(&t["from"]),
            s(&t["to"])
        ),
        format!("  asked by:  {}", s(&t["by"])),
        format!("  created:   {}", time_text(&t["created_ms"])),
        format!("  due:       {}", time_text(&t["due_ms"])),
        format!("  finished:  {}", time_text(&t["finished_ms"])),
        format!(
            "  contacts:  {}",
            if contacts.is_empty() {
                "-".into()
            } else {
                contacts.join(", ")
            }
        ),
        format!("  groups:    {}", joined(&t["groups"])),
        format!("  message:   {}", s(&t["message"])),
    ];
    match status.as_str() {
        "waiting" => lines.push(format!(
            "waiting for the objection window: takes effect at {} unless cancelled (enclavectl external cancel {})",
            time_text(&t["due_ms"]),
            s(&t["id"])
        )),
        "done" => lines.push(format!(
            "done: {} now serves the contacts and owns the groups, with their whole history",
            s(&t["to"])
        )),
        _ => {}
    }
    lines.join("\n")
}

fn account_row(a: &Value) -> Vec<String> {
    vec![
        s(&a["userid"]),
        s(&a["name"]),
        s(&a["org"]),
        joined(&a["served_by"]),
        s(&a["invited_by"]),
        time_text(&a["created_ms"]),
        if a["disabled"] == true {
            "disabled".into()
        } else {
            "active".into()
        },
    ]
}

const ACCOUNT_HEADER: &[&str] = &[
    "USERID",
    "NAME",
    "ORG",
    "SERVED BY",
    "INVITED BY",
    "CREATED",
    "STATUS",
];

fn account_text(a: &Value) -> String {
    [
        format!(
            "{}  {}  ({})  {}",
            s(&a["userid"]),
            s(&a["name"]),
            s(&a["org"]),
            if a["disabled"] == true {
                "DISABLED"
            } else {
                "active"
            }
        ),
        format!("  phone:       {}", s(&a["phone"])),
        format!("  email:       {}", s(&a["email"])),
        format!("  invited by:  {}", s(&a["invited_by"])),
        format!("  created:     {}", time_text(&a["created_ms"])),
        format!("  served by:   {}", joined(&a["served_by"])),
    ]
    .join("\n")
}

/// The unassigned list: one row per contact or group, under its departed
/// employee.
pub fn unassigned_text(v: &Value) -> String {
    let mut rows = Vec::new();
    let mut employees = Vec::new();
    for u in v["unassigned"].as_array().into_iter().flatten() {
        let who = match u["name"].as_str() {
            Some(n) if !n.is_empty() => format!("{} ({n})", s(&u["employee"])),
            _ => s(&u["employee"]),
        };
        employees.push(s(&u["employee"]));
        let departed = time_text(&u["departed_ms"]);
        for c in u["contacts"].as_array().into_iter().flatten() {
            rows.push(vec![
                who.clone(),
                departed.clone(),
                "contact".into(),
                s(&c["userid"]),
                s(&c["name"]),
                s(&c["org"]),
            ]);
        }
        for g in u["groups"].as_array().into_iter().flatten() {
            rows.push(vec![
                who.clone(),
                departed.clone(),
                "group".into(),
                s(&g["id"]),
                s(&g["name"]),
                format!("{} members", s(&g["member_count"])),
            ]);
        }
    }
    if employees.is_empty() {
        return "nothing unassigned".into();
    }
    let mut out = vec![table(
        &[
            "EMPLOYEE",
            "DEPARTED",
            "KIND",
            "ID",
            "NAME",
            "ORG / MEMBERS",
        ],
        &rows,
    )];
    if let Some(m) = more(v) {
        out.push(m);
    }
    out.push(format!(
        "hand over with: enclavectl external transfer --from {} --to USERID --all",
        employees[0]
    ));
    out.join("\n")
}

fn contacts_text(v: &Value) -> String {
    let employee = s(&v["employee"]);
    let contacts: Vec<Vec<String>> = v["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                s(&c["userid"]),
                s(&c["name"]),
                s(&c["org"]),
                time_text(&c["since_ms"]),
                s(&c["previous"]),
                s(&c["conversation"]),
                if c["disabled"] == true {
                    "disabled".into()
                } else {
                    "active".into()
                },
            ]
        })
        .collect();
    let groups: Vec<Vec<String>> = v["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| vec![s(&g["id"]), s(&g["name"]), s(&g["member_count"])])
        .collect();
    let mut out = vec![format!(
        "{employee} serves {} external contact(s) and owns {} customer group(s)",
        contacts.len(),
        groups.len()
    )];
    if !contacts.is_empty() {
        out.push(String::new());
        out.push(table(
            &[
                "USERID",
                "NAME",
                "ORG",
                "SINCE",
                "PREVIOUSLY",
                "CONVERSATION",
                "STATUS",
            ],
            &contacts,
        ));
    }
    if !groups.is_empty() {
        out.push(String::new());
        out.push(table(&["GROUP", "NAME", "MEMBERS"], &groups));
    }
    out.join("\n")
}

fn supervision_text(v: &Value) -> String {
    let mut rows = Vec::new();
    let (mut c, mut g, mut m) = (0u64, 0u64, 0u64);
    for r in v["members"].as_array().into_iter().flatten() {
        c += r["contacts"].as_u64().unwrap_or(0);
        g += r["customer_groups"].as_u64().unwrap_or(0);
        m += r["messages_to_externals"].as_u64().unwrap_or(0);
        rows.push(vec![
            s(&r["userid"]),
            s(&r["name"]),
            s(&r["contacts"]),
            s(&r["customer_groups"]),
            s(&r["messages_to_externals"]),
            if r["departed"] == true {
                "departed".into()
            } else {
                String::new()
            },
        ]);
    }
    let head = format!(
        "department {}, {} to {} (UTC days {}-{})",
        s(&v["department"]),
        day_text(v["from_day"].as_u64().unwrap_or(0)),
        day_text(v["to_day"].as_u64().unwrap_or(0)),
        s(&v["from_day"]),
        s(&v["to_day"]),
    );
    if rows.is_empty() {
        return format!("{head}\nno members");
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        c.to_string(),
        g.to_string(),
        m.to_string(),
        String::new(),
    ]);
    let t = table(
        &[
            "USERID",
            "NAME",
            "CONTACTS",
            "CUSTOMER GROUPS",
            "MESSAGES TO EXTERNALS",
            "",
        ],
        &rows,
    );
    // Trailing spaces of the empty last column.
    let t: Vec<&str> = t.lines().map(str::trim_end).collect();
    format!("{head}\n{}", t.join("\n"))
}

fn explain(key: &str, v: &Value) -> String {
    match (key, v.as_u64()) {
        ("max_contacts_per_employee", Some(n)) => {
            format!("{n} (external contacts plus open invitations)")
        }
        ("max_customer_group_members", Some(n)) => format!("{n} (employees and externals)"),
        ("invitation_ttl_ms", Some(n)) => format!("{n} ({})", duration_text(n)),
        ("transfer_window_ms", Some(0)) => "0 (in-service transfers take effect at once)".into(),
        ("transfer_window_ms", Some(n)) => format!("{n} ({})", duration_text(n)),
        _ => s(v),
    }
}

/// The policy as `key  value` lines, the known keys first.
pub fn policy_text(p: &Value) -> String {
    let Some(obj) = p.as_object() else {
        return p.to_string();
    };
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| {
        (
            POLICY_FLAGS
                .iter()
                .position(|(f, _)| f == k)
                .unwrap_or(POLICY_FLAGS.len()),
            *k,
        )
    });
    keys.iter()
        .map(|k| format!("{k:<28} {}", explain(k, &obj[k.as_str()])))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of `PUT /v1/policy/external`: only the fields given; an error
/// names the flag.
pub fn policy_body(set: &PolicySet) -> anyhow::Result<Value> {
    if *set == PolicySet::default() {
        bail!(
            "nothing to change: give at least one of --max-contacts, --max-group-members, --invitation-ttl, --transfer-window"
        );
    }
    let mut body = json!({});
    if let Some(n) = set.max_contacts {
        if !(1..=100_000).contains(&n) {
            bail!("--max-contacts must be 1-100000 (got {n})");
        }
        body["max_contacts_per_employee"] = json!(n);
    }
    if let Some(n) = set.max_group_members {
        if !(2..=2000).contains(&n) {
            bail!("--max-group-members must be 2-2000 (got {n})");
        }
        body["max_customer_group_members"] = json!(n);
    }
    if let Some(ms) = set.invitation_ttl {
        if !(60_000..=90 * 86_400_000).contains(&ms) {
            bail!(
                "--invitation-ttl must be from 1m to 90d (got {})",
                duration_text(ms)
            );
        }
        body["invitation_ttl_ms"] = json!(ms);
    }
    if let Some(ms) = set.transfer_window {
        if ms > 30 * 86_400_000 {
            bail!(
                "--transfer-window must be at most 30d (got {})",
                duration_text(ms)
            );
        }
        body["transfer_window_ms"] = json!(ms);
    }
    Ok(body)
}

/// `key: old -> new` for every field that differs.
pub fn policy_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (k, _) in POLICY_FLAGS {
        let (o, n) = (&old[*k], &new[*k]);
        if !n.is_null() && o != n {
            out.push(format!("{k}: {} -> {}", explain(k, o), explain(k, n)));
        }
    }
    out
}

/// A refusal of the node, prefixed with the flag whose value it is about.
fn name_flag(e: anyhow::Error, flags: &[(&str, &str)]) -> anyhow::Error {
    let msg = e.to_string();
    for (needle, flag) in flags {
        if !needle.is_empty() && msg.contains(needle) {
            return e.context(format!("{flag} refused"));
        }
    }
    e
}

/// The contact and group lists of `--all`, cut into transfers the node
/// takes (at most [`MAX_TRANSFER_ITEMS`] of each).
pub fn batches(contacts: &[String], groups: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let n = contacts
        .len()
        .div_ceil(MAX_TRANSFER_ITEMS)
        .max(groups.len().div_ceil(MAX_TRANSFER_ITEMS));
    (0..n)
        .map(|i| {
            let part = |l: &[String]| -> Vec<String> {
                l.iter()
                    .skip(i * MAX_TRANSFER_ITEMS)
                    .take(MAX_TRANSFER_ITEMS)
                    .cloned()
                    .collect()
            };
            (part(contacts), part(groups))
        })
        .collect()
}

async fn post_transfer(
    client: &Client,
    body: Value,
    flags: &[(&str, &str)],
) -> anyhow::Result<Value> {
    call(client, Method::POST, "/v1/external/transfers", Some(body))
        .await
        .map_err(|e| name_flag(e, flags))
}

async fn transfer(client: &Client, output: Output, a: TransferArgs) -> anyhow::Result<()> {
    if a.from == a.to {
        bail!("--to must be another employee than --from ({:?})", a.from);
    }
    if a.message.chars().count() > MAX_MESSAGE_CHARS {
        bail!("--message is longer than {MAX_MESSAGE_CHARS} characters");
    }
    if a.message.chars().any(char::is_control) {
        bail!("--message must not contain control characters (newlines, tabs)");
    }
    let from_q = format!("{:?}", a.from);
    let to_q = format!("{:?}", a.to);
    let mut flags: Vec<(String, String)> = Vec::new();
    for x in &a.contacts {
        flags.push((format!("{x:?}"), format!("--contact {x}")));
    }
    for g in &a.groups {
        flags.push((format!("{g:?}"), format!("--group {g}")));
    }
    flags.push((to_q, format!("--to {}", a.to)));
    flags.push((from_q, format!("--from {}", a.from)));
    flags.push(("message must".into(), "--message".into()));
    let flags: Vec<(&str, &str)> = flags
        .iter()
        .map(|(n, f)| (n.as_str(), f.as_str()))
        .collect();
    let post = |externals: Vec<String>, groups: Vec<String>, all: bool| {
        let body = json!({
            "from": a.from, "to": a.to, "externals": externals, "groups": groups,
            "all": all, "message": a.message,
        });
        post_transfer(client, body, &flags)
    };
    if !a.all {
        let t = post(a.contacts.clone(), a.groups.clone(), false).await?;
        return show(&t, output, transfer_text);
    }
    // Everything: one transfer when the node takes it in one, else
    // batches of what --from has now.
    let have = call(
        client,
        Method::GET,
        &with_query("/v1/external/contacts", &[("employee", a.from.clone())]),
        None,
    )
    .await?;
    let contacts: Vec<String> = have["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["userid"].as_str().map(str::to_string))
        .collect();
    let groups: Vec<String> = have["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["id"].as_str().map(str::to_string))
        .collect();
    if contacts.is_empty() && groups.is_empty() {
        bail!(
            "--from {}: no external contacts or customer groups to transfer",
            a.from
        );
    }
    if contacts.len() <= MAX_TRANSFER_ITEMS && groups.len() <= MAX_TRANSFER_ITEMS {
        let t = post(Vec::new(), Vec::new(), true).await?;
        return show(&t, output, transfer_text);
    }
    let mut done: Vec<Value> = Vec::new();
    let parts = batches(&contacts, &groups);
    let total = parts.len();
    for (i, (c, g)) in parts.into_iter().enumerate() {
        match post(c, g, false).await {
            Ok(t) => done.push(t),
            Err(e) => {
                let ids: Vec<String> = done.iter().map(|t| s(&t["id"])).collect();
                return Err(e.context(format!(
                    "transfer {} of {total} failed{}; run the command again for the rest",
                    i + 1,
                    if ids.is_empty() {
                        String::new()
                    } else {
                        format!(" (transfers {} were made)", ids.join(", "))
                    }
                )));
            }
        }
    }
    let v = json!({ "transfers": done });
    show(&v, output, |v| {
        let rows: Vec<Vec<String>> = v["transfers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(transfer_row)
            .collect();
        format!(
            "{} transfers (at most {MAX_TRANSFER_ITEMS} contacts and {MAX_TRANSFER_ITEMS} groups each)\n{}",
            rows.len(),
            table(TRANSFER_HEADER, &rows)
        )
    })
}

async fn set_disabled(
    client: &Client,
    output: Output,
    userid: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let v = call(
        client,
        Method::PUT,
        &format!("/v1/external/accounts/{userid}/disabled"),
        Some(json!({ "disabled": disabled })),
    )
    .await?;
    show(&v, output, |v| {
        format!(
            "{}\n{}",
            if disabled {
                format!("{userid} disabled: cannot log in; their sessions ended")
            } else {
                format!("{userid} enabled: can log in again")
            },
            account_text(v)
        )
    })
}

pub async fn run(cmd: ExternalCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    match cmd {
        ExternalCommand::Unassigned { cursor, limit } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let v = call(
                client,
                Method::GET,
                &with_query("/v1/external/unassigned", &q),
                None,
            )
            .await?;
            show(&v, output, unassigned_text)
        }
        ExternalCommand::Transfer(a) => transfer(client, output, a).await,
        ExternalCommand::Transfers {
            from,
            cursor,
            limit,
        } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(f) = &from {
                q.push(("from", f.clone()));
            }
            if let Some(c) = cursor {
                q.push(("cursor", c.to_string()));
            }
            let v = call(
                client,
                Method::GET,
                &with_query("/v1/external/transfers", &q),
                None,
            )
            .await?;
            show(&v, output, |v| {
                let rows: Vec<Vec<String>> = v["transfers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(transfer_row)
                    .collect();
                if rows.is_empty() {
                    return match &from {
                        Some(f) => format!("no transfers from {f}"),
                        None => "no transfers".into(),
                    };
                }
                let mut out = vec![table(TRANSFER_HEADER, &rows)];
                out.extend(more(v));
                out.join("\n")
            })
        }
        ExternalCommand::TransferShow { id } => {
            let v = call(
                client,
                Method::GET,
                &format!("/v1/external/transfers/{id}"),
                None,
            )
            .await?;
            show(&v, output, transfer_text)
        }
        ExternalCommand::Cancel { id } => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/external/transfers/{id}/cancel"),
                Some(json!({})),
            )
            .await?;
            show(&v, output, |v| {
                format!(
                    "{}\ncancelled: the contacts stay with {} and were told",
                    transfer_text(v),
                    s(&v["from"])
                )
            })
        }
        ExternalCommand::Accounts { cursor, limit } => {
            let mut q = vec![("limit", limit.to_string())];
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let v = call(
                client,
                Method::GET,
                &with_query("/v1/external/accounts", &q),
                None,
            )
            .await?;
            show(&v, output, |v| {
                let rows: Vec<Vec<String>> = v["accounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(account_row)
                    .collect();
                if rows.is_empty() {
                    return "no external accounts".into();
                }
                let mut out = vec![table(ACCOUNT_HEADER, &rows)];
                out.extend(more(v));
                out.join("\n")
            })
        }
        ExternalCommand::Account { userid } => {
            let v = call(
                client,
                Method::GET,
                &format!("/v1/external/accounts/{userid}"),
                None,
            )
            .await?;
            show(&v, output, account_text)
        }
        ExternalCommand::Disable { userid } => set_disabled(client, output, &userid, true).await,
        ExternalCommand::Enable { userid } => set_disabled(client, output, &userid, false).await,
        ExternalCommand::Contacts { employee } => {
            let v = call(
                client,
                Method::GET,
                &with_query("/v1/external/contacts", &[("employee", employee)]),
                None,
            )
            .await?;
            show(&v, output, contacts_text)
        }
        ExternalCommand::Supervision {
            department,
            from_day,
            to_day,
        } => {
            if let (Some(f), Some(t)) = (from_day, to_day) {
                if f > t {
                    bail!(
                        "--from-day ({}) is after --to-day ({})",
                        day_text(f.into()),
                        day_text(t.into())
                    );
                }
                if t - f > 366 {
                    bail!("--from-day and --to-day are more than 366 days apart");
                }
            }
            let mut q = vec![("department", department.to_string())];
            if let Some(f) = from_day {
                q.push(("from_day", f.to_string()));
            }
            if let Some(t) = to_day {
                q.push(("to_day", t.to_string()));
            }
            let v = call(
                client,
                Method::GET,
                &with_query("/v1/external/supervision", &q),
                None,
            )
            .await
            .map_err(|e| {
                name_flag(
                    e,
                    &[
                        ("no department", "--department"),
                        ("from_day", "--from-day/--to-day"),
                    ],
                )
            })?;
            show(&v, output, supervision_text)
        }
        ExternalCommand::Policy { cmd } => {
            let current = call(client, Method::GET, EXTERNAL_POLICY_PATH, None).await?;
            match cmd {
                None | Some(ExternalPolicyCommand::Show) => show(&current, output, policy_text),
                Some(ExternalPolicyCommand::Set(set)) => {
                    let body = policy_body(&set)?;
                    let now = call(client, Method::PUT, EXTERNAL_POLICY_PATH, Some(body))
                        .await
                        .map_err(|e| name_flag(e, POLICY_FLAGS))
                        .context("the policy is unchanged")?;
                    show(&now, output, |p| {
                        let mut lines = policy_changes(&current, p);
                        if lines.is_empty() {
                            lines.push("unchanged".into());
                        }
                        lines.push(String::new());
                        lines.push(policy_text(p));
                        lines.join("\n")
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_days_parse_and_print() {
        assert_eq!(parse_duration_ms("24h"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("5x").is_err());
        assert_eq!(duration_text(7 * 86_400_000), "7d");
        assert_eq!(duration_text(90 * 60_000), "90m");
        assert_eq!(duration_text(1500), "1500ms");
        assert_eq!(parse_day("1970-01-02"), Ok(1));
        assert_eq!(parse_day("20425"), Ok(20425));
        assert_eq!(day_text(20425), "2025-12-03");
        assert_eq!(parse_day("2025-12-03"), Ok(20425));
        assert!(parse_day("2025-13-01").is_err());
        assert!(parse_day("1969-12-31").is_err());
        assert_eq!(time_text(&json!(0)), "-");
        assert_eq!(time_text(&json!(86_400_123)), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn policy_body_has_only_the_fields_given_and_names_the_flag() {
        let b = policy_body(&PolicySet {
            transfer_window: Some(3_600_000),
            ..Default::default()
        })
        .expect("body");
        assert_eq!(b, json!({ "transfer_window_ms": 3_600_000 }));
        assert!(
            policy_body(&PolicySet::default())
                .expect_err("nothing")
                .to_string()
                .contains("nothing to change")
        );
        for (set, flag) in [
            (
                PolicySet {
                    max_contacts: Some(0),
                    ..Default::default()
                },
                "--max-contacts",
            ),
            (
                PolicySet {
                    max_group_members: Some(1),
                    ..Default::default()
                },
                "--max-group-members",
            ),
            (
                PolicySet {
                    invitation_ttl: Some(1000),
                    ..Default::default()
                },
                "--invitation-ttl",
            ),
            (
                PolicySet {
                    transfer_window: Some(31 * 86_400_000),
                    ..Default::default()
                },
                "--transfer-window",
            ),
        ] {
            let e = policy_body(&set).expect_err("refused").to_string();
            assert!(e.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn policy_text_and_changes_read_like_the_units() {
        let old = json!({
            "max_contacts_per_employee": 2000,
            "max_customer_group_members": 500,
            "invitation_ttl_ms": 604_800_000u64,
            "transfer_window_ms": 86_400_000u64,
        });
        let t = policy_text(&old);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "max_contacts_per_employee    2000 (external contacts plus open invitations)"
        );
        assert_eq!(lines[2], "invitation_ttl_ms            604800000 (7d)");
        assert_eq!(lines[3], "transfer_window_ms           86400000 (24h)");
        let mut new = old.clone();
        new["transfer_window_ms"] = json!(0);
        assert_eq!(
            policy_changes(&old, &new),
            ["transfer_window_ms: 86400000 (24h) -> 0 (in-service transfers take effect at once)"]
        );
    }

    #[test]
    fn tables_align_wide_characters() {
        let t = table(
            &["ID", "NAME", "ORG"],
            &[
                vec!["a".into(), "王五".into(), "x".into()],
                vec!["bbbb".into(), "Li".into(), "y".into()],
            ],
        );
        assert_eq!(t, "ID    NAME  ORG\na     王五  x\nbbbb  Li    y");
    }

    #[test]
    fn all_is_cut_into_transfers_the_node_takes() {
        let c: Vec<String> = (0..250).map(|i| format!("x{i}")).collect();
        let g: Vec<String> = (0..3).map(|i| format!("g{i}")).collect();
        let b = batches(&c, &g);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.iter()
                .map(|(c, g)| (c.len(), g.len()))
                .collect::<Vec<_>>(),
            [(100, 3), (100, 0), (50, 0)]
        );
        assert_eq!(b[2].0[0], "x200");
        assert!(batches(&[], &[]).is_empty());
    }

    #[test]
    fn refusals_name_the_flag() {
        let e = name_flag(
            anyhow::anyhow!("POST /v1/external/transfers: HTTP 404: not_found: no employee \"zz\""),
            &[("\"zz\"", "--to zz")],
        );
        assert!(format!("{e:#}").starts_with("--to zz refused: "), "{e:#}");
        let e = name_flag(anyhow::anyhow!("other"), &[("\"zz\"", "--to zz")]);
        assert_eq!(format!("{e:#}"), "other");
    }

    #[test]
    fn unassigned_rows_per_contact_and_group() {
        let v = json!({"unassigned": [{
            "employee": "lisi", "name": "李四", "departed_ms": 86_400_000u64,
            "contacts": [{"userid": "wang.wu", "name": "王五", "org": "华东钢铁"}],
            "groups": [{"id": "c_1", "name": "客户群", "member_count": 3}],
        }], "next_cursor": null});
        let t = unassigned_text(&v);
        assert!(
            t.contains("lisi (李四)  1970-01-02T00:00:00Z  contact  wang.wu"),
            "{t}"
        );
        assert!(t.contains("group    c_1"), "{t}");
        assert!(t.contains("3 members"), "{t}");
        assert!(t.ends_with("--from lisi --to USERID --all"), "{t}");
        assert_eq!(
            unassigned_text(&json!({"unassigned": [], "next_cursor": null})),
            "nothing unassigned"
        );
    }
}
