//! Urgent notices against real `enclave` processes: 300 recipients on
//! three nodes, the leader killed right after the first reminder round;
//! every reminder and escalation arrives exactly once, acknowledgements
//! made during the outage count once; bad input over HTTP changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enclave_certs::Role;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";
const N: usize = 300;

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

async fn state_hash(c: &TestCluster) -> Value {
    admin(c, 0, Method::GET, "/v1/cluster/state-hash", None)
        .await
        .1["sha256"]
        .clone()
}

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

fn uid(i: usize) -> String {
    format!("u{i:03}")
}

/// Root 1 with boss and the leaders l2, l3, l4; departments 2, 3, 4 led
/// by them; u000..u299 spread over 2, 3, 4. boss may send notices.
async fn org(c: &TestCluster) {
    let put = |id: u64, body: Value| async move {
        let (s, v) = admin(
            c,
            0,
            Method::PUT,
            &format!("/v1/directory/departments/{id}"),
            Some(body),
        )
        .await;
        assert_eq!(s, 200, "dept {id}: {v}");
    };
    put(1, json!({"name": "总部"})).await;
    for u in ["boss", "l2", "l3", "l4"] {
        let (s, v) = admin(
            c,
            0,
            Method::POST,
            "/v1/directory/members",
            Some(json!({"userid": u, "name": u, "departments": [1], "password": PW})),
        )
        .await;
        assert_eq!(s, 200, "{u}: {v}");
    }
    for d in 2..=4u64 {
        put(
            d,
            json!({"name": format!("D{d}"), "parent": 1, "leaders": [format!("l{d}")]}),
        )
        .await;
    }
    for i in 0..N {
        let (s, v) = admin(
            c,
            i % 3,
            Method::POST,
            "/v1/directory/members",
            Some(json!({"userid": uid(i), "name": uid(i), "departments": [2 + (i % 3) as u64], "password": PW})),
        )
        .await;
        assert_eq!(s, 200, "{}: {v}", uid(i));
    }
    let (s, v) = admin(
        c,
        0,
        Method::PUT,
        "/v1/directory/members/boss/permissions/notice:urgent",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// Log everyone in, each on node `i % 3`, a few at a time.
async fn logins(apis: &[Arc<Api>], users: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for chunk in users.chunks(6) {
        let mut set = tokio::task::JoinSet::new();
        for (j, u) in chunk.iter().enumerate() {
            let a = apis[(out.len() + j) % apis.len()].clone();
            let u = u.clone();
            set.spawn(async move {
                let t = a.login(&u, PW).await;
                (u, t)
            });
        }
        while let Some(r) = set.join_next().await {
            let (u, t) = r.expect("login task");
            out.insert(u, t);
        }
    }
    out
}

/// A call retried on other nodes while the cluster has no leader (or the
/// node is gone), until a definitive answer.
async fn until_answered(
    apis: &[Arc<Api>],
    start: usize,
    method: Method,
    path: &str,
    token: &str,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = start;
    loop {
        let a = &apis[i % apis.len()];
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            a.call(method.clone(), path, Some(token), None),
        )
        .await;
        match r {
            Ok((s, v)) if s != 503 && s != 0 && s < 500 => return (s, v),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{path}: no answer for 60 s");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every event of `token`'s user, through the sync API of `a`.
async fn all_events(a: &Api, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = String::from("0");
    loop {
        let (s, v) = a
            .call(
                Method::GET,
                &format!("/v1/sync?since={since}&limit=1000&timeout_ms=0"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        out.extend(v["events"].as_array().cloned().unwrap_or_default());
        since = v["next"].as_str().unwrap_or("0").to_string();
        if v["more"] != true {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_notice_to_300_recipients_over_3_nodes_survives_a_leader_kill() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    org(&c).await;
    let apis: Vec<Arc<Api>> = (0..3).map(|i| Arc::new(api(&mut c, i))).collect();
    let mut users: Vec<String> = (0..N).map(uid).collect();
    users.extend(["boss", "l2", "l3", "l4"].map(String::from));
    let started = Instant::now();
    let tokens = logins(&apis, &users).await;
    println!("{} logins in {:.1?}", tokens.len(), started.elapsed());
    let boss = tokens["boss"].clone();

    // Reminders every 10 s, three rounds, deadline at +45 s.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let (s, n) = apis[0]
        .call(
            Method::POST,
            "/v1/notices",
            Some(&boss),
            Some(json!({
                "to": {"departments": [2, 3, 4]},
                "title": "防汛紧急通知",
                "body": "请各单位立即确认收到并做好准备",
                "deadline_ms": now_ms + 45_000,
                "remind_every_ms": 10_000,
                "max_rounds": 3,
            })),
        )
        .await;
    assert_eq!(s, 200, "{n}");
    let id = n["id"].as_u64().expect("id");
    assert_eq!(n["counts"]["recipients"], N as u64, "{n}");
    // u000..u099 acknowledge at once.
    for i in 0..100 {
        let u = uid(i);
        let (s, v) = apis[i % 3]
            .call(
                Method::POST,
                &format!("/v1/notices/{id}/ack"),
                Some(&tokens[&u]),
                None,
            )
            .await;
        assert_eq!(s, 200, "{u}: {v}");
    }
    // Kill the leader as soon as the first round is done.
    let show = format!("/v1/notices/{id}");
    let t0 = Instant::now();
    loop {
        let (s, v) = apis[0].call(Method::GET, &show, Some(&boss), None).await;
        assert_eq!(s, 200, "{v}");
        if v["rounds_done"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "round 1 never came: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = c.leader().await;
    c.kill(leader);
    println!("killed node {leader} after round 1");
    // u100..u149 acknowledge during the outage, through the live nodes.
    for i in 100..150 {
        let u = uid(i);
        let (s, v) = until_answered(
            &apis,
            leader + 1,
            Method::POST,
            &format!("/v1/notices/{id}/ack"),
            &tokens[&u],
        )
        .await;
        assert_eq!(s, 200, "{u}: {v}");
    }
    // Wait for the deadline and the escalation.
    let live = (leader + 1) % 3;
    let t0 = Instant::now();
    let fin = loop {
        let (s, v) = until_answered(&apis, live, Method::GET, &show, &boss).await;
        assert_eq!(s, 200, "{v}");
        if v["phase"] == "done" {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the notice never finished: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("final: {fin}");
    let counts = &fin["counts"];
    assert_eq!(counts["recipients"], 300, "{fin}");
    assert_eq!(
        counts["acked"], 150,
        "acks during the outage count once: {fin}"
    );
    assert_eq!(counts["escalated"], 150, "{fin}");
    assert_eq!(counts["leaders"], 3, "{fin}");
    assert_eq!(counts["reminded"], 200, "{fin}");
    assert_eq!(fin["rounds_done"], 3, "{fin}");

    // What each receiver got, counted on their side.
    let a = &apis[live];
    let mut reminders_total = 0;
    for i in 0..N {
        let u = uid(i);
        let events = all_events(a, &tokens[&u]).await;
        let notice: Vec<&Value> = events.iter().filter(|e| e["type"] == "notice").collect();
        assert_eq!(notice.len(), 1, "{u} got the notice once");
        let mut rounds: BTreeMap<u64, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| e["type"] == "notice_reminder") {
            *rounds
                .entry(e["round"].as_u64().expect("round"))
                .or_default() += 1;
        }
        assert!(
            rounds.values().all(|n| *n == 1),
            "{u}: a round twice: {rounds:?}"
        );
        reminders_total += rounds.len();
        let (_, me) = a.call(Method::GET, &show, Some(&tokens[&u]), None).await;
        let acked = me["my"]["acked_ms"].as_u64();
        match i {
            0..100 => assert!(rounds.is_empty(), "{u} acked at once: {rounds:?}"),
            100..150 => {
                assert_eq!(rounds.get(&1), Some(&1), "{u}: round 1");
                // No reminder after their acknowledgement.
                let acked = acked.expect("acked");
                for e in events.iter().filter(|e| e["type"] == "notice_reminder") {
                    assert!(
                        e["time_ms"].as_u64().unwrap_or(0) <= acked,
                        "{u} reminded after acking: {e}"
                    );
                }
            }
            _ => assert_eq!(
                rounds.keys().copied().collect::<Vec<_>>(),
                vec![1, 2, 3],
                "{u}: every round once"
            ),
        }
    }
    assert_eq!(counts["reminders"], reminders_total as u64, "{fin}");
    // Each leader was told once, about their own 50.
    for d in 2..=4usize {
        let l = format!("l{d}");
        let events = all_events(a, &tokens[&l]).await;
        let told: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "notice_escalation")
            .collect();
        assert_eq!(told.len(), 1, "{l} told once: {told:?}");
        assert_eq!(told[0]["count"], 50, "{l}: {}", told[0]);
        let (s, v) = a
            .call(
                Method::GET,
                &format!("/v1/notices/{id}/escalation?limit=1000"),
                Some(&tokens[&l]),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let members: Vec<String> = v["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["userid"].as_str().unwrap_or_default().to_string())
            .collect();
        let want: Vec<String> = (150..N).filter(|i| 2 + i % 3 == d).map(uid).collect();
        assert_eq!(members, want, "{l}'s unacknowledged members");
    }
    // The sender's list of who has not acknowledged.
    let (s, v) = a
        .call(
            Method::GET,
            &format!("/v1/notices/{id}/recipients?state=unacked&limit=1000"),
            Some(&boss),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["recipients"].as_array().map(Vec::len), Some(150));
    // The audit trail holds one counted acknowledgement per member.
    let auditor = c.pki.operator("aud", Role::Auditor);
    let client =
        enclave_ops::Client::with_cert_dir(&c.nodes[live].admin_url(), &auditor).expect("client");
    let v: Value = client
        .get_json("/v1/audit?action=notice.ack&limit=10000")
        .await
        .expect("audit");
    let acks = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| {
            r["record"]["outcome"] == "ok" && r["record"]["target"] == format!("notice:{id}")
        })
        .count();
    assert_eq!(
        acks, 150,
        "one counted acknowledgement per member in the audit trail"
    );
    // The killed node comes back with the same state.
    c.restart(leader);
    let applied = c.wait_converged().await;
    let mut hashes = Vec::new();
    for i in 0..3 {
        let (s, v) = admin(&c, i, Method::GET, "/v1/cluster/state-hash", None).await;
        assert_eq!(s, 200, "{v}");
        hashes.push(v["sha256"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "at {applied}: {hashes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notice_input_gets_a_specific_error_and_changes_nothing() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    enclave_tests::api::seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let a = api(&mut c, 0);
    let ann = a.login("ann", PW).await;
    let bob = a.login("bob", PW).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let send = |body: Value| {
        let a = &a;
        let ann = ann.clone();
        async move {
            a.call(Method::POST, "/v1/notices", Some(&ann), Some(body))
                .await
        }
    };
    let good =
        json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": now + 600_000});
    // Without the permission.
    let (s, v) = send(good.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/directory/members/ann/permissions/notice:urgent",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let before = state_hash(&c).await;
    for (body, status, code) in [
        (
            json!({"to": {}, "title": "T", "body": "B", "deadline_ms": now + 600_000}),
            422,
            "no_recipients",
        ),
        (
            json!({"to": {"departments": [77]}, "title": "T", "body": "B", "deadline_ms": now + 600_000}),
            404,
            "not_found",
        ),
        (
            json!({"to": {"users": ["nobody"]}, "title": "T", "body": "B", "deadline_ms": now + 600_000}),
            404,
            "not_found",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": now - 1000}),
            422,
            "deadline_passed",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": now + 600_000, "remind_every_ms": 5}),
            400,
            "invalid_argument",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "", "body": "B", "deadline_ms": now + 600_000}),
            400,
            "invalid_argument",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": now + 600_000, "max_rounds": 99}),
            422,
            "limit_exceeded",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": "soon"}),
            400,
            "invalid_body",
        ),
        (
            json!({"to": {"users": ["bob"]}, "title": "T", "body": "B", "deadline_ms": now + 600_000, "color": "red"}),
            400,
            "invalid_body",
        ),
    ] {
        let (s, v) = send(body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    assert_eq!(
        before,
        state_hash(&c).await,
        "refused notices changed the state"
    );
    // A real one; then acting on it wrongly.
    let (s, n) = send(good).await;
    assert_eq!(s, 200, "{n}");
    let id = n["id"].as_u64().expect("id");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/ack"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "the sender is no recipient: {v}"
    );
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/withdraw"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (s, v) = a
        .call(
            Method::GET,
            &format!("/v1/notices/{id}/recipients"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = a
        .call(Method::GET, "/v1/notices/banana", Some(&bob), None)
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = a
        .call(Method::GET, "/v1/notices?box=outbox", Some(&bob), None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{v}"
    );
    // bob sees it, acknowledges twice (the second changes nothing), and
    // after the withdrawal can no longer.
    let (s, v) = a.call(Method::GET, "/v1/notices", Some(&bob), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["notices"][0]["id"], id, "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/ack"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((s, v["already"].as_bool()), (200, Some(false)), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/ack"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((s, v["already"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = a
        .call(Method::GET, &format!("/v1/notices/{id}"), Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["counts"]["acked"], 1, "{v}");
    assert_eq!(v["phase"], "done", "everyone acknowledged: {v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/withdraw"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id}/read"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (410, Some("withdrawn")),
        "{v}"
    );

    // Operators: the sysadmin and the auditor list and read notices; only
    // the sysadmin withdraws; the secadmin has no business here.
    let (s, n2) = send(json!({"to": {"users": ["bob"]}, "title": "第二条", "body": "B", "deadline_ms": now + 600_000})).await;
    assert_eq!(s, 200, "{n2}");
    let id2 = n2["id"].as_u64().expect("id");
    let url = c.nodes[0].admin_url();
    let sys = c.admin_dir.display().to_string();
    let ctl = |dir: &str, args: &[&str]| {
        let mut all = vec!["--cert-dir", dir, "--endpoint", url.as_str()];
        all.extend_from_slice(args);
        enclave_tests::proc::enclavectl(&all)
    };
    let (code, out, err) = ctl(&sys, &["notice", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("第二条") && out.contains("WITHDRAWN"), "{out}");
    let (code, out, err) = ctl(&sys, &["notice", "recipients", &id2.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("bob"), "{out}");
    let aud = c.pki.operator("aud", Role::Auditor).display().to_string();
    let (code, out, err) = ctl(&aud, &["notice", "show", &id2.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("recipients=1"), "{out}");
    let (code, _, err) = ctl(&aud, &["notice", "withdraw", &id2.to_string()]);
    assert_eq!(code, 1, "{err}");
    let sec = c.pki.operator("sec", Role::Secadmin).display().to_string();
    let (code, _, err) = ctl(&sec, &["notice", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("403") || err.contains("forbidden"), "{err}");
    let (code, out, err) = ctl(&sys, &["notice", "withdraw", &id2.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/notices/{id2}/ack"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (410, Some("withdrawn")),
        "{v}"
    );
}
