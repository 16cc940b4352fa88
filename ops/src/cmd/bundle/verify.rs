//! Verifying a bundle (tarball or directory) file by file against its signed SHA256SUMS.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;

use super::keys::key_id;
use super::sign::{hash_tree, sha256_reader, sums_path};
use super::{MAX_SUMS_BYTES, SIG, SUMS};

/// One thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The file's SHA-256 is not the one in SHA256SUMS.
    Differs {
        path: String,
        expected: String,
        found: String,
    },
    /// Listed in SHA256SUMS but not in the bundle.
    Missing { path: String },
    /// In the bundle but not listed in SHA256SUMS.
    Extra { path: String },
    /// Not a regular file or directory (a link, a device), or a path that
    /// leaves the bundle directory.
    Unexpected { path: String, reason: String },
    /// SHA256SUMS.sig does not verify SHA256SUMS with the given key.
    BadSignature { path: String, reason: String },
    /// A line of SHA256SUMS that is not `<sha256 hex>  <path>`.
    Malformed { path: String, reason: String },
}

impl Problem {
    /// The file this problem is about.
    pub fn path(&self) -> &str {
        match self {
            Problem::Differs { path, .. }
            | Problem::Missing { path }
            | Problem::Extra { path }
            | Problem::Unexpected { path, .. }
            | Problem::BadSignature { path, .. }
            | Problem::Malformed { path, .. } => path,
        }
    }
}

/// The outcome of `bundle verify`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub bundle: PathBuf,
    /// The top directory of the tarball (empty for a directory).
    pub top: String,
    pub key: String,
    /// Whether SHA256SUMS.sig verifies SHA256SUMS with the key.
    pub signature_ok: bool,
    /// Files listed in SHA256SUMS.
    pub listed: usize,
    /// Listed files whose content matches.
    pub matching: usize,
    pub problems: Vec<Problem>,
    pub ok: bool,
}

/// What a bundle holds: its regular files' hashes plus SHA256SUMS and the
/// signature in full.
#[derive(Debug, Default)]
struct Contents {
    top: String,
    files: BTreeMap<String, String>,
    sums: Option<Vec<u8>>,
    sig: Option<Vec<u8>>,
    problems: Vec<Problem>,
}

fn read_small(mut r: impl Read, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r)
        .take(MAX_SUMS_BYTES + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {what}"))?;
    if buf.len() as u64 > MAX_SUMS_BYTES {
        bail!("{what} is larger than {MAX_SUMS_BYTES} bytes");
    }
    Ok(buf)
}

fn read_dir_bundle(dir: &Path) -> anyhow::Result<Contents> {
    let mut c = Contents::default();
    let files = hash_tree(dir)?;
    for name in [SUMS, SIG] {
        let p = dir.join(name);
        if p.is_file() {
            let bytes = read_small(
                fs::File::open(&p).with_context(|| format!("{}: cannot open", p.display()))?,
                name,
            )?;
            if name == SUMS {
                c.sums = Some(bytes);
            } else {
                c.sig = Some(bytes);
            }
        }
    }
    c.files = files;
    Ok(c)
}

fn read_tar_bundle(file: &Path) -> anyhow::Result<Contents> {
    let f = fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(f));
    let mut archive = tar::Archive::new(gz);
    let mut c = Contents::default();
    let mut top: Option<String> = None;
    let mut last = String::from("(start of the archive)");
    let entries = archive
        .entries()
        .with_context(|| format!("{}: not a .tar.gz archive", file.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| {
            format!(
                "{}: the archive is damaged after entry {last} (not a valid .tar.gz)",
                file.display()
            )
        })?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        last = shown.clone();
        let ty = entry.header().entry_type();
        let path = match entry.path() {
            Ok(p) => p.into_owned(),
            Err(_) => {
                c.problems.push(Problem::Unexpected {
                    path: shown,
                    reason: "unusable file name".into(),
                });
                continue;
            }
        };
        let rel = match sums_path(&path) {
            Ok(r) => r,
            Err(reason) => {
                c.problems.push(Problem::Unexpected {
                    path: shown,
                    reason,
                });
                continue;
            }
        };
        // Every entry lives under one top directory.
        let (first, rest) = match rel.split_once('/') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (rel.clone(), None),
        };
        let top_name = top.get_or_insert_with(|| first.clone()).clone();
        if first != top_name {
            c.problems.push(Problem::Extra { path: rel });
            continue;
        }
        if ty.is_dir() {
            continue;
        }
        if ty.is_pax_global_extensions() || ty.is_pax_local_extensions() {
            continue;
        }
        let Some(inner) = rest else {
            c.problems.push(Problem::Unexpected {
                path: rel,
                reason: "a file beside the bundle directory".into(),
            });
            continue;
        };
        if !ty.is_file() {
            let reason = if ty.is_symlink() {
                "a symbolic link (a bundle holds only regular files and directories)"
            } else if ty.is_hard_link() {
                "a hard link (a bundle holds only regular files and directories)"
            } else {
                "not a regular file (a bundle holds only regular files and directories)"
            };
            c.problems.push(Problem::Unexpected {
                path: inner,
                reason: reason.into(),
            });
            continue;
        }
        if inner == SUMS || inner == SIG {
            let bytes = read_small(&mut entry, &inner)?;
            let slot = if inner == SUMS {
                &mut c.sums
            } else {
                &mut c.sig
            };
            if slot.replace(bytes).is_some() {
                c.problems.push(Problem::Unexpected {
                    path: inner,
                    reason: "appears twice in the archive".into(),
                });
            }
            continue;
        }
        let digest = sha256_reader(&mut entry).with_context(|| {
            format!(
                "{}: the archive is damaged inside {rel} (not a valid .tar.gz)",
                file.display()
            )
        })?;
        if c.files.insert(inner.clone(), digest).is_some() {
            c.problems.push(Problem::Unexpected {
                path: inner,
                reason: "appears twice in the archive".into(),
            });
        }
    }
    c.top = top.unwrap_or_default();
    Ok(c)
}

/// Parse SHA256SUMS: path → expected hex digest.
pub(super) fn parse_sums(bytes: &[u8], problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = String::from_utf8_lossy(bytes);
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| Problem::Malformed {
            path: SUMS.into(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let (digest, rest) = match line.split_at_checked(64) {
            Some(parts) => parts,
            None => {
                problems.push(bad("too short"));
                continue;
            }
        };
        if !digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            problems.push(bad("not a lower-case SHA-256 hex digest"));
            continue;
        }
        let Some(path) = rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *")) else {
            problems.push(bad("expected two spaces after the digest"));
            continue;
        };
        match sums_path(Path::new(path)) {
            Ok(p) if p == path => {
                if out.insert(p, digest.to_string()).is_some() {
                    problems.push(bad(&format!("{path} is listed twice")));
                }
            }
            _ => problems.push(bad(&format!("{path}: not a plain relative path"))),
        }
    }
    out
}

/// Verify a bundle (tarball or directory) against `public` (raw Ed25519).
pub fn verify(bundle: &Path, public: &[u8]) -> anyhow::Result<Report> {
    let meta =
        fs::metadata(bundle).with_context(|| format!("{}: cannot open", bundle.display()))?;
    let mut c = if meta.is_dir() {
        read_dir_bundle(bundle)?
    } else {
        read_tar_bundle(bundle)?
    };
    let mut problems = std::mem::take(&mut c.problems);
    let mut signature_ok = false;
    let expected = match &c.sums {
        None => {
            problems.push(Problem::Missing { path: SUMS.into() });
            BTreeMap::new()
        }
        Some(sums) => {
            match &c.sig {
                None => problems.push(Problem::Missing { path: SIG.into() }),
                Some(sig) => {
                    match UnparsedPublicKey::new(&ED25519, public).verify(sums, sig) {
                        Ok(()) => signature_ok = true,
                        Err(_) => problems.push(Problem::BadSignature {
                            path: SUMS.into(),
                            reason: format!(
                                "{SIG} does not verify {SUMS} with release key {}: {SUMS} or {SIG} was changed, or the bundle was signed with another key",
                                key_id(public)
                            ),
                        }),
                    }
                }
            }
            parse_sums(sums, &mut problems)
        }
    };
    let mut matching = 0;
    for (path, want) in &expected {
        match c.files.get(path) {
            None => problems.push(Problem::Missing { path: path.clone() }),
            Some(got) if got == want => matching += 1,
            Some(got) => problems.push(Problem::Differs {
                path: path.clone(),
                expected: want.clone(),
                found: got.clone(),
            }),
        }
    }
    for path in c.files.keys() {
        if !expected.contains_key(path) {
            problems.push(Problem::Extra { path: path.clone() });
        }
    }
    let ok = problems.is_empty();
    Ok(Report {
        bundle: bundle.to_path_buf(),
        top: c.top,
        key: key_id(public),
        signature_ok,
        listed: expected.len(),
        matching,
        problems,
        ok,
    })
}
