//! An in-service transfer waits for the objection window and can be cancelled.

use super::*;

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
