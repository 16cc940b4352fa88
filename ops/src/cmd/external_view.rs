//! How `enclavectl external` shows what the admin port answers: tables
//! that line up with Chinese names, times, durations and days, and the
//! parsing of the flags that take them.

use anyhow::bail;
use serde_json::{Value, json};

use super::external::{POLICY_FLAGS, PolicySet};

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
pub(crate) fn width(s: &str) -> usize {
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

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(crate) fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
        .collect()
}

pub(crate) fn joined(v: &Value) -> String {
    let l = list(v);
    if l.is_empty() {
        "-".into()
    } else {
        l.join(", ")
    }
}

pub(crate) fn more(v: &Value) -> Option<String> {
    match &v["next_cursor"] {
        Value::String(c) => Some(format!("more: --cursor {c}")),
        Value::Number(c) => Some(format!("more: --cursor {c}")),
        _ => None,
    }
}

pub(crate) fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

/// `Transfer` as one line of the transfers table.
pub(crate) fn transfer_row(t: &Value) -> Vec<String> {
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

pub(crate) const TRANSFER_HEADER: &[&str] = &[
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

pub(crate) fn account_row(a: &Value) -> Vec<String> {
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

pub(crate) const ACCOUNT_HEADER: &[&str] = &[
    "USERID",
    "NAME",
    "ORG",
    "SERVED BY",
    "INVITED BY",
    "CREATED",
    "STATUS",
];

pub(crate) fn account_text(a: &Value) -> String {
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

pub(crate) fn contacts_text(v: &Value) -> String {
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

pub(crate) fn supervision_text(v: &Value) -> String {
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

pub(crate) fn explain(key: &str, v: &Value) -> String {
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
