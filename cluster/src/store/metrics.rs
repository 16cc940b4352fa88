//! Storage metrics: how long the disk takes to make the Raft log durable
//! and how long applying committed entries takes. These are the first
//! numbers to look at when commits are slow (the equivalent of etcd's
//! `wal_fsync_duration` and `backend_commit_duration`); see
//! docs/operator/monitoring.md.

use std::time::Instant;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The names and help texts of one [`BatchMetrics`].
#[derive(Debug)]
pub struct BatchNames {
    seconds: (&'static str, &'static str),
    entries: (&'static str, &'static str),
}

/// The log store's group commits.
pub const LOG_FLUSH: BatchNames = BatchNames {
    seconds: (
        "enclave_raft_log_flush_duration_seconds",
        "Time to make appended Raft log entries durable (one group commit: sled flush + fdatasync)",
    ),
    entries: (
        "enclave_raft_log_flush_entries",
        "Raft log entries made durable by one group commit",
    ),
};

/// The state machine's apply batches (the application's work, the
/// journal record and the writes).
pub const APPLY: BatchNames = BatchNames {
    seconds: (
        "enclave_raft_apply_duration_seconds",
        "Time to apply one batch of committed entries to the state machine",
    ),
    entries: (
        "enclave_raft_apply_entries",
        "Committed entries applied in one batch",
    ),
};

/// How long each batch of some storage operation took and how many
/// entries it covered. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct BatchMetrics {
    names: &'static BatchNames,
    /// 100 µs … ~3.3 s.
    seconds: Histogram,
    /// 1 … 2,048.
    entries: Histogram,
}

impl BatchMetrics {
    pub fn new(names: &'static BatchNames) -> BatchMetrics {
        BatchMetrics {
            names,
            seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            entries: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }

    /// One batch of `entries` entries, begun at `started`, is done.
    pub fn observe(&self, started: Instant, entries: usize) {
        self.seconds.observe(started.elapsed().as_secs_f64());
        self.entries.observe(entries as f64);
    }

    pub fn register(&self, registry: &mut Registry) {
        let (name, help) = self.names.seconds;
        registry.register(name, help, self.seconds.clone());
        let (name, help) = self.names.entries;
        registry.register(name, help, self.entries.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_register_under_their_names() {
        let mut registry = Registry::default();
        let log = BatchMetrics::new(&LOG_FLUSH);
        let apply = BatchMetrics::new(&APPLY);
        log.register(&mut registry);
        apply.register(&mut registry);
        log.observe(Instant::now(), 5);
        apply.observe(Instant::now(), 3);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        for name in [
            "enclave_raft_log_flush_duration_seconds_count 1",
            "enclave_raft_log_flush_entries_sum 5.0",
            "enclave_raft_apply_duration_seconds_count 1",
            "enclave_raft_apply_entries_sum 3.0",
        ] {
            assert!(out.contains(name), "{name} missing from:\n{out}");
        }
    }
}
