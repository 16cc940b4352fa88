//! `enclavectl backup ...`: consistent backups of the replicated state.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use enclave_cluster::store::snapshot;
use serde_json::json;

use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Stream a consistent backup from the node at --endpoint into FILE.
    Create {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a backup file end to end (format and SHA-256); offline.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub async fn create(client: &Client, out: &PathBuf, output: Output) -> anyhow::Result<()> {
    if out.exists() {
        bail!(
            "{} already exists; choose another --out (backups are never overwritten)",
            out.display()
        );
    }
    let tmp = out.with_extension("partial");
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last_print = Instant::now();
    let (bytes, headers) = client
        .clone()
        .with_timeout(std::time::Duration::from_secs(3600))
        .download("/v1/backup", &tmp, |done, total| {
            if output == Output::Text
                && (last_print.elapsed().as_millis() >= 200 || Some(done) == total)
            {
                last_print = Instant::now();
                let line = match total {
                    Some(t) if t > 0 => {
                        let pct = done * 100 / t;
                        let bar = "#".repeat((pct / 4) as usize);
                        format!("[{bar:<25}] {pct:>3}%  {:.1}/{:.1} MiB", mib(done), mib(t))
                    }
                    _ => format!("{:.1} MiB", mib(done)),
                };
                if tty {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
                let _ = std::io::stderr().flush();
            }
        })
        .await
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
    if tty && output == Output::Text {
        eprintln!();
    }
    let info = snapshot::verify(&tmp).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    let announced = headers
        .get("x-enclave-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !announced.is_empty() && announced != info.sha256 {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "backup checksum {} differs from the node's {announced}; the transfer was damaged",
            info.sha256
        );
    }
    std::fs::rename(&tmp, out)
        .with_context(|| format!("moving the backup into {}", out.display()))?;
    let index = info.meta.last_log_id.map(|l| l.index);
    if output == Output::Json {
        return print_json(
            &json!({ "file": out, "bytes": bytes, "records": info.records, "sha256": info.sha256, "last_index": index }),
        );
    }
    println!(
        "Backup written to {} ({:.1} MiB, {} records, up to log index {}) in {:.1}s",
        out.display(),
        mib(bytes),
        info.records,
        index.map_or("-".into(), |i| i.to_string()),
        start.elapsed().as_secs_f64()
    );
    println!("sha256 {}", info.sha256);
    Ok(())
}

pub fn verify(file: &PathBuf, output: Output) -> anyhow::Result<()> {
    let info = snapshot::verify(file)?;
    let index = info.meta.last_log_id.map(|l| l.index);
    let members: Vec<String> = info
        .meta
        .last_membership
        .membership()
        .nodes()
        .map(|(_, m)| m.name.clone())
        .collect();
    if output == Output::Json {
        return print_json(
            &json!({ "file": file, "ok": true, "bytes": info.bytes, "records": info.records, "sha256": info.sha256, "last_index": index, "members": members }),
        );
    }
    println!("{}: OK", file.display());
    println!("  records     {}", info.records);
    println!("  bytes       {}", info.bytes);
    println!(
        "  last index  {}",
        index.map_or("-".into(), |i| i.to_string())
    );
    println!("  taken from  {}", members.join(", "));
    println!("  sha256      {}", info.sha256);
    Ok(())
}
