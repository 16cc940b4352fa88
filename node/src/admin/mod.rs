//! The admin port (9443): `enclavectl` and Prometheus, mTLS with operator
//! and monitor certificates only. Each route names the roles it admits; the
//! role comes from the verified client certificate.

use std::sync::Arc;

use axum::extract::{Extension, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use enclave_certs::Role;
use enclave_cluster::listener::ConnInfo;
use serde::{Deserialize, Serialize};

pub mod apps;
pub mod audit;
pub mod backup;
pub mod certs;
pub mod cluster;
pub mod directory;
pub mod external;
pub mod files;
pub mod node;
pub mod notices;
pub mod office;

use crate::http::NodeState;
use crate::http::{ApiError, CertStatus, ListenStatus, not_found, trace_request};

/// Operator roles (everything but monitor).
pub const OPERATORS: &[Role] = &[Role::Sysadmin, Role::Secadmin, Role::Auditor];
/// The system administrator: directory, cluster, backups.
pub const SYSADMIN: &[Role] = &[Role::Sysadmin];
/// The security administrator: roles, certificates, security policy.
pub const SECADMIN: &[Role] = &[Role::Secadmin];
/// The auditor: reads and exports the audit trail, nothing else.
pub const AUDITOR: &[Role] = &[Role::Auditor];
/// Who may read notices: the sysadmin runs them, the auditor audits them.
pub const NOTICE_READERS: &[Role] = &[Role::Sysadmin, Role::Auditor];
/// Anyone allowed on the admin port, monitor included.
pub const ANY_ADMIN: &[Role] = &[Role::Sysadmin, Role::Secadmin, Role::Auditor, Role::Monitor];

pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route(
            "/v1/status",
            get(status).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/metrics",
            get(metrics).route_layer(middleware::from_fn_with_state(ANY_ADMIN, guard)),
        )
        .route(
            "/healthz",
            get(|| async { "ok\n" }).route_layer(middleware::from_fn_with_state(ANY_ADMIN, guard)),
        )
        .route(
            "/v1/tls",
            get(certs::show).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/tls/csr",
            post(certs::csr).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/tls/cert",
            put(certs::put_cert).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/tls/trust",
            put(certs::put_trust).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/backup",
            get(backup::create).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/cluster/state-hash",
            get(backup::state_hash).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/cluster/transfer-leader",
            post(cluster::transfer_leader)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/node/defrag",
            post(node::defrag).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/node/defrag",
            get(node::last).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/kv-keys",
            get(cluster::kv_keys).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/cluster/upgrade",
            get(crate::lifecycle::upgrade_route)
                .route_layer(middleware::from_fn_with_state(ANY_ADMIN, guard)),
        )
        .route(
            "/v1/cluster/version",
            post(crate::lifecycle::set_version_route)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/cluster/init",
            post(cluster::init).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/cluster/status",
            get(cluster::status).route_layer(middleware::from_fn_with_state(ANY_ADMIN, guard)),
        )
        .route(
            "/v1/cluster/members",
            post(cluster::add_member).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/cluster/members/{name}",
            delete(cluster::remove_member)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/cluster/join-tokens",
            post(cluster::join_token).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/kv/{key}",
            put(cluster::kv_put).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/kv/{key}",
            get(cluster::kv_get).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/directory/departments",
            get(directory::departments)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/directory/departments/{id}",
            put(directory::put_department)
                .delete(directory::delete_department)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/directory/members",
            post(directory::create_member)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/directory/members",
            get(directory::list_members)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/directory/members/{userid}",
            patch(directory::update_member)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/directory/members/{userid}",
            get(directory::get_member)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/directory/members/{userid}/status",
            put(directory::set_status).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/directory/members/{userid}/password",
            put(directory::set_password)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/directory/members/{userid}/permissions/{perm}",
            put(directory::grant_permission)
                .delete(directory::revoke_permission)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/blobs",
            get(files::status).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/blobs/verify",
            post(files::start_verify).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/blobs/verify",
            get(files::verify_status).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/policy/files",
            get(files::get_policy).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/policy/files",
            put(files::put_policy).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/policy/notices",
            get(directory::get_notice_policy)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/policy/notices",
            put(directory::put_notice_policy)
                .route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/notices",
            get(notices::list).route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/notices/{id}",
            get(notices::show).route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/notices/{id}/recipients",
            get(notices::recipients)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/notices/{id}/withdraw",
            post(notices::withdraw).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/announcements",
            get(office::announcements)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/announcements/{id}",
            get(office::announcement_show)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/announcements/{id}/readers",
            get(office::announcement_readers)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/announcements/{id}/readers.csv",
            get(office::announcement_export)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/announcements/{id}/withdraw",
            post(office::announcement_withdraw)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/approvals/templates",
            get(office::templates)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/approvals/templates/{id}",
            put(office::put_template).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/approvals/templates/{id}/disable",
            post(office::disable_template)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/approvals/templates/{id}/enable",
            post(office::enable_template)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/approvals/export.csv",
            get(office::export).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/approvals/{id}",
            get(office::approval)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/unassigned",
            get(external::unassigned)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/transfers",
            post(external::transfer).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/external/transfers",
            get(external::transfers)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/transfers/{id}",
            get(external::show_transfer)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/transfers/{id}/cancel",
            post(external::cancel_transfer)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/external/accounts",
            get(external::accounts)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/accounts/{userid}",
            get(external::account)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/accounts/{userid}/disabled",
            put(external::set_disabled)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/external/contacts",
            get(external::contacts)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/external/supervision",
            get(external::supervision)
                .route_layer(middleware::from_fn_with_state(NOTICE_READERS, guard)),
        )
        .route(
            "/v1/policy/external",
            get(external::get_policy).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/policy/external",
            put(external::put_policy).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/permissions/{perm}",
            get(directory::permission_holders)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/directory/members/{userid}/unlock",
            post(directory::unlock).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/audit",
            get(audit::audit_records).route_layer(middleware::from_fn_with_state(AUDITOR, guard)),
        )
        .route(
            "/v1/audit/archive",
            post(audit::audit_archive).route_layer(middleware::from_fn_with_state(AUDITOR, guard)),
        )
        .route(
            "/v1/audit/checkpoint",
            post(audit::audit_checkpoint)
                .route_layer(middleware::from_fn_with_state(AUDITOR, guard)),
        )
        .route(
            "/v1/audit/checkpoints",
            get(audit::audit_checkpoints)
                .route_layer(middleware::from_fn_with_state(AUDITOR, guard)),
        )
        .route(
            "/v1/policy",
            get(directory::get_policy)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/policy",
            put(directory::put_policy).route_layer(middleware::from_fn_with_state(SECADMIN, guard)),
        )
        .route(
            "/v1/apps",
            post(apps::create).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps",
            get(apps::list).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/apps/{agentid}",
            get(apps::show).route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .route(
            "/v1/apps/{agentid}/enable",
            post(apps::enable).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps/{agentid}/disable",
            post(apps::disable).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps/{agentid}/rotate-secret",
            post(apps::rotate_secret).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps/{agentid}/scopes",
            put(apps::set_scopes).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps/{agentid}/trusted-domains",
            put(apps::set_domains).route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .route(
            "/v1/apps/{agentid}/callback",
            put(apps::set_callback)
                .delete(apps::clear_callback)
                .route_layer(middleware::from_fn_with_state(SYSADMIN, guard)),
        )
        .merge(
            crate::http::assets::routes(crate::http::assets::Page::Console)
                .route_layer(middleware::from_fn_with_state(OPERATORS, guard)),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(crate::http::method_not_allowed_json))
        .layer(middleware::from_fn(same_origin_only))
        // axum's default body limit (2 MiB) applies on this port.
        .layer(middleware::from_fn_with_state(
            2usize << 20,
            crate::http::body::read_whole_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::audit_layer,
        ))
        .layer(middleware::from_fn(crate::http::admission::retry_after))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            trace_request,
        ))
        .with_state(state)
}

/// The operator behind the request (from the verified client
/// certificate), for the audit record.
#[derive(Debug)]
pub struct OperatorOrigin(pub crate::audit::Origin);

impl axum::extract::FromRequestParts<Arc<NodeState>> for OperatorOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &Arc<NodeState>,
    ) -> Result<Self, ApiError> {
        operator_origin(&parts.extensions, &state.node_id)
            .map(OperatorOrigin)
            .ok_or_else(|| ApiError::forbidden("no operator certificate"))
    }
}

/// The audit origin of a request on the admin port: the operator named by
/// its verified client certificate.
pub(crate) fn operator_origin(ext: &http::Extensions, node: &str) -> Option<crate::audit::Origin> {
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

/// Refuse requests a browser makes on another site's behalf.
///
/// A browser presents the operator's client certificate on every request
/// to the admin port, whichever page asked — like a cookie. Without this
/// guard, a page elsewhere (including the employees' client on the api
/// port: same site, other port) could make the operator's browser POST to
/// a body-less route (`/v1/apps/{id}/disable`, `/v1/audit/checkpoint`) or
/// start a backup with an `<img>`. So: a request a browser marks as coming
/// from another origin (`Sec-Fetch-Site: cross-site|same-site`) is refused,
/// except a top-level navigation to the console page itself; a write whose
/// `Origin` is not this port's origin is refused too (browsers without
/// Fetch Metadata). `enclavectl` and scripts send neither header.
async fn same_origin_only(req: Request, next: Next) -> Response {
    let h = req.headers();
    let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let site = value("sec-fetch-site");
    let navigation = req.method() == http::Method::GET
        && value("sec-fetch-mode") == "navigate"
        && matches!(req.uri().path(), "/" | "/index.html" | "/console.html");
    if matches!(site, "cross-site" | "same-site") && !navigation {
        return ApiError::forbidden(
            "the admin port accepts requests only from its own pages and from tools \
             (this one came from another site's page)",
        )
        .into_response();
    }
    let safe = matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    );
    if !safe && let Some(origin) = h.get(http::header::ORIGIN) {
        // HTTP/1.1 carries the host in `Host`, HTTP/2 in the URI's authority.
        let host = match req.uri().authority() {
            Some(a) => a.as_str(),
            None => value("host"),
        };
        let own = !host.is_empty() && origin.as_bytes() == format!("https://{host}").as_bytes();
        if !own {
            return ApiError::forbidden(format!(
                "a write from the page at {:?} is refused: the admin port accepts writes only \
                 from its own pages and from tools",
                origin.to_str().unwrap_or("?")
            ))
            .into_response();
        }
    }
    next.run(req).await
}

/// Route guard admitting only the roles in its state. Use as
/// `route_layer(from_fn_with_state(ROLES, guard))`.
async fn guard(State(roles): State<&'static [Role]>, req: Request, next: Next) -> Response {
    let caller = req
        .extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.identity.clone());
    match caller {
        Some(id) if roles.contains(&id.role) => next.run(req).await,
        Some(id) => {
            tracing::warn!(caller = %id.name, role = %id.role, path = %req.uri().path(), "authorization denied");
            ApiError::forbidden(format!(
                "role {} may not call {} {} (allowed: {})",
                id.role,
                req.method(),
                req.uri().path(),
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into_response()
        }
        None => ApiError::unauthenticated("no client certificate").into_response(),
    }
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Status {
    pub node_id: String,
    pub version: String,
    pub uptime_secs: u64,
    /// The node's Raft role: leader, follower, learner, candidate, or
    /// `uninitialized` before the node is part of a cluster.
    pub role: String,
    /// The CA that issued this node's certificate.
    pub ca_fingerprint: String,
    /// Every CA this node trusts (two while the CA is being rotated).
    #[serde(default)]
    pub ca_fingerprints: Vec<String>,
    pub certificate: CertStatus,
    /// Trust bundle, certificate and expiry warnings (30 days out).
    #[serde(default)]
    pub tls: certs::TlsStatus,
    pub listen: ListenStatus,
    /// Who asked, as read from the client certificate.
    pub caller: Caller,
    /// This node's blob store (file chunks).
    #[serde(default)]
    pub blobs: BlobUsage,
}

#[derive(Debug, Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
pub struct BlobUsage {
    pub bytes: u64,
    pub chunks: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

async fn status(
    State(state): State<Arc<NodeState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Json<Status>, ApiError> {
    let id = conn
        .identity
        .ok_or_else(|| ApiError::unauthenticated("no client certificate"))?;
    let cert = state.cert_status();
    Ok(Json(Status {
        node_id: state.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.metrics.started.elapsed().as_secs(),
        role: if state.cluster.is_initialized() {
            state.cluster.status().await.state
        } else {
            "uninitialized".into()
        },
        ca_fingerprint: certs::active_ca_fingerprint(&state),
        ca_fingerprints: certs::ca_fingerprints(&state),
        certificate: cert,
        tls: certs::tls_status(&state),
        listen: state.bound.clone(),
        caller: Caller {
            name: id.name,
            role: id.role,
        },
        blobs: {
            let (bytes, chunks) = state.blobs.store.usage();
            BlobUsage { bytes, chunks }
        },
    }))
}

async fn metrics(State(state): State<Arc<NodeState>>) -> impl IntoResponse {
    let s = state.cluster.status().await;
    let m = &state.metrics;
    m.raft_term.set(s.term as i64);
    m.raft_is_leader.set(i64::from(s.state == "leader"));
    m.raft_last_log_index
        .set(s.last_log_index.unwrap_or(0) as i64);
    m.raft_applied_index
        .set(s.applied_index.unwrap_or(0) as i64);
    m.raft_voters.set(s.voters.len() as i64);
    m.store_bytes.set(s.store_bytes as i64);
    m.snapshot_bytes.set(s.snapshot_bytes as i64);
    m.log_bytes_since_snapshot
        .set(s.log_bytes_since_snapshot as i64);
    {
        use std::sync::atomic::Ordering::Relaxed;
        let (bytes, chunks) = state.blobs.store.usage();
        m.blob_bytes.set(bytes as i64);
        m.blob_chunks.set(chunks as i64);
        m.blob_missing.set(state.blobs.missing.load(Relaxed) as i64);
        m.blob_repaired
            .set(state.blobs.repaired_total.load(Relaxed) as i64);
        m.blob_damaged
            .set(state.blobs.damaged_total.load(Relaxed) as i64);
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
