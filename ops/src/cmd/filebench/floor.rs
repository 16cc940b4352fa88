//! The physical floor: the disk's own sequential fsync'd write speed (dd).

use super::*;

#[derive(Debug, Serialize)]
pub(super) struct Floor {
    pub(super) dir: PathBuf,
    pub(super) bytes: u64,
    pub(super) seconds: f64,
    pub(super) mb_per_sec: f64,
    /// `oflag=direct` was accepted (false: the filesystem refused O_DIRECT
    /// and the floor is `conv=fsync` alone).
    pub(super) direct: bool,
    pub(super) dd_summary: String,
}

/// `(bytes, seconds)` from dd's summary line (`LC_ALL=C`):
/// `268435456 bytes (268 MB, 256 MiB) copied, 0.92 s, 291 MB/s`.
pub(super) fn parse_dd(stderr: &str) -> Option<(u64, f64)> {
    let line = stderr.lines().rev().find(|l| l.contains(" copied"))?;
    let bytes = line.split_whitespace().next()?.parse().ok()?;
    let secs = line
        .split(", ")
        .find_map(|p| p.trim().strip_suffix(" s")?.trim().parse::<f64>().ok())?;
    Some((bytes, secs))
}

/// The physical floor: sequential 4 MiB direct writes, fsync'd at the end.
pub(super) fn measure_floor(dir: &Path, mib: u64) -> anyhow::Result<Floor> {
    if !dir.is_dir() {
        bail!("--data-dir {}: not a directory", dir.display());
    }
    let file = dir.join(format!(".enclave-bench-floor-{}", std::process::id()));
    let count = mib.div_ceil(4);
    let run = |direct: bool| -> anyhow::Result<(std::process::Output, f64)> {
        let mut cmd = std::process::Command::new("dd");
        cmd.env("LC_ALL", "C").args([
            "if=/dev/zero".to_string(),
            format!("of={}", file.display()),
            "bs=4M".into(),
            format!("count={count}"),
            "conv=fsync".into(),
        ]);
        if direct {
            cmd.arg("oflag=direct");
        }
        let t = Instant::now();
        let out = cmd
            .output()
            .context("running dd (is coreutils installed?)")?;
        Ok((out, t.elapsed().as_secs_f64()))
    };
    let result = (|| {
        let (mut out, mut secs) = run(true)?;
        let mut direct = true;
        if !out.status.success() {
            eprintln!(
                "  dd with oflag=direct failed ({}); measuring with conv=fsync alone",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            (out, secs) = run(false)?;
            direct = false;
            if !out.status.success() {
                bail!("dd failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let (bytes, secs) = parse_dd(&stderr).unwrap_or((count * 4 * 1024 * 1024, secs));
        Ok(Floor {
            dir: dir.to_path_buf(),
            bytes,
            seconds: secs,
            mb_per_sec: bytes as f64 / MB as f64 / secs.max(1e-9),
            direct,
            dd_summary: stderr
                .lines()
                .rev()
                .find(|l| l.contains(" copied"))
                .unwrap_or_default()
                .to_string(),
        })
    })();
    let _ = std::fs::remove_file(&file);
    result
}

pub(super) fn floor_line(f: &Floor) -> String {
    format!(
        "floor     dd bs=4M {}conv=fsync, {} MiB in {}: {:.1} MB/s ({:.2} s)",
        if f.direct { "oflag=direct " } else { "" },
        f.bytes / (1024 * 1024),
        f.dir.display(),
        f.mb_per_sec,
        f.seconds
    )
}
