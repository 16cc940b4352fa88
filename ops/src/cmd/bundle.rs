//! `enclavectl release-key ...` and `enclavectl bundle ...`: the vendor's
//! Ed25519 release key, signing an offline bundle (SHA256SUMS plus a
//! detached signature) and verifying one, file by file.
//!
//! Formats, so that sites can check a bundle with standard tools too:
//! - `release.key`: PKCS#8 (PEM `PRIVATE KEY`), Ed25519, mode 0600;
//! - `release.pub`: SubjectPublicKeyInfo (PEM `PUBLIC KEY`);
//! - `SHA256SUMS`: `sha256sum` format (`<hex>  <path>`), one line per
//!   regular file of the bundle except itself and its signature, sorted;
//! - `SHA256SUMS.sig`: the raw 64-byte Ed25519 signature of `SHA256SUMS`
//!   (`openssl pkeyutl -verify -pubin -inkey release.pub -rawin -in
//!   SHA256SUMS -sigfile SHA256SUMS.sig` checks it).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Serialize;
use serde_json::json;

use super::{Output, print_json};

/// Name of the checksum file at the bundle's root.
pub const SUMS: &str = "SHA256SUMS";
/// Name of the detached signature of [`SUMS`].
pub const SIG: &str = "SHA256SUMS.sig";
/// Largest `SHA256SUMS` accepted (a bundle with vendored sources lists
/// some ten thousand files, about 1.5 MB).
const MAX_SUMS_BYTES: u64 = 64 << 20;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by
/// the 32-byte public key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, Subcommand)]
pub enum ReleaseKeyCommand {
    /// Create a new Ed25519 release key: DIR/release.key (PKCS#8, mode
    /// 0600; keep it offline) and DIR/release.pub (give it to every site).
    Init {
        /// Directory for release.key and release.pub (created with mode
        /// 0700 if missing; an existing release.key is never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the fingerprint of a release key (release.pub or release.key).
    Show {
        /// release.pub or release.key.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write DIR/SHA256SUMS over every file under DIR and sign it into
    /// DIR/SHA256SUMS.sig (used by ops/bundle.sh).
    Sign(SignArgs),
    /// Check a bundle (the .tar.gz, or an unpacked bundle directory): the
    /// signature over SHA256SUMS, then every file's SHA-256. Names every
    /// file that differs, is missing or is not listed; exit code 1 if any.
    Verify(VerifyArgs),
    /// Write the CycloneDX 1.5 SBOM of the crates in the binaries, from
    /// `cargo metadata` and Cargo.lock (used by ops/bundle.sh).
    Sbom(super::sbom::SbomArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The unpacked bundle directory (the one that will become the tarball's top directory).
    pub dir: PathBuf,
    /// The release private key (release.key).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle: enclave-<version>-<arch>-linux.tar.gz, or its unpacked directory.
    pub file: PathBuf,
    /// The vendor's release public key (release.pub).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

pub fn run_release_key(cmd: ReleaseKeyCommand, output: Output) -> anyhow::Result<()> {
    match cmd {
        ReleaseKeyCommand::Init { out } => {
            let (key, public) = init_release_key(&out)?;
            let id = key_id(&public);
            if output == Output::Json {
                return print_json(
                    &json!({ "private_key": key, "public_key": out.join("release.pub"), "fingerprint": id }),
                );
            }
            println!("Created a release key in {}", out.display());
            println!(
                "  private key  {} (mode 0600: keep it offline; whoever holds it can sign bundles)",
                key.display()
            );
            println!(
                "  public key   {} (give it to every site, with the fingerprint, by a second channel)",
                out.join("release.pub").display()
            );
            println!("{id}");
            Ok(())
        }
        ReleaseKeyCommand::Show { file } => {
            let text = fs::read_to_string(&file)
                .with_context(|| format!("{}: cannot read", file.display()))?;
            let public = if text.contains("PRIVATE KEY") {
                load_private_key_pem(&text, &file)?
                    .public_key()
                    .as_ref()
                    .to_vec()
            } else {
                parse_public_key_pem(&text, &file)?
            };
            let id = key_id(&public);
            if output == Output::Json {
                return print_json(&json!({ "file": file, "fingerprint": id }));
            }
            println!("{id}");
            Ok(())
        }
    }
}

pub fn run(cmd: BundleCommand, output: Output) -> anyhow::Result<()> {
    match cmd {
        BundleCommand::Sign(a) => {
            let key = load_private_key(&a.key)?;
            let n = sign_dir(&a.dir, &key)?;
            let id = key_id(key.public_key().as_ref());
            if output == Output::Json {
                return print_json(&json!({ "dir": a.dir, "files": n, "fingerprint": id }));
            }
            println!(
                "Signed {n} files in {} ({SUMS}, {SIG}) with release key {id}",
                a.dir.display()
            );
            Ok(())
        }
        BundleCommand::Verify(a) => {
            let public = load_public_key(&a.key)?;
            let report = verify(&a.file, &public)?;
            if output == Output::Json {
                print_json(&report)?;
            } else {
                print_report(&report, &a.key);
            }
            if report.problems.is_empty() {
                Ok(())
            } else {
                bail!(
                    "bundle verification failed: {} problem{} (do not install this bundle)",
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" }
                )
            }
        }
        BundleCommand::Sbom(a) => super::sbom::run(a, output),
    }
}

// ---------------------------------------------------------------- keys

/// `sha256:<hex>` of the key's SubjectPublicKeyInfo DER, the same value as
/// `openssl pkey -pubin -in release.pub -outform DER | sha256sum`.
pub fn key_id(public: &[u8]) -> String {
    let spki = spki_der(public);
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &spki))
    )
}

fn spki_der(public: &[u8]) -> Vec<u8> {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    der
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(text: &str, label: &str, file: &Path) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .with_context(|| format!("{}: no {begin} block found", file.display()))?;
    let rest = &text[start + begin.len()..];
    let stop = rest
        .find(&end)
        .with_context(|| format!("{}: {begin} without {end}", file.display()))?;
    let b64: String = rest[..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("{}: the {label} block is not valid base64", file.display()))
}

/// Create `dir/release.key` (mode 0600, never overwriting) and
/// `dir/release.pub`. Returns the private key path and the public key.
pub fn init_release_key(dir: &Path) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let key_path = dir.join("release.key");
    let pub_path = dir.join("release.pub");
    if key_path.exists() {
        bail!(
            "{}: a release key already exists here (refusing to overwrite it)",
            key_path.display()
        );
    }
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("the generated key does not parse"))?;
    let public = pair.public_key().as_ref().to_vec();
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| format!("{}: cannot create", key_path.display()))?;
        f.write_all(pem_encode("PRIVATE KEY", pkcs8.as_ref()).as_bytes())?;
        f.sync_all()?;
    }
    write_atomic(
        &pub_path,
        pem_encode("PUBLIC KEY", &spki_der(&public)).as_bytes(),
    )?;
    Ok((key_path, public))
}

fn load_private_key_pem(text: &str, file: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let der = pem_decode(text, "PRIVATE KEY", file)?;
    // Accepts ring's PKCS#8 v2 and OpenSSL's v1 (`openssl genpkey -algorithm ed25519`).
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| {
        anyhow::anyhow!(
            "{}: not an Ed25519 PKCS#8 private key ({e})",
            file.display()
        )
    })
}

/// Read a release private key (PEM PKCS#8, Ed25519).
pub fn load_private_key(file: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let text =
        fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
    load_private_key_pem(&text, file)
}

fn parse_public_key_pem(text: &str, file: &Path) -> anyhow::Result<Vec<u8>> {
    let der = pem_decode(text, "PUBLIC KEY", file)?;
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.to_vec()),
        _ => bail!(
            "{}: not an Ed25519 public key (expected the release.pub written by `enclavectl release-key init`)",
            file.display()
        ),
    }
}

/// Read a release public key (PEM SubjectPublicKeyInfo, Ed25519): the raw
/// 32 bytes.
pub fn load_public_key(file: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
    parse_public_key_pem(&text, file)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

// ---------------------------------------------------------------- signing

fn sha256_reader(mut r: impl Read) -> io::Result<String> {
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
fn sums_path(rel: &Path) -> Result<String, String> {
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
fn hash_tree(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
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

fn render_sums(files: &BTreeMap<String, String>) -> String {
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

// ---------------------------------------------------------------- verifying

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
fn parse_sums(bytes: &[u8], problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
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

fn print_report(r: &Report, key_file: &Path) {
    println!("bundle     {}", r.bundle.display());
    if !r.top.is_empty() {
        println!("directory  {}", r.top);
    }
    println!("key        {} ({})", r.key, key_file.display());
    println!(
        "signature  {}",
        if r.signature_ok {
            "ok: SHA256SUMS is signed by this key"
        } else {
            "NOT VALID"
        }
    );
    println!("files      {} listed, {} match", r.listed, r.matching);
    for p in &r.problems {
        match p {
            Problem::Differs {
                path,
                expected,
                found,
            } => println!("DIFFERS    {path}  (SHA-256 {found}, SHA256SUMS says {expected})"),
            Problem::Missing { path } => println!("MISSING    {path}"),
            Problem::Extra { path } => println!("EXTRA      {path}  (not in SHA256SUMS)"),
            Problem::Unexpected { path, reason } => println!("UNEXPECTED {path}  ({reason})"),
            Problem::BadSignature { path, reason } => println!("BAD SIG    {path}  ({reason})"),
            Problem::Malformed { path, reason } => println!("MALFORMED  {path}  ({reason})"),
        }
    }
    if r.ok {
        println!("OK: the signature is valid and every file matches SHA256SUMS");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_dir(root: &Path) -> PathBuf {
        let dir = root.join("enclave-9.9.9-x86_64-linux");
        fs::create_dir_all(dir.join("bin")).expect("mkdir");
        fs::create_dir_all(dir.join("docs/operator")).expect("mkdir");
        fs::write(dir.join("bin/enclave"), b"binary").expect("write");
        fs::write(dir.join("docs/operator/install.md"), b"# Install\n").expect("write");
        fs::write(dir.join("MANIFEST"), b"version: 9.9.9\n").expect("write");
        dir
    }

    #[test]
    fn keys_round_trip_and_refuse_overwrite() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (key, public) = init_release_key(tmp.path()).expect("init");
        let pair = load_private_key(&key).expect("load private");
        assert_eq!(pair.public_key().as_ref(), &public[..]);
        assert_eq!(
            load_public_key(&tmp.path().join("release.pub")).expect("load pub"),
            public
        );
        let mode = fs::metadata(&key).expect("stat").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let err = init_release_key(tmp.path()).expect_err("second init");
        assert!(err.to_string().contains("already exists"), "{err}");
        // A public key is not a private key and vice versa.
        assert!(load_private_key(&tmp.path().join("release.pub")).is_err());
        assert!(load_public_key(&key).is_err());
    }

    #[test]
    fn signed_directory_verifies_and_names_every_change() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (key, public) = init_release_key(&tmp.path().join("k")).expect("init");
        let pair = load_private_key(&key).expect("key");
        let dir = bundle_dir(tmp.path());
        assert_eq!(sign_dir(&dir, &pair).expect("sign"), 3);
        let sums = fs::read_to_string(dir.join(SUMS)).expect("sums");
        assert!(sums.contains("  bin/enclave\n"), "{sums}");
        let r = verify(&dir, &public).expect("verify");
        assert!(r.ok && r.signature_ok && r.listed == 3, "{r:?}");

        // One byte of one file.
        fs::write(dir.join("docs/operator/install.md"), b"# Instalm\n").expect("write");
        // One file gone, one added.
        fs::remove_file(dir.join("MANIFEST")).expect("rm");
        fs::write(dir.join("bin/extra"), b"x").expect("write");
        let r = verify(&dir, &public).expect("verify");
        assert!(r.signature_ok);
        let mut kinds: Vec<(String, &str)> = r
            .problems
            .iter()
            .map(|p| {
                let k = match p {
                    Problem::Differs { .. } => "differs",
                    Problem::Missing { .. } => "missing",
                    Problem::Extra { .. } => "extra",
                    _ => "other",
                };
                (p.path().to_string(), k)
            })
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                ("MANIFEST".to_string(), "missing"),
                ("bin/extra".to_string(), "extra"),
                ("docs/operator/install.md".to_string(), "differs"),
            ]
        );

        // Another key: the signature fails.
        let (_, other) = init_release_key(&tmp.path().join("k2")).expect("init");
        let r = verify(&dir, &other).expect("verify");
        assert!(!r.signature_ok);
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, Problem::BadSignature { .. }))
        );
    }

    #[test]
    fn edited_sums_break_the_signature_and_links_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (key, public) = init_release_key(&tmp.path().join("k")).expect("init");
        let pair = load_private_key(&key).expect("key");
        let dir = bundle_dir(tmp.path());
        sign_dir(&dir, &pair).expect("sign");
        // Someone changes a file and updates SHA256SUMS to match.
        fs::write(dir.join("bin/enclave"), b"evil").expect("write");
        let sums = render_sums(&hash_tree(&dir).expect("hash"));
        fs::write(dir.join(SUMS), sums).expect("write");
        let r = verify(&dir, &public).expect("verify");
        assert!(!r.signature_ok && !r.ok, "{r:?}");
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert_eq!(r.problems[0].path(), SUMS);

        std::os::unix::fs::symlink("/etc/passwd", dir.join("bin/link")).expect("symlink");
        let err = sign_dir(&dir, &pair).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    /// Pack `dir` as `name/...` into a .tar.gz, plus one raw extra entry.
    fn pack(dir: &Path, name: &str, out: &Path, extra: Option<(&[u8], &[u8])>) {
        let f = fs::File::create(out).expect("create");
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        b.append_dir_all(name, dir).expect("append");
        if let Some((raw_name, data)) = extra {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..raw_name.len()].copy_from_slice(raw_name);
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, data).expect("append raw");
        }
        b.into_inner()
            .expect("finish tar")
            .finish()
            .expect("finish gz");
    }

    #[test]
    fn tarballs_verify_and_unsafe_entries_are_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (key, public) = init_release_key(&tmp.path().join("k")).expect("init");
        let pair = load_private_key(&key).expect("key");
        let dir = bundle_dir(tmp.path());
        sign_dir(&dir, &pair).expect("sign");
        let good = tmp.path().join("good.tar.gz");
        pack(&dir, "enclave-9.9.9-x86_64-linux", &good, None);
        let r = verify(&good, &public).expect("verify");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.top, "enclave-9.9.9-x86_64-linux");

        let bad = tmp.path().join("bad.tar.gz");
        pack(
            &dir,
            "enclave-9.9.9-x86_64-linux",
            &bad,
            Some((
                b"enclave-9.9.9-x86_64-linux/../../etc/cron.d/x",
                b"* * * * * root sh",
            )),
        );
        let r = verify(&bad, &public).expect("verify");
        assert!(!r.ok);
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, Problem::Unexpected { path, .. } if path.contains("cron.d"))),
            "{r:?}"
        );

        // Not a tarball at all: an error, not a pass.
        let junk = tmp.path().join("junk.tar.gz");
        fs::write(&junk, b"not gzip").expect("write");
        assert!(verify(&junk, &public).is_err());
    }

    #[test]
    fn malformed_sums_lines_are_named() {
        let mut problems = Vec::new();
        let good = "a".repeat(64);
        let text = format!("{good}  ok/file\nnonsense\n{good}  ../etc/passwd\n{good}  ok/file\n");
        let map = parse_sums(text.as_bytes(), &mut problems);
        assert_eq!(map.len(), 1);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
