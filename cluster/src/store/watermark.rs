//! The durability watermark: a small file beside the sled database that
//! records values sled has already confirmed durable — the vote, the
//! committed index, the applied index. They never decrease.
//!
//! sled can come back from a crash or a damaged file having silently
//! dropped recent writes (spacejam/sled#1509). For Raft that is unsafe: a
//! node that forgot its vote may vote twice in a term; one that forgot
//! committed entries may help elect a leader without them. On open the
//! store must be at or beyond its watermark; if it is not, it is treated as
//! damaged and the node refuses to start.
//!
//! The file is only written after a `flush` covering the values it names,
//! so it never claims more than is on disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{StoreError, open_sealed, sealed};
use crate::types::Vote;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub vote: Option<Vote>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
}

#[derive(Debug)]
pub struct Watermark {
    path: PathBuf,
    current: Mutex<Mark>,
}

impl Watermark {
    /// Read the watermark next to the store (absent on a fresh store).
    pub fn open(path: &Path) -> Result<Watermark, StoreError> {
        let mark = match std::fs::read(path) {
            Ok(bytes) => open_sealed(path, "the durability watermark", &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Mark::default(),
            Err(e) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    error: e,
                });
            }
        };
        Ok(Watermark {
            path: path.to_path_buf(),
            current: Mutex::new(mark),
        })
    }

    pub fn get(&self) -> Mark {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Raise the watermark (fields only ever move forward) and persist it.
    pub fn raise(
        &self,
        vote: Option<Vote>,
        committed: Option<u64>,
        applied: Option<u64>,
    ) -> std::io::Result<()> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = cur.clone();
        if let Some(v) = vote
            && next.vote.is_none_or(|old| v >= old)
        {
            next.vote = Some(v);
        }
        if committed > next.committed {
            next.committed = committed;
        }
        if applied > next.applied {
            next.applied = applied;
        }
        if next == *cur {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&sealed(&next))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        *cur = next;
        Ok(())
    }

    /// Check the store's durable state against the watermark.
    pub fn check(
        &self,
        vote: Option<Vote>,
        last_log_or_purged: Option<u64>,
        applied: Option<u64>,
    ) -> Result<(), String> {
        let m = self.get();
        if let Some(mv) = m.vote {
            match vote {
                // Compared by term and candidate only: a node that led may
                // store its vote again as uncommitted at start-up
                // (`LogStore::forget_own_leadership`).
                Some(v) if v.leader_id() >= mv.leader_id() => {}
                other => {
                    return Err(format!(
                        "the stored vote {other:?} is older than the vote {mv:?} this node already made durable"
                    ));
                }
            }
        }
        if m.committed > last_log_or_purged {
            return Err(format!(
                "the log ends at {last_log_or_purged:?} but entries up to {:?} were committed and durable",
                m.committed
            ));
        }
        if m.applied > applied {
            return Err(format!(
                "the state machine is at {applied:?} but {:?} was already applied and durable",
                m.applied
            ));
        }
        Ok(())
    }
}
