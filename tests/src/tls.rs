//! Low-level TLS probes: raw connections that keep their session, and
//! the certificate a server presents.

use std::net::SocketAddr;
use std::sync::Arc;

use enclave_certs::{Identity, TlsMaterial, TlsPaths};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// An open HTTP/1.1-over-TLS connection that can send several requests.
pub struct OpenConn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    /// Serial of the certificate the server presented at the handshake.
    pub server_serial: String,
}

impl std::fmt::Debug for OpenConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenConn")
            .field("server_serial", &self.server_serial)
            .finish()
    }
}

impl OpenConn {
    /// Connect with the client bundle in `dir` (mTLS).
    pub async fn connect(addr: SocketAddr, dir: &std::path::Path) -> anyhow::Result<OpenConn> {
        enclave_certs::tls::install_default_provider();
        let m = TlsMaterial::load(&TlsPaths::from_dir(dir))?;
        let mut config = enclave_certs::tls::client_config(&m)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
            .await?;
        let server_serial = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| Identity::from_der(c))
            .map(|i| i.serial)
            .unwrap_or_default();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(OpenConn {
            sender,
            server_serial,
        })
    }

    /// GET `path` on this same connection; returns (status, body).
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, String)> {
        self.sender.ready().await?;
        let req = http::Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::new())?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Send plaintext HTTP to a TLS port; returns whatever came back before
/// the server closed (never an HTTP response from an Enclave port).
pub async fn plaintext_probe(addr: SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return Vec::new();
    };
    let _ = tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    buf
}
