//! A write overlay over one sled tree: reads see earlier writes of the same
//! batch; nothing reaches the tree until the whole batch is written, first
//! as one journal record, then key by key (together with `last_applied`;
//! see `journal.rs`).

use std::collections::BTreeMap;
use std::ops::Bound;

/// Writes buffered for one apply batch, seen through a key prefix.
#[derive(Debug)]
pub struct Txn<'a> {
    tree: &'a sled::Tree,
    writes: &'a mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &'static [u8],
}

impl<'a> Txn<'a> {
    pub(crate) fn new(
        tree: &'a sled::Tree,
        writes: &'a mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        prefix: &'static [u8],
    ) -> Txn<'a> {
        Txn {
            tree,
            writes,
            prefix,
        }
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Read a key (seeing this batch's writes). A storage read error is
    /// returned as `Err` and aborts the batch.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        let k = self.full(key);
        if let Some(w) = self.writes.get(&k) {
            return Ok(w.clone());
        }
        Ok(self.tree.get(&k)?.map(|v| v.to_vec()))
    }

    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let k = self.full(key);
        self.writes.insert(k, Some(value));
    }

    pub fn delete(&mut self, key: &[u8]) {
        let k = self.full(key);
        self.writes.insert(k, None);
    }

    /// Keys and values under `prefix` in key order, at most `limit`, starting
    /// after `after` if given (for cursor pagination). Merges this batch's
    /// writes with the stored tree.
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<super::KvPair>, sled::Error> {
        let full_prefix = self.full(prefix);
        let start = match after {
            Some(a) => Bound::Excluded(self.full(a)),
            None => Bound::Included(full_prefix.clone()),
        };
        let mut out = Vec::new();
        let mut stored = self
            .tree
            .range::<Vec<u8>, _>((start.clone(), Bound::Unbounded))
            .peekable();
        let mut pending = self
            .writes
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .peekable();
        while out.len() < limit {
            let next_stored = match stored.peek() {
                Some(Ok((k, _))) if k.starts_with(&full_prefix) => Some(k.to_vec()),
                Some(Err(_)) => {
                    if let Some(Err(e)) = stored.next() {
                        return Err(e);
                    }
                    None
                }
                _ => None,
            };
            let next_pending = match pending.peek() {
                Some((k, _)) if k.starts_with(&full_prefix) => Some((*k).clone()),
                _ => None,
            };
            let (key, value) = match (next_stored, next_pending) {
                (None, None) => break,
                (Some(s), Some(p)) if p <= s => {
                    if p == s {
                        stored.next();
                    }
                    let (k, v) = pending
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap_or_default();
                    (k, v)
                }
                (Some(_), _) => match stored.next() {
                    Some(Ok((k, v))) => (k.to_vec(), Some(v.to_vec())),
                    Some(Err(e)) => return Err(e),
                    None => break,
                },
                (None, Some(_)) => {
                    let (k, v) = pending
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap_or_default();
                    (k, v)
                }
            };
            if let Some(v) = value {
                out.push((key[self.prefix.len()..].to_vec(), v));
            }
        }
        Ok(out)
    }
}
