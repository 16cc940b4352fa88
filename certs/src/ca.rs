//! The cluster certificate authority: creation, issuing, revocation.
//!
//! On-disk layout of a CA directory (see docs/operator/pki.md):
//!
//! ```text
//! ca.pem          the CA certificate (public; distribute to every node and operator)
//! ca.key          the CA private key (mode 0600; keep offline where possible)
//! crl.pem         the current certificate revocation list (nodes load it)
//! crl.number      monotonically increasing CRL number
//! index.json      every certificate issued: serial, kind, name, role, validity, revocation
//! issued/<kind>-<name>/{cert.pem,key.pem,ca.pem}   bundles ready to hand out
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::files::{self, malformed};
use crate::identity::{NODE_URI_PREFIX, Role, USER_URI_PREFIX, validate_name};
use crate::inspect::rfc3339;
use crate::{CertError, Result, fingerprint};

/// CA certificates are valid for ten years.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// Leaf certificates default to 90 days.
pub const DEFAULT_LEAF_DAYS: i64 = 90;
/// Leaves are back-dated a little so a node whose clock is slightly behind
/// the CA's still accepts a freshly issued certificate.
const BACKDATE: Duration = Duration::minutes(5);

/// What kind of certificate to issue.
#[derive(Debug, Clone)]
pub enum CertKind {
    /// A cluster node: serverAuth + clientAuth, with its addresses as SANs.
    Node {
        name: String,
        ips: Vec<IpAddr>,
        dns: Vec<String>,
    },
    /// An operator (or monitoring system): clientAuth, role in the certificate.
    Operator { name: String, role: Role },
    /// An employee's device: clientAuth, user id in the certificate.
    Device { user: String },
}

impl CertKind {
    pub fn role(&self) -> Role {
        match self {
            CertKind::Node { .. } => Role::Node,
            CertKind::Operator { role, .. } => *role,
            CertKind::Device { .. } => Role::Device,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            CertKind::Node { name, .. } | CertKind::Operator { name, .. } => name,
            CertKind::Device { user } => user,
        }
    }
    pub fn kind_str(&self) -> &'static str {
        match self {
            CertKind::Node { .. } => "node",
            CertKind::Operator { .. } => "operator",
            CertKind::Device { .. } => "device",
        }
    }
}

/// Validity window of a certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From now (back-dated a few minutes) for `days` days.
    pub fn days(days: i64) -> Result<Validity> {
        if !(1..=CA_VALIDITY_DAYS).contains(&days) {
            return Err(CertError::InvalidInput {
                what: "--days",
                detail: format!("{days}: must be between 1 and {CA_VALIDITY_DAYS}"),
            });
        }
        let now = OffsetDateTime::now_utc();
        Ok(Validity {
            not_before: now - BACKDATE,
            not_after: now + Duration::days(days),
        })
    }
}

/// One line of the CA's index of issued certificates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexEntry {
    pub serial: String,
    pub kind: String,
    pub name: String,
    pub role: Role,
    pub not_before: String,
    pub not_after: String,
    pub not_after_unix: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A freshly issued certificate and its private key (PEM).
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub entry: IndexEntry,
}

/// Paths inside a CA directory.
#[derive(Debug, Clone)]
pub struct CaPaths {
    pub dir: PathBuf,
}

impl CaPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CaPaths { dir: dir.into() }
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn crl_number(&self) -> PathBuf {
        self.dir.join("crl.number")
    }
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.json")
    }
    /// Default bundle directory for an issued certificate.
    pub fn bundle_dir(&self, kind: &CertKind) -> PathBuf {
        self.dir
            .join("issued")
            .join(format!("{}-{}", kind.kind_str(), kind.name()))
    }
}

/// Create a key pair and a CSR for `name` (PEM key, PEM CSR): what a
/// joining node sends so its private key never leaves it.
pub fn new_key_and_csr(name: &str) -> Result<(String, String)> {
    validate_name("name", name)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// An opened CA: its certificate and signing key.
pub struct CertificateAuthority {
    paths: CaPaths,
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.paths.dir)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl CertificateAuthority {
    /// Create a new CA in `dir`. Refuses if a CA (certificate or key) is
    /// already there: overwriting a CA would orphan every certificate it issued.
    pub fn init(dir: &Path, common_name: &str) -> Result<CertificateAuthority> {
        let paths = CaPaths::new(dir);
        for p in [paths.cert(), paths.key()] {
            if p.exists() {
                return Err(CertError::CaExists { path: p });
            }
        }
        files::create_private_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Enclave");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        // Key first: a crash between the two writes leaves a key without a
        // certificate, which `init` refuses to overwrite and `open` reports.
        files::write_secret(&paths.key(), key.serialize_pem().as_bytes())?;
        files::write_public(&paths.cert(), cert.pem().as_bytes())?;
        let ca = CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            paths,
        };
        ca.save_index(&[])?;
        ca.write_crl()?;
        Ok(ca)
    }

    /// Open an existing CA directory.
    pub fn open(dir: &Path) -> Result<CertificateAuthority> {
        let paths = CaPaths::new(dir);
        let cert_pem = files::read_string(&paths.cert())?;
        let cert_der = files::load_cert(&paths.cert())?.to_vec();
        let key_pem = files::read_string(&paths.key())?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(|e| malformed(&paths.key(), "private key", e))?;
        if key.public_key_raw() != ca_public_key(&paths.cert(), &cert_der)?.as_slice() {
            return Err(CertError::KeyMismatch {
                key: paths.key(),
                cert: paths.cert(),
            });
        }
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| malformed(&paths.cert(), "CA certificate", e))?;
        Ok(CertificateAuthority {
            paths,
            cert_pem,
            cert_der,
            issuer,
        })
    }

    pub fn paths(&self) -> &CaPaths {
        &self.paths
    }
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// `sha256:<hex>` of the CA certificate (DER).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// Issue a certificate (with a fresh key) and record it in the index.
    pub fn issue(&self, kind: &CertKind, validity: Validity) -> Result<IssuedCert> {
        self.issue_inner(kind, validity, None)
    }

    /// Issue a certificate for the key of a CSR (PEM); the key never leaves
    /// its owner. `IssuedCert::key_pem` is empty.
    pub fn issue_for_csr(
        &self,
        kind: &CertKind,
        validity: Validity,
        csr_pem: &str,
    ) -> Result<IssuedCert> {
        self.issue_inner(kind, validity, Some(csr_pem))
    }

    fn issue_inner(
        &self,
        kind: &CertKind,
        validity: Validity,
        csr_pem: Option<&str>,
    ) -> Result<IssuedCert> {
        validate_name("name", kind.name())?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Enclave");
        dn.push(DnType::CommonName, kind.name());
        params.distinguished_name = dn;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let role = kind.role();
        let mut sans = vec![uri(&role.uri())?];
        match kind {
            CertKind::Node { name, ips, dns } => {
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
                sans.push(uri(&format!("{NODE_URI_PREFIX}{name}"))?);
                // The node name is also a DNS SAN so peers can verify they
                // reached the node they meant to, by name.
                let mut names: Vec<&String> = vec![name];
                names.extend(dns.iter());
                for d in names {
                    if d.contains('@') {
                        continue;
                    }
                    let dns = d.clone().try_into().map_err(|_| CertError::InvalidInput {
                        what: "--dns",
                        detail: format!("{d:?} is not a valid DNS name"),
                    })?;
                    let san = SanType::DnsName(dns);
                    if !sans.contains(&san) {
                        sans.push(san);
                    }
                }
                sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
            }
            CertKind::Operator { role, .. } => {
                if !role.is_operator() {
                    return Err(CertError::InvalidInput {
                        what: "--role",
                        detail: format!(
                            "{role} is not an operator role (sysadmin, secadmin, auditor, monitor)"
                        ),
                    });
                }
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            CertKind::Device { user } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                sans.push(uri(&format!("{USER_URI_PREFIX}{user}"))?);
            }
        }
        params.subject_alt_names = sans;
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        let (cert, key_pem) = match csr_pem {
            None => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
                (params.signed_by(&key, &self.issuer)?, key.serialize_pem())
            }
            Some(pem) => {
                // The CSR proves possession of its key (its signature is
                // verified); everything else in it is ignored: names, roles
                // and validity come from the CA's own parameters.
                let csr = rcgen::CertificateSigningRequestParams::from_pem(pem).map_err(|e| {
                    CertError::InvalidInput {
                        what: "certificate signing request",
                        detail: e.to_string(),
                    }
                })?;
                (
                    params.signed_by(&csr.public_key, &self.issuer)?,
                    String::new(),
                )
            }
        };
        let entry = IndexEntry {
            serial: hex::encode(serial.to_bytes()),
            kind: kind.kind_str().into(),
            name: kind.name().into(),
            role,
            not_before: rfc3339(validity.not_before.unix_timestamp()),
            not_after: rfc3339(validity.not_after.unix_timestamp()),
            not_after_unix: validity.not_after.unix_timestamp(),
            revoked_at: None,
        };
        let mut index = self.list()?;
        index.push(entry.clone());
        self.save_index(&index)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem,
            entry,
        })
    }

    /// Write `cert.pem`, `key.pem` (0600) and `ca.pem` into `out_dir`.
    pub fn write_bundle(&self, issued: &IssuedCert, out_dir: &Path) -> Result<()> {
        files::create_private_dir(out_dir)?;
        files::write_secret(&out_dir.join("key.pem"), issued.key_pem.as_bytes())?;
        files::write_public(&out_dir.join("cert.pem"), issued.cert_pem.as_bytes())?;
        files::write_public(&out_dir.join("ca.pem"), self.cert_pem.as_bytes())?;
        Ok(())
    }

    /// Every certificate this CA issued, oldest first.
    pub fn list(&self) -> Result<Vec<IndexEntry>> {
        let path = self.paths.index();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = files::read_string(&path)?;
        serde_json::from_str(&text).map_err(|e| malformed(&path, "certificate index", e))
    }

    fn save_index(&self, entries: &[IndexEntry]) -> Result<()> {
        let json = serde_json::to_vec_pretty(entries).map_err(|e| CertError::InvalidInput {
            what: "index",
            detail: e.to_string(),
        })?;
        files::write_public(&self.paths.index(), &json)
    }

    /// Revoke a certificate by serial (hex, as printed by `cert list`) and
    /// rewrite the CRL. Revoking twice is not an error; it changes nothing.
    pub fn revoke(&self, serial: &str) -> Result<IndexEntry> {
        let serial = serial.trim().to_ascii_lowercase().replace(':', "");
        let serial = serial.strip_prefix("0x").unwrap_or(&serial).to_string();
        let mut index = self.list()?;
        let entry = index
            .iter_mut()
            .find(|e| e.serial == serial)
            .ok_or_else(|| CertError::UnknownSerial {
                serial: serial.clone(),
            })?;
        if entry.revoked_at.is_none() {
            entry.revoked_at = Some(rfc3339(OffsetDateTime::now_utc().unix_timestamp()));
        }
        let result = entry.clone();
        self.save_index(&index)?;
        self.write_crl()?;
        Ok(result)
    }

    /// (Re)write `crl.pem` from the index, with a new CRL number.
    pub fn write_crl(&self) -> Result<()> {
        let number_path = self.paths.crl_number();
        let number: u64 = if number_path.exists() {
            files::read_string(&number_path)?
                .trim()
                .parse()
                .map_err(|e| malformed(&number_path, "CRL number", e))?
        } else {
            0
        } + 1;
        let mut revoked = Vec::new();
        for e in self.list()? {
            if let Some(at) = &e.revoked_at {
                let bytes = hex::decode(&e.serial).map_err(|err| {
                    malformed(&self.paths.index(), "certificate index (serial)", err)
                })?;
                let when =
                    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                        .map_err(|err| {
                            malformed(&self.paths.index(), "certificate index (date)", err)
                        })?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: when,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                });
            }
        }
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            // Nodes do not enforce nextUpdate (a CRL is replaced, not
            // refreshed, in an air-gapped site); it is informational.
            next_update: now + Duration::days(365),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        let pem = crl.pem()?;
        files::write_public(&self.paths.crl(), pem.as_bytes())?;
        files::write_public(&number_path, number.to_string().as_bytes())?;
        Ok(())
    }
}

fn uri(s: &str) -> Result<SanType> {
    Ok(SanType::URI(s.to_string().try_into().map_err(|_| {
        CertError::InvalidInput {
            what: "name",
            detail: format!("{s:?} cannot be encoded in a certificate"),
        }
    })?))
}

/// 16 random bytes, first byte in 0x01..=0x7f so the DER integer is positive
/// and keeps its length (serials print the same everywhere).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CertError::InvalidInput {
            what: "random source",
            detail: "the system random number generator failed".into(),
        })?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_public_key(path: &Path, der: &[u8]) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| malformed(path, "X.509 certificate", e))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}
