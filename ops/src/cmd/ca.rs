//! `enclavectl ca ...`: create and show the cluster CA.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_certs::{CertInfo, CertificateAuthority};
use serde_json::json;

use super::{Output, print_json};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new CA (ECDSA P-256, 10 years) in DIR and print its fingerprint.
    Init(InitArgs),
    /// Print the CA's fingerprint and validity.
    Show(ShowArgs),
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

pub fn run(cmd: CaCommand, output: Output) -> anyhow::Result<()> {
    match cmd {
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
