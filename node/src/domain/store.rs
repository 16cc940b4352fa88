//! The storage the domain needs: ordered keys and values, read your own
//! writes. Implemented over the replicated state (a `Txn` during apply, a
//! `StateView` for reads) and in memory for tests.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A storage failure (not a domain refusal): apply stops the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreFault(pub String);

pub type KvPair = (Vec<u8>, Vec<u8>);

/// Ordered key-value storage.
pub trait Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault>;
    /// Keys under `prefix` in order, after `after` (a full key) if given.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreFault>;
    fn put(&mut self, key: &[u8], value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}

/// Typed helpers over any [`Store`]. Values are postcard-encoded: compact
/// and deterministic.
pub trait StoreExt: Store {
    fn get_as<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreFault> {
        match self.get(key)? {
            None => Ok(None),
            Some(b) => postcard::from_bytes(&b).map(Some).map_err(|e| {
                StoreFault(format!(
                    "undecodable record {}: {e}",
                    String::from_utf8_lossy(key)
                ))
            }),
        }
    }

    fn put_as<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), StoreFault> {
        let b = postcard::to_stdvec(value).map_err(|e| StoreFault(e.to_string()))?;
        self.put(key, b);
        Ok(())
    }

    fn scan_as<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreFault> {
        self.scan(prefix, after, limit)?
            .into_iter()
            .map(|(k, v)| {
                postcard::from_bytes(&v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| {
                        StoreFault(format!(
                            "undecodable record {}: {e}",
                            String::from_utf8_lossy(&k)
                        ))
                    })
            })
            .collect()
    }

    /// Every record under `prefix` after `after`, in key order, a page at a
    /// time (bounded memory), until `f` answers `false`.
    fn visit_as<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut f: impl FnMut(&[u8], T) -> Result<bool, StoreFault>,
    ) -> Result<(), StoreFault> {
        const PAGE: usize = 512;
        let mut from: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
        loop {
            let page = self.scan_as::<T>(prefix, from.as_deref(), PAGE)?;
            let full = page.len() == PAGE;
            let mut last = None;
            for (k, v) in page {
                if !f(&k, v)? {
                    return Ok(());
                }
                last = Some(k);
            }
            match last {
                Some(k) if full => from = Some(k),
                _ => return Ok(()),
            }
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// In-memory store for tests and property tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    /// SHA-256 over every key and value, in order.
    pub fn hash(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (k, v) in &self.map {
            ctx.update(&(k.len() as u64).to_be_bytes());
            ctx.update(k);
            ctx.update(&(v.len() as u64).to_be_bytes());
            ctx.update(v);
        }
        hex::encode(ctx.finish())
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreFault> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, StoreFault> {
        let start = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        Ok(self
            .map
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.map.insert(key.to_vec(), value);
    }

    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }
}
