//! Signatures by node keys, checkable with nothing but the CA certificate:
//! audit checkpoints are signed this way.
//!
//! A signature is ECDSA P-256 / SHA-256 (ASN.1) by the key of a node
//! certificate. Verification checks that the certificate chains to the
//! cluster CA (at the time the signature claims), carries the `node` role,
//! and that the signature matches.

use std::path::Path;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::identity::{Identity, Role};
use crate::{CertError, Result, files};

/// A node's signing key (its TLS key) with its certificate.
#[derive(Debug)]
pub struct NodeSigner {
    key: EcdsaKeyPair,
    pub cert_der: Vec<u8>,
    pub name: String,
}

fn bad(path: &Path, what: &'static str, detail: impl std::fmt::Display) -> CertError {
    files::malformed(path, what, detail.to_string())
}

impl NodeSigner {
    /// Load the key and certificate of a node bundle.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<NodeSigner> {
        let key = files::load_key(key_path)?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(bad(
                key_path,
                "node key",
                "expected a PKCS#8 ECDSA P-256 key",
            ));
        };
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| bad(key_path, "node key", e))?;
        let cert = files::load_cert(cert_path)?;
        let id = Identity::from_der(&cert)
            .ok_or_else(|| bad(cert_path, "node certificate", "no Enclave identity"))?;
        if id.role != Role::Node {
            return Err(CertError::WrongRole {
                path: cert_path.to_path_buf(),
                found: id.role.to_string(),
                expected: "node".into(),
            });
        }
        // The key must belong to the certificate.
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| bad(cert_path, "node certificate", e))?;
        if parsed.public_key().subject_public_key.data.as_ref() != pair.public_key().as_ref() {
            return Err(CertError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
            });
        }
        Ok(NodeSigner {
            key: pair,
            cert_der: cert.to_vec(),
            name: id.name,
        })
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CertError::InvalidInput {
                what: "signature",
                detail: "signing failed".into(),
            })
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signer's certificate is not from this CA or not valid at the signing time: {0}")]
    Untrusted(String),
    #[error("the signer's certificate is not a node certificate")]
    NotANode,
    #[error("the signature does not match")]
    Mismatch,
}

/// Check `signature` over `message` by the node certificate `cert_der`,
/// which must chain to one of `ca_ders` at `at_unix_secs`. Returns the
/// node's name.
pub fn verify_node_signature(
    ca_ders: &[Vec<u8>],
    cert_der: &[u8],
    at_unix_secs: u64,
    message: &[u8],
    sig: &[u8],
) -> std::result::Result<String, SignatureError> {
    let mut roots = RootCertStore::empty();
    for ca in ca_ders {
        roots
            .add(CertificateDer::from(ca.clone()))
            .map_err(|e| SignatureError::Untrusted(e.to_string()))?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .build()
            .map_err(|e| SignatureError::Untrusted(e.to_string()))?;
    verifier
        .verify_client_cert(
            &CertificateDer::from(cert_der.to_vec()),
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix_secs)),
        )
        .map_err(|e| SignatureError::Untrusted(e.to_string()))?;
    let id = Identity::from_der(cert_der).ok_or(SignatureError::NotANode)?;
    if id.role != Role::Node {
        return Err(SignatureError::NotANode);
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| SignatureError::Untrusted(e.to_string()))?;
    let key = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        parsed.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(message, sig)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(id.name)
}
