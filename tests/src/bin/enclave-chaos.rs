//! `enclave-chaos`: the failover suite's soak mode for ops teams. Starts a
//! test cluster of real `enclave` processes (fresh CA, its own data dirs,
//! network namespaces for partitions), runs the messaging workload through
//! random nodes, injects random faults until the duration is over, heals,
//! checks the whole history and prints a report. Exit 0 = the checker found
//! nothing; 1 = it found problems (printed with their evidence); 2 = the
//! harness itself failed. Run it through `ops/chaos.sh`; see
//! docs/operator/failover-testing.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use enclave_ops::cmd::cluster::parse_duration;
use enclave_tests::nemesis::Fault;
use enclave_tests::suite::{Plan, run};

/// Run a soak failover test against a local test cluster.
#[derive(Debug, Parser)]
#[command(name = "enclave-chaos", version)]
struct Args {
    /// How long to inject faults (e.g. 10m, 30m, 1h).
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Faults to draw from: kill, pause, partition, power, clock, disk
    /// (slow-disk + disk-full), or single faults (kill-leader, split-2-2-1, …).
    #[arg(long, default_value = "kill,pause,partition")]
    faults: String,
    /// Nodes in the test cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent clients (each its own user and token).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Group conversations the clients write to.
    #[arg(long, default_value_t = 8)]
    conversations: usize,
    /// Seed for the fault schedule and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long each fault is held before it is healed.
    #[arg(long, default_value = "5s")]
    hold: String,
    /// Quiet time between faults.
    #[arg(long, default_value = "5s")]
    quiet: String,
    /// Copy every node's log into this directory at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("enclave-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    // Find out now, not after a 30-minute run, that the report cannot be
    // written (its directory is created if missing).
    if let Some(file) = &args.report {
        let ready = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
            _ => Ok(()),
        }
        .and_then(|()| std::fs::write(file, "enclave failover run in progress\n"));
        if let Err(e) = ready {
            eprintln!("enclave-chaos: --report {}: {e}", file.display());
            return ExitCode::from(2);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enclave-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(run(plan));
    let text = report.render();
    print!("{text}");
    if let Some(file) = &args.report
        && let Err(e) = std::fs::write(file, &text)
    {
        eprintln!("enclave-chaos: writing {}: {e}", file.display());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn plan(args: &Args) -> Result<Plan, String> {
    let secs = |flag: &str, v: &str| {
        parse_duration(v)
            .map(Duration::from_secs)
            .map_err(|e| format!("--{flag}: {e}"))
    };
    if !(3..=7).contains(&args.nodes) {
        return Err(format!("--nodes {}: use 3, 5 or 7", args.nodes));
    }
    if args.clients == 0 || args.conversations == 0 {
        return Err("--clients and --conversations must be at least 1".into());
    }
    let mut faults = Fault::expand(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let skipped: Vec<Fault> = faults
        .iter()
        .copied()
        .filter(|f| !f.fits(args.nodes))
        .collect();
    faults.retain(|f| f.fits(args.nodes));
    if !skipped.is_empty() {
        eprintln!(
            "enclave-chaos: skipping {} (they need 5 nodes; use --nodes 5)",
            skipped
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if faults.iter().any(|f| f.needs_netns())
        && let Some(why) = enclave_tests::netns::unavailable()
    {
        let before = faults.len();
        faults.retain(|f| !f.needs_netns());
        eprintln!(
            "enclave-chaos: skipping {} partition fault(s): {why}",
            before - faults.len()
        );
    }
    if faults.iter().any(|f| f.needs_mount()) && !enclave_tests::netns::is_root() {
        faults.retain(|f| !f.needs_mount());
        eprintln!("enclave-chaos: skipping disk-full: mounting a small filesystem needs root");
    }
    if faults.is_empty() {
        return Err("no fault left to inject".into());
    }
    let mut plan = Plan::ci(args.nodes, &faults, args.seed);
    plan.fixed = false;
    plan.duration = secs("duration", &args.duration)?;
    plan.hold = secs("hold", &args.hold)?;
    plan.quiet = secs("quiet", &args.quiet)?;
    plan.clients = args.clients;
    plan.conversations = args.conversations;
    plan.keep_logs = args.keep_logs.clone();
    Ok(plan)
}
