//! A small replicated key-value store: the application state machine until
//! the messaging domain lands, used by the cluster tests, the benchmark and
//! as a diagnostic ("can this cluster commit a write?").

use enclave_cluster::app::{Application, ApplyContext};
use enclave_cluster::store::Txn;
use serde::{Deserialize, Serialize};

/// Largest key and value accepted.
pub const MAX_KEY: usize = 256;
pub const MAX_VALUE: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Write and report the previous value (`PUT …?prev=true`).
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Write without reading the previous value (plain `PUT`): one sled
    /// read fewer per write on every node. New variants go last: entries
    /// in existing logs decode by variant index.
    Set {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOutcome {
    #[serde(with = "serde_bytes")]
    pub previous: Option<Vec<u8>>,
    /// Log index that applied the command.
    pub index: u64,
}

/// The application: keys live under `kv/` in the state machine.
#[derive(Debug, Default)]
pub struct Kv;

fn key(k: &str) -> Vec<u8> {
    format!("kv/{k}").into_bytes()
}

impl Application for Kv {
    fn apply(
        &self,
        ctx: &ApplyContext,
        txn: &mut Txn<'_>,
        command: &[u8],
    ) -> Result<Vec<u8>, sled::Error> {
        let outcome = match postcard::from_bytes::<KvCommand>(command) {
            Ok(KvCommand::Put { key: k, value }) => {
                let previous = txn.get(&key(&k))?;
                txn.put(&key(&k), value);
                KvOutcome {
                    previous,
                    index: ctx.index,
                }
            }
            Ok(KvCommand::Set { key: k, value }) => {
                txn.put(&key(&k), value);
                KvOutcome {
                    previous: None,
                    index: ctx.index,
                }
            }
            Ok(KvCommand::Delete { key: k }) => {
                let previous = txn.get(&key(&k))?;
                txn.delete(&key(&k));
                KvOutcome {
                    previous,
                    index: ctx.index,
                }
            }
            // A command this build cannot decode changes nothing, on every node alike.
            Err(_) => KvOutcome {
                previous: None,
                index: ctx.index,
            },
        };
        Ok(postcard::to_stdvec(&outcome).unwrap_or_default())
    }
}

/// Read a key from a state view.
pub fn get(
    view: &enclave_cluster::store::StateView,
    k: &str,
) -> Result<Option<Vec<u8>>, sled::Error> {
    view.get(&key(k))
}

/// Validate a key from outside.
pub fn validate_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > MAX_KEY {
        return Err(format!("key must be 1..={MAX_KEY} bytes"));
    }
    if k.chars().any(|c| c.is_control()) {
        return Err("key must not contain control characters".into());
    }
    Ok(())
}
