//! The shared HTTP layer every face builds on: the node state handed to
//! handlers, extractors, the one error shape, `submit` (the path of every
//! write), request tracing and metrics, rate limits, passwords and tokens.
//!
//! It imports no face. The faces — `api` (employees), `wecom` (the
//! `/cgi-bin` dialect for integrations), `admin` (operators) — import this
//! layer and never each other; `server.rs` only assembles them.

pub mod accounts;
pub mod admission;
pub mod assets;
pub mod body;
pub mod cors;
pub mod error;
pub mod extract;
pub mod files;
pub mod limits;
pub mod membership;
pub mod office;
pub mod reads;
pub mod state;
pub mod submit;
pub mod trace;
pub mod views;

pub use error::{
    ApiError, cluster_error, method_not_allowed_json, not_found, refusal, store_error,
};
pub use extract::{Body, Params, choose, header_key, page_limit, scoped_key};
pub use limits::Limits;
pub use reads::{find_or_catch_up, read_consistency};
pub use state::{CertStatus, ListenStatus, NodeState, now_ms};
pub use submit::{record, submit, write_app};
pub use trace::{RequestId, origin, trace_request};

/// The state handle as handlers take it.
pub type S = std::sync::Arc<NodeState>;
