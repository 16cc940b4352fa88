//! Turning raw values into the typed [`Config`], naming the key and the
//! origin of its value on every error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use enclave_certs::TlsPaths;

use super::*;

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
    for (key, v, range) in [
        (
            "api.max_concurrent_requests",
            raw.api.max_concurrent_requests,
            16..=1_000_000,
        ),
        (
            "api.max_pending_writes",
            raw.api.max_pending_writes,
            1..=1_000_000,
        ),
        (
            "api.password_hash_concurrency",
            raw.api.password_hash_concurrency,
            0..=256,
        ),
        (
            "api.password_hash_queue",
            raw.api.password_hash_queue,
            0..=100_000,
        ),
        (
            "api.latency_target_ms",
            raw.api.latency_target_ms,
            0..=60_000,
        ),
    ] {
        if !range.contains(&v) {
            return Err(invalid(
                key,
                &v,
                &format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }
    let api_tls_versions: TlsVersions = raw.api.tls_min_version.parse().map_err(|e: String| {
        invalid(
            "api.tls_min_version",
            &format!("{:?}", raw.api.tls_min_version),
            &e,
        )
    })?;
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
        snapshot_log_percent: range("raft.snapshot_log_percent", r.snapshot_log_percent, 0, 1000)?,
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
    for n in &raw.apps.callback_networks {
        if crate::apps::delivery::Cidr::parse(n).is_none() {
            return Err(invalid(
                "apps.callback_networks",
                &format!("{n:?}"),
                "each entry must be a network in CIDR notation, e.g. \"10.0.0.0/8\"",
            ));
        }
    }
    let apps = AppsConfig {
        token_ttl_secs: range(
            "apps.token_ttl_secs",
            raw.apps.token_ttl_secs,
            60,
            7 * 86_400,
        )?,
        rate_per_sec: range("apps.rate_per_sec", raw.apps.rate_per_sec, 0, 1_000_000)?,
        burst: range("apps.burst", raw.apps.burst, 1, 1_000_000)?,
        callback_ca: (!raw.apps.callback_ca.is_empty())
            .then(|| PathBuf::from(&raw.apps.callback_ca)),
        callback_networks: raw.apps.callback_networks.clone(),
        callback_timeout: secs(
            "apps.callback_timeout_secs",
            raw.apps.callback_timeout_secs,
            1,
            120,
        )?,
    };
    let clamd_socket = if raw.files.clamd_socket.is_empty() {
        None
    } else if !raw.files.clamd_socket.starts_with('/') {
        return Err(invalid(
            "files.clamd_socket",
            &format!("{:?}", raw.files.clamd_socket),
            "must be an absolute path to clamd's Unix socket (e.g. /run/clamav/clamd.ctl)",
        ));
    } else {
        Some(PathBuf::from(&raw.files.clamd_socket))
    };
    Ok(Config {
        syslog,
        apps,
        clamd_socket,
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
        api_tls_versions,
        max_body_bytes: max_body as usize,
        token_rate_per_sec: raw.api.token_rate_per_sec,
        admission: crate::config::Admission {
            max_concurrent_requests: raw.api.max_concurrent_requests as usize,
            max_pending_writes: raw.api.max_pending_writes as usize,
            password_hash_concurrency: match raw.api.password_hash_concurrency {
                0 => std::thread::available_parallelism().map_or(2, usize::from),
                n => n as usize,
            },
            password_hash_queue: raw.api.password_hash_queue as usize,
            latency_target: (raw.api.latency_target_ms > 0)
                .then(|| Duration::from_millis(raw.api.latency_target_ms)),
        },
        token_burst: raw.api.token_burst,
        log_format,
        log_level: raw.log.level.clone(),
    })
}
