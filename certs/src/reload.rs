//! Hot reload of a listener's TLS material.
//!
//! The listener asks for the current `ServerConfig` at every accept, so a
//! reload affects only new handshakes; connections already open keep the
//! session they negotiated. A reload that fails (a half-copied key, an
//! expired replacement) keeps the previous material and is retried at the
//! next check, so an operator copying files one by one never takes a node
//! down.

use std::sync::{Arc, Mutex, RwLock};

use rustls::ServerConfig;

use crate::tls::{ClientAuth, TlsMaterial, TlsPaths, TlsVersions, server_config_with_versions};
use crate::trust::TrustInfo;
use crate::{Identity, Result};

/// Outcome of one reload check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Reloaded { serial: String },
}

#[derive(Debug)]
struct Current {
    config: Arc<ServerConfig>,
    digest: [u8; 32],
    identity: Option<Identity>,
}

/// A server config that can be swapped while the listener runs.
#[derive(Debug)]
pub struct ReloadingServerConfig {
    paths: TlsPaths,
    auth: ClientAuth,
    /// Fixed for the listener's life: every reload builds with them again.
    versions: TlsVersions,
    current: RwLock<Current>,
    last_failure: Mutex<Option<String>>,
}

impl ReloadingServerConfig {
    /// A TLS 1.3-only listener (peer, admin, join door; api by default).
    pub fn new(paths: TlsPaths, auth: ClientAuth) -> Result<Arc<ReloadingServerConfig>> {
        ReloadingServerConfig::with_versions(paths, auth, TlsVersions::Tls13Only)
    }

    /// A listener that accepts `versions`, at start and after every reload.
    /// [`TlsVersions::Tls12AndUp`] is refused when `auth` admits node or
    /// operator certificates (see [`server_config_with_versions`]).
    pub fn with_versions(
        paths: TlsPaths,
        auth: ClientAuth,
        versions: TlsVersions,
    ) -> Result<Arc<ReloadingServerConfig>> {
        let m = TlsMaterial::load(&paths)?;
        let current = Current {
            config: Arc::new(server_config_with_versions(&m, &auth, versions)?),
            digest: m.digest,
            identity: m.identity(),
        };
        Ok(Arc::new(ReloadingServerConfig {
            paths,
            auth,
            versions,
            current: RwLock::new(current),
            last_failure: Mutex::new(None),
        }))
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.config.clone(),
            Err(poisoned) => poisoned.into_inner().config.clone(),
        }
    }

    /// Identity of the certificate currently presented.
    pub fn identity(&self) -> Option<Identity> {
        match self.current.read() {
            Ok(c) => c.identity.clone(),
            Err(poisoned) => poisoned.into_inner().identity.clone(),
        }
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The protocol versions this listener accepts.
    pub fn versions(&self) -> TlsVersions {
        self.versions
    }

    /// Re-read the files; swap in new material if it changed and is valid.
    /// On error the old material stays in use.
    pub fn reload_if_changed(&self) -> Result<ReloadOutcome> {
        let m = TlsMaterial::load(&self.paths)?;
        {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            if cur.digest == m.digest {
                return Ok(ReloadOutcome::Unchanged);
            }
        }
        // A rotation must keep the listener's identity: a certificate for
        // another node, or with another role, is refused.
        let identity = m.identity();
        let before = self.identity();
        let same = match (&before, &identity) {
            (Some(a), Some(b)) => a.role == b.role && a.name == b.name,
            (None, None) => true,
            _ => false,
        };
        if !same {
            return Err(crate::CertError::WrongRole {
                path: self.paths.cert.clone(),
                found: identity.map_or("none".into(), |i| format!("{} {}", i.role, i.name)),
                expected: before.map_or("none".into(), |i| {
                    format!(
                        "{} {} (the identity this listener started with)",
                        i.role, i.name
                    )
                }),
            });
        }
        let config = Arc::new(server_config_with_versions(&m, &self.auth, self.versions)?);
        let serial = identity
            .as_ref()
            .map(|i| i.serial.clone())
            .unwrap_or_default();
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = Current {
            config,
            digest: m.digest,
            identity,
        };
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(ReloadOutcome::Reloaded { serial })
    }

    /// True if `msg` differs from the previous failure (log it), false if it
    /// repeats (stay quiet).
    pub fn is_new_failure(&self, msg: &str) -> bool {
        let mut last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        let new = last.as_deref() != Some(msg);
        *last = Some(msg.to_string());
        new
    }
}

/// A client config (our certificate, trusting only the cluster CA) that can
/// be swapped when the node's certificate is rotated. Used for node-to-node
/// connections.
#[derive(Debug)]
pub struct ReloadingClientConfig {
    paths: TlsPaths,
    current: RwLock<(Arc<rustls::ClientConfig>, [u8; 32])>,
    /// The trust bundle and certificate in use, for status and metrics.
    trust: RwLock<Option<TrustInfo>>,
}

impl ReloadingClientConfig {
    pub fn new(paths: TlsPaths) -> Result<Arc<ReloadingClientConfig>> {
        let m = TlsMaterial::load(&paths)?;
        let config = Arc::new(crate::tls::client_config(&m)?);
        Ok(Arc::new(ReloadingClientConfig {
            paths,
            current: RwLock::new((config, m.digest)),
            trust: RwLock::new(m.trust_info().ok()),
        }))
    }

    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Swap in new material if the files changed and are valid.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let m = TlsMaterial::load(&self.paths)?;
        if self.current.read().unwrap_or_else(|p| p.into_inner()).1 == m.digest {
            return Ok(false);
        }
        let config = Arc::new(crate::tls::client_config(&m)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, m.digest);
        *self.trust.write().unwrap_or_else(|p| p.into_inner()) = m.trust_info().ok();
        Ok(true)
    }

    /// The CA bundle this client trusts and the certificate it presents,
    /// as last loaded (`None` only if they could not be described).
    pub fn trust_info(&self) -> Option<TrustInfo> {
        self.trust.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }
}
