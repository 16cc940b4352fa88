//! Command line of the `enclave` daemon.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "enclave",
    version,
    about = "Enclave: private enterprise messaging appliance (node daemon)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a node.
    Start(Box<StartArgs>),
    /// Seed a fresh data dir from a backup (`enclavectl backup create`); the
    /// node started on it becomes a one-node cluster with that state.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// A data dir that does not hold a store yet.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// A copy of a node's `blobs/chunks` directory taken after the
        /// backup (see docs/operator/backup.md): the chunks the restored
        /// files need are checked and copied in.
        #[arg(long, value_name = "DIR")]
        blobs_from: Option<PathBuf>,
    },
    /// Give a stopped node's unused disk space back: rewrite its store
    /// into a fresh file, check the copy record by record, and swap it in
    /// (like `etcdctl defrag`). Run it on one node at a time; the others
    /// keep serving. See docs/operator/sizing.md § Disk.
    Defrag {
        /// The node's data dir (node.data_dir); the node must be stopped.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Configuration file (TOML). Values from ENCLAVE_* variables and flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run a single dev node on loopback with a CA, node and operator
    /// certificate created under the data dir on first run.
    #[arg(long)]
    pub dev: bool,
    /// Data directory (node.data_dir; default /var/lib/enclave, or ./enclave-data with --dev).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node name (node.id); must match the node certificate.
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Peer listener address (listen.peer).
    #[arg(long, value_name = "ADDR")]
    pub listen_peer: Option<String>,
    /// API listener address (listen.api).
    #[arg(long, value_name = "ADDR")]
    pub listen_api: Option<String>,
    /// Admin listener address (listen.admin).
    #[arg(long, value_name = "ADDR")]
    pub listen_admin: Option<String>,
    /// Join an existing cluster through this node's peer port, e.g.
    /// https://10.0.0.1:7400 (first start only; needs --token, --ca-hash and --node-id).
    #[arg(long, value_name = "URL", requires_all = ["token", "ca_hash", "node_id"])]
    pub join: Option<String>,
    /// With --join: wipe this node's store (keeping its certificate and
    /// identity) and rejoin, catching up from the peers by snapshot. Use the
    /// command printed by `enclavectl node rebuild NODE`.
    #[arg(long, requires = "join")]
    pub rebuild: bool,
    /// One-time join token from `enclavectl cluster join-token`.
    #[arg(
        long,
        env = "ENCLAVE_JOIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Expected CA fingerprint, sha256:<hex>, from `enclavectl cluster join-token`.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_hash: Option<String>,
    /// Log format: text or json (log.format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or enclave_node=debug,info (log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl StartArgs {
    /// Flags as config overrides: (key, value, flag name).
    pub fn overrides(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, flag: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((key.to_string(), v, flag.to_string()));
            }
        };
        push(
            "node.data_dir",
            "--data-dir",
            self.data_dir.as_ref().map(|p| p.display().to_string()),
        );
        push("node.id", "--node-id", self.node_id.clone());
        push("listen.peer", "--listen-peer", self.listen_peer.clone());
        push("listen.api", "--listen-api", self.listen_api.clone());
        push("listen.admin", "--listen-admin", self.listen_admin.clone());
        push("log.format", "--log-format", self.log_format.clone());
        push("log.level", "--log-level", self.log_level.clone());
        out
    }
}
