//! The messaging API against real `enclave` processes: bad input of every
//! kind gets a specific error and changes nothing; live push and exact
//! resume across nodes, with a leader killed in between.

use std::time::Duration;

use enclave_certs::Role;
use enclave_ops::Client;
use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};

#[path = "messaging/bad_input.rs"]
mod bad_input;

const PW: &str = "correct horse battery";

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

async fn head(api: &Api, token: &str) -> u64 {
    let (s, v) = api.call(Method::GET, "/v1/me", Some(token), None).await;
    assert_eq!(s, 200, "{v}");
    v["sync_head"].as_u64().expect("head")
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_failed_logins_until_an_admin_unlocks() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["dan"], PW).await;
    let a = api(&mut c, 0);
    for _ in 0..5 {
        let (s, _) = a
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"userid": "dan", "password": "nope nope"})),
            )
            .await;
        assert_eq!(s, 401);
    }
    // Even the right password is refused while locked.
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "dan", "password": PW})),
        )
        .await;
    assert_eq!((s, code(&v)), (423, "account_locked"), "{v}");
    let (s, _) = c
        .admin(0)
        .request(
            Method::POST,
            "/v1/directory/members/dan/unlock",
            Some(b"{}".to_vec()),
        )
        .await
        .expect("unlock");
    assert!(s.is_success());
    a.login("dan", PW).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_push_across_nodes_and_exact_resume_on_another_node_after_leader_loss() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let leader = c.leader().await;
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (na, nb) = (others[0], others[1]);
    let api_a = api(&mut c, na);
    let api_b = api(&mut c, nb);
    let api_l = api(&mut c, leader);
    let ann = api_a.login("ann", PW).await;
    let bob = api_b.login("bob", PW).await;

    // Live, in both directions, each user on their own node.
    let mut sa = api_a.stream(&ann, None).await;
    let mut sb = api_b.stream(&bob, None).await;
    sa.until_synced().await;
    sb.until_synced().await;
    // Messages are stored once from log version 5, where a fresh cluster
    // moves by itself: a retry is then answered from a reference.
    c.wait_log_version(0, 5).await;
    let sent = api_a.send_direct(&ann, "bob", "hi bob", "a1").await;
    // The answer echoes the sender's id (and so does every retry, below).
    assert_eq!(sent["client_msg_id"], "a1", "{sent}");
    let got = sb.messages(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "bob got nothing live");
    assert_eq!(got[0]["message"]["text"], "hi bob");
    // Ann's own devices see what she sent, too.
    let echo = sa.messages(1, Duration::from_secs(20)).await;
    assert_eq!(echo[0]["message"]["text"], "hi bob");
    api_b.send_direct(&bob, "ann", "hi ann", "b1").await;
    let got = sa.messages(1, Duration::from_secs(20)).await;
    assert_eq!(got[0]["message"]["text"], "hi ann");
    let token = sa.token.clone().expect("ann has a token");
    sa.close().await;
    // A retried send, through any node, answers the message it posted,
    // whole (the idempotency record keeps only a reference to it).
    for retry in [&api_a, &api_l, &api_b] {
        let again = retry.send_direct(&ann, "bob", "hi bob", "a1").await;
        assert_eq!(again, sent, "a retry answered differently");
    }

    // Ann is away; bob sends 100, and the leader dies half-way.
    for i in 0..50 {
        api_b
            .send_direct(&bob, "ann", &format!("m{i}"), &format!("b-{i}"))
            .await;
    }
    c.kill(leader);
    for i in 50..100 {
        api_b
            .send_direct(&bob, "ann", &format!("m{i}"), &format!("b-{i}"))
            .await;
    }
    // Ann comes back on the third node (restarted, catching up) with her token.
    c.restart(leader);
    let mut sa = api_l.stream(&ann, Some(&token)).await;
    let got = sa.messages(100, Duration::from_secs(60)).await;
    let texts: Vec<String> = got
        .iter()
        .map(|v| {
            v["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "missing, repeated or out of order");
    // Nothing more (no duplicates trailing).
    let extra = sa.messages(1, Duration::from_secs(1)).await;
    assert!(extra.is_empty(), "duplicate after the 100: {extra:?}");
    // The same token on the long-poll API gives the same 100.
    let (s, v) = api_a
        .call(
            Method::GET,
            &format!("/v1/sync?since={token}&limit=1000"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let polled: Vec<String> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| {
            e["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(polled, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclavectl_manages_the_directory_and_only_secadmin_sets_policy() {
    use enclave_tests::proc::enclavectl;
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    let admin = c.admin_dir.display().to_string();
    let url = c.nodes[0].admin_url();
    let ctl = |args: &[&str]| {
        let mut all = vec!["--cert-dir", admin.as_str(), "--endpoint", url.as_str()];
        all.extend_from_slice(args);
        enclavectl(&all)
    };
    let (code, out, err) = ctl(&["directory", "dept", "put", "1", "--name", "Enterprise"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(&[
        "directory",
        "dept",
        "put",
        "2",
        "--name",
        "Ops",
        "--parent",
        "1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let pwfile = c.pki.path().join("pw");
    std::fs::write(&pwfile, format!("{PW}\n")).expect("write");
    let pw = pwfile.display().to_string();
    let (code, out, err) = ctl(&[
        "directory",
        "member",
        "add",
        "ann",
        "--name",
        "安妮",
        "--dept",
        "2",
        "--password-file",
        &pw,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = ctl(&["directory", "member", "show", "ann"]);
    assert_eq!(code, 0);
    assert!(out.contains("password set: true"), "{out}");
    // The member logs in with the initial password and must change it.
    let a = api(&mut c, 0);
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "ann", "password": PW})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["must_change_password"], true);
    // Name search finds her (case-insensitive prefix, CJK too).
    let token = v["access_token"].as_str().expect("token");
    let (s, v) = a
        .call(
            Method::GET,
            "/v1/directory/members?q=%E5%AE%89",
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"][0]["userid"], "ann", "{v}");
    // Member list by department and by pinyin initials (安妮 = an ni).
    let (code, out, err) = ctl(&["directory", "member", "list", "--dept", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ann"), "{out}");
    let (code, out, _) = ctl(&["directory", "member", "list", "--q", "an"]);
    assert_eq!(code, 0);
    assert!(out.contains("ann"), "{out}");
    // Permissions: granted and revoked by the sysadmin, shown to the member.
    let (code, out, err) = ctl(&["directory", "permission", "grant", "ann", "notice:urgent"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = ctl(&["directory", "permission", "holders", "notice:urgent"]);
    assert_eq!((code, out.trim()), (0, "ann"), "{out}");
    let (code, out, _) = ctl(&["directory", "member", "show", "ann"]);
    assert_eq!(code, 0);
    assert!(out.contains("permissions: notice:urgent"), "{out}");
    let (s, v) = a.call(Method::GET, "/v1/me", Some(token), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["permissions"], json!(["notice:urgent"]), "{v}");
    let (code, _, err) = ctl(&["directory", "permission", "grant", "ann", "notice:all"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown permission"), "{err}");
    let (code, _, err) = ctl(&[
        "directory",
        "permission",
        "grant",
        "nobody",
        "notice:urgent",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not_found"), "{err}");
    let (code, out, err) = ctl(&["directory", "permission", "revoke", "ann", "notice:urgent"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = ctl(&["directory", "permission", "holders", "notice:urgent"]);
    assert_eq!(code, 0);
    assert!(out.contains("nobody holds"), "{out}");
    // A department with members cannot be deleted; the error names why.
    let (code, _, err) = ctl(&["directory", "dept", "delete", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("department_not_empty"), "{err}");
    // Sysadmin may not change the security policy.
    let (code, _, err) = ctl(&["policy", "set", "recall_window_ms=1000"]);
    assert_eq!(code, 1);
    assert!(err.contains("403") || err.contains("forbidden"), "{err}");
    let sec = c.pki.operator("sec", Role::Secadmin).display().to_string();
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &sec,
        "--endpoint",
        &url,
        "policy",
        "set",
        "recall_window_ms=1000",
        "directory_visibility=own_departments",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("own_departments"), "{out}");
    // Departing is final and locks the member out.
    let (code, out, err) = ctl(&["directory", "member", "status", "ann", "departed"]);
    assert_eq!(code, 0, "{out}{err}");
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "ann", "password": PW})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("account_inactive")),
        "{v}"
    );
    let (code, _, err) = ctl(&["directory", "member", "status", "ann", "active"]);
    assert_eq!(code, 1, "{err}");
}

/// Read one HTTP/1.1 response (headers and a Content-Length body) from a
/// raw connection; None if the connection closed or failed first.
async fn read_response<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match r.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A request the server refuses before looking at its body (here: no
/// token) still gets its refusal intact when the body arrives in pieces,
/// and the connection stays usable. Before the server read whole bodies
/// first, it answered at once and closed with the rest unread, and the
/// client could get a TCP reset instead of the answer (seen by
/// schemathesis on a loaded CI machine as "EOF occurred in violation of
/// protocol").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refusal_arrives_intact_while_the_body_is_still_coming() {
    use tokio::io::AsyncWriteExt;
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    let a = api(&mut c, 0);
    let text = "x".repeat(30_000);
    let body = serde_json::to_vec(&json!({ "text": text })).expect("json");
    let mut conn = a.raw_tls().await;
    let head = format!(
        "POST /v1/conversations/g1/messages HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body[..1000]).await.expect("first part");
    conn.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The server must not have closed: the rest of the body goes through.
    conn.write_all(&body[1000..])
        .await
        .expect("rest of the body");
    conn.flush().await.expect("flush");
    let (status, text) = read_response(&mut conn)
        .await
        .expect("the refusal arrives, not a reset");
    assert_eq!(status, 401, "{text}");
    assert!(
        text.contains("unauthorized") || text.contains("token"),
        "{text}"
    );
    // Same connection, next request.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("second request");
    conn.flush().await.expect("flush");
    let (status, text) = read_response(&mut conn)
        .await
        .expect("the connection was kept open");
    assert_eq!(status, 200, "{text}");
}

/// A follower that trails the leader (its log flush slowed by the fault
/// hook) answers a plain read from what it has applied, but a read with
/// `consistency=linearizable` waits until it includes every write
/// acknowledged before the read began: a tool that creates a group on one
/// node and lists its members on another gets the whole group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_on_a_trailing_follower_includes_what_was_just_acknowledged() {
    let mut c = TestCluster::prepare(3, NodeSpec::default(), false);
    let mut faults = Vec::new();
    for i in 0..3 {
        let dir = c.pki.path().join(format!("faults-{i}"));
        std::fs::create_dir_all(&dir).expect("fault dir");
        c.node_env[i].push(("ENCLAVE_FAULT_DIR".into(), dir.display().to_string()));
        faults.push(dir);
    }
    let mut c = c.boot().await;
    seed_directory(&c, 0, &["ann", "bob", "cai"], PW).await;
    let leader = c.leader().await;
    let slow = (leader + 1) % 3;
    let api_l = api(&mut c, leader);
    let api_s = api(&mut c, slow);
    let ann = api_l.login("ann", PW).await;
    let bob = api_s.login("bob", PW).await;
    let (s, v) = api_s
        .call(
            Method::GET,
            "/v1/sync?consistency=linearizable",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let since = v["next"].as_str().expect("next").to_string();

    // The follower now takes 1.5 s to flush each append: the leader and the
    // third node commit without it.
    std::fs::write(faults[slow].join("fsync_delay_ms"), "1500").expect("knob");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = api_l
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&ann),
            Some(json!({"name": "launch", "members": ["bob", "cai"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let group = v["id"].as_str().expect("group id").to_string();
    let members_path = format!("/v1/conversations/{group}/members");

    // Locally the follower has not applied the group yet (so this test
    // would fail without the barrier)...
    let (s, v) = api_s
        .call(Method::GET, &members_path, Some(&bob), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (403, "not_a_member"),
        "the trailing follower already had the group: {v}"
    );
    // ...but a linearizable read waits for it.
    let (s, v) = api_s
        .call(
            Method::GET,
            &format!("{members_path}?consistency=linearizable"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut ids: Vec<&str> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["userid"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ann", "bob", "cai"], "{v}");

    // The same for sync and the conversation list: the next write is not
    // on the follower yet, and a linearizable read includes it.
    let (s, v) = api_l
        .call(
            Method::POST,
            &format!("/v1/conversations/{group}/messages"),
            Some(&ann),
            Some(json!({"text": "kick-off at nine", "client_msg_id": "k1"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let seq = v["seq"].as_u64().expect("seq");
    let (s, v) = api_s
        .call(
            Method::GET,
            &format!("/v1/sync?since={since}&consistency=linearizable"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let texts: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "message")
        .filter_map(|e| e["message"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["kick-off at nine"], "{v}");
    let (s, v) = api_s
        .call(
            Method::GET,
            "/v1/conversations?consistency=linearizable",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let listed = v["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["id"] == group.as_str())
        .unwrap_or_else(|| panic!("the group is not listed: {v}"));
    assert_eq!(listed["last_seq"].as_u64(), Some(seq), "{listed}");

    // A follower that cannot apply that far in time says so (not "no
    // leader"): its flushes now take 15 s, past the 10 s write timeout.
    std::fs::write(faults[slow].join("fsync_delay_ms"), "15000").expect("knob");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = api_l
        .call(
            Method::POST,
            &format!("/v1/conversations/{group}/messages"),
            Some(&ann),
            Some(json!({"text": "agenda attached", "client_msg_id": "k2"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api_s
        .call(
            Method::GET,
            &format!("{members_path}?consistency=linearizable"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (503, "unavailable"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has not applied what the cluster committed")),
        "{v}"
    );

    // Anything else is refused, by name.
    let (s, v) = api_s
        .call(
            Method::GET,
            "/v1/sync?consistency=eventual",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_query"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("eventual")),
        "{v}"
    );
    std::fs::write(faults[slow].join("fsync_delay_ms"), "0").expect("knob");
}
