//! `enclavectl audit ...`: read, export and verify the audit chain
//! (auditor certificate). `audit verify FILE` works offline.
//!
//! Export format (JSON lines): a header line
//! `{"format": "enclave-audit/1", "prev_seq": N, "prev_hash": HEX}` naming
//! the record the export continues from (0 and zeros for the first), then
//! one `{"record": {...}, "hash": HEX}` per line in chain order, with each
//! stored checkpoint `{"checkpoint": {...}}` right after the record it
//! covers. The last line is always a checkpoint over the last record, signed
//! by a node when the export was made: a cut-off tail cannot hide.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use enclave_cluster::audit::{Checkpoint, Linked, verify, verify_checkpoint};
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
    /// Records matching every filter given.
    Search {
        /// Actor id (userid or operator certificate name).
        #[arg(long)]
        actor: Option<String>,
        /// Action, or its prefix (e.g. `auth.` or `directory.member`).
        #[arg(long)]
        action: Option<String>,
        /// From this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Move records older than the retention (180 days by default) out of
    /// the chain: give a verified export that holds them; its SHA-256 is
    /// anchored by a new record in the chain.
    Archive {
        /// Archive records up to and including this one (a checkpoint must
        /// cover it: the export's closing checkpoint does).
        #[arg(long)]
        upto: u64,
        /// The export that holds them (verified first).
        #[arg(long)]
        export: PathBuf,
        /// CA certificate for verifying the export (default: ca.pem in --cert-dir).
        #[arg(long)]
        ca: Option<PathBuf>,
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
        /// The cluster CA certificate that checkpoint signatures must chain
        /// to (default: ca.pem in --cert-dir).
        #[arg(long)]
        ca: Option<PathBuf>,
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
/// Every record up to the head as it was at the first request. (Reading
/// the trail is itself recorded, so the chain grows while we read: stop at
/// the head we started from.)
async fn fetch_all(client: &Client) -> anyhow::Result<Vec<Linked>> {
    let mut out = Vec::new();
    let mut after = 0;
    let mut until: Option<u64> = None;
    loop {
        let (page, head) = fetch(client, after, 10_000).await?;
        let until = *until.get_or_insert(head);
        let Some(last) = page.last().map(|l| l.record.seq) else {
            break;
        };
        out.extend(page.into_iter().filter(|l| l.record.seq <= until));
        after = last;
        if after >= until {
            break;
        }
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
        AuditCommand::Search {
            actor,
            action,
            since,
            until,
            limit,
        } => {
            let ms = |flag: &str, v: &str| -> anyhow::Result<u64> {
                let t =
                    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                        .with_context(|| format!("{flag}: {v:?} is not an RFC 3339 time"))?;
                Ok((t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
            };
            let mut q = format!("/v1/audit?limit={limit}");
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect::<String>()
            };
            if let Some(a) = &actor {
                q.push_str(&format!("&actor={}", enc(a)));
            }
            if let Some(a) = &action {
                q.push_str(&format!("&action={}", enc(a)));
            }
            if let Some(t) = &since {
                q.push_str(&format!("&since_ms={}", ms("--since", t)?));
            }
            if let Some(t) = &until {
                q.push_str(&format!("&until_ms={}", ms("--until", t)?));
            }
            let v: Value = client.get_json(&q).await?;
            let records: Vec<Linked> =
                serde_json::from_value(v["records"].clone()).context("decoding audit records")?;
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
        AuditCommand::Export { out } => export(client, &out, output).await,
        AuditCommand::Archive { upto, export, ca } => {
            let ca = ca.unwrap_or_else(|| client.ca_path().to_path_buf());
            // Only a complete, verified export may stand in for the records.
            verify_file(&export, &ca, Output::Text)
                .with_context(|| format!("{} does not verify; not archiving", export.display()))?;
            let bytes =
                std::fs::read(&export).with_context(|| format!("reading {}", export.display()))?;
            let sha = hex::encode(ring_sha256(&bytes));
            let v: Value = client
                .post_json(
                    "/v1/audit/archive",
                    &json!({ "upto_seq": upto, "export_sha256": sha }),
                )
                .await?;
            match output {
                Output::Json => print_json(&v)?,
                Output::Text => println!(
                    "archived records up to {upto}; the chain now anchors {} (sha256:{sha})",
                    export.display()
                ),
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(file),
            ca,
            ..
        } => verify_file(&file, ca.as_deref().unwrap_or(client.ca_path()), output),
        AuditCommand::Verify { live: true, .. } => verify_live(client, output).await,
        AuditCommand::Verify { .. } => bail!("give an export FILE or --live"),
    }
}

async fn export(client: &Client, out: &Path, output: Output) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} exists; not overwriting it", out.display());
    }
    // Close the export with a fresh signed checkpoint over the head.
    let closing: Checkpoint = client
        .post_json("/v1/audit/checkpoint", &json!({}))
        .await
        .context("asking the node for a closing checkpoint")?;
    let mut records = fetch_all(client).await?;
    records.retain(|r| r.record.seq <= closing.seq);
    let mut cps = fetch_checkpoints(client).await?;
    cps.retain(|c| c.seq <= closing.seq);
    if !cps.iter().any(|c| c.seq == closing.seq) {
        cps.push(closing.clone());
    }
    let tmp = out.with_extension("partial");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let (base_seq, base_hash) = fetch_base(client).await?;
    let header = json!({ "format": FORMAT, "prev_seq": base_seq, "prev_hash": base_hash });
    writeln!(f, "{header}")?;
    let mut cp_iter = cps.iter().peekable();
    for r in &records {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
        while let Some(c) = cp_iter.next_if(|c| c.seq == r.record.seq) {
            writeln!(f, "{}", json!({ "checkpoint": c }))?;
        }
    }
    f.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    let last = records.last().map_or(0, |r| r.record.seq);
    match output {
        Output::Json => {
            print_json(&json!({ "file": out, "records": records.len(), "last_seq": last }))?
        }
        Output::Text => println!(
            "exported {} records (1..={last}) to {}, closed by a checkpoint signed by {}",
            records.len(),
            out.display(),
            closing.signer
        ),
    }
    Ok(())
}

async fn verify_live(client: &Client, output: Output) -> anyhow::Result<()> {
    let records = fetch_all(client).await?;
    let (base_seq, base_hash) = fetch_base(client).await?;
    let mut prev = [0u8; 32];
    if let Ok(b) = hex::decode(&base_hash)
        && b.len() == 32
    {
        prev.copy_from_slice(&b);
    }
    let result = verify(base_seq, prev, &records);
    // Every stored checkpoint must match the chain and be signed by a node
    // of this CA.
    let cas = load_cas(client.ca_path())?;
    let hashes: std::collections::HashMap<u64, &str> = records
        .iter()
        .map(|r| (r.record.seq, r.hash.as_str()))
        .collect();
    let last_seq = records.last().map_or(0, |r| r.record.seq);
    // Checkpoints made after we read the records cover records we did not read.
    for c in fetch_checkpoints(client)
        .await?
        .into_iter()
        .filter(|c| c.seq <= last_seq)
    {
        if hashes.get(&c.seq) != Some(&c.hash.as_str()) {
            bail!(
                "the cluster's chain: checkpoint {} does not match record {}",
                c.seq,
                c.seq
            );
        }
        verify_checkpoint(&cas, &c)
            .map_err(|e| anyhow::anyhow!("the cluster's chain: checkpoint {}: {e}", c.seq))?;
    }
    report(result, records.len(), "the cluster's chain", output)
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

async fn fetch_checkpoints(client: &Client) -> anyhow::Result<Vec<Checkpoint>> {
    let mut out: Vec<Checkpoint> = Vec::new();
    let mut after = 0;
    loop {
        let v: Value = client
            .get_json(&format!("/v1/audit/checkpoints?after={after}&limit=10000"))
            .await?;
        let page: Vec<Checkpoint> =
            serde_json::from_value(v["checkpoints"].clone()).context("decoding checkpoints")?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page);
    }
    Ok(out)
}

fn load_cas(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs = enclave_certs::files::load_certs(path)?;
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

/// Verify an export offline: every hash link, every checkpoint's signature
/// (by a node certificate of the CA in `ca`), and a final checkpoint over
/// the last record.
pub fn verify_file(path: &Path, ca: &Path, output: Output) -> anyhow::Result<()> {
    let cas = load_cas(ca).with_context(|| {
        format!(
            "loading the CA certificate {} (give it with --ca)",
            ca.display()
        )
    })?;
    let name = path.display().to_string();
    let f = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
    let mut lines = std::io::BufReader::new(f).lines();
    let header: Value = match lines.next() {
        Some(l) => serde_json::from_str(&l?)
            .with_context(|| format!("{name}: line 1 is not an export header"))?,
        None => bail!("{name} is empty"),
    };
    if header["format"] != FORMAT {
        bail!(
            "{name}: not an Enclave audit export (format {:?})",
            header["format"]
        );
    }
    let prev_seq = header["prev_seq"].as_u64().unwrap_or(0);
    let mut prev_hash = [0u8; 32];
    if let Some(h) = header["prev_hash"].as_str() {
        let b = hex::decode(h)
            .ok()
            .filter(|b| b.len() == 32)
            .with_context(|| format!("{name}: prev_hash in the header is not 32 bytes of hex"))?;
        prev_hash.copy_from_slice(&b);
    }
    let mut records = Vec::new();
    let mut ends_with_checkpoint = false;
    let mut checked = 0usize;
    let (mut seq, mut hash) = (prev_seq, prev_hash);
    for (i, l) in lines.enumerate() {
        let l = l?;
        let v: Value = serde_json::from_str(&l).with_context(|| {
            format!(
                "{name}: line {} is not JSON (record {} or later is damaged)",
                i + 2,
                seq + 1
            )
        })?;
        if let Some(c) = v.get("checkpoint") {
            let c: Checkpoint = serde_json::from_value(c.clone())
                .with_context(|| format!("{name}: line {} is not a checkpoint", i + 2))?;
            // The chain up to here must verify before the checkpoint counts.
            (seq, hash) = match verify(seq, hash, &records) {
                Ok(h) => h,
                Err(b) => return report(Err(b), 0, &name, output),
            };
            records.clear();
            if c.seq != seq || c.hash != hex::encode(hash) {
                bail!(
                    "{name}: audit chain broken at record {}: the checkpoint there does not match the chain",
                    c.seq.min(seq)
                );
            }
            verify_checkpoint(&cas, &c).map_err(|e| {
                anyhow::anyhow!("{name}: checkpoint over record {} is not valid: {e}", c.seq)
            })?;
            checked += 1;
            ends_with_checkpoint = true;
            continue;
        }
        let r: Linked = serde_json::from_value(v).with_context(|| {
            format!(
                "{name}: line {} is not an audit record (record {} is damaged)",
                i + 2,
                seq + records.len() as u64 + 1
            )
        })?;
        records.push(r);
        ends_with_checkpoint = false;
    }
    let total = seq - prev_seq + records.len() as u64;
    let result = verify(seq, hash, &records);
    if result.is_ok() && !ends_with_checkpoint {
        bail!(
            "{name}: the export does not end with a signed checkpoint over its last record: its tail may have been cut off (records after {seq} are unproven)"
        );
    }
    if output == Output::Text && result.is_ok() {
        println!("{checked} signed checkpoints verified");
    }
    report(result, total as usize, &name, output)
}

fn ring_sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Where the stored chain starts (after archived records).
async fn fetch_base(client: &Client) -> anyhow::Result<(u64, String)> {
    let v: Value = client.get_json("/v1/audit?limit=1").await?;
    Ok((
        v["base"]["seq"].as_u64().unwrap_or(0),
        v["base"]["hash"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| hex::encode([0u8; 32])),
    ))
}
