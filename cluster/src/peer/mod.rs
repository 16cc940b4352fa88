//! The peer transport: node-to-node RPCs (Raft, write forwarding,
//! read-index, membership, status) as HTTP/2 over rustls mTLS on the peer
//! port, with compact binary (postcard) bodies.
//!
//! - [`client`]: one multiplexed HTTP/2 connection per peer, reconnected on
//!   failure; openraft's `RaftNetworkFactory` on top.
//! - [`server`]: the peer routes. The caller's node id is derived from its
//!   verified certificate and must match the sender named in the RPC.
//! - [`hello`]: the connectivity check (`/peer/v1/hello`).

pub mod client;
pub mod hello;
pub mod server;

pub use client::{Network, PeerClient, PeerError, Peers};

/// Content type of Raft RPC bodies.
pub const CONTENT_TYPE: &str = "application/x-enclave-raft";
