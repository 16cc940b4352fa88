//! Certificate and CA rotation over the admin port (secadmin): the node
//! makes a new key and a CSR, installs the certificate the CA signed for
//! it, or installs a new trust bundle — each checked before it replaces
//! anything, written atomically, reloaded at once, and recorded in the
//! audit trail. `enclavectl cert rotate` and `enclavectl ca rotate` drive
//! these routes node by node (docs/operator/pki.md § Rotation).
//!
//! The CA key never comes near the node and the node's new private key
//! never leaves it: only a CSR goes out and a certificate comes back.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use enclave_certs::install;
use enclave_certs::trust::{CaSummary, LeafSummary, TrustInfo, expiry_warning};
use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use super::OperatorOrigin;
use crate::http::{ApiError, Body, NodeState, S};

/// Wakes the reload loop (as SIGHUP does) after an install, so the new
/// material is served at once rather than at the next interval. Several
/// nodes in one process share it; a spurious wake-up only re-reads files
/// that did not change.
pub static RELOAD: Notify = Notify::const_new();

/// One install at a time on this node.
static INSTALL: Mutex<()> = Mutex::const_new(());

/// How long an install waits for the reload loop to serve the new material.
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// What `/v1/status` and `GET /v1/tls` report about this node's TLS.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TlsStatus {
    /// The CA certificates this node trusts (two during a CA rotation).
    pub ca: Vec<CaSummary>,
    /// The certificate this node presents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<LeafSummary>,
    /// Certificates or CAs that expire within 30 days (or have expired).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// This node's TLS as currently served.
pub fn tls_status(state: &NodeState) -> TlsStatus {
    let Some(info) = state.peer_tls.trust_info() else {
        return TlsStatus::default();
    };
    let now = crate::http::now_ms() as i64 / 1000;
    let mut warnings = Vec::new();
    warnings.extend(expiry_warning(
        &format!("node certificate (serial {})", info.leaf.serial),
        info.leaf.not_after_unix,
        now,
    ));
    for ca in &info.ca {
        warnings.extend(expiry_warning(
            &format!("CA {}", ca.fingerprint),
            ca.not_after_unix,
            now,
        ));
    }
    TlsStatus {
        ca: info.ca,
        certificate: Some(info.leaf),
        warnings,
    }
}

/// The fingerprint of the CA that issued this node's certificate (what a
/// joining node pins with `--ca-hash`), else the first of the bundle.
pub fn active_ca_fingerprint(state: &NodeState) -> String {
    state
        .peer_tls
        .trust_info()
        .and_then(|i| {
            i.leaf
                .issuer_fingerprint
                .or(i.ca.first().map(|c| c.fingerprint.clone()))
        })
        .unwrap_or_else(|| state.ca_fingerprint.clone())
}

/// Every CA fingerprint this node trusts, in bundle order.
pub fn ca_fingerprints(state: &NodeState) -> Vec<String> {
    state
        .peer_tls
        .trust_info()
        .map(|i| i.fingerprints())
        .unwrap_or_else(|| vec![state.ca_fingerprint.clone()])
}

/// `GET /v1/tls` (operators).
pub async fn show(State(state): State<S>) -> Json<TlsStatus> {
    Json(tls_status(&state))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CsrAnswer {
    pub node: String,
    /// A CSR for the new key (PEM). Its subject is ignored by the CA.
    pub csr_pem: String,
    /// The certificate served now (PEM): its names and addresses are what
    /// the new one should carry.
    pub cert_pem: String,
}

/// `POST /v1/tls/csr` (secadmin): make a new key (kept on this node as
/// `<tls.key>.next`, mode 0600) and answer a CSR for it.
pub async fn csr(State(state): State<S>, op: OperatorOrigin) -> Result<Json<CsrAnswer>, ApiError> {
    let _one = INSTALL.lock().await;
    let paths = state.config.tls.clone();
    let node = state.node_id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let csr = install::generate_next_key(&paths, &node)?;
        let cert = std::fs::read_to_string(&paths.cert).map_err(|e| {
            enclave_certs::CertError::Unwritable {
                path: paths.cert.clone(),
                error: e,
            }
        })?;
        Ok::<_, enclave_certs::CertError>((csr, cert))
    })
    .await
    .map_err(|e| internal(e.to_string()))?;
    match result {
        Ok((csr_pem, cert_pem)) => {
            crate::http::record(&state, &op.0, "tls.key.generate", &state.node_id, "ok").await;
            Ok(Json(CsrAnswer {
                node: state.node_id.clone(),
                csr_pem,
                cert_pem,
            }))
        }
        Err(e) => {
            let msg = e.to_string();
            crate::http::record(
                &state,
                &op.0,
                "tls.key.generate",
                &state.node_id,
                &format!("failed: {msg}"),
            )
            .await;
            Err(internal(msg))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertReq {
    pub cert_pem: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustReq {
    pub ca_pem: String,
}

/// `PUT /v1/tls/cert` (secadmin): install the certificate issued for the
/// pending key; answers once new handshakes present it.
pub async fn put_cert(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<CertReq>,
) -> Result<Json<TlsStatus>, ApiError> {
    let _one = INSTALL.lock().await;
    let paths = state.config.tls.clone();
    let node = state.node_id.clone();
    let result =
        tokio::task::spawn_blocking(move || install::install_cert(&paths, &req.cert_pem, &node))
            .await
            .map_err(|e| internal(e.to_string()))?;
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            return Err(refused(&state, &op, "tls.cert.install", "certificate_refused", e).await);
        }
    };
    let serial = info.leaf.serial.clone();
    let served = wait_served(&state, |i| i.leaf.serial == serial).await;
    let outcome = format!(
        "ok serial {serial} issuer {} not_after {}{}",
        info.leaf.issuer_fingerprint.as_deref().unwrap_or("?"),
        info.leaf.not_after,
        if served {
            ""
        } else {
            " (installed; reload pending)"
        }
    );
    crate::http::record(&state, &op.0, "tls.cert.install", &state.node_id, &outcome).await;
    tracing::info!(serial, "rotated certificate installed over the admin API");
    reloaded_or_error(&state, served)
}

/// `PUT /v1/tls/trust` (secadmin): install a new trust bundle (one or more
/// CA certificates); refused if it does not vouch for this node's own
/// certificate. Answers once new handshakes use it.
pub async fn put_trust(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<TrustReq>,
) -> Result<Json<TlsStatus>, ApiError> {
    let _one = INSTALL.lock().await;
    let paths = state.config.tls.clone();
    let result = tokio::task::spawn_blocking(move || install::install_trust(&paths, &req.ca_pem))
        .await
        .map_err(|e| internal(e.to_string()))?;
    let info = match result {
        Ok(info) => info,
        Err(e) => return Err(refused(&state, &op, "tls.trust.install", "trust_refused", e).await),
    };
    let want = info.fingerprints();
    let served = wait_served(&state, |i| i.fingerprints() == want).await;
    let outcome = format!(
        "ok ca {}{}",
        want.join(","),
        if served {
            ""
        } else {
            " (installed; reload pending)"
        }
    );
    crate::http::record(&state, &op.0, "tls.trust.install", &state.node_id, &outcome).await;
    tracing::info!(ca = %want.join(","), "trust bundle installed over the admin API");
    reloaded_or_error(&state, served)
}

fn reloaded_or_error(state: &NodeState, served: bool) -> Result<Json<TlsStatus>, ApiError> {
    if served {
        Ok(Json(tls_status(state)))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reload_pending",
            format!(
                "the files are installed but the node has not reloaded them within {}s; see its log (\"TLS reload failed\") and enclave_tls_reloads_total{{result=\"error\"}}",
                RELOAD_WAIT.as_secs()
            ),
        ))
    }
}

/// Nudge the reload loop until the served material satisfies `done`.
async fn wait_served(state: &NodeState, done: impl Fn(&TrustInfo) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        if state.peer_tls.trust_info().as_ref().is_some_and(&done) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        RELOAD.notify_waiters();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn internal(msg: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "tls_install", msg)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabels {
    fingerprint: String,
}

/// `enclave_tls_ca_expiry_timestamp_seconds{fingerprint}`: when each CA
/// this node trusts expires, read from the served material at scrape time.
#[derive(Debug)]
pub struct CaExpiryCollector(pub std::sync::Arc<enclave_certs::ReloadingClientConfig>);

impl Collector for CaExpiryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<CaLabels, Gauge>::default();
        if let Some(info) = self.0.trust_info() {
            for ca in info.ca {
                family
                    .get_or_create(&CaLabels {
                        fingerprint: ca.fingerprint,
                    })
                    .set(ca.not_after_unix);
            }
        }
        let m = encoder.encode_descriptor(
            "enclave_tls_ca_expiry_timestamp_seconds",
            "Unix time at which each CA certificate this node trusts expires",
            None,
            family.metric_type(),
        )?;
        family.encode(m)
    }
}

/// Register [`CaExpiryCollector`] (call from `Metrics::new`'s registration
/// closure).
pub fn register_metrics(
    registry: &mut prometheus_client::registry::Registry,
    peer_tls: std::sync::Arc<enclave_certs::ReloadingClientConfig>,
) {
    registry.register_collector(Box::new(CaExpiryCollector(peer_tls)));
}

/// An install the node refused: audited as `refused: <why>`, answered 422.
async fn refused(
    state: &NodeState,
    op: &OperatorOrigin,
    action: &str,
    code: &'static str,
    e: impl std::fmt::Display,
) -> ApiError {
    let msg = e.to_string();
    crate::http::record(
        state,
        &op.0,
        action,
        &state.node_id,
        &format!("refused: {msg}"),
    )
    .await;
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
}
