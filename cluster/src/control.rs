//! Applying the cluster layer's own commands ([`ControlCommand`]): one-time
//! join tokens and the cluster id. Tokens are consumed through the log, so
//! two nodes can never both accept the same token.

use serde::{Deserialize, Serialize};

use crate::app::ApplyContext;
use crate::store::Txn;
use crate::types::{ControlCommand, ControlOutcome};

/// Key of the cluster id in the control keyspace.
pub const CLUSTER_ID_KEY: &[u8] = b"cluster_id";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    pub secret_sha256: Vec<u8>,
    pub created_ms: u64,
    pub expires_at_ms: u64,
    pub created_by: String,
    pub used_by: Option<String>,
    pub used_ms: Option<u64>,
}

fn token_key(id: &str) -> Vec<u8> {
    format!("tok/{id}").into_bytes()
}

pub(crate) fn apply(
    ctx: &ApplyContext,
    txn: &mut Txn<'_>,
    cmd: &ControlCommand,
) -> Result<ControlOutcome, sled::Error> {
    match cmd {
        ControlCommand::CreateJoinToken {
            id,
            secret_sha256,
            ttl_ms,
            created_by,
        } => {
            let expires_at_ms = ctx.time_ms.saturating_add(*ttl_ms);
            let rec = JoinTokenRecord {
                secret_sha256: secret_sha256.clone(),
                created_ms: ctx.time_ms,
                expires_at_ms,
                created_by: created_by.clone(),
                used_by: None,
                used_ms: None,
            };
            txn.put(&token_key(id), crate::store::sealed_bytes(&rec));
            Ok(ControlOutcome::JoinTokenCreated {
                id: id.clone(),
                expires_at_ms,
            })
        }
        ControlCommand::SetClusterId { id } => {
            if let Some(existing) = txn.get(CLUSTER_ID_KEY)? {
                return Ok(ControlOutcome::ClusterId {
                    id: String::from_utf8_lossy(&existing).into_owned(),
                });
            }
            txn.put(CLUSTER_ID_KEY, id.as_bytes().to_vec());
            Ok(ControlOutcome::ClusterId { id: id.clone() })
        }
        ControlCommand::ConsumeJoinToken {
            id,
            secret_sha256,
            node,
        } => {
            let refused = |reason: &str| {
                Ok(ControlOutcome::JoinTokenRefused {
                    reason: reason.into(),
                })
            };
            let Some(bytes) = txn.get(&token_key(id))? else {
                return refused("unknown join token");
            };
            let Some(mut rec) = crate::store::unsealed::<JoinTokenRecord>(&bytes) else {
                return refused("join token record is damaged");
            };
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                rec.secret_sha256.as_slice(),
                secret_sha256.as_slice(),
            )) {
                return refused("wrong join token secret");
            }
            if let Some(by) = &rec.used_by {
                return refused(&format!("join token already used (by {by})"));
            }
            if ctx.time_ms > rec.expires_at_ms {
                return refused("join token expired");
            }
            rec.used_by = Some(node.clone());
            rec.used_ms = Some(ctx.time_ms);
            txn.put(&token_key(id), crate::store::sealed_bytes(&rec));
            Ok(ControlOutcome::JoinTokenAccepted { id: id.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ctx(time_ms: u64) -> ApplyContext {
        ApplyContext {
            index: 1,
            term: 1,
            time_ms,
            sub: 0,
        }
    }

    #[test]
    fn join_tokens_work_once_only_before_expiry_and_only_with_the_right_secret() {
        let db = sled::Config::new().temporary(true).open().expect("db");
        let tree = db.open_tree("t").expect("tree");
        let mut w = BTreeMap::new();
        let mut txn = Txn::new(&tree, &mut w, b"c/");
        let hash = |s: &str| {
            ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
                .as_ref()
                .to_vec()
        };
        let create = |id: &str, ttl_ms| ControlCommand::CreateJoinToken {
            id: id.into(),
            secret_sha256: hash("s3cret"),
            ttl_ms,
            created_by: "op".into(),
        };
        let consume = |id: &str, secret: &str| ControlCommand::ConsumeJoinToken {
            id: id.into(),
            secret_sha256: hash(secret),
            node: "n2".into(),
        };
        apply(&ctx(1_000), &mut txn, &create("a", 60_000)).expect("create");
        apply(&ctx(1_000), &mut txn, &create("b", 1_000)).expect("create");
        let refused = |o: ControlOutcome, why: &str| match o {
            ControlOutcome::JoinTokenRefused { reason } => {
                assert!(reason.contains(why), "{reason}")
            }
            other => panic!("expected refusal ({why}), got {other:?}"),
        };
        refused(
            apply(&ctx(2_000), &mut txn, &consume("zz", "s3cret")).expect("apply"),
            "unknown",
        );
        refused(
            apply(&ctx(2_000), &mut txn, &consume("a", "guess")).expect("apply"),
            "wrong",
        );
        assert_eq!(
            apply(&ctx(2_000), &mut txn, &consume("a", "s3cret")).expect("apply"),
            ControlOutcome::JoinTokenAccepted { id: "a".into() }
        );
        refused(
            apply(&ctx(3_000), &mut txn, &consume("a", "s3cret")).expect("apply"),
            "already used",
        );
        refused(
            apply(&ctx(2_001), &mut txn, &consume("b", "s3cret")).expect("apply"),
            "expired",
        );
    }
}
