//! `enclave defrag`: give a stopped node's unused disk space back (see
//! `enclave_cluster::store::defrag` for how, and docs/operator/sizing.md
//! § Disk for when).

use std::path::Path;

use anyhow::{Context, bail};
use enclave_cluster::store::StoreError;
use enclave_cluster::store::defrag::{self, DefragReport};

/// Defragment the store in `data_dir`; `progress(done, total)` as records
/// are copied.
pub fn run(data_dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<DefragReport> {
    let store = data_dir.join("store");
    if !data_dir.is_dir() {
        bail!("--data-dir {}: no such directory", data_dir.display());
    }
    if !store.join("db").is_file() && !store.with_file_name("store.old").is_dir() {
        bail!(
            "--data-dir {}: no store here (expected {}/db)",
            data_dir.display(),
            store.display()
        );
    }
    match defrag::defrag(&store, progress) {
        Ok(r) => Ok(r),
        Err(StoreError::Io { error, .. })
        | Err(StoreError::Sled {
            error: sled::Error::Io(error),
            ..
        }) if error.to_string().contains("could not acquire lock") => {
            bail!(
                "{} is in use: stop the node first (systemctl stop enclave), defragment, then start it again",
                store.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("defragmenting {}", store.display())),
    }
}

/// A node asked to defragment itself while the cluster runs
/// (`POST /v1/node/defrag`, `enclavectl node defrag` / `cluster defrag`)
/// leaves this file in its data dir, stops gracefully and starts again
/// with the same command line; the starting process finds the file,
/// defragments the store before opening it ([`run_requested`]) and
/// removes the file. An operator can do the same by hand: create the
/// file and restart the node.
pub const REQUEST_FILE: &str = "defrag.requested";

/// Leave the request in `data_dir`, durably (file and directory synced):
/// once the node has said it restarts to defragment, a crash before the
/// restart must not lose the request.
pub fn request(data_dir: &Path, requested_by: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(REQUEST_FILE);
    let body = serde_json::json!({
        "requested_by": requested_by,
        "requested_at_unix": unix_now(),
    });
    let mut f = std::fs::File::create(&path)?;
    f.write_all(body.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// What the last requested defragmentation did (written by
/// [`run_requested`], read by `GET /v1/node/defrag`).
pub const OUTCOME_FILE: &str = "defrag.last.json";

/// This node's wall clock in seconds (`crate::http::now_ms`).
fn unix_now() -> u64 {
    crate::http::now_ms() / 1000
}

/// The outcome of the last requested defragmentation, if any.
pub fn last_outcome(data_dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir.join(OUTCOME_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a defragmentation is requested for the next start.
pub fn requested(data_dir: &Path) -> bool {
    data_dir.join(REQUEST_FILE).is_file()
}

/// At start, before the store is opened: when [`REQUEST_FILE`] is there,
/// defragment the store (progress in the log, and in systemd's `STATUS=`),
/// then remove the file. A failed defragmentation leaves the store as it
/// was (see `enclave_cluster::store::defrag`); it is logged and the node
/// starts on the original store, so a request never keeps a node down.
pub fn run_requested(data_dir: &Path) -> Option<DefragReport> {
    if !requested(data_dir) {
        return None;
    }
    let notifier = crate::sdnotify::Notifier::from_env();
    let store = data_dir.join("store");
    tracing::warn!(store = %store.display(), "defragmenting the store before starting (requested by {REQUEST_FILE}); the node serves again when it is done");
    let mut last = None;
    let mut progress = |done: u64, total: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100) / 10 * 10;
        if last != Some(pct) {
            last = Some(pct);
            tracing::info!(done, total, "defragmenting the store: {pct}%");
            if let Some(n) = &notifier {
                // Started by systemd (a restart by hand): each step may
                // take minutes on a large store; keep the start timeout
                // from killing it (ignored once the unit is active).
                n.send(&format!(
                    "STATUS=defragmenting the store: {pct}%\nEXTEND_TIMEOUT_USEC=900000000"
                ));
            }
        }
    };
    let started = unix_now();
    let result = run(data_dir, &mut progress);
    let outcome = match &result {
        Ok(r) => {
            serde_json::json!({ "ok": true, "started_at_unix": started, "finished_at_unix": unix_now(), "report": r })
        }
        Err(e) => {
            serde_json::json!({ "ok": false, "started_at_unix": started, "finished_at_unix": unix_now(), "error": format!("{e:#}") })
        }
    };
    let outcome_path = data_dir.join(OUTCOME_FILE);
    if let Err(e) = std::fs::write(&outcome_path, outcome.to_string()) {
        tracing::warn!(path = %outcome_path.display(), error = %e, "cannot record the defragmentation's outcome");
    }
    let report = match result {
        Ok(r) => {
            tracing::warn!(
                records = r.records,
                logical_bytes = r.logical_bytes,
                bytes_before = r.bytes_before,
                bytes_after = r.bytes_after,
                seconds = r.seconds,
                "store defragmented"
            );
            Some(r)
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "defragmentation failed; starting on the store as it was"
            );
            None
        }
    };
    let path = data_dir.join(REQUEST_FILE);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::error!(path = %path.display(), error = %e, "cannot remove the defragmentation request; remove it by hand or the next start defragments again");
    }
    report
}

/// Start this program again in this process, with the same arguments
/// (`--rebuild` left out: the store it wiped is rebuilt by now). Only
/// returns on failure. `exec` keeps the process id, so systemd, a shell
/// or a test harness keeps watching the same process; every file this
/// process opened is closed on `exec` (Rust opens them close-on-exec),
/// sled's lock included. The binary is this process's own
/// (`/proc/self/exe`, even if a new one was installed over it since: a
/// defragmentation never upgrades by surprise); the configuration file
/// and environment are read again, as at any start.
pub fn restart_in_place() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let Some(program) = args.next() else {
        return anyhow::anyhow!("cannot restart: no program name in argv");
    };
    let args: Vec<_> = args.filter(|a| a != "--rebuild").collect();
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(&program)
        .args(&args)
        .exec();
    anyhow::Error::new(error).context(format!(
        "restarting {} (/proc/self/exe) to defragment the store",
        std::path::Path::new(&program).display()
    ))
}
