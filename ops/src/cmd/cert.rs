//! `enclavectl cert ...`: issue, list, inspect and revoke certificates.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use enclave_certs::{
    CertInfo, CertKind, CertificateAuthority, Role, Validity, ca::DEFAULT_LEAF_DAYS,
};
use serde_json::json;

use super::{Output, print_json};

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

pub fn run(cmd: CertCommand, output: Output) -> anyhow::Result<()> {
    match cmd {
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
