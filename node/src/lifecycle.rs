//! Versions across a rolling upgrade (docs/operator/upgrade.md).
//!
//! - **Release**: this build's version ([`RELEASE`]).
//! - **Log version**: the newest replicated-log version this build can
//!   apply ([`LOG_VERSION`]). A command kind introduced in version N (see
//!   [`Command::log_version`]) is proposed only once the cluster has moved
//!   to N (`cfg/version`, [`Command::SetClusterVersion`]), and the leader
//!   moves it only when every voter reports a build with log version ≥ N.
//!   So a cluster may run N−1 and N side by side; an old node that still
//!   meets an entry it cannot decode stops applying (see
//!   `messaging::NodeApp::halt`) rather than skipping it.
//! - **Data format**: the layout of the data directory ([`DATA_FORMAT`],
//!   in `<data_dir>/FORMAT`). Migrated on start, after a copy of the store
//!   is taken; a newer format than the build knows is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use enclave_cluster::types::Member;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::audit::Origin;
use crate::domain::{self, Command};
use crate::http::{ApiError, NodeState};

/// This build's release version.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The newest replicated-log version this build applies. Version 1 is what
/// v0.1.0 wrote; version 2 added `SetClusterVersion`; version 3
/// added the external-contact commands (issue 19); version 4 indexes every
/// event by number for sync (`chg/`, see `domain::keys::CHANGES`) — no new
/// command kind, but old commands write more, so it waits for the gate;
/// version 5 stores a message once (its posting event is derived from the
/// message record, `domain::keys::MESSAGE_ONCE_VERSION`) and keeps a
/// reference, not the message, as a send's idempotency record — old
/// commands write less, and an old build would not find the events;
/// version 6 changes no command: from it, snapshots and backups are
/// written compressed (`SNAPSHOT_DEFLATE_VERSION`), which an older build
/// cannot load.
pub const LOG_VERSION: u32 = 6;

/// The log version from which snapshot and backup files are written in
/// the compressed format (version 2 of `enclave_cluster::store::snapshot`):
/// only once every voter runs a build that reads it, since a leader sends
/// its snapshot to followers of any build.
pub const SNAPSHOT_DEFLATE_VERSION: u32 = 6;

/// The data-directory format this build reads and writes.
pub const DATA_FORMAT: u32 = 1;

/// The file in the data directory that names its format.
pub const FORMAT_FILE: &str = "FORMAT";

/// What a node runs, as it tells its peers (`POST /node/v1/version` on the
/// peer port; builds before v0.2.0 answer 404 and are log version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersion {
    pub release: String,
    pub log_version: u32,
    pub data_format: u32,
}

impl NodeVersion {
    pub fn this_build() -> NodeVersion {
        NodeVersion {
            release: RELEASE.into(),
            log_version: LOG_VERSION,
            data_format: DATA_FORMAT,
        }
    }
}

/// Peer route: this node's version.
pub fn peer_router(state: Arc<NodeState>) -> axum::Router {
    axum::Router::new()
        .route(
            "/node/v1/version",
            axum::routing::post(|| async {
                postcard::to_stdvec(&NodeVersion::this_build()).unwrap_or_default()
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::blobs::peer::members_only,
        ))
        .with_state(state)
}

// ------------------------------------------------------------ the gate

/// The cluster's log version as this node has applied it.
pub fn cluster_version(state: &NodeState) -> Result<domain::ClusterVersion, ApiError> {
    let v = state.view();
    let rec = domain::store::StoreExt::get_as::<domain::ClusterVersion>(
        &v,
        domain::keys::CLUSTER_VERSION,
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            format!("reading the cluster version: {e}"),
        )
    })?;
    Ok(rec.unwrap_or(domain::ClusterVersion {
        version: 1,
        set_ms: 0,
        forced: false,
    }))
}

/// Refuse, before proposing, a command kind the cluster has not moved to:
/// some voter may still run a build that cannot decode it.
pub fn gate(state: &NodeState, cmd: &Command) -> Result<(), ApiError> {
    let needs = cmd.log_version();
    if needs <= 1 || matches!(cmd, Command::SetClusterVersion { .. }) {
        return Ok(());
    }
    let at = cluster_version(state)?.version;
    if needs > at {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_upgrading",
            format!(
                "this needs log version {needs}; the cluster is at {at} until every voter \
                 runs a build that has it (enclavectl cluster upgrade-check)"
            ),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ versions of the members

/// One member's version, as `upgrade-check` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberVersion {
    pub id: u64,
    pub name: String,
    pub voter: bool,
    pub leader: bool,
    /// None: the node could not be asked (see `error`).
    pub release: Option<String>,
    pub log_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Ask every member for its version (older builds answer 404: version 1).
pub async fn member_versions(state: &NodeState) -> Vec<MemberVersion> {
    let members = state.cluster.members();
    let voters: std::collections::BTreeSet<u64> = {
        let m = state.cluster.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().voter_ids().collect()
    };
    let leader = state.cluster.leader().map(|(id, _)| id);
    let mut handles = Vec::new();
    for (id, member) in members {
        let peers = state.cluster.peers.clone();
        let me = state.cluster.id;
        let voter = voters.contains(&id);
        handles.push(tokio::spawn(async move {
            let (release, log_version, error) = if id == me {
                (Some(RELEASE.to_string()), Some(LOG_VERSION), None)
            } else {
                ask(&peers, id, &member).await
            };
            MemberVersion {
                id,
                name: member.name.clone(),
                voter,
                leader: leader == Some(id),
                release,
                log_version,
                error,
            }
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

async fn ask(
    peers: &enclave_cluster::peer::client::Peers,
    id: u64,
    member: &Member,
) -> (Option<String>, Option<u32>, Option<String>) {
    use enclave_cluster::peer::client::PeerError;
    let r: Result<NodeVersion, PeerError> = peers
        .get(id, member)
        .call("/node/v1/version", &(), Duration::from_secs(3))
        .await;
    match r {
        Ok(v) => (Some(v.release), Some(v.log_version), None),
        // A build before v0.2.0 has no version route.
        Err(PeerError::Status { status: 404, .. }) => (Some("0.1.0".into()), Some(1), None),
        Err(e) => (None, None, Some(e.to_string())),
    }
}

/// `GET /v1/cluster/upgrade` (admin port): where the rolling upgrade stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeCheck {
    /// The log version the cluster has moved to.
    pub cluster_version: u32,
    /// When it moved (ms since the epoch; 0: never) and whether by force.
    pub set_ms: u64,
    pub forced: bool,
    /// The newest log version every member's build understands.
    pub common_version: Option<u32>,
    /// The answering node's build.
    pub this_node: NodeVersion,
    pub members: Vec<MemberVersion>,
    /// The next node to upgrade: a follower on an older build (the leader
    /// last), or none.
    pub next: Option<String>,
    /// True when every voter runs a build with the newest log version seen
    /// and the cluster has moved to it.
    pub done: bool,
    /// What to do next, in words.
    pub advice: String,
}

pub async fn upgrade_check(state: &NodeState) -> Result<UpgradeCheck, ApiError> {
    let cv = cluster_version(state)?;
    let members = member_versions(state).await;
    let newest = members
        .iter()
        .filter_map(|m| m.log_version)
        .max()
        .unwrap_or(LOG_VERSION)
        .max(LOG_VERSION);
    let unknown: Vec<&MemberVersion> = members.iter().filter(|m| m.log_version.is_none()).collect();
    let common = if unknown.is_empty() {
        members.iter().filter_map(|m| m.log_version).min()
    } else {
        None
    };
    let mut old: Vec<&MemberVersion> = members
        .iter()
        .filter(|m| m.log_version.is_some_and(|v| v < newest))
        .collect();
    // Followers first, the leader last (one leader change, at the end).
    old.sort_by_key(|m| (m.leader, !m.voter, m.name.clone()));
    let next = old.first().map(|m| m.name.clone());
    let done = old.is_empty() && unknown.is_empty() && cv.version >= newest;
    let advice = if !unknown.is_empty() {
        format!(
            "cannot ask {}: bring it back (or remove it) before the cluster can move on",
            unknown
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if let Some(n) = &next {
        format!(
            "upgrade {n} next (stop it, replace the binary, start it, wait until `enclavectl cluster status` shows it caught up); {} node(s) left",
            old.len()
        )
    } else if cv.version < newest {
        format!(
            "every node runs log version {newest}; the leader moves the cluster to it within seconds"
        )
    } else {
        format!(
            "upgrade complete: every node runs {RELEASE}-compatible builds at log version {newest}"
        )
    };
    Ok(UpgradeCheck {
        cluster_version: cv.version,
        set_ms: cv.set_ms,
        forced: cv.forced,
        common_version: common,
        this_node: NodeVersion::this_build(),
        members,
        next,
        done,
        advice,
    })
}

/// `GET /v1/cluster/upgrade` (operators).
pub async fn upgrade_route(
    State(state): State<Arc<NodeState>>,
) -> Result<Json<UpgradeCheck>, ApiError> {
    Ok(Json(upgrade_check(&state).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVersion {
    pub version: u32,
    /// Move even though some voter does not report a build that has the
    /// version: such a node stops applying until it is upgraded.
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/cluster/version` (sysadmin): move the cluster now instead of
/// waiting for the leader (with `force`, even past nodes on older builds).
pub async fn set_version_route(
    State(state): State<Arc<NodeState>>,
    op: crate::admin::OperatorOrigin,
    body: axum::body::Bytes,
) -> Result<Json<UpgradeCheck>, ApiError> {
    let req: SetVersion = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid body: {e}"),
        )
    })?;
    if req.version > LOG_VERSION || req.version < 2 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            format!("version must be between 2 and {LOG_VERSION} (this node's build)"),
        ));
    }
    let check = upgrade_check(&state).await?;
    if req.version <= check.cluster_version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_there",
            format!(
                "the cluster is at log version {} already",
                check.cluster_version
            ),
        ));
    }
    let behind: Vec<String> = check
        .members
        .iter()
        .filter(|m| m.voter && m.log_version.is_none_or(|v| v < req.version))
        .map(|m| m.name.clone())
        .collect();
    if !behind.is_empty() && !req.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "voters_behind",
            format!(
                "voter(s) {} do not report a build with log version {}: upgrade them first \
                 (with force they would stop applying until upgraded)",
                behind.join(", "),
                req.version
            ),
        ));
    }
    propose_version(&state, &op.0, req.version, !behind.is_empty()).await?;
    if !behind.is_empty() {
        tracing::warn!(version = req.version, behind = %behind.join(","), "cluster version forced past voters on older builds");
    }
    Ok(Json(upgrade_check(&state).await?))
}

async fn propose_version(
    state: &NodeState,
    origin: &Origin,
    version: u32,
    forced: bool,
) -> Result<(), ApiError> {
    let cmd = Command::SetClusterVersion { version, forced };
    crate::http::submit(state, origin, &cmd, None).await?;
    tracing::info!(version, forced, "the cluster moved to a new log version");
    Ok(())
}

/// On the leader: move the cluster to this build's log version once every
/// voter reports it. Checked every `every` (and the first time soon after
/// start).
pub async fn finalize_loop(
    state: Arc<NodeState>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if state.cluster.leader().map(|(id, _)| id) != Some(state.cluster.id) {
            continue;
        }
        let Ok(cv) = cluster_version(&state) else {
            continue;
        };
        if cv.version >= LOG_VERSION {
            continue;
        }
        let members = member_versions(&state).await;
        let ready = members
            .iter()
            .filter(|m| m.voter)
            .all(|m| m.log_version.is_some_and(|v| v >= LOG_VERSION));
        if !ready {
            continue;
        }
        let origin = Origin::system(&state.node_id);
        if let Err(e) = propose_version(&state, &origin, LOG_VERSION, false).await {
            tracing::warn!(error = %e.message, "could not move the cluster version; will retry");
        }
    }
}

// ------------------------------------------------------------ data format

/// Errors of the data-format check on start.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "{path}: the data directory is in format {found}, newer than this build ({RELEASE}, format {DATA_FORMAT}) understands; \
         downgrading is not supported: run the newer release, or restore a backup taken before the upgrade into a fresh data dir"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error("{path}: unreadable data format marker ({detail}); expected `enclave-data-format N`")]
    Garbled { path: PathBuf, detail: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("migrating {path} from format {from} to {to}: {detail}")]
    Migration {
        path: PathBuf,
        from: u32,
        to: u32,
        detail: String,
    },
}

/// One step of the data format, `from` → `from + 1`, run on a stopped
/// node's data directory before anything opens it.
#[derive(Debug)]
pub struct Migration {
    pub from: u32,
    pub describe: &'static str,
    pub run: fn(&Path) -> Result<(), String>,
}

/// The migrations of this build, oldest first. Format 1 is what v0.1.0
/// wrote (it had no FORMAT file).
pub const MIGRATIONS: &[Migration] = &[];

/// What `check_data_format` did.
#[derive(Debug, PartialEq, Eq)]
pub enum FormatOutcome {
    /// A fresh data dir: marked with this build's format.
    Fresh,
    /// Already at this build's format.
    Current,
    /// Migrated from `from`; the store was copied to `backup` first.
    Migrated { from: u32, backup: PathBuf },
}

/// Check `<data_dir>/FORMAT` on start: mark a fresh dir, refuse a newer
/// format, migrate an older one after copying the store beside it.
pub fn check_data_format(data_dir: &Path) -> Result<FormatOutcome, FormatError> {
    check_with(data_dir, DATA_FORMAT, MIGRATIONS)
}

fn check_with(
    data_dir: &Path,
    current: u32,
    migrations: &[Migration],
) -> Result<FormatOutcome, FormatError> {
    let path = data_dir.join(FORMAT_FILE);
    let io = |path: &Path, error| FormatError::Io {
        path: path.to_path_buf(),
        error,
    };
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => parse_format(&text).map_err(|detail| FormatError::Garbled {
            path: path.clone(),
            detail,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No marker: a fresh dir, or one written by v0.1.0 (format 1).
            if data_dir.join("store").exists() {
                1
            } else {
                write_format(data_dir, current)?;
                return Ok(FormatOutcome::Fresh);
            }
        }
        Err(e) => return Err(io(&path, e)),
    };
    if found > current {
        return Err(FormatError::Newer { path, found });
    }
    if found == current {
        if !path.exists() {
            write_format(data_dir, current)?;
        }
        return Ok(FormatOutcome::Current);
    }
    // Older: copy the store first, then step through the migrations.
    let stamp = crate::http::now_ms();
    let backup = data_dir.join(format!("pre-upgrade-format{found}-{stamp}"));
    copy_dir(&data_dir.join("store"), &backup.join("store")).map_err(|e| io(&backup, e))?;
    tracing::warn!(from = found, to = current, backup = %backup.display(), "data directory copied before migrating");
    let mut at = found;
    while at < current {
        let Some(m) = migrations.iter().find(|m| m.from == at) else {
            return Err(FormatError::Migration {
                path: data_dir.to_path_buf(),
                from: at,
                to: at + 1,
                detail: "this build has no migration for it".into(),
            });
        };
        tracing::warn!(
            from = at,
            to = at + 1,
            step = m.describe,
            "migrating the data directory"
        );
        (m.run)(data_dir).map_err(|detail| FormatError::Migration {
            path: data_dir.to_path_buf(),
            from: at,
            to: at + 1,
            detail,
        })?;
        at += 1;
        write_format(data_dir, at)?;
    }
    Ok(FormatOutcome::Migrated {
        from: found,
        backup,
    })
}

fn parse_format(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let n = t
        .strip_prefix("enclave-data-format ")
        .ok_or_else(|| format!("found {:?}", t.chars().take(40).collect::<String>()))?;
    n.trim()
        .parse::<u32>()
        .map_err(|e| format!("format number {n:?}: {e}"))
}

fn write_format(data_dir: &Path, n: u32) -> Result<(), FormatError> {
    std::fs::create_dir_all(data_dir).map_err(|error| FormatError::Io {
        path: data_dir.to_path_buf(),
        error,
    })?;
    let path = data_dir.join(FORMAT_FILE);
    enclave_certs::files::write_public(&path, format!("enclave-data-format {n}\n").as_bytes())
        .map_err(|e| FormatError::Io {
            path,
            error: std::io::Error::other(e.to_string()),
        })
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_dir_is_marked_and_then_current() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            check_data_format(d.path()).expect("fresh"),
            FormatOutcome::Fresh
        );
        let text = std::fs::read_to_string(d.path().join(FORMAT_FILE)).expect("marker");
        assert_eq!(text, format!("enclave-data-format {DATA_FORMAT}\n"));
        assert_eq!(
            check_data_format(d.path()).expect("again"),
            FormatOutcome::Current
        );
    }

    #[test]
    fn unmarked_store_of_the_first_release_is_format_one() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("store")).expect("store");
        assert_eq!(
            check_data_format(d.path()).expect("v0.1.0 dir"),
            FormatOutcome::Current
        );
        assert!(d.path().join(FORMAT_FILE).exists(), "marker written");
    }

    #[test]
    fn newer_format_is_refused_and_named() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(FORMAT_FILE), "enclave-data-format 9\n").expect("write");
        let e = check_data_format(d.path()).expect_err("downgrade");
        let msg = e.to_string();
        assert!(
            msg.contains("format 9") && msg.contains("downgrading is not supported"),
            "{msg}"
        );
        assert!(msg.contains("FORMAT"), "names the file: {msg}");
        // Nothing changed.
        let text = std::fs::read_to_string(d.path().join(FORMAT_FILE)).expect("marker");
        assert_eq!(text, "enclave-data-format 9\n");
    }

    #[test]
    fn garbled_marker_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(FORMAT_FILE), "hello").expect("write");
        let msg = check_data_format(d.path())
            .expect_err("garbled")
            .to_string();
        assert!(msg.contains("unreadable data format marker"), "{msg}");
    }

    fn add_marker(dir: &Path) -> Result<(), String> {
        std::fs::write(dir.join("store").join("migrated"), b"yes").map_err(|e| e.to_string())
    }

    fn fail(_: &Path) -> Result<(), String> {
        Err("disk on fire".into())
    }

    #[test]
    fn older_format_is_copied_then_migrated_step_by_step() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("store/sub")).expect("store");
        std::fs::write(d.path().join("store/sub/data"), b"old").expect("data");
        std::fs::write(d.path().join(FORMAT_FILE), "enclave-data-format 1\n").expect("marker");
        let migrations = [
            Migration {
                from: 1,
                describe: "add a marker",
                run: add_marker,
            },
            Migration {
                from: 2,
                describe: "nothing",
                run: |_| Ok(()),
            },
        ];
        let out = check_with(d.path(), 3, &migrations).expect("migrated");
        let FormatOutcome::Migrated { from, backup } = out else {
            panic!("expected a migration, got {out:?}");
        };
        assert_eq!(from, 1);
        assert_eq!(
            std::fs::read(backup.join("store/sub/data")).expect("backup copy"),
            b"old"
        );
        assert!(!backup.join("store/migrated").exists(), "copy taken before");
        assert!(d.path().join("store/migrated").exists(), "migration ran");
        let text = std::fs::read_to_string(d.path().join(FORMAT_FILE)).expect("marker");
        assert_eq!(text, "enclave-data-format 3\n");
    }

    #[test]
    fn failed_migration_stops_at_the_last_good_format() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("store")).expect("store");
        std::fs::write(d.path().join(FORMAT_FILE), "enclave-data-format 1\n").expect("marker");
        let migrations = [
            Migration {
                from: 1,
                describe: "ok",
                run: |_| Ok(()),
            },
            Migration {
                from: 2,
                describe: "fails",
                run: fail,
            },
        ];
        let msg = check_with(d.path(), 3, &migrations)
            .expect_err("fails")
            .to_string();
        assert!(
            msg.contains("from format 2 to 3") && msg.contains("disk on fire"),
            "{msg}"
        );
        let text = std::fs::read_to_string(d.path().join(FORMAT_FILE)).expect("marker");
        assert_eq!(text, "enclave-data-format 2\n");
    }
}
