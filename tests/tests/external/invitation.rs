//! Invitations that work once (and expire); external accounts see only their own conversations.

use super::*;

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
