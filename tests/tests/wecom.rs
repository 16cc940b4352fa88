//! The WeCom-compatible API against real `enclave` processes: what an
//! integration sees across nodes and leader changes, scopes and disabled
//! apps, callbacks through a receiver outage and a leader kill, bulk jobs
//! across a leader kill, sign-in codes, and bad input of every family.
//! `wechatpy.rs` drives the same API with a real third-party SDK.

use std::collections::BTreeSet;
use std::time::Duration;

use enclave_ops::Client;
use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use enclave_tests::wecom::{Receiver, TestApp, Wecom, create_app};
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";
const ALL: &[&str] = &["directory:write", "message:send", "appchat", "oauth"];

fn wecom(c: &mut TestCluster, i: usize) -> Wecom {
    let url = c.endpoints(i).api_url();
    Wecom::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

async fn admin(
    c: &TestCluster,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, b) = c
        .admin(i)
        .request(method, path, body.map(|b| b.to_string().into_bytes()))
        .await
        .expect("admin request");
    (
        s.as_u16(),
        serde_json::from_slice(&b).unwrap_or(Value::Null),
    )
}

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(i64::MIN)
}

async fn state_hash(c: &TestCluster, i: usize) -> String {
    let (s, v) = admin(c, i, Method::GET, "/v1/cluster/state-hash", None).await;
    assert_eq!(s, 200, "{v}");
    v["sha256"].as_str().expect("hash").to_string()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_arrive_in_order_after_a_receiver_outage_and_a_leader_kill() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &[], PW).await;
    let app = create_app(&c, 0, "Listener", &["directory:read"], &[]).await;
    let tls = c.pki.node_at("receiver", "127.0.0.1");
    let mut rx = Receiver::start(&tls, &app.corpid).await;
    let (s, v) = admin(
        &c,
        1,
        Method::PUT,
        &format!("/v1/apps/{}/callback", app.agentid),
        Some(json!({"url": rx.url(), "token": rx.token, "aes_key": rx.aes_key})),
    )
    .await;
    assert_eq!(s, 200, "set-callback (URL handshake): {v}");
    // A URL that fails the handshake, or points outside the internal
    // networks, is refused.
    let (s, _) = admin(
        &c,
        1,
        Method::PUT,
        &format!("/v1/apps/{}/callback", app.agentid),
        Some(json!({"url": rx.url(), "token": "WrongToken", "aes_key": rx.aes_key})),
    )
    .await;
    assert_eq!(s, 502);
    let (s, v) = admin(
        &c,
        1,
        Method::PUT,
        &format!("/v1/apps/{}/callback", app.agentid),
        Some(json!({"url": "https://8.8.8.8/cb", "token": "t", "aes_key": rx.aes_key})),
    )
    .await;
    assert!(
        s == 502
            && v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("allowed network"),
        "{s} {v}"
    );

    let mk = |i: usize| json!({"userid": format!("u{i:03}"), "name": format!("User {i}"), "departments": [1]});
    let mut expected = Vec::new();
    for i in 0..5 {
        let (s, v) = admin(
            &c,
            i % 3,
            Method::POST,
            "/v1/directory/members",
            Some(mk(i)),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        expected.push(format!("u{i:03}"));
    }
    wait_for_async("the first events", Duration::from_secs(20), || {
        let n = rx.events.lock().map(|e| e.len()).unwrap_or(0);
        async move { (n >= 5).then_some(()) }
    })
    .await;
    // The receiver goes down for 20 s; changes keep coming, the leader is
    // killed in the middle.
    rx.down();
    for i in 5..10 {
        admin(&c, 0, Method::POST, "/v1/directory/members", Some(mk(i))).await;
        expected.push(format!("u{i:03}"));
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let leader = c.leader().await;
    c.kill(leader);
    let live = c.live()[0];
    for i in 10..15 {
        let (s, v) = admin(&c, live, Method::POST, "/v1/directory/members", Some(mk(i))).await;
        assert_eq!(s, 200, "{v}");
        expected.push(format!("u{i:03}"));
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    rx.up().await;
    let events = wait_for_async(
        "every event after the outage",
        Duration::from_secs(120),
        || {
            let ev = rx.events.lock().map(|e| e.clone()).unwrap_or_default();
            let n = ev
                .iter()
                .filter_map(|e| e.get("EnclaveEventId"))
                .collect::<BTreeSet<_>>()
                .len();
            async move { (n >= 15).then_some(ev) }
        },
    )
    .await;
    // In order, none lost; a repeat (the event in flight at the leader
    // change) is allowed and recognised by its id.
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut last_seq = 0u64;
    for e in &events {
        let id = e.get("EnclaveEventId").expect("event id").clone();
        let seq: u64 = id
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("seq");
        if seen.insert(id.clone()) {
            assert!(seq > last_seq, "event {id} after {last_seq}: out of order");
            last_seq = seq;
            assert_eq!(
                e.get("Event").map(String::as_str),
                Some("change_contact"),
                "{e:?}"
            );
            assert_eq!(
                e.get("ChangeType").map(String::as_str),
                Some("create_user"),
                "{e:?}"
            );
            assert_eq!(e.get("ToUserName"), Some(&app.corpid));
            order.push(e.get("UserID").cloned().unwrap_or_default());
        }
    }
    assert_eq!(order, expected);
    let repeats = events.len() - seen.len();
    assert!(repeats <= 1, "{repeats} events delivered twice");
    // Operators see the queue drain (the last acknowledgement follows the
    // receiver's answer) and the failures it had.
    let c = &c;
    let st = wait_for_async(
        "the queue to drain",
        Duration::from_secs(10),
        || async move {
            let (_, v) = admin(
                c,
                live,
                Method::GET,
                &format!("/v1/apps/{}", app.agentid),
                None,
            )
            .await;
            let st = v["callback_status"].clone();
            (st["queued"] == 0).then_some(st)
        },
    )
    .await;
    assert_eq!(st["delivered"], 15, "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "the outage is visible: {st}"
    );
}

/// A CSV in WeCom's user template, `n` rows, plus one bad row.
fn users_csv(n: usize) -> Vec<u8> {
    let mut s = String::from("姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序\n");
    for i in 0..n {
        s.push_str(&format!(
            "员工{i},e{i:06},1380000{i:04},e{i}@example.com,1,,1,0,{i}\n"
        ));
    }
    s.push_str("坏行,bad row!,,,x9,,,,\n");
    s.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replace_finishes_across_a_leader_kill_applying_each_row_once() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["old1", "old2"], PW).await;
    let app = create_app(&c, 0, "HR-sync", &["directory:write"], &[]).await;
    let w = wecom(&mut c, 1);
    let t = w.token(&app).await;
    let rows = 12_000;
    let media = w.upload(&t, "users.csv", &users_csv(rows)).await;
    let v = w
        .post(
            "batch/replaceuser",
            &t,
            json!({"media_id": media, "to_invite": false,
              "callback": {"url": "", "token": "", "encodingaeskey": ""}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let jobid = v["jobid"].as_str().expect("jobid").to_string();
    // Let it start, then kill the leader mid-job.
    wait_for_async("the job to start", Duration::from_secs(60), || {
        let w = w.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] != 1).then_some(())
        }
    })
    .await;
    let leader = c.leader().await;
    c.kill(leader);
    let live = c.live()[0];
    let w = wecom(&mut c, live);
    let t = w.token(&app).await;
    let done = wait_for_async("the job to finish", Duration::from_secs(240), || {
        let w = w.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] == 3).then_some(v)
        }
    })
    .await;
    assert_eq!(
        (done["type"].as_str(), done["total"].as_u64()),
        (Some("replace_user"), Some(rows as u64 + 1))
    );
    assert_eq!(done["percentage"], 100);
    let results = done["result"].as_array().expect("result");
    // Every row reported exactly once, in file order; the bad row fails.
    let row_results: Vec<&Value> = results
        .iter()
        .filter(|r| r["errmsg"] != "disabled: not in the file")
        .collect();
    assert_eq!(row_results.len(), rows + 1);
    let ids: Vec<&str> = row_results
        .iter()
        .filter_map(|r| r["userid"].as_str())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "a row was applied twice");
    let failed: Vec<&&Value> = row_results.iter().filter(|r| r["errcode"] != 0).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_ne!(failed[0]["errmsg"], "");
    // Members absent from the file are disabled, not deleted.
    for u in ["old1", "old2"] {
        let v = w.get("user/get", &t, &[("userid", u)]).await;
        assert_eq!((errcode(&v), &v["status"]), (0, &json!(2)), "{u}: {v}");
    }
    let v = w.get("user/get", &t, &[("userid", "e011999")]).await;
    assert_eq!(
        (errcode(&v), &v["status"], &v["order"]),
        (0, &json!(1), &json!([11999])),
        "{v}"
    );
    let v = w
        .get("user/simplelist", &t, &[("department_id", "1")])
        .await;
    assert_eq!(v["userlist"].as_array().map(Vec::len), Some(rows + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_codes_work_once_and_only_for_trusted_redirects() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann"], PW).await;
    let a = api(&mut c, 0);
    // The initial password must be changed before signing in anywhere.
    let tok = a.login("ann", PW).await;
    let new_pw = "a much better passphrase";
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/me/password",
            Some(&tok),
            Some(json!({"old_password": PW, "new_password": new_pw})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let app = create_app(&c, 0, "OA", &["oauth"], &["oa.example.internal"]).await;
    let w = wecom(&mut c, 0);
    let t = w.token(&app).await;
    let redirect = "https://oa.example.internal/sso/callback?x=1";
    let q = format!(
        "/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s%201&agentid={}",
        app.corpid,
        form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
        app.agentid
    );
    let page = w.raw(Method::GET, &q, None).await;
    let html = page.as_str().expect("html");
    assert!(html.contains("<form") && html.contains("OA"), "{html}");
    let field = |name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
        html[at..].split('"').next().expect("value").to_string()
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", &field("appid"))
        .append_pair("redirect_uri", &field("redirect_uri").replace("&amp;", "&"))
        .append_pair("state", &field("state"))
        .append_pair("agentid", &field("agentid"))
        .append_pair("form_token", &field("form_token"))
        .append_pair("userid", "ann")
        .append_pair("password", new_pw)
        .finish();
    let session =
        enclave_ops::Client::anonymous(&w.url, &c.pki.ca_dir().join("ca.pem")).expect("client");
    let (status, headers, _) = session
        .session()
        .request_with_headers(
            Method::POST,
            "/connect/oauth2/authorize",
            Some(form.into_bytes()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .expect("post form");
    assert_eq!(status.as_u16(), 303);
    let location = headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://oa.example.internal/sso/callback?x=1&code="),
        "{location}"
    );
    assert!(location.ends_with("&state=s+1"), "{location}");
    let cookie = headers
        .get("set-cookie")
        .and_then(|l| l.to_str().ok())
        .expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("code");
    let v = w.get("auth/getuserinfo", &t, &[("code", code)]).await;
    assert_eq!((errcode(&v), v["userid"].as_str()), (0, Some("ann")), "{v}");
    // Once only.
    assert_eq!(
        errcode(&w.get("auth/getuserinfo", &t, &[("code", code)]).await),
        40029
    );
    // An untrusted redirect gets an error page, no form.
    let evil = q.replace("oa.example.internal", "evil.example.com");
    let (status, _, body) = session
        .session()
        .request_with_headers(Method::GET, &evil, None, &[])
        .await
        .expect("get");
    assert_eq!(status.as_u16(), 400);
    assert!(!String::from_utf8_lossy(&body).contains("<form"));
    // A forged form (no valid form token) signs nobody in.
    let forged = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", &app.corpid)
        .append_pair("redirect_uri", redirect)
        .append_pair("agentid", &app.agentid.to_string())
        .append_pair("form_token", "00.1")
        .append_pair("userid", "ann")
        .append_pair("password", new_pw)
        .finish();
    let (status, headers, _) = session
        .session()
        .request_with_headers(
            Method::POST,
            "/connect/oauth2/authorize",
            Some(forged.into_bytes()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .expect("post");
    assert_eq!(status.as_u16(), 401);
    assert!(headers.get("location").is_none());
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_of_every_family_gets_a_wecom_error_and_changes_nothing() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let app = create_app(&c, 0, "HR-sync", ALL, &[]).await;
    let w = wecom(&mut c, 0);
    let t = w.token(&app).await;
    // Something to refer to.
    assert_eq!(
        errcode(
            &w.post(
                "department/create",
                &t,
                json!({"name": "Sales", "parentid": 1, "id": 2})
            )
            .await
        ),
        0
    );
    let v = w
        .post(
            "appchat/create",
            &t,
            json!({"chatid": "c1", "name": "P", "owner": "ann", "userlist": ["ann", "bob"]}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let before = state_hash(&c, 0).await;

    // Tokens.
    let v = w
        .raw(Method::GET, "/cgi-bin/user/get?userid=ann", None)
        .await;
    assert_eq!(errcode(&v), 41001, "{v}");
    for bad in ["garbage", "AQAPQkIAAAABAAAAAAA", &format!("{t}x")] {
        assert_eq!(
            errcode(&w.get("user/get", bad, &[("userid", "ann")]).await),
            40014,
            "{bad}"
        );
    }
    let v = w
        .raw(
            Method::GET,
            "/cgi-bin/gettoken?corpid=wwnope&corpsecret=x",
            None,
        )
        .await;
    assert_eq!(errcode(&v), 40013, "{v}");
    let v = w
        .raw(
            Method::GET,
            &format!("/cgi-bin/gettoken?corpid={}&corpsecret=wrong", app.corpid),
            None,
        )
        .await;
    assert_eq!(errcode(&v), 40001, "{v}");
    let v = w.raw(Method::GET, "/cgi-bin/gettoken", None).await;
    assert_eq!(errcode(&v), 41002, "{v}");

    // Bodies: malformed, empty, wrong types, unknown fields, too large.
    let raw = |api: &str, body: &[u8]| {
        let w = w.clone();
        let path = format!("/cgi-bin/{api}?access_token={t}");
        let body = body.to_vec();
        async move { w.raw(Method::POST, &path, Some(body)).await }
    };
    let valid: Vec<(&str, Value)> = vec![
        ("user/create", json!({"userid": "zed", "name": "Z"})),
        ("department/create", json!({"name": "Ops", "parentid": 1})),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
        ),
        (
            "appchat/send",
            json!({"chatid": "c1", "msgtype": "text", "text": {"content": "x"}}),
        ),
        ("batch/replaceuser", json!({"media_id": "m"})),
    ];
    for (api, body) in valid {
        assert_eq!(errcode(&raw(api, b"{ oops").await), 47001, "{api}");
        assert_eq!(errcode(&raw(api, b"").await), 44002, "{api}");
        let mut extra = body.clone();
        extra["colour"] = json!("red");
        let v = raw(api, extra.to_string().as_bytes()).await;
        assert_eq!(errcode(&v), 40058, "{api}: {v}");
        assert!(
            v["errmsg"].as_str().unwrap_or_default().contains("colour"),
            "{api}: {v}"
        );
    }
    let v = w
        .post("user/create", &t, json!({"userid": "zed", "name": 42}))
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    let huge = json!({"userid": "zed", "name": "x".repeat(2 << 20)})
        .to_string()
        .into_bytes();
    assert_eq!(errcode(&raw("user/create", &huge).await), 45002);

    // Directory.
    let cases: Vec<(&str, Value, i64)> = vec![
        (
            "user/create",
            json!({"userid": "ann", "name": "Dup"}),
            60102,
        ),
        (
            "user/create",
            json!({"userid": "bad id!", "name": "X"}),
            40003,
        ),
        (
            "user/create",
            json!({"userid": "zed", "name": "Z", "department": [99]}),
            60003,
        ),
        ("user/create", json!({"userid": "zed", "name": ""}), 60112),
        (
            "user/create",
            json!({"userid": "zed", "name": "Z", "department": [1, 2], "order": [1]}),
            40058,
        ),
        (
            "user/update",
            json!({"userid": "ghost", "name": "G"}),
            60111,
        ),
        (
            "user/batchdelete",
            json!({"useridlist": ["ann", "ghost"]}),
            60111,
        ),
        ("user/batchdelete", json!({"useridlist": []}), 40058),
        (
            "department/create",
            json!({"name": "Sales", "parentid": 1}),
            60008,
        ),
        (
            "department/create",
            json!({"name": "X", "parentid": 77}),
            60004,
        ),
        ("department/create", json!({"name": "a/b:c*"}), 60001),
        ("department/update", json!({"id": 77, "name": "X"}), 60003),
        ("department/update", json!({"id": 1, "parentid": 2}), 40058),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": app.agentid, "text": {"content": "  "}}),
            44004,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "image", "agentid": app.agentid, "image": {"media_id": "x"}}),
            40007,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "video", "agentid": app.agentid, "video": {"media_id": "x"}}),
            40008,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}),
            40056,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "text": {"content": "x"}}),
            41011,
        ),
        (
            "message/send",
            json!({"touser": "ghost", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
            81013,
        ),
        (
            "message/send",
            json!({"totag": "1", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
            81013,
        ),
        ("message/recall", json!({"msgid": "m999"}), 40058),
        (
            "appchat/create",
            json!({"chatid": "c1", "name": "P", "userlist": ["ann", "bob"]}),
            40058,
        ),
        (
            "appchat/create",
            json!({"name": "P", "userlist": ["ann"]}),
            40058,
        ),
        (
            "appchat/create",
            json!({"name": "P", "userlist": ["ann", "ghost"]}),
            60111,
        ),
        (
            "appchat/update",
            json!({"chatid": "nope", "name": "X"}),
            86003,
        ),
        (
            "appchat/send",
            json!({"chatid": "nope", "msgtype": "text", "text": {"content": "x"}}),
            86003,
        ),
        ("batch/syncuser", json!({"media_id": "nope"}), 40007),
    ];
    for (api, body, want) in cases {
        let v = w.post(api, &t, body.clone()).await;
        assert_eq!(errcode(&v), want, "{api} {body}: {v}");
    }
    type Get<'a> = (&'a str, Vec<(&'a str, &'a str)>, i64);
    let gets: Vec<Get> = vec![
        ("user/get", vec![("userid", "ghost")], 60111),
        ("user/get", vec![], 40058),
        ("user/delete", vec![("userid", "ghost")], 60111),
        ("department/delete", vec![("id", "1")], 60007),
        ("department/delete", vec![("id", "77")], 60003),
        ("department/get", vec![("id", "77")], 60003),
        ("user/list", vec![("department_id", "77")], 60003),
        ("appchat/get", vec![("chatid", "nope")], 86003),
        ("batch/getresult", vec![("jobid", "nope")], 40058),
        ("auth/getuserinfo", vec![("code", "nope")], 40029),
    ];
    for (api, q, want) in gets {
        let v = w.get(api, &t, &q).await;
        assert_eq!(errcode(&v), want, "{api} {q:?}: {v}");
    }
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused call changed the state"
    );
    // A department with members cannot be deleted.
    let v = w
        .post(
            "user/update",
            &t,
            json!({"userid": "bob", "department": [2]}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let mid = state_hash(&c, 0).await;
    assert_eq!(
        errcode(&w.get("department/delete", &t, &[("id", "2")]).await),
        60005
    );
    assert_eq!(state_hash(&c, 0).await, mid);
    // Uploads: wrong type, no file, a file that is not a user template.
    let v = w
        .raw(
            Method::POST,
            &format!("/cgi-bin/media/upload?access_token={t}&type=video"),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(errcode(&v), 40004, "{v}");
    let v = w
        .raw(
            Method::POST,
            &format!("/cgi-bin/media/upload?access_token={t}&type=image"),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    let media = w.upload(&t, "notes.csv", "foo,bar\n1,2\n".as_bytes()).await;
    let v = w
        .post("batch/replaceuser", &t, json!({"media_id": media}))
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    assert!(
        v["errmsg"].as_str().unwrap_or_default().contains("帐号"),
        "{v}"
    );
    let v = w.post("batch/syncuser", &t, json!({"media_id": media, "callback": {"url": "http://10.0.0.1/x", "token": "t", "encodingaeskey": "k"}})).await;
    assert_eq!(errcode(&v), 40058, "{v}");
    // Nothing the refusals touched changed (the upload itself is stored).
    let (_, v) = admin(&c, 0, Method::GET, "/v1/directory/members/ann", None).await;
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("User ann"), Some("active")),
        "{v}"
    );
    let v = w
        .get(
            "user/simplelist",
            &t,
            &[("department_id", "1"), ("fetch_child", "1")],
        )
        .await;
    let users: BTreeSet<&str> = v["userlist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["userid"].as_str())
        .collect();
    assert_eq!(users, BTreeSet::from(["ann", "bob"]));
    let v = w.get("department/list", &t, &[]).await;
    assert_eq!(v["department"].as_array().map(Vec::len), Some(2), "{v}");
    let v = w.get("appchat/get", &t, &[("chatid", "c1")]).await;
    assert_eq!(v["chat_info"]["userlist"], json!(["ann", "bob"]), "{v}");
}

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f,
    0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A raw request on the api port: (status, body).
async fn request(
    a: &Api,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let client = Client::anonymous(&a.url, &a.ca)
        .expect("client")
        .with_timeout(Duration::from_secs(60));
    let (s, b) = client
        .session()
        .request(method, path, body, headers)
        .await
        .expect("request");
    (s.as_u16(), b.to_vec())
}

/// `media/upload` as wechatpy sends it (multipart, field `media`).
async fn media_upload(a: &Api, t: &str, kind: &str, name: &str, bytes: &[u8]) -> Value {
    let boundary = "----enclave-media-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (s, b) = request(
        a,
        Method::POST,
        &format!("/cgi-bin/media/upload?access_token={t}&type={kind}"),
        Some(body),
        &[("content-type", ct.as_str())],
    )
    .await;
    assert_eq!(s, 200);
    serde_json::from_slice(&b).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_sends_an_uploaded_image_that_the_member_downloads_on_another_node() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let app = create_app(&c, 0, "Notify", &["message:send", "directory:write"], &[]).await;
    let w1 = wecom(&mut c, 1);
    let t = w1.token(&app).await;
    let a1 = api(&mut c, 1);
    let a2 = api(&mut c, 2);
    let ann = a2.login("ann", PW).await;
    let mut stream = a2.stream(&ann, None).await;
    stream.until_synced().await;

    // Upload on node 1, as WeCom answers it.
    let v = media_upload(&a1, &t, "image", "chart.png", PNG).await;
    assert_eq!((errcode(&v), v["type"].as_str()), (0, Some("image")), "{v}");
    let media = v["media_id"].as_str().expect("media_id").to_string();
    assert!(
        v["created_at"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "{v}"
    );
    // Not an image, too large: WeCom's codes, nothing recorded.
    let v = media_upload(&a1, &t, "image", "a.txt", b"hello").await;
    assert_eq!(errcode(&v), 40005, "{v}");
    let v = media_upload(&a1, &t, "voice", "a.amr", &vec![0u8; (2 << 20) + 1]).await;
    assert_eq!(errcode(&v), 40010, "{v}");
    let v = media_upload(&a1, &t, "voice", "a.mp3", b"ID3 not amr").await;
    assert_eq!(errcode(&v), 40005, "{v}");

    // Sent through node 0 as msgtype image; ann sees it live on node 2.
    let w0 = wecom(&mut c, 0);
    let v = w0
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "image", "agentid": app.agentid,
                   "image": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let got = stream.messages(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "no live message on node 2");
    let m = &got[0]["message"];
    assert_eq!(m["text"], "[图片]", "{m}");
    assert_eq!(m["file"]["id"], json!(media), "{m}");
    assert_eq!(
        (m["file"]["kind"].as_str(), m["file"]["mime"].as_str()),
        (Some("image"), Some("image/png")),
        "{m}"
    );
    // ann downloads it from node 2; bob may not.
    let auth = format!("Bearer {ann}");
    let (s, b) = request(
        &a2,
        Method::GET,
        &format!("/v1/files/{media}"),
        None,
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!((s, b.as_slice()), (200, PNG));
    let bob = a2.login("bob", PW).await;
    let auth = format!("Bearer {bob}");
    let (s, _) = request(
        &a2,
        Method::GET,
        &format!("/v1/files/{media}"),
        None,
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_ne!(s, 200);

    // media/get on node 2: the same bytes; unknown ids are 40007.
    let (s, b) = request(
        &a2,
        Method::GET,
        &format!("/cgi-bin/media/get?access_token={t}&media_id={media}"),
        None,
        &[],
    )
    .await;
    assert_eq!((s, b.as_slice()), (200, PNG));
    let v = w1
        .get(
            "media/get",
            &t,
            &[("media_id", "f0123456789abcdef0123456789abcdef")],
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");
    let v = w1.get("media/get", &t, &[]).await;
    assert_eq!(errcode(&v), 41006, "{v}");
    // Another app's media are not this app's.
    let other = create_app(&c, 0, "Other", &["message:send"], &[]).await;
    let ot = w1.token(&other).await;
    let v = w1.get("media/get", &ot, &[("media_id", &media)]).await;
    assert_eq!(errcode(&v), 40007, "{v}");
    let v = w1
        .post(
            "message/send",
            &ot,
            json!({"touser": "ann", "msgtype": "image", "agentid": other.agentid,
                   "image": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");
    // An image is not sent as a voice note.
    let v = w1
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "voice", "agentid": app.agentid,
                   "voice": {"media_id": media}}),
        )
        .await;
    assert_eq!(errcode(&v), 40007, "{v}");

    // A file, to an app chat: "[文件] <name>".
    let doc = b"%PDF-1.4\n% quarterly report\n".to_vec();
    let v = media_upload(&a1, &t, "file", "季度报告.pdf", &doc).await;
    assert_eq!(errcode(&v), 0, "{v}");
    let fid = v["media_id"].as_str().expect("media_id").to_string();
    let v = w1
        .post(
            "message/send",
            &t,
            json!({"touser": "ann", "msgtype": "file", "agentid": app.agentid,
                   "file": {"media_id": fid}}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let got = stream.messages(1, Duration::from_secs(20)).await;
    let m = &got[0]["message"];
    assert_eq!(m["text"], "[文件] 季度报告.pdf", "{m}");
    assert_eq!(m["file"]["id"], json!(fid), "{m}");

    // A bulk job from a CSV uploaded with media/upload.
    let csv = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序\n新人,newbie,13800000001,n@example.com,1,,1,0,1\n";
    let v = media_upload(&a1, &t, "file", "users.csv", csv.as_bytes()).await;
    assert_eq!(errcode(&v), 0, "{v}");
    let v = w1
        .post("batch/syncuser", &t, json!({"media_id": v["media_id"]}))
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let jobid = v["jobid"].as_str().expect("jobid").to_string();
    let done = wait_for_async("the job to finish", Duration::from_secs(60), || {
        let w = w1.clone();
        let (t, j) = (t.clone(), jobid.clone());
        async move {
            let v = w.get("batch/getresult", &t, &[("jobid", &j)]).await;
            (v["status"] == 3).then_some(v)
        }
    })
    .await;
    assert_eq!(done["total"], 1, "{done}");
    let v = w0.get("user/get", &t, &[("userid", "newbie")]).await;
    assert_eq!((errcode(&v), v["name"].as_str()), (0, Some("新人")), "{v}");
}
