//! Harness for cross-process tests: real `enclave` and `enclavectl`
//! binaries, real certificates from a fresh CA, real TLS on loopback.
//!
//! Binaries are (re)built on first use in each test process with
//! `cargo build --bins` so a test never runs a stale binary. That needs the
//! build lock to be free, which it is under `cargo nextest run` (the
//! README's test command); under plain `cargo test` the existing binaries
//! are used as they are.

pub mod api;
pub mod checker;
pub mod cluster;
pub mod metrics;
pub mod nemesis;
pub mod netns;
pub mod pki;
pub mod powerloss;
pub mod proc;
pub mod suite;
pub mod tls;
pub mod wecom;
pub mod workload;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of a workspace binary (`enclave` or `enclavectl`), built if needed.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(build_bins);
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` or use `cargo nextest run --workspace`",
        path.display()
    );
    path
}

/// `target/<profile>`, derived from this binary's own location: a test
/// lives in `target/<profile>/deps/`, a harness binary such as
/// `enclave-chaos` in `target/<profile>/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .expect("the binary lives in target/<profile>")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(|p| p.to_path_buf()).unwrap_or(dir)
    } else {
        dir
    }
}

fn build_bins() {
    if std::env::var_os("NEXTEST").is_none() && std::env::var_os("ENCLAVE_TEST_BUILD").is_none() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    // `--workspace` keeps feature unification identical to the test build,
    // so this is a no-op when nothing changed (no rebuild ping-pong).
    cmd.args([
        "build",
        "--quiet",
        "--workspace",
        "--bins",
        "--manifest-path",
    ])
    .arg(&manifest);
    // The test runner sets CARGO_MANIFEST_DIR, CARGO_PKG_* and friends for
    // the test process; some build scripts (ring's) rerun when those differ,
    // which would rebuild half the tree on every test. Hand cargo a clean
    // environment instead.
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_",
        "CARGO_TERM_",
        "CARGO_NET_",
        "CARGO_PROFILE_",
        "CARGO_REGISTR",
        "CARGO_HTTP_",
        "CARGO_ENCODED_RUSTFLAGS",
    ];
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if (k.starts_with("CARGO_") && !KEEP.iter().any(|p| k.starts_with(p))) || k == "OUT_DIR" {
            cmd.env_remove(k);
        }
    }
    if profile_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("running cargo build for the binaries under test");
    assert!(status.success(), "cargo build of enclave/enclavectl failed");
}

/// Poll `f` every 50 ms until it returns `Some`, or panic after `timeout`
/// naming `what`. Waits in tests are always bounded.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Async flavour of [`wait_for`].
pub async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
