//! Copy-on-write for snapshot builds: a snapshot is the state as of one
//! applied index although applies go on while it is written (sled has no
//! point-in-time view of a tree).
//!
//! The build starts capturing under the apply lock ([`SnapshotCapture::start`])
//! and releases the lock at once. From then on every apply first records
//! the old value of each key it is about to change
//! ([`SnapshotCapture::record`]); the build walks the live tree in key order
//! ([`SnapshotCapture::records`]) and emits a changed key's recorded old
//! value, then the recorded keys its walk never met (deleted meanwhile).
//!
//! Why it is exact: apply records a key's old value before its change can
//! be seen, so a walk that sees a changed value finds the record. A key
//! first changed after the walk handled it was unchanged when handled, so
//! the walk emitted (or, absent, skipped) its starting value; the record
//! marks it `passed` and the tail does not emit it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::KvPair;

/// Shared between the state machine's apply and a running snapshot build.
#[derive(Debug, Default, Clone)]
pub(super) struct SnapshotCapture(Arc<Mutex<Option<Capture>>>);

#[derive(Debug, Default)]
struct Capture {
    before: HashMap<Vec<u8>, Before>,
    /// The last key the build's walk of the live tree has handled.
    cursor: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Before {
    /// `None`: the key did not exist when the build started.
    old: Option<Vec<u8>>,
    /// The walk had handled this key already when it was first changed
    /// (so it emitted the then unchanged value itself).
    passed: bool,
}

impl SnapshotCapture {
    fn lock(&self) -> MutexGuard<'_, Option<Capture>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start capturing; call it under the apply lock, at the snapshot's
    /// starting point. Capturing stops when the returned handle is dropped.
    pub(super) fn start(&self) -> Capturing {
        *self.lock() = Some(Capture::default());
        Capturing(self.clone())
    }

    /// In apply, before a batch changing `keys` lands: keep their values
    /// as of the build's start. Does nothing when no build runs.
    pub(super) fn record<'k>(
        &self,
        tree: &sled::Tree,
        keys: impl Iterator<Item = &'k [u8]>,
    ) -> Result<(), sled::Error> {
        let mut capture = self.lock();
        let Some(c) = capture.as_mut() else {
            return Ok(());
        };
        for key in keys {
            if !c.before.contains_key(key) {
                let old = tree.get(key)?.map(|v| v.to_vec());
                let passed = c.cursor.as_deref().is_some_and(|cur| key <= cur);
                c.before.insert(key.to_vec(), Before { old, passed });
            }
        }
        Ok(())
    }
}

/// A running capture; dropping it stops capturing.
#[derive(Debug)]
pub(super) struct Capturing(SnapshotCapture);

impl Capturing {
    /// The records of the state as of the start, from a walk of the live
    /// tree (`tree.iter()`, begun after [`SnapshotCapture::start`]).
    pub(super) fn records(self, live: sled::Iter) -> CapturedIter {
        CapturedIter {
            live,
            capturing: self,
            tail: None,
        }
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

/// See the module documentation.
pub(super) struct CapturedIter {
    live: sled::Iter,
    capturing: Capturing,
    tail: Option<std::vec::IntoIter<KvPair>>,
}

impl Iterator for CapturedIter {
    type Item = Result<KvPair, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.tail.is_none() {
            for item in self.live.by_ref() {
                let (k, v) = match item {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(super::io_error(e))),
                };
                let mut capture = self.capturing.0.lock();
                let Some(c) = capture.as_mut() else {
                    return Some(Err(std::io::Error::other(
                        "snapshot capture ended before the walk",
                    )));
                };
                c.cursor = Some(k.to_vec());
                match c.before.get_mut(k.as_ref()) {
                    None => return Some(Ok((k.to_vec(), v.to_vec()))),
                    Some(b) => {
                        b.passed = true;
                        if let Some(old) = &b.old {
                            return Some(Ok((k.to_vec(), old.clone())));
                        }
                    }
                }
            }
            // The walk is done: keys it never met come from the record.
            let rest: Vec<KvPair> = self
                .capturing
                .0
                .lock()
                .as_ref()
                .map(|c| {
                    c.before
                        .iter()
                        .filter(|(_, b)| !b.passed)
                        .filter_map(|(k, b)| b.old.clone().map(|v| (k.clone(), v)))
                        .collect()
                })
                .unwrap_or_default();
            self.tail = Some(rest.into_iter());
        }
        self.tail.as_mut().and_then(Iterator::next).map(Ok)
    }
}
