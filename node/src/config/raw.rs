//! The configuration as written in `enclave.toml` and the `ENCLAVE_*`
//! environment, section by section, with the built-in defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The configuration as written in files and environment, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub node: RawNode,
    pub listen: RawListen,
    pub tls: RawTls,
    pub api: RawApi,
    pub log: RawLog,
    pub raft: RawRaft,
    pub audit: RawAudit,
    pub apps: RawApps,
    pub files: RawFiles,
}

/// Files, images and voice notes (`[files]`). Size limits, quotas, allowed
/// types and retention are cluster policy (`enclavectl files policy`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFiles {
    /// Unix socket of a clamd malware scanner that checks every upload
    /// before it is recorded (empty = no scanner). An upload is refused
    /// while the scanner is configured but unreachable.
    pub clamd_socket: String,
}

/// Integrated apps (the WeCom-compatible API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApps {
    /// Lifetime of an app access token (WeCom: 7200).
    pub token_ttl_secs: u64,
    /// Requests per second per app on each node (0 = unlimited).
    pub rate_per_sec: u64,
    pub burst: u64,
    /// Extra CA certificate(s) (PEM) callback servers' certificates may
    /// chain to, besides the cluster CA.
    pub callback_ca: String,
    /// Networks (CIDR) callback URLs may point to: the internal network.
    pub callback_networks: Vec<String>,
    /// Time allowed for one callback request.
    pub callback_timeout_secs: u64,
}

impl Default for RawApps {
    fn default() -> Self {
        RawApps {
            token_ttl_secs: 7200,
            rate_per_sec: 200,
            burst: 1000,
            callback_ca: String::new(),
            callback_networks: crate::apps::delivery::DEFAULT_NETWORKS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            callback_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// `host:port` of the site's syslog/SIEM over TLS (RFC 5425); empty = off.
    pub syslog_addr: String,
    /// CA certificate(s) that sign the syslog server's certificate.
    pub syslog_ca: String,
    /// Name the syslog server's certificate must carry (default: the host
    /// of syslog_addr).
    pub syslog_server_name: String,
}

/// Where audit records are forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyslogTarget {
    pub addr: String,
    pub ca: PathBuf,
    pub server_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRaft {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub snapshot_every: u64,
    pub snapshot_log_percent: u64,
    pub keep_logs: u64,
    pub write_timeout_ms: u64,
    pub cache_mb: u64,
}

impl Default for RawRaft {
    fn default() -> Self {
        let d = enclave_cluster::node::RaftSettings::default();
        RawRaft {
            heartbeat_ms: d.heartbeat_ms,
            election_min_ms: d.election_min_ms,
            election_max_ms: d.election_max_ms,
            snapshot_every: d.snapshot_every,
            snapshot_log_percent: d.snapshot_log_percent,
            keep_logs: d.keep_logs,
            write_timeout_ms: d.write_timeout_ms,
            cache_mb: d.cache_bytes >> 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNode {
    /// Node name; empty means "the name in the node certificate".
    pub id: String,
    pub data_dir: String,
    pub shutdown_grace_secs: u64,
    /// Async worker threads; 0 means one per CPU core.
    pub worker_threads: u64,
    /// Host (IP or DNS name in the node certificate) other nodes and
    /// clients use to reach this node; empty means the listen address.
    pub advertise_host: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawListen {
    pub peer: String,
    pub api: String,
    pub admin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// Empty means `<data_dir>/tls/ca.pem`, and likewise for the others.
    pub ca: String,
    pub cert: String,
    pub key: String,
    pub crl: String,
    /// A CA directory (ca.pem + ca.key) on nodes allowed to issue node
    /// certificates to joining nodes; empty on all others.
    pub ca_dir: String,
    pub reload_interval_secs: u64,
    pub handshake_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    pub require_device_cert: bool,
    pub max_body_bytes: u64,
    /// Requests per second per bearer token (0 = unlimited).
    pub token_rate_per_sec: u64,
    pub token_burst: u64,
    /// Requests served at once on the api port (WebSockets and health
    /// checks aside); more are refused with 503 `overloaded`.
    pub max_concurrent_requests: u64,
    /// Writes from this node waiting for commit at once; more are refused
    /// with 503 `overloaded`.
    pub max_pending_writes: u64,
    /// Passwords hashed or checked at once (0 = one per CPU core).
    pub password_hash_concurrency: u64,
    /// Logins waiting for a hashing slot; more are refused with 503.
    pub password_hash_queue: u64,
    /// When the median answer of two 100 ms intervals in a row takes
    /// longer than this, the node serves fewer requests at once and
    /// refuses the rest with 503 (0 = only `max_concurrent_requests`
    /// bounds them).
    pub latency_target_ms: u64,
    /// Lowest TLS version on the api port: "1.3" (default) or "1.2". The
    /// peer and admin ports are TLS 1.3 only whatever this says.
    pub tls_min_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            node: RawNode {
                id: String::new(),
                data_dir: "/var/lib/enclave".into(),
                shutdown_grace_secs: 10,
                advertise_host: String::new(),
                worker_threads: 0,
            },
            listen: RawListen {
                peer: "0.0.0.0:7400".into(),
                api: "0.0.0.0:8443".into(),
                admin: "0.0.0.0:9443".into(),
            },
            tls: RawTls {
                ca: String::new(),
                cert: String::new(),
                key: String::new(),
                crl: String::new(),
                ca_dir: String::new(),
                reload_interval_secs: 10,
                handshake_timeout_secs: 10,
            },
            audit: RawAudit::default(),
            apps: RawApps::default(),
            files: RawFiles::default(),
            api: RawApi {
                require_device_cert: false,
                max_body_bytes: 1 << 20,
                token_rate_per_sec: 50,
                token_burst: 200,
                max_concurrent_requests: 2048,
                max_pending_writes: 1024,
                password_hash_concurrency: 0,
                password_hash_queue: 256,
                latency_target_ms: 100,
                tls_min_version: "1.3".into(),
            },
            log: RawLog {
                format: "text".into(),
                // openraft narrates every election at info; its warnings
                // and errors are what an operator needs.
                level: "info,openraft=warn".into(),
            },
            raft: RawRaft::default(),
        }
    }
}

impl Default for RawNode {
    fn default() -> Self {
        RawConfig::default().node
    }
}
impl Default for RawListen {
    fn default() -> Self {
        RawConfig::default().listen
    }
}
impl Default for RawTls {
    fn default() -> Self {
        RawConfig::default().tls
    }
}
impl Default for RawApi {
    fn default() -> Self {
        RawConfig::default().api
    }
}
impl Default for RawLog {
    fn default() -> Self {
        RawConfig::default().log
    }
}
