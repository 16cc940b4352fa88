//! `enclavectl audit ...`: read, export and verify the audit chain
//! (auditor certificate). `audit verify FILE` works offline.
//!
//! Export format (JSON lines): a header line
//! `{"format": "enclave-audit/1", "prev_seq": N, "prev_hash": HEX}` naming
//! the record the export continues from (0 and zeros for the first), then
//! one `{"record": {...}, "hash": HEX}` per line in chain order.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use enclave_cluster::audit::{Linked, verify};
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::Client;

pub const FORMAT: &str = "enclave-audit/1";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest records.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: u64,
    },
    /// Write the whole chain to FILE (JSON lines; never overwrites).
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Check every hash link of an export offline, or of the cluster's
    /// chain with --live; reports the first bad record exactly.
    Verify {
        /// An export written by `audit export`.
        file: Option<PathBuf>,
        /// Verify the chain the node at --endpoint holds.
        #[arg(long, conflicts_with = "file")]
        live: bool,
    },
}

async fn fetch(client: &Client, after: u64, limit: usize) -> anyhow::Result<(Vec<Linked>, u64)> {
    let v: Value = client
        .get_json(&format!("/v1/audit?after={after}&limit={limit}"))
        .await?;
    let records: Vec<Linked> =
        serde_json::from_value(v["records"].clone()).context("decoding audit records")?;
    Ok((records, v["head"]["seq"].as_u64().unwrap_or(0)))
}

/// Every record, in pages.
async fn fetch_all(client: &Client) -> anyhow::Result<Vec<Linked>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (page, _) = fetch(client, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.record.seq;
        out.extend(page);
    }
    Ok(out)
}

fn line(l: &Linked) -> String {
    let r = &l.record;
    let when = time::OffsetDateTime::from_unix_timestamp_nanos(r.time_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    format!(
        "{:>6}  {when}  {:<24} {:<18} {:<22} {:<16} from {} via {} req {}",
        r.seq,
        r.action,
        r.target,
        format!("{:?}:{}", r.origin.kind, r.origin.id).to_lowercase(),
        r.outcome,
        if r.origin.source.is_empty() {
            "-"
        } else {
            &r.origin.source
        },
        r.origin.node,
        if r.origin.request_id.is_empty() {
            "-"
        } else {
            &r.origin.request_id
        },
    )
}

pub async fn run(cmd: AuditCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Tail { count } => {
            let (_, head) = fetch(client, 0, 1).await?;
            let (records, _) = fetch(client, head.saturating_sub(count), count as usize).await?;
            match output {
                Output::Json => print_json(&records)?,
                Output::Text => {
                    for r in &records {
                        println!("{}", line(r));
                    }
                }
            }
            Ok(())
        }
        AuditCommand::Export { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting it", out.display());
            }
            let records = fetch_all(client).await?;
            let tmp = out.with_extension("partial");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            writeln!(
                f,
                "{}",
                json!({ "format": FORMAT, "prev_seq": 0, "prev_hash": hex::encode([0u8; 32]) })
            )?;
            for r in &records {
                writeln!(f, "{}", serde_json::to_string(r)?)?;
            }
            f.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &out)
                .with_context(|| format!("renaming to {}", out.display()))?;
            let last = records.last().map_or(0, |r| r.record.seq);
            match output {
                Output::Json => {
                    print_json(&json!({ "file": out, "records": records.len(), "last_seq": last }))?
                }
                Output::Text => println!(
                    "exported {} records (1..={last}) to {}",
                    records.len(),
                    out.display()
                ),
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(file), ..
        } => verify_file(&file, output),
        AuditCommand::Verify { live: true, .. } => {
            let records = fetch_all(client).await?;
            report(
                verify(0, [0; 32], &records),
                records.len(),
                "the cluster's chain",
                output,
            )
        }
        AuditCommand::Verify { .. } => bail!("give an export FILE or --live"),
    }
}

fn report(
    result: Result<(u64, [u8; 32]), enclave_cluster::audit::Break>,
    n: usize,
    what: &str,
    output: Output,
) -> anyhow::Result<()> {
    match result {
        Ok((seq, hash)) => {
            match output {
                Output::Json => print_json(
                    &json!({ "ok": true, "records": n, "last_seq": seq, "head_hash": hex::encode(hash) }),
                )?,
                Output::Text => println!(
                    "ok: {what}: {n} records, every hash link verifies (last {seq}, head {})",
                    hex::encode(hash)
                ),
            }
            Ok(())
        }
        Err(b) => {
            if output == Output::Json {
                print_json(&json!({ "ok": false, "first_bad_seq": b.seq, "reason": b.reason }))?;
            }
            bail!("{what}: {b}")
        }
    }
}

/// Verify an export offline.
pub fn verify_file(path: &Path, output: Output) -> anyhow::Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = std::io::BufReader::new(f).lines();
    let header: Value = match lines.next() {
        Some(l) => serde_json::from_str(&l?)
            .with_context(|| format!("{}: line 1 is not an export header", path.display()))?,
        None => bail!("{} is empty", path.display()),
    };
    if header["format"] != FORMAT {
        bail!(
            "{}: not an Enclave audit export (format {:?})",
            path.display(),
            header["format"]
        );
    }
    let prev_seq = header["prev_seq"].as_u64().unwrap_or(0);
    let mut prev_hash = [0u8; 32];
    if let Some(h) = header["prev_hash"].as_str() {
        let b = hex::decode(h)
            .ok()
            .filter(|b| b.len() == 32)
            .with_context(|| {
                format!(
                    "{}: prev_hash in the header is not 32 bytes of hex",
                    path.display()
                )
            })?;
        prev_hash.copy_from_slice(&b);
    }
    let mut records = Vec::new();
    for (i, l) in lines.enumerate() {
        let l = l?;
        let r: Linked = serde_json::from_str(&l).with_context(|| {
            format!(
                "{}: line {} is not an audit record (record {} or later is damaged)",
                path.display(),
                i + 2,
                prev_seq + records.len() as u64 + 1
            )
        })?;
        records.push(r);
    }
    report(
        verify(prev_seq, prev_hash, &records),
        records.len(),
        &path.display().to_string(),
        output,
    )
}
