//! Joining with a one-time token and the CA fingerprint, against real processes.

use std::time::Duration;

use enclave_certs::Role;
use enclave_ops::Client;
use enclave_tests::pki::TestPki;
use enclave_tests::proc::{NodeProc, NodeSpec, free_ports};
use enclave_tests::wait_for_async;
use serde_json::{Value, json};

struct Seed {
    pki: TestPki,
    admin: std::path::PathBuf,
    node: NodeProc,
    peer: String,
    admin_url: String,
}

/// node-1, holding the CA, initialized as a one-node cluster.
async fn seed() -> Seed {
    let pki = TestPki::new();
    let tls = pki.node("node-1");
    let admin = pki.operator("admin", Role::Sysadmin);
    let ports = free_ports::<3>();
    let data = pki.path().join("data-1");
    let spec = NodeSpec {
        env: vec![(
            "ENCLAVE_TLS__CA_DIR".into(),
            pki.ca_dir().display().to_string(),
        )],
        ..Default::default()
    };
    let mut node = NodeProc::start_in(&data, &tls, &pki.ca_dir().join("crl.pem"), ports, spec);
    node.endpoints();
    let admin_url = format!("https://127.0.0.1:{}", ports[2]);
    let c = Client::with_cert_dir(&admin_url, &admin).expect("client");
    let _: Value = c
        .post_json("/v1/cluster/init", &json!({}))
        .await
        .expect("init");
    Seed {
        pki,
        admin,
        node,
        peer: format!("127.0.0.1:{}", ports[0]),
        admin_url,
    }
}

async fn token(s: &Seed) -> (String, String) {
    let c = Client::with_cert_dir(&s.admin_url, &s.admin).expect("client");
    let v: Value = c
        .post_json("/v1/cluster/join-tokens", &json!({ "ttl_secs": 600 }))
        .await
        .expect("token");
    (
        v["token"].as_str().expect("token").to_string(),
        v["ca_hash"].as_str().expect("hash").to_string(),
    )
}

fn joiner(s: &Seed, name: &str, token: &str, hash: &str) -> (NodeProc, [u16; 3]) {
    let ports = free_ports::<3>();
    let data = s.pki.path().join(format!("data-{name}"));
    let mut args = vec![
        "--join".to_string(),
        format!("https://{}", s.peer),
        "--token".into(),
        token.into(),
        "--ca-hash".into(),
        hash.into(),
        "--node-id".into(),
        name.into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    for (flag, p) in ["--listen-peer", "--listen-api", "--listen-admin"]
        .into_iter()
        .zip(ports)
    {
        args.extend([flag.to_string(), format!("127.0.0.1:{p}")]);
    }
    (
        NodeProc::start_plain(
            &data,
            NodeSpec {
                args,
                ..Default::default()
            },
        ),
        ports,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_with_a_token_gets_a_certificate_and_becomes_a_voter() {
    let s = seed().await;
    let (tok, hash) = token(&s).await;
    let (mut j, ports) = joiner(&s, "node-2", &tok, &hash);
    j.endpoints();
    let c = Client::with_cert_dir(&s.admin_url, &s.admin).expect("client");
    wait_for_async(
        "node-2 to become a voter",
        Duration::from_secs(60),
        || async {
            let st: Value = c.get_json("/v1/cluster/status").await.ok()?;
            (st["members"]
                .as_array()?
                .iter()
                .filter(|m| m["voter"] == true && !m["status"].is_null())
                .count()
                == 2)
                .then_some(())
        },
    )
    .await;
    // Its certificate came from the cluster CA, its key never left it (mode 0600).
    let cert = s.pki.path().join("data-node-2/tls/cert.pem");
    let info = enclave_certs::CertInfo::from_file(&cert).expect("cert");
    assert_eq!(info.role, Some(Role::Node));
    assert_eq!(info.name.as_deref(), Some("node-2"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.pki.path().join("data-node-2/tls/key.pem"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A write through the new node is replicated.
    let c2 = Client::with_cert_dir(&format!("https://127.0.0.1:{}", ports[2]), &s.admin)
        .expect("client");
    let (st, _) = c2
        .request(http::Method::PUT, "/v1/kv/joined", Some(b"yes".to_vec()))
        .await
        .expect("put");
    assert!(st.is_success());
    let v: Value = c
        .get_json("/v1/kv/joined?consistency=linearizable")
        .await
        .expect("get");
    assert_eq!(v["value"], "yes");

    // The token was consumed: a second node using it is refused.
    let (mut k, _) = joiner(&s, "node-3", &tok, &hash);
    assert_eq!(k.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert!(k.log_text().contains("already used"), "{}", k.log_text());
    // Both uses of the token are in the audit trail.
    let auditor = s.pki.operator("aud", Role::Auditor);
    let aud = Client::with_cert_dir(&s.admin_url, &auditor).expect("client");
    let v: Value = aud
        .get_json("/v1/audit?action=cluster.join_token.")
        .await
        .expect("audit");
    let outcomes: Vec<&str> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["record"]["outcome"].as_str().unwrap_or_default())
        .collect();
    assert!(outcomes.contains(&"ok"), "{v}");
    assert!(
        v["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["record"]["action"] == "cluster.join_token.refused"),
        "{v}"
    );
    drop(s.node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fingerprint_or_token_stops_the_join() {
    let s = seed().await;
    let (tok, _hash) = token(&s).await;
    let wrong_hash = format!("sha256:{}", "ab".repeat(32));
    let (mut j, _) = joiner(&s, "node-2", &tok, &wrong_hash);
    assert_eq!(j.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert!(
        j.log_text().contains("CA fingerprint mismatch"),
        "{}",
        j.log_text()
    );
    let (_, hash) = token(&s).await;
    let bogus = format!(
        "{}.{}",
        tok.split('.').next().unwrap_or("x"),
        "00".repeat(32)
    );
    let (mut j, _) = joiner(&s, "node-4", &bogus, &hash);
    assert_eq!(j.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert!(
        j.log_text().contains("wrong join token secret"),
        "{}",
        j.log_text()
    );
    // The refused attempts did not use the real token up.
    let (mut ok, _) = joiner(&s, "node-5", &tok, &hash);
    ok.endpoints();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_door_reaches_only_the_join_routes() {
    let s = seed().await;
    // Without a certificate, offering the join ALPN: the CA is public ...
    let ca = join_get(&s.peer, "/join/v1/ca").await;
    assert_eq!(ca.0, 200);
    assert!(ca.1.contains("BEGIN CERTIFICATE"));
    // ... but Raft and status routes are not there.
    for path in ["/raft/v1/status", "/raft/v1/append", "/peer/v1/hello"] {
        assert_eq!(
            join_get(&s.peer, path).await.0,
            404,
            "{path} reachable through the join door"
        );
    }
}

async fn join_get(peer: &str, path: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    enclave_certs::tls::install_default_provider();
    #[derive(Debug)]
    struct Any;
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            enclave_certs::tls::provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(enclave_certs::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Any))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"enclave-join/1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(peer).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name"),
            tcp,
        )
        .await
        .expect("join door handshake");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http");
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::get(path)
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .expect("req"),
        )
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
