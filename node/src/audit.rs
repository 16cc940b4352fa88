//! The audit chain: every security-relevant action leaves a record, written
//! in the same apply (the same atomic batch) as the action itself, so an
//! action whose record cannot be written does not happen, and every node
//! holds the same chain.
//!
//! Each record carries `hash = SHA-256(previous hash ‖ canonical record)`;
//! the first record's previous hash is 32 zero bytes. The canonical
//! encoding is postcard of [`Record`] (deterministic, versioned by `v`).
//! Secrets (passwords, tokens, message text) never appear in a record.
//!
//! Still to come (issue 5): leader-signed checkpoints, retention with
//! anchored exports, syslog forwarding, aggregation of denied requests.

use crate::domain::store::{Store, StoreExt, StoreFault};

pub use enclave_cluster::audit::*;

const HEAD: &[u8] = b"audit/head";

fn record_key(seq: u64) -> Vec<u8> {
    [b"audit/r/".as_slice(), &seq.to_be_bytes()].concat()
}

/// The chain's head: last sequence number and its hash.
pub fn head<S: Store + ?Sized>(s: &S) -> Result<(u64, [u8; 32]), StoreFault> {
    Ok(s.get_as::<(u64, [u8; 32])>(HEAD)?.unwrap_or((0, [0; 32])))
}

/// Time of the chain's last record (0 for an empty chain).
pub fn head_time<S: Store + ?Sized>(s: &S) -> Result<u64, StoreFault> {
    let (seq, _) = head(s)?;
    if seq == 0 {
        return Ok(0);
    }
    Ok(s.get_as::<Linked>(&record_key(seq))?
        .map_or(0, |l| l.record.time_ms))
}

/// Append a record (in the caller's apply transaction).
pub fn append<S: Store + ?Sized>(
    s: &mut S,
    time_ms: u64,
    origin: &Origin,
    action: &str,
    target: &str,
    outcome: &str,
) -> Result<Record, StoreFault> {
    let (seq, prev) = head(s)?;
    let record = Record {
        v: FORMAT_VERSION,
        seq: seq + 1,
        time_ms,
        origin: origin.clone(),
        action: action.into(),
        target: target.into(),
        outcome: outcome.into(),
    };
    let hash = chain_hash(&prev, &record);
    s.put_as(
        &record_key(record.seq),
        &Linked {
            record: record.clone(),
            hash: hex::encode(hash),
        },
    )?;
    s.put_as(HEAD, &(record.seq, hash))?;
    Ok(record)
}

/// Records with seq > `after`, at most `limit`.
pub fn records<S: Store + ?Sized>(
    s: &S,
    after: u64,
    limit: usize,
) -> Result<Vec<Linked>, StoreFault> {
    let from = record_key(after);
    Ok(s.scan_as::<Linked>(b"audit/r/", Some(&from), limit)?
        .into_iter()
        .map(|(_, l)| l)
        .collect())
}

fn checkpoint_key(seq: u64) -> Vec<u8> {
    [b"audit/c/".as_slice(), &seq.to_be_bytes()].concat()
}

/// Store a checkpoint (in apply) if it names a record of this chain with
/// its right hash; otherwise refuse it and change nothing.
pub fn apply_checkpoint<S: Store + ?Sized>(
    s: &mut S,
    cp: &Checkpoint,
) -> Result<Result<(), String>, StoreFault> {
    let (head_seq, _) = head(s)?;
    if cp.seq == 0 || cp.seq > head_seq {
        return Ok(Err(format!(
            "checkpoint for record {} but the chain ends at {head_seq}",
            cp.seq
        )));
    }
    match s.get_as::<Linked>(&record_key(cp.seq))? {
        Some(l) if l.hash == cp.hash => {}
        _ => {
            return Ok(Err(format!(
                "checkpoint hash does not match record {}",
                cp.seq
            )));
        }
    }
    s.put_as(&checkpoint_key(cp.seq), cp)?;
    if cp.seq > last_checkpoint_seq(s)? {
        s.put_as(LAST_CHECKPOINT, &cp.seq)?;
    }
    Ok(Ok(()))
}

/// Checkpoints with seq > `after`, at most `limit`.
pub fn checkpoints<S: Store + ?Sized>(
    s: &S,
    after: u64,
    limit: usize,
) -> Result<Vec<Checkpoint>, StoreFault> {
    let from = checkpoint_key(after);
    Ok(s.scan_as::<Checkpoint>(b"audit/c/", Some(&from), limit)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

const LAST_CHECKPOINT: &[u8] = b"audit/lastcp";

/// The newest checkpoint's seq (0 if none).
pub fn last_checkpoint_seq<S: Store + ?Sized>(s: &S) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(LAST_CHECKPOINT)?.unwrap_or(0))
}

const BASE: &[u8] = b"audit/base";

/// Where the stored chain starts: records up to `seq` were archived (0 and
/// zeros when nothing was).
pub fn base<S: Store + ?Sized>(s: &S) -> Result<(u64, [u8; 32]), StoreFault> {
    Ok(s.get_as::<(u64, [u8; 32])>(BASE)?.unwrap_or((0, [0; 32])))
}

/// Move records `..=upto` out of the chain (in apply). Allowed only when
/// every one of them is older than the retention, a signed checkpoint
/// covers `upto` (so the archived part is provable), and the export's
/// SHA-256 is anchored by a new record in the chain.
pub fn archive<S: Store + ?Sized>(
    s: &mut S,
    time_ms: u64,
    origin: &Origin,
    upto: u64,
    export_sha256: &str,
    retention_days: u32,
) -> Result<Result<u64, String>, StoreFault> {
    let (from, _) = base(s)?;
    let (head_seq, _) = head(s)?;
    if upto <= from || upto > head_seq {
        return Ok(Err(format!(
            "nothing to archive up to {upto}: the stored chain holds {}..={head_seq}",
            from + 1
        )));
    }
    if export_sha256.len() != 64 || !export_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err("export_sha256 must be 64 hex digits".into()));
    }
    if s.get(&checkpoint_key(upto))?.is_none() {
        return Ok(Err(format!(
            "no signed checkpoint at record {upto}: archive up to a checkpoint (export first)"
        )));
    }
    let Some(last) = s.get_as::<Linked>(&record_key(upto))? else {
        return Err(StoreFault(format!("audit record {upto} is missing")));
    };
    let cutoff = time_ms.saturating_sub(u64::from(retention_days) * 86_400_000);
    if last.record.time_ms >= cutoff {
        return Ok(Err(format!(
            "record {upto} is younger than the retention ({retention_days} days): it must stay in the chain"
        )));
    }
    let mut hash = [0u8; 32];
    match hex::decode(&last.hash) {
        Ok(b) if b.len() == 32 => hash.copy_from_slice(&b),
        _ => {
            return Err(StoreFault(format!(
                "audit record {upto} has a malformed hash"
            )));
        }
    }
    for seq in from + 1..=upto {
        s.delete(&record_key(seq));
        if seq < upto {
            s.delete(&checkpoint_key(seq));
        }
    }
    s.put_as(BASE, &(upto, hash))?;
    append(
        s,
        time_ms,
        origin,
        "audit.archive",
        &format!("records {}..={upto}", from + 1),
        &format!("sha256:{export_sha256}"),
    )?;
    Ok(Ok(upto))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MemStore;

    fn chain(n: u64) -> Vec<Linked> {
        let mut s = MemStore::default();
        let o = Origin::system("node-1");
        for i in 0..n {
            append(
                &mut s,
                1000 + i,
                &o,
                "auth.login",
                &format!("user{i}"),
                "ok",
            )
            .expect("append");
        }
        records(&s, 0, usize::MAX).expect("records")
    }

    #[test]
    fn an_untouched_chain_verifies_and_each_kind_of_damage_names_the_first_bad_record() {
        let good = chain(10);
        assert_eq!(verify(0, [0; 32], &good).map(|(s, _)| s), Ok(10));

        let mut flipped = good.clone();
        flipped[4].record.target.push('x');
        assert_eq!(verify(0, [0; 32], &flipped).map_err(|b| b.seq), Err(5));

        let mut deleted = good.clone();
        deleted.remove(6);
        assert_eq!(verify(0, [0; 32], &deleted).map_err(|b| b.seq), Err(7));

        let mut reordered = good.clone();
        reordered.swap(2, 3);
        assert_eq!(verify(0, [0; 32], &reordered).map_err(|b| b.seq), Err(3));

        let mut rehashed = good.clone();
        rehashed[8].hash = hex::encode([7u8; 32]);
        assert_eq!(verify(0, [0; 32], &rehashed).map_err(|b| b.seq), Err(9));

        // A truncated tail still links: only a signed checkpoint over the
        // last record detects it (the export tool requires one).
        assert!(verify(0, [0; 32], &good[..7]).is_ok());
    }

    #[test]
    fn archiving_needs_old_records_and_a_checkpoint_and_leaves_a_verifiable_anchored_chain() {
        let mut s = MemStore::default();
        let o = Origin::system("node-1");
        let day = 86_400_000u64;
        for i in 0..10 {
            append(&mut s, day + i, &o, "auth.login", "u", "ok").expect("append");
        }
        let cp = |seq: u64, s: &MemStore| Checkpoint {
            seq,
            hash: records(s, seq - 1, 1).expect("r")[0].hash.clone(),
            time_ms: 0,
            signer: "node-1".into(),
            cert: String::new(),
            signature: String::new(),
        };
        let sha = "ab".repeat(32);
        // Too young.
        let c = cp(6, &s);
        apply_checkpoint(&mut s, &c)
            .expect("store")
            .expect("checkpoint");
        let now_young = day + 100 * day;
        assert!(
            archive(&mut s, now_young, &o, 6, &sha, 180)
                .expect("store")
                .is_err()
        );
        // Old enough, but no checkpoint at 5.
        let now = day + 200 * day;
        assert!(
            archive(&mut s, now, &o, 5, &sha, 180)
                .expect("store")
                .is_err()
        );
        // Old enough with a checkpoint: records 1..=6 move out, an anchor is added.
        assert_eq!(
            archive(&mut s, now, &o, 6, &sha, 180).expect("store"),
            Ok(6)
        );
        let (bseq, bhash) = base(&s).expect("base");
        assert_eq!(bseq, 6);
        let rest = records(&s, 0, 100).expect("records");
        assert_eq!(rest.first().map(|l| l.record.seq), Some(7));
        assert_eq!(verify(bseq, bhash, &rest).map(|(s, _)| s), Ok(11));
        let anchor = &rest.last().expect("anchor").record;
        assert_eq!(anchor.action, "audit.archive");
        assert_eq!(anchor.outcome, format!("sha256:{sha}"));
    }
}
