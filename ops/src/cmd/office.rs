//! `enclavectl announcement` and `enclavectl approval`: announcements
//! with their read statistics (list, show, readers, CSV export, withdraw)
//! and approvals (templates from a JSON file, enable/disable, a request
//! with its trail, CSV export of finished approvals).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::Output;
use super::directory::{call, page, show};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum AnnouncementCommand {
    /// Every announcement, newest first, with read counts (sysadmin,
    /// auditor).
    List {
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One announcement with its body and statistics.
    Show { id: u64 },
    /// Its readers by state: all, read, unread (in the audience, not yet
    /// read), late (joined later and read it).
    Readers {
        id: u64,
        #[arg(long, default_value = "unread")]
        state: String,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Every reader as CSV (userid, name, departments, state, read_at).
    Export {
        id: u64,
        /// Write here (refuses to overwrite); default: standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Withdraw it (sysadmin): it leaves every list.
    Withdraw { id: u64 },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// Approval templates (sysadmin defines them).
    #[command(subcommand)]
    Template(TemplateCommand),
    /// One request with its values and full trail.
    Show { id: u64 },
    /// Finished approvals as CSV (sysadmin), oldest first.
    Export {
        /// Finished at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Finished at or before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Only this template.
        #[arg(long)]
        template: Option<String>,
        /// Write here (refuses to overwrite); default: standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Every template, disabled ones too.
    List,
    /// Create or replace a template from a JSON file:
    /// `{"name", "fields": [{"key", "label", "type", "required", "options"}],
    /// "flow": [{"leaders": K} | {"user": ID} | {"any_of": [IDs]}], "cc": [IDs]}`.
    Put {
        id: String,
        file: PathBuf,
    },
    /// No new requests against it; those filed go on.
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
}

fn announcement_line(a: &Value) -> String {
    let c = &a["counts"];
    format!(
        "{}  {:?} from {}  audience={} read={} unread={} late={}{}{}",
        a["id"],
        a["title"].as_str().unwrap_or_default(),
        a["sender"].as_str().unwrap_or_default(),
        c["audience"],
        c["read"],
        c["unread"],
        c["late_read"],
        if a["pinned"] == true { "  PINNED" } else { "" },
        if a["withdrawn"] == true {
            "  WITHDRAWN"
        } else {
            ""
        }
    )
}

fn runs_text(runs: &Value) -> String {
    runs.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let t = r["text"].as_str().unwrap_or_default();
            match (r["bold"] == true, r["link"].as_str()) {
                (_, Some(l)) => format!("{t} <{l}>"),
                (true, None) => format!("*{t}*"),
                (false, None) => t.to_string(),
            }
        })
        .collect()
}

/// The body as plain text for a terminal.
fn body_text(body: &Value) -> String {
    let mut out = Vec::new();
    for b in body.as_array().into_iter().flatten() {
        if let Some(runs) = b.get("paragraph") {
            out.push(runs_text(runs));
        }
        for (key, numbered) in [("bullets", false), ("numbered", true)] {
            if let Some(items) = b.get(key).and_then(Value::as_array) {
                for (i, item) in items.iter().enumerate() {
                    let mark = if numbered {
                        format!("{}.", i + 1)
                    } else {
                        "-".into()
                    };
                    out.push(format!("  {mark} {}", runs_text(item)));
                }
            }
        }
    }
    out.join("\n")
}

async fn raw_get(client: &Client, path: &str) -> anyhow::Result<Vec<u8>> {
    let (status, bytes) = client.request(Method::GET, path, None).await?;
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        bail!(
            "GET {path}: {status} {}",
            v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())
        );
    }
    Ok(bytes.to_vec())
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    match out {
        Some(p) => {
            if p.exists() {
                bail!("{} exists; not overwriting it", p.display());
            }
            std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {} ({} bytes)", p.display(), bytes.len());
        }
        None => std::io::stdout().write_all(bytes)?,
    }
    Ok(())
}

fn millis(flag: &str, t: &str) -> anyhow::Result<u64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{flag} {t:?}: expected RFC 3339, e.g. 2026-12-01T00:00:00Z"))?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .with_context(|| format!("{flag} {t:?} is before 1970"))
}

pub async fn run_announcement(
    cmd: AnnouncementCommand,
    client: &Client,
    output: Output,
) -> anyhow::Result<()> {
    match cmd {
        AnnouncementCommand::List { cursor, limit } => {
            let cursor = cursor.map(|c| c.to_string());
            page(
                client,
                output,
                "/v1/announcements",
                &[],
                limit,
                cursor,
                "announcements",
                "no announcements",
                announcement_line,
            )
            .await
        }
        AnnouncementCommand::Show { id } => {
            let v = call(
                client,
                Method::GET,
                &format!("/v1/announcements/{id}"),
                None,
            )
            .await?;
            show(&v, output, |v| {
                let mut s = format!("{}\n{}", announcement_line(v), body_text(&v["body"]));
                if let Some(a) = v["attachment"].as_object() {
                    s.push_str(&format!(
                        "\nattachment: {} <{}>",
                        a["name"].as_str().unwrap_or_default(),
                        a["url"].as_str().unwrap_or_default()
                    ));
                }
                s
            })
        }
        AnnouncementCommand::Readers {
            id,
            state,
            cursor,
            limit,
        } => {
            page(
                client,
                output,
                &format!("/v1/announcements/{id}/readers"),
                &[("state", &state)],
                limit,
                cursor,
                "readers",
                &format!("nobody is {state}"),
                |r| {
                    format!(
                        "{}  {}  read_ms={}{}",
                        r["userid"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default(),
                        r["read_ms"],
                        if r["late"] == true { "  late" } else { "" }
                    )
                },
            )
            .await
        }
        AnnouncementCommand::Export { id, out } => {
            let bytes = raw_get(client, &format!("/v1/announcements/{id}/readers.csv")).await?;
            write_out(out.as_deref(), &bytes)
        }
        AnnouncementCommand::Withdraw { id } => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/announcements/{id}/withdraw"),
                None,
            )
            .await?;
            show(&v, output, |v| {
                format!("withdrawn: {}", announcement_line(v))
            })
        }
    }
}

fn template_line(t: &Value) -> String {
    let fields: Vec<String> = t["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{}:{}{}",
                f["key"].as_str().unwrap_or_default(),
                f["type"].as_str().unwrap_or_default(),
                if f["required"] == true { "*" } else { "" }
            )
        })
        .collect();
    format!(
        "{}  {:?}  v{}  fields=[{}]  flow={}  cc={}{}",
        t["id"].as_str().unwrap_or_default(),
        t["name"].as_str().unwrap_or_default(),
        t["version"],
        fields.join(" "),
        t["flow"],
        t["cc"],
        if t["disabled"] == true {
            "  DISABLED"
        } else {
            ""
        }
    )
}

pub async fn run_approval(
    cmd: ApprovalCommand,
    client: &Client,
    output: Output,
) -> anyhow::Result<()> {
    match cmd {
        ApprovalCommand::Template(TemplateCommand::List) => {
            let v = call(client, Method::GET, "/v1/approvals/templates", None).await?;
            show(&v, output, |v| {
                let out: Vec<String> = v["templates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(template_line)
                    .collect();
                if out.is_empty() {
                    "no templates".into()
                } else {
                    out.join("\n")
                }
            })
        }
        ApprovalCommand::Template(TemplateCommand::Put { id, file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            let v = call(
                client,
                Method::PUT,
                &format!("/v1/approvals/templates/{id}"),
                Some(body),
            )
            .await?;
            show(&v, output, template_line)
        }
        ApprovalCommand::Template(TemplateCommand::Disable { id }) => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/approvals/templates/{id}/disable"),
                None,
            )
            .await?;
            show(&v, output, template_line)
        }
        ApprovalCommand::Template(TemplateCommand::Enable { id }) => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/approvals/templates/{id}/enable"),
                None,
            )
            .await?;
            show(&v, output, template_line)
        }
        ApprovalCommand::Show { id } => {
            let v = call(client, Method::GET, &format!("/v1/approvals/{id}"), None).await?;
            show(&v, output, |v| {
                let mut out = vec![format!(
                    "{}  {}  by {} ({})  status={}  step {} of {}",
                    v["id"],
                    v["template_name"].as_str().unwrap_or_default(),
                    v["applicant"].as_str().unwrap_or_default(),
                    v["applicant_name"].as_str().unwrap_or_default(),
                    v["status"].as_str().unwrap_or_default(),
                    v["step"],
                    v["steps"].as_array().map_or(0, Vec::len)
                )];
                for f in v["values"].as_array().into_iter().flatten() {
                    out.push(format!(
                        "  {}: {}",
                        f["label"].as_str().unwrap_or_default(),
                        f["value"].as_str().unwrap_or_default()
                    ));
                }
                for t in v["trail"].as_array().into_iter().flatten() {
                    let extra = ["reason", "comment", "text", "why"]
                        .iter()
                        .filter_map(|k| t[*k].as_str().filter(|s| !s.is_empty()))
                        .collect::<Vec<_>>()
                        .join("; ");
                    out.push(format!(
                        "  [{}] step {} {} {}{}{}",
                        t["time_ms"],
                        t["step"],
                        t["actor"].as_str().unwrap_or_default(),
                        t["action"].as_str().unwrap_or_default(),
                        t.get("approvers")
                            .or(t.get("to"))
                            .map(|a| format!(" -> {a}"))
                            .unwrap_or_default(),
                        if extra.is_empty() {
                            String::new()
                        } else {
                            format!(" ({extra})")
                        }
                    ));
                }
                out.join("\n")
            })
        }
        ApprovalCommand::Export {
            from,
            to,
            template,
            out,
        } => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(f) = &from {
                q.append_pair("from_ms", &millis("--from", f)?.to_string());
            }
            if let Some(t) = &to {
                q.append_pair("to_ms", &millis("--to", t)?.to_string());
            }
            if let Some(t) = &template {
                q.append_pair("template", t);
            }
            let bytes =
                raw_get(client, &format!("/v1/approvals/export.csv?{}", q.finish())).await?;
            write_out(out.as_deref(), &bytes)
        }
    }
}
