//! Directory administration on the admin port (sysadmin): departments,
//! members, passwords, lockouts; the messaging policy (secadmin).
//! Administrators manage the directory; nothing here reads conversations.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::v1::auth::{check_password_rules, hash_password};
use crate::api::v1::directory::member_json;
use crate::api::v1::{Body, store_error, submit};
use crate::domain::{self, Command, Department, Done, Member, MemberPatch, MemberStatus, Policy};
use crate::http::ApiError;
use crate::server::NodeState;

type S = Arc<NodeState>;

/// The operator behind the request (from the verified client
/// certificate), for the audit record.
#[derive(Debug)]
pub struct OperatorOrigin(pub crate::audit::Origin);

impl axum::extract::FromRequestParts<S> for OperatorOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        operator_origin(&parts.extensions, &state.node_id)
            .map(OperatorOrigin)
            .ok_or_else(|| ApiError::forbidden("no operator certificate"))
    }
}

/// The audit origin of a request on the admin port: the operator named by
/// its verified client certificate.
fn operator_origin(ext: &http::Extensions, node: &str) -> Option<crate::audit::Origin> {
    let id = ext
        .get::<enclave_cluster::listener::ConnInfo>()
        .and_then(|c| c.identity.as_ref())?;
    Some(crate::http::origin(
        ext,
        crate::audit::ActorKind::Operator,
        &id.name,
        id.role.as_str(),
        node,
    ))
}

fn dept_id(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("{s:?} is not a department id (a positive integer)"),
        )
    })
}

/// `GET /v1/directory/departments`
pub async fn departments(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let d = domain::query::departments(&state.view()).map_err(store_error)?;
    Ok(Json(json!({ "departments": d })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptReq {
    /// Parent department; absent only for the root (id 1).
    pub parent: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub leaders: Vec<String>,
}

/// `PUT /v1/directory/departments/{id}`: create, rename or move.
pub async fn put_department(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
    Body(req): Body<DeptReq>,
) -> Result<Json<Value>, ApiError> {
    let dept = Department {
        id: dept_id(&id)?,
        parent: req.parent,
        name: req.name,
        order: req.order,
        leaders: req.leaders,
    };
    match submit(&state, &op.0, &Command::UpsertDepartment { dept }, None).await? {
        Done::Department(d) => Ok(Json(json!(d))),
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

/// `DELETE /v1/directory/departments/{id}`: only an empty department.
pub async fn delete_department(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = dept_id(&id)?;
    submit(&state, &op.0, &Command::DeleteDepartment { id }, None).await?;
    Ok(Json(json!({ "status": "deleted", "id": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMemberReq {
    pub userid: String,
    pub name: String,
    pub departments: Vec<u64>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub mobile: String,
    /// Initial password; the member must change it at first login.
    pub password: Option<String>,
}

fn member_done(done: Done) -> Result<Json<Value>, ApiError> {
    match done {
        Done::Member(m) => Ok(Json(member_json(&m))),
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

/// `POST /v1/directory/members`
pub async fn create_member(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(req): Body<CreateMemberReq>,
) -> Result<Json<Value>, ApiError> {
    let password_hash = match req.password {
        Some(p) => {
            check_password_rules(&p)?;
            Some(hash_password(p).await?)
        }
        None => None,
    };
    let member = Member {
        userid: req.userid,
        name: req.name,
        departments: req.departments,
        title: req.title,
        email: req.email,
        mobile: req.mobile,
        status: MemberStatus::Active,
    };
    member_done(
        submit(
            &state,
            &op.0,
            &Command::CreateMember {
                member,
                password_hash,
            },
            None,
        )
        .await?,
    )
}

/// `GET /v1/directory/members/{userid}`
pub async fn get_member(
    State(state): State<S>,
    Path(userid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.view();
    let m = domain::query::member(&view, &userid)
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no member {userid:?}")))?;
    let acct = domain::query::account(&view, &userid)
        .map_err(store_error)?
        .unwrap_or_default();
    let mut v = member_json(&m);
    v["has_password"] = json!(acct.password_hash.is_some());
    v["locked_until_ms"] = json!(acct.locked_until_ms);
    v["failed_logins"] = json!(acct.failed_logins);
    Ok(Json(v))
}

/// `PATCH /v1/directory/members/{userid}`
pub async fn update_member(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(patch): Body<MemberPatchReq>,
) -> Result<Json<Value>, ApiError> {
    let patch = MemberPatch {
        name: patch.name,
        departments: patch.departments,
        title: patch.title,
        email: patch.email,
        mobile: patch.mobile,
    };
    member_done(
        submit(
            &state,
            &op.0,
            &Command::UpdateMember { userid, patch },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatchReq {
    pub name: Option<String>,
    pub departments: Option<Vec<u64>>,
    pub title: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReq {
    pub status: MemberStatus,
}

/// `PUT /v1/directory/members/{userid}/status`: active, disabled or
/// departed. Disabling or departing revokes every session at once.
pub async fn set_status(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(req): Body<StatusReq>,
) -> Result<Json<Value>, ApiError> {
    member_done(
        submit(
            &state,
            &op.0,
            &Command::SetMemberStatus {
                userid,
                status: req.status,
            },
            None,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReq {
    pub password: String,
}

/// `PUT /v1/directory/members/{userid}/password`: set or reset; the member
/// must change it at next login, and their sessions are revoked.
pub async fn set_password(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
    Body(req): Body<PasswordReq>,
) -> Result<Json<Value>, ApiError> {
    check_password_rules(&req.password)?;
    let password_hash = hash_password(req.password).await?;
    submit(
        &state,
        &op.0,
        &Command::SetPassword {
            userid: userid.clone(),
            password_hash,
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "password_set", "userid": userid })))
}

/// `POST /v1/directory/members/{userid}/unlock`: lift a login lockout.
pub async fn unlock(
    State(state): State<S>,
    op: OperatorOrigin,
    Path(userid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::UnlockAccount {
            userid: userid.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!({ "status": "unlocked", "userid": userid })))
}

/// `GET /v1/policy`
pub async fn get_policy(State(state): State<S>) -> Result<Json<Value>, ApiError> {
    let p = domain::apply::policy(&state.view()).map_err(store_error)?;
    Ok(Json(json!(p)))
}

/// `PUT /v1/policy` (secadmin): limits, lockout, session lifetimes,
/// directory visibility — the same on every node.
pub async fn put_policy(
    State(state): State<S>,
    op: OperatorOrigin,
    Body(policy): Body<Policy>,
) -> Result<Json<Value>, ApiError> {
    submit(
        &state,
        &op.0,
        &Command::SetPolicy {
            policy: policy.clone(),
        },
        None,
    )
    .await?;
    Ok(Json(json!(policy)))
}

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
    crate::api::v1::Params(q): crate::api::v1::Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::api::v1::page_limit(q.limit, 1000, 10_000)?;
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
    let result: Result<u64, String> = crate::api::v1::write_app(&state, cmd, None).await?;
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
    let time_ms = crate::api::v1::now_ms();
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
        crate::api::v1::write_app(state, crate::messaging::encode_checkpoint(&cp), None).await?;
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
    crate::api::v1::Params(q): crate::api::v1::Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::api::v1::page_limit(q.limit, 1000, 10_000)?;
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

/// Append an audit record for an action done outside the domain (after
/// the action: cluster operations are not domain commands). A failure is
/// logged, never hidden.
pub async fn record(
    state: &NodeState,
    origin: &crate::audit::Origin,
    action: &str,
    target: &str,
    outcome: &str,
) {
    let cmd = crate::messaging::encode_record(origin, action, target, outcome);
    if let Err(e) = state
        .cluster
        .write(enclave_cluster::types::Payload::App(cmd), None)
        .await
    {
        tracing::error!(action, target, outcome, error = %e, "could not write the audit record");
    }
}

/// The audit action of an operator route that changes something outside
/// the domain (domain commands record themselves in apply).
fn admin_action(method: &http::Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("POST", "/v1/cluster/members") => "cluster.member.add",
        ("DELETE", "/v1/cluster/members/{name}") => "cluster.member.remove",
        ("POST", "/v1/cluster/transfer-leader") => "cluster.leader.transfer",
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
            record(&state, &origin, action, &path, &outcome).await;
        }
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
        record(
            state,
            &origin,
            "tls.rejected",
            &listener,
            &format!("{reason} x{n}"),
        )
        .await;
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
        record(state, &origin, action, &route, &format!("denied x{n}")).await;
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
            record(&state, &origin, "node.start", &state.node_id, &outcome).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
