//! Announcements and approvals against real `enclave` processes: read
//! statistics exact after members on different nodes read (late joiners
//! apart), CSV exports; a two-level approval chain from the directory
//! filed and decided on different nodes, a leader change mid-flow, the
//! specific refusals; templates and exports through `enclavectl`; the
//! WeCom `oa/*` endpoints over the same approvals.

use std::collections::BTreeSet;

use enclave_certs::Role;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wecom::{Wecom, create_app};
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

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
        serde_json::from_slice(&b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned())),
    )
}

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

async fn member(c: &TestCluster, u: &str, dept: u64) {
    let (s, v) = admin(
        c,
        0,
        Method::POST,
        "/v1/directory/members",
        Some(json!({"userid": u, "name": format!("N-{u}"), "departments": [dept], "password": PW})),
    )
    .await;
    assert_eq!(s, 200, "{u}: {v}");
}

async fn dept(c: &TestCluster, id: u64, body: Value) {
    let (s, v) = admin(
        c,
        0,
        Method::PUT,
        &format!("/v1/directory/departments/{id}"),
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "dept {id}: {v}");
}

/// 1 总部 (led by ceo) > 2 研发 (led by cto) > 3 平台 (no leader).
/// pub publishes; dev1, dev2 in 3; ops in 2; fin approves expenses.
async fn org(c: &TestCluster) {
    dept(c, 1, json!({"name": "总部"})).await;
    for u in ["ceo", "pub", "fin"] {
        member(c, u, 1).await;
    }
    dept(c, 2, json!({"name": "研发", "parent": 1})).await;
    dept(c, 3, json!({"name": "平台", "parent": 2})).await;
    for (u, d) in [("cto", 2), ("ops", 2), ("dev1", 3), ("dev2", 3)] {
        member(c, u, d).await;
    }
    dept(c, 1, json!({"name": "总部", "leaders": ["ceo"]})).await;
    dept(
        c,
        2,
        json!({"name": "研发", "parent": 1, "leaders": ["cto"]}),
    )
    .await;
    let (s, v) = admin(
        c,
        0,
        Method::PUT,
        "/v1/directory/members/pub/permissions/announcement:publish",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// An access token, once the node has applied the app's registration.
async fn token(w: &Wecom, app: &enclave_tests::wecom::TestApp) -> String {
    enclave_tests::wait_for_async(
        "the app on the node",
        std::time::Duration::from_secs(5),
        || async {
            let v = w
                .get(
                    "gettoken",
                    "",
                    &[("corpid", &app.corpid), ("corpsecret", &app.secret)],
                )
                .await;
            v["access_token"].as_str().map(str::to_string)
        },
    )
    .await
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_count_readers_on_every_node_and_approvals_walk_the_directory() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    org(&c).await;
    let apis: Vec<Api> = (0..3).map(|i| api(&mut c, i)).collect();
    let mut tok = std::collections::BTreeMap::new();
    for (i, u) in ["pub", "ceo", "cto", "ops", "dev1", "dev2", "fin"]
        .iter()
        .enumerate()
    {
        tok.insert(*u, apis[i % 3].login(u, PW).await);
    }

    // ---- Announcements: read on different nodes, counted exactly.
    let body = json!([
        {"paragraph": [{"text": "元旦放假安排："}, {"text": "1月1日至3日", "bold": true}]},
        {"bullets": [[{"text": "值班表见附件"}], [{"text": "详情", "link": "https://oa.example.internal/n/1"}]]}
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let (s, a) = apis[0]
        .call(
            Method::POST,
            "/v1/announcements",
            Some(&tok["pub"]),
            Some(
                json!({"to": {"all": true}, "title": "元旦放假通知", "body": body,
                "attachment": {"name": "值班表.xlsx", "url": "https://oa.example.internal/f/9"},
                "pinned_until_ms": now + 3_600_000}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let id = a["id"].as_u64().expect("id");
    assert_eq!(a["counts"]["audience"], 6, "{a}");
    // Readers on nodes 1, 2, 0; one reads twice.
    for (i, u) in ["ceo", "dev1", "ops", "dev1"].iter().enumerate() {
        let (s, v) = apis[(i + 1) % 3]
            .call(
                Method::POST,
                &format!("/v1/announcements/{id}/read"),
                Some(&tok[u]),
                None,
            )
            .await;
        assert_eq!(s, 200, "{u}: {v}");
    }
    // A member who joins later is not unread; reading counts apart.
    member(&c, "newbie", 3).await;
    // Created through node 0: node 2 may not have applied it yet.
    let newbie = enclave_tests::wait_for_async(
        "newbie on node 2",
        std::time::Duration::from_secs(5),
        || async {
            let (s, v) = apis[2]
                .call(
                    Method::POST,
                    "/v1/login",
                    None,
                    Some(json!({"userid": "newbie", "password": PW})),
                )
                .await;
            (s == 200).then(|| v["access_token"].as_str().map(str::to_string))?
        },
    )
    .await;
    let (s, l) = apis[2]
        .call(Method::GET, "/v1/announcements", Some(&newbie), None)
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["announcements"][0]["late"], true, "{l}");
    let (s, v) = apis[1]
        .call(
            Method::POST,
            &format!("/v1/announcements/{id}/read"),
            Some(&newbie),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The sender sees exact statistics on any node once applied there.
    let stats = enclave_tests::wait_for_async(
        "the reads on node 2",
        std::time::Duration::from_secs(5),
        || async {
            let (_, v) = apis[2]
                .call(
                    Method::GET,
                    &format!("/v1/announcements/{id}"),
                    Some(&tok["pub"]),
                    None,
                )
                .await;
            (v["counts"]["late_read"] == 1).then_some(v)
        },
    )
    .await;
    assert_eq!(
        stats["counts"],
        json!({"audience": 6, "read": 3, "unread": 3, "late_read": 1})
    );
    let (s, v) = apis[2]
        .call(
            Method::GET,
            &format!("/v1/announcements/{id}/readers?state=unread"),
            Some(&tok["pub"]),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let unread: BTreeSet<&str> = v["readers"]
        .as_array()
        .expect("readers")
        .iter()
        .filter_map(|r| r["userid"].as_str())
        .collect();
    assert_eq!(unread, BTreeSet::from(["cto", "dev2", "fin"]));
    // Only the sender sees the readers.
    let (s, _) = apis[0]
        .call(
            Method::GET,
            &format!("/v1/announcements/{id}/readers"),
            Some(&tok["ops"]),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // CSV: the sender's, and the sysadmin's through enclavectl.
    let (s, csv) = apis[1]
        .raw(
            Method::GET,
            &format!("/v1/announcements/{id}/readers.csv"),
            Some(&tok["pub"]),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200, "{csv}");
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert!(
        csv.contains("userid,name,departments,state,read_at"),
        "{csv}"
    );
    assert!(csv.contains("dev2,N-dev2,3,unread,"), "{csv}");
    assert!(csv.contains("newbie,N-newbie,3,late,"), "{csv}");
    let url = c.nodes[1].admin_url();
    let sys = c.admin_dir.display().to_string();
    let ctl = |dir: &str, args: &[&str]| {
        let mut all = vec!["--cert-dir", dir, "--endpoint", url.as_str()];
        all.extend_from_slice(args);
        enclave_tests::proc::enclavectl(&all)
    };
    let (code_, out, err) = ctl(&sys, &["announcement", "export", &id.to_string()]);
    assert_eq!(code_, 0, "{err}");
    assert!(out.contains("ceo,N-ceo,1,read,"), "{out}");
    let (code_, out, err) = ctl(&sys, &["announcement", "list"]);
    assert_eq!(code_, 0, "{err}");
    assert!(out.contains("audience=6 read=3 unread=3 late=1"), "{out}");
    // Bad input changes nothing: no permission, a script link, people.
    let hash = admin(&c, 0, Method::GET, "/v1/cluster/state-hash", None)
        .await
        .1["sha256"]
        .clone();
    for (who, req, want) in [
        (
            "ops",
            json!({"to": {"all": true}, "title": "x", "body": body}),
            (403, "forbidden"),
        ),
        (
            "pub",
            json!({"to": {"all": true}, "title": "x", "body": [{"paragraph": [{"text": "x", "link": "javascript:alert(1)"}]}]}),
            (400, "invalid_argument"),
        ),
        (
            "pub",
            json!({"to": {"departments": [99]}, "title": "x", "body": body}),
            (404, "not_found"),
        ),
        (
            "pub",
            json!({"to": {}, "title": "x", "body": body}),
            (422, "no_recipients"),
        ),
        (
            "pub",
            json!({"to": {"all": true}, "title": "x", "body": [{"heading": "x"}]}),
            (400, "invalid_body"),
        ),
    ] {
        let (s, v) = apis[0]
            .call(
                Method::POST,
                "/v1/announcements",
                Some(&tok[who]),
                Some(req),
            )
            .await;
        assert_eq!((s, code(&v).unwrap_or_default()), want, "{v}");
    }
    assert_eq!(
        admin(&c, 0, Method::GET, "/v1/cluster/state-hash", None)
            .await
            .1["sha256"],
        hash,
        "a refused announcement changed the state"
    );

    // ---- Approvals: template through enclavectl.
    let dir = tempfile::tempdir().expect("tmp");
    let tpl = dir.path().join("expense.json");
    std::fs::write(
        &tpl,
        json!({"name": "报销", "fields": [
            {"key": "amount", "label": "金额", "type": "money", "required": true},
            {"key": "reason", "label": "事由", "type": "text", "required": true},
            {"key": "dates", "label": "日期", "type": "date_range"}],
          "flow": [{"leaders": 2}, {"user": "fin"}], "cc": ["pub"]})
        .to_string(),
    )
    .expect("write");
    let (code_, out, err) = ctl(
        &sys,
        &[
            "approval",
            "template",
            "put",
            "expense",
            &tpl.display().to_string(),
        ],
    );
    assert_eq!(code_, 0, "{out}{err}");
    assert!(out.contains("expense") && out.contains("v1"), "{out}");
    // A template with an unknown field type: refused, nothing stored.
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/approvals/templates/bad",
        Some(json!({"name": "坏", "fields": [{"key": "f", "label": "F", "type": "blob"}], "flow": [{"leaders": 1}]})),
    )
    .await;
    assert_eq!((s, code(&v)), (400, Some("invalid_argument")), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("blob"),
        "{v}"
    );
    let (_, v) = admin(&c, 0, Method::GET, "/v1/approvals/templates", None).await;
    assert_eq!(v["templates"].as_array().map(Vec::len), Some(1), "{v}");

    // A money field with text: a specific error naming the field.
    let file = |i: usize, who: &'static str, amount: Value| {
        let a = &apis[i];
        let t = tok[who].clone();
        async move {
            a.call(
                Method::POST,
                "/v1/approvals",
                Some(&t),
                Some(
                    json!({"template": "expense", "values": {"amount": amount, "reason": "出差",
                    "dates": {"start": "2026-12-01", "end": "2026-12-03"}}}),
                ),
            )
            .await
        }
    };
    let (s, v) = file(0, "dev1", json!("一千元")).await;
    assert_eq!((s, code(&v)), (400, Some("invalid_argument")), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("amount"),
        "{v}"
    );
    // Filed on node 0: dev1 (3, no leader) goes to cto (2), then ceo (1),
    // then fin.
    let (s, r) = file(0, "dev1", json!("1234.5")).await;
    assert_eq!(s, 200, "{r}");
    let rid = r["id"].as_u64().expect("id");
    assert_eq!(r["approvers"][0]["userid"], "cto", "{r}");
    assert_eq!(r["values"][0]["value"], "1234.50", "{r}");
    // cto approves on node 1; approving twice is refused specifically.
    let act = |i: usize, who: &'static str, what: &'static str, body: Value| {
        let a = &apis[i];
        let t = tok[who].clone();
        async move {
            a.call(
                Method::POST,
                &format!("/v1/approvals/{rid}/{what}"),
                Some(&t),
                Some(body),
            )
            .await
        }
    };
    let (s, v) = act(1, "cto", "approve", json!({"step": 1, "comment": "同意"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["approvers"][0]["userid"], "ceo", "{v}");
    let (s, v) = act(2, "cto", "approve", json!({"step": 1})).await;
    assert_eq!((s, code(&v)), (409, Some("already_decided")), "{v}");
    let (s, v) = act(2, "ops", "approve", json!({"step": 2})).await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    // The leader of department 1 changes mid-flow: the step goes to the
    // new leader (fin), and ceo no longer decides it.
    dept(&c, 1, json!({"name": "总部", "leaders": ["fin"]})).await;
    let (s, v) = act(2, "ceo", "approve", json!({"step": 2})).await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    let (s, v) = act(2, "fin", "approve", json!({"step": 2})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = act(0, "fin", "approve", json!({"step": 3})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    let actions: Vec<&str> = v["trail"]
        .as_array()
        .expect("trail")
        .iter()
        .filter_map(|t| t["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "submitted",
            "assigned",
            "approved",
            "assigned",
            "reassigned",
            "approved",
            "assigned",
            "approved"
        ],
        "{v}"
    );
    // A second request: rejected at level 1 ends it; then withdrawn one.
    let (_, r2) = file(1, "dev2", json!(88)).await;
    let rid2 = r2["id"].as_u64().expect("id");
    let (s, v) = apis[2]
        .call(
            Method::POST,
            &format!("/v1/approvals/{rid2}/reject"),
            Some(&tok["cto"]),
            Some(json!({"step": 1, "reason": "超预算"})),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("rejected")), "{v}");
    let (_, r3) = file(2, "dev2", json!("10")).await;
    let rid3 = r3["id"].as_u64().expect("id");
    let (s, v) = apis[0]
        .call(
            Method::POST,
            &format!("/v1/approvals/{rid3}/withdraw"),
            Some(&tok["dev2"]),
            None,
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("withdrawn")), "{v}");
    let (s, v) = apis[1]
        .call(
            Method::POST,
            &format!("/v1/approvals/{rid3}/approve"),
            Some(&tok["cto"]),
            Some(json!({"step": 1})),
        )
        .await;
    assert_eq!((s, code(&v)), (410, Some("withdrawn")), "{v}");
    // Lists on other nodes (once they applied the last change).
    let cto = tok["cto"].clone();
    let done = enclave_tests::wait_for_async(
        "cto's done list on node 1",
        std::time::Duration::from_secs(5),
        || async {
            let (_, v) = apis[1]
                .call(Method::GET, "/v1/approvals?box=done", Some(&cto), None)
                .await;
            let ids: BTreeSet<u64> = v["approvals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_u64())
                .collect();
            (ids.len() == 2).then_some(ids)
        },
    )
    .await;
    assert_eq!(done, BTreeSet::from([rid, rid2]));
    let publ = tok["pub"].clone();
    enclave_tests::wait_for_async(
        "pub's CC list on node 2",
        std::time::Duration::from_secs(5),
        || async {
            let (_, v) = apis[2]
                .call(Method::GET, "/v1/approvals?box=cc", Some(&publ), None)
                .await;
            (v["approvals"].as_array().map(Vec::len) == Some(3)
                && v["approvals"][0]["status"] == "withdrawn")
                .then_some(())
        },
    )
    .await;
    // The sysadmin exports finished approvals; the auditor may not.
    let (code_, out, err) = ctl(&sys, &["approval", "export"]);
    assert_eq!(code_, 0, "{err}");
    assert!(out.lines().count() == 4, "{out}");
    assert!(
        out.contains(",approved,") && out.contains(",rejected,") && out.contains("超预算"),
        "{out}"
    );
    let aud = c.pki.operator("aud", Role::Auditor).display().to_string();
    let (code_, _, err) = ctl(&aud, &["approval", "export"]);
    assert_eq!(code_, 1, "{err}");
    let (code_, out, err) = ctl(&aud, &["approval", "show", &rid.to_string()]);
    assert_eq!(code_, 0, "{err}");
    assert!(out.contains("reassigned"), "{out}");

    // ---- WeCom oa/*: an OA system files and reads the same approvals.
    let app = create_app(&c, 0, "OA", &["approval"], &[]).await;
    // Apps are registered through node 0: ask it for tokens and file
    // there; read back through node 1.
    let w0 = Wecom::new(&c.endpoints(0).api_url(), &c.pki.ca_dir().join("ca.pem"));
    let w = Wecom::new(&c.endpoints(1).api_url(), &c.pki.ca_dir().join("ca.pem"));
    let t = token(&w0, &app).await;
    let apply = |amount: &str| {
        json!({
            "creator_userid": "ops", "template_id": "expense", "use_template_approver": 1,
            "apply_data": {"contents": [
                {"control": "Money", "id": "amount", "title": [{"text": "金额", "lang": "zh_CN"}], "value": {"new_money": amount}},
                {"control": "Text", "id": "reason", "value": {"text": "采购"}},
                {"control": "DateRange", "id": "dates", "value": {"date_range": {"type": "day", "new_begin": 1796140800, "new_end": 1796227200}}}]}
        })
    };
    let v = w0.post("oa/applyevent", &t, apply("abc")).await;
    assert_eq!(v["errcode"], 40058, "{v}");
    assert!(
        v["errmsg"].as_str().unwrap_or_default().contains("amount"),
        "{v}"
    );
    let v = w0.post("oa/applyevent", &t, apply("300.00")).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let sp_no = v["sp_no"].as_str().expect("sp_no").to_string();
    // ops (2) goes to cto first.
    let (s, _) = apis[0]
        .call(
            Method::POST,
            &format!("/v1/approvals/{sp_no}/approve"),
            Some(&tok["cto"]),
            Some(json!({"step": 1})),
        )
        .await;
    assert_eq!(s, 200);
    // (Node 1 shows the approval made through node 0 once it applied it.)
    let v = enclave_tests::wait_for_async(
        "the approval on node 1",
        std::time::Duration::from_secs(5),
        || async {
            let v = w
                .post("oa/getapprovaldetail", &t, json!({"sp_no": sp_no}))
                .await;
            (v["info"]["sp_record"][0]["sp_status"] == 2).then_some(v)
        },
    )
    .await;
    let info = &v["info"];
    assert_eq!(info["sp_status"], 1, "{v}");
    assert_eq!(info["applyer"]["userid"], "ops");
    assert_eq!(info["sp_record"][0]["sp_status"], 2, "{v}");
    assert_eq!(
        info["sp_record"][0]["details"][0]["approver"]["userid"],
        "cto"
    );
    assert_eq!(
        info["apply_data"]["contents"][0]["value"]["new_money"], "300.00",
        "{v}"
    );
    assert_eq!(
        info["apply_data"]["contents"][2]["value"]["date_range"]["new_begin"], 1796140800,
        "{v}"
    );
    let start = (now / 1000 - 3600).to_string();
    let end = (now / 1000 + 3600).to_string();
    let v = w
        .post("oa/getapprovalinfo", &t, json!({"starttime": start, "endtime": end, "size": 100,
            "filters": [{"key": "template_id", "value": "expense"}, {"key": "creator", "value": "ops"}]}))
        .await;
    assert_eq!(v["sp_no_list"], json!([sp_no]), "{v}");
    // An app without the scope gets 48002.
    let other = create_app(&c, 0, "HR", &["directory:read"], &[]).await;
    let t2 = token(&w0, &other).await;
    assert_eq!(
        w0.post("oa/getapprovaldetail", &t2, json!({"sp_no": sp_no}))
            .await["errcode"],
        48002
    );
}
