//! Rolling upgrade from the previous release to this build, under write
//! load (docs/operator/upgrade.md).
//!
//! The previous release is the commit named in `tests/previous-release`,
//! built once by `ops/build-previous.sh` into `target/upgrade-prev/` (cached
//! by commit; the first build compiles only the workspace's own crates).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use enclave_ops::Client;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use http::Method;
use serde_json::{Value, json};

fn previous_release() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let out = std::process::Command::new(root.join("ops/build-previous.sh"))
        .output()
        .expect("run ops/build-previous.sh");
    assert!(
        out.status.success(),
        "building the previous release failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    root.join("target/upgrade-prev/bin/enclave")
}

/// What the writer saw.
#[derive(Debug, Default)]
struct Written {
    kv: Vec<String>,
    depts: Vec<u64>,
    failed: usize,
    longest_gap: Duration,
    last_error: Option<String>,
}

/// Writes through every node in turn: a key-value write each round and a
/// directory department (a domain command) every fifth. Records what was
/// acknowledged and the longest time without any acknowledgement.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Written>,
}

impl Writer {
    fn start(c: &TestCluster, prefix: &str) -> Writer {
        let clients: Vec<Client> = (0..c.nodes.len())
            .map(|i| c.admin(i).with_timeout(Duration::from_secs(5)))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let prefix = prefix.to_string();
        let handle = tokio::spawn(async move {
            let mut w = Written::default();
            let mut last_ack = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let c = &clients[n as usize % clients.len()];
                let dept = n.is_multiple_of(5);
                let id = 10_000 + n;
                let key = format!("{prefix}-{n}");
                n += 1;
                let r = if dept {
                    c.request(
                        Method::PUT,
                        &format!("/v1/directory/departments/{id}"),
                        Some(
                            json!({ "parent": 1, "name": format!("D{id}") })
                                .to_string()
                                .into_bytes(),
                        ),
                    )
                    .await
                } else {
                    c.request(
                        Method::PUT,
                        &format!("/v1/kv/{key}"),
                        Some(key.clone().into_bytes()),
                    )
                    .await
                };
                match r {
                    Ok((s, _)) if s.is_success() => {
                        let now = Instant::now();
                        w.longest_gap = w.longest_gap.max(now - last_ack);
                        last_ack = now;
                        if dept {
                            w.depts.push(id);
                        } else {
                            w.kv.push(key);
                        }
                    }
                    other => {
                        w.failed += 1;
                        w.last_error = Some(match other {
                            Ok((s, b)) => format!("{s}: {}", String::from_utf8_lossy(&b)),
                            Err(e) => e.to_string(),
                        });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            w.longest_gap = w.longest_gap.max(last_ack.elapsed());
            w
        });
        Writer { stop, handle }
    }

    async fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("writer")
    }
}

/// Wait until node `i` has applied what the leader had committed when we
/// started waiting.
async fn caught_up(c: &TestCluster, i: usize) {
    let leader = c.leader().await;
    let target = wait_for_async(
        "the leader's commit index",
        Duration::from_secs(30),
        || async { c.status(leader).await?["this_node"]["committed_index"].as_u64() },
    )
    .await;
    wait_for_async(
        &format!("{} to catch up to {target}", c.nodes[i].name),
        Duration::from_secs(90),
        || async {
            let s = c.status(i).await?;
            (s["this_node"]["applied_index"].as_u64()? >= target).then_some(())
        },
    )
    .await;
}

/// The root department the writer's departments hang under.
async fn make_root(c: &TestCluster) {
    let (st, b) = c
        .admin(0)
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(br#"{"name":"Root"}"#.to_vec()),
        )
        .await
        .expect("root department");
    assert!(st.is_success(), "{}", String::from_utf8_lossy(&b));
}

async fn upgrade_check(c: &TestCluster, i: usize) -> Value {
    c.admin(i)
        .get_json("/v1/cluster/upgrade")
        .await
        .unwrap_or_else(|e| panic!("upgrade-check on {}: {e}", c.nodes[i].name))
}

/// Every acknowledged write is on every node.
async fn assert_written(c: &TestCluster, w: &Written) {
    c.wait_converged().await;
    c.assert_all_present(&w.kv).await;
    for i in c.live() {
        let v: Value = c
            .admin(i)
            .get_json("/v1/directory/departments")
            .await
            .expect("departments");
        let text = v.to_string();
        for id in &w.depts {
            assert!(
                text.contains(&format!("\"D{id}\"")),
                "acknowledged department {id} missing on {}",
                c.nodes[i].name
            );
        }
    }
}

/// Three nodes of the previous release, upgraded one at a time (followers
/// first, the leader last) under write load: nothing acknowledged is lost,
/// writes go on, and the cluster moves to the new log version only after
/// the last node runs the new build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_under_load_loses_nothing_and_moves_the_version_last() {
    let prev = previous_release();
    let mut c = TestCluster::prepare(3, NodeSpec::default(), false);
    c.node_bin = vec![Some(prev); 3];
    c.logs_on_drop = Some(std::env::temp_dir().join("enclave-upgrade-logs"));
    let mut c = c.boot().await;
    // The old build has no version route.
    let (s, _) = c
        .admin(0)
        .request(Method::GET, "/v1/cluster/upgrade", None)
        .await
        .expect("ask");
    assert_eq!(s.as_u16(), 404, "node-1 should run the previous release");

    make_root(&c).await;
    let writer = Writer::start(&c, "up");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = c.leader().await;
    let mut order: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    order.push(leader);
    let started = Instant::now();
    for (step, &i) in order.iter().enumerate() {
        c.node_bin[i] = None;
        c.restart(i);
        caught_up(&c, i).await;
        let check = upgrade_check(&c, i).await;
        println!(
            "upgraded {} ({} of 3) after {:?}: cluster log version {}, next {}",
            c.nodes[i].name,
            step + 1,
            started.elapsed(),
            check["cluster_version"],
            check["next"]
        );
        if step < 2 {
            // Some voter is still old: the version must not move, however
            // long we wait (the leader checks every 5 s).
            tokio::time::sleep(Duration::from_secs(6)).await;
            let check = upgrade_check(&c, i).await;
            assert_eq!(check["cluster_version"], 1, "moved early: {check}");
            assert_eq!(check["done"], false);
            let next = check["next"].as_str().expect("a next node").to_string();
            assert!(
                order[step + 1..].iter().any(|j| c.nodes[*j].name == next),
                "next should be a node not yet upgraded, got {next}: {check}"
            );
            // An operator cannot move it either, without force.
            let (s, b) = c
                .admin(i)
                .request(
                    Method::POST,
                    "/v1/cluster/version",
                    Some(
                        format!(r#"{{"version":{}}}"#, check["this_node"]["log_version"])
                            .into_bytes(),
                    ),
                )
                .await
                .expect("set version");
            assert_eq!(s.as_u16(), 409, "{}", String::from_utf8_lossy(&b));
            assert!(String::from_utf8_lossy(&b).contains("voters_behind"));
        }
    }
    // All three run the new build: the leader moves the version.
    let check = wait_for_async(
        "the cluster to move to this build's log version",
        Duration::from_secs(60),
        || async {
            let v: Value = c.admin(0).get_json("/v1/cluster/upgrade").await.ok()?;
            (v["cluster_version"] == v["this_node"]["log_version"] && v["done"] == true)
                .then_some(v)
        },
    )
    .await;
    assert_eq!(check["forced"], false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let w = writer.stop().await;
    let applied = c.status(0).await.expect("status")["this_node"]["applied_index"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "upgrade run: {} kv writes and {} departments acknowledged, {} attempts failed (last: {:?}), \
         longest gap without an acknowledged write {:?}, {} log entries applied, upgrade took {:?}",
        w.kv.len(),
        w.depts.len(),
        w.failed,
        w.last_error,
        w.longest_gap,
        applied,
        started.elapsed()
    );
    assert!(
        w.kv.len() > 50 && w.depts.len() > 10,
        "writes did not go on: {} kv, {} departments, last error {:?}",
        w.kv.len(),
        w.depts.len(),
        w.last_error
    );
    assert_written(&c, &w).await;
    // The move is in the audit trail.
    let auditor = c.pki.operator("aud", enclave_certs::Role::Auditor);
    let a = Client::with_cert_dir(&c.nodes[0].admin_url(), &auditor).expect("auditor");
    let trail: Value = a
        .get_json("/v1/audit?action=cluster.version.set")
        .await
        .expect("audit");
    let moved = format!("log_version:{}", check["this_node"]["log_version"]);
    assert!(
        trail.to_string().contains(&moved),
        "no audit record {moved:?} of the version move: {trail}"
    );
}

/// A node still on the previous release that meets an entry of the new
/// log version (the version forced past it) stops applying and says so; it
/// never skips the entry. Upgraded, it resumes from there and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_node_stops_applying_at_a_new_entry_and_resumes_when_upgraded() {
    let prev = previous_release();
    let mut c = TestCluster::prepare(3, NodeSpec::default(), false);
    // node-1 and node-2 new, node-3 old.
    c.node_bin[2] = Some(prev);
    c.logs_on_drop = Some(std::env::temp_dir().join("enclave-upgrade-halt-logs"));
    let mut c = c.boot().await;
    // The old node must not lead when the entry commits.
    if c.leader().await == 2 {
        let (s, b) = c
            .admin(0)
            .request(
                Method::POST,
                "/v1/cluster/transfer-leader",
                Some(br#"{"node":"node-1"}"#.to_vec()),
            )
            .await
            .expect("transfer");
        assert!(s.is_success(), "{}", String::from_utf8_lossy(&b));
        wait_for_async(
            "node-3 to stop leading",
            Duration::from_secs(30),
            || async { (c.leader().await != 2).then_some(()) },
        )
        .await;
    }
    let check = upgrade_check(&c, 0).await;
    assert_eq!(check["cluster_version"], 1);
    // The newest log version this build has (2 for 0.2.0).
    let newest = check["this_node"]["log_version"]
        .as_u64()
        .expect("log version");
    assert_eq!(check["next"], "node-3", "{check}");
    make_root(&c).await;
    let writer = Writer::start(&c, "halt");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Bad input first: a version this build does not have, a bad body.
    for (body, want) in [
        (format!(r#"{{"version":{},"force":true}}"#, newest + 1), 400),
        (r#"{"version":"2"}"#.to_string(), 400),
        (r#"{"version":2,"forse":true}"#.to_string(), 400),
    ] {
        let (s, b) = c
            .admin(0)
            .request(
                Method::POST,
                "/v1/cluster/version",
                Some(body.as_bytes().to_vec()),
            )
            .await
            .expect("set version");
        assert_eq!(s.as_u16(), want, "{body}: {}", String::from_utf8_lossy(&b));
    }
    assert_eq!(upgrade_check(&c, 0).await["cluster_version"], 1);

    let (s, b) = c
        .admin(0)
        .request(
            Method::POST,
            "/v1/cluster/version",
            Some(format!(r#"{{"version":{newest},"force":true}}"#).into_bytes()),
        )
        .await
        .expect("force");
    assert!(s.is_success(), "{}", String::from_utf8_lossy(&b));
    // node-3 stops applying, and says why.
    let reason = wait_for_async(
        "node-3 to report that it stopped applying",
        Duration::from_secs(30),
        || async {
            let api = Client::with_cert_dir(&c.nodes[2].api_url(), &c.admin_dir).ok()?;
            let (s, b) = api.request(Method::GET, "/readyz", None).await.ok()?;
            let text = String::from_utf8_lossy(&b).to_string();
            (s.as_u16() == 503 && text.contains("apply_halted")).then_some(text)
        },
    )
    .await;
    assert!(reason.contains("upgrade this node"), "{reason}");
    let halted_at = c.status(2).await.expect("status")["this_node"]["applied_index"]
        .as_u64()
        .expect("applied index");
    // It stays stopped while the others go on: nothing after the entry is
    // applied there (it was not skipped).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = c.status(2).await.expect("status")["this_node"]["applied_index"].as_u64();
    assert_eq!(
        later,
        Some(halted_at),
        "node-3 applied past the entry it cannot decode"
    );
    let log = c.procs[2].as_ref().expect("node-3").log_text();
    assert!(
        log.contains("stopped applying the replicated log"),
        "node-3's log does not say it stopped"
    );
    let leader_applied = c.status(0).await.expect("status")["this_node"]["applied_index"]
        .as_u64()
        .unwrap_or(0);
    assert!(leader_applied > halted_at, "the others should go on");

    // Upgraded, node-3 applies the entry and everything after it.
    c.node_bin[2] = None;
    c.restart(2);
    caught_up(&c, 2).await;
    let w = writer.stop().await;
    assert!(
        !w.depts.is_empty(),
        "no department written: {:?}",
        w.last_error
    );
    println!(
        "halt run: node-3 stopped at index {halted_at}; {} kv writes and {} departments acknowledged, {} failed, longest gap {:?}",
        w.kv.len(),
        w.depts.len(),
        w.failed,
        w.longest_gap
    );
    assert_written(&c, &w).await;
    let check = upgrade_check(&c, 2).await;
    assert_eq!(check["cluster_version"], newest);
    assert_eq!(check["forced"], true);
    assert_eq!(check["done"], true, "{check}");
}
