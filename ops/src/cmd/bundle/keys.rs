//! The vendor's Ed25519 release key: PEM files, fingerprints.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::ED25519_SPKI_PREFIX;

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

pub(super) fn load_private_key_pem(text: &str, file: &Path) -> anyhow::Result<Ed25519KeyPair> {
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

pub(super) fn parse_public_key_pem(text: &str, file: &Path) -> anyhow::Result<Vec<u8>> {
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

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}
