//! Long background jobs (snapshot builds) on a thread of their own at a
//! lower CPU priority.
//!
//! A snapshot build reads the whole state and writes it out: at 160k
//! members that is minutes of a core. On a small machine three nodes that
//! build at once, plus the writes that made them build, want more CPU than
//! there is; at the same priority as the Raft core and the request
//! handlers, the build takes its full share and a leader's heartbeats
//! wait. A nicer thread yields to them and takes what is left.

/// How much nicer than the node a build thread runs (Linux: each step is
/// ~1.25× less CPU under contention; 5 is ~3× less than the node's own
/// threads, and no less when the machine is otherwise idle).
pub const BUILD_NICENESS: i32 = 5;

/// Run `job` on a new thread named `name`, [`BUILD_NICENESS`] steps nicer
/// than the calling process, and wait for its result without holding an
/// async worker.
pub async fn run_nicer<T, F>(name: &str, job: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(job());
        })?;
    rx.await
        .map_err(|_| std::io::Error::other(format!("the {name} thread ended without a result")))
}

/// Make the calling thread nicer. Best effort: a failure (a platform
/// without per-thread priorities, a sandbox refusing it) leaves it as is.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        // On Linux the nice value is per thread: PRIO_PROCESS with a
        // thread id changes only that thread.
        let me = rustix::thread::gettid();
        let result = getpriority_process(Some(me))
            .and_then(|now| setpriority_process(Some(me), (now + BUILD_NICENESS).min(19)));
        if let Err(e) = result {
            tracing::debug!(error = %e, "cannot lower the priority of a background thread");
        }
    }
}

/// The calling thread's nice value (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
fn niceness() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_background_job_runs_nicer_than_its_caller() {
        let mine = niceness();
        let theirs = run_nicer("test-nicer", niceness).await.expect("job ran");
        assert_eq!(theirs, (mine + BUILD_NICENESS).min(19));
        assert_eq!(niceness(), mine, "the caller's own priority is unchanged");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_hang() {
        let r: std::io::Result<()> = run_nicer("test-panics", || panic!("boom")).await;
        let e = r.expect_err("a panic is reported");
        assert!(e.to_string().contains("test-panics"), "{e}");
    }
}
