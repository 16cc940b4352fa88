//! Unit tests of the PKI against real certificates on disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use time::{Duration, OffsetDateTime};

use crate::*;

fn node(name: &str) -> CertKind {
    CertKind::Node {
        name: name.into(),
        ips: vec!["127.0.0.1".parse().expect("ip")],
        dns: vec!["localhost".into()],
    }
}

fn issue_to(ca: &CertificateAuthority, kind: &CertKind, v: Validity, dir: &Path) -> IssuedCert {
    let issued = ca.issue(kind, v).expect("issue");
    ca.write_bundle(&issued, dir).expect("bundle");
    issued
}

#[test]
fn init_creates_private_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(dir.path(), "test").expect("init");
    assert!(ca.fingerprint().starts_with("sha256:"));
    assert_eq!(ca.fingerprint().len(), "sha256:".len() + 64);
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(
        CertificateAuthority::init(dir.path(), "again"),
        Err(CertError::CaExists { .. })
    ));
    // Reopening gives the same CA.
    let again = CertificateAuthority::open(dir.path()).expect("open");
    assert_eq!(again.fingerprint(), ca.fingerprint());
}

#[test]
fn issued_certificates_carry_their_role_and_load_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(&dir.path().join("ca"), "test").expect("init");
    let v = Validity::days(90).expect("days");
    for (kind, role) in [
        (node("node-1"), Role::Node),
        (
            CertKind::Operator {
                name: "alice".into(),
                role: Role::Auditor,
            },
            Role::Auditor,
        ),
        (CertKind::Device { user: "bob".into() }, Role::Device),
    ] {
        let out = dir.path().join(kind.name());
        issue_to(&ca, &kind, v, &out);
        let m = TlsMaterial::load(&TlsPaths::from_dir(&out)).expect("load");
        let id = m.identity().expect("identity");
        assert_eq!(id.role, role);
        assert_eq!(id.name, kind.name());
        let key_mode = std::fs::metadata(out.join("key.pem"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
    }
    let info = CertInfo::from_file(&dir.path().join("node-1/cert.pem")).expect("inspect");
    assert_eq!(info.role, Some(Role::Node));
    assert!(info.ip_addresses.contains(&"127.0.0.1".to_string()));
    assert!(info.dns_names.contains(&"node-1".to_string()));
    assert_eq!(ca.list().expect("list").len(), 3);
}

#[test]
fn operator_certificates_cannot_carry_node_role() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(dir.path(), "test").expect("init");
    let err = ca
        .issue(
            &CertKind::Operator {
                name: "x".into(),
                role: Role::Node,
            },
            Validity::days(1).expect("d"),
        )
        .expect_err("node role on operator cert");
    assert!(err.to_string().contains("--role"), "{err}");
}

#[test]
fn revoked_certificate_fails_to_load_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca_dir = dir.path().join("ca");
    let ca = CertificateAuthority::init(&ca_dir, "test").expect("init");
    let out = dir.path().join("n");
    let issued = issue_to(&ca, &node("n1"), Validity::days(5).expect("d"), &out);
    ca.revoke(&issued.entry.serial).expect("revoke");
    let mut paths = TlsPaths::from_dir(&out);
    paths.crl = Some(ca_dir.join("crl.pem"));
    let err = TlsMaterial::load(&paths).expect_err("revoked");
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    assert!(err.to_string().contains("cert.pem"), "{err}");
    assert!(ca.list().expect("list")[0].revoked_at.is_some());
    assert!(matches!(
        ca.revoke("00ff"),
        Err(CertError::UnknownSerial { .. })
    ));
}

#[test]
fn expired_certificate_fails_to_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(&dir.path().join("ca"), "test").expect("init");
    let now = OffsetDateTime::now_utc();
    let v = Validity {
        not_before: now - Duration::days(10),
        not_after: now - Duration::days(1),
    };
    let out = dir.path().join("n");
    issue_to(&ca, &node("n1"), v, &out);
    let err = TlsMaterial::load(&TlsPaths::from_dir(&out)).expect_err("expired");
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
}

#[test]
fn certificate_from_another_ca_and_mismatched_key_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca1 = CertificateAuthority::init(&dir.path().join("ca1"), "one").expect("init");
    let ca2 = CertificateAuthority::init(&dir.path().join("ca2"), "two").expect("init");
    let v = Validity::days(5).expect("d");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    issue_to(&ca1, &node("a"), v, &a);
    issue_to(&ca2, &node("b"), v, &b);
    // a's cert with ca2 as the trusted CA.
    let wrong_ca = TlsPaths {
        ca: b.join("ca.pem"),
        ..TlsPaths::from_dir(&a)
    };
    assert!(matches!(
        TlsMaterial::load(&wrong_ca),
        Err(CertError::WrongCa { .. })
    ));
    // a's cert with b's key.
    let wrong_key = TlsPaths {
        key: b.join("key.pem"),
        ..TlsPaths::from_dir(&a)
    };
    assert!(matches!(
        TlsMaterial::load(&wrong_key),
        Err(CertError::KeyMismatch { .. })
    ));
    // A missing file is named.
    let missing = TlsPaths {
        cert: dir.path().join("nope.pem"),
        ..TlsPaths::from_dir(&a)
    };
    let err = TlsMaterial::load(&missing).expect_err("missing");
    assert!(matches!(err, CertError::Missing { .. }) && err.to_string().contains("nope.pem"));
    // Garbage is named too.
    std::fs::write(dir.path().join("junk.pem"), "hello").expect("write");
    let junk = TlsPaths {
        cert: dir.path().join("junk.pem"),
        ..TlsPaths::from_dir(&a)
    };
    let err = TlsMaterial::load(&junk).expect_err("junk");
    assert!(err.to_string().contains("junk.pem"), "{err}");
}

#[test]
fn reload_swaps_config_only_when_files_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(&dir.path().join("ca"), "t").expect("init");
    let out = dir.path().join("n");
    let first = issue_to(&ca, &node("n1"), Validity::days(5).expect("d"), &out);
    let r = ReloadingServerConfig::new(TlsPaths::from_dir(&out), ClientAuth::nodes()).expect("new");
    assert_eq!(
        r.reload_if_changed().expect("check"),
        ReloadOutcome::Unchanged
    );
    // A half-finished copy (new key, old cert) keeps the old config.
    let second = ca
        .issue(&node("n1"), Validity::days(5).expect("d"))
        .expect("issue");
    files::write_secret(&out.join("key.pem"), second.key_pem.as_bytes()).expect("key");
    assert!(r.reload_if_changed().is_err());
    assert_eq!(r.identity().expect("id").serial, first.entry.serial);
    files::write_public(&out.join("cert.pem"), second.cert_pem.as_bytes()).expect("cert");
    assert_eq!(
        r.reload_if_changed().expect("reload"),
        ReloadOutcome::Reloaded {
            serial: second.entry.serial.clone()
        }
    );
    assert_eq!(r.identity().expect("id").serial, second.entry.serial);
}

#[test]
fn reload_refuses_a_certificate_with_another_identity() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = CertificateAuthority::init(&dir.path().join("ca"), "t").expect("init");
    let out = dir.path().join("n");
    let first = issue_to(&ca, &node("n1"), Validity::days(5).expect("d"), &out);
    let r = ReloadingServerConfig::new(TlsPaths::from_dir(&out), ClientAuth::nodes()).expect("new");
    for kind in [
        node("n2"),
        CertKind::Operator {
            name: "n1".into(),
            role: Role::Sysadmin,
        },
    ] {
        issue_to(&ca, &kind, Validity::days(5).expect("d"), &out);
        let err = r.reload_if_changed().expect_err("identity change");
        assert!(matches!(err, CertError::WrongRole { .. }), "{err}");
        assert_eq!(r.identity().expect("id").serial, first.entry.serial);
    }
}
