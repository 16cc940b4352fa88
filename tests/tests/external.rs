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
use enclave_tests::metrics::sum as metric;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(30);

#[path = "external/auto_reply.rs"]
mod auto_reply;
#[path = "external/bad_input.rs"]
mod bad_input;
#[path = "external/departure.rs"]
mod departure;
#[path = "external/invitation.rs"]
mod invitation;
#[path = "external/transfer.rs"]
mod transfer;

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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
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
