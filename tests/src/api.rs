//! A client of the api port (bearer tokens, JSON) and of its WebSocket
//! stream, for the messaging tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use enclave_ops::Client;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::TestCluster;

/// One api port, trusted through the cluster CA.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    pub ca: PathBuf,
    client: Client,
}

impl Api {
    pub fn new(url: &str, ca: &Path) -> Api {
        Api {
            url: url.to_string(),
            ca: ca.to_path_buf(),
            client: Client::anonymous(url, ca)
                .expect("client")
                .with_timeout(Duration::from_secs(20)),
        }
    }

    /// Any request; returns the status and the JSON body (or the raw text
    /// as a JSON string when it is not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let (status, bytes) = self
            .client
            .session()
            .request(method, path, body, &headers)
            .await
            .expect("request");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status.as_u16(), v)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let ct = body.as_ref().map(|_| "application/json");
        self.raw(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
            ct,
        )
        .await
    }

    /// Log in; panics unless it works.
    pub async fn login(&self, userid: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({ "userid": userid, "password": password })),
            )
            .await;
        assert_eq!(s, 200, "login {userid}: {v}");
        v["access_token"].as_str().expect("token").to_string()
    }

    /// Send a 1:1 message with a client id; returns the message.
    pub async fn send_direct(&self, token: &str, to: &str, text: &str, id: &str) -> Value {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/v1/direct/{to}/messages"),
                Some(token),
                Some(json!({ "text": text, "client_msg_id": id })),
            )
            .await;
        assert_eq!(s, 200, "send: {v}");
        v
    }

    /// A raw TLS connection to the api port (server-authenticated, as a
    /// browser or SDK connects), for tests that control every byte.
    pub async fn raw_tls(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let addr = self.url.trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca).expect("ca");
        for c in rustls_pemfile_certs(&pem) {
            roots.add(c).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").expect("name"),
                tcp,
            )
            .await
            .expect("tls")
    }

    /// Open the live stream from `since`.
    pub async fn stream(&self, token: &str, since: Option<&str>) -> Stream {
        let addr = self.url.trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&self.ca).expect("ca");
        for c in rustls_pemfile_certs(&pem) {
            roots.add(c).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").expect("name"),
                tcp,
            )
            .await
            .expect("tls");
        let mut url = format!("wss://{addr}/v1/stream");
        if let Some(s) = since {
            url.push_str(&format!("?since={s}"));
        }
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::client_async(req, tls)
            .await
            .expect("websocket handshake");
        Stream { ws, token: None }
    }
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A live stream; remembers the token of the last event.
pub struct Stream {
    ws: Ws,
    pub token: Option<String>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("token", &self.token)
            .finish()
    }
}

impl Stream {
    /// The next JSON frame (pings skipped), or None on close/timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next()).await.ok()??;
            match msg.ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).ok()?;
                    if let Some(tok) = v["token"].as_str() {
                        self.token = Some(tok.to_string());
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Frames until `{"type":"synced"}`, returning the events before it.
    pub async fn until_synced(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self
                .next(Duration::from_secs(20))
                .await
                .expect("stream open");
            if v["type"] == "synced" {
                return out;
            }
            out.push(v);
        }
    }

    /// Message events only, until `n` of them arrived (bounded wait).
    pub async fn messages(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(v) = self.next(left).await else {
                break;
            };
            if v["type"] == "message" {
                out.push(v);
            }
        }
        out
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
    }
}

/// Set up a directory on `cluster`: root department and `users` with
/// `password`, through the admin port of node `via`.
pub async fn seed_directory(cluster: &TestCluster, via: usize, users: &[&str], password: &str) {
    let admin = cluster.admin(via);
    let (s, b) = admin
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(json!({ "name": "Enterprise" }).to_string().into_bytes()),
        )
        .await
        .expect("dept");
    assert!(
        s.is_success(),
        "root department: {s} {}",
        String::from_utf8_lossy(&b)
    );
    for u in users {
        let body = json!({ "userid": u, "name": format!("User {u}"), "departments": [1], "password": password });
        let (s, b) = admin
            .request(
                Method::POST,
                "/v1/directory/members",
                Some(body.to_string().into_bytes()),
            )
            .await
            .expect("member");
        assert!(
            s.is_success(),
            "member {u}: {s} {}",
            String::from_utf8_lossy(&b)
        );
    }
}
