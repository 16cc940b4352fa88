//! The audit trail on the admin port (auditor): reading, archiving and
//! checkpointing the chain; and what the admin port itself records — the
//! operator actions outside the domain, aggregated authorization denials
//! and refused TLS handshakes, node starts — plus the leader's checkpoint
//! loop.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OperatorOrigin, operator_origin};
use crate::http::{ApiError, Body, NodeState, Params, S, page_limit, store_error, write_app};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records with a sequence number above this (default 0).
    pub after: Option<u64>,
    pub limit: Option<usize>,
    /// Only records whose actor id is this.
    pub actor: Option<String>,
    /// Only records whose action starts with this (e.g. `auth.`).
    pub action: Option<String>,
    /// Only records at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only records before this time (ms since the Unix epoch).
    pub until_ms: Option<u64>,
}

/// `GET /v1/audit?after=&limit=` (auditor only): records in chain order,
/// each with its hash, and the chain's head.
pub async fn audit_records(
    State(state): State<S>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 1000, 10_000)?;
    // An auditor reading now sees the denials counted so far.
    flush_denials(&state).await;
    let view = state.view();
    let filtered =
        q.actor.is_some() || q.action.is_some() || q.since_ms.is_some() || q.until_ms.is_some();
    let keep = |l: &crate::audit::Linked| {
        let r = &l.record;
        q.actor.as_ref().is_none_or(|a| &r.origin.id == a)
            && q.action
                .as_ref()
                .is_none_or(|a| r.action.starts_with(a.as_str()))
            && q.since_ms.is_none_or(|t| r.time_ms >= t)
            && q.until_ms.is_none_or(|t| r.time_ms < t)
    };
    let mut records = Vec::new();
    let mut after = q.after.unwrap_or(0);
    loop {
        let page = crate::audit::records(&view, after, if filtered { 10_000 } else { limit })
            .map_err(store_error)?;
        let Some(last) = page.last().map(|l| l.record.seq) else {
            break;
        };
        after = last;
        records.extend(page.into_iter().filter(|l| keep(l)));
        if !filtered || records.len() >= limit {
            break;
        }
    }
    records.truncate(limit);
    let (seq, hash) = crate::audit::head(&view).map_err(store_error)?;
    let (bseq, bhash) = crate::audit::base(&view).map_err(store_error)?;
    Ok(Json(json!({
        "records": records,
        "head": { "seq": seq, "hash": hex::encode(hash) },
        "base": { "seq": bseq, "hash": hex::encode(bhash) },
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveReq {
    /// Archive records up to and including this one.
    pub upto_seq: u64,
    /// SHA-256 (hex) of the verified export that holds them.
    pub export_sha256: String,
}

/// `POST /v1/audit/archive` (auditor): move records older than the
/// retention out of the chain, anchoring the export's hash in it.
pub async fn audit_archive(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<ArchiveReq>,
) -> Result<Json<Value>, ApiError> {
    let cmd = crate::messaging::encode_archive(&op.0, req.upto_seq, &req.export_sha256);
    let result: Result<u64, String> = write_app(&state, cmd, None).await?;
    match result {
        Ok(upto) => Ok(Json(json!({ "archived_upto": upto }))),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "archive_refused", e)),
    }
}

/// Records after which the leader signs a checkpoint without waiting for
/// the interval.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// Sign the chain's head on this node and commit the checkpoint.
pub async fn make_checkpoint(state: &NodeState) -> Result<crate::audit::Checkpoint, ApiError> {
    let (seq, hash) = crate::audit::head(&state.view()).map_err(store_error)?;
    if seq == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "empty_chain",
            "the audit chain has no records yet",
        ));
    }
    let signer =
        enclave_certs::sign::NodeSigner::load(&state.config.tls.key, &state.config.tls.cert)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "signing_key",
                    e.to_string(),
                )
            })?;
    let hash = hex::encode(hash);
    let time_ms = crate::http::now_ms();
    let signature = signer
        .sign(&crate::audit::checkpoint_message(seq, &hash, time_ms))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "signing", e.to_string()))?;
    let cp = crate::audit::Checkpoint {
        seq,
        hash,
        time_ms,
        signer: signer.name.clone(),
        cert: hex::encode(&signer.cert_der),
        signature: hex::encode(signature),
    };
    let result: Result<(), String> =
        write_app(state, crate::messaging::encode_checkpoint(&cp), None).await?;
    match result {
        Ok(()) => Ok(cp),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "checkpoint_refused", e)),
    }
}

/// `POST /v1/audit/checkpoint` (auditor): a signed checkpoint over the
/// current head, e.g. to close an export.
pub async fn audit_checkpoint(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(make_checkpoint(&state).await?)))
}

/// `GET /v1/audit/checkpoints?after=&limit=` (auditor)
pub async fn audit_checkpoints(
    State(state): State<S>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, 1000, 10_000)?;
    let cps = crate::audit::checkpoints(&state.view(), q.after.unwrap_or(0), limit)
        .map_err(store_error)?;
    Ok(Json(json!({ "checkpoints": cps })))
}

/// On the leader: sign a checkpoint when the chain has grown since the
/// last one and `interval` has passed, or at once when it has grown by
/// [`CHECKPOINT_EVERY`] records.
pub async fn checkpoint_loop(
    state: Arc<NodeState>,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.tick().await;
    let mut last_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if state.cluster.leader().map(|(id, _)| id) != Some(state.cluster.id) {
            continue;
        }
        let view = state.view();
        let (Ok((head, _)), Ok(last)) = (
            crate::audit::head(&view),
            crate::audit::last_checkpoint_seq(&view),
        ) else {
            continue;
        };
        let due = head > last && (last_at.elapsed() >= interval || head - last >= CHECKPOINT_EVERY);
        if due {
            last_at = tokio::time::Instant::now();
            if let Err(e) = make_checkpoint(&state).await {
                tracing::warn!(code = e.code, error = %e.message, "audit checkpoint failed");
            }
        }
    }
}

/// The audit action of an operator route that changes something outside
/// the domain (domain commands record themselves in apply).
fn admin_action(method: &http::Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("POST", "/v1/cluster/members") => "cluster.member.add",
        ("DELETE", "/v1/cluster/members/{name}") => "cluster.member.remove",
        ("POST", "/v1/cluster/transfer-leader") => "cluster.leader.transfer",
        ("POST", "/v1/node/defrag") => "node.defrag",
        ("GET", "/v1/backup") => "backup.create",
        ("POST", "/v1/audit/checkpoint") => "audit.checkpoint",
        ("GET", "/v1/audit") => "audit.read",
        _ => return None,
    })
}

/// Admin-port layer: records operator actions outside the domain, and
/// counts authorization denials (written as aggregated records by
/// [`denial_loop`], so a flood of refused requests cannot flood the chain).
pub async fn audit_layer(
    State(state): State<S>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let path = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_string(),
    };
    let origin = operator_origin(req.extensions(), &state.node_id);
    let resp = next.run(req).await;
    let status = resp.status();
    let mut recording = None;
    if let Some(origin) = origin {
        if status == StatusCode::FORBIDDEN {
            state.note_denial(&origin.id, &origin.role, &format!("{method} {route}"));
        } else if let Some(action) = admin_action(&method, &route)
            && status != StatusCode::SERVICE_UNAVAILABLE
        {
            let outcome = if status.is_success() {
                "ok".to_string()
            } else {
                format!("failed:{}", status.as_u16())
            };
            recording = Some((origin, action, outcome));
        }
    }
    // An accepted `POST /v1/node/defrag` restarts the node, once its
    // audit record is written.
    let restart = resp
        .extensions()
        .get::<super::node::RestartAfterAnswer>()
        .is_some();
    if recording.is_some() || restart {
        // In a task of its own: a client that hangs up now (which drops
        // this request's future) must not cancel the record of an action
        // that was taken, nor the restart of an accepted defrag.
        let state = state.clone();
        let job = tokio::spawn(async move {
            if let Some((origin, action, outcome)) = recording {
                crate::http::record(&state, &origin, action, &path, &outcome).await;
            }
            if restart {
                super::node::restart_after_answer(&state);
            }
        });
        let _ = job.await;
    }
    resp
}

/// Write the denials counted since the last pass, one record per
/// (operator, route), every `interval`.
pub async fn denial_loop(
    state: Arc<NodeState>,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        flush_denials(&state).await;
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Write the denials and refused TLS handshakes counted so far as
/// aggregated records.
pub async fn flush_denials(state: &NodeState) {
    if !state.cluster.is_initialized() {
        // Nowhere to write yet; the counts wait (bounded).
        return;
    }
    for ((listener, reason, source), n) in state.metrics.listeners.take_refusals() {
        let origin = crate::audit::Origin {
            kind: crate::audit::ActorKind::System,
            id: "tls".into(),
            role: String::new(),
            source,
            node: state.node_id.clone(),
            request_id: String::new(),
        };
        crate::http::record(
            state,
            &origin,
            "tls.rejected",
            &listener,
            &format!("{reason} x{n}"),
        )
        .await;
    }
    let calls: Vec<_> =
        std::mem::take(&mut *state.app_calls.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .collect();
    for ((agentid, name, what), n) in calls {
        let origin = crate::audit::Origin {
            kind: crate::audit::ActorKind::App,
            id: agentid,
            role: name,
            source: String::new(),
            node: state.node_id.clone(),
            request_id: String::new(),
        };
        // `what` ends with the WeCom errcode of the answer.
        let action = if what.ends_with(" 48002") {
            "authz.denied"
        } else {
            "app.call"
        };
        crate::http::record(state, &origin, action, &what, &format!("x{n}")).await;
    }
    let batch: Vec<_> =
        std::mem::take(&mut *state.denials.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .collect();
    for ((id, role, route), n) in batch {
        let origin = crate::audit::Origin {
            kind: crate::audit::ActorKind::Operator,
            id,
            role,
            source: String::new(),
            node: state.node_id.clone(),
            request_id: String::new(),
        };
        let action = if origin.role == "joiner" {
            "cluster.join_token.refused"
        } else {
            "authz.denied"
        };
        crate::http::record(state, &origin, action, &route, &format!("denied x{n}")).await;
    }
}

/// Record this node's start and the digest of its effective configuration
/// (so a configuration change shows in the audit trail as a new digest),
/// once the cluster can take the record.
pub async fn start_record(state: Arc<NodeState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let digest = serde_json::to_vec(&state.config)
        .map(|b| hex::encode(ring::digest::digest(&ring::digest::SHA256, &b)))
        .unwrap_or_default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if state.cluster.is_initialized() && state.cluster.leader().is_some() {
            let origin = crate::audit::Origin::system(&state.node_id);
            let outcome = format!(
                "version {} config sha256:{digest}",
                env!("CARGO_PKG_VERSION")
            );
            crate::http::record(&state, &origin, "node.start", &state.node_id, &outcome).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
