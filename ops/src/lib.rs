//! `enclavectl` internals and the Enclave client library.
#![forbid(unsafe_code)]

pub mod client;
pub mod cmd;

pub use client::{Client, ClientError, Session};
