//! `enclavectl bench files`: file upload and download throughput against a
//! running cluster, next to the disk's own sequential fsync'd write speed
//! measured in the same run (the physical floor every durable upload pays
//! at least once).
//!
//! 1. Floor: `dd if=/dev/zero of=<--data-dir>/... bs=4M oflag=direct
//!    conv=fsync` (`--floor-mib`, 256), timed, the file removed after.
//! 2. Uploads to the leader's api port: `--small-count` (50) files of
//!    `--small-mb` (1) MB with `POST /v1/files`, then `--large-count` (3)
//!    of `--large-mb` (100) MB through the resumable path (`POST
//!    /v1/uploads`, one `PUT` per chunk, `finish`), `--concurrency` (1)
//!    at a time: MB/s (1 MB = 10^6 bytes, as dd counts), p50/p99 per file
//!    and the ratio to the floor.
//! 3. Downloads of every uploaded file from a follower, one at a time,
//!    each compared byte for byte with what was sent.
//!
//! Every file is different in every 64 KiB block (a random buffer stamped
//! with the run, the file and the block), so content addressing cannot
//! deduplicate anything. A fresh member `bench-files-<run>` uploads them,
//! so runs do not share a quota; the files stay until the policy's
//! `unreferenced_hours` removes them (no message refers to them).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::blobs::{NodeAddr, members};
use super::files::FILES_POLICY_PATH;
use super::msgbench::{PASSWORD, percentile};
use super::{Output, print_json};
use crate::client::{Client, Session};

mod data;
mod floor;
mod transfer;

use data::*;
use floor::*;
use transfer::*;

const MB: u64 = 1_000_000;
/// 429 answers the whole run may wait out before giving up.
const RETRY_BUDGET: u64 = 2000;

#[derive(Debug, Args)]
pub struct FilesBench {
    /// Size of the small files in MB (10^6 bytes); 0 skips them.
    #[arg(long, default_value_t = 1)]
    pub small_mb: u64,
    /// How many small files.
    #[arg(long, default_value_t = 50)]
    pub small_count: usize,
    /// Size of the large files in MB, uploaded in chunks; 0 skips them.
    #[arg(long, default_value_t = 100)]
    pub large_mb: u64,
    /// How many large files.
    #[arg(long, default_value_t = 3)]
    pub large_count: usize,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Chunk PUTs in flight within one large upload (the web client sends
    /// one at a time).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// MiB the floor measurement writes with dd; 0 skips it.
    #[arg(long, default_value_t = 256)]
    pub floor_mib: u64,
    /// A directory on the same filesystem as the first node's data
    /// directory (e.g. its data dir): where dd writes its test file.
    /// Default: the current directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Skip the downloads from a follower.
    #[arg(long)]
    pub no_download: bool,
}

/// Refuse early, with the command that fixes it, when the file policy
/// would refuse the bench's uploads. A policy the caller may not read is
/// no reason to stop.
async fn check_policy(admin: &Client, largest: u64, total: u64) -> anyhow::Result<()> {
    let p: Value = match admin.get_json(FILES_POLICY_PATH).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  (could not read the file policy, going on: {e})");
            return Ok(());
        }
    };
    if let Some(max) = p["max_file_bytes"].as_u64()
        && max < largest
    {
        bail!(
            "the file policy allows files up to {max} bytes, the bench uploads {largest}: lower --large-mb/--small-mb or, as secadmin, `enclavectl files policy set --max-file-mib {}`",
            largest.div_ceil(1024 * 1024)
        );
    }
    if let Some(q) = p["user_quota_bytes"].as_u64()
        && q < total
    {
        bail!(
            "the per-member quota is {q} bytes, the bench uploads {total}: lower the counts or, as secadmin, `enclavectl files policy set --quota-gib {}`",
            total.div_ceil(1024 * 1024 * 1024)
        );
    }
    if let Some(types) = p["allowed_types"].as_array()
        && !types.iter().any(|t| t == "other")
    {
        bail!(
            "the file policy does not allow type \"other\" (the bench uploads random bytes): as secadmin, add it with `enclavectl files policy set --allow ...,other`"
        );
    }
    Ok(())
}

/// Create the bench member for this run and log it in on `api`.
async fn bench_member(admin: &Client, api: &Client, userid: &str) -> anyhow::Result<String> {
    super::msgbench::ensure_root_department(admin).await?;
    let body = json!({ "userid": userid, "name": "Files bench", "departments": [1], "password": PASSWORD });
    let (s, b) = admin
        .request(
            Method::POST,
            "/v1/directory/members",
            Some(body.to_string().into_bytes()),
        )
        .await?;
    if !s.is_success() && s != StatusCode::CONFLICT {
        bail!("creating {userid}: {s} {}", String::from_utf8_lossy(&b));
    }
    super::msgbench::login(api, userid).await
}

fn validate(args: &FilesBench) -> anyhow::Result<()> {
    if args.small_mb > 1024 {
        bail!("--small-mb must be at most 1024");
    }
    if args.large_mb > 10_240 {
        bail!("--large-mb must be at most 10240");
    }
    if args.small_count > 10_000 || args.large_count > 100 {
        bail!("--small-count must be at most 10000 and --large-count at most 100");
    }
    if args.streams == 0 || args.streams > 16 {
        bail!("--streams must be between 1 and 16");
    }
    if args.concurrency == 0 || args.concurrency > 64 {
        bail!("--concurrency must be between 1 and 64");
    }
    if args.floor_mib > 16_384 {
        bail!("--floor-mib must be at most 16384");
    }
    if (args.small_mb == 0 || args.small_count == 0)
        && (args.large_mb == 0 || args.large_count == 0)
    {
        bail!("nothing to upload: give --small-mb/--small-count or --large-mb/--large-count");
    }
    Ok(())
}

pub async fn run(
    args: FilesBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    validate(&args)?;
    let ca = cert_dir.join("ca.pem");
    let nodes = members(admin).await?;
    let leader = nodes
        .iter()
        .find(|n| n.leader && !n.api.is_empty())
        .cloned()
        .context("no leader with an api address in the cluster status (is the cluster initialized and led?)")?;
    let follower = nodes
        .iter()
        .find(|n| !n.leader && !n.api.is_empty())
        .cloned();
    let api_client = |n: &NodeAddr| -> anyhow::Result<Client> {
        Ok(Client::anonymous(&format!("https://{}", n.api), &ca)?
            .with_timeout(Duration::from_secs(600)))
    };

    // 1. The floor, while the disk is quiet.
    let floor = if args.floor_mib > 0 {
        let dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?,
        };
        eprintln!(
            "floor: dd {} MiB into {} ...",
            args.floor_mib,
            dir.display()
        );
        let mib = args.floor_mib;
        Some(tokio::task::spawn_blocking(move || measure_floor(&dir, mib)).await??)
    } else {
        None
    };
    if let (Some(f), Output::Text) = (&floor, output) {
        println!("{}", floor_line(f));
    }

    // 2. The member and the data.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let small = (args.small_mb * MB) as usize;
    let large = (args.large_mb * MB) as usize;
    let (small_n, large_n) = (
        if small > 0 { args.small_count } else { 0 },
        if large > 0 { args.large_count } else { 0 },
    );
    let total = (small * small_n + large * large_n) as u64;
    check_policy(admin, if large_n > 0 { large } else { small } as u64, total).await?;
    let userid = format!("bench-files-{run}");
    let up_client = api_client(&leader)?;
    eprintln!(
        "creating member {userid} and logging in on {} ...",
        leader.name
    );
    let token = bench_member(admin, &up_client, &userid).await?;
    let rate_limited = Arc::new(AtomicU64::new(0));
    let up = Api {
        client: up_client,
        auth: format!("Bearer {token}"),
        rate_limited: rate_limited.clone(),
    };
    let base = Arc::new(random_buffer(small.max(large), run));

    // 3. Uploads to the leader.
    let mut phases = Vec::new();
    let mut uploaded = Vec::new();
    for (n, size, chunked, first) in [
        (small_n, small, false, 0u64),
        (large_n, large, true, 1_000_000),
    ] {
        if n == 0 {
            continue;
        }
        eprintln!(
            "uploading {n} x {} to {} ({}) ...",
            size_label(size as u64),
            leader.name,
            if chunked {
                "resumable, chunk by chunk"
            } else {
                "POST /v1/files"
            }
        );
        let shape = Shape {
            run,
            size,
            chunked,
            streams: if chunked { args.streams } else { 1 },
        };
        let mut u = upload_phase(
            &up,
            &leader,
            base.clone(),
            shape,
            first,
            n,
            args.concurrency,
        )
        .await?;
        u.phase.ratio_to_floor = floor.as_ref().map(|f| u.phase.mb_per_sec / f.mb_per_sec);
        if output == Output::Text {
            println!("{}", phase_line(&u.phase));
        }
        phases.push(u.phase);
        uploaded.push((u.ids, size));
    }

    // 4. Downloads from a follower.
    if !args.no_download {
        let from = follower.clone().unwrap_or_else(|| {
            eprintln!("  (no follower with an api address: downloading from the leader)");
            leader.clone()
        });
        let down = Api {
            client: api_client(&from)?,
            auth: up.auth.clone(),
            rate_limited,
        };
        for (ids, size) in &uploaded {
            if ids.is_empty() {
                continue;
            }
            eprintln!(
                "downloading {} x {} from {} ...",
                ids.len(),
                size_label(*size as u64),
                from.name
            );
            let p = download_phase(&down, &from, &base, run, ids, *size).await?;
            if output == Output::Text {
                println!("{}", phase_line(&p));
            }
            phases.push(p);
        }
    }

    let target = phases
        .iter()
        .filter(|p| p.direction == "upload")
        .max_by_key(|p| p.file_bytes)
        .and_then(|p| p.ratio_to_floor.map(|r| (p.file_bytes, r)));
    if output == Output::Text {
        if let Some((size, r)) = target {
            println!(
                "target    {} uploads with 3-way replication at >= 40% of the floor: {:.0}% ({})",
                size_label(size),
                r * 100.0,
                if r >= 0.4 { "met" } else { "not met" }
            );
        }
    } else {
        print_json(&json!({
            "member": userid,
            "nodes": nodes.iter().map(|n| json!({"name": n.name, "api": n.api, "leader": n.leader})).collect::<Vec<_>>(),
            "floor": floor,
            "phases": phases,
            "target": target.map(|(size, r)| json!({"file_bytes": size, "ratio_to_floor": r, "met": r >= 0.4})),
        }))?;
    }
    let bad: usize = phases
        .iter()
        .map(|p| p.errors + (p.ok - p.verified.unwrap_or(p.ok)))
        .sum();
    if bad > 0 {
        bail!("{bad} uploads or downloads failed or came back different (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_into_the_whole_file() {
        let base = random_buffer(3 * STAMP_BLOCK + 123, 7);
        let whole = piece(&base, 1, 2, 0, base.len());
        assert_eq!(whole.len(), base.len());
        // Any cut gives the same bytes as the whole file.
        for cut in [
            1,
            31,
            STAMP_BLOCK - 5,
            STAMP_BLOCK,
            STAMP_BLOCK + 17,
            2 * STAMP_BLOCK + 9,
        ] {
            let mut joined = piece(&base, 1, 2, 0, cut);
            joined.extend(piece(&base, 1, 2, cut, base.len()));
            assert!(joined == whole, "cut at {cut}");
        }
        assert_eq!(&whole[..8], STAMP_MAGIC);
        assert_eq!(&whole[STAMP_BLOCK..STAMP_BLOCK + 8], STAMP_MAGIC);
    }

    #[test]
    fn every_block_of_every_file_differs() {
        let base = random_buffer(4 * STAMP_BLOCK, 9);
        let a = piece(&base, 5, 0, 0, base.len());
        let b = piece(&base, 5, 1, 0, base.len());
        let c = piece(&base, 6, 0, 0, base.len());
        for k in 0..4 {
            let r = k * STAMP_BLOCK..(k + 1) * STAMP_BLOCK;
            assert_ne!(a[r.clone()], b[r.clone()]);
            assert_ne!(a[r.clone()], c[r.clone()]);
        }
        // Deterministic: the downloads are checked against a recomputation.
        assert_eq!(a, piece(&base, 5, 0, 0, base.len()));
        assert_ne!(random_buffer(64, 1), random_buffer(64, 2));
        assert_eq!(random_buffer(13, 3).len(), 13);
    }

    #[test]
    fn dd_summary_is_parsed() {
        let gnu = "64+0 records in\n64+0 records out\n268435456 bytes (268 MB, 256 MiB) copied, 0.923451 s, 291 MB/s\n";
        assert_eq!(parse_dd(gnu), Some((268_435_456, 0.923451)));
        let old = "268435456 bytes (268 MB) copied, 1.5 s, 179 MB/s";
        assert_eq!(parse_dd(old), Some((268_435_456, 1.5)));
        assert_eq!(parse_dd("dd: failed to open 'x': Permission denied"), None);
    }

    #[test]
    fn floor_is_measured_and_its_file_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = measure_floor(dir.path(), 4).expect("dd runs");
        assert_eq!(f.bytes, 4 * 1024 * 1024);
        assert!(f.mb_per_sec > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        assert!(measure_floor(&dir.path().join("absent"), 4).is_err());
    }

    #[test]
    fn lines_say_size_node_rate_and_ratio() {
        let p = Phase {
            direction: "upload",
            node: "node-1".into(),
            node_role: "leader",
            file_bytes: 100 * MB,
            files: 3,
            ok: 3,
            errors: 0,
            concurrency: 1,
            streams: 1,
            seconds: 2.0,
            mb_per_sec: 150.0,
            p50_ms: 640.0,
            p99_ms: 700.04,
            max_ms: 700.04,
            ratio_to_floor: Some(0.4167),
            verified: None,
            rate_limited: 0,
            chunk_put: None,
            finish: None,
        };
        assert_eq!(
            phase_line(&p),
            "upload    100 MB x 3 to node-1 (leader), 1 at a time: 150.0 MB/s  p50 640.0 ms  p99 700.0 ms  max 700.0 ms  42% of floor"
        );
        let chunked = Phase {
            chunk_put: Breakdown::of(&[40.0, 50.0, 60.0]),
            finish: Breakdown::of(&[12.0]),
            streams: 4,
            ratio_to_floor: None,
            ..p
        };
        assert_eq!(
            phase_line(&chunked),
            "upload    100 MB x 3 to node-1 (leader), 1 at a time (4 chunks in flight): 150.0 MB/s  p50 640.0 ms  p99 700.0 ms  max 700.0 ms\n          each chunk PUT p50 50.0 ms p99 60.0 ms (3 chunks), finish p50 12.0 ms p99 12.0 ms"
        );
        assert_eq!(Breakdown::of(&[]), None);
        assert_eq!(size_label(MB / 4), "0.25 MB");
        let v = validate(&FilesBench {
            small_mb: 0,
            small_count: 50,
            large_mb: 100,
            large_count: 0,
            concurrency: 1,
            streams: 1,
            floor_mib: 256,
            data_dir: None,
            no_download: false,
        });
        assert!(v.is_err());
    }
}
