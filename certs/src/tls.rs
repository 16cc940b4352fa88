//! rustls configurations for Enclave's listeners and clients.
//!
//! One crypto provider (ring) and one protocol version (TLS 1.3) for the
//! whole binary, with one exception: the api listener may also accept
//! TLS 1.2 ([`TlsVersions::Tls12AndUp`], `api.tls_min_version = "1.2"`) for
//! integration hosts that lack TLS 1.3. Servers that authenticate clients
//! trust only the cluster CA (never the system roots), honour the CRL, and
//! accept only the roles the listener is for: a node certificate is refused
//! on the admin port and an operator certificate on the peer port, at the
//! handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use serde::Serialize;

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

    /// The trust bundle and our own certificate, described (which CA of
    /// the bundle issued it, expiry dates).
    pub fn trust_info(&self) -> Result<crate::trust::TrustInfo> {
        let leaf = self.chain.first().ok_or_else(|| {
            files::malformed(&self.paths.cert, "PEM certificate", "no certificate")
        })?;
        crate::trust::TrustInfo::describe(&self.paths.ca, &self.ca, &self.paths.cert, leaf)
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

/// The protocol versions a server listener accepts.
///
/// Only two sets can be expressed: TLS 1.3 alone (every listener, and the
/// default), and TLS 1.3 with TLS 1.2 beside it (the api port with
/// `api.tls_min_version = "1.2"`). "TLS 1.2 only" and anything older than
/// 1.2 have no value here. With [`TlsVersions::Tls12AndUp`] rustls still
/// negotiates TLS 1.3 with every client that offers it; TLS 1.2 is only the
/// fallback.
///
/// rustls implements no other TLS 1.2 suites than ECDHE key exchange with
/// AEAD ciphers, so a TLS 1.2 handshake uses one of
/// `TLS_ECDHE_ECDSA_WITH_{AES_256_GCM_SHA384, AES_128_GCM_SHA256, CHACHA20_POLY1305_SHA256}`
/// (the cluster CA issues ECDSA P-256 keys, so these are the ones a node can
/// serve) or their `ECDHE_RSA` twins (never selected with an ECDSA key):
/// always forward-secret, never CBC, static RSA, renegotiation or
/// compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum TlsVersions {
    /// TLS 1.3 only: the peer and admin ports, the join door, and the api
    /// port by default.
    #[default]
    #[serde(rename = "1.3")]
    Tls13Only,
    /// TLS 1.3, and TLS 1.2 (ECDHE + AEAD) for clients without 1.3. Only for
    /// listeners whose clients are not nodes or operators (see
    /// [`server_config_with_versions`]).
    #[serde(rename = "1.2")]
    Tls12AndUp,
}

impl TlsVersions {
    /// The lowest version accepted, as written in the configuration.
    pub fn min_version(self) -> &'static str {
        match self {
            TlsVersions::Tls13Only => "1.3",
            TlsVersions::Tls12AndUp => "1.2",
        }
    }

    /// The rustls protocol versions, TLS 1.3 first.
    pub fn protocol_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static TLS13_AND_12: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        match self {
            TlsVersions::Tls13Only => TLS13_ONLY,
            TlsVersions::Tls12AndUp => TLS13_AND_12,
        }
    }
}

impl fmt::Display for TlsVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.min_version())
    }
}

/// Parses a minimum version as written in the configuration: exactly `"1.3"`
/// or `"1.2"`.
impl FromStr for TlsVersions {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "1.3" => Ok(TlsVersions::Tls13Only),
            "1.2" => Ok(TlsVersions::Tls12AndUp),
            _ => Err("must be \"1.3\" (the default) or \"1.2\" (TLS 1.3 preferred, TLS 1.2 with ECDHE and AEAD suites allowed); older versions are not supported".into()),
        }
    }
}

/// Build a TLS 1.3 server config presenting `m`'s certificate.
pub fn server_config(m: &TlsMaterial, auth: &ClientAuth) -> Result<ServerConfig> {
    server_config_with_versions(m, auth, TlsVersions::Tls13Only)
}

/// Build a server config presenting `m`'s certificate that accepts
/// `versions`.
///
/// TLS 1.2 is refused for a listener that admits node or operator
/// certificates: the peer and admin ports (and their clients, all our own
/// binaries) stay TLS 1.3 only whatever the configuration says.
pub fn server_config_with_versions(
    m: &TlsMaterial,
    auth: &ClientAuth,
    versions: TlsVersions,
) -> Result<ServerConfig> {
    if let (TlsVersions::Tls12AndUp, ClientAuth::Require(roles)) = (versions, auth)
        && let Some(role) = roles.iter().find(|r| **r != Role::Device)
    {
        return Err(CertError::InvalidInput {
            what: "TLS versions",
            detail: format!(
                "TLS 1.2 is only for the api port; a listener that admits {role} certificates is TLS 1.3 only"
            ),
        });
    }
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.protocol_versions())?;
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

#[cfg(test)]
mod versions_tests {
    //! Which protocol versions a server config accepts, with in-memory
    //! handshakes against real certificates.

    use std::path::Path;

    use rustls::{ClientConnection, ProtocolVersion, ServerConnection};

    use super::*;
    use crate::{CertKind, CertificateAuthority, ReloadOutcome, ReloadingServerConfig, Validity};

    fn node_bundle(ca: &CertificateAuthority, dir: &Path) -> TlsPaths {
        let kind = CertKind::Node {
            name: "n1".into(),
            ips: vec!["127.0.0.1".parse().expect("ip")],
            dns: vec!["localhost".into()],
        };
        let issued = ca
            .issue(&kind, Validity::days(5).expect("days"))
            .expect("issue");
        ca.write_bundle(&issued, dir).expect("bundle");
        TlsPaths::from_dir(dir)
    }

    /// An anonymous client trusting `ca` that offers only `versions`.
    fn client(ca: &Path, versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        for c in files::load_certs(ca).expect("ca") {
            roots.add(c).expect("root");
        }
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// Run a handshake in memory; the negotiated version and suite, or the
    /// server's error.
    fn handshake(
        server: Arc<ServerConfig>,
        client: ClientConfig,
    ) -> std::result::Result<(ProtocolVersion, rustls::CipherSuite), rustls::Error> {
        let mut c = ClientConnection::new(
            Arc::new(client),
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
        )
        .expect("client");
        let mut s = ServerConnection::new(server).expect("server");
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).expect("client write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server read");
            }
            s.process_new_packets()?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).expect("server write");
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("client read");
            }
            c.process_new_packets().expect("client process");
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok((
                    s.protocol_version().expect("version"),
                    s.negotiated_cipher_suite().expect("suite").suite(),
                ));
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn only_1_3_and_1_2_parse() {
        assert_eq!("1.3".parse(), Ok(TlsVersions::Tls13Only));
        assert_eq!("1.2".parse(), Ok(TlsVersions::Tls12AndUp));
        assert_eq!(TlsVersions::default(), TlsVersions::Tls13Only);
        for bad in ["1.1", "1.0", "tls1.2", "TLSv1.2", "1.2 ", "12", "", "1.4"] {
            assert!(bad.parse::<TlsVersions>().is_err(), "{bad:?} parsed");
        }
        for v in [TlsVersions::Tls13Only, TlsVersions::Tls12AndUp] {
            assert_eq!(v.to_string().parse(), Ok(v));
            assert_eq!(
                serde_json::to_value(v).expect("json"),
                serde_json::json!(v.min_version())
            );
        }
    }

    #[test]
    fn tls_1_2_is_accepted_only_when_asked_for_and_1_3_stays_preferred() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::init(&dir.path().join("ca"), "t").expect("init");
        let paths = node_bundle(&ca, &dir.path().join("n"));
        let m = TlsMaterial::load(&paths).expect("load");
        let tls12_only = || client(&paths.ca, &[&rustls::version::TLS12]);
        let both = || {
            client(
                &paths.ca,
                &[&rustls::version::TLS13, &rustls::version::TLS12],
            )
        };

        // The default (and `server_config`) refuses a TLS 1.2-only client.
        for server in [
            server_config(&m, &ClientAuth::None).expect("server"),
            server_config_with_versions(&m, &ClientAuth::None, TlsVersions::Tls13Only)
                .expect("server"),
        ] {
            let err = handshake(Arc::new(server), tls12_only()).expect_err("1.2 accepted");
            assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
        }

        // With Tls12AndUp: TLS 1.2 with an ECDHE_ECDSA AEAD suite (the key
        // is ECDSA P-256) ...
        let server = Arc::new(
            server_config_with_versions(&m, &ClientAuth::None, TlsVersions::Tls12AndUp)
                .expect("server"),
        );
        let (version, suite) = handshake(server.clone(), tls12_only()).expect("1.2");
        assert_eq!(version, ProtocolVersion::TLSv1_2);
        assert!(
            [
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
            .contains(&suite),
            "{suite:?}"
        );
        // ... and still TLS 1.3 with a client that speaks both.
        let (version, _) = handshake(server, both()).expect("1.3");
        assert_eq!(version, ProtocolVersion::TLSv1_3);

        // The TLS 1.2 suites a server offers are ECDHE + AEAD only.
        let offered = provider().cipher_suites.clone();
        for s in offered
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
        {
            let name = format!("{:?}", s.suite());
            assert!(
                name.starts_with("TLS_ECDHE_")
                    && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305")),
                "{name}"
            );
        }
    }

    #[test]
    fn node_and_operator_listeners_cannot_allow_tls_1_2() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::init(&dir.path().join("ca"), "t").expect("init");
        let paths = node_bundle(&ca, &dir.path().join("n"));
        let m = TlsMaterial::load(&paths).expect("load");
        for auth in [
            ClientAuth::nodes(),
            ClientAuth::operators(),
            ClientAuth::Require(vec![Role::Device, Role::Monitor]),
        ] {
            let err = server_config_with_versions(&m, &auth, TlsVersions::Tls12AndUp)
                .expect_err("1.2 on a node/operator listener");
            assert!(
                matches!(err, CertError::InvalidInput { .. }) && err.to_string().contains("api"),
                "{err}"
            );
            assert!(
                ReloadingServerConfig::with_versions(paths.clone(), auth, TlsVersions::Tls12AndUp)
                    .is_err()
            );
        }
        for auth in [ClientAuth::None, ClientAuth::devices()] {
            server_config_with_versions(&m, &auth, TlsVersions::Tls12AndUp).expect("api listener");
        }
    }

    #[test]
    fn a_reload_keeps_the_listeners_versions() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::init(&dir.path().join("ca"), "t").expect("init");
        let out = dir.path().join("n");
        let paths = node_bundle(&ca, &out);
        let tls12_only = || client(&paths.ca, &[&rustls::version::TLS12]);
        let api = ReloadingServerConfig::with_versions(
            paths.clone(),
            ClientAuth::None,
            TlsVersions::Tls12AndUp,
        )
        .expect("api");
        let strict = ReloadingServerConfig::new(paths.clone(), ClientAuth::None).expect("join");
        assert_eq!(api.versions(), TlsVersions::Tls12AndUp);
        assert_eq!(strict.versions(), TlsVersions::Tls13Only);
        // Rotate the certificate.
        node_bundle(&ca, &out);
        for r in [&api, &strict] {
            assert!(matches!(
                r.reload_if_changed().expect("reload"),
                ReloadOutcome::Reloaded { .. }
            ));
        }
        handshake(api.current(), tls12_only()).expect("1.2 after reload");
        let err = handshake(strict.current(), tls12_only()).expect_err("1.2 after reload");
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
    }
}
