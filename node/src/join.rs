//! Joining a cluster with a one-time token, like kubeadm's
//! `--discovery-token-ca-cert-hash`: the new node never trusts on first use.
//!
//! 1. The joiner fetches the CA certificate over the peer port's join door
//!    (ALPN `enclave-join/1`, server-authenticated TLS) and checks its
//!    SHA-256 against `--ca-hash`. A mismatch stops the join.
//! 2. It connects again trusting only that CA, sends the token, its name,
//!    its addresses and a CSR (its private key never leaves it).
//! 3. The receiving node checks the token, consumes it through the Raft log
//!    (so it works exactly once, cluster-wide), signs the CSR if it holds
//!    the CA key, and adds the node as a learner, promoted once caught up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use enclave_certs::{CertKind, Validity};
use enclave_cluster::control::JoinTokenRecord;
use enclave_cluster::listener::{ConnInfo, JOIN_ALPN};
use enclave_cluster::types::{ControlCommand, ControlOutcome};
use enclave_cluster::types::{Member, Payload, ResponsePayload, node_id_of};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::http::ApiError;
use crate::http::NodeState;
use crate::http::{cluster_error, membership::add_and_promote};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    pub name: String,
    /// PEM CSR; absent when the node already has a certificate from the CA.
    #[serde(default)]
    pub csr: Option<String>,
    pub peer: String,
    pub api: String,
    pub admin: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JoinResponse {
    #[serde(default)]
    pub cert_pem: Option<String>,
    pub ca_pem: String,
    #[serde(default)]
    pub crl_pem: Option<String>,
    pub leader: Option<String>,
}

/// Routes behind the join door of the peer port.
pub fn router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/join/v1/ca", get(ca))
        .route("/join/v1/join", post(join))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 10))
        .with_state(state)
}

async fn ca(State(state): State<Arc<NodeState>>) -> Result<String, ApiError> {
    std::fs::read_to_string(&state.config.tls.ca).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ca_unreadable",
            e.to_string(),
        )
    })
}

fn refuse(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "join_refused", msg)
}

async fn join(
    State(state): State<Arc<NodeState>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    Json(req): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let Some(csr) = req.csr.clone() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "csr_required",
            "a join through the join door must carry a CSR; a node that already has a certificate rejoins over mTLS (enclave start --rebuild)",
        ));
    };
    enclave_certs::identity::validate_name("name", &req.name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    let (id, secret_sha256) =
        check_token(&state, &req.token).inspect_err(|e| note_refusal(&state, &conn, e))?;
    refuse_members(&state, &req.name).await?;
    // Sign the CSR before consuming the token: a node that cannot issue
    // certificates refuses without using up the token.
    let Some(dir) = &state.config.ca_dir else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_issue",
            "this node holds no CA key (tls.ca_dir); join through the node that does, or issue the node certificate offline with `enclavectl cert issue node` and add the node with `enclavectl cluster add`",
        ));
    };
    // During a CA rotation (`enclavectl ca rotate`), the new CA issues.
    let ca = enclave_certs::rotation::issuing_ca(dir)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ca", e.to_string()))?;
    let host = req
        .peer
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']'))
        .unwrap_or("");
    let ips = host.parse().map(|ip| vec![ip]).unwrap_or_default();
    let dns = if ips.is_empty() && !host.is_empty() {
        vec![host.to_string()]
    } else {
        vec![]
    };
    let kind = CertKind::Node {
        name: req.name.clone(),
        ips,
        dns,
    };
    let validity = Validity::days(enclave_certs::ca::DEFAULT_LEAF_DAYS)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ca", e.to_string()))?;
    let issued = ca
        .issue_for_csr(&kind, validity, &csr)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_csr", e.to_string()))?;
    admit(
        &state,
        &id,
        secret_sha256,
        Member {
            name: req.name.clone(),
            peer: req.peer,
            api: req.api,
            admin: req.admin,
        },
    )
    .await?;
    let crl_pem = state
        .config
        .tls
        .crl
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    Ok(Json(JoinResponse {
        cert_pem: Some(issued.cert_pem),
        ca_pem: std::fs::read_to_string(&state.config.tls.ca).unwrap_or_default(),
        crl_pem,
        leader: state.cluster.leader().map(|(_, m)| m.name),
    }))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejoinRequest {
    pub token: String,
    pub peer: String,
    pub api: String,
    pub admin: String,
}

/// Routes on the regular (mTLS, node certificates only) peer port.
pub fn rejoin_router(state: Arc<NodeState>) -> Router {
    Router::new()
        .route("/join/v1/rejoin", post(rejoin))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 10))
        .with_state(state)
}

/// A node that still holds its certificate (a rebuild) rejoins over mTLS:
/// its name comes from that certificate, never from the request.
async fn rejoin(
    State(state): State<Arc<NodeState>>,
    axum::Extension(conn): axum::Extension<ConnInfo>,
    Json(req): Json<RejoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let name = conn
        .identity
        .as_ref()
        .map(|i| i.name.clone())
        .ok_or_else(|| ApiError::unauthenticated("no client certificate"))?;
    let (id, secret_sha256) =
        check_token(&state, &req.token).inspect_err(|e| note_refusal(&state, &conn, e))?;
    refuse_members(&state, &name).await?;
    admit(
        &state,
        &id,
        secret_sha256,
        Member {
            name: name.clone(),
            peer: req.peer,
            api: req.api,
            admin: req.admin,
        },
    )
    .await?;
    Ok(Json(JoinResponse {
        cert_pem: None,
        ca_pem: std::fs::read_to_string(&state.config.tls.ca).unwrap_or_default(),
        crl_pem: None,
        leader: state.cluster.leader().map(|(_, m)| m.name),
    }))
}

/// Cheap local check first, so a bad token never costs a Raft write.
/// Count a refused join attempt for the audit trail (aggregated per source
/// and reason: the join door is reachable without a certificate).
fn note_refusal(state: &NodeState, conn: &ConnInfo, e: &ApiError) {
    state.note_denial(&conn.remote.ip().to_string(), "joiner", e.code);
}

fn check_token(state: &Arc<NodeState>, token: &str) -> Result<(String, Vec<u8>), ApiError> {
    let (id, secret) = token.trim().split_once('.').ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "a join token looks like <id>.<secret>",
        )
    })?;
    let secret_sha256 = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec();
    let rec = state
        .cluster
        .sm
        .control_view()
        .get(format!("tok/{id}").as_bytes())
        .ok()
        .flatten()
        .and_then(|b| enclave_cluster::store::unsealed::<JoinTokenRecord>(&b));
    match &rec {
        None => Err(refuse("unknown join token")),
        Some(r) if r.used_by.is_some() => Err(refuse("join token already used")),
        Some(r)
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                r.secret_sha256.as_slice(),
                secret_sha256.as_slice(),
            )) =>
        {
            Err(refuse("wrong join token secret"))
        }
        _ => Ok((id.to_string(), secret_sha256)),
    }
}

async fn refuse_members(state: &Arc<NodeState>, name: &str) -> Result<(), ApiError> {
    let status = state.cluster.status().await;
    let nid = node_id_of(name);
    if status
        .voters
        .iter()
        .chain(status.learners.iter())
        .any(|(i, _)| *i == nid)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_member",
            format!(
                "{name} is already a member; remove it first (enclavectl cluster remove {name})"
            ),
        ));
    }
    Ok(())
}

/// Consume the token through the log, then add the node.
async fn admit(
    state: &Arc<NodeState>,
    id: &str,
    secret_sha256: Vec<u8>,
    member: Member,
) -> Result<(), ApiError> {
    let cmd = ControlCommand::ConsumeJoinToken {
        id: id.to_string(),
        secret_sha256,
        node: member.name.clone(),
    };
    let outcome = state
        .cluster
        .write(Payload::Cluster(cmd), None)
        .await
        .map_err(cluster_error)?;
    match outcome.payload {
        ResponsePayload::Cluster(ControlOutcome::JoinTokenAccepted { .. }) => {}
        ResponsePayload::Cluster(ControlOutcome::JoinTokenRefused { reason }) => {
            return Err(refuse(reason));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected",
                format!("{other:?}"),
            ));
        }
    }
    let name = member.name.clone();
    add_and_promote(state, member).await?;
    tracing::info!(node = %name, token = id, "node admitted with a join token");
    Ok(())
}

/// Accepts any server certificate. Used only to download the CA
/// certificate, whose fingerprint is then checked against `--ca-hash`.
#[derive(Debug)]
struct PinLater(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinLater {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One request to a join endpoint, bounded in time (a node that accepts
/// the connection but never answers must not hang the joiner).
async fn call(
    url: &str,
    config: rustls::ClientConfig,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    // Token consumption and membership changes need a Raft round; allow for
    // an election on the way.
    tokio::time::timeout(
        Duration::from_secs(60),
        call_inner(url, config, method, path, body),
    )
    .await
    .with_context(|| format!("{url} did not answer {path} within 60 s"))?
}

async fn call_inner(
    url: &str,
    config: rustls::ClientConfig,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--join {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        bail!("--join must be https://HOST:PORT (the peer port of a cluster node)");
    }
    let host = uri
        .host()
        .context("--join URL has no host")?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = uri.port_u16().unwrap_or(7400);
    let mut config = config;
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = vec![JOIN_ALPN.to_vec()];
    }
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .with_context(|| format!("connecting to {host}:{port} timed out"))?
    .with_context(|| format!("connecting to {host}:{port}"))?;
    let name = ServerName::try_from(host.clone()).context("join host")?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {host}:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// What the joiner needs to know about itself.
#[derive(Debug, Clone)]
pub struct Joiner<'a> {
    pub url: &'a str,
    pub token: &'a str,
    pub ca_hash: &'a str,
    pub name: &'a str,
    pub member: Member,
    pub tls: &'a enclave_certs::TlsPaths,
    /// Rejoin with the certificate already in `tls` (rebuild).
    pub keep_certificate: bool,
}

/// Run the join protocol and write the node's TLS files.
pub async fn perform(j: Joiner<'_>) -> anyhow::Result<()> {
    enclave_certs::tls::install_default_provider();
    let provider = enclave_certs::tls::provider();
    let expected = j.ca_hash.trim().to_ascii_lowercase();
    if !expected.starts_with("sha256:") || expected.len() != 7 + 64 {
        bail!(
            "--ca-hash must look like sha256:<64 hex digits> (printed by `enclavectl ca init` and `cluster join-token`)"
        );
    }
    // 1. Fetch the CA and pin it.
    let pin_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinLater(provider.clone())))
        .with_no_client_auth();
    let (status, ca_pem) = call(j.url, pin_config, http::Method::GET, "/join/v1/ca", None).await?;
    if !status.is_success() {
        bail!(
            "{} did not hand out its CA certificate: HTTP {status}",
            j.url
        );
    }
    // During a CA rotation the node hands out a bundle (old + new CA): pin
    // the one whose fingerprint is --ca-hash and trust only it for now.
    // The whole bundle comes back in the join answer, over TLS verified
    // with the pinned CA.
    let bundle: Vec<CertificateDer<'static>> =
        rustls_pki_types::pem::PemObject::pem_slice_iter(&ca_pem)
            .collect::<Result<_, _>>()
            .context("the CA certificate the node sent is not PEM")?;
    let presented: Vec<String> = bundle
        .iter()
        .map(|c| enclave_certs::fingerprint(c))
        .collect();
    let Some(ca_der) = bundle
        .into_iter()
        .find(|c| enclave_certs::fingerprint(c) == expected)
    else {
        bail!(
            "CA fingerprint mismatch: --ca-hash is {expected} but {} presented {}; refusing to join (wrong cluster, or someone in the middle)",
            j.url,
            if presented.is_empty() {
                "no CA".to_string()
            } else {
                presented.join(", ")
            }
        );
    };
    // 2. Talk to the node trusting only that CA.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der)?;
    let trusted = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if j.keep_certificate {
        // Rejoin over the regular peer port, proving who we are with our
        // certificate (which must chain to the CA we just pinned).
        let material =
            enclave_certs::TlsMaterial::load_for_role(j.tls, &[enclave_certs::Role::Node])
                .context("loading this node's certificate for the rejoin")?;
        let mut config = enclave_certs::tls::client_config(&material)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let req = RejoinRequest {
            token: j.token.trim().to_string(),
            peer: j.member.peer.clone(),
            api: j.member.api.clone(),
            admin: j.member.admin.clone(),
        };
        let (status, body) = call(
            j.url,
            config,
            http::Method::POST,
            "/join/v1/rejoin",
            Some(serde_json::to_vec(&req)?),
        )
        .await?;
        if !status.is_success() {
            bail!("rejoin refused by {}: {}", j.url, refusal(&body));
        }
        tracing::info!(
            node = j.name,
            via = j.url,
            "rejoined the cluster with the existing certificate"
        );
        return Ok(());
    }
    let (key_pem, csr) = enclave_certs::ca::new_key_and_csr(j.name)?;
    let req = JoinRequest {
        token: j.token.trim().to_string(),
        name: j.name.to_string(),
        csr: Some(csr),
        peer: j.member.peer.clone(),
        api: j.member.api.clone(),
        admin: j.member.admin.clone(),
    };
    let (status, body) = call(
        j.url,
        trusted,
        http::Method::POST,
        "/join/v1/join",
        Some(serde_json::to_vec(&req)?),
    )
    .await?;
    if !status.is_success() {
        bail!("join refused by {}: {}", j.url, refusal(&body));
    }
    let resp: JoinResponse = serde_json::from_slice(&body).context("decoding the join answer")?;
    let cert_pem = resp
        .cert_pem
        .context("the node did not issue a certificate")?;
    write_bundle(
        j.tls,
        &key_pem,
        &cert_pem,
        &resp.ca_pem,
        resp.crl_pem.as_deref(),
    )?;
    tracing::info!(node = j.name, via = j.url, leader = ?resp.leader, "joined the cluster; certificate received");
    Ok(())
}

fn write_bundle(
    tls: &enclave_certs::TlsPaths,
    key: &str,
    cert: &str,
    ca: &str,
    crl: Option<&str>,
) -> anyhow::Result<()> {
    use enclave_certs::files::{write_public, write_secret};
    for p in [&tls.key, &tls.cert, &tls.ca] {
        if let Some(dir) = p.parent() {
            enclave_certs::files::create_private_dir(dir)?;
        }
    }
    write_secret(&tls.key, key.as_bytes())?;
    write_public(&tls.cert, cert.as_bytes())?;
    write_public(&tls.ca, ca.as_bytes())?;
    if let (Some(path), Some(crl)) = (&tls.crl, crl) {
        write_public(path, crl.as_bytes())?;
    }
    Ok(())
}

/// True if this data dir already has a node certificate (a restart after joining).
pub fn already_joined(tls: &enclave_certs::TlsPaths) -> bool {
    Path::new(&tls.cert).exists()
}

/// The message of an error answer in the one error shape, or the raw body.
fn refusal(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}
