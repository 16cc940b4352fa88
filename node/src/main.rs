//! `enclave`: parse the command line, load the configuration, start the node.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use enclave_node::cli::{Cli, Command, StartArgs};
use enclave_node::config::{self, LoadOptions};
use enclave_node::{backup, dev, server, telemetry};

/// sled allocates and frees a copy of every page it touches; mimalloc
/// serves that pattern with far less CPU than glibc's malloc (see
/// docs/architecture.md, "Performance").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Start(args) => start(*args),
        Command::Restore {
            from,
            data_dir,
            blobs_from,
        } => restore(&from, &data_dir, blobs_from.as_deref()),
        Command::Defrag { data_dir, json } => defrag(&data_dir, json),
    }
}

fn defrag(data_dir: &std::path::Path, json: bool) -> ExitCode {
    telemetry::init(config::LogFormat::Text, "warn");
    let store = data_dir.join("store");
    // A line per 10% (a live counter on a terminal).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_pct = None;
    let mut progress = |done: u64, total: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let step = if tty { pct } else { pct / 10 * 10 };
        if last_pct != Some(step) {
            last_pct = Some(step);
            let line = format!(
                "defragmenting {}: {done}/{total} records ({pct}%)",
                store.display()
            );
            if tty {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
        }
    };
    match enclave_node::defrag::run(data_dir, &mut progress) {
        Ok(r) => {
            eprintln!();
            if json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                let mib = |b: u64| b as f64 / (1 << 20) as f64;
                println!(
                    "Defragmented {}: {} records in {} trees ({:.1} MiB of data); {:.1} MiB on disk before, {:.1} MiB after ({:.1}x the data), in {:.0} s.",
                    store.display(),
                    r.records,
                    r.trees.len(),
                    mib(r.logical_bytes),
                    mib(r.bytes_before),
                    mib(r.bytes_after),
                    r.bytes_after as f64 / r.logical_bytes.max(1) as f64,
                    r.seconds
                );
                for t in &r.trees {
                    println!(
                        "  tree {:<16} {:>10} records {:>10.1} MiB",
                        t.name,
                        t.records,
                        mib(t.bytes)
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!();
            eprintln!("enclave defrag: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: StartArgs) -> ExitCode {
    let dev_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("enclave-data"));
    let opts = LoadOptions {
        file: args.config.clone(),
        defaults: args.dev.then(|| config::dev_defaults(&dev_dir)),
        overrides: args.overrides(),
    };
    let config = match config::load(&opts, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("enclave: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    let log_format = config.log_format;
    enclave_certs::tls::install_default_provider();
    let result = (|| -> anyhow::Result<server::Exit> {
        let pki = if args.dev {
            Some(dev::prepare(&config.data_dir)?)
        } else {
            None
        };
        // Asked to defragment (`enclavectl node defrag`): before the store
        // is opened, so no lock is held and no peer sees a half-open node.
        enclave_node::defrag::run_requested(&config.data_dir);
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if config.worker_threads > 0 {
            rt.worker_threads(config.worker_threads);
        }
        let rt = rt
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        rt.block_on(async {
            if let Some(url) = &args.join {
                join_first(&config, url, &args).await?;
            }
            let node = server::start(config).await?;
            backup::finish_restore(&node.state).await?;
            if pki.is_some() && !node.state.cluster.is_initialized() {
                // The dev node is its own one-node cluster.
                node.state
                    .cluster
                    .initialize()
                    .await
                    .map_err(|e| anyhow::anyhow!("initializing the dev cluster: {e}"))?;
            }
            if let Some(pki) = pki {
                print_dev_banner(&node.bound, &pki);
            }
            node.run_until_signalled().await
        })
    })();
    let result = match result {
        // The runtime, and with it the store, is closed by now.
        Ok(server::Exit::Restart) => Err(enclave_node::defrag::restart_in_place()),
        other => other,
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            if matches!(log_format, config::LogFormat::Json) {
                tracing::error!(error = format!("{e:#}"), "enclave failed");
            }
            eprintln!("enclave: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_dev_banner(b: &server::Bound, pki: &dev::DevPki) {
    let op = pki.operator_dir.display();
    let ca = pki.ca_dir.join("ca.pem");
    println!(
        "\nEnclave dev node {:?} is running ({} CA {})\n  api    https://{}   try: curl --cacert {} https://{}/healthz\n  admin  https://{}   (mTLS: operator/monitor certificates)\n  peer   {}   (mTLS: node certificates)\nOperator certificate (sysadmin): {op}/cert.pem (key.pem, ca.pem beside it)\nTry:   enclavectl status --cert-dir {op} --endpoint https://{}\n",
        b.node_id,
        if pki.created_ca { "new" } else { "existing" },
        pki.fingerprint,
        b.api,
        ca.display(),
        b.api,
        b.admin,
        b.peer,
        b.admin
    );
}

/// `--join`: run the join protocol once; a restart on a joined data dir skips it.
async fn join_first(config: &config::Config, url: &str, args: &StartArgs) -> anyhow::Result<()> {
    if args.rebuild {
        for p in [
            "store",
            "snapshots",
            "store.watermark",
            "backups",
            "restored.json",
            "restored.done",
        ] {
            let path = config.data_dir.join(p);
            let r = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match r {
                Ok(()) => tracing::warn!(path = %path.display(), "rebuild: removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("rebuild: removing {}", path.display()));
                }
            }
        }
    } else if enclave_node::join::already_joined(&config.tls) {
        tracing::info!(cert = %config.tls.cert.display(), "this data dir already has a node certificate; ignoring --join");
        return Ok(());
    }
    for (key, addr) in [
        ("listen.peer", config.listen_peer),
        ("listen.api", config.listen_api),
        ("listen.admin", config.listen_admin),
    ] {
        anyhow::ensure!(
            addr.port() != 0,
            "--join needs a fixed port for {key} (other nodes must know where to reach this one)"
        );
    }
    let name = config.node_id.clone();
    let member = server::advertised_member(
        config,
        &name,
        config.listen_peer,
        config.listen_api,
        config.listen_admin,
    );
    enclave_node::join::perform(enclave_node::join::Joiner {
        url,
        token: args.token.as_deref().unwrap_or_default(),
        ca_hash: args.ca_hash.as_deref().unwrap_or_default(),
        name: &name,
        member,
        tls: &config.tls,
        keep_certificate: args.rebuild && enclave_node::join::already_joined(&config.tls),
    })
    .await
    .with_context(|| format!("joining the cluster via {url}"))
}

fn restore(
    from: &std::path::Path,
    data_dir: &std::path::Path,
    blobs_from: Option<&std::path::Path>,
) -> ExitCode {
    telemetry::init(config::LogFormat::Text, "warn");
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(backup::restore(from, data_dir, blobs_from)));
    match result {
        Ok(r) => {
            println!(
                "Restored {} records from {} (sha256 {}) into {}.",
                r.records,
                from.display(),
                r.sha256,
                data_dir.display()
            );
            println!(
                "Start the node on this data dir (with its TLS files); it becomes a one-node cluster"
            );
            println!(
                "holding the restored state. Then add the other nodes (cluster join-token / --join)."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("enclave restore: {e:#}");
            ExitCode::FAILURE
        }
    }
}
