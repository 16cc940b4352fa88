//! Keyword auto-replies fire exactly once per matching message, even when the leader dies right after.

use super::*;

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
