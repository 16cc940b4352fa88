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
            "[api]\nmax_concurrent_requests = 1\n",
            "api.max_concurrent_requests",
        ),
        ("[api]\nmax_pending_writes = 0\n", "api.max_pending_writes"),
        (
            "[api]\nlatency_target_ms = 600000\n",
            "api.latency_target_ms",
        ),
        (
            "[api]\npassword_hash_concurrency = 1000\n",
            "api.password_hash_concurrency",
        ),
        (
            "[api]\npassword_hash_queue = -1\n",
            "api.password_hash_queue",
        ),
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
        (
            "[raft]\nsnapshot_log_percent = 1001\n",
            "raft.snapshot_log_percent",
        ),
        ("[raft]\nwrite_timeout_ms = 1\n", "raft.write_timeout_ms"),
        (
            "[node]\nadvertise_host = \"a b:1\"\n",
            "node.advertise_host",
        ),
        ("[node]\nworker_threads = 100000\n", "node.worker_threads"),
        ("[lisen]\napi = \"0.0.0.0:1\"\n", "lisen"),
        ("[listen]\napu = \"0.0.0.0:1\"\n", "listen.apu"),
        ("[api]\ntls_min_version = \"1.1\"\n", "api.tls_min_version"),
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

#[test]
fn api_tls_min_version_is_1_3_by_default_and_may_be_1_2() {
    use enclave_certs::tls::TlsVersions;
    let c = load_with(None, &[], &[]).expect("defaults");
    assert_eq!(c.api_tls_versions, TlsVersions::Tls13Only);
    let dir = tempfile::tempdir().expect("tmp");
    for (text, want) in [
        ("[api]\ntls_min_version = \"1.3\"\n", TlsVersions::Tls13Only),
        (
            "[api]\ntls_min_version = \"1.2\"\n",
            TlsVersions::Tls12AndUp,
        ),
    ] {
        let f = write(dir.path(), text);
        let c = load_with(Some(f), &[], &[]).expect(text);
        assert_eq!(c.api_tls_versions, want, "{text}");
    }
    // From the environment (where "1.2" looks like a number to the loader).
    for (value, want) in [
        ("1.2", TlsVersions::Tls12AndUp),
        ("1.3", TlsVersions::Tls13Only),
    ] {
        let c = load_with(None, &[("ENCLAVE_API__TLS_MIN_VERSION", value)], &[]).expect(value);
        assert_eq!(c.api_tls_versions, want, "{value}");
    }
}

#[test]
fn invalid_api_tls_min_version_names_key_value_and_source() {
    let dir = tempfile::tempdir().expect("tmp");
    for bad in ["1.1", "1.0", "tls1.2", "TLSv1.2", "1.4", ""] {
        let f = write(dir.path(), &format!("[api]\ntls_min_version = \"{bad}\"\n"));
        let err = load_with(Some(f.clone()), &[], &[])
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("api.tls_min_version")
                && err.contains(&format!("{bad:?}"))
                && err.contains(&format!("file {}", f.display()))
                && err.contains("\"1.2\""),
            "{bad:?}: {err}"
        );
    }
    for bad in ["1.1", "tls1.2"] {
        let err = load_with(None, &[("ENCLAVE_API__TLS_MIN_VERSION", bad)], &[])
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("api.tls_min_version")
                && err.contains(&format!("{bad:?}"))
                && err.contains("environment variable ENCLAVE_API__TLS_MIN_VERSION"),
            "{bad:?}: {err}"
        );
    }
}
