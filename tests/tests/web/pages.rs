//! The pages themselves, without a browser: a strict content security
//! policy, JSON on API paths, and cross-node calls only from the
//! cluster's own origins.

use super::*;

/// Not a browser test: the pages and assets carry the protections a
/// browser enforces, on both ports, and JSON routes are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_strict_policy_and_api_paths_stay_json() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    let url = c.endpoints(0).api_url();
    let ca = c.pki.ca_dir().join("ca.pem");
    let api = Api::new(&url, &ca);
    let client = enclave_ops::Client::anonymous(&url, &ca).expect("client");
    let (s, headers, body) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[])
        .await
        .expect("GET /");
    assert_eq!(s.as_u16(), 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("<html"), "{text}");
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    for part in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(headers.get("strict-transport-security").is_some());
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    // Every script the page loads is served, as JavaScript, with the
    // same protections.
    for src in text.split("src=\"").skip(1) {
        let path = src.split('"').next().unwrap_or_default();
        if !path.starts_with("/assets/") {
            continue;
        }
        let (s, h, _) = client
            .session()
            .request_with_headers(Method::GET, path, None, &[])
            .await
            .expect("asset");
        assert_eq!(s.as_u16(), 200, "{path}");
        assert!(
            h.get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/javascript")),
            "{path}: {h:?}"
        );
        assert!(h.get("content-security-policy").is_some());
    }
    // Browsers that take gzip get the build's precompressed copy; others
    // (no Accept-Encoding, or gzip;q=0) the file itself; `.gz` names are
    // not addressable.
    let (s, h, gz) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[("accept-encoding", "gzip, br")])
        .await
        .expect("GET / gzip");
    assert_eq!(s.as_u16(), 200);
    assert_eq!(
        h.get("content-encoding").and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(gz.len() < body.len(), "{} >= {}", gz.len(), body.len());
    let (_, h, plain) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[("accept-encoding", "gzip;q=0")])
        .await
        .expect("GET / no gzip");
    assert!(h.get("content-encoding").is_none(), "{h:?}");
    assert_eq!(plain, body);
    let first_js = text
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    let (s, _, _) = client
        .session()
        .request_with_headers(Method::GET, &format!("{first_js}.gz"), None, &[])
        .await
        .expect("GET .gz");
    assert_eq!(s.as_u16(), 404);
    // API clients see no change: unknown /v1 paths and missing assets are
    // the JSON error.
    let (s, v) = api.call(Method::GET, "/v1/no-such-thing", None, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let (s, v) = api
        .call(Method::GET, "/assets/../../etc/passwd", None, None)
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = api.call(Method::GET, "/assets/nope.js", None, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    // A known path with the wrong method: the JSON error, with Allow.
    let (s, h, b) = client
        .session()
        .request_with_headers(Method::DELETE, "/v1/login", None, &[])
        .await
        .expect("DELETE /v1/login");
    assert_eq!(s.as_u16(), 405);
    assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let v: Value = serde_json::from_slice(&b).expect("JSON 405");
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    // The node list is for members only.
    let (s, _) = api.call(Method::GET, "/v1/nodes", None, None).await;
    assert_eq!(s, 401);
    // The console is on the admin port, for operators; a monitor
    // certificate is refused.
    let (s, b) = c
        .admin(0)
        .request(Method::GET, "/", None)
        .await
        .expect("console");
    assert_eq!(s.as_u16(), 200, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("<html"));
    let monitor = c.pki.operator("mon", Role::Monitor);
    let m = enclave_ops::Client::with_cert_dir(&c.nodes[0].admin_url(), &monitor).expect("client");
    let (s, _) = m.request(Method::GET, "/", None).await.expect("console");
    assert_eq!(s.as_u16(), 403);
    // The operator's browser attaches the certificate to every request to
    // the admin port, whichever page asks: requests made by another site's
    // page (Fetch Metadata), and writes from another origin, are refused;
    // tools (no such headers) and the console's own calls are not.
    let admin_url = c.nodes[0].admin_url();
    let own_origin = admin_url.trim_end_matches('/').to_string();
    let sys = c.pki.operator("csrf-sys", Role::Sysadmin);
    let s_client = enclave_ops::Client::with_cert_dir(&admin_url, &sys).expect("client");
    let mut session = s_client.session();
    async fn ask(
        session: &mut enclave_ops::client::Session,
        method: Method,
        path: &str,
        headers: Vec<(&str, String)>,
    ) -> u16 {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = (method == Method::POST).then(|| b"{}".to_vec());
        session
            .request_with_headers(method, path, body, &h)
            .await
            .expect("request")
            .0
            .as_u16()
    }
    let cross = |site: &str| {
        vec![
            ("sec-fetch-site", site.to_string()),
            ("sec-fetch-mode", "cors".to_string()),
        ]
    };
    assert_eq!(
        ask(
            &mut session,
            Method::POST,
            "/v1/audit/checkpoint",
            cross("cross-site")
        )
        .await,
        403
    );
    // The api port is the same site (same host, other port): refused too.
    assert_eq!(
        ask(&mut session, Method::GET, "/v1/backup", cross("same-site")).await,
        403
    );
    let evil = vec![("origin", "https://evil.example".to_string())];
    assert_eq!(
        ask(
            &mut session,
            Method::POST,
            "/v1/cluster/transfer-leader",
            evil
        )
        .await,
        403
    );
    // A link from elsewhere may still open the console page itself.
    let nav = vec![
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-mode", "navigate".to_string()),
    ];
    assert_eq!(ask(&mut session, Method::GET, "/", nav).await, 200);
    // The console's own calls: same origin.
    let own = vec![
        ("sec-fetch-site", "same-origin".to_string()),
        ("origin", own_origin.clone()),
    ];
    assert_eq!(
        ask(&mut session, Method::GET, "/v1/policy", own.clone()).await,
        200
    );
    // (transfer to a node that does not exist: refused by the route, not the guard)
    let s = ask(
        &mut session,
        Method::POST,
        "/v1/cluster/transfer-leader",
        own,
    )
    .await;
    assert_ne!(s, 403, "a same-origin write reaches its route");
}

/// CORS: the cluster's own api origins may call, others get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_clusters_own_origins_may_call_across_nodes() {
    let mut c = TestCluster::start(2, NodeSpec::default()).await;
    let a = c.endpoints(0).api_url();
    let b = c.endpoints(1).api_url();
    let ca = c.pki.ca_dir().join("ca.pem");
    let client = enclave_ops::Client::anonymous(&a, &ca).expect("client");
    let ask = |origin: String| {
        let client = &client;
        async move {
            client
                .session()
                .request_with_headers(
                    Method::OPTIONS,
                    "/v1/login",
                    None,
                    &[
                        ("origin", origin.as_str()),
                        ("access-control-request-method", "POST"),
                        ("access-control-request-headers", "content-type"),
                    ],
                )
                .await
                .expect("preflight")
        }
    };
    let (s, h, _) = ask(b.clone()).await;
    assert_eq!(s.as_u16(), 204);
    assert_eq!(
        h.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(b.as_str())
    );
    let (_, h, _) = ask("https://evil.example:8443".into()).await;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let (_, h, _) = ask(b.replacen("https://", "http://", 1)).await;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    // And the list of nodes a client fails over to names both.
    let api = Api::new(&a, &ca);
    seed(&c).await;
    let token = api.login("zhangsan", START_PW).await;
    let (s, v) = api.call(Method::GET, "/v1/nodes", Some(&token), None).await;
    assert_eq!(s, 200, "{v}");
    let urls: Vec<&str> = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["api_url"].as_str())
        .collect();
    assert_eq!(urls.first(), Some(&a.as_str()), "{v}");
    assert!(urls.contains(&b.as_str()), "{v}");
}

async fn seed(c: &TestCluster) {
    let admin = c.admin(0);
    let _ = admin
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(json!({ "name": "总部" }).to_string().into_bytes()),
        )
        .await
        .expect("dept");
    let body =
        json!({ "userid": "zhangsan", "name": "张三", "departments": [1], "password": START_PW });
    let (s, _) = admin
        .request(
            Method::POST,
            "/v1/directory/members",
            Some(body.to_string().into_bytes()),
        )
        .await
        .expect("member");
    assert!(s.is_success());
}
