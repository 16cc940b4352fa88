//! External contacts (issue 19) against real 3-node clusters of `enclave`
//! processes: invitations that work once (and expire), external accounts
//! that see only their own conversations; a departed employee's contacts
//! and customer groups handed to a colleague who reads the old history on
//! another node, everything audited; an in-service transfer that waits for
//! the objection window and can be cancelled; keyword auto-replies that
//! fire exactly once per matching message even when the leader dies right
//! after; bad transfers and limits refused with specific codes, changing
//! nothing. One test also prints the per-node cost of an external message
//! next to an internal one (never asserted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use enclave_certs::Role;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ helpers

/// Operator certificates besides the cluster's sysadmin.
struct Ops {
    sec: PathBuf,
    aud: PathBuf,
}

impl Ops {
    fn new(c: &TestCluster) -> Ops {
        Ops {
            sec: c.pki.operator("sec", Role::Secadmin),
            aud: c.pki.operator("aud", Role::Auditor),
        }
    }
}

async fn admin_as(
    c: &TestCluster,
    dir: &Path,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = enclave_ops::Client::with_cert_dir(&c.nodes[i].admin_url(), dir)
        .expect("client")
        .with_timeout(Duration::from_secs(15));
    let (s, b) = client
        .request(method, path, body.map(|b| b.to_string().into_bytes()))
        .await
        .unwrap_or_else(|e| panic!("admin request {path} on node {i}: {e}"));
    (
        s.as_u16(),
        serde_json::from_slice(&b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned())),
    )
}

/// A request as the cluster's sysadmin.
async fn admin(
    c: &TestCluster,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    admin_as(c, &c.admin_dir, i, method, path, body).await
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

/// A call that must be refused (or answered) with exactly this status and
/// error code.
async fn expect_code(
    a: &Api,
    method: Method,
    path: &str,
    tok: Option<&str>,
    body: Option<Value>,
    want: (u16, Option<&str>),
) {
    let (s, v) = a.call(method.clone(), path, tok, body.clone()).await;
    assert_eq!((s, code(&v)), want, "{method} {path} {body:?}: {v}");
}

fn apis(c: &mut TestCluster) -> Vec<Api> {
    let ca = c.pki.ca_dir().join("ca.pem");
    (0..c.nodes.len())
        .map(|i| Api::new(&c.endpoints(i).api_url(), &ca))
        .collect()
}

/// External-contact commands are log version 3: a fresh cluster moves
/// there by itself shortly after it has a leader. Wait until every live
/// node has seen the move.
async fn wait_v3(c: &TestCluster) {
    for i in c.live() {
        wait_for_async(
            &format!("log version 3 on node {i}"),
            Duration::from_secs(90),
            || async move {
                let (s, v) = admin(c, i, Method::GET, "/v1/cluster/upgrade", None).await;
                (s == 200 && v["cluster_version"].as_u64().unwrap_or(0) >= 3).then_some(())
            },
        )
        .await;
    }
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
    assert_eq!(s, 200, "department {id}: {v}");
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
    assert_eq!(s, 200, "member {u}: {v}");
}

async fn grant_external_add(c: &TestCluster, u: &str) {
    let (s, v) = admin(
        c,
        0,
        Method::PUT,
        &format!("/v1/directory/members/{u}/permissions/external:add"),
        None,
    )
    .await;
    assert_eq!(s, 200, "external:add for {u}: {v}");
}

/// Root and department 2 `name` (led by `boss`, who is in the root) with
/// `members`; `inviter` may invite external contacts. The cluster is at
/// log version 3. Returns every node's API and the inviter's token.
async fn org(
    c: &mut TestCluster,
    name: &str,
    members: &[&str],
    inviter: &str,
) -> (Vec<Api>, String) {
    wait_v3(c).await;
    dept(c, 1, json!({"name": "Root"})).await;
    dept(c, 2, json!({"name": name, "parent": 1})).await;
    member(c, "boss", 1).await;
    for u in members {
        member(c, u, 2).await;
    }
    dept(
        c,
        2,
        json!({"name": name, "parent": 1, "leaders": ["boss"]}),
    )
    .await;
    grant_external_add(c, inviter).await;
    let a = apis(c);
    let tok = login(&a[0], inviter).await;
    (a, tok)
}

/// The secadmin's partial policy change.
async fn set_policy(c: &TestCluster, ops: &Ops, body: Value) -> Value {
    let (s, v) = admin_as(
        c,
        &ops.sec,
        0,
        Method::PUT,
        "/v1/policy/external",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 200, "policy {body}: {v}");
    v
}

/// Log in (the account must already be applied on `a`'s node).
async fn login(a: &Api, u: &str) -> String {
    a.login(u, PW).await
}

async fn invite(a: &Api, tok: &str) -> Value {
    let (s, v) = a
        .call(Method::POST, "/v1/external/invitations", Some(tok), None)
        .await;
    assert_eq!(s, 200, "invitation: {v}");
    v
}

async fn accept(a: &Api, code: &str, userid: &str, org: &str) -> (u16, Value) {
    a.call(
        Method::POST,
        "/v1/external/accept",
        None,
        Some(json!({
            "code": code, "userid": userid, "name": format!("X-{userid}"),
            "org": org, "phone": "+86 10 0000 0000", "password": PW,
        })),
    )
    .await
}

/// Invite through `emp_api`, accept through `ext_api` (after the
/// invitation has reached that node); the contact's 1:1 conversation.
async fn new_contact(
    c: &TestCluster,
    emp_api: &Api,
    emp_tok: &str,
    ext_api: &Api,
    userid: &str,
) -> String {
    let inv = invite(emp_api, emp_tok).await;
    let code = inv["code"].as_str().expect("code").to_string();
    c.wait_converged().await;
    let (s, v) = accept(ext_api, &code, userid, "ACME 有限公司").await;
    assert_eq!(s, 200, "accept as {userid}: {v}");
    v["conversation"]
        .as_str()
        .expect("conversation")
        .to_string()
}

/// Send as a client does: a `429` (the per-token rate, which a fast
/// machine reaches sending back to back) changed nothing, so wait a
/// moment and send again, a few times at most.
async fn send(a: &Api, tok: &str, conv: &str, text: &str) -> Value {
    for _ in 0..20 {
        let (s, v) = a
            .call(
                Method::POST,
                &format!("/v1/conversations/{conv}/messages"),
                Some(tok),
                Some(json!({ "text": text })),
            )
            .await;
        if s == 429 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(s, 200, "send {text:?} in {conv}: {v}");
        return v;
    }
    panic!("send {text:?} in {conv}: still rate limited after 20 tries");
}

/// Every message of `conv` the caller may read, as `a`'s node has them.
async fn messages(a: &Api, tok: &str, conv: &str) -> Result<Vec<Value>, (u16, Value)> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let (s, v) = a
            .call(
                Method::GET,
                &format!("/v1/conversations/{conv}/messages?after_seq={after}&limit=1000"),
                Some(tok),
                None,
            )
            .await;
        if s != 200 {
            return Err((s, v));
        }
        out.extend(v["messages"].as_array().cloned().unwrap_or_default());
        match v["next_after_seq"].as_u64() {
            Some(n) => after = n,
            None => return Ok(out),
        }
    }
}

async fn conversations(a: &Api, tok: &str) -> Vec<Value> {
    let (s, v) = a
        .call(Method::GET, "/v1/conversations?limit=500", Some(tok), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["conversations"].as_array().cloned().unwrap_or_default()
}

async fn contacts(a: &Api, tok: &str) -> Vec<String> {
    let (s, v) = a
        .call(Method::GET, "/v1/external/contacts", Some(tok), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|x| x["userid"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// What an operator sees an employee serve: (contacts, groups).
async fn served(c: &TestCluster, i: usize, employee: &str) -> (Vec<String>, Vec<String>) {
    let (s, v) = admin(
        c,
        i,
        Method::GET,
        &format!("/v1/external/contacts?employee={employee}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ids = |k: &str, f: &str| -> Vec<String> {
        v[k].as_array()
            .expect("list")
            .iter()
            .map(|x| x[f].as_str().unwrap_or_default().to_string())
            .collect()
    };
    (ids("contacts", "userid"), ids("groups", "id"))
}

async fn state_hash(c: &TestCluster, i: usize) -> String {
    let (s, v) = admin(c, i, Method::GET, "/v1/cluster/state-hash", None).await;
    assert_eq!(s, 200, "{v}");
    v["sha256"].as_str().unwrap_or_default().to_string()
}

/// Every live node converged on the same state.
async fn same_state_everywhere(c: &TestCluster) {
    let at = c.wait_converged().await;
    let mut hashes = Vec::new();
    for i in c.live() {
        hashes.push(state_hash(c, i).await);
    }
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "state differs at index {at}: {hashes:?}"
    );
}

async fn audit(c: &TestCluster, ops: &Ops, i: usize) -> Vec<Value> {
    let (s, v) = admin_as(c, &ops.aud, i, Method::GET, "/v1/audit?limit=10000", None).await;
    assert_eq!(s, 200, "{v}");
    v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["record"].clone())
        .collect()
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 600 {
        format!("{}…", s.chars().take(600).collect::<String>())
    } else {
        s
    }
}

// ------------------------------------------------------------------ 1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_works_once_and_external_accounts_see_only_their_own() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    wait_v3(&c).await;
    dept(&c, 1, json!({"name": "Root"})).await;
    dept(&c, 2, json!({"name": "客户服务部", "parent": 1})).await;
    for u in ["ann", "bob"] {
        member(&c, u, 2).await;
    }
    let a = apis(&mut c);
    let ann = login(&a[0], "ann").await;
    let bob = login(&a[0], "bob").await;

    // Without the permission an employee cannot invite.
    let (s, v) = a[0]
        .call(Method::POST, "/v1/external/invitations", Some(&ann), None)
        .await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    grant_external_add(&c, "ann").await;
    // The shortest invitation lifetime the policy allows (1 minute): one
    // invitation is left to expire while the rest of the test runs.
    set_policy(&c, &ops, json!({"invitation_ttl_ms": 60_000})).await;
    let late = invite(&a[0], &ann).await;
    let late_code = late["code"].as_str().expect("code").to_string();
    let late_expires = late["expires_ms"].as_u64().expect("expires_ms");

    let inv = invite(&a[0], &ann).await;
    let inv_code = inv["code"].as_str().expect("code").to_string();
    assert!(
        inv["link"].as_str().unwrap_or_default().contains(&inv_code),
        "{inv}"
    );
    c.wait_converged().await;
    // The acceptance page (no login) on another node.
    let (s, v) = a[1]
        .call(
            Method::GET,
            &format!("/v1/external/invitations/{inv_code}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["inviter"].as_str()),
        (Some("open"), Some("N-ann")),
        "{v}"
    );
    let (s, acc) = accept(&a[1], &inv_code, "cust1", "ACME 有限公司").await;
    assert_eq!(s, 200, "{acc}");
    let x = acc["conversation"]
        .as_str()
        .expect("conversation")
        .to_string();
    assert_eq!(acc["account"]["invited_by"], "ann", "{acc}");
    // Works once: the same code again (another userid), and a forged one.
    let (s, v) = accept(&a[1], &inv_code, "cust1b", "ACME").await;
    assert_eq!((s, code(&v)), (409, Some("already_used")), "{v}");
    let (s, v) = a[1]
        .call(
            Method::GET,
            &format!("/v1/external/invitations/{inv_code}"),
            None,
            None,
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("used")), "{v}");
    let forged = format!("{}x", &inv_code[..inv_code.len() - 1]);
    let (s, v) = accept(&a[2], &forged, "cust1c", "ACME").await;
    assert_eq!((s, code(&v)), (404, Some("not_found")), "{v}");
    expect_code(
        &a[2],
        Method::GET,
        &format!("/v1/external/invitations/{forged}"),
        None,
        None,
        (404, Some("not_found")),
    )
    .await;
    c.wait_converged().await;
    let (s, v) = admin(&c, 2, Method::GET, "/v1/external/accounts", None).await;
    assert_eq!(s, 200, "{v}");
    let accounts: Vec<&str> = v["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|e| e["userid"].as_str())
        .collect();
    assert_eq!(accounts, vec!["cust1"], "one account per used code: {v}");

    // The external logs in like a member, on a third node.
    let cust = login(&a[2], "cust1").await;
    let (s, me) = a[2].call(Method::GET, "/v1/me", Some(&cust), None).await;
    assert_eq!((s, me["external"].as_bool()), (200, Some(true)), "{me}");
    let (_, me) = a[0].call(Method::GET, "/v1/me", Some(&ann), None).await;
    assert_eq!(me["external"], false, "{me}");

    // An internal group and an internal 1:1 the external is not in.
    let (s, g) = a[0]
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&ann),
            Some(json!({"name": "内部群", "members": ["bob"]})),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let g = g["id"].as_str().expect("id").to_string();
    send(&a[0], &ann, &g, "内部消息：季度目标").await;
    let d = a[0].send_direct(&ann, "bob", "内部 1:1", "d-0").await;
    let direct = d["conversation"]
        .as_str()
        .expect("conversation")
        .to_string();
    // An employee cannot pull the external into an internal group.
    let (s, v) = a[0]
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&ann),
            Some(json!({"name": "混合", "members": ["bob", "cust1"]})),
        )
        .await;
    // (Creating answers 404: an external is no member; adding answers 403.)
    assert!(
        matches!(
            (s, code(&v)),
            (404, Some("not_found")) | (403, Some("forbidden"))
        ),
        "an external in a new internal group: {s} {v}"
    );
    expect_code(
        &a[0],
        Method::POST,
        &format!("/v1/conversations/{g}/members"),
        Some(&ann),
        Some(json!({"userids": ["cust1"]})),
        (403, Some("forbidden")),
    )
    .await;
    c.wait_converged().await;

    // Each refused, each with its own code.
    let tries: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::GET,
            "/v1/directory/members".into(),
            None,
            403,
            "external_account",
        ),
        (
            Method::GET,
            "/v1/directory/members/ann".into(),
            None,
            403,
            "external_account",
        ),
        (
            Method::GET,
            "/v1/directory/departments".into(),
            None,
            403,
            "external_account",
        ),
        (
            Method::POST,
            "/v1/conversations".into(),
            Some(json!({"name": "我的群", "members": ["ann"]})),
            403,
            "external_account",
        ),
        (
            Method::POST,
            "/v1/external/groups".into(),
            Some(json!({"name": "我的客户群", "members": ["ann"]})),
            403,
            "external_account",
        ),
        (
            Method::POST,
            "/v1/external/invitations".into(),
            None,
            403,
            "external_account",
        ),
        (
            Method::GET,
            format!("/v1/conversations/{g}"),
            None,
            403,
            "not_a_member",
        ),
        (
            Method::GET,
            format!("/v1/conversations/{g}/messages"),
            None,
            403,
            "not_a_member",
        ),
        (
            Method::GET,
            format!("/v1/conversations/{direct}/messages"),
            None,
            403,
            "not_a_member",
        ),
        (
            Method::POST,
            format!("/v1/conversations/{g}/messages"),
            Some(json!({"text": "let me in"})),
            403,
            "not_a_member",
        ),
    ];
    for (m, path, body, status, want) in tries {
        let (s, v) = a[2].call(m.clone(), &path, Some(&cust), body).await;
        assert_eq!((s, code(&v)), (status, Some(want)), "{m} {path}: {v}");
    }
    // Nor can they start a 1:1 with an employee who does not serve them.
    let (s, v) = a[2]
        .call(
            Method::POST,
            "/v1/direct/bob/messages",
            Some(&cust),
            Some(json!({"text": "hello bob"})),
        )
        .await;
    // (A 1:1 is between members: an external is none.)
    assert_eq!(
        (s, code(&v)),
        (404, Some("not_found")),
        "an external started a 1:1 with bob: {v}"
    );

    // They see only their own: the contact 1:1, marked external.
    let list = conversations(&a[2], &cust).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], x.as_str(), "{list:?}");
    assert_eq!(list[0]["kind"], "contact", "{list:?}");
    assert_eq!(list[0]["external"], true, "{list:?}");
    assert_eq!(contacts(&a[2], &cust).await, vec!["ann"]);
    assert_eq!(contacts(&a[0], &ann).await, vec!["cust1"]);
    let (s, v) = a[0]
        .call(Method::GET, "/v1/external/contacts", Some(&bob), None)
        .await;
    assert_eq!(
        (s, v["contacts"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let mine = conversations(&a[0], &ann).await;
    let kinds: BTreeMap<String, (Value, Value)> = mine
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                (c["kind"].clone(), c["external"].clone()),
            )
        })
        .collect();
    assert_eq!(kinds[&x], (json!("contact"), json!(true)), "{kinds:?}");
    assert_eq!(kinds[&g], (json!("group"), json!(false)), "{kinds:?}");

    // They chat: the external on node 2, the employee on node 0.
    let m1 = send(&a[2], &cust, &x, "您好，我想咨询一下产品报价").await;
    let got = wait_for_async("the external's message on node 0", WAIT, || async {
        let list = messages(&a[0], &ann, &x).await.ok()?;
        list.iter()
            .any(|m| m["seq"] == m1["seq"] && m["sender"] == "cust1")
            .then_some(list)
    })
    .await;
    assert!(got.iter().all(|m| m["sender"] != "ann"), "{got:?}");
    let m2 = send(&a[0], &ann, &x, "您好，报价单稍后发给您").await;
    wait_for_async("the employee's answer on node 2", WAIT, || async {
        let list = messages(&a[2], &cust, &x).await.ok()?;
        list.iter()
            .any(|m| m["seq"] == m2["seq"] && m["sender"] == "ann" && m["reply_to"].is_null())
            .then_some(())
    })
    .await;

    // Cost of an external message next to an internal one (printed only).
    measure_message_cost(&c, &a, &ann, &cust, &x, &bob, &direct).await;

    // The first invitation expires unused.
    let wait_ms = late_expires.saturating_sub(now_ms()) + 1_500;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let (s, v) = a[1]
        .call(
            Method::GET,
            &format!("/v1/external/invitations/{late_code}"),
            None,
            None,
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("expired")), "{v}");
    let (s, v) = accept(&a[1], &late_code, "late1", "Late Ltd").await;
    assert_eq!((s, code(&v)), (410, Some("expired")), "{v}");
    // The audit trail has the invitations and the acceptance.
    let records = audit(&c, &ops, 1).await;
    let count = |action: &str, target: &str, ok: bool| {
        records
            .iter()
            .filter(|r| {
                r["action"] == action && r["target"] == target && (r["outcome"] == "ok") == ok
            })
            .count()
    };
    assert_eq!(
        count("external.invite", "ann", true),
        2,
        "two invitations issued"
    );
    assert!(
        count("external.invite", "ann", false) >= 1,
        "the refused one"
    );
    assert_eq!(count("external.accept", "cust1", true), 1);
    assert!(
        count("external.accept", "cust1b", false) >= 1,
        "the used code"
    );
    assert!(
        count("external.accept", "late1", false) >= 1,
        "the expired code"
    );
    same_state_everywhere(&c).await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Sum of every sample of metric `name` (all label sets) in a scrape.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, val) = l.rsplit_once(' ')?;
            let metric_name = head.split('{').next()?;
            (metric_name == name).then(|| val.parse::<f64>().ok())?
        })
        .sum()
}

async fn scrape(c: &TestCluster, i: usize) -> String {
    let (s, v) = admin(c, i, Method::GET, "/metrics", None).await;
    assert_eq!(s, 200);
    v.as_str().unwrap_or_default().to_string()
}

/// N messages in the contact 1:1 and N in an internal 1:1 (the senders
/// alternating), with each node's applied index, Raft log size on disk
/// (`enclave_store_bytes`) and apply time before and after: printed,
/// never asserted.
async fn measure_message_cost(
    c: &TestCluster,
    a: &[Api],
    ann: &str,
    cust: &str,
    x: &str,
    bob: &str,
    direct: &str,
) {
    const N: usize = 200;
    const NAMES: [&str; 4] = [
        "enclave_raft_applied_index",
        "enclave_store_bytes",
        "enclave_raft_apply_duration_seconds_sum",
        "enclave_raft_apply_entries_sum",
    ];
    let mut rows = Vec::new();
    // Two rounds each, alternating, the same texts: the Raft log's size on
    // disk grows (and shrinks, compacted) in sled segment steps, so one
    // batch alone says little.
    for (label, conv, first, second) in [
        ("internal 1:1 (round 1)", direct, bob, ann),
        ("external contact 1:1 (round 1)", x, cust, ann),
        ("internal 1:1 (round 2)", direct, bob, ann),
        ("external contact 1:1 (round 2)", x, cust, ann),
    ] {
        c.wait_converged().await;
        let mut before = Vec::new();
        for i in 0..3 {
            before.push(scrape(c, i).await);
        }
        let t0 = Instant::now();
        for n in 0..N {
            let (tok, api) = if n % 2 == 0 {
                (first, &a[2])
            } else {
                (second, &a[0])
            };
            send(
                api,
                tok,
                conv,
                &format!("message {n:03}: 请确认一下交付时间"),
            )
            .await;
        }
        let took = t0.elapsed();
        c.wait_converged().await;
        let mut per_node = Vec::new();
        for (i, b) in before.iter().enumerate() {
            let after = scrape(c, i).await;
            let d: Vec<f64> = NAMES
                .iter()
                .map(|name| metric(&after, name) - metric(b, name))
                .collect();
            per_node.push(d);
        }
        rows.push((label, took, per_node));
    }
    eprintln!("---- per-node cost of {N} messages (sequential, senders alternating) ----");
    for (label, took, per_node) in &rows {
        eprintln!(
            "{label}: {:.1?} wall ({:.1} ms/message end to end)",
            took,
            took.as_secs_f64() * 1000.0 / N as f64
        );
        for (i, d) in per_node.iter().enumerate() {
            eprintln!(
                "  node-{}: log entries applied {:.0} ({:.2}/message), Raft log bytes on disk {:+.0} ({:+.0}/message), apply time {:.1} ms ({:.3} ms/message), entries in apply batches {:.0}",
                i + 1,
                d[0],
                d[0] / N as f64,
                d[1],
                d[1] / N as f64,
                d[2] * 1000.0,
                d[2] * 1000.0 / N as f64,
                d[3],
            );
        }
    }
}

// ------------------------------------------------------------------ 2

/// An admin request printed as the closing note's walk-through.
async fn step(
    c: &TestCluster,
    dir: &Path,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let shown = body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
    let (s, v) = admin_as(c, dir, i, method.clone(), path, body).await;
    eprintln!("$ {method} {path}{shown}\n  → {s} {}", short(&v));
    (s, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departure_hands_contacts_and_groups_to_a_colleague() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    let (a, sam) = org(&mut c, "销售部", &["sam", "nia"], "sam").await;

    // sam serves three contacts, chats with each.
    let mut x = BTreeMap::new();
    let mut ctok = BTreeMap::new();
    let mut sam_sent = 0u64;
    for k in ["c1", "c2", "c3"] {
        let conv = new_contact(&c, &a[0], &sam, &a[1], k).await;
        let t = login(&a[1], k).await;
        send(
            &a[0],
            &sam,
            &conv,
            &format!("您好 {k}，我是 sam，您的客户经理"),
        )
        .await;
        sam_sent += 1;
        send(&a[1], &t, &conv, &format!("收到，谢谢 sam（{k}）")).await;
        x.insert(k, conv);
        ctok.insert(k, t);
    }
    // And owns two customer groups.
    let mut groups = Vec::new();
    for (name, members) in [
        ("华东客户群", json!(["c1", "c2", "boss"])),
        ("供应链协调群", json!(["c3"])),
    ] {
        let (s, g) = a[0]
            .call(
                Method::POST,
                "/v1/external/groups",
                Some(&sam),
                Some(json!({"name": name, "members": members})),
            )
            .await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(
            (g["kind"].as_str(), g["external"].as_bool()),
            (Some("customer"), Some(true)),
            "{g}"
        );
        groups.push(g["id"].as_str().expect("id").to_string());
    }
    let (g1, g2) = (groups[0].clone(), groups[1].clone());
    send(&a[0], &sam, &g1, "欢迎加入华东客户群").await;
    send(&a[0], &sam, &g2, "本群用于供应链协调").await;
    sam_sent += 2;
    c.wait_converged().await;
    send(&a[1], &ctok["c1"], &g1, "请问这批货的交期？").await;
    send(&a[1], &ctok["c3"], &g2, "下周一到货").await;
    c.wait_converged().await;
    let (s, v) = admin(
        &c,
        0,
        Method::GET,
        "/v1/external/supervision?department=2",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let row = |v: &Value, u: &str| {
        v["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["userid"] == u)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {u}: {v}"))
    };
    let r = row(&v, "sam");
    assert_eq!(
        (
            r["contacts"].as_u64(),
            r["customer_groups"].as_u64(),
            r["messages_to_externals"].as_u64()
        ),
        (Some(3), Some(2), Some(sam_sent)),
        "{r}"
    );

    eprintln!("---- walk-through: sam (销售部) leaves; nia takes over his external contacts ----");
    let sys = c.admin_dir.clone();
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::PUT,
        "/v1/directory/members/sam/status",
        Some(json!({"status": "departed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = step(&c, &sys, 0, Method::GET, "/v1/external/unassigned", None).await;
    assert_eq!(s, 200, "{v}");
    let list = v["unassigned"].as_array().expect("unassigned");
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["employee"], "sam", "{v}");
    let names = |k: &str, f: &str| -> Vec<String> {
        let mut n: Vec<String> = list[0][k]
            .as_array()
            .expect("list")
            .iter()
            .map(|x| x[f].as_str().unwrap_or_default().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("contacts", "userid"), vec!["c1", "c2", "c3"], "{v}");
    let mut want_groups = groups.clone();
    want_groups.sort();
    assert_eq!(names("groups", "id"), want_groups, "{v}");
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "sam", "to": "nia", "all": true, "message": "nia 将继续为您服务"})),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("done")), "{v}");
    let tid = v["id"].as_u64().expect("id");
    assert_eq!(v["externals"], json!(["c1", "c2", "c3"]), "{v}");
    let (s, v) = step(&c, &sys, 0, Method::GET, "/v1/external/unassigned", None).await;
    assert_eq!(
        (s, v["unassigned"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::GET,
        "/v1/external/contacts?employee=nia",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .all(|x| x["previous"] == "sam"),
        "{v}"
    );
    let (s, v) = step(
        &c,
        &sys,
        0,
        Method::GET,
        &format!("/v1/external/transfers/{tid}"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("done")), "{v}");
    let (s, v) = step(
        &c,
        &ops.aud,
        0,
        Method::GET,
        "/v1/audit?action=external.transfer&limit=10",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    eprintln!("---- end of walk-through ----");

    let (contacts_nia, mut groups_nia) = served(&c, 0, "nia").await;
    groups_nia.sort();
    assert_eq!(contacts_nia, vec!["c1", "c2", "c3"]);
    assert_eq!(groups_nia, want_groups);
    let (contacts_sam, groups_sam) = served(&c, 0, "sam").await;
    assert!(
        contacts_sam.is_empty() && groups_sam.is_empty(),
        "{contacts_sam:?} {groups_sam:?}"
    );

    // The departed employee cannot log in.
    for api in &a[..2] {
        let (s, v) = api
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"userid": "sam", "password": PW})),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (403, Some("account_inactive")),
            "sam logged in after departing: {v}"
        );
    }

    // The new owner, on another node, has every conversation and its history.
    c.wait_converged().await;
    let nia = login(&a[2], "nia").await;
    let list = conversations(&a[2], &nia).await;
    let ids: BTreeMap<String, Value> = list
        .iter()
        .map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c.clone()))
        .collect();
    for (k, conv) in &x {
        let cv = ids
            .get(conv)
            .unwrap_or_else(|| panic!("nia lacks {k}'s 1:1 {conv}: {list:?}"));
        assert_eq!(
            (
                cv["kind"].as_str(),
                cv["external"].as_bool(),
                cv["owner"].as_str()
            ),
            (Some("contact"), Some(true), Some("nia")),
            "{cv}"
        );
        let history = messages(&a[2], &nia, conv).await.expect("history");
        let texts: Vec<(&str, &str)> = history
            .iter()
            .map(|m| {
                (
                    m["sender"].as_str().unwrap_or(""),
                    m["text"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert!(
            texts.contains(&("sam", &format!("您好 {k}，我是 sam，您的客户经理"))),
            "{texts:?}"
        );
        assert!(
            texts.contains(&(*k, &format!("收到，谢谢 sam（{k}）"))),
            "{texts:?}"
        );
        let notice: Vec<&(&str, &str)> = texts
            .iter()
            .filter(|(s, _)| *s == "system:handover")
            .collect();
        assert_eq!(notice.len(), 1, "{texts:?}");
        assert!(
            notice[0].1.contains("N-nia") && notice[0].1.contains("nia 将继续为您服务"),
            "{notice:?}"
        );
    }
    for g in &groups {
        let cv = ids
            .get(g)
            .unwrap_or_else(|| panic!("nia lacks group {g}: {list:?}"));
        assert_eq!(
            (cv["kind"].as_str(), cv["owner"].as_str()),
            (Some("customer"), Some("nia")),
            "{cv}"
        );
    }
    let h1 = messages(&a[2], &nia, &g1).await.expect("g1 history");
    let t1: Vec<&str> = h1.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        t1.contains(&"欢迎加入华东客户群") && t1.contains(&"请问这批货的交期？"),
        "{t1:?}"
    );
    assert!(
        h1.iter().any(|m| m["sender"] == "system:handover"),
        "{t1:?}"
    );
    let h2 = messages(&a[2], &nia, &g2).await.expect("g2 history");
    assert!(
        h2.iter()
            .any(|m| m["text"] == "下周一到货" && m["sender"] == "c3"),
        "{h2:?}"
    );
    // sam left the groups; the group members are nia and the rest.
    let (s, v) = a[2]
        .call(
            Method::GET,
            &format!("/v1/conversations/{g1}/members"),
            Some(&nia),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut mem: Vec<String> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["userid"].as_str().unwrap_or_default().to_string())
        .collect();
    mem.sort();
    assert_eq!(mem, vec!["boss", "c1", "c2", "nia"], "{v}");

    // nia chats with c1 from node 2; c1 reads and answers on node 1.
    let m = send(&a[2], &nia, &x["c1"], "我是 nia，之后由我跟进您的订单").await;
    wait_for_async("nia's message at c1 on node 1", WAIT, || async {
        let list = messages(&a[1], &ctok["c1"], &x["c1"]).await.ok()?;
        list.iter()
            .any(|v| v["seq"] == m["seq"] && v["sender"] == "nia")
            .then_some(())
    })
    .await;
    let r = send(&a[1], &ctok["c1"], &x["c1"], "好的，谢谢 nia").await;
    wait_for_async("c1's answer at nia on node 2", WAIT, || async {
        let list = messages(&a[2], &nia, &x["c1"]).await.ok()?;
        list.iter().any(|v| v["seq"] == r["seq"]).then_some(())
    })
    .await;
    send(&a[2], &nia, &g1, "大家好，我是新的群主 nia").await;
    // Each contact was told, and now sees nia (not sam) as who serves them.
    c.wait_converged().await;
    for (k, conv) in &x {
        let history = messages(&a[1], &ctok[k], conv)
            .await
            .expect("contact's history");
        let told = history
            .iter()
            .filter(|m| m["sender"] == "system:handover")
            .count();
        assert_eq!(told, 1, "{k}: {history:?}");
        assert_eq!(contacts(&a[1], &ctok[k]).await, vec!["nia"], "{k}");
    }
    let (s, v) = admin(
        &c,
        1,
        Method::GET,
        "/v1/external/supervision?department=2",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = row(&v, "nia");
    assert_eq!(
        (r["contacts"].as_u64(), r["customer_groups"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    // A departed employee leaves the department, so its list no longer
    // has them.
    assert!(
        v["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["userid"] != "sam"),
        "{v}"
    );

    // Every step in the audit trail (read on node 1).
    let records = audit(&c, &ops, 1).await;
    let has = |action: &str, target: &str, outcome: &dyn Fn(&str) -> bool| {
        records
            .iter()
            .filter(|r| {
                r["action"] == action
                    && r["target"] == target
                    && outcome(r["outcome"].as_str().unwrap_or(""))
            })
            .count()
    };
    let ok = |o: &str| o == "ok";
    assert_eq!(has("external.invite", "sam", &ok), 3);
    for k in ["c1", "c2", "c3"] {
        assert_eq!(has("external.accept", k, &ok), 1, "{k}");
    }
    assert_eq!(has("external.group.create", "sam", &ok), 2);
    assert_eq!(has("directory.member.depart", "sam", &ok), 1);
    let transfer_target = format!(
        "sam->nia:contacts=c1|c2|c3;groups={}",
        want_groups.join("|")
    );
    assert_eq!(
        has("external.transfer", &transfer_target, &|o| o
            == format!("ok,transfer:{tid},done")),
        1,
        "{transfer_target}"
    );
    // Both refused logins of the departed account are recorded.
    assert_eq!(
        has("auth.login", "sam", &|o| o == "refused:account_inactive"),
        2,
        "sam's refused logins are not in the audit trail"
    );
    assert!(has("auth.login", "nia", &ok) >= 1);
    eprintln!("audit trail of the hand-over:");
    for r in records.iter().filter(|r| {
        let a = r["action"].as_str().unwrap_or("");
        a.starts_with("external.")
            || a == "directory.member.depart"
            || (a == "auth.login" && (r["target"] == "sam" || r["target"] == "nia"))
    }) {
        eprintln!(
            "  #{} {} {} → {} ({} {})",
            r["seq"],
            r["action"].as_str().unwrap_or(""),
            r["target"].as_str().unwrap_or(""),
            r["outcome"].as_str().unwrap_or(""),
            r["origin"]["kind"].as_str().unwrap_or(""),
            r["origin"]["role"]
                .as_str()
                .or(r["origin"]["actor"].as_str())
                .unwrap_or(""),
        );
    }
    same_state_everywhere(&c).await;
}

// ------------------------------------------------------------------ 3

async fn transfer_status(c: &TestCluster, i: usize, id: u64) -> Value {
    let (s, v) = admin(
        c,
        i,
        Method::GET,
        &format!("/v1/external/transfers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_service_transfer_waits_for_the_window_and_can_be_cancelled() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    let (a, amy) = org(&mut c, "大客户部", &["amy", "ben", "joe"], "amy").await;
    let mut x = BTreeMap::new();
    let mut ktok = BTreeMap::new();
    for k in ["k1", "k2", "k3"] {
        let conv = new_contact(&c, &a[0], &amy, &a[1], k).await;
        send(&a[0], &amy, &conv, &format!("{k}，合同已寄出")).await;
        ktok.insert(k, login(&a[1], k).await);
        x.insert(k, conv);
    }

    // 1. A long window; the sysadmin asks, then cancels: nothing moves.
    set_policy(&c, &ops, json!({"transfer_window_ms": 600_000})).await;
    let (s, t) = admin(
        &c,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "amy", "to": "ben", "externals": ["k1"]})),
    )
    .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("waiting")), "{t}");
    let t1 = t["id"].as_u64().expect("id");
    assert_eq!(
        t["due_ms"].as_u64().unwrap_or(0) - t["created_ms"].as_u64().unwrap_or(0),
        600_000,
        "{t}"
    );
    // The contact is told of the coming change in their 1:1.
    c.wait_converged().await;
    let h = messages(&a[1], &ktok["k1"], &x["k1"])
        .await
        .expect("k1 history");
    let notice = h
        .iter()
        .filter(|m| m["sender"] == "system:handover")
        .collect::<Vec<_>>();
    assert_eq!(notice.len(), 1, "{h:?}");
    assert!(
        notice[0]["text"].as_str().unwrap_or("").contains("N-ben"),
        "{notice:?}"
    );
    // The same contact cannot be in two waiting transfers.
    let (s, v) = admin(
        &c,
        1,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "amy", "to": "joe", "externals": ["k1"]})),
    )
    .await;
    assert_eq!((s, code(&v)), (409, Some("already_exists")), "{v}");
    let (s, v) = admin(
        &c,
        1,
        Method::POST,
        &format!("/v1/external/transfers/{t1}/cancel"),
        None,
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v) = admin(
        &c,
        2,
        Method::POST,
        &format!("/v1/external/transfers/{t1}/cancel"),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (409, Some("already_decided")), "{v}");

    // 2. A short window, asked for by the department leader through the
    // client API; k3 objects in time and stays, k2 moves after the window.
    set_policy(&c, &ops, json!({"transfer_window_ms": 8_000})).await;
    c.wait_converged().await;
    let boss = login(&a[2], "boss").await;
    let joe = login(&a[2], "joe").await;
    let req =
        json!({"from": "amy", "to": "ben", "externals": ["k2", "k3"], "message": "ben 负责华北区"});
    // Not a leader of amy's department: refused.
    let (s, v) = a[2]
        .call(
            Method::POST,
            "/v1/external/transfers",
            Some(&joe),
            Some(req.clone()),
        )
        .await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    let (s, t) = a[2]
        .call(
            Method::POST,
            "/v1/external/transfers",
            Some(&boss),
            Some(req),
        )
        .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("waiting")), "{t}");
    let t2 = t["id"].as_u64().expect("id");
    let due = t["due_ms"].as_u64().expect("due");
    assert_eq!(due - t["created_ms"].as_u64().unwrap_or(0), 8_000, "{t}");
    assert_eq!(t["by"], "boss", "{t}");
    c.wait_converged().await;
    let (s, v) = a[1]
        .call(
            Method::POST,
            &format!("/v1/external/transfers/{t2}/object"),
            Some(&ktok["k3"]),
            None,
        )
        .await;
    assert_eq!((s, v["objected"].clone()), (200, json!(["k3"])), "{v}");
    // Not concerned: refused.
    let (s, v) = a[1]
        .call(
            Method::POST,
            &format!("/v1/external/transfers/{t2}/object"),
            Some(&ktok["k1"]),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (404, Some("not_found")), "{v}");
    // While it waits, nothing has moved: read the contacts first, then the
    // status, on one node; a status still waiting means the contacts were
    // read before it ran.
    let (before, _) = served(&c, 0, "amy").await;
    let st = transfer_status(&c, 0, t2).await;
    if st["status"] == "waiting" {
        assert_eq!(
            before,
            vec!["k1", "k2", "k3"],
            "moved before the window ended"
        );
    } else {
        eprintln!("(the window ended before the in-window read: {st})");
    }
    // The leader's runner applies it once the window is over.
    let done = wait_for_async("transfer 2 done", Duration::from_secs(60), || async {
        let v = transfer_status(&c, 1, t2).await;
        (v["status"] != "waiting").then_some(v)
    })
    .await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        done["finished_ms"].as_u64().unwrap_or(0) >= due,
        "applied before its window ended: {done}"
    );
    c.wait_converged().await;
    let (amy_now, _) = served(&c, 2, "amy").await;
    let (ben_now, _) = served(&c, 2, "ben").await;
    assert_eq!(amy_now, vec!["k1", "k3"], "cancelled and objected stay");
    assert_eq!(ben_now, vec!["k2"]);
    assert_eq!(transfer_status(&c, 2, t1).await["status"], "cancelled");
    assert_eq!(contacts(&a[1], &ktok["k2"]).await, vec!["ben"]);
    assert_eq!(contacts(&a[1], &ktok["k1"]).await, vec!["amy"]);
    assert_eq!(contacts(&a[1], &ktok["k3"]).await, vec!["amy"]);
    // ben has k2's 1:1 with its history; amy no longer has it.
    let ben = login(&a[2], "ben").await;
    let h = messages(&a[2], &ben, &x["k2"]).await.expect("ben reads k2");
    assert!(
        h.iter()
            .any(|m| m["text"] == "k2，合同已寄出" && m["sender"] == "amy"),
        "{h:?}"
    );
    let (s, v) = a[0]
        .call(
            Method::GET,
            &format!("/v1/conversations/{}/messages", x["k2"]),
            Some(&amy),
            None,
        )
        .await;
    // amy left k2's 1:1 when it moved.
    assert_eq!((s, code(&v)), (403, Some("not_a_member")), "{v}");
    let amy_convs: Vec<String> = conversations(&a[0], &amy)
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!amy_convs.contains(&x["k2"]), "{amy_convs:?}");
    assert!(
        amy_convs.contains(&x["k1"]) && amy_convs.contains(&x["k3"]),
        "{amy_convs:?}"
    );
    // k1 was told of the cancellation; k2 got the notice and the hand-over.
    let h = messages(&a[1], &ktok["k1"], &x["k1"]).await.expect("k1");
    assert_eq!(
        h.iter()
            .filter(|m| m["sender"] == "system:handover")
            .count(),
        2,
        "{h:?}"
    );
    let h = messages(&a[1], &ktok["k2"], &x["k2"]).await.expect("k2");
    assert_eq!(
        h.iter()
            .filter(|m| m["sender"] == "system:handover")
            .count(),
        2,
        "{h:?}"
    );
    // Audited: the request, the cancellation, the objection, the step.
    let records = audit(&c, &ops, 0).await;
    for (action, target, outcome) in [
        (
            "external.transfer",
            "amy->ben:contacts=k1;groups=".to_string(),
            format!("ok,transfer:{t1},waiting"),
        ),
        (
            "external.transfer.cancel",
            format!("transfer:{t1}"),
            format!("ok,transfer:{t1},cancelled"),
        ),
        (
            "external.transfer",
            "amy->ben:contacts=k2|k3;groups=".to_string(),
            format!("ok,transfer:{t2},waiting"),
        ),
        (
            "external.transfer.object",
            format!("transfer:{t2}:k3"),
            format!("ok,transfer:{t2},waiting"),
        ),
        (
            "external.transfer.step",
            format!("transfer:{t2}"),
            format!("ok,transfer:{t2},done"),
        ),
    ] {
        let n = records
            .iter()
            .filter(|r| {
                r["action"] == action
                    && r["target"] == target.as_str()
                    && r["outcome"] == outcome.as_str()
            })
            .count();
        assert_eq!(n, 1, "{action} {target} {outcome}");
    }
    let refused = |action: &str, target: &str, outcome: &str| {
        records
            .iter()
            .any(|r| r["action"] == action && r["target"] == target && r["outcome"] == outcome)
    };
    assert!(refused(
        "external.transfer",
        "amy->joe:contacts=k1;groups=",
        "refused:already_exists"
    ));
    assert!(refused(
        "external.transfer.cancel",
        &format!("transfer:{t1}"),
        "refused:already_decided"
    ));
    same_state_everywhere(&c).await;
}

// ------------------------------------------------------------------ 4

/// A request that may hit a dead node: None when it got no answer.
async fn try_call(
    url: &str,
    ca: &Path,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let client = enclave_ops::Client::anonymous(url, ca)
        .ok()?
        .with_timeout(Duration::from_secs(5));
    let auth = format!("Bearer {token}");
    let (s, b) = client
        .session()
        .request(
            method,
            path,
            Some(body.to_string().into_bytes()),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        )
        .await
        .ok()?;
    Some((
        s.as_u16(),
        serde_json::from_slice(&b).unwrap_or(Value::Null),
    ))
}

/// The assistant's replies to message `seq` of `conv`, on `a`'s node.
async fn replies_to(a: &Api, tok: &str, conv: &str, seq: u64) -> Vec<Value> {
    let sender = format!("assistant:{conv}");
    messages(a, tok, conv)
        .await
        .expect("group history")
        .into_iter()
        .filter(|m| m["sender"] == sender.as_str() && m["reply_to"] == seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reply_fires_once_per_matching_message_even_if_the_leader_dies() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    wait_v3(&c).await;
    dept(&c, 1, json!({"name": "Root"})).await;
    for u in ["olga", "eve"] {
        member(&c, u, 1).await;
    }
    grant_external_add(&c, "olga").await;
    let a = apis(&mut c);
    let ca = c.pki.ca_dir().join("ca.pem");
    let olga = login(&a[0], "olga").await;
    let eve = login(&a[0], "eve").await;
    let mut ptok = BTreeMap::new();
    for p in ["p1", "p2"] {
        new_contact(&c, &a[0], &olga, &a[1], p).await;
    }
    let (s, g) = a[0]
        .call(
            Method::POST,
            "/v1/external/groups",
            Some(&olga),
            Some(json!({"name": "售后服务群", "members": ["eve", "p1", "p2"]})),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    let conv = g["id"].as_str().expect("id").to_string();
    let rules = json!({"rules": [
        {"keywords": ["价格", "price"], "mode": "contains", "answer": "价格表：https://intra.example/prices"},
        {"keywords": ["hi"], "mode": "exact", "answer": "您好，请问有什么可以帮您？"},
    ]});
    let path = format!("/v1/external/groups/{conv}/auto-replies");
    let (s, v) = a[0]
        .call(Method::PUT, &path, Some(&olga), Some(rules.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rules"], rules["rules"], "{v}");
    c.wait_converged().await;
    for p in ["p1", "p2"] {
        ptok.insert(p, login(&a[1], p).await);
    }

    // Malformed rule sets are refused; the rules stay as they were.
    for (bad, status, want) in [
        (
            json!({"rules": [{"keywords": [], "mode": "contains", "answer": "x"}]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"rules": [{"keywords": ["  "], "mode": "exact", "answer": "x"}]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"rules": [{"keywords": ["a"], "mode": "contains", "answer": ""}]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"rules": [{"keywords": ["a\u{7}"], "mode": "contains", "answer": "x"}]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"rules": [{"keywords": ["a"], "mode": "regex", "answer": "x"}]}),
            400,
            "invalid_body",
        ),
        (
            json!({"rules": [{"keywords": ["a"], "answer": "x"}]}),
            400,
            "invalid_body",
        ),
    ] {
        let (s, v) = a[0]
            .call(Method::PUT, &path, Some(&olga), Some(bad.clone()))
            .await;
        assert_eq!((s, code(&v)), (status, Some(want)), "{bad}: {v}");
    }
    // Only the owner sets them.
    let (s, v) = a[0]
        .call(Method::PUT, &path, Some(&eve), Some(rules.clone()))
        .await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    expect_code(
        &a[1],
        Method::PUT,
        &path,
        Some(&ptok["p1"]),
        Some(json!({"rules": []})),
        (403, Some("forbidden")),
    )
    .await;
    let (s, v) = a[1].call(Method::GET, &path, Some(&ptok["p1"]), None).await;
    assert_eq!((s, &v["rules"]), (200, &rules["rules"]), "{v}");

    // Employees' matching messages never trigger it.
    let e1 = send(&a[0], &eve, &conv, "price list is attached").await;
    let o1 = send(&a[0], &olga, &conv, "hi").await;
    // An external's non-matching message neither.
    let n1 = send(&a[1], &ptok["p2"], &conv, "hi there").await;

    // An external's matching message, then the leader dies at once.
    let leader = c.leader().await;
    let tok_p1 = ptok["p1"].clone();
    let m1 = send(&a[leader], &tok_p1, &conv, "请问这个型号的价格？").await;
    c.kill(leader);
    let s1 = m1["seq"].as_u64().expect("seq");
    eprintln!("p1's message {s1} acknowledged by node {leader}; node {leader} killed");
    let new_leader = c.leader().await;
    eprintln!("new leader: node {new_leader}");
    // Under the new leader, both remaining nodes have the reply, once.
    for i in c.live() {
        let r = wait_for_async(&format!("the reply to {s1} on node {i}"), WAIT, || async {
            let r = replies_to(&a[i], &tok_p1, &conv, s1).await;
            (!r.is_empty()).then_some(r)
        })
        .await;
        assert_eq!(r.len(), 1, "node {i}: {r:?}");
    }
    // A second one sent to the new leader while it is killed: retried with
    // the same client_msg_id on the others until answered.
    c.restart(leader);
    c.wait_voters(3).await;
    let victim = c.leader().await;
    let body = json!({"text": "HI", "client_msg_id": "p2-hi-1"});
    let send_path = format!("/v1/conversations/{conv}/messages");
    let inflight = {
        let url = c.nodes[victim].api_url();
        let ca = ca.clone();
        let (p, b, t) = (send_path.clone(), body.clone(), ptok["p2"].clone());
        tokio::spawn(async move { try_call(&url, &ca, Method::POST, &p, &t, b).await })
    };
    tokio::time::sleep(Duration::from_millis(3)).await;
    c.kill(victim);
    let first = inflight.await.ok().flatten();
    eprintln!("in-flight send to node {victim} as it was killed: {first:?}");
    let m2 = wait_for_async("the retried send answered", Duration::from_secs(60), || {
        let live = c.live();
        let (p, b, t, ca) = (&send_path, &body, &ptok["p2"], &ca);
        let urls: Vec<String> = live.iter().map(|i| c.nodes[*i].api_url()).collect();
        async move {
            for url in urls {
                if let Some((200, v)) = try_call(&url, ca, Method::POST, p, t, b.clone()).await {
                    return Some(v);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            None
        }
    })
    .await;
    let s2 = m2["seq"].as_u64().expect("seq");
    c.restart(victim);
    c.wait_voters(3).await;
    same_state_everywhere(&c).await;

    // On every node: one message each, one assistant reply each, right
    // after it (the same apply); none for the others.
    let a = apis(&mut c);
    for (i, api) in a.iter().enumerate() {
        let tok = login(api, "olga").await;
        let history = messages(api, &tok, &conv).await.expect("history");
        let count = |text: &str| history.iter().filter(|m| m["text"] == text).count();
        assert_eq!(count("请问这个型号的价格？"), 1, "node {i}: {history:?}");
        assert_eq!(
            count("HI"),
            1,
            "node {i}: the retried message twice: {history:?}"
        );
        let r1 = replies_to(api, &tok, &conv, s1).await;
        assert_eq!(r1.len(), 1, "node {i}: replies to {s1}: {r1:?}");
        assert_eq!(r1[0]["seq"].as_u64(), Some(s1 + 1), "{r1:?}");
        assert_eq!(
            r1[0]["text"], "价格表：https://intra.example/prices",
            "{r1:?}"
        );
        let r2 = replies_to(api, &tok, &conv, s2).await;
        assert_eq!(r2.len(), 1, "node {i}: replies to {s2}: {r2:?}");
        assert_eq!(r2[0]["text"], "您好，请问有什么可以帮您？", "{r2:?}");
        for m in [&e1, &o1, &n1] {
            let seq = m["seq"].as_u64().expect("seq");
            assert!(
                replies_to(api, &tok, &conv, seq).await.is_empty(),
                "node {i}: a reply to {m}"
            );
        }
        let assistant = history
            .iter()
            .filter(|m| m["sender"] == format!("assistant:{conv}").as_str())
            .count();
        assert_eq!(assistant, 2, "node {i}: {history:?}");
    }
}

// ------------------------------------------------------------------ 5

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transfers_and_limits_are_refused_and_change_nothing() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    wait_v3(&c).await;
    dept(&c, 1, json!({"name": "Root"})).await;
    dept(&c, 2, json!({"name": "渠道部", "parent": 1})).await;
    for u in ["ann", "bob", "gone", "lee"] {
        member(&c, u, 2).await;
    }
    dept(
        &c,
        2,
        json!({"name": "渠道部", "parent": 1, "leaders": ["lee"]}),
    )
    .await;
    grant_external_add(&c, "ann").await;
    grant_external_add(&c, "bob").await;
    let a = apis(&mut c);
    let ann = login(&a[0], "ann").await;
    let bob = login(&a[0], "bob").await;
    let lee = login(&a[0], "lee").await;
    for k in ["c1", "c2"] {
        new_contact(&c, &a[0], &ann, &a[1], k).await;
    }
    new_contact(&c, &a[0], &bob, &a[1], "d1").await;
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/directory/members/gone/status",
        Some(json!({"status": "departed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    c.wait_converged().await;
    let c1 = login(&a[1], "c1").await;

    // Policy values out of range, and a policy change by the wrong role.
    for bad in [
        json!({"max_customer_group_members": 1}),
        json!({"max_contacts_per_employee": 0}),
        json!({"invitation_ttl_ms": 1000}),
        json!({"transfer_window_ms": 31u64 * 86_400_000}),
    ] {
        let (s, v) = admin_as(
            &c,
            &ops.sec,
            0,
            Method::PUT,
            "/v1/policy/external",
            Some(bad.clone()),
        )
        .await;
        assert_eq!((s, code(&v)), (400, Some("invalid_argument")), "{bad}: {v}");
    }
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/policy/external",
        Some(json!({"max_contacts_per_employee": 3})),
    )
    .await;
    assert_eq!(s, 403, "the sysadmin set the policy: {v}");
    let (s, p) = admin(&c, 0, Method::GET, "/v1/policy/external", None).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (
            p["max_contacts_per_employee"].as_u64(),
            p["max_customer_group_members"].as_u64()
        ),
        (Some(2000), Some(500)),
        "defaults unchanged: {p}"
    );

    // Transfers to a departed, an external, an unknown account, and other
    // nonsense: each its own code, nothing changes.
    let before = state_hash(&c, 0).await;
    let served_before = served(&c, 0, "ann").await;
    for (body, status, want) in [
        (
            json!({"from": "ann", "to": "gone", "externals": ["c1"]}),
            403,
            "account_inactive",
        ),
        (
            json!({"from": "ann", "to": "c2", "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "nobody", "externals": ["c1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "nobody", "to": "bob", "externals": ["c1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "ann", "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (json!({"from": "ann", "to": "bob"}), 400, "invalid_argument"),
        (
            json!({"from": "ann", "to": "bob", "externals": ["d1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "bob", "groups": ["xg99"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "bob", "all": true, "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "bob", "externals": ["c1"], "message": "a\u{0}b"}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "bob", "externals": ["c1"], "colour": "red"}),
            400,
            "invalid_body",
        ),
    ] {
        let (s, v) = admin(
            &c,
            0,
            Method::POST,
            "/v1/external/transfers",
            Some(body.clone()),
        )
        .await;
        assert_eq!((s, code(&v)), (status, Some(want)), "{body}: {v}");
    }
    // Through the client API: an external, a colleague who leads nothing,
    // a leader for a departed employee.
    expect_code(
        &a[1],
        Method::POST,
        "/v1/external/transfers",
        Some(&c1),
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
        (403, Some("external_account")),
    )
    .await;
    expect_code(
        &a[0],
        Method::POST,
        "/v1/external/transfers",
        Some(&bob),
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
        (403, Some("forbidden")),
    )
    .await;
    let (s, v) = a[0]
        .call(
            Method::POST,
            "/v1/external/transfers",
            Some(&lee),
            Some(json!({"from": "ann", "to": "gone", "externals": ["c1"]})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, Some("account_inactive")), "{v}");
    // The sysadmin's only: the auditor may not transfer.
    let (s, _) = admin_as(
        &c,
        &ops.aud,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "refused transfers changed the state"
    );
    assert_eq!(served(&c, 0, "ann").await, served_before);
    let (s, v) = admin(&c, 0, Method::GET, "/v1/external/transfers", None).await;
    assert_eq!(
        (s, v["transfers"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    // Customer groups over the limit.
    set_policy(&c, &ops, json!({"max_customer_group_members": 3})).await;
    let before = state_hash(&c, 0).await;
    let create = |members: Value| {
        let a = &a[0];
        let ann = ann.clone();
        async move {
            a.call(
                Method::POST,
                "/v1/external/groups",
                Some(&ann),
                Some(json!({"name": "大群", "members": members})),
            )
            .await
        }
    };
    let (s, v) = create(json!(["bob", "c1", "c2"])).await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "4 members with a limit of 3: {v}"
    );
    // Someone else's contact, an unknown account, a departed employee.
    let (s, v) = create(json!(["d1"])).await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    let (s, v) = create(json!(["nobody"])).await;
    assert_eq!((s, code(&v)), (404, Some("not_found")), "{v}");
    let (s, v) = create(json!(["gone"])).await;
    assert_eq!((s, code(&v)), (403, Some("account_inactive")), "{v}");
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "refused groups changed the state"
    );
    let (s, g) = create(json!(["c1", "c2"])).await;
    assert_eq!((s, g["member_count"].as_u64()), (200, Some(3)), "{g}");
    let gid = g["id"].as_str().expect("id").to_string();
    let before = state_hash(&c, 0).await;
    expect_code(
        &a[0],
        Method::POST,
        &format!("/v1/conversations/{gid}/members"),
        Some(&ann),
        Some(json!({"userids": ["bob"]})),
        (422, Some("limit_exceeded")),
    )
    .await;
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused member changed the state"
    );
    let (s, v) = a[0]
        .call(
            Method::GET,
            &format!("/v1/conversations/{gid}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!((s, v["member_count"].as_u64()), (200, Some(3)), "{v}");

    // Invitations over the employee's limit (contacts + open invitations).
    set_policy(&c, &ops, json!({"max_contacts_per_employee": 3})).await;
    let open = invite(&a[0], &ann).await;
    let before = state_hash(&c, 0).await;
    let (s, v) = a[0]
        .call(Method::POST, "/v1/external/invitations", Some(&ann), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "2 contacts + 1 open invitation: {v}"
    );
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused invitation changed the state"
    );
    assert_eq!(contacts(&a[0], &ann).await, vec!["c1", "c2"]);
    c.wait_converged().await;
    let (s, v) = accept(&a[1], open["code"].as_str().expect("code"), "c3", "ACME").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = a[0]
        .call(Method::POST, "/v1/external/invitations", Some(&ann), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "3 contacts: {v}"
    );
    // A transfer that would take bob past the limit (1 + 3 > 3).
    let before = state_hash(&c, 0).await;
    let (s, v) = admin(
        &c,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "ann", "to": "bob", "all": true})),
    )
    .await;
    assert_eq!((s, code(&v)), (422, Some("limit_exceeded")), "{v}");
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused transfer changed the state"
    );
    assert_eq!(contacts(&a[0], &ann).await, vec!["c1", "c2", "c3"]);
    assert_eq!(contacts(&a[0], &bob).await, vec!["d1"]);

    // A disabled external account cannot log in; enabled again, it can.
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/c1/disabled",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((s, v["disabled"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = a[0].call(Method::GET, "/v1/me", Some(&c1), None).await;
    assert_eq!(s, 401, "a disabled account's session goes on: {v}");
    let (s, v) = a[0]
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "c1", "password": PW})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (403, Some("account_inactive")),
        "a disabled external logged in: {v}"
    );
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/c1/disabled",
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    login(&a[0], "c1").await;
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/ann/disabled",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (404, Some("not_found")),
        "an employee is no external account: {v}"
    );
    same_state_everywhere(&c).await;
}
