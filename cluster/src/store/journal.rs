//! Redo journal: crash atomicity for state-machine applies without sled
//! batches.
//!
//! An apply batch changes many keys of the state tree plus `m/applied`,
//! and a crash must leave either all of them or none (otherwise an entry is
//! applied twice, or half of it is kept). A `sled::Batch` gives that, but
//! sled 0.34 pays for it by sealing and writing its IO buffer twice per
//! batch (`pin_log`), and each write wakes all seven of sled's idle IO
//! threads: two extra disk writes and ~14 thread wake-ups per applied
//! entry, on every node.
//!
//! Instead, before the batch's plain inserts, the whole batch (every key
//! with its new value or removal, `m/applied` included) is written as one
//! value: the record under [`RECORD`] in tree `journal`, overwritten by
//! every batch. One insert is atomic in sled. At open, if the record is of
//! the current state generation and says a later entry was applied than
//! the state tree's `m/applied`, its writes are applied again (they are
//! absolute values, so re-applying any part of them is harmless) and
//! flushed.
//!
//! Why that is exact: sled recovers a *prefix* of its log after a crash
//! (its own batches rely on the same property: a batch's manifest is
//! written first and checked against how far recovery got). The log holds,
//! in order, `record(K)`, K's writes, `record(K+1)`, K+1's writes, … A
//! prefix that ends inside K's writes has `record(K)`, which completes
//! them; one that ends before `record(K)` has all of K−1's writes and
//! `m/applied` = K−1, so nothing is replayed and openraft applies K again
//! from the log, on exactly the state K−1 left.
//!
//! Crash atomicity is not reader atomicity: while the plain inserts run, a
//! concurrent reader could see part of the batch. `StateView` reads and the
//! insert loop share a lock for that (see `state_machine.rs`, `StateView`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_bytes::{ByteBuf, Bytes};

use super::{StoreError, open_sealed, sealed, sled_err};
use crate::types::LogId;

/// The only key of tree `journal`.
pub(super) const RECORD: &[u8] = b"last-apply";

/// One apply batch's writes, as stored (borrowing form).
#[derive(serde::Serialize)]
struct RecordRef<'a> {
    generation: u64,
    applied: Option<LogId>,
    #[serde(serialize_with = "byte_map")]
    writes: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Keys and values as byte strings (one length + copy each, not byte by
/// byte); read back as [`ByteBuf`]s.
fn byte_map<S: serde::Serializer>(
    writes: &&BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        writes
            .iter()
            .map(|(k, v)| (Bytes::new(k), v.as_deref().map(Bytes::new))),
    )
}

/// One apply batch's writes, as read back.
#[derive(serde::Deserialize)]
struct Record {
    generation: u64,
    applied: Option<LogId>,
    writes: BTreeMap<ByteBuf, Option<ByteBuf>>,
}

#[derive(Debug, Clone)]
pub(super) struct Journal {
    tree: sled::Tree,
}

impl Journal {
    pub(super) fn open(db: &sled::Db, path: &Path) -> Result<Journal, StoreError> {
        let tree = db.open_tree("journal").map_err(|e| sled_err(path, e))?;
        Ok(Journal { tree })
    }

    /// Record the batch about to be written to the state tree of
    /// `generation`; `applied` is the last entry it applies.
    pub(super) fn record(
        &self,
        generation: u64,
        applied: Option<LogId>,
        writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<(), sled::Error> {
        let value = sealed(&RecordRef {
            generation,
            applied,
            writes,
        });
        self.tree.insert(RECORD, value).map(|_| ())
    }

    /// Finish a batch a crash interrupted: re-apply the recorded writes to
    /// `state` (of `generation`) if they are newer than its `applied`.
    /// Returns how many keys were written again (0: nothing to do).
    pub(super) fn recover(
        &self,
        state: &sled::Tree,
        generation: u64,
        applied: Option<LogId>,
        path: &Path,
    ) -> Result<usize, StoreError> {
        let Some(bytes) = self.tree.get(RECORD).map_err(|e| sled_err(path, e))? else {
            return Ok(0);
        };
        let record: Record = open_sealed(path, "the apply journal", &bytes)?;
        // An older generation's record belongs to a tree a snapshot
        // install replaced; an older (or the same) index is fully applied.
        if record.generation != generation
            || record.applied.map(|l| l.index) <= applied.map(|l| l.index)
        {
            return Ok(0);
        }
        let n = record.writes.len();
        for (k, v) in record.writes {
            match v {
                Some(v) => state.insert(k.into_vec(), v.into_vec()).map(|_| ()),
                None => state.remove(k.into_vec()).map(|_| ()),
            }
            .map_err(|e| sled_err(path, e))?;
        }
        Ok(n)
    }
}
