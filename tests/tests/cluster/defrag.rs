//! Giving disk space back: `enclave defrag` on a stopped node, and
//! `enclavectl cluster defrag` / `node defrag` while the cluster serves.

use std::time::Duration;

use enclave_tests::cluster::{Load, TestCluster};
use enclave_tests::proc::enclavectl;
use enclave_tests::wait_for_async;

use super::fast_compaction;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defragmented_node_comes_back_with_everything_offline_or_online() {
    let mut c = TestCluster::start(3, fast_compaction()).await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 3;
    let mut keys = Vec::new();
    for round in 0..2 {
        for i in 0..150 {
            let k = format!("d-{i}");
            // Overwritten once: the store holds dead versions.
            let v = if round == 0 {
                "old".to_string()
            } else {
                k.clone()
            };
            c.put(leader, &k, &v).await.expect("write");
            if round == 0 {
                keys.push(k);
            }
        }
    }
    c.wait_converged().await;
    // The snapshot's size is on /metrics, next to the store's: their ratio
    // is what EnclaveStoreNeedsDefrag watches. The victim builds its
    // snapshot in the background, and waits while a peer builds its own
    // (one build at a time in the cluster): wait for it.
    let gauge = |text: &str, name: &str| -> u64 {
        enclave_tests::metrics::sample(text, name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics")) as u64
    };
    let (store, snap) = wait_for_async(
        "the follower's first snapshot",
        Duration::from_secs(60),
        || async {
            let text = c.admin(victim).get_text("/metrics").await.ok()?;
            let snap = gauge(&text, "enclave_snapshot_bytes");
            (snap > 0).then(|| (gauge(&text, "enclave_store_bytes"), snap))
        },
    )
    .await;
    assert!(store > snap, "store {store} B, snapshot {snap} B");
    let data_dir = c.nodes[victim].data_dir.display().to_string();
    let defrag = || {
        std::process::Command::new(enclave_tests::bin("enclave"))
            .args(["defrag", "--json", "--data-dir", &data_dir])
            .output()
            .expect("run enclave defrag")
    };
    let out = defrag();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "defragmented a running node's store");
    assert!(err.contains("stop the node first"), "{err}");

    c.kill(victim);
    let out = loop {
        // The killed process's file lock goes with it, at once or nearly.
        let out = defrag();
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("in use") {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(report["records"].as_u64() > Some(150), "{report}");
    assert!(report["bytes_after"].as_u64() > Some(0), "{report}");

    for i in 0..50 {
        let k = format!("after-{i}");
        c.put(leader, &k, &k).await.expect("write");
        keys.push(k);
    }
    c.restart(victim);
    c.wait_converged().await;
    c.assert_all_present(&keys).await;
    assert_eq!(
        c.get(victim, "d-7", false).await.expect("local read"),
        Some("d-7".into()),
        "the latest value, not an older one"
    );

    // Online: `enclavectl cluster defrag` restarts each node in place in
    // turn (followers first, the leader last after handing leadership
    // over) while writes go on; nothing acknowledged is lost.
    let leader = c.leader().await;
    let (st, body) = c
        .admin(leader)
        .request(http::Method::POST, "/v1/node/defrag", None)
        .await
        .expect("ask the leader");
    let refusal: serde_json::Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(st, http::StatusCode::CONFLICT, "{refusal}");
    assert_eq!(refusal["error"]["code"], "leader", "{refusal}");
    let leader_name = c.nodes[leader].name.clone();
    let pids: Vec<u32> = (0..3).map(|i| c.endpoints(i).pid).collect();
    let load = Load::start(&c, "online");
    let admin_dir = c.admin_dir.display().to_string();
    let endpoint = c.nodes[victim].admin_url();
    let args = [
        "--cert-dir".to_string(),
        admin_dir.clone(),
        "--endpoint".into(),
        endpoint.clone(),
        "--output".into(),
        "json".into(),
        "cluster".into(),
        "defrag".into(),
        "--timeout".into(),
        "5m".into(),
    ];
    // Off the runtime's two workers: the load runs meanwhile.
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        enclavectl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .expect("enclavectl");
    let (acked, _) = load.stop().await;
    assert_eq!(code, 0, "enclavectl cluster defrag: {err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    let done = report["defragmented"].as_array().expect("defragmented");
    let order: Vec<&str> = done.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(order.len(), 3, "{report}");
    assert_eq!(order[2], leader_name, "the leader goes last: {report}");
    assert!(
        done[2]["leadership_moved_to"].is_string(),
        "leadership moved away first: {report}"
    );
    for r in done {
        assert!(r["store_bytes_after"].as_u64() > Some(0), "{report}");
    }
    assert!(
        acked.len() > 10,
        "writes went on: {} acknowledged",
        acked.len()
    );
    for (i, before) in pids.iter().enumerate() {
        // The same process (pid) serves again: it restarted in place.
        let pid = c.endpoints(i).pid;
        assert_eq!(pid, *before, "node {i} restarted in place");
        let last: serde_json::Value = c
            .admin(i)
            .get_json("/v1/node/defrag")
            .await
            .expect("last outcome");
        assert_eq!(last["last"]["ok"], true, "node {i}: {last}");
        let log = c.procs[i].as_ref().expect("node running").log_text();
        assert!(
            log.contains("store defragmented"),
            "node {i} (pid {pid}) did not defragment"
        );
        assert!(
            !c.nodes[i].data_dir.join("defrag.requested").exists(),
            "node {i}: the request is removed once done"
        );
    }
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
    c.assert_all_present(&keys).await;
    // Each accepted request is in the audit trail (written before the
    // node began to stop), and so is the leader's refusal.
    let auditor = c.pki.operator("aud", enclave_certs::Role::Auditor);
    let trail: serde_json::Value = enclave_ops::Client::with_cert_dir(&endpoint, &auditor)
        .expect("auditor client")
        .get_json("/v1/audit?action=node.defrag")
        .await
        .expect("audit trail");
    let outcomes: Vec<&str> = trail["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["record"]["action"] == "node.defrag")
        .filter_map(|r| r["record"]["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "ok").count(),
        3,
        "one node.defrag record per node: {outcomes:?}"
    );
    assert!(outcomes.contains(&"failed:409"), "{outcomes:?}");

    // Only nodes over a ratio: right after a defragmentation none is.
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &admin_dir,
        "--endpoint",
        &endpoint,
        "--output",
        "json",
        "cluster",
        "defrag",
        "--over",
        "1000",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(report["defragmented"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["skipped"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );

    // Two followers asked at the same moment never both go down: each
    // says it is restarting before it looks at the others.
    let leader = c.leader().await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (a, b) = (c.admin(followers[0]), c.admin(followers[1]));
    let (ra, rb) = tokio::join!(
        a.request(http::Method::POST, "/v1/node/defrag", None),
        b.request(http::Method::POST, "/v1/node/defrag", None)
    );
    let answers: Vec<(u16, serde_json::Value)> = [ra, rb]
        .into_iter()
        .map(|r| {
            let (st, body) = r.expect("an answer");
            (
                st.as_u16(),
                serde_json::from_slice(&body).unwrap_or_default(),
            )
        })
        .collect();
    let accepted = answers.iter().filter(|(st, _)| *st == 202).count();
    assert!(
        accepted <= 1,
        "both followers went down at once: {answers:?}"
    );
    for (st, v) in &answers {
        assert!(
            *st == 202 || (*st == 409 && v["error"]["code"] == "no_quorum_without_this_node"),
            "{st} {v}"
        );
    }
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
}
