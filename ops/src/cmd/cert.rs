//! `enclavectl cert ...`: issue, list, inspect, revoke and rotate
//! certificates.
//!
//! `cert rotate` renews node certificates without downtime, one node at a
//! time over the admin API: the node makes a new key and a CSR
//! (`POST /v1/tls/csr`), the CA here signs it with the node's current
//! names and addresses, the node checks and installs it and reloads
//! (`PUT /v1/tls/cert`); the next node is only started once this one
//! serves the new certificate and every member reaches it again. The CA
//! key stays on this machine, the node's key on the node.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use enclave_certs::trust::TrustInfo;
use enclave_certs::{
    CertInfo, CertKind, CertificateAuthority, Role, Validity, ca::DEFAULT_LEAF_DAYS, files,
    rotation,
};
use http::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate signed by the CA.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// List every certificate the CA issued.
    List(CaDir),
    /// Show a certificate file: subject, serial, validity, role, SANs.
    Inspect {
        /// A PEM certificate file.
        file: PathBuf,
    },
    /// Revoke a certificate by serial and rewrite the CA's crl.pem.
    Revoke {
        /// Serial number in hex, as printed by `cert list`.
        serial: String,
        #[command(flatten)]
        ca: CaDir,
    },
    /// Renew node certificates across the cluster without downtime, one
    /// node at a time (secadmin, over the admin API of --endpoint); or,
    /// with --operator, the operator bundle in --cert-dir.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub ca: CaDir,
    /// Node to rotate (repeatable). Default: every member of the cluster.
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Renew the operator certificate in --cert-dir instead (same name and
    /// role); takes effect at the next command.
    #[arg(long, conflicts_with = "nodes")]
    pub operator: bool,
    /// Validity of the new certificates in days.
    #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
    pub days: i64,
}

#[derive(Debug, Args)]
pub struct CaDir {
    /// The CA directory (from `ca init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub ca: CaDir,
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
    pub days: i64,
    /// Where to write cert.pem, key.pem and ca.pem (default DIR/issued/<kind>-<name>).
    #[arg(long, value_name = "OUT_DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// A node certificate (serverAuth + clientAuth).
    Node {
        #[command(flatten)]
        common: Common,
        /// Node name (also a DNS SAN).
        #[arg(long)]
        name: String,
        /// IP address the node is reached at (repeatable).
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Extra DNS name the node is reached at (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
    },
    /// An operator or monitoring certificate (clientAuth; role in the certificate).
    Operator {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
        /// sysadmin, secadmin, auditor or monitor.
        #[arg(long, value_parser = parse_operator_role)]
        role: Role,
    },
    /// An employee device certificate (clientAuth; user id in the certificate).
    Device {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        user: String,
    },
}

fn parse_operator_role(s: &str) -> Result<Role, String> {
    let role: Role = s.parse()?;
    if role.is_operator() {
        Ok(role)
    } else {
        Err(format!(
            "{s} is not an operator role (sysadmin, secadmin, auditor, monitor)"
        ))
    }
}

pub fn run(
    cmd: CertCommand,
    output: Output,
    endpoint: &str,
    cert_dir: Option<&Path>,
) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Rotate(args) => {
            let ca = rotation::issuing_ca(&args.ca.dir)?;
            let validity = Validity::days(args.days)?;
            let cert_dir = need_cert_dir(cert_dir)?;
            if args.operator {
                let entry = rotate_operator_bundle(&ca, cert_dir, validity, None)?;
                if output == Output::Json {
                    return print_json(&entry);
                }
                println!(
                    "Renewed operator certificate {:?} (role {}) in {}: serial {}, valid until {}",
                    entry.name,
                    entry.role,
                    cert_dir.display(),
                    entry.serial,
                    entry.not_after
                );
                return Ok(());
            }
            let ctx = Ctx::new(endpoint, cert_dir);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let members = ctx.members().await?;
                let targets = select_nodes(&members, &args.nodes)?;
                let mut done = Vec::new();
                for node in &targets {
                    if output == Output::Text {
                        println!("{}: renewing ...", node.name);
                    }
                    let r = ctx
                        .rotate_node(&ca, node, validity)
                        .await
                        .with_context(|| rotation_stopped(&node.name, &done))?;
                    if output == Output::Text {
                        println!(
                            "{}: serving serial {} (issuer {}), valid until {}",
                            node.name,
                            r.serial,
                            r.issuer_fingerprint.as_deref().unwrap_or("?"),
                            r.not_after
                        );
                    }
                    done.push(json!({"node": node.name, "serial": r.serial, "not_after": r.not_after, "issuer": r.issuer_fingerprint}));
                }
                if output == Output::Json {
                    return print_json(&json!({ "rotated": done }));
                }
                println!("Rotated {} node certificate(s); the cluster served throughout.", done.len());
                Ok(())
            })
        }
        CertCommand::Issue(issue) => {
            let (common, kind) = match issue {
                IssueCommand::Node {
                    common,
                    name,
                    ips,
                    dns,
                } => (common, CertKind::Node { name, ips, dns }),
                IssueCommand::Operator { common, name, role } => {
                    (common, CertKind::Operator { name, role })
                }
                IssueCommand::Device { common, user } => (common, CertKind::Device { user }),
            };
            let validity = Validity::days(common.days)?;
            let ca = CertificateAuthority::open(&common.ca.dir)?;
            let out = common.out.unwrap_or_else(|| ca.paths().bundle_dir(&kind));
            let issued = ca.issue(&kind, validity)?;
            ca.write_bundle(&issued, &out)?;
            if output == Output::Json {
                return print_json(&json!({ "entry": issued.entry, "dir": out }));
            }
            println!(
                "Issued {} certificate for {:?} (role {}), serial {}, valid until {}",
                issued.entry.kind,
                issued.entry.name,
                issued.entry.role,
                issued.entry.serial,
                issued.entry.not_after
            );
            println!("  {}/cert.pem", out.display());
            println!("  {}/key.pem  (mode 0600)", out.display());
            println!("  {}/ca.pem", out.display());
            Ok(())
        }
        CertCommand::List(dir) => {
            let ca = CertificateAuthority::open(&dir.dir)?;
            let list = ca.list()?;
            if output == Output::Json {
                return print_json(&list);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            println!(
                "{:<34} {:<9} {:<10} {:<24} {:<21} STATUS",
                "SERIAL", "KIND", "ROLE", "NAME", "NOT AFTER"
            );
            for e in list {
                let status = match (&e.revoked_at, e.not_after_unix < now) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, true) => "expired".into(),
                    (None, false) => "valid".into(),
                };
                println!(
                    "{:<34} {:<9} {:<10} {:<24} {:<21} {status}",
                    e.serial, e.kind, e.role, e.name, e.not_after
                );
            }
            Ok(())
        }
        CertCommand::Inspect { file } => {
            let info = CertInfo::from_file(&file)?;
            if output == Output::Json {
                return print_json(&info);
            }
            println!("file         {}", file.display());
            println!("subject      {}", info.subject);
            println!("issuer       {}", info.issuer);
            println!("serial       {}", info.serial);
            println!("valid        {} .. {}", info.not_before, info.not_after);
            println!("CA           {}", info.is_ca);
            println!(
                "role         {}",
                info.role.map_or("-".to_string(), |r| r.to_string())
            );
            if let Some(n) = &info.name {
                println!("name         {n}");
            }
            for d in &info.dns_names {
                println!("DNS          {d}");
            }
            for i in &info.ip_addresses {
                println!("IP           {i}");
            }
            for u in &info.uris {
                println!("URI          {u}");
            }
            println!("fingerprint  {}", info.fingerprint);
            Ok(())
        }
        CertCommand::Revoke { serial, ca } => {
            let authority = CertificateAuthority::open(&ca.dir)?;
            let entry = authority.revoke(&serial)?;
            if output == Output::Json {
                return print_json(&entry);
            }
            println!(
                "Revoked {} certificate {:?} (serial {}).",
                entry.kind, entry.name, entry.serial
            );
            println!(
                "Copy {} to every node's TLS directory (tls.crl); nodes pick it up within tls.reload_interval_secs or on SIGHUP.",
                authority.paths().crl().display()
            );
            Ok(())
        }
    }
}

fn need_cert_dir(cert_dir: Option<&Path>) -> anyhow::Result<&Path> {
    cert_dir.ok_or_else(|| {
        anyhow::anyhow!(
            "--cert-dir DIR (or ENCLAVECTL_CERT_DIR) is required: your operator bundle (a secadmin certificate to rotate)"
        )
    })
}

fn rotation_stopped(node: &str, done: &[Value]) -> String {
    let done: Vec<&str> = done.iter().filter_map(|d| d["node"].as_str()).collect();
    format!(
        "rotation stopped at {node} (already rotated: {}); the node keeps serving its previous certificate unless it reports the new one: check `enclavectl status`, then run the command again",
        if done.is_empty() {
            "none".to_string()
        } else {
            done.join(", ")
        }
    )
}

/// A cluster member as `enclavectl` reaches it.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub name: String,
    pub admin_url: String,
}

/// Pick the named nodes among the members (all if none is named),
/// refusing unknown names before anything is changed.
pub fn select_nodes(members: &[NodeRef], names: &[String]) -> anyhow::Result<Vec<NodeRef>> {
    if names.is_empty() {
        return Ok(members.to_vec());
    }
    let mut out = Vec::new();
    for n in names {
        match members.iter().find(|m| &m.name == n) {
            Some(m) => out.push(m.clone()),
            None => bail!(
                "no member named {n:?} in the cluster (members: {}); nothing was changed",
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(out)
}

/// What `enclavectl` needs to drive a rotation: where to start and the
/// operator bundle (re-read for every connection, so a bundle changed
/// along the way is used at once).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub endpoint: String,
    pub cert_dir: PathBuf,
}

impl Ctx {
    pub fn new(endpoint: &str, cert_dir: &Path) -> Ctx {
        Ctx {
            endpoint: endpoint.to_string(),
            cert_dir: cert_dir.to_path_buf(),
        }
    }

    pub fn client(&self, endpoint: &str) -> anyhow::Result<Client> {
        Ok(Client::with_cert_dir(endpoint, &self.cert_dir)?.with_timeout(Duration::from_secs(30)))
    }

    /// Every member of the cluster (voters and learners) with its admin
    /// address; a node not yet in a cluster is its own only member.
    pub async fn members(&self) -> anyhow::Result<Vec<NodeRef>> {
        let client = self.client(&self.endpoint)?;
        let st: Value = client.get_json("/v1/cluster/status").await?;
        let mut out = Vec::new();
        for m in st["members"].as_array().into_iter().flatten() {
            let (Some(name), Some(admin)) = (m["name"].as_str(), m["admin"].as_str()) else {
                continue;
            };
            if admin.is_empty() {
                bail!(
                    "member {name} has no admin address in the cluster configuration; rotate it with --endpoint https://<its admin address> --node {name}"
                );
            }
            out.push(NodeRef {
                name: name.to_string(),
                admin_url: format!("https://{admin}"),
            });
        }
        if out.is_empty() {
            let me: Value = client.get_json("/v1/status").await?;
            out.push(NodeRef {
                name: me["node_id"].as_str().unwrap_or_default().to_string(),
                admin_url: self.endpoint.clone(),
            });
        }
        Ok(out)
    }

    /// `GET /v1/tls` of one node.
    pub async fn tls(&self, node: &NodeRef) -> anyhow::Result<Value> {
        Ok(self.client(&node.admin_url)?.get_json("/v1/tls").await?)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        node: &NodeRef,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let client = self.client(&node.admin_url)?;
        let (status, bytes) = client
            .request(
                method.clone(),
                path,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            bail!(
                "{} ({}): {method} {path}: HTTP {status}: {}",
                node.name,
                node.admin_url,
                v["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())
            );
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{path}: unexpected answer"))
    }

    /// Renew one node's certificate from `ca`, keeping its names and
    /// addresses; return once it serves the new one and every member
    /// reaches it.
    pub async fn rotate_node(
        &self,
        ca: &CertificateAuthority,
        node: &NodeRef,
        validity: Validity,
    ) -> anyhow::Result<enclave_certs::LeafSummary> {
        let answer: Value = self
            .call(node, Method::POST, "/v1/tls/csr", Some(json!({})))
            .await?;
        let name = answer["node"].as_str().unwrap_or_default();
        if name != node.name {
            bail!(
                "{} answered as node {name:?}, not {:?}; check the member's admin address",
                node.admin_url,
                node.name
            );
        }
        let csr = answer["csr_pem"].as_str().context("no CSR in the answer")?;
        let current = answer["cert_pem"]
            .as_str()
            .context("no certificate in the answer")?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(current.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c)
            .context("the node's current certificate is not PEM")?;
        let info = CertInfo::from_der(Path::new("current certificate"), &der)?;
        let ips = info
            .ip_addresses
            .iter()
            .filter_map(|i| i.parse::<IpAddr>().ok())
            .collect();
        let dns = info
            .dns_names
            .iter()
            .filter(|d| *d != &node.name)
            .cloned()
            .collect();
        let kind = CertKind::Node {
            name: node.name.clone(),
            ips,
            dns,
        };
        let issued = ca.issue_for_csr(&kind, validity, csr)?;
        let st: Value = self
            .call(
                node,
                Method::PUT,
                "/v1/tls/cert",
                Some(json!({ "cert_pem": issued.cert_pem })),
            )
            .await?;
        let leaf: enclave_certs::LeafSummary = serde_json::from_value(st["certificate"].clone())
            .context("the node did not report its certificate")?;
        if leaf.serial != issued.entry.serial {
            bail!(
                "{} reports serial {} after the install, not the new {}",
                node.name,
                leaf.serial,
                issued.entry.serial
            );
        }
        self.wait_status_serial(node, &issued.entry.serial).await?;
        self.wait_reachable(node).await?;
        Ok(leaf)
    }

    /// Wait until `/v1/status` (a new handshake) reports `serial`.
    async fn wait_status_serial(&self, node: &NodeRef, serial: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = match self.client(&node.admin_url) {
                Ok(c) => c
                    .get_json::<Value>("/v1/status")
                    .await
                    .ok()
                    .and_then(|v| v["certificate"]["serial"].as_str().map(str::to_string)),
                Err(_) => None,
            };
            if got.as_deref() == Some(serial) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} does not report the new serial {serial} (it reports {}); see its log",
                    node.name,
                    got.unwrap_or_else(|| "nothing".into())
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Wait until, seen from `node`, every member answers over the peer
    /// port (so its new certificate is accepted by all of them).
    pub async fn wait_reachable(&self, node: &NodeRef) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut missing = Vec::new();
            match self.client(&node.admin_url) {
                Ok(c) => match c.get_json::<Value>("/v1/cluster/status").await {
                    Ok(st) => {
                        for m in st["members"].as_array().into_iter().flatten() {
                            if m.get("status").is_none_or(|s| s.is_null()) {
                                missing.push(format!(
                                    "{} ({})",
                                    m["name"].as_str().unwrap_or("?"),
                                    m["error"].as_str().unwrap_or("no answer")
                                ));
                            }
                        }
                    }
                    Err(e) => missing.push(e.to_string()),
                },
                Err(e) => missing.push(e.to_string()),
            }
            if missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "after the install, {} cannot reach: {}",
                    node.name,
                    missing.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Install a trust bundle on one node; return what it now trusts.
    pub async fn push_trust(
        &self,
        node: &NodeRef,
        bundle_pem: &str,
    ) -> anyhow::Result<Vec<String>> {
        let st: Value = self
            .call(
                node,
                Method::PUT,
                "/v1/tls/trust",
                Some(json!({ "ca_pem": bundle_pem })),
            )
            .await?;
        Ok(st["ca"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["fingerprint"].as_str().map(str::to_string))
            .collect())
    }
}

/// Renew the operator bundle in `dir` from `ca`: same name and role, a new
/// key. With `ca_pem`, `ca.pem` is replaced too. Written as `*.next` files
/// first, then renamed (certificate, then key); if interrupted, run again.
pub fn rotate_operator_bundle(
    ca: &CertificateAuthority,
    dir: &Path,
    validity: Validity,
    ca_pem: Option<&str>,
) -> anyhow::Result<enclave_certs::IndexEntry> {
    let cert = dir.join("cert.pem");
    let info = CertInfo::from_file(&cert)?;
    let (Some(role), Some(name)) = (info.role, info.name.clone()) else {
        bail!(
            "{}: carries no Enclave role; issue a new operator certificate with `cert issue operator`",
            cert.display()
        );
    };
    if !role.is_operator() {
        bail!(
            "{}: is a {role} certificate, not an operator's; use `cert rotate --node` for nodes",
            cert.display()
        );
    }
    let issued = ca.issue(&CertKind::Operator { name, role }, validity)?;
    let next = |f: &str| dir.join(format!("{f}.next"));
    files::write_secret(&next("key.pem"), issued.key_pem.as_bytes())?;
    files::write_public(&next("cert.pem"), issued.cert_pem.as_bytes())?;
    if let Some(pem) = ca_pem {
        files::write_public(&dir.join("ca.pem"), pem.as_bytes())?;
    }
    for f in ["cert.pem", "key.pem"] {
        std::fs::rename(next(f), dir.join(f))
            .with_context(|| format!("installing {}", dir.join(f).display()))?;
    }
    // The bundle must work as it stands now.
    enclave_certs::TlsMaterial::load(&enclave_certs::TlsPaths::from_dir(dir))
        .with_context(|| format!("checking the renewed bundle {}", dir.display()))?;
    Ok(issued.entry)
}

/// The trust and certificate of an operator bundle, described.
pub fn bundle_trust(dir: &Path) -> anyhow::Result<TrustInfo> {
    Ok(
        enclave_certs::TlsMaterial::load_unverified(&enclave_certs::TlsPaths::from_dir(dir))?
            .trust_info()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_node_names_are_refused_before_anything_changes() {
        let members = vec![
            NodeRef {
                name: "node-1".into(),
                admin_url: "https://a".into(),
            },
            NodeRef {
                name: "node-2".into(),
                admin_url: "https://b".into(),
            },
        ];
        assert_eq!(select_nodes(&members, &[]).expect("all").len(), 2);
        let one = select_nodes(&members, &["node-2".into()]).expect("one");
        assert_eq!(one[0].admin_url, "https://b");
        let err = select_nodes(&members, &["node-1".into(), "node-9".into()])
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("node-9") && err.contains("node-1, node-2"),
            "{err}"
        );
    }
}
