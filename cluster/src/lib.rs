//! Enclave's replicated storage and peer transport.
//!
//! Today this crate holds the TLS listener every Enclave port is served by
//! ([`net::serve_tls`]) and the peer port's router. Raft replication (log
//! store, state machine adapter, RPCs) lands here next.
#![forbid(unsafe_code)]

pub mod net;
