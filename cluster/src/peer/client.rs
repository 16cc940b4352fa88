//! Outgoing peer connections and openraft's network traits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_certs::ReloadingClientConfig;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use super::CONTENT_TYPE;
use crate::types::{Member, NodeId, TypeConfig};

/// A shared, settable cluster id.
pub type ClusterIdCell = Arc<std::sync::RwLock<Option<String>>>;

/// Header carrying the sender's cluster id.
pub const CLUSTER_HEADER: &str = "x-enclave-cluster";

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("cannot reach {peer}: {detail}")]
    Unreachable { peer: String, detail: String },
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout { peer: String, timeout: Duration },
    #[error("{peer}: HTTP {status}: {detail}")]
    Status {
        peer: String,
        status: u16,
        detail: String,
    },
    #[error("{peer}: {detail}")]
    Transport { peer: String, detail: String },
    #[error("{peer}: cannot decode the answer: {detail}")]
    Decode { peer: String, detail: String },
}

/// A client for one peer: a single HTTP/2 connection, multiplexed.
pub struct PeerClient {
    member: Member,
    tls: Arc<ReloadingClientConfig>,
    cluster_id: ClusterIdCell,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("member", &self.member)
            .finish()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl PeerClient {
    pub fn new(
        member: Member,
        tls: Arc<ReloadingClientConfig>,
        cluster_id: ClusterIdCell,
    ) -> PeerClient {
        PeerClient {
            member,
            tls,
            cluster_id,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    pub fn member(&self) -> &Member {
        &self.member
    }

    fn unreachable(&self, detail: impl ToString) -> PeerError {
        PeerError::Unreachable {
            peer: self.member.to_string(),
            detail: detail.to_string(),
        }
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, PeerError> {
        let mut guard = self.conn.lock().await;
        if let Some(s) = guard.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        *guard = None;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.member.peer))
            .await
            .map_err(|_| self.unreachable("connect timed out"))?
            .map_err(|e| self.unreachable(e))?;
        let _ = tcp.set_nodelay(true);
        let mut config = (*self.tls.current()).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        // We verify that we reached the node we meant to, by its name.
        let name =
            ServerName::try_from(self.member.name.clone()).map_err(|e| self.unreachable(e))?;
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| self.unreachable("TLS handshake timed out"))?
        .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.unreachable(format!("HTTP/2: {e}")))?;
        let peer = self.member.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer, error = %e, "peer connection closed");
            }
        });
        *guard = Some(sender.clone());
        Ok(sender)
    }

    /// POST a raw body to `path`; the answer's body on 200.
    pub async fn call_raw(
        &self,
        path: &str,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let body: Bytes = body.into();
        let peer = self.member.to_string();
        let fut = async {
            let mut sender = self.sender().await?;
            let mut req = http::Request::post(format!("https://{}{path}", self.member.name))
                .header(http::header::CONTENT_TYPE, CONTENT_TYPE);
            if let Some(id) = self
                .cluster_id
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
            {
                req = req.header(CLUSTER_HEADER, id);
            }
            let req = req
                .body(Full::new(body))
                .map_err(|e| PeerError::Transport {
                    peer: peer.clone(),
                    detail: e.to_string(),
                })?;
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) => {
                    // Drop the broken connection; the next call reconnects.
                    *self.conn.lock().await = None;
                    return Err(PeerError::Transport {
                        peer: peer.clone(),
                        detail: e.to_string(),
                    });
                }
            };
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| PeerError::Transport {
                    peer: peer.clone(),
                    detail: e.to_string(),
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(PeerError::Status {
                    peer: peer.clone(),
                    status: status.as_u16(),
                    detail: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                });
            }
            Ok(bytes)
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout { peer, timeout }),
        }
    }

    /// POST `body` (postcard) to `path` and decode the postcard answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = postcard::to_stdvec(body).map_err(|e| PeerError::Transport {
            peer: self.member.to_string(),
            detail: e.to_string(),
        })?;
        let answer = self.call_raw(path, bytes, timeout).await?;
        postcard::from_bytes(&answer).map_err(|e| PeerError::Decode {
            peer: self.member.to_string(),
            detail: e.to_string(),
        })
    }
}

/// Connections to every peer, shared by Raft replication and forwarding.
#[derive(Debug)]
pub struct Peers {
    tls: Arc<ReloadingClientConfig>,
    /// This node's cluster id once known; sent with every peer RPC.
    pub cluster_id: ClusterIdCell,
    clients: Mutex<HashMap<NodeId, Arc<PeerClient>>>,
}

impl Peers {
    pub fn new(tls: Arc<ReloadingClientConfig>) -> Arc<Peers> {
        Arc::new(Peers {
            tls,
            cluster_id: Arc::new(std::sync::RwLock::new(None)),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// A second pool sharing another pool's cluster id (e.g. bulk
    /// transfers on connections of their own, apart from Raft's).
    pub fn sharing_cluster_id(
        tls: Arc<ReloadingClientConfig>,
        cluster_id: ClusterIdCell,
    ) -> Arc<Peers> {
        Arc::new(Peers {
            tls,
            cluster_id,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The client for `id`, (re)created if the member's address changed.
    pub fn get(&self, id: NodeId, member: &Member) -> Arc<PeerClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match clients.get(&id) {
            Some(c) if c.member() == member => c.clone(),
            _ => {
                let c = Arc::new(PeerClient::new(
                    member.clone(),
                    self.tls.clone(),
                    self.cluster_id.clone(),
                ));
                clients.insert(id, c.clone());
                c
            }
        }
    }

    /// Drop all connections (after a certificate rotation).
    pub fn reset(&self) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// openraft's network factory.
#[derive(Debug, Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerNet;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerNet {
        PeerNet {
            target,
            client: self.peers.get(target, node),
        }
    }
}

/// openraft's per-target network handle.
#[derive(Debug)]
pub struct PeerNet {
    target: NodeId,
    client: Arc<PeerClient>,
}

type RpcErr<E> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl PeerNet {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let ttl = option.hard_ttl();
        let answer: Result<Result<Resp, RaftError<NodeId, E>>, PeerError> =
            self.client.call(path, req, ttl).await;
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.client.member().clone(),
                remote,
            ))),
            Err(e @ PeerError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(PeerError::Timeout { .. }) => Err(RPCError::Timeout(Timeout {
                action: openraft::RPCTypes::AppendEntries,
                id: 0,
                target: self.target,
                timeout: ttl,
            })),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerNet {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.rpc("/raft/v1/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.rpc("/raft/v1/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.rpc("/raft/v1/vote", &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        // 100 ms doubling to 2 s: quick to notice a peer that came back,
        // quiet while it is down.
        Backoff::new(
            (0..).map(|i: u32| {
                Duration::from_millis(100u64.saturating_mul(1 << i.min(5)).min(2000))
            }),
        )
    }
}
