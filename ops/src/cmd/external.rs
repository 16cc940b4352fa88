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
use super::external_view::*;
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
pub(crate) const POLICY_FLAGS: &[(&str, &str)] = &[
    ("max_contacts_per_employee", "--max-contacts"),
    ("max_customer_group_members", "--max-group-members"),
    ("invitation_ttl_ms", "--invitation-ttl"),
    ("transfer_window_ms", "--transfer-window"),
];

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
