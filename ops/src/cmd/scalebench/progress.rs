//! A progress line on stderr for each phase.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct Progress {
    phase: String,
    total: u64,
    done: AtomicU64,
    start: Instant,
    closed: Mutex<bool>,
}

fn fmt_secs(s: f64) -> String {
    match s.max(0.0).round() as u64 {
        s @ 3600.. => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s @ 60.. => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn progress_line(phase: &str, done: u64, total: u64, secs: f64) -> String {
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = match (done >= total, rate > 0.0) {
        (true, _) => "0s".to_string(),
        (false, true) => fmt_secs((total - done) as f64 / rate),
        (false, false) => "?".to_string(),
    };
    format!(
        "  {phase}: {done}/{total} {rate:.0}/s elapsed {} eta {eta}",
        fmt_secs(secs)
    )
}

impl Progress {
    /// One line on stderr, rewritten every half second until `finish`.
    pub(super) fn start(phase: &str, total: usize) -> Arc<Progress> {
        let closed = Mutex::new(false);
        let (done, start) = (AtomicU64::new(0), Instant::now());
        let p = Arc::new(Progress {
            phase: phase.to_string(),
            total: total as u64,
            done,
            start,
            closed,
        });
        let w: Weak<Progress> = Arc::downgrade(&p);
        // Not on a terminal (a log file): only the final line.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tty.then(|| {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if !w.upgrade().is_some_and(|p| p.print(false)) {
                        break;
                    }
                }
            })
        });
        p
    }
    pub(super) fn add(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
    }
    fn print(&self, last: bool) -> bool {
        let Ok(mut closed) = self.closed.lock() else {
            return false;
        };
        if !*closed {
            let secs = self.start.elapsed().as_secs_f64();
            eprint!(
                "\r{:<78}",
                progress_line(&self.phase, self.done.load(Relaxed), self.total, secs)
            );
            if last {
                eprintln!();
            }
        }
        *closed |= last;
        !*closed
    }
    /// The final line; the phase's seconds.
    pub(super) fn finish(&self) -> f64 {
        self.print(true);
        self.start.elapsed().as_secs_f64()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.print(true); // a phase that failed: end its line before the error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_read() {
        assert_eq!(
            progress_line("members", 50, 200, 10.0),
            "  members: 50/200 5/s elapsed 10s eta 30s"
        );
        assert!(progress_line("login", 0, 10, 0.0).ends_with("eta ?"));
        assert_eq!(
            [fmt_secs(59.4), fmt_secs(65.0), fmt_secs(3725.0)],
            ["59s", "1m05s", "1h02m"]
        );
    }
}
