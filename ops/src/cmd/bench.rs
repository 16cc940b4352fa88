//! `enclavectl bench raft`: replicated write throughput and latency against
//! a running cluster (start one with `ops/dev-cluster.sh`), then a check
//! that every acknowledged write is in the store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use http::Method;
use serde::Serialize;
use serde_json::Value;

use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Every client talks to the leader (as etcd's clients do).
    Leader,
    /// Clients are spread over all nodes; followers forward to the leader.
    All,
}

#[derive(Debug, Args)]
pub struct RaftBench {
    /// Concurrent clients; a comma-separated list runs one round per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Length of each round, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 200)]
    pub value_size: usize,
    #[arg(long, value_enum, default_value_t = Target::Leader)]
    pub target: Target,
    /// Skip the check that every acknowledged write is stored.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub clients: usize,
    pub seconds: f64,
    pub acknowledged: u64,
    pub errors: u64,
    pub writes_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU-µs per acknowledged write, all nodes together.
    pub cpu_us_per_write: Option<f64>,
    pub verified: Option<bool>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn admin_endpoints(client: &Client, target: Target) -> anyhow::Result<Vec<String>> {
    let status: Value = client.get_json("/v1/cluster/status").await?;
    let leader = status["leader"].as_str().map(str::to_string);
    let mut out = Vec::new();
    for m in status["members"].as_array().into_iter().flatten() {
        let admin = m["admin"].as_str().unwrap_or_default();
        if admin.is_empty() {
            continue;
        }
        if target == Target::Leader && m["name"].as_str().map(str::to_string) != leader {
            continue;
        }
        out.push(format!("https://{admin}"));
    }
    if out.is_empty() {
        bail!(
            "no admin endpoints found in the cluster status (is the cluster initialized and led?)"
        );
    }
    Ok(out)
}

pub async fn run(
    args: RaftBench,
    base: &Client,
    cert_dir: &std::path::Path,
    output: Output,
) -> anyhow::Result<()> {
    let secs = super::cluster::parse_duration(&args.duration)?;
    if secs == 0 || secs > 3600 {
        bail!("--duration must be between 1s and 1h");
    }
    let endpoints = admin_endpoints(base, args.target).await?;
    let value = vec![b'v'; args.value_size];
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut rounds = Vec::new();
    for &n in &args.clients {
        if n == 0 || n > 1024 {
            bail!("--clients values must be between 1 and 1024");
        }
        let prefix = format!("bench-{run_id}-{n}-");
        let cpu = super::scalebench::CpuMeter::start(base, cert_dir).await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..n {
            let url = &endpoints[c % endpoints.len()];
            let mut session = Client::with_cert_dir(url, cert_dir)?
                .with_timeout(Duration::from_secs(10))
                .session();
            let value = value.clone();
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut keys = Vec::new();
                let mut errors = 0u64;
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("{prefix}{c}-{i}");
                    i += 1;
                    let t = Instant::now();
                    match session
                        .request(
                            Method::PUT,
                            &format!("/v1/kv/{key}"),
                            Some(value.clone()),
                            &[],
                        )
                        .await
                    {
                        Ok((s, _)) if s.is_success() => {
                            lat.push(t.elapsed());
                            keys.push(key);
                        }
                        _ => {
                            errors += 1;
                            // Do not spin against a node that is down.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (lat, keys, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut keys = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, k, e) = t.await.context("bench client task")?;
            lat.extend(l);
            keys.extend(k);
            errors += e;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu_us_per_write = cpu.per_op(keys.len() as u64).await;
        lat.sort();
        let verified = if args.no_verify {
            None
        } else {
            Some(verify(base, &prefix, &keys).await?)
        };
        let round = Round {
            clients: n,
            seconds: elapsed,
            acknowledged: keys.len() as u64,
            errors,
            writes_per_sec: keys.len() as f64 / elapsed,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
            cpu_us_per_write,
            verified,
        };
        if output == Output::Text {
            println!(
                "clients={:<4} writes/s={:<9.0} p50_ms={:<7.2} p99_ms={:<7.2} max_ms={:<8.1} cpu_us={:<5} acked={} errors={} verified={}",
                round.clients,
                round.writes_per_sec,
                round.p50_ms,
                round.p99_ms,
                round.max_ms,
                round
                    .cpu_us_per_write
                    .map_or("?".into(), |c| format!("{c:.0}")),
                round.acknowledged,
                round.errors,
                round.verified.map_or("skipped".into(), |v| v.to_string())
            );
        }
        if round.verified == Some(false) {
            if output == Output::Json {
                print_json(&rounds)?;
            }
            bail!("acknowledged writes are missing from the store (clients={n})");
        }
        rounds.push(round);
    }
    if output == Output::Json {
        print_json(
            &serde_json::json!({ "value_bytes": args.value_size, "target": format!("{:?}", args.target).to_lowercase(), "endpoints": endpoints, "rounds": rounds }),
        )?;
    }
    Ok(())
}

/// Every acknowledged key is present (linearizable listing through the leader path).
async fn verify(client: &Client, prefix: &str, acked: &[String]) -> anyhow::Result<bool> {
    let mut stored = HashSet::with_capacity(acked.len());
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/kv-keys?prefix={prefix}&limit=10000");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let v: Value = client.get_json(&path).await?;
        for k in v["keys"].as_array().into_iter().flatten() {
            if let Some(k) = k.as_str() {
                stored.insert(k.to_string());
            }
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
    if !missing.is_empty() {
        eprintln!(
            "{} acknowledged writes missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    Ok(missing.is_empty())
}
