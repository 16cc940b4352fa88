//! CA rotation on the CA machine: the new CA waits in `DIR/next/` while
//! the cluster trusts both, and replaces the old one in `DIR` at the end.
//!
//! ```text
//! DIR/rotation.json        the rotation in progress: phase, old and new fingerprints
//! DIR/next/                the new CA (a complete CA directory) until `finish`
//! DIR/retired/<fp>/        an old CA after `finish` (keep it: audit checkpoints
//!                          signed under it are verified with its ca.pem)
//! ```
//!
//! Every step can be repeated after an interruption: `begin` reuses a new
//! CA it already created, `finish` resumes moving files where it stopped
//! (see [`complete`]). The cluster side (pushing bundles and certificates
//! to nodes) is `enclavectl`'s job; this module only keeps the CA
//! directory consistent.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::files::{self, malformed};
use crate::inspect::rfc3339;
use crate::{CertError, CertificateAuthority, Result};

/// Where the rotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The new CA exists; nodes are being given (or have) the old+new bundle.
    Overlap,
    /// Every node and the operator have a certificate from the new CA.
    Reissued,
    /// Nodes are being given (or have) the new-only bundle; the CA
    /// directory is being switched over.
    Finishing,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Phase::Overlap => "overlap",
            Phase::Reissued => "reissued",
            Phase::Finishing => "finishing",
        })
    }
}

/// `DIR/rotation.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    pub phase: Phase,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissued_at: Option<String>,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("rotation.json")
}

/// The directory of the new CA during a rotation.
pub fn next_dir(dir: &Path) -> PathBuf {
    dir.join("next")
}

/// Where `finish` moves the old CA.
pub fn retired_dir(dir: &Path, old_fingerprint: &str) -> PathBuf {
    let hex = old_fingerprint
        .strip_prefix("sha256:")
        .unwrap_or(old_fingerprint);
    dir.join("retired").join(&hex[..hex.len().min(16)])
}

/// The rotation in progress in `dir`, if any.
pub fn load_state(dir: &Path) -> Result<Option<RotationState>> {
    let path = state_path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let text = files::read_string(&path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| malformed(&path, "CA rotation state", e))
}

pub fn save_state(dir: &Path, state: &RotationState) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(|e| CertError::InvalidInput {
        what: "rotation state",
        detail: e.to_string(),
    })?;
    files::write_public(&state_path(dir), &json)
}

fn now() -> String {
    rfc3339(OffsetDateTime::now_utc().unix_timestamp())
}

/// Start (or resume) a rotation: create the new CA in `DIR/next/` unless it
/// is there already. Returns the old CA, the new CA and the state.
pub fn begin(
    dir: &Path,
    new_name: &str,
) -> Result<(CertificateAuthority, CertificateAuthority, RotationState)> {
    if let Some(state) = load_state(dir)? {
        let (old, new) = open_pair(dir, &state)?;
        return Ok((old, new, state));
    }
    let old = CertificateAuthority::open(dir)?;
    let next = next_dir(dir);
    // A crash after creating the new CA but before recording the state
    // leaves next/ behind: reuse it rather than refuse or create another.
    let new = if next.join("ca.pem").exists() && next.join("ca.key").exists() {
        CertificateAuthority::open(&next)?
    } else {
        CertificateAuthority::init(&next, new_name)?
    };
    if new.fingerprint() == old.fingerprint() {
        return Err(CertError::InvalidInput {
            what: "CA rotation",
            detail: format!("{} holds the same CA as {}", next.display(), dir.display()),
        });
    }
    let state = RotationState {
        phase: Phase::Overlap,
        old_fingerprint: old.fingerprint(),
        new_fingerprint: new.fingerprint(),
        started_at: now(),
        reissued_at: None,
    };
    save_state(dir, &state)?;
    Ok((old, new, state))
}

/// The old CA (in `DIR`) and the new one (in `DIR/next`) of a rotation,
/// checked against the fingerprints recorded when it began.
pub fn open_pair(
    dir: &Path,
    state: &RotationState,
) -> Result<(CertificateAuthority, CertificateAuthority)> {
    let old = CertificateAuthority::open(dir)?;
    let new = CertificateAuthority::open(&next_dir(dir))?;
    if old.fingerprint() != state.old_fingerprint || new.fingerprint() != state.new_fingerprint {
        return Err(CertError::InvalidInput {
            what: "CA rotation",
            detail: format!(
                "{} records old CA {} and new CA {}, but the directory holds {} and {}; restore the CA directory from its backup",
                state_path(dir).display(),
                state.old_fingerprint,
                state.new_fingerprint,
                old.fingerprint(),
                new.fingerprint()
            ),
        });
    }
    Ok((old, new))
}

/// The CA that issues certificates now: the new one during a rotation,
/// otherwise the one in `dir`.
pub fn issuing_ca(dir: &Path) -> Result<CertificateAuthority> {
    match load_state(dir)? {
        Some(state) if state.phase != Phase::Finishing || next_dir(dir).join("ca.pem").exists() => {
            CertificateAuthority::open(&next_dir(dir))
        }
        _ => CertificateAuthority::open(dir),
    }
}

/// Record that every leaf was re-issued from the new CA.
pub fn mark(dir: &Path, phase: Phase) -> Result<RotationState> {
    let mut state = load_state(dir)?.ok_or_else(|| no_rotation(dir))?;
    if phase == Phase::Reissued && state.reissued_at.is_none() {
        state.reissued_at = Some(now());
    }
    state.phase = phase;
    save_state(dir, &state)?;
    Ok(state)
}

pub fn no_rotation(dir: &Path) -> CertError {
    CertError::InvalidInput {
        what: "CA rotation",
        detail: format!(
            "no CA rotation is in progress in {} (start one with `enclavectl ca rotate begin`)",
            dir.display()
        ),
    }
}

/// What a CA directory holds, moved as a unit. `ca.pem` last: it tells
/// which CA a half-moved directory belongs to.
const CA_FILES: [&str; 6] = [
    "ca.key",
    "crl.pem",
    "crl.number",
    "index.json",
    "issued",
    "ca.pem",
];

/// Switch the CA directory over: move the old CA into
/// `DIR/retired/<fp>/`, then the new one from `DIR/next/` into `DIR`, then
/// forget the rotation. Resumes where an interrupted run stopped: each
/// move is a rename, and `ca.pem` moves last in each half, so the
/// directory always tells how far it got. Returns the retired directory.
pub fn complete(dir: &Path) -> Result<PathBuf> {
    let state = load_state(dir)?.ok_or_else(|| no_rotation(dir))?;
    let retired = retired_dir(dir, &state.old_fingerprint);
    let next = next_dir(dir);
    files::create_private_dir(&retired)?;
    let mv = |from: &Path, to: &Path| -> Result<()> {
        fs::rename(from, to).map_err(|error| CertError::Unwritable {
            path: to.to_path_buf(),
            error,
        })
    };
    // 1. Archive the old CA (until its ca.pem is in retired/).
    if !retired.join("ca.pem").exists() {
        if let Ok(cur) = CertificateAuthority::open(dir)
            && cur.fingerprint() != state.old_fingerprint
        {
            return Err(CertError::InvalidInput {
                what: "CA rotation",
                detail: format!(
                    "{} holds CA {}, neither the old ({}) nor the new one; restore the CA directory from its backup",
                    dir.display(),
                    cur.fingerprint(),
                    state.old_fingerprint
                ),
            });
        }
        for f in CA_FILES {
            let (src, dst) = (dir.join(f), retired.join(f));
            if src.exists() && !dst.exists() {
                mv(&src, &dst)?;
            }
        }
    }
    // 2. Promote the new CA (until next/ca.pem is gone).
    if next.join("ca.pem").exists() {
        for f in CA_FILES {
            let (src, dst) = (next.join(f), dir.join(f));
            if src.exists() {
                mv(&src, &dst)?;
            }
        }
    }
    sync_dir(&retired);
    sync_dir(dir);
    let promoted = CertificateAuthority::open(dir)?;
    if promoted.fingerprint() != state.new_fingerprint {
        return Err(CertError::InvalidInput {
            what: "CA rotation",
            detail: format!(
                "{} should now hold the new CA {} but holds {}",
                dir.display(),
                state.new_fingerprint,
                promoted.fingerprint()
            ),
        });
    }
    let _ = fs::remove_dir(&next);
    fs::remove_file(state_path(dir)).map_err(|error| CertError::Unwritable {
        path: state_path(dir),
        error,
    })?;
    sync_dir(dir);
    Ok(retired)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertKind, Validity};

    #[test]
    fn a_rotation_begins_once_and_finishes_even_when_interrupted() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("ca");
        let old = CertificateAuthority::init(&dir, "old").expect("init");
        let kind = CertKind::Operator {
            name: "op".into(),
            role: crate::Role::Sysadmin,
        };
        old.issue(&kind, Validity::days(5).expect("d"))
            .expect("issue");
        assert!(issuing_ca(&dir).expect("issuing").fingerprint() == old.fingerprint());
        assert!(matches!(
            complete(&dir),
            Err(CertError::InvalidInput { .. })
        ));

        let (o, n, st) = begin(&dir, "new").expect("begin");
        assert_eq!(o.fingerprint(), old.fingerprint());
        assert_eq!(st.phase, Phase::Overlap);
        // Again: the same new CA, not a third one.
        let (_, n2, _) = begin(&dir, "other").expect("begin again");
        assert_eq!(n.fingerprint(), n2.fingerprint());
        assert_eq!(
            issuing_ca(&dir).expect("issuing").fingerprint(),
            n.fingerprint()
        );
        mark(&dir, Phase::Finishing).expect("mark");

        // Interrupted after moving part of the old CA away.
        let retired = retired_dir(&dir, &st.old_fingerprint);
        files::create_private_dir(&retired).expect("mkdir");
        fs::rename(dir.join("ca.key"), retired.join("ca.key")).expect("mv");
        fs::rename(dir.join("index.json"), retired.join("index.json")).expect("mv");
        let got = complete(&dir).expect("complete");
        assert_eq!(got, retired);
        let now = CertificateAuthority::open(&dir).expect("open");
        assert_eq!(now.fingerprint(), n.fingerprint());
        let archived = CertificateAuthority::open(&retired).expect("open retired");
        assert_eq!(archived.fingerprint(), old.fingerprint());
        assert_eq!(archived.list().expect("index").len(), 1);
        assert!(load_state(&dir).expect("state").is_none());
        assert!(!next_dir(&dir).exists());
        // A second rotation can start.
        let (o3, _, _) = begin(&dir, "third").expect("begin");
        assert_eq!(o3.fingerprint(), n.fingerprint());
    }
}
