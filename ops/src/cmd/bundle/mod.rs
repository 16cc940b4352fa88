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

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ring::signature::KeyPair;
use serde_json::json;

use super::{Output, print_json};

mod keys;
mod sign;
mod verify;

pub use keys::{init_release_key, key_id, load_private_key, load_public_key};
use keys::{load_private_key_pem, parse_public_key_pem};
pub use sign::sign_dir;
pub use verify::{Problem, Report, verify};

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
    use super::sign::*;
    use super::verify::*;
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
