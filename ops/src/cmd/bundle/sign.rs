//! Signing a bundle directory: SHA256SUMS over every regular file, and its signature.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use ring::signature::Ed25519KeyPair;

use super::keys::write_atomic;
use super::{SIG, SUMS};

pub(super) fn sha256_reader(mut r: impl Read) -> io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

/// A path as it appears in SHA256SUMS: `/`-separated, relative, UTF-8,
/// without characters that `sha256sum` would escape.
pub(super) fn sums_path(rel: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => match p.to_str() {
                Some(s) if !s.contains(['\n', '\r', '\\']) => parts.push(s.to_string()),
                _ => return Err(format!("{}: unusable file name", rel.display())),
            },
            Component::CurDir => {}
            _ => return Err(format!("{}: not a plain relative path", rel.display())),
        }
    }
    if parts.is_empty() {
        return Err("empty path".into());
    }
    Ok(parts.join("/"))
}

/// Every regular file under `dir` (relative path → SHA-256 hex), except
/// SHA256SUMS and its signature at the root. Anything that is neither a
/// regular file nor a directory is an error.
pub(super) fn hash_tree(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let rd = fs::read_dir(&abs).with_context(|| format!("{}: cannot list", abs.display()))?;
        for entry in rd {
            let entry = entry.with_context(|| format!("{}: cannot list", abs.display()))?;
            let rel = rel.join(entry.file_name());
            let abs = dir.join(&rel);
            let meta = fs::symlink_metadata(&abs)
                .with_context(|| format!("{}: cannot stat", abs.display()))?;
            if meta.is_dir() {
                stack.push(rel);
            } else if meta.is_file() {
                let name = sums_path(&rel).map_err(|e| anyhow::anyhow!(e))?;
                if name == SUMS || name == SIG {
                    continue;
                }
                let f = fs::File::open(&abs)
                    .with_context(|| format!("{}: cannot open", abs.display()))?;
                let digest =
                    sha256_reader(f).with_context(|| format!("{}: cannot read", abs.display()))?;
                out.insert(name, digest);
            } else {
                bail!(
                    "{}: {} (a bundle holds only regular files and directories)",
                    abs.display(),
                    file_kind(&meta.file_type())
                );
            }
        }
    }
    Ok(out)
}

fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

pub(super) fn render_sums(files: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (path, digest) in files {
        s.push_str(digest);
        s.push_str("  ");
        s.push_str(path);
        s.push('\n');
    }
    s
}

/// Write `dir/SHA256SUMS` and `dir/SHA256SUMS.sig`. Returns the number of files listed.
pub fn sign_dir(dir: &Path, key: &Ed25519KeyPair) -> anyhow::Result<usize> {
    let files = hash_tree(dir)?;
    let sums = render_sums(&files);
    let sig = key.sign(sums.as_bytes());
    write_atomic(&dir.join(SUMS), sums.as_bytes())?;
    write_atomic(&dir.join(SIG), sig.as_ref())?;
    Ok(files.len())
}
