//! The failover suite in CI mode: real `enclave` processes, the messaging
//! workload through random nodes, a fixed handful of fault schedules with
//! fixed seeds, and the history checker over the result (see
//! docs/operator/failover-testing.md; `ops/chaos.sh` is the soak mode).
//!
//! Partition cases need network namespaces (root, iproute2, nftables);
//! without them they are skipped with a printed reason.

use enclave_tests::nemesis::Fault;
use enclave_tests::netns;
use enclave_tests::suite::{Plan, Report, run};

fn assert_valid(report: &Report) {
    assert!(
        report.ok(),
        "the failover run found problems:\n{}",
        report.render()
    );
    assert!(
        report.counts.appends_ok > 50,
        "too few acknowledged writes to mean anything:\n{}",
        report.render()
    );
    for f in &report.faults {
        assert!(
            f.recovered,
            "writes never recovered after {} on {}:\n{}",
            f.injected.fault,
            f.injected.targets.join(", "),
            report.render()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_pauses_on_three_nodes_lose_nothing() {
    let report = run(Plan::ci(
        3,
        &[
            Fault::KillLeader,
            Fault::PauseLeader,
            Fault::KillFollower,
            Fault::PauseFollower,
            Fault::KillLeader,
        ],
        11,
    ))
    .await;
    assert_valid(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_on_three_nodes_lose_nothing() {
    if !netns::available_or_skip("partitions_on_three_nodes_lose_nothing") {
        return;
    }
    let report = run(Plan::ci(
        3,
        &[
            Fault::PartitionLeader,
            Fault::OneWay,
            Fault::PartitionLeader,
        ],
        12,
    ))
    .await;
    assert_valid(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_on_five_nodes_lose_nothing() {
    if !netns::available_or_skip("splits_on_five_nodes_lose_nothing") {
        return;
    }
    let mut plan = Plan::ci(5, &[Fault::SplitMajority, Fault::Split221], 13);
    plan.clients = 5;
    let report = run(plan).await;
    assert_valid(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_keeps_every_acknowledged_write() {
    let report = run(Plan::ci(
        3,
        &[Fault::PowerLossLeader, Fault::PowerLossAll],
        14,
    ))
    .await;
    assert_valid(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jump_slow_disk_and_a_restart_mid_snapshot_lose_nothing() {
    let report = run(Plan::ci(
        3,
        &[Fault::ClockJump, Fault::SlowDisk, Fault::SnapshotRestart],
        15,
    ))
    .await;
    assert_valid(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_one_node_loses_nothing() {
    if !netns::is_root() {
        println!(
            "SKIPPED a_full_disk_on_one_node_loses_nothing: mounting a small filesystem needs root"
        );
        eprintln!(
            "SKIPPED a_full_disk_on_one_node_loses_nothing: mounting a small filesystem needs root"
        );
        return;
    }
    let report = run(Plan::ci(3, &[Fault::DiskFull], 16)).await;
    assert_valid(&report);
}
