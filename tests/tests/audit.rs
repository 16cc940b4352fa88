//! The audit chain against a real node: security-relevant actions leave
//! records (refusals too), only the auditor reads them, an export verifies
//! offline and any damage to it is pinned to the first bad record.

use enclave_certs::Role;
use enclave_ops::Client;
use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::{NodeSpec, enclavectl};
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_recorded_only_the_auditor_reads_them_and_exports_verify() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let url = c.endpoints(0).api_url();
    let a = Api::new(&url, &c.pki.ca_dir().join("ca.pem"));
    a.login("ann", PW).await;
    let (s, _) = a
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "bob", "password": "wrong wrong"})),
        )
        .await;
    assert_eq!(s, 401);
    // A refused directory change is recorded as refused.
    let (s, _) = c
        .admin(0)
        .request(Method::DELETE, "/v1/directory/departments/1", None)
        .await
        .expect("delete");
    assert_eq!(s.as_u16(), 409);

    // Separation of duties: only the auditor reads the trail, and the
    // auditor changes nothing.
    let admin_url = c.nodes[0].admin_url();
    let auditor = c.pki.operator("aud", Role::Auditor);
    let secadmin = c.pki.operator("sec", Role::Secadmin);
    let table: Vec<(&std::path::Path, Method, &str, u16)> = vec![
        (&c.admin_dir, Method::GET, "/v1/audit", 403),
        (&secadmin, Method::GET, "/v1/audit", 403),
        (&auditor, Method::GET, "/v1/audit", 200),
        (&auditor, Method::POST, "/v1/directory/members", 403),
        (&auditor, Method::PUT, "/v1/policy", 403),
        (&auditor, Method::PUT, "/v1/directory/departments/9", 403),
        (&secadmin, Method::POST, "/v1/directory/members", 403),
        (&c.admin_dir, Method::PUT, "/v1/policy", 403),
    ];
    for (dir, method, path, want) in table {
        let client = Client::with_cert_dir(&admin_url, dir).expect("client");
        let body = (method != Method::GET).then(|| b"{}".to_vec());
        let (s, b) = client
            .request(method.clone(), path, body)
            .await
            .expect("request");
        assert_eq!(
            s.as_u16(),
            want,
            "{} {method} {path}: {}",
            dir.display(),
            String::from_utf8_lossy(&b)
        );
    }

    // A cluster operation outside the domain is recorded after it ran.
    let (s, _) = c
        .admin(0)
        .request(
            Method::POST,
            "/v1/cluster/join-tokens",
            Some(json!({"ttl_secs": 3600}).to_string().into_bytes()),
        )
        .await
        .expect("token");
    assert!(s.is_success());
    // A plaintext probe of the admin port is a refused handshake.
    let admin_addr = c.endpoints(0).admin;
    enclave_tests::tls::plaintext_probe(admin_addr).await;
    let aud = Client::with_cert_dir(&admin_url, &auditor).expect("client");
    let v: Value = aud.get_json("/v1/audit").await.expect("audit");
    let records = v["records"].as_array().expect("records");
    let find = |action: &str, target: &str| {
        records
            .iter()
            .find(|r| r["record"]["action"] == action && r["record"]["target"] == target)
            .unwrap_or_else(|| panic!("no {action} {target} record in {v}"))
    };
    let created = find("directory.member.create", "ann");
    assert_eq!(created["record"]["origin"]["kind"], "operator");
    assert_eq!(created["record"]["origin"]["role"], "sysadmin");
    let login = find("auth.login", "ann");
    assert_eq!(login["record"]["outcome"], "ok");
    assert_eq!(login["record"]["origin"]["source"], "127.0.0.1");
    assert_ne!(login["record"]["origin"]["request_id"], "");
    assert_eq!(find("auth.login", "bob")["record"]["outcome"], "failed");
    assert_eq!(
        find("directory.department.delete", "dept:1")["record"]["outcome"],
        "refused:department_not_empty"
    );
    assert!(
        !v.to_string().contains(PW),
        "a password leaked into the audit trail"
    );
    assert!(
        !v.to_string().contains("argon2"),
        "a password hash leaked into the audit trail"
    );

    // Cluster-layer events are recorded in the same apply as the event.
    let token = records
        .iter()
        .find(|r| r["record"]["action"] == "cluster.join_token.create")
        .unwrap_or_else(|| panic!("no join token record: {v}"));
    assert!(
        token["record"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ok, expires"),
        "{token}"
    );
    assert_eq!(token["record"]["origin"]["kind"], "operator");
    let membership = records
        .iter()
        .find(|r| r["record"]["action"] == "cluster.membership")
        .unwrap_or_else(|| panic!("no membership record: {v}"));
    assert!(
        membership["record"]["target"]
            .as_str()
            .unwrap_or_default()
            .contains("voters node-1"),
        "{membership}"
    );
    let tls = records
        .iter()
        .find(|r| r["record"]["action"] == "tls.rejected" && r["record"]["target"] == "admin")
        .unwrap_or_else(|| panic!("no tls.rejected record: {v}"));
    assert!(
        tls["record"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not_tls x"),
        "{tls}"
    );
    // Each refusal of the role table is recorded, aggregated per operator
    // and route.
    let denied: Vec<&Value> = records
        .iter()
        .filter(|r| r["record"]["action"] == "authz.denied")
        .collect();
    assert!(
        denied
            .iter()
            .any(|r| r["record"]["origin"]["role"] == "auditor"
                && r["record"]["target"] == "POST /v1/directory/members"),
        "auditor's refused POST not recorded: {denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|r| r["record"]["origin"]["role"] == "sysadmin"
                && r["record"]["target"] == "GET /v1/audit"),
        "sysadmin's refused audit read not recorded: {denied:?}"
    );
    // Each node records its start with the digest of its configuration.
    let started = enclave_tests::wait_for_async(
        "the node.start record",
        std::time::Duration::from_secs(15),
        || async {
            let v: Value = aud.get_json("/v1/audit?action=node.start").await.ok()?;
            v["records"].as_array()?.first().cloned()
        },
    )
    .await;
    assert!(
        started["record"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("config sha256:"),
        "{started}"
    );
    // Search by actor and action prefix.
    let aud_dir0 = auditor.display().to_string();
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &aud_dir0,
        "--endpoint",
        &admin_url,
        "--output",
        "json",
        "audit",
        "search",
        "--actor",
        "ann",
        "--action",
        "auth.",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let found: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert!(!found.is_empty());
    assert!(found.iter().all(|r| {
        r["record"]["origin"]["id"] == "ann"
            && r["record"]["action"]
                .as_str()
                .unwrap_or_default()
                .starts_with("auth.")
    }));

    // Export, verify offline; then damage it in each way.
    let aud_dir = auditor.display().to_string();
    let export = c.pki.path().join("audit.jsonl");
    let exp = export.display().to_string();
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &aud_dir,
        "--endpoint",
        &admin_url,
        "audit",
        "export",
        "--out",
        &exp,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let ca = c.pki.ca_dir().join("ca.pem").display().to_string();
    let (code, out, err) = enclavectl(&["audit", "verify", &exp, "--ca", &ca]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 signed checkpoints verified"), "{out}");
    // Without the CA it refuses to guess.
    let (code, _, err) = enclavectl(&["audit", "verify", &exp]);
    assert_eq!(code, 1);
    assert!(err.contains("--ca"), "{err}");
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &aud_dir,
        "--endpoint",
        &admin_url,
        "audit",
        "verify",
        "--live",
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let text = std::fs::read_to_string(&export).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 6, "too few records: {text}");
    let damaged = |name: &str, lines: Vec<String>| {
        let p = c.pki.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").expect("write");
        let (code, _, err) =
            enclavectl(&["audit", "verify", &p.display().to_string(), "--ca", &ca]);
        assert_eq!(code, 1, "{name} verified: {err}");
        err
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // Record 3 is line 4 (after the header).
    let mut flipped = owned.clone();
    flipped[3] = flipped[3].replacen("\"outcome\":\"", "\"outcome\":\"X", 1);
    assert!(damaged("flipped.jsonl", flipped).contains("record 3"));
    let mut deleted = owned.clone();
    deleted.remove(4);
    assert!(damaged("deleted.jsonl", deleted).contains("record 4"));
    let mut swapped = owned.clone();
    swapped.swap(2, 3);
    assert!(damaged("swapped.jsonl", swapped).contains("record 2"));
    // A cut-off tail: the closing checkpoint and the last record removed.
    let mut cut = owned.clone();
    cut.truncate(cut.len() - 2);
    assert!(damaged("cut.jsonl", cut).contains("cut off"));
    // A forged checkpoint (signature altered) is refused.
    let mut forged = owned.clone();
    let last = forged.len() - 1;
    let mut cp: Value = serde_json::from_str(&forged[last]).expect("checkpoint line");
    let sig = cp["checkpoint"]["signature"]
        .as_str()
        .expect("sig")
        .to_string();
    let flipped_sig = format!(
        "{}{}",
        &sig[..sig.len() - 2],
        if sig.ends_with("00") { "01" } else { "00" }
    );
    cp["checkpoint"]["signature"] = json!(flipped_sig);
    forged[last] = cp.to_string();
    assert!(damaged("forged.jsonl", forged).contains("not valid"));
    // Records younger than the retention cannot be archived, even with a
    // verified export; the retention cannot go below 180 days.
    let last_line: Value = serde_json::from_str(lines.last().expect("last")).expect("json");
    let closing_seq = last_line["checkpoint"]["seq"].to_string();
    let (code, _, err) = enclavectl(&[
        "--cert-dir",
        &aud_dir,
        "--endpoint",
        &admin_url,
        "audit",
        "archive",
        "--upto",
        &closing_seq,
        "--export",
        &exp,
        "--ca",
        &ca,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("younger than the retention"), "{err}");
    let sec_dir = secadmin.display().to_string();
    let (code, _, err) = enclavectl(&[
        "--cert-dir",
        &sec_dir,
        "--endpoint",
        &admin_url,
        "policy",
        "set",
        "audit_retention_days=90",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("at least 180"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_actions_leaves_one_identical_verified_chain_on_every_node() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let leader = c.leader().await;
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let url = c.endpoints(follower).api_url();
    let api = Api::new(&url, &c.pki.ca_dir().join("ca.pem"));
    // Logins are audited actions: run them through a follower while the
    // leader dies.
    let load = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..40 {
                let user = if i % 2 == 0 { "ann" } else { "bob" };
                let (s, _) = api
                    .call(
                        Method::POST,
                        "/v1/login",
                        None,
                        Some(json!({"userid": user, "password": PW})),
                    )
                    .await;
                if s == 200 {
                    ok += 1;
                }
            }
            ok
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.kill(leader);
    let acknowledged = load.await.expect("load");
    c.restart(leader);
    c.wait_converged().await;

    let auditor = c.pki.operator("aud", Role::Auditor);
    let mut heads = Vec::new();
    for i in 0..3 {
        let admin_url = c.nodes[i].admin_url();
        let aud = Client::with_cert_dir(&admin_url, &auditor).expect("client");
        let v: Value = aud.get_json("/v1/audit?limit=10000").await.expect("audit");
        let logins = v["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["record"]["action"] == "auth.login" && r["record"]["outcome"] == "ok")
            .count() as u32;
        // No acknowledged login without its record (a login whose answer
        // was lost may have a record too, never the other way round).
        assert!(
            logins >= acknowledged,
            "node {i}: {logins} login records < {acknowledged} acknowledged"
        );
        heads.push(
            v["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| (r["record"]["seq"].as_u64().unwrap_or(0), r["hash"].clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        let (code, out, err) = enclavectl(&[
            "--cert-dir",
            &auditor.display().to_string(),
            "--endpoint",
            &admin_url,
            "audit",
            "verify",
            "--live",
        ]);
        assert_eq!(code, 0, "node {i}: {out}{err}");
    }
    assert!(acknowledged > 0, "no login got through");
    // Reading the trail is itself recorded, so each read adds a record:
    // compare the chains over the records every node had when read.
    let common = heads.iter().map(|h| h.len()).min().unwrap_or(0) as u64;
    assert!(common > 0);
    for seq in 1..=common {
        assert_eq!(
            heads[0].get(&seq),
            heads[1].get(&seq),
            "record {seq} differs"
        );
        assert_eq!(
            heads[1].get(&seq),
            heads[2].get(&seq),
            "record {seq} differs"
        );
    }
}

/// A minimal TLS syslog receiver (RFC 5425 framing): every message it gets.
async fn syslog_receiver(
    pki: &enclave_tests::pki::TestPki,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::AsyncReadExt;
    let dir = pki.node("siem");
    let certs = enclave_certs::files::load_certs(&dir.join("cert.pem")).expect("cert");
    let key = enclave_certs::files::load_key(&dir.join("key.pem")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Octet counting: "LEN SP MSG".
                    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                        let Some(len) = std::str::from_utf8(&buf[..sp])
                            .ok()
                            .and_then(|s| s.parse::<usize>().ok())
                        else {
                            return;
                        };
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).into_owned();
                        buf.drain(..sp + 1 + len);
                        let _ = tx.send(msg);
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_forwarded_to_syslog_over_tls_with_their_hash() {
    let pki_for_siem = enclave_tests::pki::TestPki::new();
    let (addr, mut rx) = syslog_receiver(&pki_for_siem).await;
    let spec = NodeSpec {
        env: vec![
            ("ENCLAVE_AUDIT__SYSLOG_ADDR".into(), addr.to_string()),
            (
                "ENCLAVE_AUDIT__SYSLOG_CA".into(),
                pki_for_siem.ca_dir().join("ca.pem").display().to_string(),
            ),
            (
                "ENCLAVE_AUDIT__SYSLOG_SERVER_NAME".into(),
                "localhost".into(),
            ),
        ],
        ..Default::default()
    };
    let c = TestCluster::start(1, spec).await;
    seed_directory(&c, 0, &["ann"], PW).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = Vec::new();
    while !got
        .iter()
        .any(|m: &String| m.contains("action=\"directory.member.create\""))
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => panic!("no member.create record forwarded; got {got:?}"),
        }
    }
    let m = got
        .iter()
        .find(|m| m.contains("action=\"directory.member.create\""))
        .expect("message");
    assert!(m.starts_with("<85>1 "), "not RFC 5424 authpriv.notice: {m}");
    assert!(m.contains(" enclave - AUDIT [enclave@32473 seq=\""), "{m}");
    assert!(m.contains("hash=\""), "{m}");
    assert!(m.contains("target=\"ann\""), "{m}");
    assert!(!m.contains(PW), "password forwarded: {m}");
}

/// Separation of duties, route by route: every role is refused every
/// action outside its duty, and every refusal is in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_refused_each_action_outside_its_duty_and_each_refusal_is_recorded() {
    let c = TestCluster::start(1, NodeSpec::default()).await;
    let admin_url = c.nodes[0].admin_url();
    let dirs = [
        ("sysadmin", c.admin_dir.clone()),
        ("secadmin", c.pki.operator("sec", Role::Secadmin)),
        ("auditor", c.pki.operator("aud", Role::Auditor)),
        ("monitor", c.pki.operator("mon", Role::Monitor)),
    ];
    // (method, path as sent, route as matched, the one role whose duty it is)
    let sys = "sysadmin";
    let table: &[(Method, &str, &str, &str)] = &[
        (Method::POST, "/v1/cluster/init", "/v1/cluster/init", sys),
        (
            Method::POST,
            "/v1/cluster/members",
            "/v1/cluster/members",
            sys,
        ),
        (
            Method::DELETE,
            "/v1/cluster/members/x",
            "/v1/cluster/members/{name}",
            sys,
        ),
        (
            Method::POST,
            "/v1/cluster/join-tokens",
            "/v1/cluster/join-tokens",
            sys,
        ),
        (
            Method::POST,
            "/v1/cluster/transfer-leader",
            "/v1/cluster/transfer-leader",
            sys,
        ),
        (
            Method::POST,
            "/v1/cluster/version",
            "/v1/cluster/version",
            sys,
        ),
        (Method::GET, "/v1/backup", "/v1/backup", sys),
        (Method::PUT, "/v1/kv/x", "/v1/kv/{key}", sys),
        (
            Method::PUT,
            "/v1/directory/departments/9",
            "/v1/directory/departments/{id}",
            sys,
        ),
        (
            Method::DELETE,
            "/v1/directory/departments/9",
            "/v1/directory/departments/{id}",
            sys,
        ),
        (
            Method::POST,
            "/v1/directory/members",
            "/v1/directory/members",
            sys,
        ),
        (
            Method::PATCH,
            "/v1/directory/members/x",
            "/v1/directory/members/{userid}",
            sys,
        ),
        (
            Method::PUT,
            "/v1/directory/members/x/status",
            "/v1/directory/members/{userid}/status",
            sys,
        ),
        (
            Method::PUT,
            "/v1/directory/members/x/password",
            "/v1/directory/members/{userid}/password",
            sys,
        ),
        (
            Method::POST,
            "/v1/directory/members/x/unlock",
            "/v1/directory/members/{userid}/unlock",
            sys,
        ),
        (
            Method::POST,
            "/v1/external/transfers",
            "/v1/external/transfers",
            sys,
        ),
        (
            Method::POST,
            "/v1/external/transfers/1/cancel",
            "/v1/external/transfers/{id}/cancel",
            sys,
        ),
        (
            Method::PUT,
            "/v1/external/accounts/x/disabled",
            "/v1/external/accounts/{userid}/disabled",
            sys,
        ),
        (Method::PUT, "/v1/policy", "/v1/policy", "secadmin"),
        (
            Method::PUT,
            "/v1/policy/external",
            "/v1/policy/external",
            "secadmin",
        ),
        (Method::POST, "/v1/tls/csr", "/v1/tls/csr", "secadmin"),
        (Method::PUT, "/v1/tls/cert", "/v1/tls/cert", "secadmin"),
        (Method::PUT, "/v1/tls/trust", "/v1/tls/trust", "secadmin"),
        (Method::GET, "/v1/audit", "/v1/audit", "auditor"),
        (
            Method::GET,
            "/v1/audit/checkpoints",
            "/v1/audit/checkpoints",
            "auditor",
        ),
        (
            Method::POST,
            "/v1/audit/checkpoint",
            "/v1/audit/checkpoint",
            "auditor",
        ),
        (
            Method::POST,
            "/v1/audit/archive",
            "/v1/audit/archive",
            "auditor",
        ),
    ];
    let mut expected = Vec::new();
    for (method, path, route, duty) in table {
        for (role, dir) in &dirs {
            if role == duty {
                continue;
            }
            let client = Client::with_cert_dir(&admin_url, dir).expect("client");
            let body = (*method != Method::GET).then(|| b"{}".to_vec());
            let (s, b) = client
                .request(method.clone(), path, body)
                .await
                .expect("request");
            assert_eq!(
                s.as_u16(),
                403,
                "{role} {method} {path} was not refused: {}",
                String::from_utf8_lossy(&b)
            );
            expected.push((role.to_string(), format!("{method} {route}")));
        }
    }
    let aud = Client::with_cert_dir(&admin_url, &dirs[2].1).expect("client");
    let v: Value = aud
        .get_json("/v1/audit?action=authz.denied&limit=10000")
        .await
        .expect("audit");
    let recorded: Vec<(String, String)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["record"]["origin"]["role"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["record"]["target"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for e in &expected {
        assert!(
            recorded.contains(e),
            "refusal {e:?} not in the audit trail: {recorded:?}"
        );
    }
}

/// Tampering with a node's stored chain (its sled store edited while the
/// node was down) is found by `audit verify --live`, naming the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_stored_chain_fails_live_verification_at_the_first_bad_record() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob", "cai"], PW).await;
    let auditor = c.pki.operator("aud", Role::Auditor);
    let aud_dir = auditor.display().to_string();
    let admin_url = c.nodes[0].admin_url();
    let verify = || {
        enclavectl(&[
            "--cert-dir",
            &aud_dir,
            "--endpoint",
            &admin_url,
            "audit",
            "verify",
            "--live",
        ])
    };
    let (code, out, err) = verify();
    assert_eq!(code, 0, "{out}{err}");

    // Stop the node and change one byte of record 3 in its store.
    c.kill(0);
    let store = c.nodes[0].data_dir.join("store");
    {
        let db = sled::open(&store).expect("open store");
        let key = [b"a/audit/r/".as_slice(), &3u64.to_be_bytes()].concat();
        let mut changed = false;
        for name in db.tree_names() {
            if !name.starts_with(b"sm.") {
                continue;
            }
            let tree = db.open_tree(&name).expect("tree");
            if let Some(v) = tree.get(&key).expect("get") {
                let mut v = v.to_vec();
                let at = v
                    .windows(2)
                    .rposition(|w| w == b"ok")
                    .expect("an outcome to alter");
                v[at + 1] = b'K';
                tree.insert(&key, v).expect("insert");
                changed = true;
            }
        }
        assert!(changed, "record 3 not found in the store");
        db.flush().expect("flush");
    }
    c.restart(0);
    let (code, out, err) = enclave_tests::wait_for_async(
        "the restarted node to answer",
        std::time::Duration::from_secs(30),
        || async {
            let r = verify();
            (!r.2.contains("cannot connect") && !r.2.contains("no_leader")).then_some(r)
        },
    )
    .await;
    assert_eq!(code, 1, "tampering not detected: {out}{err}");
    assert!(err.contains("record 3"), "{err}");
}
