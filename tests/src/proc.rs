//! Real `enclave` processes on loopback.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use crate::{bin, wait_for};

/// What a node wrote to `<data_dir>/run/endpoints.json` once listening.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub node_id: String,
    pub pid: u32,
    pub peer: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
}

impl Endpoints {
    pub fn admin_url(&self) -> String {
        format!("https://{}", self.admin)
    }
    pub fn api_url(&self) -> String {
        format!("https://{}", self.api)
    }
    pub fn peer_url(&self) -> String {
        format!("https://{}", self.peer)
    }
}

/// How to start a node.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    /// Extra command-line arguments after `start`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Contents of an `enclave.toml` to pass with `--config`.
    pub config_toml: Option<String>,
    /// A command prefix to run `enclave` under (e.g. `ip netns exec NS`).
    pub wrapper: Vec<String>,
}

/// A running (or exited) `enclave` process; killed on drop.
#[derive(Debug)]
pub struct NodeProc {
    pub child: Child,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub stdout: PathBuf,
    _tmp: Option<TempDir>,
}

impl NodeProc {
    /// Start a node whose TLS bundle is `tls_dir` (`ca.pem`, `cert.pem`,
    /// `key.pem`), with `crl` as its CRL, listening on free loopback ports.
    pub fn start_with_tls(tls_dir: &Path, crl: &Path, mut spec: NodeSpec) -> NodeProc {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        tls_env(tls_dir, crl, &mut spec);
        spec.args
            .extend(["--data-dir".into(), data.display().to_string()]);
        spec.args.extend(loopback_args());
        NodeProc::spawn(tmp, data, spec)
    }

    /// `enclave start --dev --data-dir DIR` on free loopback ports.
    pub fn start_dev(data_dir: &Path) -> NodeProc {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut spec = NodeSpec {
            args: vec![
                "--dev".into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ],
            ..Default::default()
        };
        spec.args.extend(loopback_args());
        NodeProc::spawn(tmp, data_dir.to_path_buf(), spec)
    }

    /// Start a node on a data dir the caller owns (so it can be restarted
    /// on it), with the TLS bundle in `tls_dir` and fixed loopback ports.
    pub fn start_in(
        data_dir: &Path,
        tls_dir: &Path,
        crl: &Path,
        ports: [u16; 3],
        spec: NodeSpec,
    ) -> NodeProc {
        NodeProc::start_at(data_dir, tls_dir, crl, "127.0.0.1", ports, spec)
    }

    /// [`NodeProc::start_in`] on address `ip` (e.g. inside a namespace).
    pub fn start_at(
        data_dir: &Path,
        tls_dir: &Path,
        crl: &Path,
        ip: &str,
        ports: [u16; 3],
        mut spec: NodeSpec,
    ) -> NodeProc {
        let tmp = tempfile::tempdir().expect("tempdir");
        tls_env(tls_dir, crl, &mut spec);
        spec.args
            .extend(["--data-dir".into(), data_dir.display().to_string()]);
        for (flag, port) in ["--listen-peer", "--listen-api", "--listen-admin"]
            .into_iter()
            .zip(ports)
        {
            spec.args.extend([flag.to_string(), format!("{ip}:{port}")]);
        }
        NodeProc::spawn(tmp, data_dir.to_path_buf(), spec)
    }

    /// Start with exactly `spec` (no TLS or listen defaults), recording
    /// `data_dir` for `endpoints()`.
    pub fn start_plain(data_dir: &Path, spec: NodeSpec) -> NodeProc {
        let tmp = tempfile::tempdir().expect("tempdir");
        NodeProc::spawn(tmp, data_dir.to_path_buf(), spec)
    }

    fn spawn(tmp: TempDir, data_dir: PathBuf, spec: NodeSpec) -> NodeProc {
        let log = tmp.path().join("enclave.log");
        let stdout = tmp.path().join("enclave.out");
        let mut cmd = match spec.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("enclave"));
                c
            }
            None => Command::new(bin("enclave")),
        };
        cmd.arg("start");
        if let Some(toml) = &spec.config_toml {
            let f = tmp.path().join("enclave.toml");
            fs::write(&f, toml).expect("write config");
            cmd.arg("--config").arg(f);
        }
        cmd.args(&spec.args)
            .env_remove("RUST_LOG")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&log).expect("log file"));
        for (k, _) in std::env::vars() {
            if k.starts_with("ENCLAVE_") && !spec.env.iter().any(|(s, _)| *s == k) {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("spawn enclave");
        NodeProc {
            child,
            data_dir,
            log,
            stdout,
            _tmp: Some(tmp),
        }
    }

    /// Wait until the node has written its endpoints (it is listening), or
    /// panic with its log if it exits or takes too long.
    pub fn endpoints(&mut self) -> Endpoints {
        let file = self.data_dir.join("run").join("endpoints.json");
        let pid = self.child.id();
        let log = self.log.clone();
        let child = &mut self.child;
        wait_for("the node to listen", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "enclave exited early ({status}); log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let text = fs::read_to_string(&file).ok()?;
            let e: Endpoints = serde_json::from_str(&text).ok()?;
            (e.pid == pid).then_some(e)
        })
    }

    /// Wait for the process to exit by itself (bounded).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for("enclave to exit", timeout, || {
            child.try_wait().ok().flatten()
        })
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the node is doing right now, for the message of a test that
    /// found it unresponsive: its threads' states, its sockets, a
    /// backtrace of every thread (when `gdb` is installed) and its log.
    /// Collected only after the failure, so it cannot change the timing
    /// that led to it.
    pub fn diagnostics(&self) -> String {
        let pid = self.child.id();
        let sh = |cmd: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| format!("({cmd}: {e})"))
        };
        let threads = sh(&format!(
            "for t in /proc/{pid}/task/*; do echo \"$(cat $t/comm): $(grep '^State' $t/status) wchan=$(cat $t/wchan)\"; done"
        ));
        // Both ends of every connection to the node's listening ports (the
        // client's side shows whether the answer is sitting unread).
        let sockets = sh(&format!(
            "ports=$(ss -tlnpH 2>/dev/null | grep 'pid={pid},' | awk '{{print $4}}' | sed 's/.*://' | paste -sd'|'); \
             [ -n \"$ports\" ] && ss -tanpoi 2>/dev/null | grep -E -A1 \":($ports)[[:space:]]\""
        ));
        let backtraces = sh(&format!(
            "command -v gdb >/dev/null && timeout 60 gdb -p {pid} -batch -ex 'thread apply all bt 10' 2>/dev/null | grep -E '^Thread|^#'"
        ));
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(60)..];
        format!(
            "node pid {pid}\n-- threads:\n{threads}\n-- sockets:\n{sockets}\n-- backtraces:\n{backtraces}\n-- log (last 60 lines):\n{}",
            tail.join("\n")
        )
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flags that put every listener on a free loopback port.
pub fn loopback_args() -> Vec<String> {
    ["--listen-peer", "--listen-api", "--listen-admin"]
        .into_iter()
        .flat_map(|f| [f.to_string(), "127.0.0.1:0".to_string()])
        .collect()
}

/// Run `enclavectl` with `args`; returns (exit code, stdout, stderr).
pub fn enclavectl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("enclavectl"))
        .args(args)
        .env_remove("ENCLAVECTL_ENDPOINT")
        .env_remove("ENCLAVECTL_CERT_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run enclavectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Free loopback ports (bound then released; a restart reuses them).
///
/// Ports come from 20000..32000, below Linux's ephemeral range
/// (32768..60999), so outgoing connections of parallel tests cannot take
/// them between our check and the node's bind. nextest runs every test in
/// its own process, so a port is also reserved across processes: the test
/// process holds an exclusive lock on `$TMPDIR/enclave-test-ports/PORT.lock`
/// until it exits (the kernel drops the lock even on a crash), and another
/// test process skips a port whose lock it cannot take.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    static HELD: Mutex<Vec<fs::File>> = Mutex::new(Vec::new());
    if NEXT.load(Ordering::Relaxed) == 0 {
        // Spread test processes apart: start from a pid-derived offset.
        let start = 20000 + (std::process::id() % 600) as u16 * 20;
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    let lock_dir = std::env::temp_dir().join("enclave-test-ports");
    fs::create_dir_all(&lock_dir).expect("create the port lock dir");
    let mut out = [0u16; N];
    let mut found = 0;
    let mut tried = 0u32;
    while found < N {
        tried += 1;
        assert!(tried < 24_000, "no free loopback port in 20000..32000");
        let mut p = NEXT.fetch_add(1, Ordering::Relaxed);
        if p >= 32000 {
            NEXT.store(20000, Ordering::Relaxed);
            p = 20000;
        }
        let Ok(lock) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_dir.join(format!("{p}.lock")))
        else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // another test process holds it
        }
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            out[found] = p;
            found += 1;
        }
    }
    out
}

/// Point the node at a TLS bundle and CRL through `ENCLAVE_TLS__*`, with a
/// 1 s reload interval. The spec's own variables come last so they win.
fn tls_env(tls_dir: &Path, crl: &Path, spec: &mut NodeSpec) {
    let file = |name: &str| tls_dir.join(name).display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("ENCLAVE_TLS__CA".into(), file("ca.pem")),
        ("ENCLAVE_TLS__CERT".into(), file("cert.pem")),
        ("ENCLAVE_TLS__KEY".into(), file("key.pem")),
        ("ENCLAVE_TLS__CRL".into(), crl.display().to_string()),
        ("ENCLAVE_TLS__RELOAD_INTERVAL_SECS".into(), "1".into()),
    ];
    env.append(&mut spec.env);
    spec.env = env;
}
