//! One failover run, shared by the CI tests (`tests/tests/failover.rs`) and
//! the soak runner for ops teams (`enclave-chaos`, `ops/chaos.sh`): start a
//! cluster of real processes, run the workload, inject faults, heal, and
//! check the whole history against what every node holds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use enclave_certs::Role;

use crate::checker::{self, Event};
use crate::cluster::TestCluster;
use crate::nemesis::{self, Fault, Injected};
use crate::proc::{NodeSpec, enclavectl};
use crate::workload::{self, Counts, Options, Recorder};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: usize,
    pub clients: usize,
    pub conversations: usize,
    pub seed: u64,
    /// Faults to draw from (in order when `schedule` is fixed).
    pub faults: Vec<Fault>,
    /// Run the faults once each, in order (CI); otherwise draw them at
    /// random until `duration` has passed (soak).
    pub fixed: bool,
    pub duration: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// Quiet time between faults.
    pub quiet: Duration,
    /// Extra node settings.
    pub spec: NodeSpec,
    /// Print progress lines to stderr.
    pub verbose: bool,
    /// Copy every node's log here at the end (all runs of each node).
    pub keep_logs: Option<std::path::PathBuf>,
}

impl Plan {
    pub fn ci(nodes: usize, faults: &[Fault], seed: u64) -> Plan {
        Plan {
            nodes,
            clients: 6,
            conversations: 4,
            seed,
            faults: faults.to_vec(),
            fixed: true,
            duration: Duration::ZERO,
            hold: Duration::from_secs(3),
            quiet: Duration::from_secs(4),
            spec: NodeSpec::default(),
            verbose: true,
            keep_logs: std::env::var_os("ENCLAVE_FAILOVER_LOGS").map(Into::into),
        }
    }
}

/// Per-fault outcome.
#[derive(Debug, Clone)]
pub struct FaultResult {
    pub injected: Injected,
    /// The longest stretch with no acknowledged write between the fault
    /// taking effect and the next fault (or the end of the run), in µs:
    /// how long writes were unavailable.
    pub unavailable_us: u64,
    /// Whether a write invoked after the fault was acknowledged before
    /// the next fault (or the end of the run).
    pub recovered: bool,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    pub elapsed: Duration,
    pub counts: Counts,
    pub errors: BTreeMap<String, usize>,
    pub faults: Vec<FaultResult>,
    /// Longest stretch with no acknowledged write over the whole run (µs,
    /// and when it began).
    pub longest_gap_us: (u64, u64),
    pub problems: Vec<String>,
    /// Per node: whether its audit chain verified, with the tool's words.
    pub audit: Vec<(String, Result<(), String>)>,
    pub messages_per_node: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.audit.iter().all(|(_, r)| r.is_ok())
    }

    /// Longest write unavailability after the given kind of fault (µs).
    pub fn worst_unavailability(&self, fault: Fault) -> Option<u64> {
        self.faults
            .iter()
            .filter(|f| f.injected.fault == fault)
            .map(|f| f.unavailable_us)
            .max()
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let s = |us: u64| format!("{:.2} s", us as f64 / 1e6);
        let mut out = String::new();
        let c = &self.counts;
        let _ = writeln!(
            out,
            "Enclave failover run: {} nodes, {} clients, {} conversations, seed {}, {:.0} s",
            self.plan.nodes,
            self.plan.clients,
            self.plan.conversations,
            self.plan.seed,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "operations: {} appends acknowledged, {} refused, {} unknown; {} reads ok, {} failed",
            c.appends_ok, c.appends_fail, c.appends_unknown, c.reads_ok, c.reads_failed
        );
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            let _ = writeln!(
                out,
                "failed or unknown requests by reason: {}",
                list.join(", ")
            );
        }
        let mut by_kind: BTreeMap<&str, Vec<&FaultResult>> = BTreeMap::new();
        for f in &self.faults {
            by_kind.entry(f.injected.fault.name()).or_default().push(f);
        }
        let _ = writeln!(out, "faults injected: {}", self.faults.len());
        let _ = writeln!(
            out,
            "  {:<18} {:>5} {:>14} {:>14} {:>14}",
            "FAULT", "COUNT", "UNAVAIL. MAX", "UNAVAIL. P99", "NOT RECOVERED"
        );
        for (kind, list) in &by_kind {
            let mut rec: Vec<u64> = list.iter().map(|f| f.unavailable_us).collect();
            rec.sort_unstable();
            let max = rec.last().copied();
            let p99 = (!rec.is_empty()).then(|| rec[((rec.len() * 99).div_ceil(100)).max(1) - 1]);
            let _ = writeln!(
                out,
                "  {:<18} {:>5} {:>14} {:>14} {:>14}",
                kind,
                list.len(),
                max.map(s).unwrap_or_else(|| "-".into()),
                p99.map(s).unwrap_or_else(|| "-".into()),
                list.iter().filter(|f| !f.recovered).count()
            );
        }
        let _ = writeln!(
            out,
            "longest time with no acknowledged write: {} (from t={})",
            s(self.longest_gap_us.0),
            s(self.longest_gap_us.1)
        );
        let _ = writeln!(
            out,
            "messages on every node after healing: {}",
            self.messages_per_node
        );
        for (node, r) in &self.audit {
            match r {
                Ok(()) => {
                    let _ = writeln!(out, "audit chain on {node}: verified");
                }
                Err(e) => {
                    let _ = writeln!(out, "audit chain on {node}: FAILED: {e}");
                }
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "checker: VALID (every check passed)");
        } else {
            let _ = writeln!(out, "checker: INVALID, {} problem(s):", self.problems.len());
            for p in self.problems.iter().take(20) {
                let _ = writeln!(out, "  - {p}");
            }
        }
        out
    }
}

/// Run `plan` to the end and report. Panics only on harness failures
/// (cannot start a node, a bounded wait ran out); cluster misbehaviour is
/// reported in [`Report::problems`].
pub async fn run(plan: Plan) -> Report {
    let started = Instant::now();
    let log = |msg: &str| {
        if plan.verbose {
            eprintln!("[{:>6.1}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    let netns = plan.faults.iter().any(|f| f.needs_netns());
    let power = plan.faults.iter().any(|f| f.needs_power_shim());
    let mut spec = plan.spec.clone();
    // Clients are the load here, not abuse: no per-token rate limit.
    spec.env
        .push(("ENCLAVE_API__TOKEN_RATE_PER_SEC".into(), "0".into()));
    // For digging into a failed run: the nodes' log filter.
    if let Ok(level) = std::env::var("ENCLAVE_FAILOVER_NODE_LOG") {
        spec.env.push(("ENCLAVE_LOG__LEVEL".into(), level));
    }
    if plan.faults.contains(&Fault::SnapshotRestart) {
        // Compact often and keep no log behind a snapshot, so a stopped
        // follower must catch up by snapshot.
        spec.env.extend([
            ("ENCLAVE_RAFT__SNAPSHOT_EVERY".into(), "200".into()),
            ("ENCLAVE_RAFT__KEEP_LOGS".into(), "0".into()),
        ]);
    }
    let mut cluster = TestCluster::prepare(plan.nodes, spec, netns);
    cluster.logs_on_drop = plan.keep_logs.clone();
    let rec = Recorder::new(started);
    let mut nemesis = nemesis::arm(&mut cluster, &plan.faults, rec.clone(), plan.seed);
    log(&format!(
        "starting {} nodes{}{}",
        plan.nodes,
        if netns { " in network namespaces" } else { "" },
        if power {
            " with the power-loss shim"
        } else {
            ""
        }
    ));
    let mut cluster = cluster.boot().await;
    let setup = workload::setup(&cluster, plan.clients, plan.conversations).await;
    let auditor = cluster.pki.operator("auditor", Role::Auditor);
    let load = workload::Workload::start(
        &setup,
        Options {
            seed: plan.seed,
            ..Options::default()
        },
        rec.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut k = 0usize;
    loop {
        let fault = if plan.fixed {
            match plan.faults.get(k) {
                Some(f) => *f,
                None => break,
            }
        } else {
            if started.elapsed() >= plan.duration || plan.faults.is_empty() {
                break;
            }
            plan.faults[nemesis.rng.below(plan.faults.len())]
        };
        k += 1;
        log(&format!("fault {k}: {fault}"));
        nemesis.run(&mut cluster, fault, plan.hold).await;
        tokio::time::sleep(plan.quiet).await;
        if let Some(last) = nemesis.log.last() {
            let events = rec.events();
            let gap = workload::longest_write_gap(&events, last.at, rec.now()).0;
            let recovery = match workload::recovery_after(&events, last.at) {
                Some(_) => format!("writes unavailable for {:.2} s at most", gap as f64 / 1e6),
                None => format!(
                    "writes have not recovered yet; cluster: {}",
                    diagnose(&cluster).await
                ),
            };
            log(&format!(
                "healed {fault} on {}; {recovery}{}",
                last.targets.join(", "),
                if last.detail.is_empty() {
                    String::new()
                } else {
                    format!("; {}", last.detail)
                }
            ));
        }
    }
    let end = rec.now();
    let history: Vec<Event> = load.stop().await;
    log(&format!(
        "workload stopped after {} operations; waiting for every node to apply the same log",
        history.len()
    ));
    cluster.wait_converged().await;
    let mut states = Vec::new();
    for i in cluster.live() {
        let st = workload::node_state(&cluster, &setup, i)
            .await
            .unwrap_or_else(|e| panic!("reading the final state: {e}"));
        states.push((cluster.nodes[i].name.clone(), st));
    }
    let messages_per_node = states
        .first()
        .map(|(_, s)| s.values().map(Vec::len).sum())
        .unwrap_or(0);
    let problems = checker::check(&history, &states);
    let mut audit = Vec::new();
    for i in cluster.live() {
        let (code, out, err) = tokio::task::block_in_place(|| {
            enclavectl(&[
                "--cert-dir",
                &auditor.display().to_string(),
                "--endpoint",
                &cluster.nodes[i].admin_url(),
                "audit",
                "verify",
                "--live",
            ])
        });
        let r = if code == 0 {
            Ok(())
        } else {
            Err(format!("exit {code}: {}{}", out.trim(), err.trim()))
        };
        audit.push((cluster.nodes[i].name.clone(), r));
    }
    if let Some(dir) = &plan.keep_logs {
        log(&format!("node logs will be saved in {}", dir.display()));
    }
    let faults = nemesis
        .log
        .iter()
        .enumerate()
        .map(|(k, inj)| {
            let until = nemesis.log.get(k + 1).map(|n| n.at).unwrap_or(end);
            FaultResult {
                injected: inj.clone(),
                unavailable_us: workload::longest_write_gap(&history, inj.at, until).0,
                // Before the next fault: a cluster that only comes back
                // because the next fault replaced its leader is stuck.
                recovered: workload::recovery_after(&history, inj.at)
                    .is_some_and(|us| inj.at + us <= until),
            }
        })
        .collect();
    let report = Report {
        elapsed: started.elapsed(),
        counts: workload::counts(&history),
        errors: rec.errors(),
        faults,
        longest_gap_us: workload::longest_write_gap(&history, 2_000_000.min(end), end),
        problems,
        audit,
        messages_per_node,
        plan,
    };
    if report.plan.verbose {
        eprintln!("{}", report.render());
    }
    report
}

/// One line per live node from its status, for a report that must say
/// why writes stalled.
pub async fn diagnose(cluster: &TestCluster) -> String {
    let mut out = Vec::new();
    for i in cluster.live() {
        let name = &cluster.nodes[i].name;
        match cluster.status(i).await {
            Some(s) => {
                let n = &s["this_node"];
                out.push(format!(
                    "{name}: {} term {} leader {} log {} committed {} applied {} snapshot {} purged {} quorum-ack {}ms ago",
                    n["state"].as_str().unwrap_or("?"),
                    n["term"],
                    n["leader"],
                    n["last_log_index"],
                    n["committed_index"],
                    n["applied_index"],
                    n["snapshot_index"],
                    n["purged_index"],
                    n["millis_since_quorum_ack"],
                ));
            }
            None => out.push(format!("{name}: no status")),
        }
    }
    out.join(" | ")
}
