//! `enclavectl bench scale`: seed a synthetic enterprise, drive a mixed
//! open-loop workload, verify invariants and report each node's resources.
//!
//! 1. **Seed** (public APIs, idempotent: a re-run reuses what exists;
//!    `--skip-seed` creates nothing): root department 1 `Enterprise`; a tree
//!    of depth 6 below it (fan-outs 6,5,4,3,3 scaled to about members/25,
//!    ids from 100001, names `Scale 3.1.2`); members `scale-000001`… over
//!    the leaves, the first `--active` with a password; groups
//!    `scale-g000000`… owned by active member g % active, 70/25/5 % of
//!    3–20/21–200/201–2000 members (capped by `--members` and the policy's
//!    `max_group_members`; created with 500, filled 500 a call); `--direct`
//!    1:1s opened by an active member's first message.
//! 2. **Run**: `--rate` ops/s for `--duration` at fixed intervals (open
//!    loop: latency from the scheduled time, so queueing shows); op k goes
//!    to client k % `--clients`, an active member logged in once with one
//!    connection to one node's api port (round-robin), running its ops in
//!    order. Percentiles are of the ops that succeeded.
//! 3. **Verify** (unless `--no-verify`; a failure fails the command after
//!    the report): each acknowledged message (run and this run's direct
//!    seeding) exactly once in its sender's sync stream from token 0, at its
//!    conversation and seq (`--verify-via history`: in the histories of the
//!    conversations sent to; `auto`: history for a sender whose stream
//!    exceeds 200,000 events); and the seed's counts.
//! 4. **Resources**: every node's admin `/metrics` before and after the run.
//!
//! 429 and 503 `overloaded` are retried after `Retry-After` and counted
//! (while seeding also other 503s and dropped connections). A connection
//! whose node does not answer (refused or cut, not a timeout) moves to the
//! next node and repeats the call at once, as a client behind a load
//! balancer would (counted as `another node`): a node restarting, say to
//! defragment, costs its clients a retry instead of errors.
//!
//! JSON (`--output json`), stable names (`null` where a node exports no
//! such metric; `created` counts items made, or done for `login` and the
//! listings, and `per_sec` those a second; `cpu_us_per_op` is all nodes'
//! CPU time during the run over the ops that succeeded):
//!
//! ```text
//! { "seed": { "skipped", "sizes": { "members", "active", "departments", "leaf_departments",
//!             "groups", "direct", "max_group_members", "seed" },
//!             "group_mix": { "small", "medium", "large", "memberships" },
//!             "phases": [ { "name", "total", "created", "reused", "seconds", "per_sec", "retries" } ] },
//!   "run": { "seconds", "target_rate", "clients", "endpoints", "scheduled", "ok", "errors",
//!            "ops_per_sec", "cpu_us_per_op",
//!            "retried": { "503 overloaded", "429", "503 other", "transport", "another node" },
//!            "ops": [ { "kind", "count", "ok", "retries", "errors": { "503 overloaded": 3 },
//!                       "p50_ms", "p99_ms", "p999_ms", "max_ms" } ] },
//!   "nodes": [ { "name", "admin", "rss_bytes_before", "rss_bytes_after", "cpu_seconds",
//!                "store_bytes_before", "store_bytes_after", "error" } ],
//!   "verify": null | [ { "name", "ok", "detail" } ] }
//! ```
//!
//! Error kinds: `STATUS code` (`503 overloaded`), `timeout`, `connect`,
//! `transport`, `no_conversation`, `bad_answer`, `abandoned` (still queued
//! 30 s after the run's end).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use super::msgbench::api_endpoints;
use super::{Output, print_json};
use crate::client::Client;

mod conn;
mod progress;
mod run;
mod seed;
mod verify;

use conn::Counters;
use run::{drive, parse_mix};
use seed::{FANOUT, Rng, Seed, group_size, parse_group_mix, plan_departments};
use verify::verify;

#[derive(Debug, Args)]
pub struct ScaleBench {
    /// Members of the synthetic enterprise.
    #[arg(long, default_value_t = 10_000)]
    pub members: usize,
    /// Members with a password (the first ones): owners, senders, clients.
    #[arg(long, default_value_t = 200)]
    pub active: usize,
    /// Group conversations.
    #[arg(long, default_value_t = 2000)]
    pub groups: usize,
    /// 1:1 conversations [default: members / 5, at most members - active].
    #[arg(long)]
    pub direct: Option<usize>,
    /// Seed of the pseudo-random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests in flight while seeding.
    #[arg(long, default_value_t = 32)]
    pub seed_concurrency: usize,
    /// Create nothing: use what an earlier run seeded.
    #[arg(long)]
    pub skip_seed: bool,
    /// Length of the run, e.g. 30s, 5m.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Operations per second, all clients together.
    #[arg(long, default_value_t = 300.0)]
    pub rate: f64,
    /// Simulated clients, each an active member.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Percent of small (3–20 members), medium (21–200) and large
    /// (201–2000) groups.
    #[arg(long, default_value = "70,25,5")]
    pub group_mix: String,
    /// Weights of the operations.
    #[arg(long, default_value = "send=50,sync=20,read=10,directory=15,login=5")]
    pub mix: String,
    /// Where acknowledged messages are looked for.
    #[arg(long, value_enum, default_value_t = VerifyVia::Auto)]
    pub verify_via: VerifyVia,
    /// Skip the invariants.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyVia {
    Auto,
    Sync,
    History,
}

// --------------------------------------------------------- resources

#[derive(Debug, Default, Serialize)]
struct NodeRes {
    name: String,
    admin: String,
    rss_bytes_before: Option<u64>,
    rss_bytes_after: Option<u64>,
    cpu_seconds: Option<f64>,
    store_bytes_before: Option<u64>,
    store_bytes_after: Option<u64>,
    error: Option<String>,
    #[serde(skip)]
    client: Option<Client>,
    #[serde(skip)]
    cpu_before: Option<f64>,
}

/// The sum of every sample of `name` in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    let value = |line: &str| {
        let rest = line.strip_prefix(name)?;
        let v = match rest.as_bytes().first()? {
            b'{' => rest.rsplit_once('}')?.1,
            b' ' => rest,
            _ => return None,
        };
        v.split_whitespace().next()?.parse::<f64>().ok()
    };
    text.lines().filter_map(value).reduce(|a, b| a + b)
}

/// Every node's admin port (`admin` in the cluster status), or this one.
async fn nodes(admin: &Client, dir: &Path) -> Vec<NodeRes> {
    let status: Value = admin
        .get_json("/v1/cluster/status")
        .await
        .unwrap_or_default();
    let node = |m: &Value| {
        let (name, addr) = (
            m["name"].as_str()?,
            m["admin"].as_str().filter(|a| !a.is_empty())?,
        );
        let url = format!("https://{addr}");
        let (client, error) = match Client::with_cert_dir(&url, dir) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Some(NodeRes {
            name: name.to_string(),
            admin: url,
            client,
            error,
            ..Default::default()
        })
    };
    let mut out: Vec<NodeRes> = status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(node)
        .collect();
    if out.is_empty() {
        let (name, url) = ("this node".to_string(), admin.endpoint().to_string());
        out.push(NodeRes {
            name,
            admin: url,
            client: Some(admin.clone()),
            ..Default::default()
        });
    }
    out
}

/// All nodes' process CPU over a measured phase, from each node's
/// `/metrics` (`enclave_process_cpu_seconds_total`), for the benchmarks'
/// CPU-µs per operation.
pub(crate) struct CpuMeter(Vec<NodeRes>);

impl CpuMeter {
    pub(crate) async fn start(admin: &Client, dir: &Path) -> CpuMeter {
        let mut n = nodes(admin, dir).await;
        scrape(&mut n, false).await;
        CpuMeter(n)
    }

    /// CPU-µs per operation on all nodes together since [`CpuMeter::start`]
    /// (None if a node's metrics could not be read).
    pub(crate) async fn per_op(mut self, ops: u64) -> Option<f64> {
        scrape(&mut self.0, true).await;
        let secs: Option<f64> = self.0.iter().map(|n| n.cpu_seconds).sum();
        secs.filter(|_| ops > 0).map(|s| s * 1e6 / ops as f64)
    }
}

async fn scrape(nodes: &mut [NodeRes], after: bool) {
    let texts = futures_util::future::join_all(nodes.iter().map(|n| async move {
        match &n.client {
            Some(c) => c.get_text("/metrics").await.map_err(|e| e.to_string()),
            None => Err("no client".to_string()),
        }
    }))
    .await;
    for (n, t) in nodes.iter_mut().zip(texts) {
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                n.error.get_or_insert(format!("GET /metrics: {e}"));
                continue;
            }
        };
        let rss = metric(&t, "enclave_process_resident_memory_bytes").map(|v| v as u64);
        let cpu = metric(&t, "enclave_process_cpu_seconds_total");
        let store = metric(&t, "enclave_store_bytes").map(|v| v as u64);
        if after {
            (n.rss_bytes_after, n.store_bytes_after) = (rss, store);
            n.cpu_seconds = cpu.zip(n.cpu_before).map(|(a, b)| a - b);
        } else {
            (n.rss_bytes_before, n.store_bytes_before, n.cpu_before) = (rss, store, cpu);
        }
    }
}

// ------------------------------------------------------------ report

#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    total: usize,
    created: usize,
    reused: usize,
    seconds: f64,
    per_sec: f64,
    retries: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
struct OpStats {
    kind: &'static str,
    count: u64,
    ok: u64,
    retries: u64,
    errors: BTreeMap<String, u64>,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    #[serde(skip)]
    lat: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct RunReport {
    seconds: f64,
    target_rate: f64,
    clients: usize,
    endpoints: Vec<String>,
    scheduled: u64,
    ok: u64,
    errors: u64,
    ops_per_sec: f64,
    cpu_us_per_op: Option<f64>,
    /// Retries during the run by reason.
    retried: BTreeMap<&'static str, u64>,
    ops: Vec<OpStats>,
}

#[derive(Debug, Serialize)]
struct Invariant {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn mib(b: Option<u64>) -> String {
    b.map_or("-".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / 1_048_576.0)
    })
}

fn print_text(
    sizes: &Value,
    m: &Value,
    phases: &[Phase],
    run: &RunReport,
    nodes: &[NodeRes],
    verify: Option<&[Invariant]>,
) {
    let z = |k: &str| sizes[k].as_u64().unwrap_or(0);
    println!(
        "seed: {} members ({} active), {} departments ({} leaves), {} groups ({} small, {} medium, {} large; {} memberships), {} 1:1s",
        z("members"),
        z("active"),
        z("departments"),
        z("leaf_departments"),
        z("groups"),
        m["small"],
        m["medium"],
        m["large"],
        m["memberships"],
        z("direct")
    );
    println!(
        "  {:<14} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "phase", "total", "created", "reused", "seconds", "created/s", "retries"
    );
    for p in phases {
        println!(
            "  {:<14} {:>8} {:>8} {:>8} {:>8.1} {:>9.1} {:>8}",
            p.name, p.total, p.created, p.reused, p.seconds, p.per_sec, p.retries
        );
    }
    println!(
        "run: {:.1}s, {} ops/s scheduled over {} clients on {} nodes: {} ops, {} ok, {} failed, {:.1} ok/s",
        run.seconds,
        run.target_rate,
        run.clients,
        run.endpoints.len(),
        run.scheduled,
        run.ok,
        run.errors,
        run.ops_per_sec
    );
    let retried: Vec<String> = run
        .retried
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("  retried after: {}", retried.join(", "));
    println!(
        "  {:<10} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7}  errors",
        "op", "count", "ok", "p50_ms", "p99_ms", "p999_ms", "max_ms", "retries"
    );
    for o in &run.ops {
        let errors: Vec<String> = o.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "  {:<10} {:>7} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7}  {}",
            o.kind,
            o.count,
            o.ok,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.max_ms,
            o.retries,
            errors.join(", ")
        );
    }
    println!("nodes:");
    for n in nodes {
        let cpu = n
            .cpu_seconds
            .map_or("-".to_string(), |c| format!("{c:.1} s"));
        let err = n
            .error
            .as_ref()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default();
        println!(
            "  {} {}: rss {} -> {}, cpu during the run {cpu}, store {} -> {}{err}",
            n.name,
            n.admin,
            mib(n.rss_bytes_before),
            mib(n.rss_bytes_after),
            mib(n.store_bytes_before),
            mib(n.store_bytes_after)
        );
    }
    match run.cpu_us_per_op {
        Some(us) => println!("  cpu per ok op: {us:.0} µs (all nodes)"),
        None => println!("  cpu per op: - (no enclave_process_cpu_seconds_total)"),
    }
    match verify {
        None => println!("verify: skipped (--no-verify)"),
        Some(v) => {
            println!("verify:");
            for i in v {
                println!(
                    "  {} {}: {}",
                    if i.ok { "ok  " } else { "FAIL" },
                    i.name,
                    i.detail
                );
            }
        }
    }
}

pub async fn run(
    args: ScaleBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    let secs = super::cluster::parse_duration(&args.duration)?;
    let (n, active) = (args.members, args.active);
    if !(10..=2_000_000).contains(&n) {
        bail!("--members must be between 10 and 2000000");
    }
    if active < 2 || active > n.min(100_000) {
        bail!("--active must be between 2 and --members (at most 100000)");
    }
    if args.clients == 0 || args.clients > active {
        bail!("--clients must be between 1 and --active");
    }
    if !((1..=86_400).contains(&secs) && args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--duration must be between 1s and 24h, --rate above 0 and at most 100000");
    }
    if !(1..=1024).contains(&args.seed_concurrency) || args.groups > 1_000_000 {
        bail!("--seed-concurrency must be between 1 and 1024, --groups at most 1000000");
    }
    parse_mix(&args.mix)?;
    let group_mix = parse_group_mix(&args.group_mix)?;
    let direct = args.direct.unwrap_or(n / 5).min(n - active);
    if args.direct.is_some_and(|d| d > direct) {
        eprintln!("--direct capped at {direct}: the peers are the members without a password");
    }
    let ca = cert_dir.join("ca.pem");
    let (endpoints, _) = api_endpoints(admin)
        .await
        .context("finding the api ports (GET /v1/cluster/status)")?;
    let apis: Vec<Client> = (endpoints.iter())
        .map(|e| Client::anonymous(e, &ca).map(|c| c.with_timeout(Duration::from_secs(15))))
        .collect::<Result<_, _>>()?;
    let policy: Value = admin
        .get_json("/v1/policy")
        .await
        .context("reading the policy (GET /v1/policy)")?;
    let max_group = policy["max_group_members"].as_u64().unwrap_or(2000) as usize;
    let depts = plan_departments(n);
    let leaves: Vec<u64> = depts
        .iter()
        .filter(|d| d.level == FANOUT.len())
        .map(|d| d.id)
        .collect();
    let (groups, seed, cap, conc) = (
        args.groups,
        args.seed,
        max_group.min(n),
        args.seed_concurrency,
    );
    let ctr = Arc::new(Counters::default());
    let mut s = Seed {
        n,
        active,
        groups,
        direct,
        seed,
        cap,
        group_mix,
        conc,
        depts,
        leaves,
        admin,
        apis: &apis,
        ctr,
        phases: Vec::new(),
    };
    let (mut mix, mut memberships) = ([0usize; 3], 0);
    for g in 0..groups {
        let (class, size) = group_size(&mut Rng::new(seed, 0x6_0000_0000 + g as u64), group_mix);
        mix[class] += 1;
        memberships += size.min(cap);
    }
    let sizes = json!({
        "members": n, "active": active, "departments": s.depts.len() + 1, "leaf_departments": s.leaves.len(),
        "groups": groups, "direct": direct, "max_group_members": max_group, "seed": seed,
    });
    let group_mix =
        json!({ "small": mix[0], "medium": mix[1], "large": mix[2], "memberships": memberships });
    eprintln!(
        "scale: {n} members, {} departments, {groups} groups, {direct} 1:1s; {} api ports",
        s.depts.len() + 1,
        apis.len()
    );

    let mut acks = Vec::new();
    let tokens = if args.skip_seed {
        s.login(false).await?
    } else {
        s.departments().await?;
        s.members().await?;
        let tokens = s.login(true).await?;
        let lists = s.listing("owners", &tokens, active).await?;
        s.groups(&tokens, &lists).await?;
        acks = s.direct(&tokens, &lists).await?;
        tokens
    };
    let lists = s.listing("listing", &tokens, args.clients).await?;
    let mut nodes = nodes(admin, cert_dir).await;
    scrape(&mut nodes, false).await;
    let (mut run, run_acks) = drive(&args, secs, n, &apis, &tokens, lists, &s.ctr).await?;
    scrape(&mut nodes, true).await;
    let cpu: Vec<f64> = nodes.iter().filter_map(|n| n.cpu_seconds).collect();
    if !cpu.is_empty() && run.ok > 0 {
        run.cpu_us_per_op = Some(cpu.iter().sum::<f64>() * 1e6 / run.ok as f64);
    }
    acks.extend(run_acks);
    let verify = match args.no_verify {
        true => None,
        false => Some(verify(&s, &tokens, &acks, args.verify_via).await?),
    };
    let seed_json = json!({ "skipped": args.skip_seed, "sizes": sizes, "group_mix": group_mix, "phases": s.phases });
    if output == Output::Json {
        print_json(&json!({ "seed": seed_json, "run": run, "nodes": nodes, "verify": verify }))?;
    } else {
        print_text(
            &sizes,
            &group_mix,
            &s.phases,
            &run,
            &nodes,
            verify.as_deref(),
        );
    }
    let failed: Vec<&str> = verify
        .iter()
        .flatten()
        .filter(|i| !i.ok)
        .map(|i| i.name)
        .collect();
    if !failed.is_empty() {
        bail!("invariants failed: {} (see the report)", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read() {
        let text = "# TYPE enclave_store_bytes gauge\nenclave_store_bytes 1024\nenclave_store_bytes_x 7\n\
                    enclave_process_cpu_seconds_total 1.5\nreq{a=\"b c\"} 2\nreq{a=\"d\"} 3\n";
        assert_eq!(metric(text, "enclave_store_bytes"), Some(1024.0));
        assert_eq!(metric(text, "enclave_process_cpu_seconds_total"), Some(1.5));
        assert_eq!(metric(text, "req"), Some(5.0));
        assert_eq!(metric(text, "enclave_process_resident_memory_bytes"), None);
    }
}
