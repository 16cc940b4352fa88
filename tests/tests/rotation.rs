//! Certificate and CA rotation on a running 3-node cluster under write
//! load, driven by `enclavectl` exactly as an operator runs it: no
//! acknowledged write is lost, writes go on throughout, and after a CA
//! rotation a certificate from the old CA is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use enclave_certs::{CertificateAuthority, Role};
use enclave_ops::{Client, ClientError};
use enclave_tests::cluster::{Load, TestCluster};
use enclave_tests::proc::{NodeSpec, enclavectl};
use serde_json::Value;

/// `enclavectl --cert-dir DIR --endpoint URL ARGS...`, off the runtime's
/// threads (the load keeps running meanwhile).
async fn ctl(cert_dir: &Path, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = vec![
        "--cert-dir".into(),
        cert_dir.display().to_string(),
        "--endpoint".into(),
        endpoint.into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        enclavectl(&refs)
    })
    .await
    .expect("enclavectl task")
}

async fn node_status(c: &TestCluster, i: usize) -> Value {
    c.admin(i).get_json("/v1/status").await.expect("status")
}

/// The audit records whose action starts with `prefix`.
async fn audit(c: &TestCluster, auditor: &Path, prefix: &str) -> Vec<Value> {
    let client = Client::with_cert_dir(&c.nodes[0].admin_url(), auditor).expect("auditor");
    let v: Value = client
        .get_json(&format!("/v1/audit?action={prefix}&limit=1000"))
        .await
        .expect("audit");
    v["records"].as_array().cloned().unwrap_or_default()
}

fn copy_bundle(from: &Path, to: &Path) {
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        let bytes = std::fs::read(from.join(f)).expect("read bundle");
        if f == "key.pem" {
            enclave_certs::files::write_secret(&to.join(f), &bytes).expect("write");
        } else {
            enclave_certs::files::write_public(&to.join(f), &bytes).expect("write");
        }
    }
}

async fn stop_load(load: Load, acked: &mut Vec<String>, failed: &mut usize) {
    let (a, f) = load.stop().await;
    acked.extend(a);
    *failed += f;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificates_rotate_across_the_cluster_under_load() {
    let started = Instant::now();
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    c.logs_on_drop = Some(std::env::temp_dir().join("enclave-rotation-node-certs-logs"));
    let sec = c.pki.operator("sec", Role::Secadmin);
    let auditor = c.pki.operator("aud", Role::Auditor);
    let ca_dir = c.pki.ca_dir().display().to_string();
    let endpoint = c.nodes[0].admin_url();
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(node_status(&c, i).await["certificate"]["serial"].clone());
    }

    let load = Load::start(&c, "certs");
    // A node that is not a member: refused before anything changes.
    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["cert", "rotate", "--dir", &ca_dir, "--node", "node-9"],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("no member named \"node-9\"") && err.contains("nothing was changed"),
        "{err}"
    );
    // A sysadmin may not rotate (secadmin's duty).
    let (code, _, err) = ctl(
        &c.admin_dir,
        &endpoint,
        &["cert", "rotate", "--dir", &ca_dir, "--node", "node-2"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("403") && err.contains("secadmin"), "{err}");
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&node_status(&c, i).await["certificate"]["serial"], b);
    }

    let rotate_started = Instant::now();
    let (code, out, err) = ctl(&sec, &endpoint, &["cert", "rotate", "--dir", &ca_dir]).await;
    let rotate_took = rotate_started.elapsed();
    assert_eq!(code, 0, "rotate failed:\n{out}\n{err}");
    assert!(out.contains("Rotated 3 node certificate(s)"), "{out}");
    let (acked, failed) = load.stop().await;
    assert!(
        !acked.is_empty(),
        "no write was acknowledged during the rotation"
    );

    let ca = CertificateAuthority::open(c.pki.ca_dir().as_path()).expect("ca");
    for (i, b) in before.iter().enumerate() {
        let st = node_status(&c, i).await;
        assert_ne!(
            &st["certificate"]["serial"], b,
            "{} not rotated",
            c.nodes[i].name
        );
        assert_eq!(
            st["tls"]["certificate"]["serial"], st["certificate"]["serial"],
            "{st}"
        );
        assert_eq!(
            st["tls"]["certificate"]["issuer_fingerprint"],
            ca.fingerprint()
        );
        assert_eq!(st["ca_fingerprints"], serde_json::json!([ca.fingerprint()]));
        assert!(
            !c.nodes[i].tls_dir.join("key.pem.next").exists(),
            "pending key left behind"
        );
    }
    for i in 0..3 {
        c.put(i, &format!("after-{i}"), &format!("after-{i}"))
            .await
            .expect("write after rotation");
    }
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
    let installs = audit(&c, &auditor, "tls.cert.install").await;
    assert_eq!(installs.len(), 3, "{installs:?}");
    for r in &installs {
        assert!(
            r["record"]["outcome"]
                .as_str()
                .or(r["outcome"].as_str())
                .unwrap_or_default()
                .starts_with("ok serial"),
            "{r}"
        );
    }
    eprintln!(
        "node cert rotation: {} writes acknowledged, 0 lost, {failed} failed attempts; rotate took {:.1}s; test {:.1}s",
        acked.len(),
        rotate_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    c.logs_on_drop = None;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_under_load_and_an_old_ca_certificate_is_refused_after() {
    let started = Instant::now();
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    c.logs_on_drop = Some(std::env::temp_dir().join("enclave-rotation-ca-logs"));
    let sec = c.pki.operator("sec", Role::Secadmin);
    let auditor = c.pki.operator("aud", Role::Auditor);
    let ca_path = c.pki.ca_dir();
    let ca_dir = ca_path.display().to_string();
    let endpoint = c.nodes[0].admin_url();
    let old_fp = c.pki.ca.fingerprint();
    // An operator who will keep their old-CA certificate.
    let stale = c.pki.operator("stale", Role::Sysadmin);

    // Nothing to finish yet.
    let (code, _, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "finish", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("no CA rotation is in progress"), "{err}");

    let (mut acked, mut failed) = (Vec::new(), 0usize);
    let steps = Instant::now();

    // 1. begin: every node trusts old + new.
    let load = Load::start(&c, "ca-begin");
    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "begin", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 0, "begin failed:\n{out}\n{err}");
    let new_fp = enclave_certs::rotation::load_state(&ca_path)
        .expect("state")
        .expect("rotation recorded")
        .new_fingerprint;
    // finish before reissue: refused, clearly, and nothing changes.
    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "finish", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cannot finish the CA rotation") && err.contains("ca rotate reissue"),
        "{err}"
    );
    stop_load(load, &mut acked, &mut failed).await;
    for i in 0..3 {
        let st = node_status(&c, i).await;
        assert_eq!(
            st["ca_fingerprints"],
            serde_json::json!([old_fp.clone(), new_fp.clone()]),
            "{st}"
        );
        assert_eq!(st["ca_fingerprint"], old_fp.as_str());
    }
    // Both CAs' expiry is exported, and `enclavectl status` lists both.
    let metrics = c.admin(1).get_text("/metrics").await.expect("metrics");
    for fp in [&old_fp, &new_fp] {
        assert!(
            metrics.contains(&format!(
                "enclave_tls_ca_expiry_timestamp_seconds{{fingerprint=\"{fp}\"}}"
            )),
            "{metrics}"
        );
    }
    let (code, out, err) = ctl(&sec, &endpoint, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\nCA ").count(), 2, "{out}");
    // Clients get the bundle (the stale operator too, so that it is the
    // node that refuses it at the end, not the other way round).
    let bundle = ca_path.join("ca-bundle.pem");
    for dir in [&c.admin_dir, &stale] {
        std::fs::copy(&bundle, dir.join("ca.pem")).expect("bundle");
    }
    let stale_client = Client::with_cert_dir(&endpoint, &stale).expect("stale client");
    assert_eq!(
        stale_client
            .request(http::Method::GET, "/healthz", None)
            .await
            .expect("old CA still accepted during the overlap")
            .0,
        200
    );

    // 2. reissue: every leaf from the new CA.
    let load = Load::start(&c, "ca-reissue");
    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "reissue", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 0, "reissue failed:\n{out}\n{err}");
    stop_load(load, &mut acked, &mut failed).await;
    for i in 0..3 {
        let st = node_status(&c, i).await;
        assert_eq!(
            st["tls"]["certificate"]["issuer_fingerprint"],
            new_fp.as_str()
        );
        assert_eq!(st["ca_fingerprint"], new_fp.as_str());
    }
    // The sysadmin and the auditor take the bundles re-issued for them.
    for (name, dir) in [("admin", &c.admin_dir), ("aud", &auditor)] {
        assert!(out.contains(&format!("operator {name}")), "{out}");
        copy_bundle(&ca_path.join(format!("next/issued/operator-{name}")), dir);
    }

    // 3. finish: new CA only.
    let load = Load::start(&c, "ca-finish");
    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "finish", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 0, "finish failed:\n{out}\n{err}");
    stop_load(load, &mut acked, &mut failed).await;
    let steps_took = steps.elapsed();

    for i in 0..3 {
        let st = node_status(&c, i).await;
        assert_eq!(
            st["ca_fingerprints"],
            serde_json::json!([new_fp.clone()]),
            "{st}"
        );
    }
    // The CA directory now holds the new CA; the old one is retired.
    let now = CertificateAuthority::open(&ca_path).expect("ca");
    assert_eq!(now.fingerprint(), new_fp);
    let retired = enclave_certs::rotation::retired_dir(&ca_path, &old_fp);
    assert_eq!(
        CertificateAuthority::open(&retired)
            .expect("retired")
            .fingerprint(),
        old_fp
    );

    // A certificate from the old CA is refused by every node.
    for n in &c.nodes {
        let client = Client::with_cert_dir(&n.admin_url(), &stale).expect("stale client");
        match client.request(http::Method::GET, "/healthz", None).await {
            Err(ClientError::Refused { reason, .. }) => {
                assert!(reason.contains("not issued by the CA"), "{reason}")
            }
            other => panic!("{}: old-CA certificate not refused: {other:?}", n.name),
        }
    }
    // Writes go through every node, replication included.
    for i in 0..3 {
        c.put(i, &format!("after-ca-{i}"), &format!("after-ca-{i}"))
            .await
            .expect("write after the CA rotation");
    }
    assert!(!acked.is_empty());
    c.wait_converged().await;
    c.assert_all_present(&acked).await;

    let trust = audit(&c, &auditor, "tls.trust.install").await;
    assert_eq!(trust.len(), 6, "two trust installs per node: {trust:?}");
    let certs = audit(&c, &auditor, "tls.cert.install").await;
    assert_eq!(certs.len(), 3, "{certs:?}");
    eprintln!(
        "CA rotation: {} writes acknowledged, 0 lost, {failed} failed attempts; begin+reissue+finish took {:.1}s; test {:.1}s",
        acked.len(),
        steps_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    c.logs_on_drop = None;
}

/// A node joins in the middle of a CA rotation: the join token pins the
/// CA that issued the node's certificate, the joiner gets its certificate
/// from the new CA and the old+new bundle, and the rotation finishes with
/// it as a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_during_a_ca_rotation_gets_a_new_ca_certificate() {
    use enclave_tests::pki::TestPki;
    use enclave_tests::proc::{NodeProc, free_ports};
    let pki = TestPki::new();
    let tls = pki.node("node-1");
    let admin = pki.operator("admin", Role::Sysadmin);
    let sec = pki.operator("sec", Role::Secadmin);
    let ports = free_ports::<3>();
    let spec = NodeSpec {
        env: vec![(
            "ENCLAVE_TLS__CA_DIR".into(),
            pki.ca_dir().display().to_string(),
        )],
        ..Default::default()
    };
    let mut node = NodeProc::start_in(
        &pki.path().join("data-1"),
        &tls,
        &pki.ca_dir().join("crl.pem"),
        ports,
        spec,
    );
    node.endpoints();
    let endpoint = format!("https://127.0.0.1:{}", ports[2]);
    let (st, _) = Client::with_cert_dir(&endpoint, &admin)
        .expect("client")
        .request(http::Method::POST, "/v1/cluster/init", Some(b"{}".to_vec()))
        .await
        .expect("init");
    assert!(st.is_success());
    let ca_dir = pki.ca_dir().display().to_string();
    for step in ["begin", "reissue"] {
        let (code, out, err) =
            ctl(&sec, &endpoint, &["ca", "rotate", step, "--dir", &ca_dir]).await;
        assert_eq!(code, 0, "{step}:\n{out}\n{err}");
    }
    let new_fp = enclave_certs::rotation::load_state(&pki.ca_dir())
        .expect("state")
        .expect("rotation")
        .new_fingerprint;
    copy_bundle(&pki.ca_dir().join("next/issued/operator-admin"), &admin);
    let c = Client::with_cert_dir(&endpoint, &admin).expect("client");
    let tok: Value = c
        .post_json(
            "/v1/cluster/join-tokens",
            &serde_json::json!({ "ttl_secs": 600 }),
        )
        .await
        .expect("token");
    assert_eq!(tok["ca_hash"], new_fp.as_str(), "{tok}");

    let jports = free_ports::<3>();
    let data = pki.path().join("data-node-2");
    let mut args = vec![
        "--join".to_string(),
        format!("https://127.0.0.1:{}", ports[0]),
        "--token".into(),
        tok["token"].as_str().expect("token").into(),
        "--ca-hash".into(),
        new_fp.clone(),
        "--node-id".into(),
        "node-2".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    for (flag, p) in ["--listen-peer", "--listen-api", "--listen-admin"]
        .into_iter()
        .zip(jports)
    {
        args.extend([flag.to_string(), format!("127.0.0.1:{p}")]);
    }
    let mut joiner = NodeProc::start_plain(
        &data,
        NodeSpec {
            args,
            ..Default::default()
        },
    );
    joiner.endpoints();
    enclave_tests::wait_for_async(
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
    let info =
        enclave_certs::TlsMaterial::load(&enclave_certs::TlsPaths::from_dir(&data.join("tls")))
            .expect("joiner's TLS")
            .trust_info()
            .expect("info");
    assert_eq!(
        info.leaf.issuer_fingerprint.as_deref(),
        Some(new_fp.as_str())
    );
    assert_eq!(info.ca.len(), 2, "the joiner got the bundle");

    let (code, out, err) = ctl(
        &sec,
        &endpoint,
        &["ca", "rotate", "finish", "--dir", &ca_dir],
    )
    .await;
    assert_eq!(code, 0, "finish:\n{out}\n{err}");
    let c2 =
        Client::with_cert_dir(&format!("https://127.0.0.1:{}", jports[2]), &admin).expect("client");
    let st: Value = c2.get_json("/v1/status").await.expect("status");
    assert_eq!(st["ca_fingerprints"], serde_json::json!([new_fp.clone()]));
    let (s, _) = c2
        .request(http::Method::PUT, "/v1/kv/joined", Some(b"yes".to_vec()))
        .await
        .expect("put via the joined node");
    assert!(s.is_success());
    let v: Value = c
        .get_json("/v1/kv/joined?consistency=linearizable")
        .await
        .expect("get");
    assert_eq!(v["value"], "yes");
}
