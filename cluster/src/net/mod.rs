//! Networking shared by every Enclave listener: a TLS accept loop that
//! takes the peer's identity from its verified certificate, and the peer
//! port's routes.

mod metrics;
pub mod peer;
mod server;

pub use metrics::ListenerMetrics;
pub use server::{ConnInfo, JOIN_ALPN, JoinDoor, ServeOptions, serve_tls};
