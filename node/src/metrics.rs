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

/// Which rate limit refused a request: `token` (requests per member
/// token), `login_source` (failed logins per source address), `app`
/// (requests per integrated app).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: String,
}

/// The limits [`Metrics::rate_limited`] counts, pre-created at 0: the
/// rate limits, then the admission bounds (`http::admission`).
pub const LIMITS: [&str; 6] = [
    "token",
    "login_source",
    "app",
    "requests",
    "writes",
    "password_hashing",
];

/// A follower of the leader, by node name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub follower: String,
}

/// Where forwarding the audit trail to the SIEM failed: `connect`
/// (TCP or TLS), `write`, `read` (the local chain) or `cursor` (saving
/// the forwarding position).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: String,
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
    pub snapshot_bytes: Gauge,
    pub log_bytes_since_snapshot: Gauge,
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
    /// Requests refused by a rate limit of this node, by limit.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Raft: the commit index this node knows, whether it knows a
    /// leader, whether Raft still runs, leader changes seen, and (on the
    /// leader) how many entries each follower lacks. Sampled by
    /// [`watch_loop`].
    pub raft_committed_index: Gauge,
    pub raft_has_leader: Gauge,
    pub raft_running: Gauge,
    /// 1 once this node stopped applying at an entry it cannot decode
    /// (an older build meeting a newer command kind).
    pub raft_apply_halted: Gauge,
    pub raft_leader_changes: Counter,
    pub raft_replication_lag: Family<FollowerLabels, Gauge>,
    /// 1 while `/readyz` would answer ready.
    pub ready: Gauge,
    /// The filesystem holding the data dir.
    pub disk_size_bytes: Gauge,
    pub disk_available_bytes: Gauge,
    /// Audit forwarding to the SIEM (`audit.syslog_addr`).
    pub audit_forwarded: Counter,
    pub audit_forward_errors: Family<StageLabels, Counter>,
    pub audit_forward_backlog: Gauge,
    /// This process: resident memory and CPU time, read from `/proc` at
    /// each scrape (0 where `/proc` is absent).
    pub process_resident_bytes: Gauge,
    /// `enclave_admission_request_limit`: requests the api port serves at
    /// once now (`http::admission::latency`).
    pub admission_request_limit: Gauge,
    pub process_cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
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
        let snapshot_bytes = g(
            &mut registry,
            "enclave_snapshot_bytes",
            "Uncompressed bytes of the current Raft snapshot (about the logical size of the state; the file is compressed from log version 6)",
        );
        let log_bytes_since_snapshot = g(
            &mut registry,
            "enclave_log_bytes_since_snapshot",
            "Approximate bytes of Raft log applied since the current snapshot (counted from the process start); the next build waits for raft.snapshot_log_percent of the snapshot's size",
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
        let rate_limited = Family::<LimitLabels, Counter>::default();
        for limit in LIMITS {
            // Created at 0, so a rate of refusals exists before the first.
            drop(rate_limited.get_or_create(&LimitLabels {
                limit: limit.into(),
            }));
        }
        registry.register(
            "enclave_rate_limited",
            "Requests refused by a rate limit of this node (token, login_source, app) or by an admission bound (requests, writes, password_hashing: 503 overloaded), by limit",
            rate_limited.clone(),
        );
        let raft_committed_index = g(
            &mut registry,
            "enclave_raft_committed_index",
            "Highest log index this node knows to be committed (0 if none)",
        );
        let raft_has_leader = g(
            &mut registry,
            "enclave_raft_has_leader",
            "1 if this node knows a leader",
        );
        let raft_running = g(
            &mut registry,
            "enclave_raft_running",
            "1 while Raft runs on this node, 0 once it stopped (storage failure)",
        );
        let raft_apply_halted = g(
            &mut registry,
            "enclave_raft_apply_halted",
            "1 once this node stopped applying at a log entry this build cannot decode",
        );
        let raft_leader_changes = Counter::default();
        registry.register(
            "enclave_raft_leader_changes",
            "Leader changes this node has seen since it started (the first leader it learns counts)",
            raft_leader_changes.clone(),
        );
        let raft_replication_lag = Family::<FollowerLabels, Gauge>::default();
        registry.register(
            "enclave_raft_replication_lag_entries",
            "On the leader: log entries a follower or learner has not yet acknowledged",
            raft_replication_lag.clone(),
        );
        let ready = g(
            &mut registry,
            "enclave_ready",
            "1 while the node is ready to serve writes (as /readyz)",
        );
        let disk_size_bytes = g(
            &mut registry,
            "enclave_disk_size_bytes",
            "Size of the filesystem holding the data directory",
        );
        let disk_available_bytes = g(
            &mut registry,
            "enclave_disk_available_bytes",
            "Bytes available to the node on the filesystem holding the data directory",
        );
        let audit_forwarded = Counter::default();
        registry.register(
            "enclave_audit_forwarded_records",
            "Audit records this node forwarded to the SIEM (written and flushed)",
            audit_forwarded.clone(),
        );
        let audit_forward_errors = Family::<StageLabels, Counter>::default();
        registry.register(
            "enclave_audit_forward_errors",
            "Failures forwarding the audit trail to the SIEM, by stage (connect, write, read, cursor)",
            audit_forward_errors.clone(),
        );
        let audit_forward_backlog = g(
            &mut registry,
            "enclave_audit_forward_backlog_records",
            "Audit records applied on this node and not yet forwarded to the SIEM (0 when forwarding is off)",
        );
        let admission_request_limit = g(
            &mut registry,
            "enclave_admission_request_limit",
            "Requests the api port serves at once now: api.max_concurrent_requests, lower while the node answers more slowly than api.latency_target_ms",
        );
        let process_resident_bytes = g(
            &mut registry,
            "enclave_process_resident_memory_bytes",
            "Resident memory of the node's process",
        );
        let process_cpu_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "enclave_process_cpu_seconds",
            "CPU time (user + system) the node's process has used",
            process_cpu_seconds.clone(),
        );
        Arc::new(Metrics {
            process_resident_bytes,
            admission_request_limit,
            process_cpu_seconds,
            rate_limited,
            raft_committed_index,
            raft_has_leader,
            raft_running,
            raft_apply_halted,
            raft_leader_changes,
            raft_replication_lag,
            ready,
            disk_size_bytes,
            disk_available_bytes,
            audit_forwarded,
            audit_forward_errors,
            audit_forward_backlog,
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
            snapshot_bytes,
            log_bytes_since_snapshot,
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

    /// Count a request refused by `limit` (one of [`LIMITS`]).
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.into(),
            })
            .inc();
    }

    /// Count a failure of audit forwarding at `stage`.
    pub fn audit_forward_error(&self, stage: &'static str) {
        self.audit_forward_errors
            .get_or_create(&StageLabels {
                stage: stage.into(),
            })
            .inc();
    }

    /// Render the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.uptime_seconds
            .set(self.started.elapsed().as_secs() as i64);
        let (rss, cpu) = process_usage();
        self.process_resident_bytes.set(rss as i64);
        // A counter (`_total`): add what was used since the last scrape.
        let seen = self.process_cpu_seconds.get();
        if cpu > seen {
            self.process_cpu_seconds.inc_by(cpu - seen);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Resident bytes and CPU seconds (user + system) of this process, from
/// `/proc/self` (Linux; zeros elsewhere). `stat` counts in USER_HZ ticks,
/// which the kernel's ABI fixes at 100 per second.
pub fn process_usage() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The command name may hold spaces: fields count after its ')'.
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After ')': state is field 3, utime 14 and stime 15.
            let utime: u64 = f.get(11)?.parse().ok()?;
            let stime: u64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// Keep the sampled gauges current until shutdown: leader changes as
/// they happen (from Raft's metrics channel), the commit index, the
/// followers' lag, readiness and the data dir's filesystem every 2 s.
/// The other Raft gauges are read at each scrape (`admin::metrics`).
pub async fn watch_loop(
    state: Arc<crate::http::NodeState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let m = &state.metrics;
    let mut raft = state.cluster.raft.metrics();
    let mut raft_alive = true;
    let mut last_leader = None;
    let mut lag_names = Vec::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sample = tokio::select! {
            r = raft.changed(), if raft_alive => {
                raft_alive = r.is_ok();
                false
            }
            _ = tick.tick() => true,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        {
            let r = raft.borrow_and_update();
            if let Some(l) = r.current_leader
                && last_leader != Some(l)
            {
                last_leader = Some(l);
                m.raft_leader_changes.inc();
            }
            m.raft_has_leader.set(i64::from(r.current_leader.is_some()));
            m.raft_running.set(i64::from(
                r.running_state.is_ok() && r.state != openraft::ServerState::Shutdown,
            ));
        }
        if sample {
            sample_slow(&state, &mut lag_names).await;
        }
    }
}

/// The gauges that cost a store read or a system call.
async fn sample_slow(state: &crate::http::NodeState, lag_names: &mut Vec<String>) {
    let m = &state.metrics;
    let s = state.cluster.status().await;
    // Raft records the commit index lazily (a hint, not flushed), so the
    // stored value can trail the applied one; nothing is applied before
    // it is committed.
    m.raft_committed_index
        .set(s.committed_index.max(s.applied_index).unwrap_or(0) as i64);
    let mut lags = Vec::new();
    if let (Some(replication), Some(last)) = (&s.replication, s.last_log_index) {
        for (id, matched) in replication {
            if *id == s.id {
                continue;
            }
            let name = s
                .voters
                .iter()
                .chain(&s.learners)
                .find(|(i, _)| i == id)
                .map_or_else(|| id.to_string(), |(_, member)| member.name.clone());
            lags.push((name, last.saturating_sub(matched.unwrap_or(0))));
        }
    }
    // Drop the series of nodes that are no longer followed (this node
    // lost the lead, or a member was removed); set the others in place.
    for gone in lag_names
        .iter()
        .filter(|n| !lags.iter().any(|(l, _)| l == *n))
    {
        m.raft_replication_lag.remove(&FollowerLabels {
            follower: gone.clone(),
        });
    }
    lag_names.clear();
    for (name, lag) in lags {
        m.raft_replication_lag
            .get_or_create(&FollowerLabels {
                follower: name.clone(),
            })
            .set(lag as i64);
        lag_names.push(name);
    }
    m.ready
        .set(i64::from(crate::sdnotify::readiness(state).is_ok()));
    m.raft_apply_halted
        .set(i64::from(state.cluster.sm.app().halted().is_some()));
    match rustix::fs::statvfs(&state.config.data_dir) {
        Ok(v) => {
            let frag = v.f_frsize.max(1);
            m.disk_size_bytes
                .set(v.f_blocks.saturating_mul(frag).min(i64::MAX as u64) as i64);
            m.disk_available_bytes
                .set(v.f_bavail.saturating_mul(frag).min(i64::MAX as u64) as i64);
        }
        Err(e) => {
            tracing::debug!(error = %e, dir = %state.config.data_dir.display(), "statvfs of the data dir failed");
        }
    }
}
