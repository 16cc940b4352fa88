//! `enclavectl`: the operator's tool. Exit codes: 0 ok, 1 failure, 2 usage.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use enclave_ops::Client;
use enclave_ops::cmd::backup::BackupCommand;
use enclave_ops::cmd::cluster::NodeCommand;
use enclave_ops::cmd::{self, Output, ca::CaCommand, cert::CertCommand, cluster::ClusterCommand};

#[derive(Debug, Parser)]
#[command(
    name = "enclavectl",
    version,
    about = "Operate an Enclave cluster: PKI, status, membership, backups, audit, files"
)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Admin endpoint of a node.
    #[arg(
        long,
        global = true,
        env = "ENCLAVECTL_ENDPOINT",
        default_value = "https://127.0.0.1:9443"
    )]
    endpoint: String,
    /// Directory with your operator bundle: ca.pem, cert.pem, key.pem.
    #[arg(long, global = true, env = "ENCLAVECTL_CERT_DIR", value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Replicated ~200-byte writes from 1, 16 and 64 clients: writes/s, p50/p99,
    /// then a check that every acknowledged write is stored.
    Raft(enclave_ops::cmd::bench::RaftBench),
    /// Messaging: (a) messages/s from many senders into many conversations
    /// with send→ack p50/p99, (b) fan-out to a group whose members are all
    /// connected by WebSocket, send→last-member p50/p99.
    Messages(enclave_ops::cmd::msgbench::MessagesBench),
    /// The WeCom-compatible API: (a) a full directory sync
    /// (`batch/replaceuser`) of many rows, (b) `user/create` from
    /// concurrent clients, (c) `message/send` to a department whose members
    /// are all connected. Replaces the directory: benchmark clusters only.
    Wecom(enclave_ops::cmd::wecombench::WecomBench),
    /// Urgent notices: (a) delivery to members who are all connected,
    /// send→last-member p50/p99, (b) every member acknowledging at once,
    /// (c) with --all, a notice to the whole directory: accept time and
    /// Raft entries.
    Notice(enclave_ops::cmd::noticebench::NoticeBench),
    /// Files: upload MB/s and p50/p99 for small (1 MB) and large (100 MB,
    /// chunked) files to the leader, next to the disk's own fsync'd
    /// sequential write speed (dd, same run), then downloads from a
    /// follower, each checked byte for byte.
    Files(enclave_ops::cmd::filebench::FilesBench),
    /// A synthetic enterprise (departments, members, groups, 1:1s), then an
    /// open-loop mix of sends, syncs, read markers, directory lookups and
    /// logins: per-operation p50/p99/p999 and errors, each node's memory,
    /// CPU and store, and invariants (every acknowledged message once).
    Scale(enclave_ops::cmd::scalebench::ScaleBench),
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or show the cluster CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue, list, inspect and revoke certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Show a node's status (admin API, mTLS).
    Status,
    /// Benchmarks that print numbers.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Repair a node (rebuild) or give its disk space back (defrag).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Create and verify backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Cluster lifecycle: init, status, join tokens, add/remove members.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The organization's directory: departments, members, passwords,
    /// lockouts (sysadmin).
    #[command(subcommand)]
    Directory(enclave_ops::cmd::directory::DirectoryCommand),
    /// Read, export and verify the audit chain (auditor; `verify FILE`
    /// works offline).
    #[command(subcommand)]
    Audit(enclave_ops::cmd::audit::AuditCommand),
    /// The replicated messaging policy: limits, lockout, sessions,
    /// directory visibility (show: operators; set: secadmin).
    #[command(subcommand)]
    Policy(enclave_ops::cmd::directory::PolicyCommand),
    /// Integrated apps of the WeCom-compatible API: create, list, show,
    /// enable/disable, rotate secrets, scopes, callbacks (sysadmin).
    #[command(subcommand)]
    App(enclave_ops::cmd::app::AppCommand),
    /// Urgent notices: list, show, recipients by state (sysadmin,
    /// auditor); withdraw (sysadmin).
    #[command(subcommand)]
    Notice(enclave_ops::cmd::notice::NoticeCommand),
    /// Announcements: list, show, readers by state, CSV export of readers
    /// (sysadmin, auditor); withdraw (sysadmin).
    #[command(subcommand)]
    Announcement(enclave_ops::cmd::office::AnnouncementCommand),
    /// Approvals: templates (sysadmin), a request with its trail, CSV
    /// export of finished approvals (sysadmin).
    #[command(subcommand)]
    Approval(enclave_ops::cmd::office::ApprovalCommand),
    /// The blob store of files, images and voice notes: per-node status,
    /// verify and repair (sysadmin).
    #[command(subcommand)]
    Blobs(enclave_ops::cmd::blobs::BlobsCommand),
    /// External contacts: departed employees' unassigned contacts and
    /// customer groups, hand-over (transfers, cancel), external accounts
    /// (disable/enable), whom an employee serves, supervision (sysadmin,
    /// auditor reads); the external-contact policy (show: operators; set:
    /// secadmin).
    #[command(subcommand)]
    External(enclave_ops::cmd::external::ExternalCommand),
    /// Files: the file policy (show: operators; set: secadmin).
    #[command(subcommand)]
    Files(enclave_ops::cmd::files::FilesCommand),
    /// The vendor's Ed25519 release key that signs offline bundles
    /// (works offline).
    #[command(subcommand)]
    ReleaseKey(enclave_ops::cmd::bundle::ReleaseKeyCommand),
    /// Offline install bundles: sign, verify (names every file that
    /// differs), SBOM (works offline).
    #[command(subcommand)]
    Bundle(enclave_ops::cmd::bundle::BundleCommand),
}

/// `enclavectl … | head` closes stdout early: end quietly with the status
/// a tool killed by SIGPIPE has (141) instead of panicking in `println!`
/// (Rust ignores SIGPIPE, so the write fails with EPIPE instead).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enclavectl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ca(c) => cmd::ca::run(c, cli.output, &cli.endpoint, cli.cert_dir.as_deref()),
        Command::Cert(c) => cmd::cert::run(c, cli.output, &cli.endpoint, cli.cert_dir.as_deref()),
        Command::ReleaseKey(c) => cmd::bundle::run_release_key(c, cli.output),
        Command::Bundle(c) => cmd::bundle::run(c, cli.output),
        Command::Status => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::status::run(&client, cli.output))
        }
        Command::Backup(BackupCommand::Verify { file }) => cmd::backup::verify(&file, cli.output),
        Command::Backup(BackupCommand::Create { out }) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::backup::create(&client, &out, cli.output))
        }
        Command::Bench(BenchCommand::Raft(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::bench::run(args, &client, &dir, cli.output))
        }
        Command::Bench(BenchCommand::Messages(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::msgbench::run(args, &client, &dir, cli.output))
        }
        Command::Bench(BenchCommand::Wecom(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::wecombench::run(args, &client, &dir, cli.output))
        }
        Command::Bench(BenchCommand::Notice(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::noticebench::run(args, &client, &dir, cli.output))
        }
        Command::Bench(BenchCommand::Files(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::filebench::run(args, &client, &dir, cli.output))
        }
        Command::Bench(BenchCommand::Scale(args)) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            multi_runtime()?.block_on(cmd::scalebench::run(args, &client, &dir, cli.output))
        }
        Command::Blobs(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            runtime()?.block_on(cmd::blobs::run(c, &client, &dir, cli.output))
        }
        Command::Files(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::files::run(c, &client, cli.output))
        }
        Command::External(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::external::run(c, &client, cli.output))
        }
        Command::Node(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            runtime()?.block_on(cmd::cluster::run_node(c, &client, &dir, cli.output))
        }
        Command::Audit(enclave_ops::cmd::audit::AuditCommand::Verify {
            file: Some(f), ca, ..
        }) => {
            let ca = match (ca, &cli.cert_dir) {
                (Some(ca), _) => ca,
                (None, Some(dir)) => dir.join("ca.pem"),
                (None, None) => anyhow::bail!(
                    "give the cluster CA certificate with --ca FILE (or --cert-dir DIR holding ca.pem)"
                ),
            };
            cmd::audit::verify_file(&f, &ca, cli.output)
        }
        Command::Audit(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::audit::run(c, &client, cli.output))
        }
        Command::Directory(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::directory::run(c, &client, cli.output))
        }
        Command::Policy(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::directory::run_policy(c, &client, cli.output))
        }
        Command::App(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::app::run(c, &client, cli.output))
        }
        Command::Notice(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::notice::run(c, &client, cli.output))
        }
        Command::Announcement(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::office::run_announcement(c, &client, cli.output))
        }
        Command::Approval(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            runtime()?.block_on(cmd::office::run_approval(c, &client, cli.output))
        }
        Command::Cluster(c) => {
            let client = admin_client(&cli.endpoint, cli.cert_dir.as_deref())?;
            let dir = cli.cert_dir.clone().unwrap_or_default();
            runtime()?.block_on(cmd::cluster::run(c, &client, &dir, cli.output))
        }
    }
}

fn admin_client(endpoint: &str, cert_dir: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let dir = cert_dir.ok_or_else(|| {
        anyhow::anyhow!("--cert-dir DIR (or ENCLAVECTL_CERT_DIR) is required: a directory with your ca.pem, cert.pem and key.pem")
    })?;
    Ok(Client::with_cert_dir(endpoint, dir)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn multi_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
