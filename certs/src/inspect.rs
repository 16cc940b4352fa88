//! Human- and machine-readable facts about a certificate.

use std::path::Path;

use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use crate::files::{load_cert, malformed};
use crate::identity::{Identity, Role};
use crate::{Result, fingerprint};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Seconds since the Unix epoch, for comparisons.
    pub not_after_unix: i64,
    pub is_ca: bool,
    pub role: Option<Role>,
    pub name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub uris: Vec<String>,
    pub fingerprint: String,
}

impl CertInfo {
    pub fn from_der(path: &Path, der: &[u8]) -> Result<CertInfo> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| malformed(path, "X.509 certificate", e))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for gn in &san.value.general_names {
                match gn {
                    GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    GeneralName::IPAddress(b) => ip_addresses.push(ip_to_string(b)),
                    _ => {}
                }
            }
        }
        let identity = Identity::from_der(der);
        let validity = cert.validity();
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: hex::encode(cert.raw_serial()),
            not_before: rfc3339(validity.not_before.timestamp()),
            not_after: rfc3339(validity.not_after.timestamp()),
            not_after_unix: validity.not_after.timestamp(),
            is_ca: cert.is_ca(),
            role: identity.as_ref().map(|i| i.role),
            name: identity.map(|i| i.name),
            dns_names,
            ip_addresses,
            uris,
            fingerprint: fingerprint(der),
        })
    }

    /// Read and describe the first certificate of a PEM file.
    pub fn from_file(path: &Path) -> Result<CertInfo> {
        let der = load_cert(path)?;
        CertInfo::from_der(path, &der)
    }
}

fn ip_to_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => hex::encode(b),
    }
}

/// Format Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
