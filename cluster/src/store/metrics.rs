//! Storage metrics: how long the disk takes to make the Raft log durable
//! and how long applying committed entries takes. These are the first
//! numbers to look at when commits are slow (the equivalent of etcd's
//! `wal_fsync_duration` and `backend_commit_duration`); see
//! docs/operator/monitoring.md.

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// 100 µs … ~3.3 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// 1 … 2,048.
fn counts() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// Metrics of the log store's group commit. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct LogMetrics {
    /// One group commit: sled's flush and the `fdatasync`s after it.
    pub flush_seconds: Histogram,
    /// Log entries made durable by one group commit.
    pub flush_entries: Histogram,
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics {
            flush_seconds: seconds(),
            flush_entries: counts(),
        }
    }
}

impl LogMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "enclave_raft_log_flush_duration_seconds",
            "Time to make appended Raft log entries durable (one group commit: sled flush + fdatasync)",
            self.flush_seconds.clone(),
        );
        registry.register(
            "enclave_raft_log_flush_entries",
            "Raft log entries made durable by one group commit",
            self.flush_entries.clone(),
        );
    }
}

/// Metrics of the state machine's applies. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct ApplyMetrics {
    /// One atomic apply batch: the application's work, the journal record
    /// and the writes.
    pub batch_seconds: Histogram,
    /// Committed entries applied in one batch.
    pub batch_entries: Histogram,
}

impl Default for ApplyMetrics {
    fn default() -> Self {
        ApplyMetrics {
            batch_seconds: seconds(),
            batch_entries: counts(),
        }
    }
}

impl ApplyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "enclave_raft_apply_duration_seconds",
            "Time to apply one batch of committed entries to the state machine",
            self.batch_seconds.clone(),
        );
        registry.register(
            "enclave_raft_apply_entries",
            "Committed entries applied in one batch",
            self.batch_entries.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_register_under_their_names() {
        let mut registry = Registry::default();
        let log = LogMetrics::default();
        let apply = ApplyMetrics::default();
        log.register(&mut registry);
        apply.register(&mut registry);
        log.flush_seconds.observe(0.0003);
        log.flush_entries.observe(5.0);
        apply.batch_seconds.observe(0.0002);
        apply.batch_entries.observe(3.0);
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
