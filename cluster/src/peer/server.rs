//! Incoming peer RPCs. Every handler knows the caller's node id from its
//! verified certificate; Raft RPCs whose sender does not match are refused.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CONTENT_TYPE;
use crate::app::Application;
use crate::error::ForwardResult;
use crate::listener::ConnInfo;
use crate::node::{ClusterNode, MembershipChange};
use crate::types::{NodeId, Request, TypeConfig, node_id_of};

/// Largest RPC body: an append batch or a snapshot chunk (1 MiB default).
pub const MAX_RPC_BYTES: usize = 64 << 20;

fn encode<T: Serialize>(v: &T) -> Response {
    match postcard::to_stdvec(v) {
        Ok(b) => ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    postcard::from_bytes(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("malformed RPC body: {e}")).into_response())
}

/// The caller's node id, from its certificate.
fn caller(conn: &ConnInfo) -> Result<(NodeId, String), Response> {
    match &conn.identity {
        Some(id) => Ok((node_id_of(&id.name), id.name.clone())),
        None => Err((StatusCode::UNAUTHORIZED, "no client certificate").into_response()),
    }
}

/// The caller must be a current member (voter or learner): a removed node's
/// certificate still chains to the CA, but it may no longer forward writes,
/// read cluster state or steer membership.
fn require_member<A: Application>(node: &ClusterNode<A>, conn: &ConnInfo) -> Result<(), Response> {
    let (id, name) = caller(conn)?;
    let m = node.raft.metrics();
    let is_member = m
        .borrow()
        .membership_config
        .membership()
        .get_node(&id)
        .is_some();
    if is_member {
        Ok(())
    } else {
        tracing::warn!(caller = %name, "peer request from a node that is not a member; refused");
        Err((
            StatusCode::FORBIDDEN,
            format!("{name} is not a member of this cluster"),
        )
            .into_response())
    }
}

fn require_sender(conn: &ConnInfo, claimed: NodeId) -> Result<(), Response> {
    let (id, name) = caller(conn)?;
    if id == claimed {
        Ok(())
    } else {
        tracing::warn!(caller = %name, claimed, "peer RPC claims another node's identity; refused");
        Err((
            StatusCode::FORBIDDEN,
            format!("certificate {name} may not speak for node {claimed}"),
        )
            .into_response())
    }
}

/// Raft routes, merged into the peer router.
pub fn routes<A: Application>(node: Arc<ClusterNode<A>>) -> Router {
    Router::new()
        .route("/raft/v1/append", post(append::<A>))
        .route("/raft/v1/vote", post(vote::<A>))
        .route("/raft/v1/prevote", post(prevote::<A>))
        .route("/raft/v1/snapshot", post(snapshot::<A>))
        .route("/raft/v1/forward", post(forward::<A>))
        .route("/raft/v1/read-index", post(read_index::<A>))
        .route("/raft/v1/membership", post(membership::<A>))
        .route("/raft/v1/status", post(status::<A>))
        .route("/raft/v1/elect", post(elect::<A>))
        .route("/raft/v1/transfer", post(transfer::<A>))
        .layer(DefaultBodyLimit::max(MAX_RPC_BYTES))
        .layer(axum::middleware::from_fn(rpc_span))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            same_cluster::<A>,
        ))
        .with_state(node)
}

async fn append<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    let rpc: AppendEntriesRequest<TypeConfig> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = require_sender(&conn, rpc.vote.leader_id.node_id) {
        return e;
    }
    let answer = node.raft.append_entries(rpc).await;
    if matches!(&answer, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
    {
        node.note_leader_contact();
    }
    encode(&answer)
}

async fn vote<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    let rpc: VoteRequest<NodeId> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = require_sender(&conn, rpc.vote.leader_id.node_id) {
        return e;
    }
    let answer = node.raft.vote(rpc).await;
    if matches!(&answer, Ok(r) if r.vote_granted) {
        node.note_leader_contact();
    }
    encode(&answer)
}

/// "Would you vote for me?" (election.rs). Changes nothing here.
async fn prevote<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    let (id, name) = match caller(&conn) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let req: crate::election::PreVoteRequest = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let is_voter = node
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == id);
    let answer = if is_voter {
        node.prevote_answer(&req).await
    } else {
        // A learner, or a removed node that still believes it votes.
        crate::election::PreVoteAnswer::NotAVoter
    };
    tracing::debug!(candidate = %name, ?answer, "pre-vote");
    encode(&answer)
}

async fn snapshot<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    let rpc: InstallSnapshotRequest<TypeConfig> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = require_sender(&conn, rpc.vote.leader_id.node_id) {
        return e;
    }
    let answer = node.raft.install_snapshot(rpc).await;
    if answer.is_ok() {
        node.note_leader_contact();
    }
    encode(&answer)
}

/// A write forwarded by a follower. Any member may forward.
async fn forward<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    let req: Request = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    encode(&node.write_local(req).await)
}

async fn read_index<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    encode(&node.read_index_local().await)
}

async fn membership<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    let change: MembershipChange = match decode(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let result: Result<(), ForwardResult> = node.change_membership_local(change).await;
    encode(&result)
}

async fn status<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    encode(&node.status().await)
}

/// Leadership transfer: the leader asks this node to start an election
/// after `delay_ms` (once followers' leader leases have lapsed).
async fn elect<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    let delay_ms: u64 = match decode(&body) {
        Ok(d) => d,
        Err(e) => return e,
    };
    node.campaign_after(delay_ms);
    encode(&())
}

/// Transfer leadership (asked of the leader by another node's admin API).
async fn transfer<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Response {
    if let Err(e) = require_member(&node, &conn) {
        return e;
    }
    let target: NodeId = match decode(&body) {
        Ok(d) => d,
        Err(e) => return e,
    };
    encode(&node.transfer_leader(target).await)
}

/// A tracing span per Raft RPC: path, caller (from its certificate), status, time.
async fn rpc_span(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let caller = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.identity.as_ref())
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let span = tracing::debug_span!("raft_rpc", path = %req.uri().path(), caller, status = tracing::field::Empty, ms = tracing::field::Empty);
    let start = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("status", resp.status().as_u16());
    span.record("ms", start.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::trace!("rpc done"));
    resp
}

/// Refuse RPCs from another cluster under the same CA (e.g. a restored copy
/// reusing a live node's name and address). Nodes that do not know their
/// cluster id yet (joining) neither send nor check one.
async fn same_cluster<A: Application>(
    State(node): State<Arc<ClusterNode<A>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let theirs = req
        .headers()
        .get(crate::peer::client::CLUSTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ours = node.cluster_id();
    if let (Some(theirs), Some(ours)) = (&theirs, &ours)
        && theirs != ours
    {
        tracing::warn!(theirs, ours, path = %req.uri().path(), "peer RPC from another cluster; refused");
        return (
            StatusCode::CONFLICT,
            format!("request from cluster {theirs}, this node belongs to cluster {ours}"),
        )
            .into_response();
    }
    next.run(req).await
}
