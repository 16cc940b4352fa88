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

/// The newest checkpoint's seq (0 if none).
pub fn last_checkpoint_seq<S: Store + ?Sized>(s: &S) -> Result<u64, StoreFault> {
    // Checkpoints are few (one per interval): a reverse scan is not
    // available on the trait, so walk forward in pages.
    let mut after = 0;
    loop {
        let page = checkpoints(s, after, 1000)?;
        match page.last() {
            Some(c) => after = c.seq,
            None => return Ok(after),
        }
        if page.len() < 1000 {
            return Ok(after);
        }
    }
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
        // last record (to come) detects it.
        assert!(verify(0, [0; 32], &good[..7]).is_ok());
    }
}
