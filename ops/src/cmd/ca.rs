//! `enclavectl ca ...`: create, show and rotate the cluster CA.
//!
//! CA rotation keeps the cluster serving throughout, in three commands:
//! `begin` creates the new CA (in `DIR/next/`) and gives every node the
//! bundle old+new, so both are trusted; `reissue` renews every node
//! certificate (and the operator's) from the new CA; `finish` gives every
//! node the new CA alone and retires the old one to `DIR/retired/`. Each
//! step may be run again after an interruption.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use enclave_certs::rotation::{self, Phase};
use enclave_certs::trust::join_bundle;
use enclave_certs::{CertInfo, CertKind, CertificateAuthority, Validity, ca::DEFAULT_LEAF_DAYS};
use serde_json::{Value, json};

use super::cert::Ctx;
use super::{Output, print_json};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new CA (ECDSA P-256, 10 years) in DIR and print its fingerprint.
    Init(InitArgs),
    /// Print the CA's fingerprint and validity.
    Show(ShowArgs),
    /// Replace the CA without downtime: begin, reissue, finish (secadmin,
    /// over the admin API of --endpoint).
    #[command(subcommand)]
    Rotate(RotateCommand),
}

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Create the new CA in DIR/next and make every node trust old and new.
    Begin {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Common name of the new CA certificate.
        #[arg(long, default_value = "Enclave Cluster CA")]
        name: String,
    },
    /// Renew every node certificate and the operator bundle in --cert-dir
    /// from the new CA (other operators' bundles go to DIR/next/issued/).
    Reissue {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Validity of the new certificates in days.
        #[arg(long, default_value_t = DEFAULT_LEAF_DAYS)]
        days: i64,
    },
    /// Make every node trust the new CA only; retire the old CA to DIR/retired/.
    Finish {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Where the rotation is, and what every node trusts and presents.
    Status {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the CA (created with mode 0700; must not already hold a CA).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Common name of the CA certificate.
    #[arg(long, default_value = "Enclave Cluster CA")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(
    cmd: CaCommand,
    output: Output,
    endpoint: &str,
    cert_dir: Option<&Path>,
) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Rotate(r) => {
            let cert_dir = cert_dir.ok_or_else(|| {
                anyhow::anyhow!(
                    "--cert-dir DIR (or ENCLAVECTL_CERT_DIR) is required: your operator bundle (secadmin)"
                )
            })?;
            let ctx = Ctx::new(endpoint, cert_dir);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(rotate(r, &ctx, output))
        }
        CaCommand::Init(a) => {
            let ca = CertificateAuthority::init(&a.dir, &a.name)?;
            if output == Output::Json {
                return print_json(&json!({ "dir": a.dir, "fingerprint": ca.fingerprint() }));
            }
            println!("Created CA in {}", a.dir.display());
            println!("  certificate  {}", ca.paths().cert().display());
            println!(
                "  private key  {} (mode 0600: keep it offline where you can)",
                ca.paths().key().display()
            );
            println!("  CRL          {}", ca.paths().crl().display());
            println!("{}", ca.fingerprint());
            Ok(())
        }
        CaCommand::Show(a) => {
            let ca = CertificateAuthority::open(&a.dir)?;
            let info =
                CertInfo::from_file(&ca.paths().cert()).context("reading the CA certificate")?;
            if output == Output::Json {
                return print_json(&info);
            }
            println!("CA        {}", info.subject);
            println!("valid     {} .. {}", info.not_before, info.not_after);
            println!("{}", ca.fingerprint());
            Ok(())
        }
    }
}

async fn rotate(cmd: RotateCommand, ctx: &Ctx, output: Output) -> anyhow::Result<()> {
    let text = output == Output::Text;
    match cmd {
        RotateCommand::Begin { dir, name } => {
            if let Some(st) = rotation::load_state(&dir)?
                && st.phase == Phase::Finishing
            {
                bail!(
                    "`ca rotate finish` has started (nodes are being given the new CA alone); run `enclavectl ca rotate finish --dir {}` again to complete it",
                    dir.display()
                );
            }
            let (old, new, state) = rotation::begin(&dir, &name)?;
            let bundle = join_bundle(&[old.cert_pem(), new.cert_pem()])?;
            enclave_certs::files::write_public(&bundle_path(&dir), bundle.as_bytes())?;
            if text {
                println!("old CA  {}", old.fingerprint());
                println!(
                    "new CA  {}  ({})",
                    new.fingerprint(),
                    rotation::next_dir(&dir).display()
                );
            }
            let members = ctx.members().await?;
            let mut done = Vec::new();
            for node in &members {
                let fps = ctx
                    .push_trust(node, &bundle)
                    .await
                    .with_context(|| stopped("begin", &node.name, &done))?;
                if text {
                    println!("{}: trusts {}", node.name, fps.join(", "));
                }
                done.push(node.name.clone());
            }
            // The operator's bundle trusts both, so it can talk to nodes
            // whatever CA their certificate comes from.
            enclave_certs::files::write_public(&ctx.cert_dir.join("ca.pem"), bundle.as_bytes())?;
            if output == Output::Json {
                return print_json(&json!({
                    "phase": state.phase, "old": old.fingerprint(), "new": new.fingerprint(),
                    "nodes": done, "bundle": bundle_path(&dir),
                }));
            }
            println!(
                "Every node trusts the old and the new CA. Give {} to every other operator and monitoring system (as their ca.pem), then run `enclavectl ca rotate reissue --dir {}`.",
                bundle_path(&dir).display(),
                dir.display()
            );
            Ok(())
        }
        RotateCommand::Reissue { dir, days } => {
            let state = rotation::load_state(&dir)?.ok_or_else(|| rotation::no_rotation(&dir))?;
            let (old, new) = rotation::open_pair(&dir, &state)?;
            let validity = Validity::days(days)?;
            let bundle = join_bundle(&[old.cert_pem(), new.cert_pem()])?;
            let members = ctx.members().await?;
            // Every node must trust the new CA before any gets a
            // certificate from it, or its peers would refuse it.
            for node in &members {
                let tls = ctx.tls(node).await?;
                if !trusts(&tls, &state.new_fingerprint) {
                    bail!(
                        "{} does not trust the new CA {} yet; run `enclavectl ca rotate begin --dir {}` again first",
                        node.name,
                        state.new_fingerprint,
                        dir.display()
                    );
                }
            }
            let mut done = Vec::new();
            for node in &members {
                let tls = ctx.tls(node).await?;
                if issuer(&tls).as_deref() == Some(state.new_fingerprint.as_str()) {
                    if text {
                        println!("{}: already has a certificate from the new CA", node.name);
                    }
                    done.push(node.name.clone());
                    continue;
                }
                if text {
                    println!("{}: renewing from the new CA ...", node.name);
                }
                let leaf = ctx
                    .rotate_node(&new, node, validity)
                    .await
                    .with_context(|| stopped("reissue", &node.name, &done))?;
                if text {
                    println!(
                        "{}: serving serial {} from the new CA",
                        node.name, leaf.serial
                    );
                }
                done.push(node.name.clone());
            }
            // The operator bundle used here.
            let mine = super::cert::bundle_trust(&ctx.cert_dir)?;
            if mine.leaf.issuer_fingerprint.as_deref() != Some(state.new_fingerprint.as_str()) {
                let e = super::cert::rotate_operator_bundle(
                    &new,
                    &ctx.cert_dir,
                    validity,
                    Some(&bundle),
                )?;
                if text {
                    println!(
                        "operator bundle {}: renewed {:?} (role {}) from the new CA, serial {}",
                        ctx.cert_dir.display(),
                        e.name,
                        e.role,
                        e.serial
                    );
                }
            }
            // Everybody else the old CA issued for: bundles to hand out.
            let others = reissue_others(&old, &new, validity, &mine)?;
            rotation::mark(&dir, Phase::Reissued)?;
            if output == Output::Json {
                return print_json(&json!({ "nodes": done, "bundles": others }));
            }
            for (what, path) in &others {
                println!("re-issued {what}: {}", path.display());
            }
            if !others.is_empty() {
                println!(
                    "Hand these bundles out (operators and monitoring replace their cert.pem, key.pem, ca.pem) before `finish`: after it, certificates from the old CA are refused."
                );
            }
            println!(
                "Every node serves a certificate from the new CA. When every other client has its new bundle, run `enclavectl ca rotate finish --dir {}`.",
                dir.display()
            );
            Ok(())
        }
        RotateCommand::Finish { dir } => {
            let state = rotation::load_state(&dir)?.ok_or_else(|| rotation::no_rotation(&dir))?;
            if state.phase == Phase::Overlap {
                bail!(
                    "cannot finish the CA rotation: the certificates have not been re-issued from the new CA {} yet; run `enclavectl ca rotate reissue --dir {}` first (finishing now would lock out every node and operator still holding an old-CA certificate)",
                    state.new_fingerprint,
                    dir.display()
                );
            }
            let new = if rotation::next_dir(&dir).join("ca.pem").exists() {
                rotation::open_pair(&dir, &state)?.1
            } else {
                CertificateAuthority::open(&dir)?
            };
            let members = ctx.members().await?;
            for node in &members {
                let tls = ctx.tls(node).await?;
                if issuer(&tls).as_deref() != Some(state.new_fingerprint.as_str()) {
                    bail!(
                        "cannot finish the CA rotation: {} still presents a certificate from {}, not the new CA {}; run `enclavectl ca rotate reissue --dir {}` first",
                        node.name,
                        issuer(&tls).unwrap_or_else(|| "an unknown CA".into()),
                        state.new_fingerprint,
                        dir.display()
                    );
                }
            }
            let mine = super::cert::bundle_trust(&ctx.cert_dir)?;
            if mine.leaf.issuer_fingerprint.as_deref() != Some(state.new_fingerprint.as_str()) {
                bail!(
                    "cannot finish the CA rotation: your operator certificate in {} is not from the new CA; run `enclavectl ca rotate reissue --dir {}` first",
                    ctx.cert_dir.display(),
                    dir.display()
                );
            }
            rotation::mark(&dir, Phase::Finishing)?;
            let mut done = Vec::new();
            for node in &members {
                let fps = ctx
                    .push_trust(node, new.cert_pem())
                    .await
                    .with_context(|| stopped("finish", &node.name, &done))?;
                if text {
                    println!("{}: trusts {}", node.name, fps.join(", "));
                }
                done.push(node.name.clone());
            }
            enclave_certs::files::write_public(
                &ctx.cert_dir.join("ca.pem"),
                new.cert_pem().as_bytes(),
            )?;
            let retired = rotation::complete(&dir)?;
            let _ = std::fs::remove_file(bundle_path(&dir));
            if output == Output::Json {
                return print_json(&json!({
                    "ca": state.new_fingerprint, "retired": retired, "nodes": done,
                }));
            }
            println!(
                "The cluster trusts only {} now; certificates from the old CA are refused.",
                state.new_fingerprint
            );
            println!(
                "The old CA is in {}: keep it (audit checkpoints signed before today verify with its ca.pem; `audit verify --ca` accepts both in one file).",
                retired.display()
            );
            Ok(())
        }
        RotateCommand::Status { dir } => {
            let state = rotation::load_state(&dir)?;
            let members = ctx.members().await?;
            let mut nodes = Vec::new();
            for node in &members {
                let tls = ctx
                    .tls(node)
                    .await
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
                nodes.push(json!({"node": node.name, "tls": tls}));
            }
            if output == Output::Json {
                return print_json(&json!({ "rotation": state, "nodes": nodes }));
            }
            match &state {
                None => println!("no CA rotation in progress in {}", dir.display()),
                Some(s) => {
                    println!("phase   {} (since {})", s.phase, s.started_at);
                    println!("old CA  {}", s.old_fingerprint);
                    println!("new CA  {}", s.new_fingerprint);
                }
            }
            for n in &nodes {
                let tls = &n["tls"];
                println!(
                    "{}: trusts {}; certificate from {}",
                    n["node"].as_str().unwrap_or("?"),
                    tls["ca"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["fingerprint"].as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    issuer(tls).unwrap_or_else(|| tls["error"].as_str().unwrap_or("?").into())
                );
            }
            Ok(())
        }
    }
}

/// `DIR/ca-bundle.pem`: old + new during a rotation, for other clients.
pub fn bundle_path(dir: &Path) -> PathBuf {
    dir.join("ca-bundle.pem")
}

fn stopped(step: &str, node: &str, done: &[String]) -> String {
    format!(
        "`ca rotate {step}` stopped at {node} (done: {}); nothing is lost and the cluster keeps serving: fix the cause and run the same command again",
        if done.is_empty() {
            "none".into()
        } else {
            done.join(", ")
        }
    )
}

fn trusts(tls: &Value, fp: &str) -> bool {
    tls["ca"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["fingerprint"].as_str() == Some(fp))
}

fn issuer(tls: &Value) -> Option<String> {
    tls["certificate"]["issuer_fingerprint"]
        .as_str()
        .map(str::to_string)
}

/// Re-issue, from `new`, every operator and device certificate `old`
/// issued that is still valid (latest per name), except the bundle in use
/// here (`mine`). Returns (what, bundle directory) pairs.
fn reissue_others(
    old: &CertificateAuthority,
    new: &CertificateAuthority,
    validity: Validity,
    mine: &enclave_certs::TrustInfo,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut latest: std::collections::BTreeMap<(String, String), enclave_certs::IndexEntry> =
        Default::default();
    for e in old.list()? {
        if e.kind == "node" || e.revoked_at.is_some() || e.not_after_unix <= now {
            continue;
        }
        latest.insert((e.kind.clone(), e.name.clone()), e);
    }
    let already: std::collections::BTreeSet<(String, String)> =
        new.list()?.into_iter().map(|e| (e.kind, e.name)).collect();
    let mut out = Vec::new();
    for ((kind, name), e) in latest {
        if already.contains(&(kind.clone(), name.clone())) || e.serial == mine.leaf.serial {
            continue;
        }
        let k = match kind.as_str() {
            "operator" => CertKind::Operator {
                name: name.clone(),
                role: e.role,
            },
            "device" => CertKind::Device { user: name.clone() },
            _ => continue,
        };
        let issued = new.issue(&k, validity)?;
        let path = new.paths().bundle_dir(&k);
        new.write_bundle(&issued, &path)?;
        out.push((format!("{kind} {name} ({})", e.role), path));
    }
    Ok(out)
}
