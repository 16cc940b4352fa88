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
//! the walk emitted (or, absent, skipped) its starting value: nothing is
//! recorded for it, and the tail does not emit it again.
//!
//! Memory: only keys changed *ahead of* the walk are held, and each only
//! until the walk reaches it. (Until 2026-12-05 every key changed during
//! the build was held to its end, with its old value even when the walk
//! had passed it: while seeding 160k members a 7-minute build held ~1 GB.)

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

/// A key's value when the build started, kept until the walk reaches the
/// key. `None`: the key did not exist then.
#[derive(Debug)]
struct Before {
    old: Option<Vec<u8>>,
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

    /// Whether a snapshot (or backup) is being written now.
    pub(super) fn active(&self) -> bool {
        self.lock().is_some()
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
            // Handled by the walk already: it emitted the starting value.
            if c.cursor.as_deref().is_some_and(|cur| key <= cur) {
                continue;
            }
            if !c.before.contains_key(key) {
                let old = tree.get(key)?.map(|v| v.to_vec());
                c.before.insert(key.to_vec(), Before { old });
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
                // From here on no change of `k` is recorded: its record
                // (if any) is used now and dropped.
                match c.before.remove(k.as_ref()) {
                    None => return Some(Ok((k.to_vec(), v.to_vec()))),
                    Some(Before { old: Some(old) }) => return Some(Ok((k.to_vec(), old))),
                    Some(Before { old: None }) => {} // created during the build
                }
            }
            // The walk is done: the keys left are those it never met
            // (deleted during the build); their values come from the record.
            let rest: Vec<KvPair> = self
                .capturing
                .0
                .lock()
                .as_mut()
                .map(|c| {
                    std::mem::take(&mut c.before)
                        .into_iter()
                        .filter_map(|(k, b)| b.old.map(|v| (k, v)))
                        .collect()
                })
                .unwrap_or_default();
            self.tail = Some(rest.into_iter());
        }
        self.tail.as_mut().and_then(Iterator::next).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(c: &SnapshotCapture) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = c
            .lock()
            .as_ref()
            .map(|c| c.before.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// The state at the start comes out although keys change behind and
    /// ahead of the walk, and only changes ahead of it are held, each until
    /// the walk reaches it.
    #[test]
    fn only_changes_ahead_of_the_walk_are_held_and_only_until_it_gets_there() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        for k in ["a", "b", "c", "d"] {
            tree.insert(k, format!("{k}1").as_bytes()).expect("insert");
        }
        let capture = SnapshotCapture::default();
        let mut walk = capture.start().records(tree.iter());
        let change = |k: &str, v: Option<&str>| {
            capture
                .record(&tree, std::iter::once(k.as_bytes()))
                .expect("record");
            match v {
                Some(v) => tree.insert(k, v.as_bytes()).map(|_| ()),
                None => tree.remove(k).map(|_| ()),
            }
            .expect("change");
        };
        let mut out = vec![walk.next().expect("a").expect("a")];
        // Behind the walk (a) and ahead of it (c, and a new key bb).
        change("a", Some("a2"));
        change("c", Some("c2"));
        change("c", Some("c3"));
        change("bb", Some("new"));
        assert_eq!(held(&capture), vec![b"bb".to_vec(), b"c".to_vec()]);
        out.push(walk.next().expect("b").expect("b"));
        out.push(walk.next().expect("c").expect("c"));
        // c's record was used and dropped. (Whether this walk meets bb
        // depends on sled's iterator; unmet, its record ends in the tail,
        // which emits nothing for a key that did not exist.)
        assert!(
            !held(&capture).contains(&b"c".to_vec()),
            "reached records are dropped"
        );
        // Deleted before the walk gets there: it comes from the record.
        change("d", None);
        change("c", Some("c4"));
        assert!(held(&capture).contains(&b"d".to_vec()));
        assert!(
            !held(&capture).contains(&b"c".to_vec()),
            "c is behind the walk"
        );
        out.extend(walk.map(|r| r.expect("record")));
        let got: Vec<(String, String)> = out
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k).expect("utf8"),
                    String::from_utf8(v).expect("utf8"),
                )
            })
            .collect();
        let want: Vec<(String, String)> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| (k.to_string(), format!("{k}1")))
            .collect();
        assert_eq!(got, want);
    }
}
