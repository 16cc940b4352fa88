//! Fault injection against a [`TestCluster`] of real processes: kill -9,
//! SIGSTOP/SIGCONT, real network partitions ([`crate::netns`]), power loss
//! ([`crate::powerloss`]), clock jumps and slow disks (the node's test-only
//! hooks, `enclave_cluster::fault`). Each fault is held for a while, then
//! healed, and the nemesis waits (bounded) until the cluster has one
//! leader that every node follows again.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::TestCluster;
use crate::wait_for_async;
use crate::workload::{Recorder, Rng};

/// The faults the suite knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 the leader, restart it after the hold.
    KillLeader,
    /// kill -9 a follower, restart it after the hold.
    KillFollower,
    /// SIGSTOP the leader, SIGCONT after the hold.
    PauseLeader,
    /// SIGSTOP a follower.
    PauseFollower,
    /// Cut the leader off from every other node (netns).
    PartitionLeader,
    /// Split into a majority and a minority that holds the leader (netns).
    SplitMajority,
    /// Five nodes: 2 / 2 / 1, no side has a majority (netns).
    Split221,
    /// The leader's packets to one follower are dropped, not the reverse
    /// (netns).
    OneWay,
    /// Power cut on the leader: kill -9 and lose everything not fsynced.
    PowerLossLeader,
    /// Power cut on every node at once.
    PowerLossAll,
    /// The leader's wall clock jumps an hour ahead, then back.
    ClockJump,
    /// Every Raft log flush on the leader takes 200 ms longer.
    SlowDisk,
    /// The last node's data dir (a small tmpfs) fills up; after the hold
    /// the ballast is deleted and the node restarted if its Raft stopped.
    DiskFull,
    /// A follower is killed, falls behind the leader's compacted log,
    /// restarts, and is killed again in the middle of installing the
    /// snapshot it gets (after writing the new state, before switching to
    /// it); then restarted for good.
    SnapshotRestart,
}

impl Fault {
    pub const ALL: &[Fault] = &[
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::PartitionLeader,
        Fault::SplitMajority,
        Fault::Split221,
        Fault::OneWay,
        Fault::PowerLossLeader,
        Fault::PowerLossAll,
        Fault::ClockJump,
        Fault::SlowDisk,
        Fault::DiskFull,
        Fault::SnapshotRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::PauseLeader => "pause-leader",
            Fault::PauseFollower => "pause-follower",
            Fault::PartitionLeader => "partition-leader",
            Fault::SplitMajority => "split-majority",
            Fault::Split221 => "split-2-2-1",
            Fault::OneWay => "one-way",
            Fault::PowerLossLeader => "power-loss-leader",
            Fault::PowerLossAll => "power-loss-all",
            Fault::ClockJump => "clock-jump",
            Fault::SlowDisk => "slow-disk",
            Fault::DiskFull => "disk-full",
            Fault::SnapshotRestart => "snapshot-restart",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.name() == s)
    }

    /// Expand a user's list: `kill` = both kills, `pause` = both pauses,
    /// `partition` = every partition, `power` = both power cuts.
    pub fn expand(list: &str) -> Result<Vec<Fault>, String> {
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let group: Vec<Fault> = match word {
                "kill" => vec![Fault::KillLeader, Fault::KillFollower],
                "pause" => vec![Fault::PauseLeader, Fault::PauseFollower],
                "partition" => vec![
                    Fault::PartitionLeader,
                    Fault::SplitMajority,
                    Fault::Split221,
                    Fault::OneWay,
                ],
                "power" => vec![Fault::PowerLossLeader, Fault::PowerLossAll],
                "clock" => vec![Fault::ClockJump],
                "slow-disk" => vec![Fault::SlowDisk],
                "disk" => vec![Fault::SlowDisk, Fault::DiskFull],
                "snapshot" => vec![Fault::SnapshotRestart],
                other => match Fault::parse(other) {
                    Some(f) => vec![f],
                    None => {
                        return Err(format!(
                            "unknown fault {other:?}: use kill, pause, partition, power, clock, slow-disk or one of {}",
                            Fault::ALL
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                },
            };
            for f in group {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    pub fn needs_netns(self) -> bool {
        matches!(
            self,
            Fault::PartitionLeader | Fault::SplitMajority | Fault::Split221 | Fault::OneWay
        )
    }

    /// Needs root to mount a size-limited filesystem.
    pub fn needs_mount(self) -> bool {
        self == Fault::DiskFull
    }

    pub fn needs_power_shim(self) -> bool {
        matches!(self, Fault::PowerLossLeader | Fault::PowerLossAll)
    }

    /// Whether the fault can run on a cluster of `nodes`.
    pub fn fits(self, nodes: usize) -> bool {
        match self {
            Fault::Split221 => nodes >= 5,
            Fault::SplitMajority => nodes >= 5,
            _ => nodes >= 3,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One injected fault, with times in the recorder's µs.
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: Fault,
    /// Node names the fault hit.
    pub targets: Vec<String>,
    pub at: u64,
    pub healed: u64,
    /// What a power cut threw away (files, writes undone).
    pub detail: String,
}

/// The fault injector.
pub struct Nemesis {
    pub rec: Recorder,
    pub rng: Rng,
    pub log: Vec<Injected>,
    /// Per node: the fault-hook directory (`ENCLAVE_FAULT_DIR`).
    pub fault_dirs: Vec<PathBuf>,
    /// Per node: the power-loss journal, when the shim is loaded.
    pub journals: Vec<Option<PathBuf>>,
    /// The small filesystem under the last node's data dir (disk-full).
    pub small_fs: Option<SmallFs>,
}

/// A size-limited tmpfs mounted on a directory; unmounted on drop.
#[derive(Debug)]
pub struct SmallFs {
    pub dir: PathBuf,
    pub node: usize,
}

impl SmallFs {
    pub fn mount(dir: &std::path::Path, size_mb: u64, node: usize) -> Result<SmallFs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount tmpfs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs {
            dir: dir.to_path_buf(),
            node,
        })
    }

    fn ballast(&self) -> PathBuf {
        self.dir.join("ballast")
    }

    /// Fill the filesystem until writes fail with ENOSPC.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.ballast()).expect("ballast");
        let chunk = vec![0xA5u8; 1 << 20];
        let mut written = 0u64;
        while f.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        // Fill the last partial megabyte too.
        let small = vec![0u8; 4096];
        while f.write_all(&small).is_ok() {
            written += small.len() as u64;
        }
        written
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(self.ballast());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

impl fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nemesis")
            .field("injected", &self.log.len())
            .finish()
    }
}

/// Set up per-node fault hooks (and the power-loss shim when `power`) on
/// a prepared, not yet booted cluster.
pub fn arm(cluster: &mut TestCluster, faults: &[Fault], rec: Recorder, seed: u64) -> Nemesis {
    let power = faults.iter().any(|f| f.needs_power_shim());
    let small_fs = faults.contains(&Fault::DiskFull).then(|| {
        let last = cluster.nodes.len() - 1;
        SmallFs::mount(&cluster.nodes[last].data_dir, 256, last)
            .unwrap_or_else(|e| panic!("disk-full needs a small filesystem: {e}"))
    });
    let mut fault_dirs = Vec::new();
    let mut journals = Vec::new();
    for i in 0..cluster.nodes.len() {
        let dir = cluster
            .pki
            .path()
            .join(format!("faults-{}", cluster.nodes[i].name));
        std::fs::create_dir_all(&dir).expect("fault dir");
        cluster.node_env[i].push(("ENCLAVE_FAULT_DIR".to_string(), dir.display().to_string()));
        if power {
            let journal = cluster
                .pki
                .path()
                .join(format!("powerloss-{}.journal", cluster.nodes[i].name));
            std::fs::create_dir_all(&cluster.nodes[i].data_dir).expect("data dir");
            cluster.node_env[i].extend(crate::powerloss::env(&cluster.nodes[i].data_dir, &journal));
            journals.push(Some(journal));
        } else {
            journals.push(None);
        }
        fault_dirs.push(dir);
    }
    Nemesis {
        rec,
        rng: Rng::new(seed),
        log: Vec::new(),
        fault_dirs,
        journals,
        small_fs,
    }
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Nemesis {
    /// Inject `fault`, hold it for `hold`, heal it and wait until the
    /// cluster has a leader every live node follows.
    pub async fn run(&mut self, cluster: &mut TestCluster, fault: Fault, hold: Duration) {
        let n = cluster.nodes.len();
        let leader = cluster.leader().await;
        let followers: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
        let follower = followers[self.rng.below(followers.len())];
        let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
        let name = |i: usize| names[i].clone();
        let pick = |on_leader: Fault| if fault == on_leader { leader } else { follower };
        // `at` is taken once the fault is in effect.
        let at;
        let mut detail = String::new();
        let targets: Vec<String>;
        match fault {
            Fault::KillLeader | Fault::KillFollower => {
                let i = pick(Fault::KillLeader);
                targets = vec![name(i)];
                block(|| cluster.kill(i));
                at = self.rec.now();
                tokio::time::sleep(hold).await;
                self.start(cluster, i);
            }
            Fault::PauseLeader | Fault::PauseFollower => {
                let i = pick(Fault::PauseLeader);
                targets = vec![name(i)];
                if let Some(p) = &cluster.procs[i] {
                    p.signal("STOP");
                }
                at = self.rec.now();
                tokio::time::sleep(hold).await;
                if let Some(p) = &cluster.procs[i] {
                    p.signal("CONT");
                }
            }
            Fault::PartitionLeader | Fault::SplitMajority | Fault::Split221 | Fault::OneWay => {
                let net = cluster
                    .net
                    .as_ref()
                    .expect("partitions need a namespaced cluster");
                match fault {
                    Fault::PartitionLeader => {
                        net.partition(&[&[leader], &followers]);
                        targets = vec![name(leader)];
                    }
                    Fault::SplitMajority => {
                        // The leader and one follower against the rest.
                        let minority = [leader, followers[0]];
                        let majority: Vec<usize> = followers[1..].to_vec();
                        net.partition(&[&minority, &majority]);
                        targets = minority.iter().map(|i| name(*i)).collect();
                    }
                    Fault::Split221 => {
                        let a = [leader, followers[0]];
                        let b = [followers[1], followers[2]];
                        let c = [followers[3]];
                        net.partition(&[&a, &b, &c]);
                        targets = (0..n).map(name).collect();
                    }
                    _ => {
                        net.cut_one_way(leader, follower);
                        targets = vec![name(leader), name(follower)];
                    }
                }
                at = self.rec.now();
                tokio::time::sleep(hold).await;
                net.heal();
            }
            Fault::PowerLossLeader | Fault::PowerLossAll => {
                let hit: Vec<usize> = if fault == Fault::PowerLossLeader {
                    vec![leader]
                } else {
                    (0..n).collect()
                };
                targets = hit.iter().map(|i| name(*i)).collect();
                for i in &hit {
                    block(|| cluster.kill(*i));
                }
                at = self.rec.now();
                for i in &hit {
                    let journal = self.journals[*i]
                        .as_ref()
                        .expect("power loss needs the shim (arm with power = true)");
                    let report = crate::powerloss::cut_power(journal)
                        .unwrap_or_else(|e| panic!("cutting power to {}: {e}", name(*i)));
                    detail += &format!("{}: {report:?}; ", name(*i));
                }
                tokio::time::sleep(hold).await;
                for i in &hit {
                    self.start(cluster, *i);
                }
            }
            Fault::ClockJump => {
                targets = vec![name(leader)];
                let f = self.fault_dirs[leader].join("clock_offset_ms");
                std::fs::write(&f, "3600000").expect("clock offset");
                at = self.rec.now();
                tokio::time::sleep(hold).await;
                std::fs::write(&f, "0").expect("clock offset");
            }
            Fault::DiskFull => {
                let fs = self
                    .small_fs
                    .as_ref()
                    .expect("disk-full needs the small filesystem (arm with DiskFull)");
                let i = fs.node;
                targets = vec![name(i)];
                let filled = block(|| fs.fill());
                at = self.rec.now();
                detail = format!("{}: filled {} MiB", name(i), filled >> 20);
                tokio::time::sleep(hold).await;
                fs.free();
                // A node whose Raft stopped on ENOSPC (or that exited)
                // needs a restart, as docs/operator/cluster.md says.
                let stopped = match &mut cluster.procs[i] {
                    Some(p) => matches!(p.child.try_wait(), Ok(Some(_))),
                    None => true,
                } || cluster
                    .status(i)
                    .await
                    .is_some_and(|s| s["this_node"]["state"] == "shutdown");
                if stopped {
                    detail += "; its Raft had stopped: restarted";
                    block(|| cluster.kill(i));
                    self.start(cluster, i);
                }
            }
            Fault::SnapshotRestart => {
                let i = follower;
                targets = vec![name(i)];
                let behind = cluster
                    .status(i)
                    .await
                    .and_then(|s| s["this_node"]["last_log_index"].as_u64())
                    .unwrap_or(0);
                block(|| cluster.kill(i));
                at = self.rec.now();
                // Wait until the leader's log no longer holds what the
                // follower lacks (the workload keeps writing; the suite
                // runs this fault with a small snapshot_every and keep_logs 0).
                let c: &TestCluster = cluster;
                wait_for_async(
                    "the leader to compact past the stopped follower",
                    Duration::from_secs(90),
                    || async {
                        let l = c.leader().await;
                        let s = c.status(l).await?;
                        (s["this_node"]["purged_index"].as_u64()? > behind).then_some(())
                    },
                )
                .await;
                let knob = self.fault_dirs[i].join("snapshot_switch_delay_ms");
                std::fs::write(&knob, "60000").expect("snapshot delay");
                self.start(cluster, i);
                let proc_log = cluster.procs[i].as_ref().map(|p| p.log.clone());
                wait_for_async(
                    "the follower to hold inside a snapshot install",
                    Duration::from_secs(90),
                    || async {
                        let text = std::fs::read_to_string(proc_log.as_ref()?).ok()?;
                        text.contains("holding a snapshot install").then_some(())
                    },
                )
                .await;
                block(|| cluster.kill(i));
                std::fs::write(&knob, "0").expect("snapshot delay");
                detail = format!("{}: killed mid snapshot install", name(i));
                tokio::time::sleep(hold).await;
                self.start(cluster, i);
            }
            Fault::SlowDisk => {
                targets = vec![name(leader)];
                let f = self.fault_dirs[leader].join("fsync_delay_ms");
                std::fs::write(&f, "200").expect("fsync delay");
                at = self.rec.now();
                tokio::time::sleep(hold).await;
                std::fs::write(&f, "0").expect("fsync delay");
            }
        }
        let healed = self.rec.now();
        self.log.push(Injected {
            fault,
            targets,
            at,
            healed,
            detail,
        });
        wait_healthy(cluster).await;
    }

    fn start(&self, cluster: &mut TestCluster, i: usize) {
        block(|| {
            let p = cluster.spawn(i);
            cluster.procs[i] = Some(p);
            cluster.endpoints(i);
        });
    }
}

/// Wait (bounded) until every live node answers its status and follows
/// the same leader, which says it leads.
pub async fn wait_healthy(cluster: &TestCluster) {
    // The leader's commit index when the fault was healed: every node must
    // have applied it (no one still catching up, e.g. by snapshot) before
    // the next fault, or a "follower" fault would leave no majority.
    let target = std::sync::Mutex::new(None::<u64>);
    wait_for_async(
        "every node to follow one leader and catch up",
        Duration::from_secs(90),
        || async {
            let mut leaders = Vec::new();
            let mut leading = 0;
            let mut applied = Vec::new();
            let mut committed = None;
            for i in cluster.live() {
                let s: Value = cluster.status(i).await?;
                let me = &s["this_node"];
                leaders.push(me["leader"].as_u64()?);
                applied.push(me["applied_index"].as_u64().unwrap_or(0));
                if me["state"] == "leader" {
                    leading += 1;
                    committed = me["committed_index"].as_u64();
                }
            }
            if !(leading == 1 && leaders.windows(2).all(|w| w[0] == w[1])) {
                return None;
            }
            let mut t = target.lock().unwrap_or_else(|p| p.into_inner());
            let goal = *t.get_or_insert(committed.unwrap_or(0));
            applied.iter().all(|a| *a >= goal).then_some(())
        },
    )
    .await
}
