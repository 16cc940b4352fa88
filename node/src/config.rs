//! Node configuration: built-in defaults → `enclave.toml` → `ENCLAVE_*`
//! environment → command-line flags, into one validated [`Config`].
//!
//! Every error names the key and where its value came from, e.g.
//! `listen.api = "localhost" (from environment variable ENCLAVE_LISTEN__API):
//! not an IP:port socket address`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use enclave_certs::TlsPaths;
use serde::{Deserialize, Serialize};

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
            api: RawApi {
                require_device_cert: false,
                max_body_bytes: 1 << 20,
                token_rate_per_sec: 50,
                token_burst: 200,
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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration every other module uses.
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
    pub max_body_bytes: usize,
    pub token_rate_per_sec: u64,
    pub token_burst: u64,
    pub syslog: Option<SyslogTarget>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub worker_threads: usize,
    pub advertise_host: String,
    pub raft: enclave_cluster::node::RaftSettings,
    pub ca_dir: Option<PathBuf>,
}

/// Where the values came from, so errors can say so.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    file: Option<(PathBuf, toml::Table)>,
    /// key → environment variable name
    env: BTreeMap<String, String>,
    /// key → flag name
    flags: BTreeMap<String, String>,
}

impl Sources {
    pub fn origin(&self, key: &str) -> String {
        if let Some(flag) = self.flags.get(key) {
            return format!("command-line flag {flag}");
        }
        if let Some(var) = self.env.get(key) {
            return format!("environment variable {var}");
        }
        if let Some((path, table)) = &self.file
            && lookup(table, key)
        {
            return format!("file {}", path.display());
        }
        "built-in default".into()
    }
}

/// First key of `table` (dotted) that `known` does not have.
fn unknown_key(table: &toml::Table, known: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in table {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (v, known.get(k)) {
            (_, None) => return Some(full),
            (toml::Value::Table(t), Some(toml::Value::Table(kt))) => {
                if let Some(u) = unknown_key(t, kt, &full) {
                    return Some(u);
                }
            }
            _ => {}
        }
    }
    None
}

/// The known keys in the section of `key`, for error messages.
fn known_keys(known: &toml::Table, key: &str) -> String {
    let section = key.split('.').next().unwrap_or_default();
    match known.get(section).and_then(|v| v.as_table()) {
        Some(t) if key.contains('.') => t
            .keys()
            .map(|k| format!("{section}.{k}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => known
            .keys()
            .map(|k| format!("[{k}]"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn lookup(table: &toml::Table, key: &str) -> bool {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let mut cur = table.get(first);
    for p in parts {
        cur = cur.and_then(|v| v.as_table()).and_then(|t| t.get(p));
    }
    cur.is_some()
}

/// Everything `load` needs besides the process environment.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub file: Option<PathBuf>,
    /// Defaults to layer under the file (dev mode's loopback defaults).
    pub defaults: Option<RawConfig>,
    /// (key, value, flag name) from the command line.
    pub overrides: Vec<(String, String, String)>,
}

/// Load and validate the configuration from `opts` and the `ENCLAVE_*`
/// variables in `env`.
pub fn load(
    opts: &LoadOptions,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut sources = Sources::default();
    let defaults = opts.defaults.clone().unwrap_or_default();
    let mut builder = config::Config::builder().add_source(
        config::Config::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?,
    );
    if let Some(path) = &opts.file {
        // Absolute, so every message names the file the same way wherever
        // the daemon was started from.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let known =
            toml::Table::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?;
        if let Some(key) = unknown_key(&table, &known, "") {
            return Err(ConfigError::Invalid {
                key: key.clone(),
                value: "…".into(),
                origin: format!("file {}", path.display()),
                message: format!("unknown key (known: {})", known_keys(&known, &key)),
            });
        }
        sources.file = Some((path.clone(), table));
        builder =
            builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
    }
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with(&format!("{ENV_PREFIX}_")) && !NOT_CONFIG.contains(&k.as_str())
        })
        .collect();
    let known = toml::Table::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?;
    for (var, value) in &env {
        let key = var[ENV_PREFIX.len() + 1..]
            .to_ascii_lowercase()
            .replace("__", ".");
        if !lookup(&known, &key) || key.split('.').count() != 2 {
            return Err(ConfigError::Invalid {
                key: key.clone(),
                value: format!("{value:?}"),
                origin: format!("environment variable {var}"),
                message: format!(
                    "unknown setting (ENCLAVE_<SECTION>__<KEY>, e.g. ENCLAVE_LISTEN__API; known: {})",
                    known_keys(&known, &key)
                ),
            });
        }
        sources.env.insert(key, var.clone());
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(env.into_iter().collect())),
    );
    for (key, value, flag) in &opts.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        sources.flags.insert(key.clone(), flag.clone());
    }
    // The config crate names files relative to the working directory;
    // add the absolute path so the message is unambiguous wherever the
    // daemon was started from.
    let file_note = sources
        .file
        .as_ref()
        .map(|(p, _)| format!(" (configuration file {})", p.display()))
        .unwrap_or_default();
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load(format!("{e}{file_note}")))?;
    validate(&raw, &sources)
}

/// Turn raw values into the typed config, naming key and origin on error.
pub fn validate(raw: &RawConfig, sources: &Sources) -> Result<Config, ConfigError> {
    let invalid = |key: &str, value: &dyn std::fmt::Display, message: &str| ConfigError::Invalid {
        key: key.into(),
        value: format!("{value}"),
        origin: sources.origin(key),
        message: message.into(),
    };
    let addr = |key: &str, v: &str| -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|_| {
            invalid(
                key,
                &format!("{v:?}"),
                "not an IP:port socket address (e.g. 0.0.0.0:8443)",
            )
        })
    };
    let secs = |key: &str, v: u64, min: u64, max: u64| -> Result<Duration, ConfigError> {
        if (min..=max).contains(&v) {
            Ok(Duration::from_secs(v))
        } else {
            Err(invalid(
                key,
                &v,
                &format!("must be between {min} and {max} seconds"),
            ))
        }
    };
    if !raw.node.id.is_empty() {
        enclave_certs::identity::validate_name("node.id", &raw.node.id)
            .map_err(|e| invalid("node.id", &format!("{:?}", raw.node.id), &e.to_string()))?;
    }
    if raw.node.data_dir.trim().is_empty() {
        return Err(invalid("node.data_dir", &"\"\"", "must name a directory"));
    }
    let data_dir = PathBuf::from(&raw.node.data_dir);
    let listen_peer = addr("listen.peer", &raw.listen.peer)?;
    let listen_api = addr("listen.api", &raw.listen.api)?;
    let listen_admin = addr("listen.admin", &raw.listen.admin)?;
    let ports = [
        ("listen.peer", listen_peer),
        ("listen.api", listen_api),
        ("listen.admin", listen_admin),
    ];
    for (i, (k1, a1)) in ports.iter().enumerate() {
        for (k2, a2) in &ports[i + 1..] {
            if a1.port() != 0 && a1 == a2 {
                return Err(invalid(
                    k2,
                    &a2,
                    &format!("same address as {k1}; each listener needs its own port"),
                ));
            }
        }
    }
    let tls_dir = data_dir.join("tls");
    let path_or = |v: &str, default: PathBuf| {
        if v.is_empty() {
            default
        } else {
            PathBuf::from(v)
        }
    };
    let tls = TlsPaths {
        ca: path_or(&raw.tls.ca, tls_dir.join("ca.pem")),
        cert: path_or(&raw.tls.cert, tls_dir.join("cert.pem")),
        key: path_or(&raw.tls.key, tls_dir.join("key.pem")),
        crl: Some(path_or(&raw.tls.crl, tls_dir.join("crl.pem"))),
    };
    let max_body = raw.api.max_body_bytes;
    if !(1024..=64 << 20).contains(&max_body) {
        return Err(invalid(
            "api.max_body_bytes",
            &max_body,
            "must be between 1024 and 67108864",
        ));
    }
    if raw.api.token_rate_per_sec > 1_000_000 {
        return Err(invalid(
            "api.token_rate_per_sec",
            &raw.api.token_rate_per_sec,
            "must be between 0 (unlimited) and 1000000",
        ));
    }
    if !(1..=1_000_000).contains(&raw.api.token_burst) {
        return Err(invalid(
            "api.token_burst",
            &raw.api.token_burst,
            "must be between 1 and 1000000",
        ));
    }
    let log_format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                &format!("{other:?}"),
                "must be \"text\" or \"json\"",
            ));
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
        return Err(invalid(
            "log.level",
            &format!("{:?}", raw.log.level),
            &format!("not a log filter (e.g. \"info\" or \"enclave=debug,info\"): {e}"),
        ));
    }
    let r = &raw.raft;
    let range = |key: &str, v: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(
                key,
                &v,
                &format!("must be between {min} and {max}"),
            ))
        }
    };
    let heartbeat_ms = range("raft.heartbeat_ms", r.heartbeat_ms, 10, 10_000)?;
    let election_min_ms = range("raft.election_min_ms", r.election_min_ms, 50, 60_000)?;
    if election_min_ms < 3 * heartbeat_ms {
        return Err(invalid(
            "raft.election_min_ms",
            &election_min_ms,
            &format!(
                "must be at least 3 x raft.heartbeat_ms ({heartbeat_ms}) so a live leader is never suspected"
            ),
        ));
    }
    let election_max_ms = range("raft.election_max_ms", r.election_max_ms, 50, 120_000)?;
    if election_max_ms <= election_min_ms {
        return Err(invalid(
            "raft.election_max_ms",
            &election_max_ms,
            &format!("must be greater than raft.election_min_ms ({election_min_ms})"),
        ));
    }
    let raft = enclave_cluster::node::RaftSettings {
        heartbeat_ms,
        election_min_ms,
        election_max_ms,
        snapshot_every: range("raft.snapshot_every", r.snapshot_every, 10, 100_000_000)?,
        keep_logs: range("raft.keep_logs", r.keep_logs, 0, 100_000_000)?,
        write_timeout_ms: range("raft.write_timeout_ms", r.write_timeout_ms, 100, 600_000)?,
        cache_bytes: range("raft.cache_mb", r.cache_mb, 4, 65_536)? << 20,
        ..Default::default()
    };
    if !raw.node.advertise_host.is_empty()
        && raw.node.advertise_host.contains([':', '/', ' '])
        && raw.node.advertise_host.parse::<std::net::IpAddr>().is_err()
    {
        return Err(invalid(
            "node.advertise_host",
            &format!("{:?}", raw.node.advertise_host),
            "must be a host name or IP address, without a port",
        ));
    }
    let syslog = if raw.audit.syslog_addr.is_empty() {
        None
    } else {
        let addr = raw.audit.syslog_addr.clone();
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(invalid("audit.syslog_addr", &addr, "must be host:port"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(invalid("audit.syslog_addr", &addr, "must be host:port"));
        }
        if raw.audit.syslog_ca.is_empty() {
            return Err(invalid(
                "audit.syslog_ca",
                &raw.audit.syslog_ca,
                "is required with audit.syslog_addr (the CA that signs the syslog server's certificate)",
            ));
        }
        let server_name = if raw.audit.syslog_server_name.is_empty() {
            host.trim_matches(|c| c == '[' || c == ']').to_string()
        } else {
            raw.audit.syslog_server_name.clone()
        };
        Some(SyslogTarget {
            addr: addr.clone(),
            ca: PathBuf::from(&raw.audit.syslog_ca),
            server_name,
        })
    };
    Ok(Config {
        syslog,
        ca_dir: (!raw.tls.ca_dir.is_empty()).then(|| PathBuf::from(&raw.tls.ca_dir)),
        advertise_host: raw.node.advertise_host.clone(),
        worker_threads: range("node.worker_threads", raw.node.worker_threads, 0, 256)? as usize,
        raft,
        node_id: raw.node.id.clone(),
        data_dir,
        shutdown_grace: secs(
            "node.shutdown_grace_secs",
            raw.node.shutdown_grace_secs,
            0,
            600,
        )?,
        listen_peer,
        listen_api,
        listen_admin,
        tls,
        tls_reload_interval: secs(
            "tls.reload_interval_secs",
            raw.tls.reload_interval_secs,
            1,
            3600,
        )?,
        tls_handshake_timeout: secs(
            "tls.handshake_timeout_secs",
            raw.tls.handshake_timeout_secs,
            1,
            120,
        )?,
        require_device_cert: raw.api.require_device_cert,
        max_body_bytes: max_body as usize,
        token_rate_per_sec: raw.api.token_rate_per_sec,
        token_burst: raw.api.token_burst,
        log_format,
        log_level: raw.log.level.clone(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("enclave.toml");
        std::fs::write(&p, text).expect("write");
        p
    }

    fn load_with(
        file: Option<PathBuf>,
        env: &[(&str, &str)],
        flags: &[(&str, &str, &str)],
    ) -> Result<Config, ConfigError> {
        let opts = LoadOptions {
            file,
            defaults: None,
            overrides: flags
                .iter()
                .map(|(k, v, f)| (k.to_string(), v.to_string(), f.to_string()))
                .collect(),
        };
        load(
            &opts,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let c = load_with(None, &[], &[]).expect("defaults");
        assert_eq!(c.listen_api.port(), 8443);
        assert_eq!(c.listen_peer.port(), 7400);
        assert_eq!(c.listen_admin.port(), 9443);
        assert_eq!(c.tls.cert, PathBuf::from("/var/lib/enclave/tls/cert.pem"));
    }

    #[test]
    fn env_overrides_file_and_flag_overrides_env() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = write(
            dir.path(),
            "[listen]\napi = \"127.0.0.1:1000\"\nadmin = \"127.0.0.1:1001\"\n",
        );
        let c = load_with(Some(f.clone()), &[], &[]).expect("file");
        assert_eq!(c.listen_api.port(), 1000);
        let c = load_with(
            Some(f.clone()),
            &[("ENCLAVE_LISTEN__API", "127.0.0.1:2000")],
            &[],
        )
        .expect("env");
        assert_eq!(c.listen_api.port(), 2000);
        assert_eq!(
            c.listen_admin.port(),
            1001,
            "file value kept where env is silent"
        );
        let c = load_with(
            Some(f),
            &[("ENCLAVE_LISTEN__API", "127.0.0.1:2000")],
            &[("listen.api", "127.0.0.1:3000", "--listen-api")],
        )
        .expect("flag");
        assert_eq!(c.listen_api.port(), 3000);
    }

    #[test]
    fn each_invalid_value_names_its_key_and_source() {
        let dir = tempfile::tempdir().expect("tmp");
        let cases: &[(&str, &str)] = &[
            ("[listen]\napi = \"nonsense\"\n", "listen.api"),
            ("[listen]\npeer = \"1.2.3.4\"\n", "listen.peer"),
            ("[listen]\nadmin = \"0.0.0.0:8443\"\n", "listen.admin"),
            ("[node]\nid = \"../etc\"\n", "node.id"),
            (
                "[node]\nshutdown_grace_secs = 100000\n",
                "node.shutdown_grace_secs",
            ),
            (
                "[tls]\nreload_interval_secs = 0\n",
                "tls.reload_interval_secs",
            ),
            (
                "[tls]\nhandshake_timeout_secs = 0\n",
                "tls.handshake_timeout_secs",
            ),
            ("[api]\nmax_body_bytes = 1\n", "api.max_body_bytes"),
            ("[api]\nmax_body_bytes = \"big\"\n", "api.max_body_bytes"),
            (
                "[api]\nrequire_device_cert = \"perhaps\"\n",
                "api.require_device_cert",
            ),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[log]\nlevel = \"info,[[[\"\n", "log.level"),
            ("[node]\ndata_dir = \"\"\n", "node.data_dir"),
            ("[raft]\nheartbeat_ms = 5\n", "raft.heartbeat_ms"),
            (
                "[raft]\nelection_min_ms = 300\nheartbeat_ms = 250\n",
                "raft.election_min_ms",
            ),
            (
                "[raft]\nelection_max_ms = 900\nelection_min_ms = 1000\n",
                "raft.election_max_ms",
            ),
            ("[raft]\nsnapshot_every = 1\n", "raft.snapshot_every"),
            ("[raft]\nwrite_timeout_ms = 1\n", "raft.write_timeout_ms"),
            (
                "[node]\nadvertise_host = \"a b:1\"\n",
                "node.advertise_host",
            ),
            ("[node]\nworker_threads = 100000\n", "node.worker_threads"),
            ("[lisen]\napi = \"0.0.0.0:1\"\n", "lisen"),
            ("[listen]\napu = \"0.0.0.0:1\"\n", "listen.apu"),
        ];
        for (text, key) in cases {
            let f = write(dir.path(), text);
            let err = load_with(Some(f.clone()), &[], &[])
                .expect_err(text)
                .to_string();
            assert!(
                err.contains(key),
                "error for {text:?} does not name {key}: {err}"
            );
            {
                assert!(
                    err.contains(&f.display().to_string()),
                    "error for {text:?} does not name the file: {err}"
                );
            }
        }
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = load_with(None, &[("ENCLAVE_LISTEN__API", "localhost")], &[])
            .expect_err("bad env")
            .to_string();
        assert!(
            err.contains("listen.api") && err.contains("ENCLAVE_LISTEN__API"),
            "{err}"
        );
        let err = load_with(None, &[("ENCLAVE_LISTEN_API", "0.0.0.0:1")], &[])
            .expect_err("typo env")
            .to_string();
        assert!(err.contains("ENCLAVE_LISTEN_API"), "{err}");
        let err = load_with(None, &[], &[("log.format", "yaml", "--log-format")])
            .expect_err("bad flag")
            .to_string();
        assert!(
            err.contains("log.format") && err.contains("--log-format"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_or_malformed_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = load_with(Some(dir.path().join("missing.toml")), &[], &[])
            .expect_err("missing")
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
        let f = write(dir.path(), "[listen\n");
        let err = load_with(Some(f.clone()), &[], &[])
            .expect_err("syntax")
            .to_string();
        assert!(err.contains(&f.display().to_string()), "{err}");
    }
}
