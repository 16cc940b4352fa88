//! Installing new TLS material on a running node, for rotation over the
//! admin API: the node makes its own new key (it never travels), the CA
//! signs the CSR, the node installs the certificate; or the node is given
//! a new trust bundle. Each install is checked exactly as a reload would
//! check it *before* it replaces anything, and survives a crash at any
//! point:
//!
//! - The new key waits in `<tls.key>.next` (mode 0600), the certificate is
//!   written to `<tls.cert>.next`, and both are checked together.
//! - Then `cert.next` is renamed over `tls.cert`, and `key.next` over
//!   `tls.key`. A crash between the two renames leaves a certificate whose
//!   key is still in `key.next`: [`recover_interrupted_install`], run at
//!   start, finishes the install. A crash before the first rename leaves
//!   the old pair in place and untouched.
//! - A trust bundle is one file: written to `<tls.ca>.next`, checked
//!   (this node's own certificate must chain to it), renamed into place.

use std::fs;
use std::path::{Path, PathBuf};

use crate::identity::Role;
use crate::sign::NodeSigner;
use crate::trust::{TrustInfo, parse_bundle};
use crate::{CertError, Result, TlsMaterial, TlsPaths, files};

/// `<path>.next`.
pub fn next_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|error| CertError::Unwritable {
        path: to.to_path_buf(),
        error,
    })?;
    if let Some(dir) = to.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Make a new key for `name` in `<tls.key>.next` (replacing any earlier
/// pending key) and return a CSR for it (PEM).
pub fn generate_next_key(paths: &TlsPaths, name: &str) -> Result<String> {
    let (key_pem, csr_pem) = crate::ca::new_key_and_csr(name)?;
    files::write_secret(&next_path(&paths.key), key_pem.as_bytes())?;
    Ok(csr_pem)
}

/// Install `cert_pem` (issued for the pending key) as this node's
/// certificate. It must carry the `node` role and the name `node`, chain
/// to the trust bundle in `tls.ca`, be valid now and not be revoked.
/// Returns what is now installed.
pub fn install_cert(paths: &TlsPaths, cert_pem: &str, node: &str) -> Result<TrustInfo> {
    let key_next = next_path(&paths.key);
    if !key_next.exists() {
        return Err(CertError::InvalidInput {
            what: "certificate install",
            detail: format!(
                "no pending key {}: ask this node for a CSR first (POST /v1/tls/csr); a certificate is only installed for the key the node made itself",
                key_next.display()
            ),
        });
    }
    let cert_next = next_path(&paths.cert);
    files::write_public(&cert_next, cert_pem.as_bytes())?;
    let staged = TlsPaths {
        ca: paths.ca.clone(),
        cert: cert_next.clone(),
        key: key_next.clone(),
        crl: paths.crl.clone(),
    };
    let checked =
        TlsMaterial::load_for_role(&staged, &[Role::Node]).and_then(|m| match m.identity() {
            Some(id) if id.name == node => Ok(m),
            other => Err(CertError::WrongRole {
                path: cert_next.clone(),
                found: other.map_or("none".into(), |i| format!("node {}", i.name)),
                expected: format!("node {node} (this node)"),
            }),
        });
    let m = match checked {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&cert_next);
            return Err(e);
        }
    };
    let info = m.trust_info()?;
    rename(&cert_next, &paths.cert)?;
    rename(&key_next, &paths.key)?;
    Ok(info)
}

/// Install `ca_pem` (one or more CA certificates) as this node's trust
/// bundle. This node's own certificate must chain to one of them, so a
/// bundle that would cut the node off from its own certificate is refused.
pub fn install_trust(paths: &TlsPaths, ca_pem: &str) -> Result<TrustInfo> {
    let ca_next = next_path(&paths.ca);
    parse_bundle(&ca_next, ca_pem.as_bytes())?;
    files::write_public(&ca_next, ca_pem.as_bytes())?;
    let staged = TlsPaths {
        ca: ca_next.clone(),
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        crl: paths.crl.clone(),
    };
    let m = match TlsMaterial::load(&staged) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&ca_next);
            return Err(match e {
                CertError::WrongCa { path, .. } => CertError::InvalidInput {
                    what: "trust bundle",
                    detail: format!(
                        "this node's certificate {} was not issued by any CA in the new bundle; it would lock the node out (re-issue its certificate from the new CA first: enclavectl ca rotate reissue)",
                        path.display()
                    ),
                },
                other => other,
            });
        }
    };
    let info = m.trust_info()?;
    rename(&ca_next, &paths.ca)?;
    Ok(info)
}

/// At start: if a certificate install was cut between its two renames
/// (the new certificate is in place, its key still in `key.next`), finish
/// it. Returns true if it did.
pub fn recover_interrupted_install(paths: &TlsPaths) -> Result<bool> {
    let key_next = next_path(&paths.key);
    if !key_next.exists() || !paths.cert.exists() {
        return Ok(false);
    }
    let pending_matches = NodeSigner::load(&key_next, &paths.cert).is_ok();
    let current_matches = paths.key.exists() && NodeSigner::load(&paths.key, &paths.cert).is_ok();
    if pending_matches && !current_matches {
        rename(&key_next, &paths.key)?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertKind, CertificateAuthority, Validity};

    fn node(name: &str) -> CertKind {
        CertKind::Node {
            name: name.into(),
            ips: vec!["127.0.0.1".parse().expect("ip")],
            dns: vec![],
        }
    }

    #[test]
    fn a_certificate_for_the_pending_key_is_installed_and_anything_else_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "ca").expect("ca");
        let other = CertificateAuthority::init(&tmp.path().join("other"), "o").expect("ca");
        let dir = tmp.path().join("n1");
        let first = ca
            .issue(&node("n1"), Validity::days(3).expect("d"))
            .expect("issue");
        ca.write_bundle(&first, &dir).expect("bundle");
        let paths = TlsPaths::from_dir(&dir);
        let v = || Validity::days(30).expect("d");

        // No pending key yet.
        let err = install_cert(&paths, &first.cert_pem, "n1").expect_err("no key");
        assert!(err.to_string().contains("ask this node for a CSR"), "{err}");

        let csr = generate_next_key(&paths, "n1").expect("csr");
        // Another node's name, another CA, a certificate for another key.
        let wrong_name = ca.issue_for_csr(&node("n2"), v(), &csr).expect("i");
        let err = install_cert(&paths, &wrong_name.cert_pem, "n1").expect_err("name");
        assert!(err.to_string().contains("this node"), "{err}");
        let wrong_ca = other.issue_for_csr(&node("n1"), v(), &csr).expect("i");
        let err = install_cert(&paths, &wrong_ca.cert_pem, "n1").expect_err("ca");
        assert!(matches!(err, CertError::WrongCa { .. }), "{err}");
        let unrelated = ca.issue(&node("n1"), v()).expect("i");
        let err = install_cert(&paths, &unrelated.cert_pem, "n1").expect_err("key");
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
        // Nothing changed.
        let still = TlsMaterial::load(&paths).expect("load");
        assert_eq!(
            still.trust_info().expect("i").leaf.serial,
            first.entry.serial
        );

        let good = ca.issue_for_csr(&node("n1"), v(), &csr).expect("i");
        let info = install_cert(&paths, &good.cert_pem, "n1").expect("install");
        assert_eq!(info.leaf.serial, good.entry.serial);
        let now = TlsMaterial::load(&paths).expect("load");
        assert_eq!(now.trust_info().expect("i").leaf.serial, good.entry.serial);
        assert!(!next_path(&paths.key).exists());
        assert!(!next_path(&paths.cert).exists());
    }

    #[test]
    fn a_trust_bundle_must_keep_vouching_for_the_nodes_own_certificate() {
        let tmp = tempfile::tempdir().expect("tmp");
        let old = CertificateAuthority::init(&tmp.path().join("old"), "old").expect("ca");
        let new = CertificateAuthority::init(&tmp.path().join("new"), "new").expect("ca");
        let dir = tmp.path().join("n1");
        let issued = old
            .issue(&node("n1"), Validity::days(3).expect("d"))
            .expect("issue");
        old.write_bundle(&issued, &dir).expect("bundle");
        let paths = TlsPaths::from_dir(&dir);
        let err = install_trust(&paths, new.cert_pem()).expect_err("lockout");
        assert!(err.to_string().contains("reissue"), "{err}");
        assert!(
            install_trust(&paths, &issued.cert_pem).is_err(),
            "a leaf as CA"
        );
        let both = crate::trust::join_bundle(&[old.cert_pem(), new.cert_pem()]).expect("join");
        let info = install_trust(&paths, &both).expect("bundle");
        assert_eq!(info.ca.len(), 2);
        assert_eq!(
            TlsMaterial::load(&paths)
                .expect("load")
                .trust_info()
                .expect("i")
                .fingerprints(),
            vec![old.fingerprint(), new.fingerprint()]
        );
    }

    #[test]
    fn an_install_cut_between_its_renames_is_finished_at_start() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::init(&tmp.path().join("ca"), "ca").expect("ca");
        let dir = tmp.path().join("n1");
        let issued = ca
            .issue(&node("n1"), Validity::days(3).expect("d"))
            .expect("issue");
        ca.write_bundle(&issued, &dir).expect("bundle");
        let paths = TlsPaths::from_dir(&dir);
        assert!(!recover_interrupted_install(&paths).expect("nothing"));
        let csr = generate_next_key(&paths, "n1").expect("csr");
        // A pending key alone (crash before the renames) changes nothing.
        assert!(!recover_interrupted_install(&paths).expect("pending only"));
        TlsMaterial::load(&paths).expect("old pair intact");
        let good = ca
            .issue_for_csr(&node("n1"), Validity::days(3).expect("d"), &csr)
            .expect("i");
        files::write_public(&paths.cert, good.cert_pem.as_bytes()).expect("cert only");
        assert!(TlsMaterial::load(&paths).is_err(), "mismatched pair");
        assert!(recover_interrupted_install(&paths).expect("recover"));
        TlsMaterial::load(&paths).expect("recovered pair");
    }
}
