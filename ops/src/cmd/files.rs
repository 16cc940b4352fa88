//! `enclavectl files policy ...`: the replicated file policy (secadmin):
//! the largest file, each member's quota, which types may be uploaded,
//! how long files are kept, and when files no message refers to go.
//!
//! `set` reads the current policy, changes only the fields given and
//! writes the whole object back.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::Output;
use super::blobs::human_bytes;
use super::directory::{call, show};
use crate::client::Client;

/// The file policy on the admin port.
pub const FILES_POLICY_PATH: &str = "/v1/policy/files";

/// The types the node sorts uploads into (by their content, never by the
/// name or the client's word).
pub const FILE_TYPES: &[&str] = &[
    "image",
    "audio",
    "video",
    "document",
    "text",
    "archive",
    "other",
    "executable",
];

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// The file policy: show (operators), set (secadmin).
    #[command(subcommand)]
    Policy(FilesPolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum FilesPolicyCommand {
    /// Show the file policy.
    Show,
    /// Change the fields given; the others keep their current values.
    Set(PolicySet),
}

#[derive(Debug, Args, Default, Clone, PartialEq, Eq)]
pub struct PolicySet {
    /// Largest file a member may upload, in MiB.
    #[arg(long, value_name = "MIB")]
    pub max_file_mib: Option<u64>,
    /// Total size of the files each member has uploaded, in GiB.
    #[arg(long, value_name = "GIB")]
    pub quota_gib: Option<u64>,
    /// The types that may be uploaded, comma-separated (replaces the list):
    /// image, audio, video, document, text, archive, other, executable.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub allow: Option<Vec<String>>,
    /// Delete files this many days after upload; 0 keeps them forever.
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u64>,
    /// Delete an uploaded file no message or announcement refers to after
    /// this many hours.
    #[arg(long, value_name = "HOURS")]
    pub unreferenced_hours: Option<u64>,
}

/// `current` with the fields of `set` replaced; an error names the flag.
pub fn merge(current: &Value, set: &PolicySet) -> anyhow::Result<Value> {
    if *set == PolicySet::default() {
        bail!(
            "nothing to change: give at least one of --max-file-mib, --quota-gib, --allow, --retention-days, --unreferenced-hours"
        );
    }
    let Some(obj) = current.as_object() else {
        bail!("the node answered a policy that is not a JSON object: {current}");
    };
    let mut out = Value::Object(obj.clone());
    if let Some(m) = set.max_file_mib {
        if m == 0 {
            bail!("--max-file-mib must be at least 1");
        }
        out["max_file_bytes"] = json!(m.checked_mul(MIB).context("--max-file-mib is too large")?);
    }
    if let Some(g) = set.quota_gib {
        if g == 0 {
            bail!("--quota-gib must be at least 1");
        }
        out["user_quota_bytes"] = json!(g.checked_mul(GIB).context("--quota-gib is too large")?);
    }
    if let Some(types) = &set.allow {
        let mut list: Vec<String> = Vec::new();
        for t in types {
            let t = t.trim().to_ascii_lowercase();
            if t.is_empty() {
                continue;
            }
            if !FILE_TYPES.contains(&t.as_str()) {
                bail!(
                    "--allow: unknown type {t:?} (known: {})",
                    FILE_TYPES.join(", ")
                );
            }
            if !list.contains(&t) {
                list.push(t);
            }
        }
        if list.is_empty() {
            bail!(
                "--allow needs at least one type ({})",
                FILE_TYPES.join(", ")
            );
        }
        out["allowed_types"] = json!(list);
    }
    if let Some(d) = set.retention_days {
        out["retention_days"] = json!(d);
    }
    if let Some(h) = set.unreferenced_hours {
        if h == 0 {
            bail!("--unreferenced-hours must be at least 1");
        }
        out["unreferenced_hours"] = json!(h);
    }
    Ok(out)
}

/// How a policy value reads to a person.
fn explain(key: &str, v: &Value) -> String {
    match (key, v) {
        ("max_file_bytes" | "user_quota_bytes", Value::Number(n)) => match n.as_u64() {
            Some(b) => format!("{b} ({})", human_bytes(b)),
            None => n.to_string(),
        },
        ("allowed_types", Value::Array(a)) => {
            let list: Vec<String> = a
                .iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                .collect();
            if list.is_empty() {
                "none (no uploads)".into()
            } else {
                list.join(", ")
            }
        }
        ("retention_days", Value::Number(n)) if n.as_u64() == Some(0) => "0 (keep forever)".into(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The policy as `key  value` lines, the known keys first.
pub fn policy_text(p: &Value) -> String {
    let order = [
        "max_file_bytes",
        "user_quota_bytes",
        "allowed_types",
        "retention_days",
        "unreferenced_hours",
    ];
    let Some(obj) = p.as_object() else {
        return p.to_string();
    };
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| (order.iter().position(|o| o == k).unwrap_or(order.len()), *k));
    keys.iter()
        .map(|k| format!("{k:<20} {}", explain(k, &obj[k.as_str()])))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key: old -> new` for every field that differs.
pub fn changes(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (k, n) in new.as_object().into_iter().flatten() {
        let o = &old[k.as_str()];
        if o != n {
            out.push(format!("{k}: {} -> {}", explain(k, o), explain(k, n)));
        }
    }
    out
}

pub async fn run(cmd: FilesCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    let FilesCommand::Policy(cmd) = cmd;
    let current = call(client, Method::GET, FILES_POLICY_PATH, None).await?;
    match cmd {
        FilesPolicyCommand::Show => show(&current, output, policy_text),
        FilesPolicyCommand::Set(set) => {
            let wanted = merge(&current, &set)?;
            if wanted == current {
                return show(&current, output, |p| {
                    format!("unchanged\n{}", policy_text(p))
                });
            }
            let answer = call(client, Method::PUT, FILES_POLICY_PATH, Some(wanted.clone())).await?;
            // Nodes answer with the policy now in force; an empty answer
            // means the one we sent.
            let now = if answer.is_object() { answer } else { wanted };
            show(&now, output, |p| {
                let mut lines = changes(&current, p);
                lines.push(String::new());
                lines.push(policy_text(p));
                lines.join("\n")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> Value {
        json!({
            "max_file_bytes": 100 * MIB,
            "user_quota_bytes": 10 * GIB,
            "allowed_types": ["image", "audio", "video", "document", "text", "archive", "other"],
            "retention_days": 0,
            "unreferenced_hours": 24
        })
    }

    #[test]
    fn merge_changes_only_the_fields_given() {
        let set = PolicySet {
            max_file_mib: Some(200),
            retention_days: Some(365),
            ..Default::default()
        };
        let m = merge(&current(), &set).expect("merges");
        assert_eq!(m["max_file_bytes"], json!(200 * MIB));
        assert_eq!(m["retention_days"], json!(365));
        assert_eq!(m["user_quota_bytes"], json!(10 * GIB));
        assert_eq!(m["allowed_types"], current()["allowed_types"]);
        assert_eq!(m["unreferenced_hours"], json!(24));
    }

    #[test]
    fn merge_keeps_fields_it_does_not_know() {
        let mut c = current();
        c["scanner"] = json!("clamd");
        let m = merge(
            &c,
            &PolicySet {
                quota_gib: Some(2),
                ..Default::default()
            },
        )
        .expect("merges");
        assert_eq!(m["scanner"], json!("clamd"));
        assert_eq!(m["user_quota_bytes"], json!(2 * GIB));
    }

    #[test]
    fn allow_replaces_the_list_normalized_and_checked() {
        let set = PolicySet {
            allow: Some(vec![
                "Image".into(),
                " document".into(),
                "image".into(),
                "".into(),
            ]),
            ..Default::default()
        };
        let m = merge(&current(), &set).expect("merges");
        assert_eq!(m["allowed_types"], json!(["image", "document"]));

        let bad = PolicySet {
            allow: Some(vec!["images".into()]),
            ..Default::default()
        };
        let e = merge(&current(), &bad).expect_err("refused").to_string();
        assert!(e.contains("unknown type \"images\""), "{e}");
        let empty = PolicySet {
            allow: Some(vec!["".into()]),
            ..Default::default()
        };
        assert!(merge(&current(), &empty).is_err());
    }

    #[test]
    fn merge_refuses_nothing_zero_and_overflow() {
        assert!(
            merge(&current(), &PolicySet::default())
                .expect_err("refused")
                .to_string()
                .contains("nothing to change")
        );
        for set in [
            PolicySet {
                max_file_mib: Some(0),
                ..Default::default()
            },
            PolicySet {
                quota_gib: Some(u64::MAX),
                ..Default::default()
            },
            PolicySet {
                unreferenced_hours: Some(0),
                ..Default::default()
            },
        ] {
            assert!(merge(&current(), &set).is_err(), "{set:?}");
        }
        // retention 0 means keep forever: allowed.
        let keep = PolicySet {
            retention_days: Some(0),
            ..Default::default()
        };
        assert_eq!(
            merge(&current(), &keep).expect("merges")["retention_days"],
            0
        );
        assert!(merge(&json!(null), &keep).is_err());
    }

    #[test]
    fn text_shows_known_keys_first_in_human_units() {
        let mut p = current();
        p["zz_extra"] = json!(true);
        let t = policy_text(&p);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "max_file_bytes       104857600 (100.0 MiB)");
        assert_eq!(lines[1], "user_quota_bytes     10737418240 (10.0 GiB)");
        assert_eq!(
            lines[2],
            "allowed_types        image, audio, video, document, text, archive, other"
        );
        assert_eq!(lines[3], "retention_days       0 (keep forever)");
        assert_eq!(lines[4], "unreferenced_hours   24");
        assert_eq!(lines[5], "zz_extra             true");
    }

    #[test]
    fn changes_lists_what_differs() {
        let new = merge(
            &current(),
            &PolicySet {
                max_file_mib: Some(50),
                allow: Some(vec!["image".into()]),
                ..Default::default()
            },
        )
        .expect("merges");
        assert_eq!(
            changes(&current(), &new),
            [
                "allowed_types: image, audio, video, document, text, archive, other -> image",
                "max_file_bytes: 104857600 (100.0 MiB) -> 52428800 (50.0 MiB)",
            ]
        );
    }
}
