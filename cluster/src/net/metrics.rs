use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
