//! `enclavectl` commands. Each module is one command group.

pub mod app;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod blobs;
pub mod bundle;
pub mod ca;
pub mod cert;
pub mod cluster;
pub mod defrag;
pub mod directory;
pub mod external;
pub mod external_view;
pub mod filebench;
pub mod files;
pub mod msgbench;
pub mod notice;
pub mod noticebench;
pub mod office;
pub mod sbom;
pub mod scalebench;
pub mod status;
pub mod wecombench;

use clap::ValueEnum;

/// Output format of every command that prints data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Print `value` as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
