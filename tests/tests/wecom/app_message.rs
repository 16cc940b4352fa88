//! An app creates a user who logs in and gets the app message live on another node.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_created_user_logs_in_and_gets_the_app_message_live_on_another_node() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &[], PW).await;
    let app = create_app(&c, 0, "HR-sync", ALL, &[]).await;
    // The integration talks to node 1; the employee uses node 2.
    let w1 = wecom(&mut c, 1);
    let t = w1.token(&app).await;
    let v = w1
        .post(
            "user/create",
            &t,
            json!({"userid": "wangwu", "name": "王五", "department": [1], "position": "工程师"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    // The same member the native directory and enclavectl see.
    let (s, m) = admin(&c, 0, Method::GET, "/v1/directory/members/wangwu", None).await;
    assert_eq!((s, m["name"].as_str()), (200, Some("王五")), "{m}");
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/directory/members/wangwu/password",
        Some(json!({"password": PW})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let a2 = api(&mut c, 2);
    let tok = wait_for_async("the password on node 2", Duration::from_secs(10), || {
        let a2 = a2.clone();
        async move {
            let (s, v) = a2
                .call(
                    Method::POST,
                    "/v1/login",
                    None,
                    Some(json!({"userid": "wangwu", "password": PW})),
                )
                .await;
            (s == 200).then(|| v["access_token"].as_str().unwrap_or_default().to_string())
        }
    })
    .await;
    let mut stream = a2.stream(&tok, None).await;
    stream.until_synced().await;
    // A token from node 1 works on node 0 (any node checks what any issued).
    let w0 = wecom(&mut c, 0);
    let v = w0
        .post(
            "message/send",
            &t,
            json!({"touser": "wangwu|ghost", "msgtype": "text", "agentid": app.agentid,
                   "text": {"content": "请于周五前提交报销单"}, "safe": 1}),
        )
        .await;
    assert_eq!(
        (errcode(&v), v["invaliduser"].as_str()),
        (0, Some("ghost")),
        "{v}"
    );
    let got = stream.messages(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "no live message on node 2");
    let m = &got[0]["message"];
    assert_eq!(m["text"], "请于周五前提交报销单", "{m}");
    assert_eq!(m["sender"], format!("app:{}", app.agentid), "{m}");
    assert_eq!(m["safe"], true, "{m}");
    assert_eq!(got[0]["conversation"], format!("a{}.wangwu", app.agentid));

    // Scopes: an app without message:send gets 48002 and nothing is sent.
    let reader = create_app(&c, 0, "Reader", &["directory:read"], &[]).await;
    let rt = w1.token(&reader).await;
    let v = w1
        .post(
            "message/send",
            &rt,
            json!({"touser": "wangwu", "msgtype": "text", "agentid": reader.agentid, "text": {"content": "x"}}),
        )
        .await;
    assert_eq!(errcode(&v), 48002, "{v}");
    let v = w1
        .post("user/create", &rt, json!({"userid": "x1", "name": "X"}))
        .await;
    assert_eq!(errcode(&v), 48002, "{v}");
    assert_eq!(
        errcode(&w1.get("user/get", &rt, &[("userid", "wangwu")]).await),
        0
    );
    assert!(
        stream
            .messages(1, Duration::from_millis(500))
            .await
            .is_empty(),
        "a refused send reached the member"
    );

    // Disabled: its tokens stop working on every node — on the node that
    // took the change before it answered, on the others as they apply it
    // (within the replication delay, bounded here by 2 s).
    let (s, v) = admin(
        &c,
        2,
        Method::POST,
        &format!("/v1/apps/{}/disable", app.agentid),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let w2 = wecom(&mut c, 2);
    assert_eq!(
        errcode(&w2.get("user/get", &t, &[("userid", "wangwu")]).await),
        40014
    );
    for i in 0..3 {
        let w = wecom(&mut c, i);
        let t = t.clone();
        let v = wait_for_async("the disable on every node", Duration::from_secs(2), || {
            let w = w.clone();
            let t = t.clone();
            async move {
                let v = w.get("user/get", &t, &[("userid", "wangwu")]).await;
                (errcode(&v) != 0).then_some(v)
            }
        })
        .await;
        assert_eq!(errcode(&v), 40014, "node {i}: {v}");
        let v = w
            .get(
                "gettoken",
                "",
                &[("corpid", &app.corpid), ("corpsecret", &app.secret)],
            )
            .await;
        assert_eq!(errcode(&v), 40014, "node {i}: {v}");
    }
    // Enabled again, a rotated secret ends the old one and its tokens.
    admin(
        &c,
        0,
        Method::POST,
        &format!("/v1/apps/{}/enable", app.agentid),
        None,
    )
    .await;
    let (s, v) = admin(
        &c,
        0,
        Method::POST,
        &format!("/v1/apps/{}/rotate-secret", app.agentid),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let fresh = TestApp {
        secret: v["secret"].as_str().expect("secret").to_string(),
        ..app.clone()
    };
    assert_eq!(
        errcode(&w0.get("user/get", &t, &[("userid", "wangwu")]).await),
        40014
    );
    let v = w0
        .raw(
            Method::GET,
            &format!(
                "/cgi-bin/gettoken?corpid={}&corpsecret={}",
                app.corpid, app.secret
            ),
            None,
        )
        .await;
    assert_eq!(errcode(&v), 40001, "{v}");
    let t2 = w0.token(&fresh).await;
    assert_eq!(
        errcode(&w0.get("user/get", &t2, &[("userid", "wangwu")]).await),
        0
    );
    // Every call is on the audit trail as the app.
    let auditor = c.pki.operator("aud", enclave_certs::Role::Auditor);
    let client =
        enclave_ops::Client::with_cert_dir(&c.nodes[0].admin_url(), &auditor).expect("client");
    let (_, b) = client
        .request(
            Method::GET,
            &format!("/v1/audit?actor={}", app.agentid),
            None,
        )
        .await
        .expect("audit");
    let trail: Value = serde_json::from_slice(&b).expect("json");
    let actions: BTreeSet<&str> = trail["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["record"]["origin"]["kind"] == "app")
        .filter_map(|r| r["record"]["action"].as_str())
        .collect();
    for a in [
        "app.token",
        "directory.member.create",
        "app.message.send",
        "app.call",
    ] {
        assert!(
            actions.contains(a),
            "{a} not recorded as the app: {actions:?}"
        );
    }
}
