//! What a party trusts and presents: the CA certificates of its trust
//! bundle (one CA, or two while the CA is being rotated) and which of them
//! issued its own certificate.
//!
//! A trust bundle is a PEM file with one or more CA certificates. Every
//! verifier built from [`crate::TlsMaterial`] trusts each of them, so during
//! a CA rotation a node accepts peers, operators and devices from the old
//! and the new CA alike (see docs/operator/pki.md § CA rotation).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};

use crate::files::malformed;
use crate::inspect::rfc3339;
use crate::{CertError, Result, fingerprint};

/// Certificates and CAs expiring within this many days are flagged.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One CA certificate of a trust bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaSummary {
    /// `sha256:<hex>` of the DER certificate.
    pub fingerprint: String,
    pub subject: String,
    pub not_after: String,
    pub not_after_unix: i64,
}

/// The certificate a party presents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeafSummary {
    pub serial: String,
    pub not_after: String,
    pub not_after_unix: i64,
    /// Fingerprint of the CA in the bundle that issued it (none if no CA of
    /// the bundle vouches for it right now).
    pub issuer_fingerprint: Option<String>,
}

/// Trust bundle and own certificate, as loaded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrustInfo {
    pub ca: Vec<CaSummary>,
    pub leaf: LeafSummary,
}

impl TrustInfo {
    /// Describe `ca` (the bundle) and `leaf` (our certificate).
    pub fn describe(
        ca_path: &Path,
        ca: &[CertificateDer<'static>],
        leaf_path: &Path,
        leaf: &CertificateDer<'static>,
    ) -> Result<TrustInfo> {
        let mut out = Vec::new();
        for c in ca {
            out.push(ca_summary(ca_path, c)?);
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| malformed(leaf_path, "X.509 certificate", e))?;
        let not_after_unix = parsed.validity().not_after.timestamp();
        let issuer_fingerprint = ca
            .iter()
            .find(|c| issued_by(leaf, c))
            .map(|c| fingerprint(c));
        Ok(TrustInfo {
            ca: out,
            leaf: LeafSummary {
                serial: hex::encode(parsed.raw_serial()),
                not_after: rfc3339(not_after_unix),
                not_after_unix,
                issuer_fingerprint,
            },
        })
    }

    /// Fingerprints of the bundle, in file order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.ca.iter().map(|c| c.fingerprint.clone()).collect()
    }
}

fn ca_summary(path: &Path, der: &CertificateDer<'_>) -> Result<CaSummary> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| malformed(path, "X.509 certificate", e))?;
    let not_after_unix = parsed.validity().not_after.timestamp();
    Ok(CaSummary {
        fingerprint: fingerprint(der),
        subject: parsed.subject().to_string(),
        not_after: rfc3339(not_after_unix),
        not_after_unix,
    })
}

/// True if `ca` issued `leaf` (its signature checks out and the leaf is
/// valid now). Revocation is not considered.
pub fn issued_by(leaf: &CertificateDer<'_>, ca: &CertificateDer<'static>) -> bool {
    let mut roots = RootCertStore::empty();
    if roots.add(ca.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .build()
    else {
        return false;
    };
    verifier
        .verify_client_cert(leaf, &[], UnixTime::now())
        .is_ok()
}

/// Parse a trust bundle: one or more PEM CA certificates, each of which
/// must be a CA. `what` names the source in errors (a path or "request").
pub fn parse_bundle(what: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| malformed(what, "PEM CA bundle", e))?;
    if certs.is_empty() {
        return Err(malformed(
            what,
            "PEM CA bundle",
            "no CERTIFICATE block found",
        ));
    }
    for c in &certs {
        let (_, parsed) = x509_parser::parse_x509_certificate(c)
            .map_err(|e| malformed(what, "X.509 certificate", e))?;
        if !parsed.is_ca() {
            return Err(CertError::InvalidInput {
                what: "CA bundle",
                detail: format!(
                    "{}: {} is not a CA certificate",
                    what.display(),
                    parsed.subject()
                ),
            });
        }
    }
    Ok(certs)
}

/// Concatenate PEM certificates into one bundle, dropping duplicates
/// (same DER) and keeping the first occurrence's position.
pub fn join_bundle(parts: &[&str]) -> Result<String> {
    use rustls_pki_types::pem::PemObject;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut out = String::new();
    for part in parts {
        for c in CertificateDer::pem_slice_iter(part.as_bytes()) {
            let c = c.map_err(|e| CertError::InvalidInput {
                what: "CA bundle",
                detail: e.to_string(),
            })?;
            if seen.iter().any(|s| s.as_slice() == c.as_ref()) {
                continue;
            }
            seen.push(c.to_vec());
            out.push_str(&pem_of(&c));
        }
    }
    Ok(out)
}

/// PEM text of one DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        let _ = writeln!(s, "{}", String::from_utf8_lossy(chunk));
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Days (rounded down) from `now_unix` until `not_after_unix`; negative
/// once expired.
pub fn days_left(not_after_unix: i64, now_unix: i64) -> i64 {
    (not_after_unix - now_unix).div_euclid(86_400)
}

/// A warning line if `not_after_unix` is within [`EXPIRY_WARNING_DAYS`]
/// of `now_unix` (or past), `None` otherwise.
pub fn expiry_warning(what: &str, not_after_unix: i64, now_unix: i64) -> Option<String> {
    let days = days_left(not_after_unix, now_unix);
    if not_after_unix <= now_unix {
        Some(format!("{what} EXPIRED on {}", rfc3339(not_after_unix)))
    } else if days < EXPIRY_WARNING_DAYS {
        Some(format!(
            "{what} expires in {days} day{} ({}); rotate it (docs/operator/pki.md § Rotation)",
            if days == 1 { "" } else { "s" },
            rfc3339(not_after_unix)
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertKind, CertificateAuthority, TlsMaterial, TlsPaths, Validity, files};

    #[test]
    fn a_two_ca_bundle_vouches_for_leaves_of_either_and_names_the_issuer() {
        let tmp = tempfile::tempdir().expect("tmp");
        let old = CertificateAuthority::init(&tmp.path().join("old"), "old").expect("old");
        let new = CertificateAuthority::init(&tmp.path().join("new"), "new").expect("new");
        let bundle = join_bundle(&[old.cert_pem(), new.cert_pem(), old.cert_pem()]).expect("join");
        let certs = parse_bundle(Path::new("b"), bundle.as_bytes()).expect("parse");
        assert_eq!(certs.len(), 2, "duplicate kept");
        assert_eq!(fingerprint(&certs[0]), old.fingerprint());
        // pem_of round-trips the DER.
        assert_eq!(
            parse_bundle(Path::new("x"), pem_of(&certs[1]).as_bytes()).expect("again")[0],
            certs[1]
        );
        let kind = CertKind::Node {
            name: "n1".into(),
            ips: vec![],
            dns: vec![],
        };
        for (ca, label) in [(&old, "a"), (&new, "b")] {
            let dir = tmp.path().join(label);
            let issued = ca
                .issue(&kind, Validity::days(3).expect("d"))
                .expect("issue");
            ca.write_bundle(&issued, &dir).expect("write");
            files::write_public(&dir.join("ca.pem"), bundle.as_bytes()).expect("bundle");
            let m = TlsMaterial::load(&TlsPaths::from_dir(&dir)).expect("load with bundle");
            let info = m.trust_info().expect("info");
            assert_eq!(
                info.fingerprints(),
                vec![old.fingerprint(), new.fingerprint()]
            );
            assert_eq!(info.leaf.issuer_fingerprint, Some(ca.fingerprint()));
            assert_eq!(info.leaf.serial, issued.entry.serial);
        }
        // A new-only bundle refuses the old CA's leaf.
        files::write_public(&tmp.path().join("a/ca.pem"), new.cert_pem().as_bytes()).expect("w");
        let err =
            TlsMaterial::load(&TlsPaths::from_dir(&tmp.path().join("a"))).expect_err("old leaf");
        assert!(matches!(err, CertError::WrongCa { .. }), "{err}");
        // A leaf is not a CA.
        let leaf = files::read_string(&tmp.path().join("b/cert.pem")).expect("read");
        assert!(parse_bundle(Path::new("b"), leaf.as_bytes()).is_err());
        assert!(parse_bundle(Path::new("b"), b"junk").is_err());
    }

    #[test]
    fn warnings_start_thirty_days_out() {
        let now = 1_000_000_000;
        assert_eq!(expiry_warning("x", now + 31 * 86_400, now), None);
        let w = expiry_warning("node certificate", now + 29 * 86_400 + 5, now).expect("warn");
        assert!(w.contains("expires in 29 days"), "{w}");
        let w = expiry_warning("CA", now - 1, now).expect("warn");
        assert!(w.contains("EXPIRED"), "{w}");
    }
}
