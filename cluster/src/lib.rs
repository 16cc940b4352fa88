//! Enclave's replicated storage and peer transport.
//!
//! From the bottom up:
//!
//! - [`types`]: the Raft type configuration and the log's wire types
//!   (requests, responses, the cluster layer's own commands);
//! - [`store`]: the sled-backed Raft log, state machine adapter, snapshot
//!   format and durability watermark;
//! - [`app`]: the interface an application state machine implements;
//! - [`control`]: applying the cluster layer's own commands (join tokens,
//!   the cluster id);
//! - [`election`]: the rules of when to campaign (a pre-vote round before
//!   every election; openraft's own timer is off);
//! - [`listener`]: the TLS listener behind every port (identity from the
//!   verified certificate);
//! - [`peer`]: the node-to-node transport (Raft RPCs, forwarding) over
//!   HTTP/2 + mTLS, client and routes;
//! - [`error`]: why a cluster operation failed;
//! - [`proposer`]: the leader's batching of concurrent writes;
//! - [`node`]: a running member — writes from any node, read barriers,
//!   membership, status, the campaign loop.
#![forbid(unsafe_code)]
// openraft's StorageError and RaftError are large by design and appear in
// every storage signature; boxing them would fight the trait definitions.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod audit;
pub mod control;
pub mod election;
pub mod error;
pub mod fault;
pub mod listener;
pub mod node;
pub mod peer;
pub mod proposer;
pub mod store;
pub mod types;
