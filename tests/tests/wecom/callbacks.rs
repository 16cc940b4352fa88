//! Callbacks arrive in order after a receiver outage and a leader kill.

use super::*;

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
