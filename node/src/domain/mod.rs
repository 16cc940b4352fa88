//! The messaging domain: directory, accounts and sessions, conversations,
//! messages, receipts and the event stream clients sync from.
//!
//! A pure, deterministic state machine. [`apply`] takes the stored state
//! (through the small [`Store`] trait), a [`Ctx`] decided once by the
//! leader (log position, time) and a [`Command`], and returns an
//! [`Outcome`] plus the [`Event`]s it produced. No clock, no randomness, no
//! I/O: the same log gives byte-identical state on every node, which the
//! property tests in `tests.rs` check against an in-memory store.
//!
//! Everything a client may be told (errors included) is decided here, so
//! every node gives the same answer to the same command.

pub mod announcements;
pub mod apply;
pub mod approvals;
pub mod command;
pub mod external;
pub mod files;
pub mod integration;
pub mod keys;
pub mod model;
pub mod names;
pub mod notices;
pub mod query;
pub mod store;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_apps;
#[cfg(test)]
mod tests_external;
#[cfg(test)]
mod tests_files;
#[cfg(test)]
mod tests_format;
#[cfg(test)]
mod tests_notices;
#[cfg(test)]
mod tests_office;
#[cfg(test)]
mod tests_sync;

pub use apply::apply;
pub use files::{BlobRecord, FileKind, FilePolicy, FileRef};
pub use model::*;
pub use store::{MemStore, Store, StoreFault};

/// Facts about a command decided once by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// Leader-stamped wall-clock time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The integrated app that issued the command, if one did (from the
    /// command's origin): checked at apply, and told apart from the apps
    /// that are notified of the change.
    pub app: Option<u32>,
}
