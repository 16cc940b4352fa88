//! Enclave's replicated storage and peer transport.
//!
//! - [`store`]: the sled-backed Raft log, state machine adapter, snapshot
//!   format and durability watermark;
//! - [`app`]: the interface an application state machine implements;
//! - [`node`]: a running member — writes from any node, read barriers,
//!   membership, status;
//! - [`network`]: Raft RPCs over HTTP/2 + mTLS (client and peer routes);
//! - [`election`]: when to campaign (a pre-vote round before every
//!   election; openraft's own timer is off);
//! - [`control`]: the cluster layer's own replicated commands (join tokens);
//! - [`net`]: the TLS listener every port uses.
#![forbid(unsafe_code)]
// openraft's StorageError and RaftError are large by design and appear in
// every storage signature; boxing them would fight the trait definitions.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod audit;
pub mod control;
pub mod election;
pub mod fault;
pub mod net;
pub mod network;
pub mod node;
pub mod proposer;
pub mod store;
pub mod types;
