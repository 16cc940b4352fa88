//! A real multi-node cluster of `enclave` processes on loopback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use enclave_certs::Role;
use enclave_ops::Client;
use serde_json::{Value, json};

use crate::netns::Net;
use crate::pki::TestPki;
use crate::proc::{Endpoints, NodeProc, NodeSpec, free_ports};
use crate::wait_for_async;

/// One node's fixed facts.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub data_dir: PathBuf,
    pub tls_dir: PathBuf,
    pub ports: [u16; 3],
    /// Where it listens: 127.0.0.1, or its namespace's address.
    pub ip: String,
}

impl NodeInfo {
    pub fn admin_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.ports[2])
    }
    pub fn api_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.ports[1])
    }
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.ip, self.ports[0])
    }
}

/// A cluster of real processes; every node killed on drop.
#[derive(Debug)]
pub struct TestCluster {
    pub pki: TestPki,
    pub nodes: Vec<NodeInfo>,
    pub procs: Vec<Option<NodeProc>>,
    pub admin_dir: PathBuf,
    pub spec: NodeSpec,
    /// Per-node environment added to `spec.env` (e.g. a power-loss shim).
    pub node_env: Vec<Vec<(String, String)>>,
    /// Per-node `enclave` binary instead of this build's (e.g. the
    /// previous release in the upgrade test).
    pub node_bin: Vec<Option<PathBuf>>,
    /// Namespaced network (dropped after the processes: field order).
    pub net: Option<Net>,
    /// Save every node's log here when the cluster is dropped (also when
    /// a test panics), see [`TestCluster::save_logs`].
    pub logs_on_drop: Option<PathBuf>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(dir) = self.logs_on_drop.take() {
            let _ = self.save_logs(&dir);
        }
    }
}

impl TestCluster {
    /// Start `n` nodes, init node 0, add the others and wait until all are voters.
    pub async fn start(n: usize, spec: NodeSpec) -> TestCluster {
        TestCluster::start_with(n, spec, false).await
    }

    /// [`TestCluster::start`], each node in its own network namespace
    /// when `netns` (see [`crate::netns`]; the caller checks availability).
    pub async fn start_with(n: usize, spec: NodeSpec, netns: bool) -> TestCluster {
        let c = TestCluster::prepare(n, spec, netns);
        c.boot().await
    }

    /// Certificates, data dirs and addresses for `n` nodes; nothing runs yet.
    pub fn prepare(n: usize, spec: NodeSpec, netns: bool) -> TestCluster {
        let pki = TestPki::new();
        let admin_dir = pki.operator("admin", Role::Sysadmin);
        let net = netns.then(|| Net::create(n));
        let mut nodes = Vec::new();
        for i in 1..=n {
            let name = format!("node-{i}");
            let ip = match &net {
                Some(net) => net.ip(i - 1).to_string(),
                None => "127.0.0.1".to_string(),
            };
            let tls_dir = pki.node_at(&name, &ip);
            let data_dir = pki.path().join(format!("data-{i}"));
            nodes.push(NodeInfo {
                name,
                data_dir,
                tls_dir,
                ports: free_ports::<3>(),
                ip,
            });
        }
        TestCluster {
            pki,
            nodes,
            procs: Vec::new(),
            admin_dir,
            spec,
            node_env: vec![Vec::new(); n],
            node_bin: vec![None; n],
            net,
            logs_on_drop: None,
        }
    }

    /// Start every node of a [`TestCluster::prepare`]d cluster, init node 0,
    /// add the others and wait until all are voters.
    pub async fn boot(mut self) -> TestCluster {
        let n = self.nodes.len();
        let mut c = {
            for i in 0..n {
                let p = self.spawn(i);
                self.procs.push(Some(p));
            }
            self
        };
        for i in 0..n {
            c.endpoints(i);
        }
        let (status, _) = c
            .admin(0)
            .request(http::Method::POST, "/v1/cluster/init", Some(b"{}".to_vec()))
            .await
            .expect("init");
        assert!(status.is_success(), "cluster init failed: {status}");
        for i in 1..n {
            c.add(i).await;
        }
        c.wait_voters(n).await;
        c
    }

    pub fn spawn(&self, i: usize) -> NodeProc {
        let n = &self.nodes[i];
        let mut spec = self.spec.clone();
        spec.env.extend(self.node_env[i].iter().cloned());
        if let Some(net) = &self.net {
            spec.wrapper = net.exec_prefix(i);
        }
        if let Some(other) = &self.node_bin[i] {
            // `sh -c 'shift; exec "$0" "$@"' OTHER THIS start ...`: run
            // OTHER with this build's arguments.
            spec.wrapper.extend([
                "sh".into(),
                "-c".into(),
                r#"shift; exec "$0" "$@""#.into(),
                other.display().to_string(),
            ]);
        }
        NodeProc::start_at(
            &n.data_dir,
            &n.tls_dir,
            &self.pki.ca_dir().join("crl.pem"),
            &n.ip,
            n.ports,
            spec,
        )
    }

    pub fn endpoints(&mut self, i: usize) -> Endpoints {
        self.procs[i].as_mut().expect("node running").endpoints()
    }

    /// Add node `i` (already running) through the admin API of a live node.
    pub async fn add(&self, i: usize) {
        let n = &self.nodes[i];
        let body = json!({ "name": n.name, "peer": n.peer_addr(), "api": format!("{}:{}", n.ip, n.ports[1]), "admin": format!("{}:{}", n.ip, n.ports[2]) });
        let via = self
            .live()
            .into_iter()
            .find(|j| *j != i)
            .expect("a live node");
        let (status, body) = self
            .admin(via)
            .request(
                http::Method::POST,
                "/v1/cluster/members",
                Some(body.to_string().into_bytes()),
            )
            .await
            .expect("add member");
        assert!(
            status.is_success(),
            "adding {}: {status} {}",
            n.name,
            String::from_utf8_lossy(&body)
        );
    }

    pub fn admin(&self, i: usize) -> Client {
        Client::with_cert_dir(&self.nodes[i].admin_url(), &self.admin_dir)
            .expect("client")
            .with_timeout(Duration::from_secs(15))
    }

    /// Wait until the cluster has moved to replicated-log version `v` (a
    /// fresh cluster moves to its build's version within seconds of
    /// having a leader; commands of a newer version answer 503
    /// `cluster_upgrading` until then).
    pub async fn wait_log_version(&self, i: usize, v: u64) {
        crate::wait_for_async(
            &format!("the cluster to move to log version {v}"),
            Duration::from_secs(60),
            || async {
                let s: Value = self.admin(i).get_json("/v1/cluster/upgrade").await.ok()?;
                (s["cluster_version"].as_u64()? >= v).then_some(())
            },
        )
        .await
    }

    /// Indices of nodes whose process runs.
    pub fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| self.procs[*i].is_some())
            .collect()
    }

    pub async fn status(&self, i: usize) -> Option<Value> {
        self.admin(i)
            .with_timeout(Duration::from_secs(3))
            .get_json("/v1/cluster/status")
            .await
            .ok()
    }

    /// Index of the current leader, as seen by a live node.
    pub async fn leader(&self) -> usize {
        wait_for_async("a leader", Duration::from_secs(30), || async {
            for i in self.live() {
                if let Some(s) = self.status(i).await
                    && s["this_node"]["state"] == "leader"
                {
                    return Some(i);
                }
            }
            None
        })
        .await
    }

    pub async fn wait_voters(&self, n: usize) {
        wait_for_async(&format!("{n} voters"), Duration::from_secs(60), || async {
            for i in self.live() {
                if let Some(s) = self.status(i).await
                    && s["this_node"]["state"] == "leader"
                    && s["this_node"]["voters"].as_array().map(|v| v.len()) == Some(n)
                {
                    return Some(());
                }
            }
            None
        })
        .await
    }

    /// Wait until every live node has applied the same index (the leader's last).
    pub async fn wait_converged(&self) -> u64 {
        wait_for_async(
            "all live nodes to apply the same index",
            Duration::from_secs(60),
            || async {
                let mut applied = BTreeMap::new();
                for i in self.live() {
                    let st = self.status(i).await?;
                    applied.insert(
                        i,
                        (
                            st["this_node"]["applied_index"].as_u64()?,
                            st["this_node"]["last_log_index"].as_u64()?,
                        ),
                    );
                }
                let first = applied.values().next()?.0;
                applied
                    .values()
                    .all(|(a, l)| *a == first && *l == first)
                    .then_some(first)
            },
        )
        .await
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            self.keep_log(i, &p);
        }
    }

    /// Append a process's log to `<pki>/logs/<node>.log`, which outlives
    /// restarts (see [`TestCluster::save_logs`]).
    fn keep_log(&self, i: usize, p: &NodeProc) {
        use std::io::Write;
        let dir = self.pki.path().join("logs");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", self.nodes[i].name)))
        {
            let _ = f.write_all(p.log_text().as_bytes());
        }
    }

    /// Copy every node's whole log (all its runs) into `dir`.
    pub fn save_logs(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (i, n) in self.nodes.iter().enumerate() {
            let kept = self.pki.path().join("logs").join(format!("{}.log", n.name));
            let mut text = std::fs::read_to_string(kept).unwrap_or_default();
            if let Some(p) = &self.procs[i] {
                text += &p.log_text();
            }
            std::fs::write(dir.join(format!("{}.log", n.name)), text)?;
        }
        Ok(())
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let p = self.spawn(i);
        self.procs[i] = Some(p);
        self.endpoints(i);
    }

    /// PUT a key via node `i`; Ok(index) once acknowledged.
    pub async fn put(&self, i: usize, key: &str, value: &str) -> Result<u64, String> {
        let (status, body) = self
            .admin(i)
            .request(
                http::Method::PUT,
                &format!("/v1/kv/{key}"),
                Some(value.as_bytes().to_vec()),
            )
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        v["index"].as_u64().ok_or_else(|| "no index".into())
    }

    /// GET a key from node `i` (local read).
    pub async fn get(
        &self,
        i: usize,
        key: &str,
        linearizable: bool,
    ) -> Result<Option<String>, String> {
        let q = if linearizable {
            "?consistency=linearizable"
        } else {
            ""
        };
        let (status, body) = self
            .admin(i)
            .request(http::Method::GET, &format!("/v1/kv/{key}{q}"), None)
            .await
            .map_err(|e| e.to_string())?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(v["value"].as_str().map(str::to_string))
    }
}

/// A background writer: PUTs unique keys round-robin through the given
/// admin endpoints and records which were acknowledged.
#[derive(Debug)]
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<(Vec<String>, usize)>,
}

impl Load {
    pub fn start(cluster: &TestCluster, prefix: &str) -> Load {
        let clients: Vec<Client> = (0..cluster.nodes.len())
            .map(|i| cluster.admin(i).with_timeout(Duration::from_secs(5)))
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let prefix = prefix.to_string();
        let handle = tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0usize;
            let mut n = 0usize;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("{prefix}-{n}");
                let c = &clients[n % clients.len()];
                n += 1;
                match c
                    .request(
                        http::Method::PUT,
                        &format!("/v1/kv/{key}"),
                        Some(key.as_bytes().to_vec()),
                    )
                    .await
                {
                    Ok((status, _)) if status.is_success() => acked.push(key),
                    _ => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acked, failed)
        });
        Load { stop, handle }
    }

    /// Stop and return (acknowledged keys, failed attempts).
    pub async fn stop(self) -> (Vec<String>, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.await.expect("load task")
    }
}

impl TestCluster {
    /// Assert every key is present (value = key) on every live node.
    pub async fn assert_all_present(&self, keys: &[String]) {
        for i in self.live() {
            for k in keys {
                let v = self
                    .get(i, k, false)
                    .await
                    .unwrap_or_else(|e| panic!("reading {k} from {}: {e}", self.nodes[i].name));
                assert_eq!(
                    v.as_deref(),
                    Some(k.as_str()),
                    "acknowledged write {k} missing on {}",
                    self.nodes[i].name
                );
            }
        }
    }
}
