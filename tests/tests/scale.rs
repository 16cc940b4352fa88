//! The scale run, scaled down for CI: `enclavectl bench scale` seeds a
//! synthetic enterprise (department tree 6 deep, 5,000 members, 2,000
//! groups of mixed sizes, 1:1 conversations) into 3 real nodes through the
//! public APIs, drives a mix of sends, syncs, read markers, directory
//! lookups and logins, and checks the invariants: every acknowledged
//! message is in its sender's sync stream exactly once, and the counts
//! match the seed. Then a node is killed in the middle of a second run:
//! its clients move to the other nodes and nothing fails. Timings are
//! printed, never asserted.

use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::{NodeSpec, enclavectl};
use serde_json::Value;

const MEMBERS: u64 = 5_000;
const GROUPS: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_down_enterprise_keeps_every_message_and_every_count() {
    let spec = NodeSpec {
        // The bench's clients send faster than a member would.
        env: vec![("ENCLAVE_API__TOKEN_RATE_PER_SEC".into(), "0".into())],
        ..Default::default()
    };
    let mut c = TestCluster::start(3, spec).await;
    let admin_dir = c.admin_dir.to_string_lossy().into_owned();
    // Through node 2's admin port: the tool finds the others itself.
    let endpoint = c.endpoints(1).admin_url();
    let members = MEMBERS.to_string();
    let groups = GROUPS.to_string();
    let args = [
        "--cert-dir",
        admin_dir.as_str(),
        "--endpoint",
        endpoint.as_str(),
        "--output",
        "json",
        "bench",
        "scale",
        "--members",
        members.as_str(),
        "--groups",
        groups.as_str(),
        "--active",
        "100",
        "--direct",
        "1000",
        "--clients",
        "16",
        "--rate",
        "100",
        "--duration",
        "10s",
    ];
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        enclavectl(&refs)
    })
    .await
    .expect("enclavectl");
    // The progress lines and the human summary go to stderr.
    let tail: Vec<&str> = err.lines().collect();
    eprintln!("{}", tail[tail.len().saturating_sub(20)..].join("\n"));
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("bench scale (exit {code}) printed no JSON report ({e}): {out}\n{err}")
    });
    println!(
        "seed: {}\nrun: {}\nnodes: {}",
        report["seed"]["phases"], report["run"]["ops"], report["nodes"]
    );
    assert_eq!(code, 0, "bench scale failed: {err}");

    // The seed is what was asked for.
    let sizes = &report["seed"]["sizes"];
    assert_eq!(sizes["members"].as_u64(), Some(MEMBERS), "{sizes}");
    assert_eq!(sizes["groups"].as_u64(), Some(GROUPS), "{sizes}");
    assert!(sizes["departments"].as_u64().unwrap_or(0) >= 30, "{sizes}");
    let mix = &report["seed"]["group_mix"];
    assert!(
        mix["large"].as_u64().unwrap_or(0) > 0 && mix["small"].as_u64().unwrap_or(0) > 0,
        "the size mix has small and large groups: {mix}"
    );

    // Every invariant was checked, and holds.
    let verify = report["verify"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = verify.iter().filter_map(|v| v["name"].as_str()).collect();
    for want in [
        "messages_exactly_once",
        "members",
        "departments",
        "groups_owned",
        "direct_conversations",
    ] {
        assert!(names.contains(&want), "{want} was not checked: {names:?}");
    }
    for v in &verify {
        assert_eq!(v["ok"], Value::Bool(true), "invariant failed: {v}");
    }
    // The mix ran: sends were acknowledged (and so checked above).
    let ops = report["run"]["ops"].as_array().cloned().unwrap_or_default();
    let sends = ops
        .iter()
        .find(|o| o["kind"] == "send")
        .and_then(|o| o["ok"].as_u64())
        .unwrap_or(0);
    assert!(sends > 0, "no send was acknowledged: {ops:?}");
    // And the cluster agrees with itself afterwards.
    c.wait_converged().await;

    // A node goes away in the middle of a run (killed: its connections
    // are cut mid-request): its clients move on to the other nodes, as
    // clients behind a load balancer would, and repeat what was cut.
    // Nothing fails and every acknowledged message is there once.
    let leader = c.leader().await;
    // Not the leader (no election in this check) and not node 2, whose
    // admin port the tool reads.
    let victim = [0, 2].into_iter().find(|&i| i != leader).unwrap_or(0);
    let mut rerun: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let at = rerun.iter().position(|a| a == "scale").unwrap_or(0) + 1;
    rerun.insert(at, "--skip-seed".into());
    let (code, out, err) = {
        let job = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = rerun.iter().map(String::as_str).collect();
            enclavectl(&refs)
        });
        // Logging in and listing take a second or two; the run 10 s.
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        c.kill(victim);
        job.await.expect("enclavectl")
    };
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("bench scale --skip-seed (exit {code}) printed no JSON report ({e}): {out}\n{err}")
    });
    println!("run with node {victim} killed: {}", report["run"]);
    assert_eq!(code, 0, "bench scale failed: {err}");
    let run = &report["run"];
    assert!(
        run["retried"]["another node"].as_u64() > Some(0),
        "no connection moved to another node: {run}"
    );
    assert_eq!(run["errors"].as_u64(), Some(0), "{run}");
    for v in report["verify"].as_array().cloned().unwrap_or_default() {
        assert_eq!(v["ok"], Value::Bool(true), "invariant failed: {v}");
    }
    c.restart(victim);
    c.wait_converged().await;
}
