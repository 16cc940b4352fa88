//! The `enclave` daemon and `enclavectl` as an operator meets them: config
//! errors, the dev mode, graceful shutdown, exit codes and error messages.

use std::process::Command;
use std::time::Duration;

use enclave_certs::{CertKind, Role};
use enclave_tests::bin;
use enclave_tests::pki::{TestPki, node_kind};
use enclave_tests::proc::{NodeProc, NodeSpec, enclavectl};

#[test]
fn invalid_config_fails_at_start_naming_key_and_source() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("enclave.toml");
    std::fs::write(&cfg, "[listen]\napi = \"not-an-address\"\n").expect("write");
    let out = Command::new(bin("enclave"))
        .args(["start", "--config"])
        .arg(&cfg)
        .env_remove("ENCLAVE_LISTEN__API")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "config errors exit with 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen.api"), "{err}");
    assert!(err.contains(&cfg.display().to_string()), "{err}");

    let out = Command::new(bin("enclave"))
        .args(["start", "--log-format", "yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log.format") && err.contains("--log-format"),
        "{err}"
    );
}

#[test]
fn environment_overrides_the_config_file() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    // The file's api address is unusable; the environment's must win.
    let spec = NodeSpec {
        config_toml: Some("[listen]\napi = \"203.0.113.1:1\"\n[log]\nformat = \"json\"\n".into()),
        env: vec![("ENCLAVE_LISTEN__API".into(), "127.0.0.1:0".into())],
        ..Default::default()
    };
    let mut node = NodeProc::start_with_tls(&node_dir, &pki.ca_dir().join("crl.pem"), spec);
    let ep = node.endpoints();
    assert!(ep.api.ip().is_loopback(), "{:?}", ep.api);
    // The file was read too: its log format applies. The endpoints file is
    // written just before the "node started" line, and the log is written
    // by a background writer: wait for the line rather than read once.
    let json_started = |log: &str| {
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("node started"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !json_started(&node.log_text()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = node.log_text();
    assert!(json_started(&log), "expected JSON logs:\n{log}");
}

#[test]
fn node_refuses_to_start_with_unusable_tls_files_and_names_them() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let expired = pki.expired("old-node", node_kind("node-1"));
    let operator = pki.operator("admin", Role::Sysadmin);
    let crl = pki.ca_dir().join("crl.pem");
    let cases: Vec<(std::path::PathBuf, &str)> =
        vec![(expired.clone(), "expired"), (operator.clone(), "role")];
    for (dir, expect) in cases {
        let mut node = NodeProc::start_with_tls(&dir, &crl, NodeSpec::default());
        let status = node.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(1));
        let log = node.log_text();
        assert!(
            log.contains(expect) && log.contains("cert.pem"),
            "expected {expect:?} naming cert.pem:\n{log}"
        );
    }
    // Mismatched key.
    std::fs::copy(operator.join("key.pem"), node_dir.join("key.pem")).expect("copy");
    let mut node = NodeProc::start_with_tls(&node_dir, &crl, NodeSpec::default());
    assert_eq!(node.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let log = node.log_text();
    assert!(
        log.contains("does not match") && log.contains("key.pem"),
        "{log}"
    );
}

#[test]
fn sigterm_stops_the_node_gracefully() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    node.endpoints();
    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    assert!(node.log_text().contains("node stopped"));
}

#[test]
fn dev_mode_run_twice_reuses_the_same_ca_and_prints_a_working_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("enclave-data");
    let fingerprint = |out: &str| -> String {
        out.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let mut first = NodeProc::start_dev(&data);
    let ep = first.endpoints();
    let out1 = enclave_tests::wait_for("the dev banner", Duration::from_secs(10), || {
        let t = first.stdout_text();
        t.contains("enclavectl status").then_some(t)
    });
    let fp1 = fingerprint(&out1);
    assert!(fp1.len() > 20, "no fingerprint in banner:\n{out1}");
    // The printed command works (with the actual port).
    let op = data.join("operator");
    let (code, stdout, stderr) = enclavectl(&[
        "status",
        "--cert-dir",
        op.to_str().expect("utf8"),
        "--endpoint",
        &ep.admin_url(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("dev-node") && stdout.contains("sysadmin"),
        "{stdout}"
    );
    assert!(
        out1.contains(&format!("--cert-dir {}", op.display())),
        "{out1}"
    );
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(30));

    let mut second = NodeProc::start_dev(&data);
    second.endpoints();
    let out2 = enclave_tests::wait_for("the dev banner", Duration::from_secs(10), || {
        let t = second.stdout_text();
        t.contains("enclavectl status").then_some(t)
    });
    assert_eq!(fingerprint(&out2), fp1, "second run made a new CA");
    assert!(out2.contains("existing"), "{out2}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("ca/ca.key"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
}

#[test]
fn enclavectl_exit_codes_and_errors_name_the_file_at_fault() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let admin = pki.operator("admin", Role::Sysadmin);
    let expired = pki.expired(
        "old-admin",
        CertKind::Operator {
            name: "old".into(),
            role: Role::Sysadmin,
        },
    );
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();
    let url = ep.admin_url();
    let s = |p: &std::path::Path| p.to_str().expect("utf8").to_string();

    // Usage error: exit 2.
    let (code, _, _) = enclavectl(&["status", "--output", "yaml"]);
    assert_eq!(code, 2);
    let (code, _, _) = enclavectl(&[
        "cert",
        "issue",
        "operator",
        "--dir",
        &s(&pki.ca_dir()),
        "--name",
        "x",
        "--role",
        "root",
    ]);
    assert_eq!(code, 2);

    // OK: exit 0, JSON on request.
    let (code, out, err) = enclavectl(&[
        "status",
        "--cert-dir",
        &s(&admin),
        "--endpoint",
        &url,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["node_id"], "node-1");

    // Failures: exit 1, the file named.
    let missing = pki.path().join("nowhere");
    let (code, _, err) = enclavectl(&["status", "--cert-dir", &s(&missing), "--endpoint", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&s(&missing.join("ca.pem"))) && err.contains("not found"),
        "{err}"
    );

    let (code, _, err) = enclavectl(&["status", "--cert-dir", &s(&expired), "--endpoint", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&s(&expired.join("cert.pem"))) && err.contains("expired"),
        "{err}"
    );

    // Wrong CA: an operator bundle whose ca.pem is another CA's.
    let wrong = pki.path().join("wrong-ca");
    std::fs::create_dir_all(&wrong).expect("dir");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(admin.join(f), wrong.join(f)).expect("copy");
    }
    let other =
        enclave_certs::CertificateAuthority::init(&pki.path().join("other"), "other").expect("ca");
    std::fs::write(wrong.join("ca.pem"), other.cert_pem()).expect("write");
    let (code, _, err) = enclavectl(&["status", "--cert-dir", &s(&wrong), "--endpoint", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&s(&wrong.join("cert.pem"))) && err.contains("not issued by the cluster CA"),
        "{err}"
    );

    // Key does not match the certificate.
    let mismatch = pki.path().join("mismatch");
    std::fs::create_dir_all(&mismatch).expect("dir");
    for f in ["cert.pem", "ca.pem"] {
        std::fs::copy(admin.join(f), mismatch.join(f)).expect("copy");
    }
    std::fs::copy(node_dir.join("key.pem"), mismatch.join("key.pem")).expect("copy");
    let (code, _, err) = enclavectl(&["status", "--cert-dir", &s(&mismatch), "--endpoint", &url]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&s(&mismatch.join("key.pem"))) && err.contains("does not match"),
        "{err}"
    );

    // Revoked (the server's refusal, named against our certificate).
    let (revoked, issued) = pki.issue(
        "revoked",
        CertKind::Operator {
            name: "gone".into(),
            role: Role::Secadmin,
        },
    );
    let (code, _, err) = enclavectl(&[
        "cert",
        "revoke",
        &issued.entry.serial,
        "--dir",
        &s(&pki.ca_dir()),
    ]);
    assert_eq!(code, 0, "{err}");
    let err = enclave_tests::wait_for("the node to load the CRL", Duration::from_secs(20), || {
        let (code, _, err) =
            enclavectl(&["status", "--cert-dir", &s(&revoked), "--endpoint", &url]);
        (code == 1).then_some(err)
    });
    assert!(
        err.contains(&s(&revoked.join("cert.pem"))) && err.contains("revoked"),
        "{err}"
    );

    // Nothing listening.
    let (code, _, err) = enclavectl(&[
        "status",
        "--cert-dir",
        &s(&admin),
        "--endpoint",
        "https://127.0.0.1:1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn ca_and_cert_commands_work_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca");
    let s = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let (code, out, err) = enclavectl(&["ca", "init", "--dir", &s(&ca)]);
    assert_eq!(code, 0, "{err}");
    let fp = out
        .lines()
        .find(|l| l.starts_with("sha256:"))
        .expect("fingerprint line")
        .to_string();
    assert_eq!(fp.len(), "sha256:".len() + 64);
    // Refuses to overwrite.
    let (code, _, err) = enclavectl(&["ca", "init", "--dir", &s(&ca)]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    let (code, _, err) = enclavectl(&[
        "cert",
        "issue",
        "node",
        "--dir",
        &s(&ca),
        "--name",
        "n1",
        "--ip",
        "10.0.0.5",
        "--dns",
        "n1.corp.example",
        "--days",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = enclavectl(&[
        "cert",
        "issue",
        "operator",
        "--dir",
        &s(&ca),
        "--name",
        "aud",
        "--role",
        "auditor",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = enclavectl(&[
        "cert",
        "issue",
        "device",
        "--dir",
        &s(&ca),
        "--user",
        "zhangsan",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = enclavectl(&[
        "cert",
        "inspect",
        &s(&ca.join("issued/node-n1/cert.pem")),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let info: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["role"], "node");
    assert!(
        info["ip_addresses"]
            .as_array()
            .expect("ips")
            .iter()
            .any(|i| i == "10.0.0.5")
    );
    assert!(
        info["dns_names"]
            .as_array()
            .expect("dns")
            .iter()
            .any(|i| i == "n1.corp.example")
    );
    let (code, out, _) = enclavectl(&[
        "cert",
        "inspect",
        &s(&ca.join("issued/operator-aud/cert.pem")),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("enclave://role/auditor"), "{out}");

    let (code, out, _) = enclavectl(&["cert", "list", "--dir", &s(&ca), "--output", "json"]);
    assert_eq!(code, 0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(list.len(), 3);
    let serial = list[1]["serial"].as_str().expect("serial").to_string();
    let (code, _, _) = enclavectl(&["cert", "revoke", &serial, "--dir", &s(&ca)]);
    assert_eq!(code, 0);
    let (code, out, _) = enclavectl(&["cert", "list", "--dir", &s(&ca)]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains(&serial) && l.contains("revoked")),
        "{out}"
    );
    let (code, _, err) = enclavectl(&["cert", "revoke", "abcdef", "--dir", &s(&ca)]);
    assert_eq!(code, 1);
    assert!(err.contains("abcdef"), "{err}");
    let (code, _, err) = enclavectl(&[
        "cert",
        "issue",
        "node",
        "--dir",
        &s(&ca),
        "--name",
        "../evil",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("name"), "{err}");
    let (code, _, err) = enclavectl(&["cert", "inspect", &s(&dir.path().join("missing.pem"))]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_whether_the_node_can_serve_writes() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let admin = pki.operator("admin", Role::Sysadmin);
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();
    let api = enclave_ops::Client::anonymous(&ep.api_url(), &pki.ca_dir().join("ca.pem"))
        .expect("client");
    match api.get_json::<serde_json::Value>("/readyz").await {
        Err(enclave_ops::ClientError::Api { status, code, .. }) => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(code, "not_initialized");
        }
        other => panic!("an uninitialized node must not be ready: {other:?}"),
    }
    // Liveness is independent of readiness.
    let _: serde_json::Value = api.get_json("/healthz").await.expect("healthz");
    let c = enclave_ops::Client::with_cert_dir(&ep.admin_url(), &admin).expect("client");
    let _: serde_json::Value = c
        .post_json("/v1/cluster/init", &serde_json::json!({}))
        .await
        .expect("init");
    enclave_tests::wait_for_async("readiness after init", Duration::from_secs(20), || async {
        api.get_json::<serde_json::Value>("/readyz").await.ok()
    })
    .await;
}

/// `enclavectl ca show | head -1` and the like: a reader that goes away
/// ends enclavectl quietly (status 141, as SIGPIPE would), no panic.
#[test]
fn enclavectl_ends_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca");
    let ca = ca.to_str().expect("utf8");
    let (code, _, err) = enclavectl(&["ca", "init", "--dir", ca]);
    assert_eq!(code, 0, "{err}");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(enclave_tests::bin("enclavectl"))
        .args(["ca", "show", "--dir", ca])
        .stdout(writer)
        .output()
        .expect("run enclavectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
