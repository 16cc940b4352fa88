use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// (listener, reason, source address) -> refused handshakes.
pub type RefusalCounts = std::collections::HashMap<(String, String, String), u32>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub listener: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

/// Per-listener TLS metrics (shared by all listeners, labelled by name).
#[derive(Clone, Debug, Default)]
pub struct ListenerMetrics {
    /// `enclave_tls_handshakes_total{listener, result}`: result is `ok` or the
    /// refusal reason (`no_certificate`, `unknown_ca`, `revoked`, `expired`,
    /// `not_yet_valid`, `wrong_role`, `bad_certificate`, `not_tls`,
    /// `client_rejected_server`, `incompatible`, `timeout`, `other`).
    pub handshakes: Family<HandshakeLabels, Counter>,
    /// `enclave_open_connections{listener}`.
    pub open_connections: Family<ListenerLabels, Gauge>,
    /// Refused handshakes since the node last collected them, by
    /// (listener, reason, source address): the node writes them to the
    /// audit trail aggregated. Bounded (new keys beyond 10,000 are dropped
    /// from this map; the metric still counts them).
    pub refusals: std::sync::Arc<std::sync::Mutex<RefusalCounts>>,
}

impl ListenerMetrics {
    /// Take the refusals counted so far.
    pub fn take_refusals(&self) -> Vec<((String, String, String), u32)> {
        std::mem::take(&mut *self.refusals.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .collect()
    }

    pub(crate) fn note_refusal(&self, listener: &str, reason: &str, source: &str) {
        let mut m = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let key = (listener.to_string(), reason.to_string(), source.to_string());
        if m.len() < 10_000 || m.contains_key(&key) {
            *m.entry(key).or_insert(0) += 1;
        }
    }
}

impl ListenerMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "enclave_tls_handshakes",
            "TLS handshakes by listener and result",
            self.handshakes.clone(),
        );
        registry.register(
            "enclave_open_connections",
            "Open TLS connections by listener",
            self.open_connections.clone(),
        );
    }
}
