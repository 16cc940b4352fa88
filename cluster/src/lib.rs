//! Enclave's replicated storage and peer transport.
//!
//! - [`store`]: the sled-backed Raft log and state machine adapter;
//! - [`app`]: the interface an application state machine implements;
//! - [`net`]: the TLS listener every port uses and the peer routes.
#![forbid(unsafe_code)]

pub mod app;
pub mod control;
pub mod net;
pub mod store;
pub mod types;
