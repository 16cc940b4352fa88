//! Enclave's replicated storage and peer transport.
//!
//! - [`store`]: the sled-backed Raft log and state machine adapter;
//! - [`app`]: the interface an application state machine implements;
//! - [`net`]: the TLS listener every port uses and the peer routes.
#![forbid(unsafe_code)]
// openraft's StorageError and RaftError are large by design and appear in
// every storage signature; boxing them would fight the trait definitions.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod control;
pub mod net;
pub mod network;
pub mod node;
pub mod store;
pub mod types;
