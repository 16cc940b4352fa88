//! Typed PKI errors. Every variant that concerns a file names it, so an
//! operator reading the message knows which file to fix.

use std::path::PathBuf;

/// Everything that can go wrong while creating, loading, checking or using
/// certificates and keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("{path}: file not found")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {error}")]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: cannot write: {error}")]
    Unwritable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a valid {what}: {detail}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("{path}: a CA already exists here (refusing to overwrite it)")]
    CaExists { path: PathBuf },
    #[error("{path}: certificate expired on {not_after}")]
    Expired { path: PathBuf, not_after: String },
    #[error("{path}: certificate is not valid before {not_before}")]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{path}: certificate was not issued by the cluster CA {ca}")]
    WrongCa { path: PathBuf, ca: PathBuf },
    #[error("{path}: certificate (serial {serial}) has been revoked")]
    Revoked { path: PathBuf, serial: String },
    #[error("{key}: private key does not match certificate {cert}")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{path}: certificate has role {found}, but {expected} is required here")]
    WrongRole {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: certificate rejected: {detail}")]
    Rejected { path: PathBuf, detail: String },
    #[error("no certificate with serial {serial} was issued by this CA")]
    UnknownSerial { serial: String },
    #[error("invalid {what}: {detail}")]
    InvalidInput { what: &'static str, detail: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

impl CertError {
    pub(crate) fn unreadable(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            CertError::Missing { path }
        } else {
            CertError::Unreadable {
                path,
                error: source,
            }
        }
    }
}

pub type Result<T, E = CertError> = std::result::Result<T, E>;
