//! `enclavectl node defrag NODE` and `enclavectl cluster defrag`: give
//! nodes' unused disk space back while the cluster serves. Each node in
//! turn restarts in place and defragments its store (`POST
//! /v1/node/defrag` on its admin port); the command waits until it is
//! back and has caught up before it goes on. A leader hands leadership
//! to another voter first, so it goes last. See docs/operator/cluster.md
//! § Giving disk space back.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::Client;

/// What one node's defragmentation did.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub node: String,
    /// Store bytes before and after (`store_bytes` of its status).
    pub store_bytes_before: u64,
    pub store_bytes_after: u64,
    /// Uncompressed snapshot size: about the logical data.
    pub snapshot_bytes: u64,
    /// From the request until it answered again, then until it had
    /// applied everything committed when it was asked.
    pub seconds_until_back: f64,
    pub seconds_until_caught_up: f64,
    /// Leadership was moved away from it first.
    pub leadership_moved_to: Option<String>,
}

/// Nodes that are skipped, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn ratio(store: u64, snapshot: u64) -> String {
    if snapshot == 0 {
        "-".into()
    } else {
        format!("{:.1}x", store as f64 / snapshot as f64)
    }
}

/// The cluster's status from the first of `clients` that answers.
async fn cluster_status(clients: &[Client]) -> anyhow::Result<Value> {
    let mut last = None;
    for c in clients {
        match c.get_json::<Value>("/v1/cluster/status").await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow::Error::new(e).context("no node answers /v1/cluster/status"),
        None => anyhow::anyhow!("no node to ask"),
    })
}

fn members(status: &Value) -> Vec<Value> {
    status["members"].as_array().cloned().unwrap_or_default()
}

fn member<'a>(members: &'a [Value], name: &str) -> Option<&'a Value> {
    members.iter().find(|m| m["name"] == name)
}

fn admin_client(m: &Value, cert_dir: &Path) -> anyhow::Result<Client> {
    let admin = m["admin"].as_str().unwrap_or_default();
    anyhow::ensure!(
        !admin.is_empty(),
        "{} has no admin address in the cluster's membership",
        m["name"]
    );
    Ok(
        Client::with_cert_dir(&format!("https://{admin}"), cert_dir)?
            .with_timeout(Duration::from_secs(10)),
    )
}

/// Move leadership from `leader` to the voter that is furthest along.
async fn move_leadership(
    entry: &[Client],
    members: &[Value],
    leader: &str,
) -> anyhow::Result<String> {
    let mut others: Vec<&Value> = members
        .iter()
        .filter(|m| m["name"] != leader && m["voter"] == true && !m["status"].is_null())
        .collect();
    others.sort_by_key(|m| m["lag"].as_u64().unwrap_or(u64::MAX));
    let Some(target) = others.first().and_then(|m| m["name"].as_str()) else {
        anyhow::bail!(
            "{leader} is the only voter that answers: the cluster would stop serving while it defragments. Stop it and run `enclave defrag --data-dir DIR` instead"
        );
    };
    let mut last = String::new();
    for attempt in 1..=5 {
        for c in entry {
            // The leader waits up to 30 s for the transfer.
            match c
                .clone()
                .with_timeout(Duration::from_secs(40))
                .request(
                    http::Method::POST,
                    "/v1/cluster/transfer-leader",
                    Some(json!({ "node": target }).to_string().into_bytes()),
                )
                .await
            {
                Ok((st, _)) if st.is_success() => {
                    eprintln!("{leader}: leadership moved to {target}");
                    return Ok(target.to_string());
                }
                Ok((st, body)) => {
                    last = format!("HTTP {st}: {}", String::from_utf8_lossy(&body));
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_secs(2 * attempt)).await;
    }
    anyhow::bail!("{leader} leads and leadership did not move to {target}: {last}")
}

/// Defragment `name`: move leadership away if it leads, ask it to restart
/// and defragment, wait until it is back and caught up.
async fn defrag_one(
    entry: &[Client],
    cert_dir: &Path,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<NodeResult> {
    let mut status = cluster_status(entry).await?;
    let mut all = members(&status);
    let row = member(&all, name)
        .ok_or_else(|| anyhow::anyhow!("{name} is not a member of the cluster"))?
        .clone();
    anyhow::ensure!(
        !row["status"].is_null(),
        "{name} does not answer its peers ({}); nothing to defragment there",
        row["error"].as_str().unwrap_or("unreachable")
    );
    let mut moved = None;
    if row["status"]["state"] == "leader" {
        moved = Some(move_leadership(entry, &all, name).await?);
        status = cluster_status(entry).await?;
        all = members(&status);
    }
    let row = member(&all, name).cloned().unwrap_or(row);
    let before = row["status"]["store_bytes"].as_u64().unwrap_or(0);
    let snapshot = row["status"]["snapshot_bytes"].as_u64().unwrap_or(0);
    let target = admin_client(&row, cert_dir)?;
    // The outcome the node recorded last: the restarted node must record a
    // newer one (compared as the node wrote them: no clocks compared).
    let previous = target
        .get_json::<Value>("/v1/node/defrag")
        .await
        .map(|v| v["last"]["started_at_unix"].clone())
        .unwrap_or(Value::Null);
    let asked = Instant::now();
    // The node asks its peers and writes its audit record before it answers.
    let (st, body) = target
        .clone()
        .with_timeout(Duration::from_secs(60))
        .request(http::Method::POST, "/v1/node/defrag", None)
        .await?;
    if !st.is_success() {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        anyhow::bail!(
            "{name} refused to defragment: HTTP {st}: {}",
            v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
        );
    }
    eprintln!(
        "{name}: restarting to defragment ({:.0} MiB, {} the snapshot)",
        mib(before),
        ratio(before, snapshot)
    );
    let mut back = None;
    // What the leader had committed when the node was first back: the node
    // has caught up once it has applied that much.
    let mut goal: Option<u64> = None;
    let mut last_note = Instant::now();
    loop {
        let elapsed = asked.elapsed();
        if elapsed > timeout {
            anyhow::bail!(
                "{name} is not back and caught up after {} s (--timeout); see its log (journalctl -u enclave): a large store takes minutes",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = match target.get_json::<Value>("/v1/cluster/status").await {
            Ok(v) => v,
            Err(_) => {
                if last_note.elapsed() >= Duration::from_secs(10) {
                    last_note = Instant::now();
                    eprintln!(
                        "{name}: down, defragmenting ({} s)",
                        asked.elapsed().as_secs()
                    );
                }
                continue;
            }
        };
        let me = &now["this_node"];
        let uptime = me["uptime_ms"].as_u64().unwrap_or(u64::MAX);
        if u128::from(uptime) >= asked.elapsed().as_millis() {
            continue; // still the process that was asked
        }
        let back_at = *back.get_or_insert_with(|| {
            eprintln!("{name}: back after {} s", asked.elapsed().as_secs());
            asked.elapsed()
        });
        if goal.is_none() {
            // The leader's commit index, as the leader reports it to the
            // restarted node's status call (None until it knows a leader).
            goal = members(&now)
                .iter()
                .find(|m| m["status"]["state"] == "leader")
                .and_then(|m| m["status"]["committed_index"].as_u64());
        }
        let applied = me["applied_index"].as_u64().unwrap_or(0);
        let state = me["state"].as_str().unwrap_or("");
        if goal.is_some_and(|g| applied >= g) && matches!(state, "follower" | "learner" | "leader")
        {
            let outcome = target
                .get_json::<Value>("/v1/node/defrag")
                .await
                .map(|v| v["last"].clone())
                .unwrap_or(Value::Null);
            if outcome["started_at_unix"] == previous || outcome.is_null() {
                anyhow::bail!(
                    "{name} restarted but recorded no defragmentation (is its data dir writable? see its log)"
                );
            }
            if outcome["ok"] != true {
                anyhow::bail!(
                    "{name} is back and serving, on its store as it was: the defragmentation failed: {}",
                    outcome["error"].as_str().unwrap_or("see its log")
                );
            }
            let after = me["store_bytes"].as_u64().unwrap_or(0);
            eprintln!(
                "{name}: caught up after {} s: {:.0} MiB -> {:.0} MiB ({} the snapshot)",
                asked.elapsed().as_secs(),
                mib(before),
                mib(after),
                ratio(after, snapshot)
            );
            return Ok(NodeResult {
                node: name.to_string(),
                store_bytes_before: before,
                store_bytes_after: after,
                snapshot_bytes: snapshot,
                seconds_until_back: back_at.as_secs_f64(),
                seconds_until_caught_up: asked.elapsed().as_secs_f64(),
                leadership_moved_to: moved,
            });
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            match goal {
                Some(g) => eprintln!("{name}: catching up: applied {applied} of {g}"),
                None => eprintln!("{name}: back, waiting to hear from the leader"),
            }
        }
    }
}

/// The clients to ask for the cluster's status: `entry` first, then every
/// member's admin port (the entry node may be the one restarting).
async fn entry_clients(entry: &Client, cert_dir: &Path) -> anyhow::Result<(Vec<Client>, Value)> {
    let status: Value = entry.get_json("/v1/cluster/status").await?;
    let mut clients = vec![entry.clone()];
    for m in members(&status) {
        if let Ok(c) = admin_client(&m, cert_dir) {
            clients.push(c);
        }
    }
    Ok((clients, status))
}

fn print_results(done: &[NodeResult], skipped: &[Skipped], output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(&json!({ "defragmented": done, "skipped": skipped }));
    }
    if !done.is_empty() {
        println!(
            "{:<16} {:>12} {:>12} {:>10} {:>8} {:>11}",
            "NODE", "BEFORE MiB", "AFTER MiB", "x SNAPSHOT", "BACK s", "CAUGHT UP s"
        );
        for r in done {
            println!(
                "{:<16} {:>12.0} {:>12.0} {:>10} {:>8.0} {:>11.0}",
                r.node,
                mib(r.store_bytes_before),
                mib(r.store_bytes_after),
                ratio(r.store_bytes_after, r.snapshot_bytes),
                r.seconds_until_back,
                r.seconds_until_caught_up
            );
        }
    }
    for s in skipped {
        println!("{}: skipped ({})", s.node, s.reason);
    }
    Ok(())
}

/// `enclavectl node defrag NODE`.
pub async fn node(
    name: &str,
    entry: &Client,
    cert_dir: &Path,
    timeout: Duration,
    output: Output,
) -> anyhow::Result<()> {
    let (clients, _) = entry_clients(entry, cert_dir).await?;
    let r = defrag_one(&clients, cert_dir, name, timeout).await?;
    print_results(&[r], &[], output)
}

/// `enclavectl cluster defrag [--over RATIO]`: every member in turn,
/// followers and learners first, the leader last.
pub async fn cluster(
    over: Option<f64>,
    entry: &Client,
    cert_dir: &Path,
    timeout: Duration,
    output: Output,
) -> anyhow::Result<()> {
    if let Some(r) = over {
        anyhow::ensure!(
            r.is_finite() && r > 0.0,
            "--over {r}: expected a ratio above 0, e.g. 3"
        );
    }
    let (clients, status) = entry_clients(entry, cert_dir).await?;
    let mut order: Vec<Value> = members(&status);
    // Non-leaders first (by name), the leader last.
    order.sort_by_key(|m| (m["status"]["state"] == "leader", m["name"].to_string()));
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for m in &order {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        if m["status"].is_null() {
            skipped.push(Skipped {
                node: name,
                reason: format!(
                    "unreachable: {}",
                    m["error"].as_str().unwrap_or("no answer")
                ),
            });
            continue;
        }
        let store = m["status"]["store_bytes"].as_u64().unwrap_or(0);
        let snapshot = m["status"]["snapshot_bytes"].as_u64().unwrap_or(0);
        if let Some(limit) = over {
            if snapshot == 0 {
                skipped.push(Skipped {
                    node: name,
                    reason: "no snapshot yet to compare the store with".into(),
                });
                continue;
            }
            if (store as f64) < limit * snapshot as f64 {
                skipped.push(Skipped {
                    node: name,
                    reason: format!(
                        "store {:.0} MiB is {} the snapshot, under --over {limit}",
                        mib(store),
                        ratio(store, snapshot)
                    ),
                });
                continue;
            }
        }
        match defrag_one(&clients, cert_dir, &name, timeout).await {
            Ok(r) => done.push(r),
            Err(e) => {
                print_results(&done, &skipped, output)?;
                return Err(e.context(format!(
                    "stopped at {name}; nodes after it were not defragmented"
                )));
            }
        }
    }
    print_results(&done, &skipped, output)
}
