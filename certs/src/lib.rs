//! Enclave's internal PKI.
//!
//! - [`CertificateAuthority`]: create a cluster CA, issue node, operator and
//!   device certificates, revoke them and publish a CRL.
//! - [`tls`]: TLS 1.3-only rustls configs with mTLS that trust only the
//!   cluster CA and check the role carried in the certificate.
//! - [`ReloadingServerConfig`]: swap certificates and CRLs under a running
//!   listener.
//!
//! See `docs/operator/pki.md` for the operator's view.
#![forbid(unsafe_code)]

pub mod ca;
mod error;
pub mod files;
pub mod identity;
pub mod inspect;
pub mod install;
pub mod reload;
pub mod rotation;
pub mod sign;
pub mod tls;
pub mod trust;

pub use ca::{CaPaths, CertKind, CertificateAuthority, IndexEntry, IssuedCert, Validity};
pub use error::{CertError, Result};
pub use identity::{Identity, Role};
pub use inspect::CertInfo;
pub use reload::{ReloadOutcome, ReloadingClientConfig, ReloadingServerConfig};
pub use tls::{ClientAuth, TlsMaterial, TlsPaths};
pub use trust::{CaSummary, LeafSummary, TrustInfo};

/// `sha256:<hex>` fingerprint of a DER certificate, the form used with
/// `--ca-hash` and printed by `enclavectl ca init`.
pub fn fingerprint(der: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
    )
}

#[cfg(test)]
mod tests;
