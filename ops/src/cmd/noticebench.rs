//! `enclavectl bench notice`: urgent notices against a running cluster.
//! Start it without the member token rate limit (many members log in):
//! `ENCLAVE_API__TOKEN_RATE_PER_SEC=0 ops/dev-cluster.sh --release`.
//!
//! Bench user 0 is granted `notice:urgent` and sends; users 1..=members
//! receive, each connected by WebSocket (spread over the nodes).
//! (a) `--notices` notices, one at a time: send → the last member has it
//! (their stream delivered the `notice` event), p50/p99.
//! (b) one more notice, then every member acknowledges at once (64 at a
//! time): first ack sent → the sender's counts show every one.
//! (c) with `--all`: a notice to the whole directory (run it after
//! `bench wecom` made 160k members): time to accept, time until the
//! leader has expanded it to everyone, and the Raft entries that took.
//! Every notice is withdrawn at the end (no reminders fire later).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::msgbench::{
    api_endpoints, await_all, connect_members, ensure_users, login_all, percentile,
    reach_latencies, user,
};
use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Args)]
pub struct NoticeBench {
    /// Recipients, every one connected (at most 1000: the listed-users limit).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Notices of phase (a), sent one at a time.
    #[arg(long, default_value_t = 20)]
    pub notices: usize,
    /// Phase (c): a notice to everyone in the directory.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Serialize)]
struct Delivery {
    members: usize,
    connected: usize,
    notices: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Acks {
    acks: usize,
    all_answered_ms: f64,
    counted_ms: f64,
    acks_per_sec: f64,
}

#[derive(Debug, Serialize)]
struct Everyone {
    recipients: u64,
    accept_ms: f64,
    expanded_ms: f64,
    raft_entries: u64,
}

/// Calls on one api port with a member's token.
async fn call(
    api: &Client,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let (s, _, b) = api
        .session()
        .request_with_headers(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()),
            &headers,
        )
        .await?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if !s.is_success() {
        bail!("{path}: HTTP {s} {v}");
    }
    Ok(v)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn send(api: &Client, token: &str, to: Value, title: &str) -> anyhow::Result<Value> {
    call(
        api,
        token,
        Method::POST,
        "/v1/notices",
        Some(json!({
            "to": to,
            "title": title,
            "body": "benchmark notice: please acknowledge",
            "deadline_ms": now_ms() + 30 * 60_000,
            "remind_every_ms": 10 * 60_000,
            "max_rounds": 1,
        })),
    )
    .await
}

/// The leader's last log index.
async fn last_log(admin: &Client) -> anyhow::Result<u64> {
    let st: Value = admin.get_json("/v1/cluster/status").await?;
    let leader = st["leader"].as_str().unwrap_or_default().to_string();
    st["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == leader.as_str())
        .and_then(|m| m["status"]["last_log_index"].as_u64())
        .context("no leader in the cluster status")
}

pub async fn run(
    args: NoticeBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    if args.members == 0 || args.members > 1000 {
        bail!("--members must be 1-1000");
    }
    let ca = cert_dir.join("ca.pem");
    let (endpoints, _) = api_endpoints(admin).await?;
    let apis: Vec<Client> = endpoints
        .iter()
        .map(|e| Client::anonymous(e, &ca).map(|c| c.with_timeout(Duration::from_secs(120))))
        .collect::<Result<_, _>>()?;
    let n = args.members;
    eprintln!("setting up {} members with passwords...", n + 1);
    ensure_users(admin, n + 1).await?;
    let (s, b) = admin
        .request(
            Method::PUT,
            &format!(
                "/v1/directory/members/{}/permissions/notice:urgent",
                user(0)
            ),
            None,
        )
        .await?;
    if !s.is_success() {
        bail!(
            "granting notice:urgent: {s} {}",
            String::from_utf8_lossy(&b)
        );
    }
    eprintln!("logging in {} members...", n + 1);
    let tokens = login_all(&apis, n + 1).await?;
    let sender = tokens[0].clone();
    let me = call(&apis[0], &sender, Method::GET, "/v1/me", None).await?;
    let since = me["sync_head"].as_u64().unwrap_or(0);
    let tag = format!("bench-{}-", std::process::id());
    let key_tag = tag.clone();
    let recipients = &tokens[1..];
    eprintln!("connecting {n} WebSockets...");
    let (connected, mut rx) = connect_members(
        recipients,
        &endpoints,
        since,
        &ca,
        args.notices + 1,
        Arc::new(move |v: &Value| {
            if v["type"] != "notice" {
                return None;
            }
            v["notice"]["title"]
                .as_str()?
                .strip_prefix(key_tag.as_str())?
                .parse()
                .ok()
        }),
    )
    .await?;
    eprintln!("  {connected}/{n} connected");
    let users: Vec<String> = (1..=n).map(user).collect();
    let to = json!({ "users": users });
    let mut ids = Vec::new();
    // (a) delivery
    eprintln!(
        "(a) {} notices to {n} members, one at a time...",
        args.notices
    );
    let mut sent_at = HashMap::new();
    let mut last = HashMap::new();
    for k in 0..args.notices as u64 {
        let t = Instant::now();
        let v = send(&apis[0], &sender, to.clone(), &format!("{tag}{k}")).await?;
        ids.push(v["id"].as_u64().unwrap_or(0));
        sent_at.insert(k, t);
        await_all(&mut rx, k, connected, &mut last).await;
    }
    let lat = reach_latencies(&sent_at, &last, connected, "notices");
    let delivery = Delivery {
        members: n,
        connected,
        notices: lat.len(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
    };
    // (b) everyone acknowledges at once
    eprintln!("(b) {n} acknowledgements at once...");
    let k = args.notices as u64;
    let v = send(&apis[0], &sender, to.clone(), &format!("{tag}{k}")).await?;
    let id = v["id"].as_u64().unwrap_or(0);
    ids.push(id);
    await_all(&mut rx, k, connected, &mut last).await;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let apis = apis.clone();
        let tokens: Vec<String> = recipients.to_vec();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= tokens.len() {
                    return Ok::<(), anyhow::Error>(());
                }
                call(
                    &apis[i % apis.len()],
                    &tokens[i],
                    Method::POST,
                    &format!("/v1/notices/{id}/ack"),
                    None,
                )
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await.context("ack task")??;
    }
    let answered = started.elapsed();
    let counted = loop {
        let v = call(
            &apis[0],
            &sender,
            Method::GET,
            &format!("/v1/notices/{id}"),
            None,
        )
        .await?;
        if v["counts"]["acked"].as_u64() == Some(n as u64) {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the acknowledgements were not all counted: {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let acks = Acks {
        acks: n,
        all_answered_ms: answered.as_secs_f64() * 1000.0,
        counted_ms: counted.as_secs_f64() * 1000.0,
        acks_per_sec: n as f64 / counted.as_secs_f64().max(1e-9),
    };
    // (c) to everyone
    let everyone = if args.all {
        eprintln!("(c) a notice to the whole directory...");
        let before = last_log(admin).await?;
        let t = Instant::now();
        let v = send(
            &apis[0],
            &sender,
            json!({ "all": true }),
            &format!("{tag}all"),
        )
        .await?;
        let accept = t.elapsed();
        let id = v["id"].as_u64().unwrap_or(0);
        ids.push(id);
        let (expanded, recipients) = loop {
            let v = call(
                &apis[0],
                &sender,
                Method::GET,
                &format!("/v1/notices/{id}"),
                None,
            )
            .await?;
            if v["phase"] != "sending" {
                break (t.elapsed(), v["counts"]["recipients"].as_u64().unwrap_or(0));
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("the notice to everyone never finished sending: {v}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let after = last_log(admin).await?;
        Some(Everyone {
            recipients,
            accept_ms: accept.as_secs_f64() * 1000.0,
            expanded_ms: expanded.as_secs_f64() * 1000.0,
            raft_entries: after.saturating_sub(before),
        })
    } else {
        None
    };
    eprintln!("withdrawing the {} bench notices...", ids.len());
    for id in &ids {
        let _ = call(
            &apis[0],
            &sender,
            Method::POST,
            &format!("/v1/notices/{id}/withdraw"),
            None,
        )
        .await;
    }
    match output {
        Output::Json => {
            print_json(&json!({ "delivery": delivery, "acks": acks, "everyone": everyone }))
        }
        Output::Text => {
            println!(
                "(a) notice to {} connected members ({} notices): send->last-member p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
                delivery.connected,
                delivery.notices,
                delivery.p50_ms,
                delivery.p99_ms,
                delivery.max_ms
            );
            println!(
                "(b) {} acknowledgements at once: all answered in {:.0} ms, all counted in {:.0} ms ({:.0} acks/s)",
                acks.acks, acks.all_answered_ms, acks.counted_ms, acks.acks_per_sec
            );
            if let Some(e) = everyone {
                println!(
                    "(c) notice to everyone ({} recipients): accepted in {:.0} ms, expanded in {:.0} ms, {} Raft entries",
                    e.recipients, e.accept_ms, e.expanded_ms, e.raft_entries
                );
            }
            Ok(())
        }
    }
}
