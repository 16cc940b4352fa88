//! Test-only fault hooks for the failover suite (`tests/tests/failover.rs`,
//! `ops/chaos.sh`). Inert unless the environment variable
//! `ENCLAVE_FAULT_DIR` names a directory when the process starts; the node
//! then logs a warning at startup. In that directory:
//!
//! - `clock_offset_ms`: a signed number of milliseconds added to this
//!   node's wall clock (a clock jump or skew without touching the machine's
//!   clock). Raft's own timers use the monotonic clock and are unaffected,
//!   as on a real machine.
//! - `fsync_delay_ms`: a delay before every flush of the Raft log (a slow
//!   disk).
//! - `snapshot_switch_delay_ms`: a pause in a snapshot install after the
//!   new state is written and before it is switched to, announced by a
//!   `TEST-ONLY: holding a snapshot install` warning (so a test can kill
//!   the node mid-install).
//!
//! The files are re-read at most every 100 ms, so a test can change them
//! while the node runs. A missing or unparsable file means 0.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable that enables the hooks.
pub const ENV: &str = "ENCLAVE_FAULT_DIR";

fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(ENV).map(PathBuf::from))
        .as_ref()
}

/// The fault directory when the hooks are enabled (for a startup warning).
pub fn enabled() -> Option<PathBuf> {
    dir().cloned()
}

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A value read from `<dir>/<name>`, cached for 100 ms.
struct Knob {
    name: &'static str,
    read_at: AtomicU64,
    value: AtomicI64,
}

impl Knob {
    const fn new(name: &'static str) -> Knob {
        Knob {
            name,
            read_at: AtomicU64::new(0),
            value: AtomicI64::new(0),
        }
    }

    fn get(&self) -> i64 {
        let Some(dir) = dir() else {
            return 0;
        };
        let now = system_ms();
        let last = self.read_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 100 || last == 0 {
            let v = std::fs::read_to_string(dir.join(self.name))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            self.value.store(v, Ordering::Relaxed);
            self.read_at.store(now.max(1), Ordering::Relaxed);
        }
        self.value.load(Ordering::Relaxed)
    }
}

static CLOCK_OFFSET: Knob = Knob::new("clock_offset_ms");
static FSYNC_DELAY: Knob = Knob::new("fsync_delay_ms");
static SNAPSHOT_SWITCH_DELAY: Knob = Knob::new("snapshot_switch_delay_ms");

/// Wall-clock milliseconds since the Unix epoch, as this node sees them
/// (the machine's clock plus any test clock offset).
pub fn now_ms() -> u64 {
    let now = system_ms();
    let offset = CLOCK_OFFSET.get();
    if offset >= 0 {
        now.saturating_add(offset as u64)
    } else {
        now.saturating_sub(offset.unsigned_abs())
    }
}

/// The injected delay before a log flush, if any.
pub fn fsync_delay() -> Option<Duration> {
    let ms = FSYNC_DELAY.get();
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

/// The injected pause before a snapshot install switches generations.
pub fn snapshot_switch_delay() -> Option<Duration> {
    let ms = SNAPSHOT_SWITCH_DELAY.get();
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_variable_the_hooks_are_inert() {
        // The test runner does not set ENCLAVE_FAULT_DIR.
        if std::env::var_os(ENV).is_some() {
            return;
        }
        assert!(enabled().is_none());
        assert!(fsync_delay().is_none());
        let a = system_ms();
        let b = now_ms();
        assert!(b >= a && b - a < 5_000);
    }
}
