//! Every Enclave port refuses clients without the right certificate, and
//! accepts the right ones, against a real running `enclave` process.

use std::path::PathBuf;
use std::time::Duration;

use enclave_certs::{CertKind, CertificateAuthority, Role, Validity};
use enclave_ops::{Client, ClientError};
use enclave_tests::pki::{TestPki, node_kind};
use enclave_tests::proc::{NodeProc, NodeSpec};
use enclave_tests::tls::plaintext_probe;

struct Bundles {
    node_peer: PathBuf,
    sysadmin: PathBuf,
    monitor: PathBuf,
    other_ca_node: PathBuf,
    other_ca_operator: PathBuf,
    revoked_node: PathBuf,
    revoked_operator: PathBuf,
    expired_node: PathBuf,
    expired_operator: PathBuf,
}

fn bundles(pki: &TestPki) -> Bundles {
    let other =
        CertificateAuthority::init(&pki.path().join("other-ca"), "Another CA").expect("other ca");
    let other_issue = |label: &str, kind: CertKind| {
        let dir = pki.path().join(label);
        let issued = other
            .issue(&kind, Validity::days(10).expect("days"))
            .expect("issue");
        other.write_bundle(&issued, &dir).expect("write");
        // The impostor trusts *our* CA so the only thing wrong is its own cert.
        std::fs::copy(pki.ca_dir().join("ca.pem"), dir.join("ca.pem")).expect("copy ca");
        dir
    };
    let op = |n: &str, r| CertKind::Operator {
        name: n.into(),
        role: r,
    };
    Bundles {
        node_peer: pki.node("node-2"),
        sysadmin: pki.operator("admin", Role::Sysadmin),
        monitor: pki.operator("prom", Role::Monitor),
        other_ca_node: other_issue("other-node", node_kind("node-2")),
        other_ca_operator: other_issue("other-op", op("mallory", Role::Sysadmin)),
        revoked_node: pki.revoked("revoked-node", node_kind("node-3")),
        revoked_operator: pki.revoked("revoked-op", op("ex-admin", Role::Sysadmin)),
        expired_node: pki.expired("expired-node", node_kind("node-4")),
        expired_operator: pki.expired("expired-op", op("old-admin", Role::Sysadmin)),
    }
}

/// A client for `dir` that skips the local pre-checks, so the *server's*
/// refusal is what is tested (enclavectl's own checks are tested elsewhere).
fn raw_client(url: &str, dir: &std::path::Path) -> Client {
    Client::unchecked_cert_dir(url, dir)
        .expect("client")
        .with_timeout(Duration::from_secs(10))
}

fn assert_refused(r: Result<String, ClientError>, what: &str, node: &NodeProc) {
    match r {
        Err(ClientError::Refused { .. } | ClientError::Tls { .. } | ClientError::Http { .. }) => {}
        // No answer within the timeout (this happened, rarely, under CI
        // load): say what the node and both ends of the connection were doing.
        Err(ClientError::Timeout { .. }) => panic!(
            "{what}: expected a refused handshake, got {r:?}\n{}",
            node.diagnostics()
        ),
        other => panic!("{what}: expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_and_admin_ports_accept_only_the_right_certificates() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let b = bundles(&pki);
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();

    for (port, url, addr) in [
        ("peer", ep.peer_url(), ep.peer),
        ("admin", ep.admin_url(), ep.admin),
    ] {
        // Plaintext TCP gets no HTTP answer.
        let answer = plaintext_probe(addr).await;
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{port}: plaintext got an HTTP answer"
        );
        // A TLS client with no certificate.
        let anon = Client::anonymous(&url, &pki.ca_dir().join("ca.pem")).expect("anon");
        assert_refused(
            anon.get_text("/healthz").await,
            &format!("{port}: no certificate"),
            &node,
        );
        let (right, wrong_role, other_ca, revoked, expired, path) = if port == "peer" {
            (
                &b.node_peer,
                &b.sysadmin,
                &b.other_ca_node,
                &b.revoked_node,
                &b.expired_node,
                "/peer/v1/hello",
            )
        } else {
            (
                &b.sysadmin,
                &b.node_peer,
                &b.other_ca_operator,
                &b.revoked_operator,
                &b.expired_operator,
                "/v1/status",
            )
        };
        for (label, dir) in [
            ("wrong role", wrong_role),
            ("other CA", other_ca),
            ("revoked", revoked),
            ("expired", expired),
        ] {
            assert_refused(
                raw_client(&url, dir).get_text(path).await,
                &format!("{port}: {label}"),
                &node,
            );
        }
        let ok = raw_client(&url, right)
            .get_text(path)
            .await
            .unwrap_or_else(|e| panic!("{port}: right cert refused: {e}"));
        assert!(ok.contains("node-1"), "{port}: unexpected answer {ok}");
    }

    // The refusals are visible to monitoring, by reason.
    let metrics = raw_client(&ep.admin_url(), &b.monitor)
        .get_text("/metrics")
        .await
        .expect("metrics");
    for reason in [
        "no_certificate",
        "unknown_ca",
        "revoked",
        "expired",
        "wrong_role",
        "not_tls",
    ] {
        assert!(
            metrics.contains(&format!("result=\"{reason}\"")),
            "no handshake metric for {reason}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_clients_get_errors_that_name_their_certificate_file() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let b = bundles(&pki);
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();
    let cases = [
        (&b.revoked_operator, "revoked"),
        (&b.node_peer, "role is not allowed"),
        (&b.other_ca_operator, "not issued by the CA"),
    ];
    for (dir, reason) in cases {
        let err = raw_client(&ep.admin_url(), dir)
            .get_text("/v1/status")
            .await
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.join("cert.pem").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains(reason), "expected {reason:?} in {msg}");
    }
    // A server from another CA is not trusted by the client.
    let impostor_dir = pki.path().join("other-node");
    let mut impostor = NodeProc::start_with_tls(
        &{
            // The impostor node needs its own CA as ca.pem to start.
            let d = pki.path().join("impostor");
            std::fs::create_dir_all(&d).expect("dir");
            for f in ["cert.pem", "key.pem"] {
                std::fs::copy(impostor_dir.join(f), d.join(f)).expect("copy");
            }
            std::fs::copy(pki.path().join("other-ca/ca.pem"), d.join("ca.pem")).expect("copy ca");
            d
        },
        &pki.path().join("other-ca/crl.pem"),
        NodeSpec::default(),
    );
    let iep = impostor.endpoints();
    let err = raw_client(&iep.admin_url(), &b.sysadmin)
        .get_text("/v1/status")
        .await
        .expect_err("impostor");
    assert!(
        matches!(err, ClientError::UntrustedServer { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reads_metrics_but_gets_403_on_operator_routes() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let monitor = pki.operator("prom", Role::Monitor);
    let auditor = pki.operator("audit", Role::Auditor);
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();
    let mon = raw_client(&ep.admin_url(), &monitor);
    let metrics = mon
        .get_text("/metrics")
        .await
        .expect("monitor reads metrics");
    assert!(metrics.contains("enclave_uptime_seconds"), "{metrics}");
    assert!(metrics.contains("enclave_build_info"), "{metrics}");
    match mon.get_text("/v1/status").await {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => {
            assert_eq!(status.as_u16(), 403);
            assert_eq!(code, "forbidden");
            assert!(message.contains("monitor"), "{message}");
        }
        other => panic!("monitor on /v1/status: expected 403, got {other:?}"),
    }
    let status: serde_json::Value = raw_client(&ep.admin_url(), &auditor)
        .get_json("/v1/status")
        .await
        .expect("auditor status");
    assert_eq!(status["node_id"], "node-1");
    assert_eq!(status["caller"]["role"], "auditor");
    assert!(status["uptime_secs"].is_u64());
    assert!(!status["version"].as_str().unwrap_or_default().is_empty());
}

/// A client that speaks TLS 1.2 and nothing newer (an old JVM), trusting
/// the cluster CA and presenting the bundle in `cert_dir`, if any.
fn tls12_only_client(
    ca: &std::path::Path,
    cert_dir: Option<&std::path::Path>,
    alpn: &[u8],
) -> rustls::ClientConfig {
    tls_client(ca, cert_dir, alpn, &[&rustls::version::TLS12])
}

fn tls_client(
    ca: &std::path::Path,
    cert_dir: Option<&std::path::Path>,
    alpn: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in enclave_certs::files::load_certs(ca).expect("ca") {
        roots.add(c).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(enclave_certs::tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match cert_dir {
        Some(dir) => {
            let m = enclave_certs::TlsMaterial::load(&enclave_certs::TlsPaths::from_dir(dir))
                .expect("client bundle");
            builder
                .with_client_auth_cert(m.chain, m.key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Handshake with `addr` (bounded); the rustls error if it fails.
async fn handshake(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> Result<TlsStream, rustls::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let connect = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(
        rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name"),
        tcp,
    );
    match tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("handshake timed out")
    {
        Ok(tls) => Ok(tls),
        Err(e) => Err(e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned()
            .unwrap_or_else(|| panic!("handshake failed without a TLS error: {e}"))),
    }
}

/// The handshake fails, and the server says why with a `protocol_version`
/// alert.
async fn assert_protocol_version_refusal(
    what: &str,
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) {
    match handshake(addr, config).await {
        Err(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)) => {}
        Err(other) => panic!("{what}: expected a protocol_version alert, got {other:?}"),
        Ok(tls) => panic!(
            "{what}: TLS 1.2 client was accepted ({:?})",
            tls.get_ref().1.protocol_version()
        ),
    }
}

/// `GET /healthz` over HTTP/1.1 on an established connection; the response.
async fn get_healthz(mut tls: TlsStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
        .await
        .expect("answer timed out")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

async fn handshake_metrics(url: &str, monitor: &std::path::Path) -> String {
    raw_client(url, monitor)
        .get_text("/metrics")
        .await
        .expect("metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_port_refuses_tls_1_2_by_default() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let monitor = pki.operator("prom", Role::Monitor);
    let ca = pki.ca_dir().join("ca.pem");
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec::default(),
    );
    let ep = node.endpoints();
    assert_protocol_version_refusal(
        "api (default)",
        ep.api,
        tls12_only_client(&ca, None, b"http/1.1"),
    )
    .await;
    // A TLS 1.3 client is served as always.
    let ok = get_healthz(
        handshake(
            ep.api,
            tls_client(&ca, None, b"http/1.1", &[&rustls::version::TLS13]),
        )
        .await
        .expect("TLS 1.3 on the api port"),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Monitoring sees the refusal as `incompatible`.
    let metrics = handshake_metrics(&ep.admin_url(), &monitor).await;
    assert!(
        metrics.contains(r#"listener="api",result="incompatible""#),
        "no incompatible handshake on the api port:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tls_min_version_1_2_opens_the_api_port_only() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    let node_peer = pki.node("node-2");
    let sysadmin = pki.operator("admin", Role::Sysadmin);
    let monitor = pki.operator("prom", Role::Monitor);
    let ca = pki.ca_dir().join("ca.pem");
    let mut node = NodeProc::start_with_tls(
        &node_dir,
        &pki.ca_dir().join("crl.pem"),
        NodeSpec {
            env: vec![("ENCLAVE_API__TLS_MIN_VERSION".into(), "1.2".into())],
            ..Default::default()
        },
    );
    let ep = node.endpoints();

    // The api port: a TLS 1.2-only client completes the handshake, with an
    // ECDHE_ECDSA AEAD suite (the node's key is ECDSA P-256), and is served.
    let tls = handshake(ep.api, tls12_only_client(&ca, None, b"http/1.1"))
        .await
        .expect("TLS 1.2 on the api port with api.tls_min_version = 1.2");
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = conn.negotiated_cipher_suite().expect("suite").suite();
    assert!(
        [
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        .contains(&suite),
        "{suite:?}"
    );
    let answer = get_healthz(tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A client that speaks both still gets TLS 1.3.
    let tls = handshake(
        ep.api,
        tls_client(
            &ca,
            None,
            b"http/1.1",
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        ),
    )
    .await
    .expect("TLS 1.3 on the api port");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    // The peer and admin ports, and the join door, stay TLS 1.3 only, even
    // for a client with the right certificate.
    assert_protocol_version_refusal(
        "admin",
        ep.admin,
        tls12_only_client(&ca, Some(&sysadmin), b"http/1.1"),
    )
    .await;
    assert_protocol_version_refusal(
        "peer",
        ep.peer,
        tls12_only_client(&ca, Some(&node_peer), b"h2"),
    )
    .await;
    assert_protocol_version_refusal(
        "join door",
        ep.peer,
        tls12_only_client(&ca, None, b"enclave-join/1"),
    )
    .await;
    // Those ports still serve their TLS 1.3 clients.
    let status = raw_client(&ep.admin_url(), &sysadmin)
        .get_text("/v1/status")
        .await
        .expect("admin over TLS 1.3");
    assert!(status.contains("node-1"), "{status}");

    let metrics = handshake_metrics(&ep.admin_url(), &monitor).await;
    for listener in ["peer", "admin"] {
        assert!(
            metrics.contains(&format!(r#"listener="{listener}",result="incompatible""#)),
            "no incompatible handshake on the {listener} port:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(r#"listener="api",result="incompatible""#),
        "the api port refused a handshake as incompatible:\n{metrics}"
    );
}

#[test]
fn an_unsupported_api_tls_min_version_stops_the_node() {
    let pki = TestPki::new();
    let node_dir = pki.node("node-1");
    for bad in ["1.1", "1.0", "tls1.2"] {
        let mut node = NodeProc::start_with_tls(
            &node_dir,
            &pki.ca_dir().join("crl.pem"),
            NodeSpec {
                env: vec![("ENCLAVE_API__TLS_MIN_VERSION".into(), bad.into())],
                ..Default::default()
            },
        );
        let status = node.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{bad}: {}", node.log_text());
        let log = node.log_text();
        assert!(
            log.contains("api.tls_min_version")
                && log.contains("environment variable ENCLAVE_API__TLS_MIN_VERSION"),
            "{bad}: {log}"
        );
    }
}
