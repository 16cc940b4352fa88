//! Real network partitions: every node in its own network namespace,
//! joined to a bridge in the test's namespace by a veth pair, with
//! nftables drop rules inside a node's namespace to cut links.
//!
//! Layout for a net with octet `X` (chosen so parallel tests never clash:
//! creating the bridge `encbX` is the lock):
//!
//! ```text
//!   test process (this namespace) ── encbX 10.213.X.1/24
//!        │ veth encXhI  ⇄  encXpI in namespace encXnI: 10.213.X.(10+I)
//! ```
//!
//! The test process (the clients) always reaches every node; partitions
//! cut node↔node traffic only, as Jepsen's partitions do. Needs root, `ip`
//! (iproute2) and `nft` (nftables); [`Net::unavailable`] says why not.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Why namespaced networking cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("not root: network namespaces need CAP_NET_ADMIN".into());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "`{tool}` not found (install iproute2 and nftables; .ci/run does)"
            ));
        }
    }
    None
}

/// Skip the calling test with a printed reason when namespaces are not
/// available. Returns true when the test should go on.
pub fn available_or_skip(test: &str) -> bool {
    match unavailable() {
        None => true,
        Some(why) => {
            println!("SKIPPED {test}: {why}");
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = run(args) {
        panic!("{e}");
    }
}

/// A bridge and one namespace per node; removed on drop.
#[derive(Debug)]
pub struct Net {
    octet: u8,
    nodes: usize,
}

impl Net {
    /// Create namespaces for `nodes` nodes.
    pub fn create(nodes: usize) -> Net {
        assert!(nodes < 200, "too many nodes");
        let start = (std::process::id() % 250) as u8;
        let mut octet = None;
        for k in 0..250u16 {
            let x = ((start as u16 + k) % 250 + 1) as u8;
            let bridge = format!("encb{x}");
            if run(&["ip", "link", "add", &bridge, "type", "bridge"]).is_ok() {
                octet = Some(x);
                break;
            }
        }
        let octet = octet.expect("a free bridge name encb1..encb250");
        let net = Net { octet, nodes: 0 };
        let bridge = net.bridge();
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.host_ip()),
            "dev",
            &bridge,
        ]);
        must(&["ip", "link", "set", &bridge, "up"]);
        let mut net = net;
        for i in 0..nodes {
            net.add_node(i);
            net.nodes = i + 1;
        }
        net
    }

    fn bridge(&self) -> String {
        format!("encb{}", self.octet)
    }

    /// Namespace of node `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("enc{}n{}", self.octet, i)
    }

    /// Address of node `i`.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 10 + i as u8)
    }

    /// Address of the test process on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 1)
    }

    fn add_node(&self, i: usize) {
        let ns = self.ns(i);
        let host = format!("enc{}h{}", self.octet, i);
        let peer = format!("enc{}p{}", self.octet, i);
        let _ = run(&["ip", "netns", "del", &ns]);
        must(&["ip", "netns", "add", &ns]);
        must(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ]);
        must(&["ip", "link", "set", &peer, "netns", &ns]);
        must(&["ip", "link", "set", &host, "master", &self.bridge()]);
        must(&["ip", "link", "set", &host, "up"]);
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns];
            v.extend_from_slice(args);
            must(&v);
        };
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.ip(i)),
            "dev",
            &peer,
        ]);
        inside(&["ip", "link", "set", &peer, "up"]);
        self.flush(i);
    }

    /// Command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    /// Replace node `i`'s rules: drop traffic from the nodes in `from`
    /// and to the nodes in `to`.
    fn set_rules(&self, i: usize, from: &[usize], to: &[usize]) {
        let set = |nodes: &[usize]| {
            nodes
                .iter()
                .map(|j| self.ip(*j).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut rules = String::from(
            "table inet enclave_fault {\n  chain input {\n    type filter hook input priority 0; policy accept;\n",
        );
        if !from.is_empty() {
            rules += &format!("    ip saddr {{ {} }} drop\n", set(from));
        }
        rules += "  }\n  chain output {\n    type filter hook output priority 0; policy accept;\n";
        if !to.is_empty() {
            rules += &format!("    ip daddr {{ {} }} drop\n", set(to));
        }
        rules += "  }\n}\n";
        self.flush(i);
        let ns = self.ns(i);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(rules.as_bytes()).expect("nft rules");
        }
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft in {ns}: {}\n{rules}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn flush(&self, i: usize) {
        let ns = self.ns(i);
        let _ = run(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "nft",
            "delete",
            "table",
            "inet",
            "enclave_fault",
        ]);
    }

    /// Cut every link between nodes of different groups (a node in no
    /// group keeps all its links).
    pub fn partition(&self, groups: &[&[usize]]) {
        for (gi, g) in groups.iter().enumerate() {
            let others: Vec<usize> = groups
                .iter()
                .enumerate()
                .filter(|(gj, _)| *gj != gi)
                .flat_map(|(_, o)| o.iter().copied())
                .collect();
            for i in g.iter() {
                self.set_rules(*i, &others, &others);
            }
        }
    }

    /// Drop packets sent by `from` to `to` (a one-way link failure: `to`
    /// still sends to `from`, but nothing comes back).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        self.set_rules(from, &[], &[to]);
    }

    /// Remove every rule: all links work again.
    pub fn heal(&self) {
        for i in 0..self.nodes {
            self.flush(i);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = run(&["ip", "netns", "del", &self.ns(i)]);
            let _ = run(&["ip", "link", "del", &format!("enc{}h{}", self.octet, i)]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge()]);
    }
}
