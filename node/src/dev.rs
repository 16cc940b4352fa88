//! `enclave start --dev`: the embedded default. On first run it creates a CA,
//! a node certificate and a `sysadmin` operator certificate under the data
//! dir; later runs reuse them (renewing a leaf only if it no longer loads,
//! e.g. after it expired).
//!
//! ```text
//! <data-dir>/ca/         the dev CA (ca.pem, ca.key, crl.pem, index.json)
//! <data-dir>/tls/        the node's bundle; crl.pem links to ../ca/crl.pem
//! <data-dir>/operator/   a sysadmin bundle for enclavectl --cert-dir
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use enclave_certs::{CertKind, CertificateAuthority, Role, TlsMaterial, TlsPaths, Validity};

pub const DEV_NODE: &str = "dev-node";
pub const DEV_OPERATOR: &str = "dev-admin";
/// Dev leaves live a year so a demo box keeps working.
const DEV_DAYS: i64 = 365;

#[derive(Debug)]
pub struct DevPki {
    pub ca_dir: PathBuf,
    pub operator_dir: PathBuf,
    pub fingerprint: String,
    pub created_ca: bool,
}

pub fn prepare(data_dir: &Path) -> anyhow::Result<DevPki> {
    let ca_dir = data_dir.join("ca");
    let created_ca = !ca_dir.join("ca.pem").exists();
    let ca = if created_ca {
        CertificateAuthority::init(&ca_dir, "Enclave dev CA")
            .with_context(|| format!("creating the dev CA in {}", ca_dir.display()))?
    } else {
        CertificateAuthority::open(&ca_dir)
            .with_context(|| format!("opening the dev CA in {}", ca_dir.display()))?
    };
    let tls_dir = data_dir.join("tls");
    let node = CertKind::Node {
        name: DEV_NODE.into(),
        ips: vec!["127.0.0.1".parse()?, "::1".parse()?],
        dns: vec!["localhost".into()],
    };
    ensure_bundle(&ca, &node, &tls_dir)?;
    let crl_link = tls_dir.join("crl.pem");
    if std::fs::symlink_metadata(&crl_link).is_err() {
        std::os::unix::fs::symlink(Path::new("../ca/crl.pem"), &crl_link)
            .with_context(|| format!("linking {}", crl_link.display()))?;
    }
    let operator_dir = data_dir.join("operator");
    let op = CertKind::Operator {
        name: DEV_OPERATOR.into(),
        role: Role::Sysadmin,
    };
    ensure_bundle(&ca, &op, &operator_dir)?;
    Ok(DevPki {
        ca_dir,
        operator_dir,
        fingerprint: ca.fingerprint(),
        created_ca,
    })
}

/// Issue `kind` into `dir` unless a bundle that loads cleanly is already there.
fn ensure_bundle(ca: &CertificateAuthority, kind: &CertKind, dir: &Path) -> anyhow::Result<()> {
    let mut paths = TlsPaths::from_dir(dir);
    paths.crl = Some(ca.paths().crl());
    if paths.cert.exists() && TlsMaterial::load(&paths).is_ok() {
        return Ok(());
    }
    let issued = ca.issue(kind, Validity::days(DEV_DAYS)?)?;
    ca.write_bundle(&issued, dir).with_context(|| {
        format!(
            "writing {} certificate to {}",
            kind.kind_str(),
            dir.display()
        )
    })?;
    Ok(())
}
