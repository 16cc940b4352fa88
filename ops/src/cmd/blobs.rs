//! `enclavectl blobs ...`: the replicated blob store that holds files,
//! images and voice notes (chunks under each node's `<data_dir>/blobs`).
//!
//! `status` asks every member's admin port for its own store (a table, one
//! row per node); `verify` starts a scrub on the node at `--endpoint` (or,
//! with `--all`, on every member, one node after another), follows it with
//! a progress line and fails when a chunk could not be repaired.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::Client;

/// This node's blob store (any operator role).
pub const BLOBS_PATH: &str = "/v1/blobs";
/// Start (POST, sysadmin) or follow (GET) a scrub of this node's chunks.
pub const VERIFY_PATH: &str = "/v1/blobs/verify";

#[derive(Debug, Subcommand)]
pub enum BlobsCommand {
    /// Every member's blob store: files recorded, chunks and bytes on its
    /// disk, chunks missing at the last check, repairs so far.
    Status,
    /// Re-hash every chunk on the node at --endpoint and repair damaged or
    /// missing ones from peers (sysadmin); fails if any stays unrepairable.
    Verify {
        /// Every member of the cluster, one node after another.
        #[arg(long)]
        all: bool,
        /// Give up following a scrub after this long, e.g. 30m, 2h.
        #[arg(long, default_value = "6h")]
        timeout: String,
    },
}

/// A member of the cluster as enclavectl reaches it.
#[derive(Debug, Clone)]
pub(crate) struct NodeAddr {
    pub name: String,
    /// `host:port` of its client API (may be empty).
    pub api: String,
    /// `host:port` of its admin port (may be empty).
    pub admin: String,
    pub leader: bool,
    /// The node at `--endpoint`.
    pub this: bool,
}

/// Every voter and learner, as the node at `--endpoint` knows them.
/// Empty when the node is not part of an initialized cluster.
pub(crate) async fn members(admin: &Client) -> anyhow::Result<Vec<NodeAddr>> {
    let status: Value = admin.get_json("/v1/cluster/status").await?;
    Ok(members_of(&status))
}

pub(crate) fn members_of(status: &Value) -> Vec<NodeAddr> {
    let leader = status["leader"].as_str().unwrap_or_default();
    let me = status["this_node"]["name"].as_str().unwrap_or_default();
    let mut out: Vec<NodeAddr> = Vec::new();
    for key in ["voters", "learners"] {
        for pair in status["this_node"][key].as_array().into_iter().flatten() {
            let m = &pair[1];
            let Some(name) = m["name"].as_str() else {
                continue;
            };
            if out.iter().any(|n| n.name == name) {
                continue;
            }
            out.push(NodeAddr {
                name: name.to_string(),
                api: m["api"].as_str().unwrap_or_default().to_string(),
                admin: m["admin"].as_str().unwrap_or_default().to_string(),
                leader: !leader.is_empty() && name == leader,
                this: name == me,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Clients for the admin port of every member: the `--endpoint` client for
/// the node it points at, one from `cert_dir` for the others. A node that
/// is not in a cluster yet is just itself.
async fn admin_clients(
    client: &Client,
    cert_dir: &Path,
) -> anyhow::Result<Vec<(String, Result<Client, String>)>> {
    let nodes = match members(client).await {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => return Ok(vec![(String::from("-"), Ok(client.clone()))]),
        Err(e) => bail!("listing the members: {e}"),
    };
    let mut out = Vec::new();
    for n in nodes {
        let c = if n.this {
            Ok(client.clone())
        } else if n.admin.is_empty() {
            Err("no admin address recorded for it (cluster add --admin HOST:PORT)".to_string())
        } else {
            Client::with_cert_dir(&format!("https://{}", n.admin), cert_dir)
                .map_err(|e| e.to_string())
        };
        out.push((n.name, c));
    }
    Ok(out)
}

/// `1.5 GiB`, `312 B`.
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `blobs status` table.
pub(crate) fn status_table(rows: &[Value]) -> String {
    let mut out = vec![format!(
        "{:<16} {:>8} {:>9} {:>11} {:>8} {:>9} {:>8}",
        "NODE", "FILES", "CHUNKS", "BYTES", "MISSING", "REPAIRED", "DAMAGED"
    )];
    for r in rows {
        let name = r["node"].as_str().unwrap_or("-");
        if let Some(e) = r["error"].as_str() {
            out.push(format!("{name:<16} unreachable: {e}"));
            continue;
        }
        out.push(format!(
            "{:<16} {:>8} {:>9} {:>11} {:>8} {:>9} {:>8}",
            name,
            num(&r["blobs"]),
            num(&r["chunks"]),
            r["bytes"].as_u64().map_or("-".into(), human_bytes),
            num(&r["missing"]),
            num(&r["repaired_total"]),
            num(&r["damaged_total"]),
        ));
    }
    out.join("\n")
}

pub async fn run(
    cmd: BlobsCommand,
    client: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    match cmd {
        BlobsCommand::Status => status(client, cert_dir, output).await,
        BlobsCommand::Verify { all, timeout } => {
            let secs = super::cluster::parse_duration(&timeout)?;
            if secs == 0 {
                bail!("--timeout must be at least 1s");
            }
            verify(client, cert_dir, all, Duration::from_secs(secs), output).await
        }
    }
}

async fn status(client: &Client, cert_dir: &Path, output: Output) -> anyhow::Result<()> {
    let nodes = admin_clients(client, cert_dir).await?;
    let mut handles = Vec::new();
    for (name, c) in nodes {
        handles.push(tokio::spawn(async move {
            let r = match c {
                Ok(c) => c
                    .get_json::<Value>(BLOBS_PATH)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match r {
                Ok(mut v) => {
                    if v["node"].is_null() {
                        v["node"] = json!(name);
                    }
                    v
                }
                Err(e) => json!({ "node": name, "error": e }),
            }
        }));
    }
    let mut rows = Vec::new();
    for h in handles {
        rows.push(h.await?);
    }
    if output == Output::Json {
        return print_json(&json!({ "nodes": rows }));
    }
    println!("{}", status_table(&rows));
    if rows.iter().any(|r| r["missing"].as_u64().unwrap_or(0) > 0) {
        println!(
            "Missing chunks are fetched from peers in the background; `enclavectl blobs verify` checks and repairs one node now."
        );
    }
    Ok(())
}

/// One line of scrub progress.
pub(crate) fn progress_line(name: &str, v: &Value) -> String {
    let total = v["total"].as_u64().unwrap_or(0);
    let checked = v["checked"].as_u64().unwrap_or(0);
    // The count covers the chunk files re-hashed; missing chunks are
    // fetched at the end, so a finished scrub is 100%.
    let pct = if v["running"] == false {
        100
    } else {
        (checked.min(total) * 100).checked_div(total).unwrap_or(0) as usize
    };
    format!(
        "{name}: [{:<25}] {pct:>3}%  {checked}/{total} chunks  ok {}  repaired {}  unrepairable {}",
        "#".repeat(pct / 4),
        v["ok"].as_u64().unwrap_or(0),
        v["repaired"].as_u64().unwrap_or(0),
        v["unrepairable"].as_u64().unwrap_or(0),
    )
}

/// The summary of a finished scrub.
pub(crate) fn summary_line(name: &str, v: &Value) -> String {
    let secs = match (v["started_ms"].as_u64(), v["finished_ms"].as_u64()) {
        (Some(s), Some(f)) if f >= s => format!(" in {:.1}s", (f - s) as f64 / 1000.0),
        _ => String::new(),
    };
    format!(
        "{name}: {} chunks{secs}: {} re-hashed, ok {}, repaired {}, unrepairable {}",
        v["total"].as_u64().unwrap_or(0),
        v["checked"].as_u64().unwrap_or(0),
        v["ok"].as_u64().unwrap_or(0),
        v["repaired"].as_u64().unwrap_or(0),
        v["unrepairable"].as_u64().unwrap_or(0),
    )
}

/// Whether `now` (a GET of the scrub state) is the run started after
/// `before` was read: it is running, or it started at another time.
fn is_new_run(before: &Value, now: &Value) -> bool {
    now["running"] == true || before.is_null() || now["started_ms"] != before["started_ms"]
}

async fn verify(
    client: &Client,
    cert_dir: &Path,
    all: bool,
    timeout: Duration,
    output: Output,
) -> anyhow::Result<()> {
    let nodes = if all {
        admin_clients(client, cert_dir).await?
    } else {
        vec![(String::new(), Ok(client.clone()))]
    };
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for (name, c) in nodes {
        let r = match c {
            Ok(c) => verify_node(&c, &name, timeout, output).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        };
        match r {
            Ok(v) => {
                let node = v["node"].as_str().unwrap_or(&name).to_string();
                let bad = v["unrepairable"].as_u64().unwrap_or(0);
                if bad > 0 {
                    failed.push(format!(
                        "{node}: {bad} chunk(s) could not be repaired (no peer has a good copy)"
                    ));
                }
                results.push(v);
            }
            Err(e) => {
                let label = if name.is_empty() {
                    client.endpoint().to_string()
                } else {
                    name.clone()
                };
                eprintln!("{label}: {e:#}");
                failed.push(format!("{label}: {e:#}"));
                results.push(json!({ "node": label, "error": format!("{e:#}") }));
            }
        }
    }
    if output == Output::Json {
        if all {
            print_json(&json!({ "nodes": results }))?;
        } else if let Some(v) = results.first() {
            print_json(v)?;
        }
    }
    if !failed.is_empty() {
        bail!(
            "verify failed: {}; files that use such chunks cannot be downloaded until restored (docs/operator/files.md § Verifying)",
            failed.join("; ")
        );
    }
    Ok(())
}

/// Start a scrub on one node (or follow the one already running) and
/// wait, bounded by `timeout`, until it finishes. Returns its final state
/// with `node` set.
async fn verify_node(
    client: &Client,
    name: &str,
    timeout: Duration,
    output: Output,
) -> anyhow::Result<Value> {
    let before: Value = client.get_json(VERIFY_PATH).await.unwrap_or(Value::Null);
    let (st, body) = client
        .request(Method::POST, VERIFY_PATH, Some(b"{}".to_vec()))
        .await?;
    // The scrub's state does not name the node; its blob status does.
    let label = if name.is_empty() {
        match client.get_json::<Value>(BLOBS_PATH).await {
            Ok(v) => v["node"]
                .as_str()
                .map_or_else(|| client.endpoint().to_string(), str::to_string),
            Err(_) => client.endpoint().to_string(),
        }
    } else {
        name.to_string()
    };
    let text = output == Output::Text;
    let mut following_other = false;
    if st == StatusCode::CONFLICT {
        following_other = true;
        if text {
            eprintln!("{label}: a verify is already running there; following it");
        }
    } else if !st.is_success() {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        bail!(
            "POST {VERIFY_PATH}: HTTP {st}: {}",
            v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
        );
    }
    let tty = std::io::stderr().is_terminal();
    let deadline = Instant::now() + timeout;
    let mut last_line = Instant::now() - Duration::from_secs(60);
    let mut errors = 0u32;
    let mut seen = following_other;
    loop {
        if Instant::now() >= deadline {
            if text && tty {
                eprintln!();
            }
            bail!(
                "{label}: still running after {}s (--timeout); it goes on in the node, follow it with `enclavectl blobs verify` again",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v: Value = match client.get_json(VERIFY_PATH).await {
            Ok(v) => {
                errors = 0;
                v
            }
            Err(e) => {
                errors += 1;
                // 20 polls in a row (10 s) without an answer: give up.
                if errors >= 20 {
                    bail!("{label}: the node stopped answering: {e}");
                }
                continue;
            }
        };
        seen = seen || is_new_run(&before, &v);
        if !seen {
            continue;
        }
        let node = v["node"].as_str().unwrap_or(&label).to_string();
        let done = v["running"] == false;
        let every = if tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if text && (done || last_line.elapsed() >= every) {
            last_line = Instant::now();
            let line = progress_line(&node, &v);
            if tty {
                eprint!("\r{line}");
                if done {
                    eprintln!();
                }
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
        }
        if done {
            let mut v = v;
            if v["node"].is_null() {
                v["node"] = json!(label);
            }
            if text {
                println!("{}", summary_line(&node, &v));
                for e in v["errors"].as_array().into_iter().flatten().take(20) {
                    println!(
                        "  {}",
                        e.as_str().map_or_else(|| e.to_string(), str::to_string)
                    );
                }
                let more = v["errors"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .saturating_sub(20);
                if more > 0 {
                    println!("  ... and {more} more (--output json lists them all)");
                }
            }
            return Ok(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(human_bytes(1_610_612_736), "1.5 GiB");
    }

    #[test]
    fn members_come_from_the_answering_nodes_view() {
        let status = json!({
            "leader": "node-2",
            "this_node": {
                "name": "node-1",
                "voters": [
                    [3, {"name": "node-3", "peer": "p3", "api": "127.0.0.1:8473", "admin": "127.0.0.1:9473"}],
                    [1, {"name": "node-1", "peer": "p1", "api": "127.0.0.1:8453", "admin": "127.0.0.1:9453"}],
                    [2, {"name": "node-2", "peer": "p2", "api": "127.0.0.1:8463", "admin": ""}]
                ],
                "learners": [[4, {"name": "node-4", "peer": "p4", "api": "", "admin": "127.0.0.1:9483"}]]
            }
        });
        let m = members_of(&status);
        let names: Vec<&str> = m.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node-1", "node-2", "node-3", "node-4"]);
        assert!(m[0].this && !m[0].leader);
        assert!(m[1].leader && m[1].admin.is_empty());
        assert_eq!(m[2].api, "127.0.0.1:8473");
        assert!(members_of(&json!({})).is_empty());
    }

    #[test]
    fn status_table_has_a_row_per_node_and_says_which_are_unreachable() {
        let rows = [
            json!({"node": "node-1", "blobs": 12, "chunks": 40, "bytes": 167_772_160u64, "missing": 0, "repaired_total": 2, "damaged_total": 1}),
            json!({"node": "node-2", "error": "cannot connect"}),
        ];
        let t = status_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NODE"));
        assert!(lines[1].contains("160.0 MiB"), "{}", lines[1]);
        assert!(
            lines[1]
                .split_whitespace()
                .eq(["node-1", "12", "40", "160.0", "MiB", "0", "2", "1"])
        );
        assert_eq!(lines[2], "node-2           unreachable: cannot connect");
    }

    #[test]
    fn progress_and_summary_lines() {
        let v = json!({"running": true, "total": 200, "checked": 50, "ok": 49, "repaired": 1, "unrepairable": 0, "started_ms": 1000, "finished_ms": null});
        let p = progress_line("node-1", &v);
        assert!(
            p.starts_with("node-1: [######                   ]  25%  50/200 chunks"),
            "{p}"
        );
        let done = json!({"running": false, "total": 200, "checked": 198, "ok": 197, "repaired": 2, "unrepairable": 1, "started_ms": 1000, "finished_ms": 13_500});
        assert_eq!(
            summary_line("node-1", &done),
            "node-1: 200 chunks in 12.5s: 198 re-hashed, ok 197, repaired 2, unrepairable 1"
        );
        assert!(progress_line("node-1", &done).contains("] 100%  198/200 chunks"));
        // Nothing to check: no division by zero.
        assert!(
            progress_line("n", &json!({"running": true, "total": 0, "checked": 0}))
                .contains("  0%")
        );
    }

    #[test]
    fn a_new_run_is_told_from_the_previous_one() {
        let old = json!({"running": false, "started_ms": 5, "finished_ms": 9});
        assert!(!is_new_run(&old, &old));
        assert!(is_new_run(&old, &json!({"running": true, "started_ms": 5})));
        assert!(is_new_run(
            &old,
            &json!({"running": false, "started_ms": 20, "finished_ms": 21})
        ));
        assert!(is_new_run(&Value::Null, &old));
    }
}
