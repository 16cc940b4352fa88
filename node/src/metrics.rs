//! Prometheus metrics of the node, served on the admin port at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use enclave_cluster::listener::ListenerMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub listener: String,
    pub method: String,
    /// The matched route template (bounded cardinality), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerOnly {
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub listener: String,
    pub result: String,
}

/// Per integrated app (bounded by the number of registered apps).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub agentid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppResultLabels {
    pub agentid: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub node: String,
}

/// All metrics of one node.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub listeners: ListenerMetrics,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<ListenerOnly, Histogram>,
    pub tls_reloads: Family<ReloadLabels, Counter>,
    pub cert_expiry_seconds: Family<ListenerOnly, Gauge>,
    pub uptime_seconds: Gauge,
    pub started: Instant,
    pub raft_term: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_last_log_index: Gauge,
    pub raft_applied_index: Gauge,
    pub raft_voters: Gauge,
    pub store_bytes: Gauge,
    /// Blob store (files): bytes and chunk files on this node, chunks
    /// referenced but missing here, repairs and damaged copies found.
    pub blob_bytes: Gauge,
    pub blob_chunks: Gauge,
    pub blob_missing: Gauge,
    pub blob_repaired: Gauge,
    pub blob_damaged: Gauge,
    /// Callback deliveries by app and result (`ok`, `failed`), on the
    /// leader that made them.
    pub app_callbacks: Family<AppResultLabels, Counter>,
    /// Events queued for an app's callback and not yet delivered.
    pub app_callback_queue: Family<AppLabels, Gauge>,
    /// Events not queued because an app's queue was full.
    pub app_callback_dropped: Family<AppLabels, Gauge>,
    /// Steps the leader proposed for bulk jobs and large fan-outs.
    pub runner_steps: Family<AppResultLabels, Counter>,
}

impl Metrics {
    /// `storage` registers the metrics the cluster's stores keep
    /// (see `ClusterNode::register_metrics`).
    pub fn new(node: &str, storage: impl FnOnce(&mut Registry)) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let listeners = ListenerMetrics::default();
        listeners.register(&mut registry);
        storage(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "enclave_http_requests",
            "HTTP requests by listener, route and status",
            requests.clone(),
        );
        let request_seconds = Family::<ListenerOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "enclave_http_request_duration_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        let tls_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "enclave_tls_reloads",
            "TLS material reload attempts by listener and result",
            tls_reloads.clone(),
        );
        let cert_expiry_seconds = Family::<ListenerOnly, Gauge>::default();
        registry.register(
            "enclave_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the certificate a listener presents expires",
            cert_expiry_seconds.clone(),
        );
        let uptime_seconds = Gauge::default();
        registry.register(
            "enclave_uptime_seconds",
            "Seconds since the node started",
            uptime_seconds.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                node: node.into(),
            })
            .set(1);
        registry.register("enclave_build_info", "Build and node information", build);
        let g = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let raft_term = g(&mut registry, "enclave_raft_term", "Current Raft term");
        let raft_is_leader = g(
            &mut registry,
            "enclave_raft_is_leader",
            "1 if this node is the Raft leader",
        );
        let raft_last_log_index = g(
            &mut registry,
            "enclave_raft_last_log_index",
            "Index of the last log entry on this node",
        );
        let raft_applied_index = g(
            &mut registry,
            "enclave_raft_applied_index",
            "Index of the last entry applied on this node",
        );
        let raft_voters = g(
            &mut registry,
            "enclave_raft_voters",
            "Number of voters in the membership this node knows",
        );
        let store_bytes = g(
            &mut registry,
            "enclave_store_bytes",
            "Bytes the sled store uses on disk",
        );
        let blob_bytes = g(
            &mut registry,
            "enclave_blob_bytes",
            "Bytes of file chunks stored on this node",
        );
        let blob_chunks = g(
            &mut registry,
            "enclave_blob_chunks",
            "File chunks stored on this node",
        );
        let blob_missing = g(
            &mut registry,
            "enclave_blob_missing_chunks",
            "Chunks recorded files need that this node lacked at its last repair pass",
        );
        let blob_repaired = g(
            &mut registry,
            "enclave_blob_repaired_chunks",
            "Chunks this node fetched from peers since it started (missing or damaged copies)",
        );
        let blob_damaged = g(
            &mut registry,
            "enclave_blob_damaged_chunks",
            "Damaged chunk copies this node found since it started (never served)",
        );
        let app_callbacks = Family::<AppResultLabels, Counter>::default();
        registry.register(
            "enclave_app_callbacks",
            "Callback deliveries to integrated apps by agentid and result",
            app_callbacks.clone(),
        );
        let app_callback_queue = Family::<AppLabels, Gauge>::default();
        registry.register(
            "enclave_app_callback_queue",
            "Callback events queued for an app and not yet delivered",
            app_callback_queue.clone(),
        );
        let app_callback_dropped = Family::<AppLabels, Gauge>::default();
        registry.register(
            "enclave_app_callback_dropped",
            "Callback events dropped because an app's queue was full",
            app_callback_dropped.clone(),
        );
        let runner_steps = Family::<AppResultLabels, Counter>::default();
        registry.register(
            "enclave_runner_steps",
            "Steps the leader proposed for bulk jobs and large fan-outs, by app and result",
            runner_steps.clone(),
        );
        Arc::new(Metrics {
            app_callbacks,
            app_callback_queue,
            app_callback_dropped,
            runner_steps,
            raft_term,
            raft_is_leader,
            raft_last_log_index,
            raft_applied_index,
            raft_voters,
            store_bytes,
            blob_bytes,
            blob_chunks,
            blob_missing,
            blob_repaired,
            blob_damaged,
            registry,
            listeners,
            requests,
            request_seconds,
            tls_reloads,
            cert_expiry_seconds,
            uptime_seconds,
            started: Instant::now(),
        })
    }

    /// Render the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.uptime_seconds
            .set(self.started.elapsed().as_secs() as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
