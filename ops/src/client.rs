//! The one client for Enclave's HTTPS ports, used by `enclavectl`, the
//! cross-process tests and the benchmarks.
//!
//! It checks its own certificate bundle before connecting (so a wrong CA,
//! an expired or mismatched certificate is reported against the file), and
//! translates TLS alerts from the server into errors that say which file the
//! server refused and why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use enclave_certs::{CertError, TlsMaterial, TlsPaths};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// Why a call failed. Each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("invalid endpoint {endpoint:?}: {detail} (expected https://HOST:PORT)")]
    Endpoint { endpoint: String, detail: String },
    #[error("cannot connect to {endpoint}: {error}")]
    Connect {
        endpoint: String,
        error: std::io::Error,
    },
    #[error("{endpoint} refused the client certificate {cert}: {reason}")]
    Refused {
        endpoint: String,
        cert: PathBuf,
        reason: String,
    },
    #[error("{endpoint} presented a certificate that {ca} does not vouch for: {detail}")]
    UntrustedServer {
        endpoint: String,
        ca: PathBuf,
        detail: String,
    },
    #[error("TLS with {endpoint} failed: {detail}")]
    Tls { endpoint: String, detail: String },
    #[error("{endpoint} did not answer within {0:?}", .timeout)]
    Timeout { endpoint: String, timeout: Duration },
    #[error("{method} {path}: HTTP {status}: {code}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("{endpoint}: {detail}")]
    Http { endpoint: String, detail: String },
    #[error("{path}: unexpected response: {detail}")]
    Decode { path: String, detail: String },
}

/// A persistent connection (see [`Client::session`]).
pub struct Session {
    client: Client,
    conn: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.client.endpoint)
            .finish()
    }
}

impl Session {
    /// Send a request on the open connection (opening one if needed).
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.request_with_headers(method, path, body, headers)
            .await
            .map(|(s, _, b)| (s, b))
    }

    /// [`Session::request`], also returning the response headers.
    pub async fn request_with_headers(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        let fut = async {
            if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
                let (sender, _task) = self.client.open().await?;
                self.conn = Some(sender);
            }
            let Some(sender) = self.conn.as_mut() else {
                return Err(ClientError::Http {
                    endpoint: self.client.endpoint.clone(),
                    detail: "no connection".into(),
                });
            };
            sender
                .ready()
                .await
                .map_err(|e| self.client.hyper_error(&e))?;
            let mut req = Request::builder().method(method).uri(path).header(
                http::header::HOST,
                format!("{}:{}", self.client.host, self.client.port),
            );
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| ClientError::Http {
                    endpoint: self.client.endpoint.clone(),
                    detail: e.to_string(),
                })?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| self.client.hyper_error(&e))?;
            let status = resp.status();
            let head = resp.headers().clone();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.client.hyper_error(&e))?
                .to_bytes();
            Ok((status, head, bytes))
        };
        let r = match tokio::time::timeout(self.client.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                endpoint: self.client.endpoint.clone(),
                timeout: self.client.timeout,
            }),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

/// A client for one endpoint with one certificate bundle.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    cert_path: Option<PathBuf>,
    ca_path: PathBuf,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("cert", &self.cert_path)
            .field("ca", &self.ca_path)
            .finish()
    }
}

impl Client {
    /// A client presenting the bundle in `cert_dir` (`ca.pem`, `cert.pem`,
    /// `key.pem`, optionally `crl.pem`).
    pub fn with_cert_dir(endpoint: &str, cert_dir: &Path) -> Result<Client, ClientError> {
        Client::with_paths(endpoint, &TlsPaths::from_dir(cert_dir))
    }

    pub fn with_paths(endpoint: &str, paths: &TlsPaths) -> Result<Client, ClientError> {
        enclave_certs::tls::install_default_provider();
        let material = TlsMaterial::load(paths)?;
        let config = enclave_certs::tls::client_config(&material)?;
        Client::build(endpoint, config, Some(paths.cert.clone()), paths.ca.clone())
    }

    /// Like [`Client::with_cert_dir`] but without checking the bundle first:
    /// presents whatever is there and lets the server judge it. For tests
    /// and diagnostics.
    pub fn unchecked_cert_dir(endpoint: &str, cert_dir: &Path) -> Result<Client, ClientError> {
        enclave_certs::tls::install_default_provider();
        let paths = TlsPaths::from_dir(cert_dir);
        let material = TlsMaterial::load_unverified(&paths)?;
        let config = enclave_certs::tls::client_config(&material)?;
        Client::build(endpoint, config, Some(paths.cert.clone()), paths.ca.clone())
    }

    /// A client with no certificate that trusts `ca` (the api port).
    pub fn anonymous(endpoint: &str, ca: &Path) -> Result<Client, ClientError> {
        enclave_certs::tls::install_default_provider();
        let config = enclave_certs::tls::anonymous_client_config(ca)?;
        Client::build(endpoint, config, None, ca.to_path_buf())
    }

    fn build(
        endpoint: &str,
        mut config: rustls::ClientConfig,
        cert_path: Option<PathBuf>,
        ca_path: PathBuf,
    ) -> Result<Client, ClientError> {
        let bad = |detail: &str| ClientError::Endpoint {
            endpoint: endpoint.into(),
            detail: detail.into(),
        };
        let uri: Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(
                "only https:// is supported; Enclave has no plaintext listener",
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| bad("host is not a valid DNS name or IP"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            endpoint: format!("https://{}:{port}", uri.host().unwrap_or_default()),
            host,
            port,
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            cert_path,
            ca_path,
            timeout: Duration::from_secs(10),
        })
    }

    /// The CA certificate this client trusts.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// GET `path` and decode the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        self.decode(Method::GET, path, status, &body)
    }

    /// POST a JSON body to `path` and decode the JSON answer.
    pub async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let (status, body) = self.request(Method::POST, path, Some(bytes)).await?;
        self.decode(Method::POST, path, status, &body)
    }

    /// GET `path` as text.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        if !status.is_success() {
            return Err(self.api_error(Method::GET, path, status, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Send one request; returns the status and body whatever the status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        match tokio::time::timeout(self.timeout, self.request_inner(method, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }),
        }
    }

    /// Open one TLS + HTTP/1.1 connection.
    async fn open(
        &self,
    ) -> Result<
        (
            hyper::client::conn::http1::SendRequest<Full<Bytes>>,
            tokio::task::JoinHandle<Result<(), hyper::Error>>,
        ),
        ClientError,
    > {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: self.endpoint.clone(),
                error: source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.tls_error(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.hyper_error(&e))?;
        Ok((sender, tokio::spawn(conn)))
    }

    /// A persistent connection for many sequential requests (benchmarks,
    /// load generators). Reconnects transparently after an error.
    pub fn session(&self) -> Session {
        Session {
            client: self.clone(),
            conn: None,
        }
    }

    /// GET `path` into `out` (streamed), calling `progress(done, total)`.
    /// Returns the number of bytes written and the response headers.
    pub async fn download(
        &self,
        path: &str,
        out: &std::path::Path,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<(u64, http::HeaderMap), ClientError> {
        use tokio::io::AsyncWriteExt;
        let (mut sender, mut conn_task) = self.open().await?;
        let req = Request::get(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port))
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Http {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            })?;
        let resp = self.send_on(&mut sender, &mut conn_task, req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.hyper_error(&e))?
                .to_bytes();
            return Err(self.api_error(Method::GET, path, status, &body));
        }
        let total = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let io = |e: std::io::Error| ClientError::Decode {
            path: out.display().to_string(),
            detail: e.to_string(),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(out)
            .await
            .map_err(io)?;
        let mut body = resp.into_body();
        let mut done = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.hyper_error(&e))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data).await.map_err(io)?;
                done += data.len() as u64;
                progress(done, total);
            }
        }
        file.sync_all().await.map_err(io)?;
        conn_task.abort();
        Ok((done, headers))
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (mut sender, mut conn_task) = self.open().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            })?;
        let resp = self.send_on(&mut sender, &mut conn_task, req).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.hyper_error(&e))?
            .to_bytes();
        conn_task.abort();
        Ok((status, body))
    }

    /// Send `req` on a connection from [`Client::open`] and wait for the
    /// answer's head. When the server refuses us with a TLS alert, the
    /// request only learns that it was cancelled; the alert is the
    /// connection's error, so that is what is returned. The connection
    /// ending first is an answer too: hyper does not always tell a request
    /// whose connection died before the request was written (seen under
    /// load: a refused certificate waited out the whole timeout with the
    /// connection long closed).
    async fn send_on(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        conn_task: &mut tokio::task::JoinHandle<Result<(), hyper::Error>>,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let send = sender.send_request(req);
        tokio::pin!(send);
        let ended = tokio::select! {
            biased;
            r = &mut send => {
                return match r {
                    Ok(resp) => Ok(resp),
                    Err(e) => Err(self.connection_error(conn_task, &e).await),
                };
            }
            ended = &mut *conn_task => ended,
        };
        // An answer that arrived just before the connection ended counts.
        let late = tokio::time::timeout(Duration::from_millis(200), &mut send).await;
        if let Ok(Ok(resp)) = late {
            return Ok(resp);
        }
        Err(match (ended, late) {
            (Ok(Err(conn_err)), _) => self.hyper_error(&conn_err),
            (_, Ok(Err(e))) => self.hyper_error(&e),
            _ => ClientError::Http {
                endpoint: self.endpoint.clone(),
                detail: "the connection closed before an answer arrived".into(),
            },
        })
    }

    /// The error of a request whose connection is still being driven by
    /// `conn_task` (not yet seen to finish).
    async fn connection_error(
        &self,
        conn_task: &mut tokio::task::JoinHandle<Result<(), hyper::Error>>,
        request_error: &hyper::Error,
    ) -> ClientError {
        match tokio::time::timeout(Duration::from_secs(2), conn_task).await {
            Ok(Ok(Err(conn_err))) => self.hyper_error(&conn_err),
            _ => self.hyper_error(request_error),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<T, ClientError> {
        if !status.is_success() {
            return Err(self.api_error(method, path, status, body));
        }
        serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    fn api_error(
        &self,
        method: Method,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> ClientError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |f: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(|e| e.get(f))
                .and_then(|s| s.as_str())
                .map(str::to_string)
        };
        ClientError::Api {
            method,
            path: path.into(),
            status,
            code: field("code").unwrap_or_else(|| "unknown".into()),
            message: field("message")
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
        }
    }

    fn hyper_error(&self, e: &(dyn std::error::Error + 'static)) -> ClientError {
        // A TLS 1.3 server checks the client certificate after the client
        // considers the handshake done, so its refusal surfaces on the first
        // read, inside hyper's error.
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return self.tls_error(io);
            }
            if let Some(tls) = err.downcast_ref::<rustls::Error>() {
                return self.rustls_error(tls);
            }
            cur = err.source();
        }
        ClientError::Http {
            endpoint: self.endpoint.clone(),
            detail: e.to_string(),
        }
    }

    fn tls_error(&self, e: &std::io::Error) -> ClientError {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls) => self.rustls_error(tls),
            // The node closed the connection (stopping, restarting), with
            // no TLS alert: not a TLS problem.
            None if matches!(
                e.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) =>
            {
                ClientError::Http {
                    endpoint: self.endpoint.clone(),
                    detail: format!("the connection was closed: {e}"),
                }
            }
            None => ClientError::Tls {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            },
        }
    }

    fn rustls_error(&self, e: &rustls::Error) -> ClientError {
        let refused = |reason: &str| match &self.cert_path {
            Some(cert) => ClientError::Refused {
                endpoint: self.endpoint.clone(),
                cert: cert.clone(),
                reason: reason.into(),
            },
            None => ClientError::Tls {
                endpoint: self.endpoint.clone(),
                detail: format!("{reason} (this port requires a client certificate)"),
            },
        };
        match e {
            rustls::Error::AlertReceived(a) => match a {
                AlertDescription::CertificateRevoked => refused("the certificate has been revoked"),
                AlertDescription::CertificateExpired => {
                    refused("the certificate has expired or is not yet valid")
                }
                AlertDescription::UnknownCA | AlertDescription::DecryptError => {
                    refused("it was not issued by the CA this node trusts (wrong CA?)")
                }
                AlertDescription::AccessDenied => refused("its role is not allowed on this port"),
                AlertDescription::CertificateRequired => refused("no certificate was presented"),
                other => refused(&format!("TLS alert {other:?}")),
            },
            rustls::Error::InvalidCertificate(ce) => ClientError::UntrustedServer {
                endpoint: self.endpoint.clone(),
                ca: self.ca_path.clone(),
                detail: match ce {
                    CertificateError::UnknownIssuer => "issued by a different CA".into(),
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => {
                        format!(
                            "not valid for host {:?}; connect by a name or IP in the node's certificate",
                            self.host
                        )
                    }
                    other => other.to_string(),
                },
            },
            other => ClientError::Tls {
                endpoint: self.endpoint.clone(),
                detail: other.to_string(),
            },
        }
    }
}
