//! `enclavectl cluster ...`: lifecycle of the Raft cluster.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make the node at --endpoint a one-node cluster (first node only).
    Init,
    /// Members, roles, leader, term, commit/applied index and lag per node.
    Status,
    /// Create a one-time join token for a new node.
    JoinToken {
        /// Validity, e.g. 30m, 1h, 2d (1 minute to 7 days).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Add a node that already has a certificate from the cluster CA
    /// (learner first, promoted to voter once caught up).
    Add {
        /// Node name (the certificate's name).
        #[arg(long)]
        name: String,
        /// Its peer address host:port.
        #[arg(long)]
        peer: String,
        #[arg(long, default_value = "")]
        api: String,
        #[arg(long, default_value = "")]
        admin: String,
    },
    /// Remove a node from the cluster.
    Remove {
        /// Node name.
        node: String,
    },
    /// Move leadership to another voter (best effort; retry if it reports
    /// the cluster was busy).
    TransferLeader {
        /// Node name.
        node: String,
    },
    /// Give unused disk space back, one node at a time while the cluster
    /// serves: each node restarts in place, defragments its store and
    /// catches up before the next; the leader hands leadership over and
    /// goes last (docs/operator/cluster.md).
    Defrag {
        /// Only nodes whose store is at least this many times their
        /// snapshot (the logical data), e.g. 3.
        #[arg(long)]
        over: Option<f64>,
        /// How long to wait for each node to be back and caught up.
        #[arg(long, default_value = "30m")]
        timeout: String,
    },
    /// During a rolling upgrade: each node's release and log version, the
    /// cluster's log version, whether it can move on and which node to
    /// upgrade next. Exits 0 when the upgrade is complete, 3 while it is
    /// not (for scripts).
    UpgradeCheck,
    /// Move the cluster to a new log version now. The leader does this by
    /// itself once every voter runs a build that has it; `--force` moves it
    /// even past voters on older builds, which then STOP APPLYING the log
    /// until they are upgraded (docs/operator/upgrade.md).
    SetVersion {
        /// The log version to move to.
        version: u32,
        #[arg(long)]
        force: bool,
    },
}

/// `enclavectl node ...`: per-node repair.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Take a damaged node out of the cluster and print the one command
    /// that wipes it and brings it back from its peers, keeping its identity.
    Rebuild {
        /// Node name.
        node: String,
    },
    /// Give one node's unused disk space back while the cluster serves:
    /// it restarts in place, defragments its store and catches up (a
    /// leader hands leadership to another voter first).
    Defrag {
        /// Node name.
        node: String,
        /// How long to wait for it to be back and caught up.
        #[arg(long, default_value = "30m")]
        timeout: String,
    },
}

pub async fn run_node(
    cmd: NodeCommand,
    client: &Client,
    cert_dir: &std::path::Path,
    output: Output,
) -> anyhow::Result<()> {
    let node = match cmd {
        NodeCommand::Rebuild { node } => node,
        NodeCommand::Defrag { node, timeout } => {
            let timeout = std::time::Duration::from_secs(parse_duration(&timeout)?);
            return super::defrag::node(&node, client, cert_dir, timeout, output).await;
        }
    };
    let status: Value = client.get_json("/v1/cluster/status").await?;
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let me = status["this_node"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node == me {
        anyhow::bail!(
            "{node} is the node at --endpoint; run this against another node of the cluster"
        );
    }
    let join_peer = members
        .iter()
        .find(|m| m["name"] == me.as_str())
        .and_then(|m| m["peer"].as_str())
        .unwrap_or("HOST:7400")
        .to_string();
    if members.iter().any(|m| m["name"] == node.as_str()) {
        let (st, body) = client
            .request(
                http::Method::DELETE,
                &format!("/v1/cluster/members/{node}"),
                None,
            )
            .await?;
        if !st.is_success() {
            anyhow::bail!(
                "removing {node}: HTTP {st}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        eprintln!(
            "{node} removed from the cluster (it may not vote or take part until it rejoins)."
        );
    } else {
        eprintln!("{node} is not a member (already removed).");
    }
    let tok: Value = client
        .post_json("/v1/cluster/join-tokens", &json!({ "ttl_secs": 3600 }))
        .await?;
    let token = tok["token"].as_str().unwrap_or("?");
    let hash = tok["ca_hash"].as_str().unwrap_or("?");
    let cmd = format!(
        "enclave start --rebuild --join https://{join_peer} --token {token} --ca-hash {hash} --node-id {node} --data-dir DIR [--config FILE]"
    );
    if output == Output::Json {
        return print_json(
            &json!({ "removed": node, "command": cmd, "expires_at": tok["expires_at"] }),
        );
    }
    println!("On {node}, with the node stopped, run (one use, valid 1 hour):");
    println!("  {cmd}");
    println!(
        "It wipes the local store (keeping the certificate), rejoins and catches up by snapshot."
    );
    Ok(())
}

/// Parse `30s`, `15m`, `1h`, `2d` into seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {s:?}: expected e.g. 30m, 1h, 2d"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("invalid duration {s:?}: unit must be s, m, h or d"),
    };
    Ok(n * mult)
}

pub async fn run(
    cmd: ClusterCommand,
    client: &Client,
    cert_dir: &std::path::Path,
    output: Output,
) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Defrag { over, timeout } => {
            let timeout = std::time::Duration::from_secs(parse_duration(&timeout)?);
            super::defrag::cluster(over, client, cert_dir, timeout, output).await
        }
        ClusterCommand::Init => {
            let v: Value = client.post_json("/v1/cluster/init", &json!({})).await?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!(
                "Initialized a one-node cluster on {} ({}).",
                v["node"].as_str().unwrap_or("?"),
                client.endpoint()
            );
            println!(
                "Next: enclavectl cluster join-token --ttl 1h, then start the other nodes with --join."
            );
            Ok(())
        }
        ClusterCommand::Status => {
            let v: Value = client.get_json("/v1/cluster/status").await?;
            if output == Output::Json {
                return print_json(&v);
            }
            print_status(&v);
            Ok(())
        }
        ClusterCommand::JoinToken { ttl } => {
            let ttl_secs = parse_duration(&ttl)?;
            let v: Value = client
                .post_json("/v1/cluster/join-tokens", &json!({ "ttl_secs": ttl_secs }))
                .await?;
            if output == Output::Json {
                return print_json(&v);
            }
            // The join URL is this node's peer address, as the cluster knows it.
            let status: Value = client
                .get_json("/v1/cluster/status")
                .await
                .unwrap_or_default();
            let me = status["this_node"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let peer = status["members"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["name"] == me.as_str())
                .and_then(|m| m["peer"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| "HOST:7400".into());
            println!(
                "Join token (one use, expires {}):",
                v["expires_at"].as_str().unwrap_or("?")
            );
            println!("  {}", v["token"].as_str().unwrap_or("?"));
            println!("On the new node:");
            println!(
                "  enclave start --join https://{peer} --token {} --ca-hash {} --node-id NAME --data-dir DIR",
                v["token"].as_str().unwrap_or("?"),
                v["ca_hash"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        ClusterCommand::Add {
            name,
            peer,
            api,
            admin,
        } => {
            let v: Value = client
                .post_json(
                    "/v1/cluster/members",
                    &json!({ "name": name, "peer": peer, "api": api, "admin": admin }),
                )
                .await?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!(
                "Added {name} as a learner; it becomes a voter once it has caught up (watch `enclavectl cluster status`)."
            );
            Ok(())
        }
        ClusterCommand::UpgradeCheck => {
            let v: Value = client.get_json("/v1/cluster/upgrade").await.map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n(a node of release 0.1.0 has no upgrade check: point --endpoint at an upgraded node)"
                )
            })?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                print_upgrade(&v);
            }
            if v["done"] != true {
                std::process::exit(3);
            }
            Ok(())
        }
        ClusterCommand::SetVersion { version, force } => {
            let v: Value = client
                .post_json(
                    "/v1/cluster/version",
                    &json!({ "version": version, "force": force }),
                )
                .await?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!(
                "The cluster is at log version {}{}.",
                v["cluster_version"],
                if v["forced"] == true { " (forced)" } else { "" }
            );
            print_upgrade(&v);
            Ok(())
        }
        ClusterCommand::TransferLeader { node } => {
            let v: Value = client
                .post_json("/v1/cluster/transfer-leader", &json!({ "node": node }))
                .await?;
            if output == Output::Json {
                return print_json(&v);
            }
            println!("{node} is now the leader.");
            Ok(())
        }
        ClusterCommand::Remove { node } => {
            let (status, body) = client
                .request(
                    http::Method::DELETE,
                    &format!("/v1/cluster/members/{node}"),
                    None,
                )
                .await?;
            if !status.is_success() {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                anyhow::bail!(
                    "removing {node}: HTTP {status}: {}",
                    v["error"]["message"]
                        .as_str()
                        .unwrap_or(&String::from_utf8_lossy(&body))
                );
            }
            if output == Output::Json {
                return print_json(&serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
            }
            println!("Removed {node} from the cluster.");
            Ok(())
        }
    }
}

fn print_upgrade(v: &Value) {
    let opt = |x: &Value| match x {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!(
        "Cluster log version: {}{}   this node's build: {} (log version {})",
        v["cluster_version"],
        if v["forced"] == true { " (forced)" } else { "" },
        opt(&v["this_node"]["release"]),
        v["this_node"]["log_version"],
    );
    println!(
        "{:<16} {:<8} {:<7} {:<12} {:<6} ERROR",
        "NODE", "ROLE", "VOTER", "RELEASE", "LOG"
    );
    for m in v["members"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {:<8} {:<7} {:<12} {:<6} {}",
            opt(&m["name"]),
            if m["leader"] == true { "leader" } else { "" },
            if m["voter"] == true { "yes" } else { "no" },
            opt(&m["release"]),
            opt(&m["log_version"]),
            opt(&m["error"]),
        );
    }
    if let Some(next) = v["next"].as_str() {
        println!("Next to upgrade: {next}");
    }
    println!("{}", opt(&v["advice"]));
}

fn print_status(v: &Value) {
    let opt = |x: &Value| match x {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("leader: {}   term: {}", opt(&v["leader"]), opt(&v["term"]));
    println!(
        "{:<16} {:<8} {:<10} {:>6} {:>10} {:>10} {:>10} {:>8}  {:<12} PEER",
        "NODE",
        "MEMBER",
        "STATE",
        "TERM",
        "LAST LOG",
        "COMMITTED",
        "APPLIED",
        "LAG",
        "CERT EXPIRES"
    );
    for m in v["members"].as_array().into_iter().flatten() {
        let s = &m["status"];
        let member = if m["voter"].as_bool().unwrap_or(false) {
            "voter"
        } else {
            "learner"
        };
        if s.is_null() {
            println!(
                "{:<16} {:<8} {:<10} {}",
                opt(&m["name"]),
                member,
                "unreachable",
                opt(&m["error"])
            );
            continue;
        }
        println!(
            "{:<16} {:<8} {:<10} {:>6} {:>10} {:>10} {:>10} {:>8}  {:<12} {}",
            opt(&m["name"]),
            member,
            opt(&s["state"]),
            opt(&s["term"]),
            opt(&s["last_log_index"]),
            opt(&s["committed_index"]),
            opt(&s["applied_index"]),
            opt(&m["lag"]),
            opt(&s["cert_not_after"])
                .chars()
                .take(10)
                .collect::<String>(),
            opt(&m["peer"])
        );
    }
}
