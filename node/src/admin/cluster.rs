//! Cluster lifecycle on the admin port: init, status, members, join
//! tokens; and the diagnostic key-value store.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use enclave_cluster::error::ClusterError;
use enclave_cluster::node::{MembershipChange, NodeStatus};
use enclave_cluster::types::{ControlCommand, ControlOutcome};
use enclave_cluster::types::{Member, Payload, ResponsePayload, node_id_of};
use http::StatusCode;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{ApiError, NodeState, Params, cluster_error, membership::add_and_promote};
use crate::kv::{self, KvCommand, KvOutcome};

/// `POST /v1/cluster/init`: make this node a one-node cluster.
pub async fn init(
    State(state): State<Arc<NodeState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.cluster.is_initialized() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_initialized",
            "this node is already part of an initialized cluster",
        ));
    }
    state.cluster.initialize().await.map_err(cluster_error)?;
    // Wait (bounded) until this node leads its one-node cluster.
    let _ = state
        .cluster
        .raft
        .wait(Some(Duration::from_secs(10)))
        .state(openraft::ServerState::Leader, "cluster init")
        .await;
    tracing::info!(node = %state.node_id, "cluster initialized");
    Ok(Json(
        json!({ "initialized": true, "node": state.node_id, "id": state.cluster.id }),
    ))
}

/// One row of the cluster status: a node's own view, or why it could not be asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    pub id: u64,
    pub voter: bool,
    pub peer: String,
    pub admin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Entries this node is behind the leader's last log index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub initialized: bool,
    pub leader: Option<String>,
    pub term: u64,
    pub members: Vec<MemberStatus>,
    /// The answering node's own view.
    pub this_node: NodeStatus,
}

/// `GET /v1/cluster/status`: every member's view, asked over the peer port.
pub async fn status(State(state): State<Arc<NodeState>>) -> Json<ClusterStatus> {
    let me = state.cluster.status().await;
    let mut rows = ask_members(&state, &me).await;
    let leader_last = rows
        .iter()
        .filter_map(|r| r.status.as_ref())
        .find(|s| s.state == "leader")
        .and_then(|s| s.last_log_index);
    for r in &mut rows {
        if let (Some(l), Some(s)) = (leader_last, r.status.as_ref()) {
            r.lag = Some(l.saturating_sub(s.applied_index.unwrap_or(0)));
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let leader = me
        .leader
        .and_then(|l| rows.iter().find(|r| r.id == l).map(|r| r.name.clone()));
    Json(ClusterStatus {
        initialized: !me.voters.is_empty(),
        leader,
        term: me.term,
        members: rows,
        this_node: me,
    })
}

/// Every member's own status (this node's is `me`), asked over the peer
/// port at once, 2 s each; `lag` is left to the caller.
pub async fn ask_members(state: &Arc<NodeState>, me: &NodeStatus) -> Vec<MemberStatus> {
    let all: Vec<(u64, Member, bool)> = me
        .voters
        .iter()
        .map(|(i, m)| (*i, m.clone(), true))
        .chain(me.learners.iter().map(|(i, m)| (*i, m.clone(), false)))
        .collect();
    let mut handles = Vec::new();
    for (id, member, voter) in all {
        let state = state.clone();
        let mine = me.clone();
        handles.push(tokio::spawn(async move {
            let (status, error) = if id == state.cluster.id {
                (Some(mine), None)
            } else {
                let r: Result<NodeStatus, _> = state
                    .cluster
                    .peers
                    .get(id, &member)
                    .call("/raft/v1/status", &(), Duration::from_secs(2))
                    .await;
                match r {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            };
            MemberStatus {
                name: member.name.clone(),
                id,
                voter,
                peer: member.peer.clone(),
                admin: member.admin.clone(),
                status,
                error,
                lag: None,
            }
        }));
    }
    let mut rows = Vec::new();
    for h in handles {
        if let Ok(row) = h.await {
            rows.push(row);
        }
    }
    rows
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub name: String,
    pub peer: String,
    #[serde(default)]
    pub api: String,
    #[serde(default)]
    pub admin: String,
}

/// `POST /v1/cluster/members`: add a node (with a certificate already
/// issued for it) as a learner; it is promoted to voter once caught up.
pub async fn add_member(
    State(state): State<Arc<NodeState>>,
    Json(req): Json<AddMember>,
) -> Result<Json<serde_json::Value>, ApiError> {
    enclave_certs::identity::validate_name("name", &req.name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    for (field, v) in [("peer", &req.peer)] {
        if v.parse::<std::net::SocketAddr>().is_err() && !v.contains(':') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_address",
                format!("{field}: {v:?} is not host:port"),
            ));
        }
    }
    let member = Member {
        name: req.name.clone(),
        peer: req.peer,
        api: req.api,
        admin: req.admin,
    };
    add_and_promote(&state, member).await?;
    Ok(Json(
        json!({ "added": req.name, "id": node_id_of(&req.name), "state": "learner; promoted to voter once caught up" }),
    ))
}

/// `DELETE /v1/cluster/members/{name}`.
pub async fn remove_member(
    State(state): State<Arc<NodeState>>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = node_id_of(&name);
    let s = state.cluster.status().await;
    if !s
        .voters
        .iter()
        .chain(s.learners.iter())
        .any(|(i, _)| *i == id)
    {
        return Err(ApiError::not_found(format!("no member named {name:?}")));
    }
    if s.voters.len() == 1 && s.voters[0].0 == id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_voter",
            "cannot remove the last voter",
        ));
    }
    state
        .cluster
        .change_membership(MembershipChange::Remove { id })
        .await
        .map_err(cluster_error)?;
    Ok(Json(json!({ "removed": name })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub ttl_secs: u64,
}

/// `POST /v1/cluster/join-tokens`: a one-time token `<id>.<secret>`.
pub async fn join_token(
    State(state): State<Arc<NodeState>>,
    axum::Extension(conn): axum::Extension<enclave_cluster::listener::ConnInfo>,
    Json(req): Json<TokenRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !(60..=7 * 24 * 3600).contains(&req.ttl_secs) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_ttl",
            "ttl_secs must be between 60 (1 minute) and 604800 (7 days)",
        ));
    }
    let rng = ring::rand::SystemRandom::new();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill(&mut id)
        .and_then(|_| rng.fill(&mut secret))
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rng",
                "random source failed",
            )
        })?;
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    let cmd = ControlCommand::CreateJoinToken {
        id: id.clone(),
        secret_sha256: ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
            .as_ref()
            .to_vec(),
        ttl_ms: req.ttl_secs * 1000,
        created_by: conn
            .identity
            .map(|i| format!("{}:{}", i.role, i.name))
            .unwrap_or_default(),
    };
    let resp = state
        .cluster
        .write(Payload::Cluster(cmd), None)
        .await
        .map_err(cluster_error)?;
    match resp.payload {
        ResponsePayload::Cluster(ControlOutcome::JoinTokenCreated { expires_at_ms, .. }) => {
            Ok(Json(json!({
                "token": format!("{id}.{secret}"),
                "id": id,
                "expires_at": enclave_certs::inspect::rfc3339((expires_at_ms / 1000) as i64),
                "ca_hash": crate::admin::certs::active_ca_fingerprint(&state),
            })))
        }
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutOpts {
    /// Also answer the key's previous value (etcd's `prev_kv`).
    #[serde(default)]
    pub prev: bool,
}

/// The answer to `PUT /v1/kv/{key}`: `previous` only when asked for.
#[derive(Debug, Serialize)]
pub struct PutAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Option<Vec<u8>>>,
    pub index: u64,
}

/// `PUT /v1/kv/{key}[?prev=true]`: replicated write (diagnostics and
/// benchmarks).
pub async fn kv_put(
    State(state): State<Arc<NodeState>>,
    Path(key): Path<String>,
    Params(opts): Params<PutOpts>,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Json<PutAnswer>, ApiError> {
    kv::validate_key(&key).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", e))?;
    if body.len() > kv::MAX_VALUE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("value exceeds {} bytes", kv::MAX_VALUE),
        ));
    }
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(k) = &idem
        && (k.is_empty() || k.len() > 128)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1..=128 characters",
        ));
    }
    // Scoped to this store, so an operator's key can never collide with
    // (and replay) a member's send or a job step that uses the same text.
    let idem = idem.map(|k| format!("kv:{k}"));
    let value = body.to_vec();
    let cmd = crate::messaging::encode_kv(&if opts.prev {
        KvCommand::Put { key, value }
    } else {
        KvCommand::Set { key, value }
    });
    let resp = state
        .cluster
        .write(Payload::App(cmd), idem)
        .await
        .map_err(cluster_error)?;
    match resp.payload {
        ResponsePayload::App(b) => postcard::from_bytes::<KvOutcome>(&b)
            .map(|o| {
                Json(PutAnswer {
                    previous: opts.prev.then_some(o.previous),
                    index: o.index,
                })
            })
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decode", e.to_string())),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOpts {
    /// `local` (default) or `linearizable`.
    #[serde(default)]
    pub consistency: Option<String>,
}

/// `GET /v1/kv/{key}?consistency=linearizable`.
pub async fn kv_get(
    State(state): State<Arc<NodeState>>,
    Path(key): Path<String>,
    Params(opts): Params<ReadOpts>,
) -> Result<Json<serde_json::Value>, ApiError> {
    kv::validate_key(&key).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", e))?;
    crate::http::read_consistency(&state, opts.consistency.as_deref()).await?;
    let value = kv::get(&state.cluster.sm.view(), &key)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))?;
    match value {
        Some(v) => Ok(Json(
            json!({ "key": key, "value": String::from_utf8_lossy(&v) }),
        )),
        None => Err(ApiError::not_found(format!("no key {key:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub node: String,
}

/// `POST /v1/cluster/transfer-leader`: best-effort leadership transfer.
pub async fn transfer_leader(
    State(state): State<Arc<NodeState>>,
    Json(req): Json<TransferRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let target = node_id_of(&req.node);
    let result = match state.cluster.leader() {
        Some((l, _)) if l == state.cluster.id => state
            .cluster
            .transfer_leader(target)
            .await
            .map_err(cluster_error)?,
        Some((l, member)) => {
            let r: Result<Option<u64>, ClusterError> = state
                .cluster
                .peers
                .get(l, &member)
                .call("/raft/v1/transfer", &target, Duration::from_secs(30))
                .await
                .map_err(|e| cluster_error(e.into()))?;
            r.map_err(cluster_error)?
        }
        None => return Err(cluster_error(ClusterError::NoLeader)),
    };
    let s = state.cluster.status().await;
    let name = |id: u64| {
        s.voters
            .iter()
            .chain(s.learners.iter())
            .find(|(i, _)| *i == id)
            .map(|(_, m)| m.name.clone())
    };
    let leader = result.and_then(name);
    if leader.as_deref() == Some(req.node.as_str()) {
        Ok(Json(json!({ "leader": leader, "transferred": true })))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "transfer_incomplete",
            format!(
                "leadership did not move to {} (leader now: {}); retry when the cluster is quiet",
                req.node,
                leader.unwrap_or_else(|| "unknown".into())
            ),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    pub prefix: String,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/kv-keys?prefix=P&after=K&limit=N`: keys under a prefix, after a
/// linearizable read barrier (used to verify benchmarks and tests).
pub async fn kv_keys(
    State(state): State<Arc<NodeState>>,
    Params(q): Params<KeysQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    state.cluster.read_barrier().await.map_err(cluster_error)?;
    let view = state.cluster.sm.view();
    let prefix = format!("kv/{}", q.prefix);
    let after = q.after.map(|a| format!("kv/{a}"));
    let rows = view
        .scan(
            prefix.as_bytes(),
            after.as_deref().map(str::as_bytes),
            limit,
        )
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()))?;
    let keys: Vec<String> = rows
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[3..]).into_owned())
        .collect();
    let next = (keys.len() == limit)
        .then(|| keys.last().cloned())
        .flatten();
    Ok(Json(json!({ "keys": keys, "next": next })))
}
