//! The systemd unit (`ops/systemd/enclave.service`) is valid for
//! `systemd-analyze verify`, keeps its hardening, and the node speaks
//! systemd's readiness protocol: `READY=1` on `$NOTIFY_SOCKET` once it can
//! serve (or at once when it is not in a cluster yet) and `STOPPING=1` on
//! SIGTERM. See docs/operator/systemd.md.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use enclave_tests::pki::TestPki;
use enclave_tests::proc::{NodeProc, NodeSpec};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("ops/systemd/enclave.service")).expect("read the unit")
}

/// `Key=value` settings of the unit, in order, comments left out.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(analyze) = on_path("systemd-analyze") else {
        println!(
            "SKIPPED systemd-analyze verify: systemd-analyze is not on PATH (Debian package systemd)"
        );
        return;
    };
    // verify insists that ExecStart's binary exists: point it at the
    // binary under test, leaving every other line as shipped.
    let unit = unit_text();
    let shipped = "ExecStart=/usr/local/bin/enclave ";
    assert!(unit.contains(shipped), "the unit no longer runs {shipped}");
    let enclave = enclave_tests::bin("enclave");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("enclave.service");
    std::fs::write(
        &file,
        unit.replace(shipped, &format!("ExecStart={} ", enclave.display())),
    )
    .expect("write");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Warnings about the unit itself (unknown keys, bad values) do not
    // fail verify; they must not be there either.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("enclave.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze warns about the unit:\n{}",
        about_unit.join("\n")
    );
}

#[test]
fn the_unit_keeps_its_hardening() {
    let unit = unit_text();
    let s = settings(&unit);
    let values = |key: &str| -> Vec<&str> {
        s.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> String {
        let v = values(key);
        assert_eq!(v.len(), 1, "{key} should be set once, is {v:?}");
        v[0].to_string()
    };
    for (key, want) in [
        ("Type", "notify"),
        ("User", "enclave"),
        ("Group", "enclave"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("ReadWritePaths", "/var/lib/enclave"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        // Empty: no capability at all unless a drop-in adds one.
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
    ] {
        assert_eq!(one(key), want, "{key}");
    }
    let filters = values("SystemCallFilter");
    assert!(
        filters.first() == Some(&"@system-service"),
        "SystemCallFilter must start from @system-service: {filters:?}"
    );
    for key in ["LimitNOFILE", "TimeoutStartSec", "TimeoutStopSec"] {
        assert!(!one(key).is_empty(), "{key} empty");
    }
    let start = one("ExecStart");
    assert!(
        start.ends_with(" start --config /etc/enclave/enclave.toml"),
        "{start}"
    );
    // The drop-in for ports below 1024 is documented in the unit.
    assert!(
        unit.contains("#   AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        "the commented drop-in for low ports is gone"
    );
}

#[test]
fn the_example_config_loads_and_logs_json() {
    let file = repo().join("ops/systemd/enclave.toml");
    let opts = enclave_node::config::LoadOptions {
        file: Some(file.clone()),
        defaults: None,
        overrides: Vec::new(),
    };
    let config = enclave_node::config::load(&opts, std::iter::empty::<(String, String)>())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(config.data_dir, Path::new("/var/lib/enclave"));
    assert!(
        matches!(config.log_format, enclave_node::config::LogFormat::Json),
        "journald gets JSON lines"
    );
}

/// Datagrams received on `socket` until one has a line starting with
/// `want` (bounded).
fn recv_until(socket: &UnixDatagram, want: &str, node: &NodeProc) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l.starts_with(want));
                got.push(msg);
                if done {
                    return got;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }
    panic!(
        "no {want} on the notify socket; received {got:?}\nnode log:\n{}",
        node.log_text()
    );
}

#[test]
fn a_dev_node_reports_ready_and_stopping_on_a_socket_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let data = dir.path().join("data");
    let mut spec = NodeSpec {
        args: vec![
            "--dev".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ],
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..Default::default()
    };
    spec.args.extend(enclave_tests::proc::loopback_args());
    let mut node = NodeProc::start_plain(&data, spec);
    let mut got = recv_until(&socket, "READY=1", &node);
    // The dev node makes itself a one-node cluster just after its
    // listeners are up; READY=1 normally comes with the serving status,
    // or (on a slow machine) STATUS= follows once it leads.
    if !got
        .iter()
        .any(|m| m.contains("STATUS=serving; leader dev-node"))
    {
        got.extend(recv_until(
            &socket,
            "STATUS=serving; leader dev-node",
            &node,
        ));
    }
    assert!(
        !got.iter().any(|m| m.contains("STOPPING=1")),
        "stopping before the signal: {got:?}"
    );
    node.signal("TERM");
    recv_until(&socket, "STOPPING=1", &node);
    let status = node.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn a_node_outside_a_cluster_is_ready_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("enclave-test-notify-{}", std::process::id());
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let pki = TestPki::new();
    let tls = pki.node("node-1");
    let spec = NodeSpec {
        env: vec![("NOTIFY_SOCKET".into(), format!("@{name}"))],
        ..Default::default()
    };
    let node = NodeProc::start_with_tls(&tls, &pki.ca_dir().join("crl.pem"), spec);
    // Not initialized, no join: systemd must still see it started, or
    // the start timeout would kill a node waiting to be added.
    let got = recv_until(&socket, "READY=1", &node);
    let ready = got.last().expect("a message");
    assert!(
        ready.contains("not in a cluster yet"),
        "READY=1 should say why there is no leader: {ready:?}"
    );
    node.signal("TERM");
    recv_until(&socket, "STOPPING=1", &node);
}

/// The operator host's nightly defragmentation (`enclave-defrag.timer`
/// starts `enclave-defrag.service`): the timer is nightly and not
/// persistent (a missed night does not run at boot),
/// and the service's command line is one this build's `enclavectl`
/// accepts (it gets as far as connecting to the endpoint).
#[test]
fn the_defrag_timer_runs_a_command_enclavectl_accepts() {
    let read = |name: &str| {
        std::fs::read_to_string(repo().join("ops/systemd").join(name)).expect("read the unit")
    };
    let timer = settings(&read("enclave-defrag.timer"));
    let get = |s: &[(String, String)], k: &str| {
        s.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}="))
    };
    assert!(get(&timer, "OnCalendar").contains("03:30"));
    assert!(
        !timer.iter().any(|(k, v)| k == "Persistent" && v == "true"),
        "a missed run must not start at boot"
    );
    let service = settings(&read("enclave-defrag.service"));
    assert_eq!(get(&service, "Type"), "oneshot");
    let exec = get(&service, "ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/enclavectl"));
    let args: Vec<&str> = words.collect();
    assert!(args.starts_with(&["cluster", "defrag", "--over"]), "{exec}");

    let pki = TestPki::new();
    let certs = pki.operator("ops", enclave_certs::Role::Sysadmin);
    let port = enclave_tests::proc::free_ports::<1>()[0];
    let out = Command::new(enclave_tests::bin("enclavectl"))
        .args(&args)
        .env("ENCLAVECTL_ENDPOINT", format!("https://127.0.0.1:{port}"))
        .env("ENCLAVECTL_CERT_DIR", &certs)
        .output()
        .expect("run enclavectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && !err.contains("Usage"),
        "not a connection error: {err}"
    );
}
