//! Node configuration: built-in defaults → `enclave.toml` → `ENCLAVE_*`
//! environment → command-line flags, into one validated [`Config`].
//!
//! Every error names the key and where its value came from, e.g.
//! `listen.api = "localhost" (from environment variable ENCLAVE_LISTEN__API):
//! not an IP:port socket address`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use enclave_certs::TlsPaths;
use enclave_certs::tls::TlsVersions;
use serde::Serialize;

mod load;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use load::{LoadOptions, Sources, load};
pub use raw::*;
pub use validate::validate;

/// Prefix of configuration environment variables; `__` separates sections,
/// e.g. `ENCLAVE_LISTEN__API=0.0.0.0:8443`.
pub const ENV_PREFIX: &str = "ENCLAVE";

/// `ENCLAVE_*` variables that are not configuration keys.
pub const NOT_CONFIG: &[&str] = &["ENCLAVE_JOIN_TOKEN", enclave_cluster::fault::ENV];

/// A configuration problem, naming the key and the source of its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {key} = {value} (from {origin}): {message}")]
    Invalid {
        key: String,
        value: String,
        origin: String,
        message: String,
    },
    #[error("invalid configuration: {0}")]
    Load(String),
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Integrated apps, validated (`[apps]`).
#[derive(Debug, Clone, Serialize)]
pub struct AppsConfig {
    pub token_ttl_secs: u64,
    pub rate_per_sec: u64,
    pub burst: u64,
    pub callback_ca: Option<PathBuf>,
    /// CIDR networks, each checked to parse.
    pub callback_networks: Vec<String>,
    pub callback_timeout: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration every other module uses.
/// How much this node takes on at once before it refuses work quickly
/// (503 `overloaded` with `Retry-After`) rather than queueing it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Admission {
    pub max_concurrent_requests: usize,
    pub max_pending_writes: usize,
    /// Resolved: never 0.
    pub password_hash_concurrency: usize,
    pub password_hash_queue: usize,
    /// `api.latency_target_ms`; `None` when 0 (the request bound stays at
    /// `max_concurrent_requests`).
    pub latency_target: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Empty until resolved from the node certificate at start.
    pub node_id: String,
    pub data_dir: PathBuf,
    pub shutdown_grace: Duration,
    pub listen_peer: SocketAddr,
    pub listen_api: SocketAddr,
    pub listen_admin: SocketAddr,
    #[serde(skip)]
    pub tls: TlsPaths,
    pub tls_reload_interval: Duration,
    pub tls_handshake_timeout: Duration,
    pub require_device_cert: bool,
    /// `api.tls_min_version`: the api listener's protocol versions. The peer
    /// and admin listeners and the join door are TLS 1.3 only.
    pub api_tls_versions: TlsVersions,
    pub max_body_bytes: usize,
    pub token_rate_per_sec: u64,
    pub token_burst: u64,
    /// `api.max_concurrent_requests` and the other admission bounds.
    pub admission: Admission,
    pub syslog: Option<SyslogTarget>,
    pub apps: AppsConfig,
    /// `files.clamd_socket`.
    pub clamd_socket: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub worker_threads: usize,
    pub advertise_host: String,
    pub raft: enclave_cluster::node::RaftSettings,
    pub ca_dir: Option<PathBuf>,
}

impl Config {
    /// Where the node writes its runtime facts (bound addresses).
    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }
}

/// Defaults for `enclave start --dev`: loopback listeners, a local data dir.
pub fn dev_defaults(data_dir: &Path) -> RawConfig {
    let mut raw = RawConfig::default();
    raw.node.data_dir = data_dir.display().to_string();
    raw.listen.peer = "127.0.0.1:7400".into();
    raw.listen.api = "127.0.0.1:8443".into();
    raw.listen.admin = "127.0.0.1:9443".into();
    raw.tls.reload_interval_secs = 2;
    raw.tls.ca_dir = data_dir.join("ca").display().to_string();
    raw
}
