//! rustls configurations for Enclave's listeners and clients.
//!
//! One crypto provider (ring) and one protocol version (TLS 1.3) for the
//! whole binary. Servers that authenticate clients trust only the cluster CA
//! (never the system roots), honour the CRL, and accept only the roles the
//! listener is for: a node certificate is refused on the admin port and an
//! operator certificate on the peer port, at the handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::files;
use crate::identity::{Identity, Role};
use crate::inspect::CertInfo;
use crate::{CertError, Result};

/// The one crypto provider of every Enclave binary.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install ring as the process-wide default provider (idempotent). Libraries
/// that build their own rustls configs (hyper-rustls) then use it too.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where a party's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Optional CRL; when set but absent on disk, nothing is revoked yet.
    pub crl: Option<PathBuf>,
}

impl TlsPaths {
    /// The conventional bundle layout: `DIR/{ca,cert,key}.pem`, plus
    /// `DIR/crl.pem` if present.
    pub fn from_dir(dir: &Path) -> TlsPaths {
        TlsPaths {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            crl: Some(dir.join("crl.pem")),
        }
    }
}

/// Loaded and checked TLS material: the CA, our chain and key, the CRLs.
#[derive(Debug)]
pub struct TlsMaterial {
    pub paths: TlsPaths,
    pub ca: Vec<CertificateDer<'static>>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// SHA-256 over the raw bytes of every file, to notice changes.
    pub digest: [u8; 32],
}

impl TlsMaterial {
    /// Load the files and check them: the key matches the certificate, the
    /// certificate chains to the CA, is inside its validity window and is not
    /// revoked. Each failure names the file at fault.
    pub fn load(paths: &TlsPaths) -> Result<TlsMaterial> {
        let material = TlsMaterial::load_unverified(paths)?;
        material.check_key_matches()?;
        material.check_leaf()?;
        Ok(material)
    }

    /// Load without checking the certificate against the CA, validity or CRL
    /// (the key must still parse). For tests and diagnostics that need to
    /// present a bad certificate and see what the *server* does with it.
    pub fn load_unverified(paths: &TlsPaths) -> Result<TlsMaterial> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in [&paths.ca, &paths.cert, &paths.key] {
            ctx.update(&files::read(p)?);
        }
        let ca = files::load_certs(&paths.ca)?;
        let chain = files::load_certs(&paths.cert)?;
        let key = files::load_key(&paths.key)?;
        let crls = match &paths.crl {
            Some(p) if p.exists() => {
                ctx.update(&files::read(p)?);
                files::load_crls(p)?
            }
            _ => Vec::new(),
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        Ok(TlsMaterial {
            paths: paths.clone(),
            ca,
            chain,
            key,
            crls,
            digest,
        })
    }

    /// The identity carried by our own certificate.
    pub fn identity(&self) -> Option<Identity> {
        self.chain.first().and_then(|c| Identity::from_der(c))
    }

    /// Like `load`, and also require our certificate to carry one of `roles`.
    pub fn load_for_role(paths: &TlsPaths, roles: &[Role]) -> Result<TlsMaterial> {
        let m = TlsMaterial::load(paths)?;
        match m.identity() {
            Some(id) if roles.contains(&id.role) => Ok(m),
            other => Err(CertError::WrongRole {
                path: paths.cert.clone(),
                found: other.map_or("none".into(), |i| i.role.to_string()),
                expected: roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            }),
        }
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| files::malformed(&self.paths.ca, "CA certificate", e))?;
        }
        Ok(roots)
    }

    fn check_key_matches(&self) -> Result<()> {
        let signing_key = provider()
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| files::malformed(&self.paths.key, "private key", e))?;
        let ck = rustls::sign::CertifiedKey::new(self.chain.clone(), signing_key);
        match ck.keys_match() {
            Ok(()) => Ok(()),
            // Key types whose public key rustls cannot derive are checked at
            // handshake time instead.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(_) => Err(CertError::KeyMismatch {
                key: self.paths.key.clone(),
                cert: self.paths.cert.clone(),
            }),
        }
    }

    /// webpki verification of client certificates: cluster CA only, CRL
    /// honoured for leaves. Used by servers and to check our own leaf.
    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
            .with_crls(self.crls.clone())
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| CertError::Rejected {
                path: self.paths.ca.clone(),
                detail: e.to_string(),
            })
    }

    fn check_leaf(&self) -> Result<()> {
        let verifier = self.client_verifier()?;
        let (leaf, rest) = self.chain.split_first().ok_or_else(|| {
            files::malformed(&self.paths.cert, "PEM certificate", "no certificate")
        })?;
        verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .map(|_| ())
            .map_err(|e| cert_error_for(&self.paths.cert, &self.paths.ca, leaf, &e))
    }
}

/// Translate a rustls verification error about the certificate in `path`
/// into a typed error naming that file.
pub fn cert_error_for(path: &Path, ca: &Path, der: &[u8], e: &rustls::Error) -> CertError {
    let info = CertInfo::from_der(path, der).ok();
    match e {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertError::Expired {
                    path: path.to_path_buf(),
                    not_after: info.map(|i| i.not_after).unwrap_or_default(),
                }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertError::NotYetValid {
                    path: path.to_path_buf(),
                    not_before: info.map(|i| i.not_before).unwrap_or_default(),
                }
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                CertError::WrongCa {
                    path: path.to_path_buf(),
                    ca: ca.to_path_buf(),
                }
            }
            CertificateError::Revoked => CertError::Revoked {
                path: path.to_path_buf(),
                serial: info.map(|i| i.serial).unwrap_or_default(),
            },
            other => CertError::Rejected {
                path: path.to_path_buf(),
                detail: other.to_string(),
            },
        },
        other => CertError::Rejected {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// Who a server listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// Server-authenticated TLS only (the client API without device certs).
    None,
    /// A client certificate from the cluster CA with one of these roles.
    Require(Vec<Role>),
}

impl ClientAuth {
    /// The peer port: node certificates only.
    pub fn nodes() -> ClientAuth {
        ClientAuth::Require(vec![Role::Node])
    }
    /// The admin port: operator and monitor certificates only.
    pub fn operators() -> ClientAuth {
        ClientAuth::Require(Role::OPERATOR.to_vec())
    }
    /// The api port on sites that require device certificates.
    pub fn devices() -> ClientAuth {
        ClientAuth::Require(vec![Role::Device])
    }
}

/// Build a TLS 1.3 server config presenting `m`'s certificate.
pub fn server_config(m: &TlsMaterial, auth: &ClientAuth) -> Result<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Require(roles) => {
            let inner = m.client_verifier()?;
            builder.with_client_cert_verifier(Arc::new(RoleVerifier {
                inner,
                roles: roles.clone(),
            }))
        }
    };
    let mut config = builder.with_single_cert(m.chain.clone(), m.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Build a TLS 1.3 client config that presents `m`'s certificate and trusts
/// only the cluster CA.
///
/// The server's certificate is also checked against our CRL, so a revoked
/// node cannot pose as a peer either.
pub fn client_config(m: &TlsMaterial) -> Result<ClientConfig> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(m.roots()?),
        provider(),
    )
    .with_crls(m.crls.clone())
    .only_check_end_entity_revocation()
    .allow_unknown_revocation_status()
    .build()
    .map_err(|e| CertError::Rejected {
        path: m.paths.ca.clone(),
        detail: e.to_string(),
    })?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(m.chain.clone(), m.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client config that trusts only the cluster CA and presents no
/// certificate (employees' clients on the api port).
pub fn anonymous_client_config(ca_path: &Path) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in files::load_certs(ca_path)? {
        roots
            .add(c)
            .map_err(|e| files::malformed(ca_path, "CA certificate", e))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Chain verification by webpki, then the role check: a valid certificate
/// with the wrong role fails the handshake with `access_denied`.
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    roles: Vec<Role>,
}

impl ClientCertVerifier for RoleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match Identity::from_der(end_entity) {
            Some(id) if self.roles.contains(&id.role) => Ok(ClientCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
