//! Routes of the peer port (node-to-node). Every caller here has already
//! proven, at the handshake, that it holds a node certificate from the
//! cluster CA; the node name is taken from that certificate.

use axum::extract::Extension;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::listener::ConnInfo;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    /// This node's name.
    pub node: String,
    /// The caller's node name, as read from its certificate.
    pub caller: String,
}

/// The peer router; `node` is this node's name.
pub fn router(node: String) -> Router {
    Router::new().route(
        "/peer/v1/hello",
        get(move |Extension(conn): Extension<ConnInfo>| async move {
            Json(Hello {
                node,
                caller: conn.identity.map(|i| i.name).unwrap_or_default(),
            })
        }),
    )
}
