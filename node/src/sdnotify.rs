//! systemd's readiness protocol (`Type=notify`, `sd_notify(3)`): one
//! datagram of `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`,
//! a path or, when it starts with `@`, an abstract socket name.
//!
//! When the node tells systemd it is ready:
//!
//! - as soon as `/readyz` would answer ready (listeners up, Raft running,
//!   in a cluster, a leader known);
//! - with the listeners up, when the node is not in a cluster yet (for
//!   [`UNINITIALIZED_GRACE`]): it waits for `enclavectl cluster init`, `cluster add` or a join,
//!   which cannot happen while systemd still holds its start job;
//! - after [`LEADER_WAIT`] without a leader, with a `STATUS=` that says so:
//!   a member whose peers are down (the first node back after a site-wide
//!   power cut) is healthy and must not be killed and restarted in a loop
//!   by the start timeout. Load balancers look at `/readyz`, not at
//!   systemd.
//!
//! `STATUS=` follows readiness afterwards (leader lost, Raft stopped), and
//! `STOPPING=1` is sent when the node begins its graceful shutdown,
//! except before a restart in place to defragment (`STATUS=restarting…`:
//! the same process goes on; `node/src/defrag.rs` extends the start
//! timeout while it copies the store).
//! Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::http::NodeState;

/// How long a member of a cluster waits for a leader before it reports
/// itself started anyway (see the module documentation).
pub const LEADER_WAIT: Duration = Duration::from_secs(60);

/// How long a node must stay outside a cluster before it reports itself
/// started that way: the dev node and a restored node make themselves a
/// cluster just after their listeners are up, and Raft publishes a
/// restarted member's membership a moment after it starts.
pub const UNINITIALIZED_GRACE: Duration = Duration::from_secs(2);

/// The socket systemd listens on for this service.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when it is unset or unusable (then
    /// logged once).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        match Notifier::new(&value) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = ?value, error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                None
            }
        }
    }

    /// For a socket path, or an abstract name written `@name`.
    pub fn new(name: &std::ffi::OsStr) -> std::io::Result<Notifier> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', abstract_name)) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            Some((b'/', _)) => SocketAddr::from_pathname(name)?,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an @abstract name",
                ));
            }
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Send one message (`KEY=VALUE` lines). Failures are logged, never
    /// fatal: the node runs the same with or without systemd.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, "sd_notify failed");
        } else {
            tracing::debug!(message, "sd_notify sent");
        }
    }
}

/// Why the node is not ready, as `/readyz` says it (`not_ready`,
/// `apply_halted`, `raft_stopped`, `not_initialized`, `no_leader`).
pub fn readiness(state: &NodeState) -> Result<(), &'static str> {
    if !state.ready.load(Ordering::Acquire) {
        return Err("not_ready");
    }
    let (running, leader) = {
        let m = state.cluster.raft.metrics();
        let m = m.borrow();
        (
            m.running_state.is_ok() && m.state != openraft::ServerState::Shutdown,
            m.current_leader,
        )
    };
    if !running && state.cluster.sm.app().halted().is_some() {
        return Err("apply_halted");
    }
    if !running {
        return Err("raft_stopped");
    }
    if !state.cluster.is_initialized() {
        return Err("not_initialized");
    }
    if leader.is_none() {
        return Err("no_leader");
    }
    Ok(())
}

fn status_line(state: &NodeState, readiness: Result<(), &'static str>) -> String {
    match readiness {
        Ok(()) => {
            let leader = state
                .cluster
                .leader()
                .map_or_else(|| "?".to_string(), |(_, m)| m.name);
            format!("serving; leader {leader}")
        }
        Err("not_initialized") => {
            "listening; not in a cluster yet (waiting for cluster init, cluster add or a join)"
                .into()
        }
        Err("no_leader") => "listening; no leader known (election under way or no quorum)".into(),
        Err("raft_stopped") => "Raft stopped on this node (storage failure?); see the log".into(),
        Err("apply_halted") => match state.cluster.sm.app().halted() {
            Some(h) => format!(
                "stopped applying at entry {}: {} (upgrade this node)",
                h.index, h.reason
            ),
            None => "stopped applying; see the log".into(),
        },
        Err(_) => "starting".into(),
    }
}

/// Tell systemd when the node is ready, keep `STATUS=` current, and send
/// `STOPPING=1` at shutdown. Returns at once without `$NOTIFY_SOCKET`.
pub async fn notify_loop(state: Arc<NodeState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(notifier) = Notifier::from_env() else {
        return;
    };
    let started = Instant::now();
    let mut sent_ready = false;
    let mut uninitialized_since: Option<Instant> = None;
    let mut last_status = String::new();
    // Polled: readiness is a few atomic reads, and Raft's metrics channel
    // would wake this loop on every append under load.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let r = readiness(&state);
        let status = status_line(&state, r);
        if r != Err("not_initialized") {
            uninitialized_since = None;
        }
        let ready_now = match r {
            Ok(()) => true,
            Err("not_initialized") => {
                uninitialized_since
                    .get_or_insert_with(Instant::now)
                    .elapsed()
                    >= UNINITIALIZED_GRACE
            }
            Err("no_leader" | "raft_stopped" | "apply_halted") => started.elapsed() >= LEADER_WAIT,
            Err(_) => false,
        };
        if ready_now && !sent_ready {
            sent_ready = true;
            tracing::info!(status = %status, "notifying systemd: ready");
            notifier.send(&format!("READY=1\nSTATUS={status}"));
            last_status = status;
        } else if sent_ready && status != last_status {
            notifier.send(&format!("STATUS={status}"));
            last_status = status;
        }
        tokio::select! {
            _ = tick.tick() => {}
            r = shutdown.changed() => if r.is_err() { break },
        }
    }
    if state.restarting.load(Ordering::Acquire) {
        // The same process starts again (`exec`): systemd must not take
        // it for a service on its way out.
        notifier.send("STATUS=restarting to defragment the store");
    } else {
        notifier.send("STOPPING=1\nSTATUS=stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        Notifier::new(path.as_os_str())
            .expect("path")
            .send("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("enclave-sdnotify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::new(std::ffi::OsStr::new(&format!("@{name}")))
            .expect("abstract")
            .send("STOPPING=1");
        let n = listener.recv(&mut buf).expect("recv abstract");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn refuses_relative_names() {
        assert!(Notifier::new(std::ffi::OsStr::new("notify.sock")).is_err());
        assert!(Notifier::new(std::ffi::OsStr::new("")).is_err());
    }
}
