//! `enclavectl notice`: urgent notices as operators see them — list,
//! show (counts and schedule), recipients by state, withdraw (sysadmin).

use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::Output;
use super::directory::{call, page, show};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum NoticeCommand {
    /// Every notice, newest first (sysadmin, auditor).
    List {
        #[arg(long)]
        cursor: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One notice: body, counts, phase, next step.
    Show { id: u64 },
    /// Its recipients by state: all, unacked, acked, read, unread,
    /// reminded, escalated.
    Recipients {
        id: u64,
        #[arg(long, default_value = "unacked")]
        state: String,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Withdraw it (sysadmin): no more reminders; every recipient is told.
    Withdraw { id: u64 },
}

fn line(n: &Value) -> String {
    let c = &n["counts"];
    format!(
        "{}  {:?} from {}  phase={}  recipients={} delivered={} read={} acked={} reminded={} escalated={}{}",
        n["id"],
        n["title"].as_str().unwrap_or_default(),
        n["sender"].as_str().unwrap_or_default(),
        n["phase"].as_str().unwrap_or_default(),
        c["recipients"],
        c["delivered"],
        c["read"],
        c["acked"],
        c["reminded"],
        c["escalated"],
        if n["withdrawn"] == true {
            "  WITHDRAWN"
        } else {
            ""
        }
    )
}

pub async fn run(cmd: NoticeCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    match cmd {
        NoticeCommand::List { cursor, limit } => {
            let cursor = cursor.map(|c| c.to_string());
            page(
                client,
                output,
                "/v1/notices",
                &[],
                limit,
                cursor,
                "notices",
                "no notices",
                line,
            )
            .await
        }
        NoticeCommand::Show { id } => {
            let v = call(client, Method::GET, &format!("/v1/notices/{id}"), None).await?;
            show(&v, output, |v| {
                format!(
                    "{}\n  rounds done: {} of at most {}  next step due (ms): {}  deadline (ms): {}\n  {}",
                    line(v),
                    v["rounds_done"],
                    v["max_rounds"],
                    v["next_due_ms"],
                    v["deadline_ms"],
                    v["body"].as_str().unwrap_or_default()
                )
            })
        }
        NoticeCommand::Recipients {
            id,
            state,
            cursor,
            limit,
        } => {
            page(
                client,
                output,
                &format!("/v1/notices/{id}/recipients"),
                &[("state", &state)],
                limit,
                cursor,
                "recipients",
                &format!("nobody is {state}"),
                |r| {
                    format!(
                        "{}  delivered={} read={} acked={} reminded={} escalated={}",
                        r["userid"].as_str().unwrap_or_default(),
                        r["delivered_ms"],
                        r["read_ms"],
                        r["acked_ms"],
                        r["reminded"],
                        r["escalated"]
                    )
                },
            )
            .await
        }
        NoticeCommand::Withdraw { id } => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/notices/{id}/withdraw"),
                None,
            )
            .await?;
            show(&v, output, |v| format!("withdrawn: {}", line(v)))
        }
    }
}
