//! The `enclave` node daemon: configuration, listeners and HTTP APIs.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod defrag;
pub mod dev;
pub mod domain;
pub mod http;
pub mod join;
pub mod kv;
pub mod lifecycle;
pub mod messaging;
pub mod metrics;
pub mod runner;
pub mod sdnotify;
pub mod server;
pub mod syslog;
pub mod telemetry;
pub mod wecom;
