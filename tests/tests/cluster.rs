//! Raft replication against real `enclave` processes on loopback, each with
//! its own data dir: writes from any node, leader loss, catch-up by log and
//! by snapshot, membership changes under load, damaged stores.

use std::time::Duration;

use enclave_tests::cluster::{Load, TestCluster};
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;

#[path = "cluster/defrag.rs"]
mod defrag;

fn fast_compaction() -> NodeSpec {
    NodeSpec {
        env: vec![
            ("ENCLAVE_RAFT__SNAPSHOT_EVERY".into(), "50".into()),
            ("ENCLAVE_RAFT__KEEP_LOGS".into(), "0".into()),
        ],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sent_to_a_follower_is_applied_on_all_three_nodes() {
    let c = TestCluster::start(3, NodeSpec::default()).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let index = c
        .put(follower, "greeting", "hello")
        .await
        .expect("write via follower");
    assert!(index > 0);
    c.wait_converged().await;
    for i in 0..3 {
        assert_eq!(
            c.get(i, "greeting", false).await.expect("read"),
            Some("hello".into()),
            "node {i}"
        );
    }
    // `?prev=true` answers the value it replaced (as bytes); a plain PUT
    // does not read it and answers only the index.
    let put = |path: &'static str, value: &'static [u8]| {
        let client = c.admin(follower);
        async move {
            let (st, body) = client
                .request(http::Method::PUT, path, Some(value.to_vec()))
                .await
                .expect("put");
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
            (st.as_u16(), v)
        }
    };
    let (st, v) = put("/v1/kv/greeting?prev=true", b"hi").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["previous"], serde_json::json!(b"hello".to_vec()), "{v}");
    let (st, v) = put("/v1/kv/greeting", b"hey").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v.get("previous").is_none() && v["index"].as_u64() > Some(index),
        "{v}"
    );
    let (st, v) = put("/v1/kv/greeting?prev=maybe", b"x").await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_query", "{v}");
    assert_eq!(
        c.get(leader, "greeting", true).await.expect("read"),
        Some("hey".into()),
        "a refused write changes nothing"
    );

    // A linearizable read on a follower sees a write acknowledged just before.
    c.put(leader, "fresh", "v2").await.expect("write");
    assert_eq!(
        c.get(follower, "fresh", true)
            .await
            .expect("linearizable read"),
        Some("v2".into())
    );

    // Every node knows the cluster id; peer RPCs from another cluster are refused.
    let s = c.status(leader).await.expect("status");
    let id = s["this_node"]["cluster_id"]
        .as_str()
        .expect("cluster id")
        .to_string();
    for m in s["members"].as_array().expect("members") {
        assert_eq!(m["status"]["cluster_id"], id.as_str(), "{m}");
    }
    let peer = format!("https://127.0.0.1:{}", c.nodes[leader].ports[0]);
    let mut as_follower = enclave_ops::Client::with_cert_dir(&peer, &c.nodes[follower].tls_dir)
        .expect("client")
        .session();
    let (st, body) = as_follower
        .request(
            http::Method::POST,
            "/raft/v1/status",
            Some(Vec::new()),
            &[("x-enclave-cluster", "another-cluster")],
        )
        .await
        .expect("request");
    assert_eq!(st.as_u16(), 409, "{}", String::from_utf8_lossy(&body));
    let (st, _) = as_follower
        .request(
            http::Method::POST,
            "/raft/v1/status",
            Some(Vec::new()),
            &[("x-enclave-cluster", &id)],
        )
        .await
        .expect("request");
    assert_eq!(st.as_u16(), 200);

    // Every node reports its group commits and applies on /metrics: the
    // follower made the writes above durable and applied them.
    let (st, body) = c
        .admin(follower)
        .request(http::Method::GET, "/metrics", None)
        .await
        .expect("metrics");
    assert_eq!(st.as_u16(), 200);
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| -> f64 {
        enclave_tests::metrics::sample(&text, name)
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert!(value("enclave_raft_log_flush_duration_seconds_count") >= 1.0);
    // Four writes, plus the membership entries of the cluster's formation.
    assert!(value("enclave_raft_log_flush_entries_sum") >= 4.0, "{text}");
    assert!(value("enclave_raft_apply_entries_sum") >= 4.0, "{text}");
    assert!(value("enclave_raft_apply_duration_seconds_sum") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let load = Load::start(&c, "k");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = c.leader().await;
    c.kill(old);
    // A new leader is elected and writes resume.
    let new = c.leader().await;
    assert_ne!(new, old);
    let before = c
        .put(new, "after-failover", "after-failover")
        .await
        .expect("write after failover");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acked, _failed) = load.stop().await;
    assert!(
        acked.len() > 10,
        "load made too little progress: {}",
        acked.len()
    );
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
    // The killed node restarts on its data dir and catches up.
    c.restart(old);
    let last = c.wait_converged().await;
    assert!(last >= before);
    let mut all = acked.clone();
    all.push("after-failover".into());
    c.assert_all_present(&all).await;
}

/// The leader's term, as the leader reports it.
async fn leader_and_term(c: &TestCluster) -> (usize, u64) {
    let leader = c.leader().await;
    let term = c
        .status(leader)
        .await
        .and_then(|s| s["this_node"]["term"].as_u64())
        .expect("leader status with a term");
    (leader, term)
}

/// A follower frozen (SIGSTOP) far past the point where it would campaign,
/// then a follower killed and restarted, both come back as followers: the
/// healthy leader keeps leading in the same term. openraft 0.9 alone let
/// such a follower raise the term on waking and depose the leader (2–6 s of
/// unavailability in the failover soak); the pre-vote round prevents it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_comes_back_does_not_depose_the_leader() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let (leader, term) = leader_and_term(&c).await;
    let f = (leader + 1) % 3;
    c.procs[f].as_ref().expect("follower runs").signal("STOP");
    // 5 s: more than twice the longest silence after which a voter asks
    // to campaign (1.5–2.1 s with the default timeouts).
    for k in 0..10 {
        let key = format!("frozen-{k}");
        c.put(leader, &key, &key)
            .await
            .expect("the leader keeps writing with one follower frozen");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.procs[f].as_ref().expect("follower runs").signal("CONT");
    c.wait_converged().await;
    // Another write after the follower is back and caught up.
    c.put(leader, "thawed", "thawed")
        .await
        .expect("write after the follower woke up");
    c.wait_converged().await;
    assert_eq!(
        leader_and_term(&c).await,
        (leader, term),
        "a follower waking from SIGSTOP must not change the leader or the term"
    );

    c.restart(f);
    c.wait_converged().await;
    // Give the restarted follower longer than its election timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.put(leader, "restarted", "restarted")
        .await
        .expect("write after the follower restarted");
    c.wait_converged().await;
    assert_eq!(
        leader_and_term(&c).await,
        (leader, term),
        "a restarted follower must not change the leader or the term"
    );
    let mut keys: Vec<String> = (0..10).map(|k| format!("frozen-{k}")).collect();
    keys.extend(["thawed".into(), "restarted".into()]);
    c.assert_all_present(&keys).await;
}

/// `enclavectl cluster transfer-leader` under write load moves the
/// leadership to the named follower (not to the third node, which the
/// pre-vote holds back while the transfer runs), and every acknowledged
/// write survives it. Before, replication traffic renewed the followers'
/// leases and the transfer usually failed under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_under_load_moves_leadership_to_the_named_node() {
    let c = TestCluster::start(3, NodeSpec::default()).await;
    let (leader, term) = leader_and_term(&c).await;
    let load = Load::start(&c, "t");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let target = (leader + 2) % 3;
    let name = c.nodes[target].name.clone();
    let (code, out, err) = tokio::task::block_in_place(|| {
        enclave_tests::proc::enclavectl(&[
            "--cert-dir",
            &c.admin_dir.display().to_string(),
            "--endpoint",
            // Sent to the other follower: it is forwarded to the leader.
            &c.nodes[(leader + 1) % 3].admin_url(),
            "cluster",
            "transfer-leader",
            &name,
        ])
    });
    assert_eq!(code, 0, "transfer-leader failed: {out}{err}");
    assert!(out.contains(&name), "{out}");
    let (now, new_term) = leader_and_term(&c).await;
    assert_eq!(now, target, "leadership went to the wrong node");
    assert!(new_term > term);
    c.put(target, "after-transfer", "after-transfer")
        .await
        .expect("write after the transfer");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut acked, _failed) = load.stop().await;
    assert!(
        acked.len() > 10,
        "load made too little progress: {}",
        acked.len()
    );
    acked.push("after-transfer".into());
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_compacted_log_catches_up_by_snapshot() {
    let mut c = TestCluster::start(3, fast_compaction()).await;
    let leader = c.leader().await;
    let victim = (leader + 1) % 3;
    c.kill(victim);
    let mut keys = Vec::new();
    for i in 0..200 {
        let k = format!("s-{i}");
        c.put(leader, &k, &k).await.expect("write");
        keys.push(k);
    }
    // The leader has compacted past what the victim has.
    let s = c.status(leader).await.expect("status");
    assert!(
        s["this_node"]["purged_index"].as_u64().unwrap_or(0) > 0,
        "leader log not compacted: {s}"
    );
    c.restart(victim);
    c.wait_converged().await;
    c.assert_all_present(&keys).await;
    let log = c.procs[victim].as_ref().expect("running").log_text();
    assert!(
        log.contains("snapshot installed"),
        "victim did not install a snapshot:\n{log}"
    );
}

/// `enclave defrag` on a stopped follower (killed, not shut down cleanly):
/// it refuses a running node's store, rewrites a stopped one, and the node
/// comes back with everything and catches up on what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_after_compaction_loses_nothing() {
    let mut c = TestCluster::start(3, fast_compaction()).await;
    let load = Load::start(&c, "c");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let old = c.leader().await;
    c.kill(old);
    c.leader().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (acked, _) = load.stop().await;
    c.restart(old);
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_a_node_and_add_a_fresh_one_under_load() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let load = Load::start(&c, "m");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let leader = c.leader().await;
    let victim = (leader + 2) % 3;
    let name = c.nodes[victim].name.clone();
    let (status, body) = c
        .admin(leader)
        .request(
            http::Method::DELETE,
            &format!("/v1/cluster/members/{name}"),
            None,
        )
        .await
        .expect("remove");
    assert!(
        status.is_success(),
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
    c.kill(victim);
    c.wait_voters(2).await;
    // Its certificate still chains to the CA, but it is no member any more:
    // the peer port refuses it everything but the Raft messages themselves.
    let peer = format!("https://127.0.0.1:{}", c.nodes[leader].ports[0]);
    let as_victim =
        enclave_ops::Client::unchecked_cert_dir(&peer, &c.nodes[victim].tls_dir).expect("client");
    let (status, body) = as_victim
        .request(http::Method::POST, "/raft/v1/status", Some(Vec::new()))
        .await
        .expect("request");
    assert_eq!(status.as_u16(), 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("not a member"));
    // Wipe it and bring it back as a fresh node with the same identity.
    std::fs::remove_dir_all(&c.nodes[victim].data_dir).expect("wipe");
    let p = c.spawn(victim);
    c.procs[victim] = Some(p);
    c.endpoints(victim);
    c.add(victim).await;
    c.wait_voters(3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (acked, _) = load.stop().await;
    assert!(!acked.is_empty());
    c.wait_converged().await;
    c.assert_all_present(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_refuses_to_start_and_the_others_carry_on() {
    damaged_store_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_store_refuses_to_start_and_the_others_carry_on() {
    damaged_store_case(true).await;
}

async fn damaged_store_case(truncate: bool) {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let leader = c.leader().await;
    for i in 0..20 {
        c.put(leader, &format!("d-{i}"), "x").await.expect("write");
    }
    let index = c.wait_converged().await;
    let victim = (leader + 1) % 3;
    // The victim's durability watermark has caught up with what it stored.
    wait_for_async(
        "the victim's watermark",
        Duration::from_secs(10),
        || async {
            let s = c.status(victim).await?;
            (s["this_node"]["watermark_committed"].as_u64()? >= index).then_some(())
        },
    )
    .await;
    c.kill(victim);
    // Damage the store: flip bytes in the middle of sled's data file.
    let store = c.nodes[victim].data_dir.join("store");
    let mut damaged = false;
    for entry in walk(&store) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        if entry.file_name().is_some_and(|n| n == "db") && len > 4096 {
            let mut bytes = std::fs::read(&entry).expect("read");
            if truncate {
                // A disk that lost the tail of the file.
                bytes.truncate(bytes.len() / 3);
            } else {
                for b in bytes.iter_mut().skip(1024).take(len as usize - 2048) {
                    *b ^= 0x5a;
                }
            }
            std::fs::write(&entry, bytes).expect("write");
            damaged = true;
        }
    }
    assert!(damaged, "no sled data file found under {}", store.display());
    let mut p = c.spawn(victim);
    let status = p.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(1),
        "a damaged node must refuse to start"
    );
    let log = p.log_text();
    assert!(
        log.contains("store") && (log.contains("damaged") || log.contains("corrupt")),
        "unclear error:\n{log}"
    );
    // The others carry on.
    let live = (victim + 1) % 3;
    wait_for_async(
        "the remaining nodes to accept writes",
        Duration::from_secs(30),
        || async { c.put(live, "still-alive", "yes").await.ok() },
    )
    .await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_into_a_fresh_cluster_gives_identical_state() {
    use enclave_tests::proc::{enclavectl, free_ports};
    let c = TestCluster::start(3, NodeSpec::default()).await;
    let leader = c.leader().await;
    for i in 0..100 {
        c.put((leader + i) % 3, &format!("b-{i}"), &format!("value-{i}"))
            .await
            .expect("write");
    }
    // At log version 6 (a fresh cluster moves there by itself) backups and
    // snapshots are written compressed. (The move is a write: wait for it
    // before taking the state's hash.)
    c.wait_log_version(leader, 6).await;
    let hash_of = |v: serde_json::Value| v["sha256"].as_str().unwrap_or_default().to_string();
    let original = hash_of(
        c.admin(leader)
            .get_json("/v1/cluster/state-hash")
            .await
            .expect("hash"),
    );
    let original_id = c.status(leader).await.expect("status")["this_node"]["cluster_id"].clone();
    // A join token of the old cluster must not open the restored one.
    let old_token: serde_json::Value = c
        .admin(leader)
        .post_json(
            "/v1/cluster/join-tokens",
            &serde_json::json!({ "ttl_secs": 600 }),
        )
        .await
        .expect("token");
    let file = c.pki.path().join("cluster.backup");
    let s = |p: &std::path::Path| p.display().to_string();
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &s(&c.admin_dir),
        "--endpoint",
        &c.nodes[leader].admin_url(),
        "backup",
        "create",
        "--out",
        &s(&file),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sha256"), "{out}");
    // Compressed: snapshot format version 2.
    let head = std::fs::read(&file).expect("backup file");
    assert_eq!(&head[..12], b"ENCLSNAP\x02\0\0\0", "format version");
    let (code, out, err) = enclavectl(&["backup", "verify", &s(&file)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"), "{out}");
    // A damaged copy fails verification.
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let damaged = c.pki.path().join("damaged.backup");
    std::fs::write(&damaged, bytes).expect("write");
    let (code, _, err) = enclavectl(&["backup", "verify", &s(&damaged)]);
    assert_eq!(code, 1);
    assert!(err.contains("damaged") || err.contains("checksum"), "{err}");

    // Restore into a brand-new node and grow it to three nodes.
    let mut fresh = TestCluster {
        pki: enclave_tests::pki::TestPki::new(),
        nodes: Vec::new(),
        procs: Vec::new(),
        admin_dir: Default::default(),
        spec: NodeSpec::default(),
        node_env: vec![Vec::new(); 3],
        node_bin: vec![None; 3],
        net: None,
        logs_on_drop: None,
    };
    fresh.admin_dir = fresh.pki.operator("admin", enclave_certs::Role::Sysadmin);
    for i in 1..=3 {
        let name = format!("node-{i}");
        let tls_dir = fresh.pki.node(&name);
        let data_dir = fresh.pki.path().join(format!("data-{i}"));
        fresh.nodes.push(enclave_tests::cluster::NodeInfo {
            name,
            data_dir,
            tls_dir,
            ports: free_ports::<3>(),
            ip: "127.0.0.1".into(),
        });
    }
    let out = std::process::Command::new(enclave_tests::bin("enclave"))
        .args([
            "restore",
            "--from",
            &s(&file),
            "--data-dir",
            &s(&fresh.nodes[0].data_dir),
        ])
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restoring twice into the same dir is refused.
    let out = std::process::Command::new(enclave_tests::bin("enclave"))
        .args([
            "restore",
            "--from",
            &s(&file),
            "--data-dir",
            &s(&fresh.nodes[0].data_dir),
        ])
        .output()
        .expect("restore");
    assert!(!out.status.success());
    for i in 0..3 {
        let p = fresh.spawn(i);
        fresh.procs.push(Some(p));
        fresh.endpoints(i);
    }
    // The restored node makes itself a cluster; add the two others.
    wait_for_async(
        "the restored node to lead",
        Duration::from_secs(30),
        || async {
            let s = fresh.status(0).await?;
            (s["this_node"]["state"] == "leader").then_some(())
        },
    )
    .await;
    fresh.add(1).await;
    fresh.add(2).await;
    fresh.wait_voters(3).await;
    fresh.wait_converged().await;
    for i in 0..3 {
        let h = hash_of(
            fresh
                .admin(i)
                .get_json("/v1/cluster/state-hash")
                .await
                .expect("hash"),
        );
        assert_eq!(
            h, original,
            "restored state differs on {}",
            fresh.nodes[i].name
        );
    }
    // The restore is in the restored cluster's audit trail, which
    // continues the source cluster's chain and still verifies.
    let auditor = fresh.pki.operator("aud", enclave_certs::Role::Auditor);
    let aud =
        enclave_ops::Client::with_cert_dir(&fresh.nodes[0].admin_url(), &auditor).expect("client");
    let v: serde_json::Value = aud
        .get_json("/v1/audit?action=backup.restore")
        .await
        .expect("audit");
    assert!(
        v["records"][0]["record"]["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:"),
        "no backup.restore record: {v}"
    );
    let restored = fresh.status(0).await.expect("status");
    assert!(restored["this_node"]["cluster_id"].is_string());
    assert_ne!(
        restored["this_node"]["cluster_id"], original_id,
        "a restored cluster gets its own id"
    );
    let ports = free_ports::<3>();
    let data = fresh.pki.path().join("data-intruder");
    let mut args = vec![
        "--join".to_string(),
        format!("https://127.0.0.1:{}", fresh.nodes[0].ports[0]),
        "--token".into(),
        old_token["token"].as_str().expect("token").into(),
        "--ca-hash".into(),
        fresh.pki.ca.fingerprint(),
        "--node-id".into(),
        "node-9".into(),
        "--data-dir".into(),
        s(&data),
    ];
    for (flag, p) in ["--listen-peer", "--listen-api", "--listen-admin"]
        .into_iter()
        .zip(ports)
    {
        args.extend([flag.to_string(), format!("127.0.0.1:{p}")]);
    }
    let mut intruder = enclave_tests::proc::NodeProc::start_plain(
        &data,
        NodeSpec {
            args,
            ..Default::default()
        },
    );
    assert_eq!(intruder.wait_exit(Duration::from_secs(30)).code(), Some(1));
    assert!(
        intruder.log_text().contains("unknown join token"),
        "{}",
        intruder.log_text()
    );
    assert_eq!(
        fresh.get(2, "b-42", false).await.expect("read"),
        Some("value-42".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_node_is_rebuilt_from_its_peers_with_two_commands() {
    use enclave_tests::proc::enclavectl;
    let mut c = TestCluster::start(3, fast_compaction()).await;
    let leader = c.leader().await;
    for i in 0..120 {
        c.put(leader, &format!("r-{i}"), &format!("r-{i}"))
            .await
            .expect("write");
    }
    let victim = (leader + 1) % 3;
    c.kill(victim);
    let name = c.nodes[victim].name.clone();
    let s = |p: &std::path::Path| p.display().to_string();
    // Command 1, against a healthy node: remove + token + the command to run.
    let (code, out, err) = enclavectl(&[
        "--cert-dir",
        &s(&c.admin_dir),
        "--endpoint",
        &c.nodes[leader].admin_url(),
        "--output",
        "json",
        "node",
        "rebuild",
        &name,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let cmd = v["command"].as_str().expect("command").to_string();
    let arg = |flag: &str| {
        cmd.split_whitespace()
            .skip_while(|w| *w != flag)
            .nth(1)
            .expect(flag)
            .to_string()
    };
    c.wait_voters(2).await;
    // Command 2, on the damaged node: wipe and rejoin, keeping its identity.
    let n = &c.nodes[victim];
    let spec = NodeSpec {
        args: vec![
            "--rebuild".into(),
            "--join".into(),
            arg("--join"),
            "--token".into(),
            arg("--token"),
            "--ca-hash".into(),
            arg("--ca-hash"),
            "--node-id".into(),
            name.clone(),
        ],
        ..fast_compaction()
    };
    let mut p = enclave_tests::proc::NodeProc::start_in(
        &n.data_dir,
        &n.tls_dir,
        &c.pki.ca_dir().join("crl.pem"),
        n.ports,
        spec,
    );
    p.endpoints();
    c.procs[victim] = Some(p);
    c.wait_voters(3).await;
    c.wait_converged().await;
    let keys: Vec<String> = (0..120).map(|i| format!("r-{i}")).collect();
    c.assert_all_present(&keys).await;
}

/// Once the state is large (a snapshot over 16 MiB), a node builds its next
/// snapshot only when the log since the last one holds
/// `raft.snapshot_log_percent` (25 %) of its size, however many entries
/// that takes: a build reads the whole state, so on the entry count alone
/// a big state would be rebuilt again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_state_is_snapshotted_again_after_a_share_of_its_size_not_a_count() {
    let spec = NodeSpec {
        env: vec![("ENCLAVE_RAFT__SNAPSHOT_EVERY".into(), "50".into())],
        ..Default::default()
    };
    let c = TestCluster::start(1, spec).await;
    let this = |s: serde_json::Value| s["this_node"].clone();
    let big = "x".repeat(60 << 10);
    // About 18 MiB of state, 50 writes at a time.
    for round in 0..6 {
        let keys: Vec<String> = (0..50).map(|k| format!("big-{round}-{k}")).collect();
        let puts = keys.iter().map(|k| c.put(0, k, &big));
        for r in futures_util::future::join_all(puts).await {
            r.expect("put");
        }
    }
    // Small writes until a snapshot holds it all (the entry count decides
    // while snapshots are under 16 MiB).
    let mut n = 0;
    let first = wait_for_async("a snapshot over 16 MiB", Duration::from_secs(120), || {
        n += 1;
        let (key, c) = (format!("small-{n}"), &c);
        async move {
            c.put(0, &key, "s").await.expect("put");
            let s = this(c.status(0).await?);
            (s["snapshot_bytes"].as_u64()? > 16 << 20).then(|| s["snapshot_index"].as_u64())?
        }
    })
    .await;
    // 100 small writes: twice `snapshot_every`, a few KiB of log.
    for k in 0..100 {
        c.put(0, &format!("tiny-{k}"), "t").await.expect("put");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // 10 checks of the trigger
    let s = this(c.status(0).await.expect("status"));
    assert_eq!(
        s["snapshot_index"].as_u64(),
        Some(first),
        "a snapshot was built on the entry count alone: {s}"
    );
    let since = s["log_bytes_since_snapshot"].as_u64().unwrap_or(0);
    assert!(
        (1..1 << 20).contains(&since),
        "log since the snapshot: {since} B"
    );
    // About 6 MiB more, over a quarter of the snapshot: now it is built.
    for round in 0..2 {
        let keys: Vec<String> = (0..50).map(|k| format!("more-{round}-{k}")).collect();
        let puts = keys.iter().map(|k| c.put(0, k, &big));
        for r in futures_util::future::join_all(puts).await {
            r.expect("put");
        }
    }
    let next = wait_for_async("the next snapshot", Duration::from_secs(120), || async {
        let s = this(c.status(0).await?);
        s["snapshot_index"].as_u64().filter(|i| *i > first)
    })
    .await;
    assert!(next > first);
}
