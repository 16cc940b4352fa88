//! The TLS listener behind every Enclave port: an accept loop that takes
//! the caller's identity from its verified certificate and hands each
//! request a [`ConnInfo`].

mod metrics;
mod server;

pub use metrics::ListenerMetrics;
pub use server::{ConnInfo, JOIN_ALPN, JoinDoor, ServeOptions, serve_tls};
