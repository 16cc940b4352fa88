//! The audit record format and chain verification, shared by the node
//! (which appends records in apply) and `enclavectl audit verify` (which
//! checks an export offline).
//!
//! Each record carries `hash = SHA-256(previous hash ‖ canonical record)`;
//! the first record's previous hash is 32 zero bytes. The canonical
//! encoding is postcard of [`Record`] (deterministic, versioned by `v`).

use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A member, through the client API.
    User,
    /// An operator certificate on the admin port.
    Operator,
    /// The system itself (no request).
    System,
    /// An integrated application (WeCom-compatible API); `id` is its
    /// agentid, `role` its name.
    App,
}

/// Who did it, from where: decided by the node that took the request and
/// carried in the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub kind: ActorKind,
    /// userid, or the operator certificate's name.
    pub id: String,
    /// `member`, or the operator's role (sysadmin, secadmin, auditor).
    pub role: String,
    /// Source address of the request.
    pub source: String,
    /// The node that took the request.
    pub node: String,
    /// Links to the request's log lines.
    pub request_id: String,
}

impl Origin {
    pub fn system(node: &str) -> Origin {
        Origin {
            kind: ActorKind::System,
            id: "system".into(),
            role: String::new(),
            source: String::new(),
            node: node.into(),
            request_id: String::new(),
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u8,
    pub seq: u64,
    /// Leader-stamped time, ms since the Unix epoch.
    pub time_ms: u64,
    pub origin: Origin,
    /// e.g. `auth.login`, `directory.member.create`.
    pub action: String,
    /// What it acted on (a userid, `dept:7`, a conversation id).
    pub target: String,
    /// `ok`, or `refused:<code>`, or a short result such as `failed`.
    pub outcome: String,
}

/// A record as stored and exported: the record and its chain hash (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    pub record: Record,
    pub hash: String,
}

pub fn canonical(r: &Record) -> Vec<u8> {
    postcard::to_stdvec(r).unwrap_or_default()
}

pub fn chain_hash(prev: &[u8; 32], r: &Record) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(&canonical(r));
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct Break {
    pub seq: u64,
    pub reason: String,
}

/// Verify consecutive records starting after (`prev_seq`, `prev_hash`).
/// Reports the first record that is missing, out of order or altered.
pub fn verify<'a>(
    prev_seq: u64,
    prev_hash: [u8; 32],
    records: impl IntoIterator<Item = &'a Linked>,
) -> Result<(u64, [u8; 32]), Break> {
    let (mut seq, mut prev) = (prev_seq, prev_hash);
    for l in records {
        let expected = seq + 1;
        if l.record.seq != expected {
            return Err(Break {
                seq: expected,
                reason: format!(
                    "expected record {expected}, found {} (missing or reordered records)",
                    l.record.seq
                ),
            });
        }
        let h = chain_hash(&prev, &l.record);
        if hex::encode(h) != l.hash {
            return Err(Break {
                seq: expected,
                reason: "hash does not match the record and its predecessor (altered)".into(),
            });
        }
        seq = expected;
        prev = h;
    }
    Ok((seq, prev))
}

/// A signed statement "the chain's record `seq` has hash `hash`", made by a
/// node with its node key. Checkpoints are stored in the chain's log too;
/// an export ends with one over its last record, so a cut-off tail shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    /// Hex SHA-256 chain hash of record `seq`.
    pub hash: String,
    /// When the node signed, ms since the Unix epoch (its certificate must
    /// be valid then).
    pub time_ms: u64,
    /// The signing node's name.
    pub signer: String,
    /// Hex DER of the signing node's certificate.
    pub cert: String,
    /// Hex ECDSA P-256 / SHA-256 signature over [`checkpoint_message`].
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(seq: u64, hash: &str, time_ms: u64) -> Vec<u8> {
    [
        b"enclave-audit-checkpoint/1\0".as_slice(),
        &seq.to_be_bytes(),
        hash.as_bytes(),
        &time_ms.to_be_bytes(),
    ]
    .concat()
}

/// Check a checkpoint's signature against the CA certificates (DER).
pub fn verify_checkpoint(ca_ders: &[Vec<u8>], cp: &Checkpoint) -> Result<String, String> {
    let cert = hex::decode(&cp.cert).map_err(|e| format!("certificate is not hex: {e}"))?;
    let sig = hex::decode(&cp.signature).map_err(|e| format!("signature is not hex: {e}"))?;
    let name = enclave_certs::sign::verify_node_signature(
        ca_ders,
        &cert,
        cp.time_ms / 1000,
        &checkpoint_message(cp.seq, &cp.hash, cp.time_ms),
        &sig,
    )
    .map_err(|e| e.to_string())?;
    if name != cp.signer {
        return Err(format!(
            "signed by {name:?}, but the checkpoint names {:?}",
            cp.signer
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain hash of a fixed record. The web console computes the same
    /// value in TypeScript (`web/tests/unit/audit.test.ts`) to verify the
    /// chain in the browser: if the canonical encoding changes, both tests
    /// must change together.
    #[test]
    fn chain_hash_of_a_fixed_record_is_stable() {
        let r = Record {
            v: FORMAT_VERSION,
            seq: 300,
            time_ms: 1_796_280_114_521,
            origin: Origin {
                kind: ActorKind::Operator,
                id: "张三-ops".into(),
                role: "sysadmin".into(),
                source: "10.0.0.7".into(),
                node: "node-1".into(),
                request_id: "r-1".into(),
            },
            action: "directory.member.create".into(),
            target: "lisi".into(),
            outcome: "ok".into(),
        };
        let prev = [7u8; 32];
        assert_eq!(
            hex::encode(chain_hash(&prev, &r)),
            "1f282b5ced624e26b635db50b90aeed90393e3170a4ef18c7f83dbf51d26c184"
        );
    }
}
