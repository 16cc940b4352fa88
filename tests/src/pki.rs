//! A fresh CA and every kind of certificate a test needs, good and bad.

use std::path::{Path, PathBuf};

use enclave_certs::{CertKind, CertificateAuthority, IssuedCert, Role, Validity};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

/// A CA in a temporary directory. Bundles are written to `<root>/<label>/`.
#[derive(Debug)]
pub struct TestPki {
    pub root: TempDir,
    pub ca: CertificateAuthority,
}

impl TestPki {
    pub fn new() -> TestPki {
        let root = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::init(&root.path().join("ca"), "Test CA").expect("ca init");
        TestPki { root, ca }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.root.path().join("ca")
    }

    /// Issue `kind` into `<root>/<label>/` with the default validity.
    pub fn issue(&self, label: &str, kind: CertKind) -> (PathBuf, IssuedCert) {
        self.issue_with(label, kind, Validity::days(30).expect("days"))
    }

    pub fn issue_with(&self, label: &str, kind: CertKind, v: Validity) -> (PathBuf, IssuedCert) {
        let dir = self.root.path().join(label);
        let issued = self.ca.issue(&kind, v).expect("issue");
        self.ca.write_bundle(&issued, &dir).expect("bundle");
        (dir, issued)
    }

    /// A node certificate valid for 127.0.0.1 and localhost.
    pub fn node(&self, name: &str) -> PathBuf {
        self.issue(name, node_kind(name)).0
    }

    /// A node certificate valid for 127.0.0.1, localhost and `ip`.
    pub fn node_at(&self, name: &str, ip: &str) -> PathBuf {
        let mut kind = node_kind(name);
        if let CertKind::Node { ips, .. } = &mut kind
            && let Ok(addr) = ip.parse()
            && !ips.contains(&addr)
        {
            ips.push(addr);
        }
        self.issue(name, kind).0
    }

    pub fn operator(&self, label: &str, role: Role) -> PathBuf {
        self.issue(
            label,
            CertKind::Operator {
                name: label.into(),
                role,
            },
        )
        .0
    }

    /// A certificate that expired yesterday.
    pub fn expired(&self, label: &str, kind: CertKind) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        let v = Validity {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        };
        self.issue_with(label, kind, v).0
    }

    /// Issue and immediately revoke (rewrites the CA's crl.pem).
    pub fn revoked(&self, label: &str, kind: CertKind) -> PathBuf {
        let (dir, issued) = self.issue(label, kind);
        self.ca.revoke(&issued.entry.serial).expect("revoke");
        dir
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

pub fn node_kind(name: &str) -> CertKind {
    CertKind::Node {
        name: name.into(),
        ips: vec!["127.0.0.1".parse().expect("ip")],
        dns: vec!["localhost".into()],
    }
}
