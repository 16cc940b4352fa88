//! Talking to an app's callback server: the URL checks (https, on the
//! internal network), WeCom's URL verification handshake, and delivering
//! one event in WeCom's encrypted envelope.
//!
//! Requests go out over HTTP/1.1 on a fresh TLS connection each (callback
//! rates are low; a connection per event keeps failures independent),
//! trusting the cluster CA and `apps.callback_ca` only. The host is
//! resolved once and the connection made to the address that passed the
//! network check, so DNS cannot swap in another address afterwards.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::crypto::{AesKey, Sealer};
use crate::domain::CallbackCfg;

/// Why a callback could not be set or delivered (shown to operators).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("callback URL {0:?}: {1}")]
    Url(String, String),
    #[error("{0} is not on an allowed network (apps.callback_networks)")]
    Network(String),
    #[error("resolving {0}: {1}")]
    Resolve(String, String),
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("{0}: {1}")]
    Http(String, String),
    #[error("{0} answered HTTP {1}")]
    Status(String, u16),
    #[error("{0} did not answer the URL verification with the decrypted echostr")]
    Verification(String),
    #[error("callback settings: {0}")]
    Settings(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.trim().split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (
                u128::from(u32::from(a)) << 96,
                u128::from(u32::from(b)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), self.prefix),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        a & mask == b & mask
    }
}

/// The internal networks by default: RFC 1918, loopback, link-local, ULA.
pub const DEFAULT_NETWORKS: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// How callbacks are made: whom to trust, where they may go.
#[derive(Debug, Clone)]
pub struct Delivery {
    tls: Arc<rustls::ClientConfig>,
    networks: Vec<Cidr>,
    timeout: Duration,
}

/// A checked destination.
#[derive(Debug, Clone)]
struct Dest {
    host: String,
    addr: SocketAddr,
    path: String,
}

impl Delivery {
    /// `cas`: PEM files of the CAs a callback server's certificate may
    /// chain to (the cluster CA and `apps.callback_ca`).
    pub fn new(
        cas: &[PathBuf],
        versions: enclave_certs::tls::TlsVersions,
        networks: Vec<Cidr>,
        timeout: Duration,
    ) -> Result<Delivery, DeliveryError> {
        let mut roots = rustls::RootCertStore::empty();
        for path in cas {
            let pem = std::fs::read(path)
                .map_err(|e| DeliveryError::Settings(format!("{}: {e}", path.display())))?;
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.map_err(|e| DeliveryError::Settings(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| DeliveryError::Settings(format!("{}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(enclave_certs::tls::provider())
            .with_protocol_versions(versions.protocol_versions())
            .map_err(|e| DeliveryError::Settings(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Delivery {
            tls: Arc::new(tls),
            networks,
            timeout,
        })
    }

    /// `url` is https, and its host resolves only to allowed networks.
    async fn dest(&self, url: &str) -> Result<Dest, DeliveryError> {
        let bad = |m: &str| DeliveryError::Url(url.to_string(), m.to_string());
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("must be https://"));
        }
        let auth = uri.authority().ok_or_else(|| bad("has no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("must not carry credentials"));
        }
        let host = auth
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = auth.port_u16().unwrap_or(443);
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| DeliveryError::Resolve(host.clone(), e.to_string()))?
                .collect(),
        };
        let first = *addrs
            .first()
            .ok_or_else(|| DeliveryError::Resolve(host.clone(), "no address".into()))?;
        for a in &addrs {
            if !self.networks.iter().any(|n| n.contains(a.ip())) {
                return Err(DeliveryError::Network(format!("{host} ({})", a.ip())));
            }
        }
        Ok(Dest {
            host,
            addr: first,
            path,
        })
    }

    /// Check a URL's shape and network without connecting.
    pub async fn check_url(&self, url: &str) -> Result<(), DeliveryError> {
        self.dest(url).await.map(|_| ())
    }

    /// Check a callback URL as `app set-callback` does: allowed network,
    /// then WeCom's handshake (GET with an encrypted echostr; the server
    /// must answer with its plaintext).
    pub async fn verify(&self, cfg: &CallbackCfg, corpid: &str) -> Result<(), DeliveryError> {
        let sealer = sealer(cfg, corpid)?;
        let dest = self.dest(&cfg.url).await?;
        let nonce = nonce();
        let v = sealer
            .verification(now_secs(), &nonce)
            .map_err(|e| DeliveryError::Settings(e.to_string()))?;
        let (status, body) = self
            .request(&dest, Method::GET, &v.query, Bytes::new())
            .await?;
        if status != StatusCode::OK {
            return Err(DeliveryError::Status(cfg.url.clone(), status.as_u16()));
        }
        if String::from_utf8_lossy(&body).trim() != v.expected {
            return Err(DeliveryError::Verification(cfg.url.clone()));
        }
        Ok(())
    }

    /// Deliver one event: encrypted, signed, POSTed as WeCom does
    /// (signature, timestamp and nonce in the query; the envelope in the
    /// body). Any 2xx answer counts as delivered.
    pub async fn post(
        &self,
        cfg: &CallbackCfg,
        corpid: &str,
        agentid: u32,
        xml: &str,
    ) -> Result<(), DeliveryError> {
        let sealer = sealer(cfg, corpid)?;
        let dest = self.dest(&cfg.url).await?;
        let sealed = sealer
            .seal(xml, now_secs(), &nonce())
            .map_err(|e| DeliveryError::Settings(e.to_string()))?;
        let encrypt = extract_encrypt(&sealed.body).unwrap_or_default();
        let body = format!(
            "<xml><ToUserName>{}</ToUserName><AgentID>{}</AgentID><Encrypt>{}</Encrypt></xml>",
            super::crypto::cdata(corpid),
            super::crypto::cdata(&agentid.to_string()),
            super::crypto::cdata(&encrypt)
        );
        let (status, _) = self
            .request(&dest, Method::POST, &sealed.query, Bytes::from(body))
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(cfg.url.clone(), status.as_u16()))
        }
    }

    async fn request(
        &self,
        dest: &Dest,
        method: Method,
        query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), DeliveryError> {
        let ms = self.timeout.as_millis() as u64;
        tokio::time::timeout(self.timeout, self.request_inner(dest, method, query, body))
            .await
            .map_err(|_| DeliveryError::Timeout(ms))?
    }

    async fn request_inner(
        &self,
        dest: &Dest,
        method: Method,
        query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), DeliveryError> {
        let who = format!("{}:{}", dest.host, dest.addr.port());
        let tcp = tokio::net::TcpStream::connect(dest.addr)
            .await
            .map_err(|e| DeliveryError::Connect(who.clone(), e.to_string()))?;
        let name = ServerName::try_from(dest.host.clone())
            .map_err(|e| DeliveryError::Tls(who.clone(), e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| DeliveryError::Tls(who.clone(), e.to_string()))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| DeliveryError::Http(who.clone(), e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let sep = if dest.path.contains('?') { '&' } else { '?' };
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{sep}{query}", dest.path))
            .header(http::header::HOST, dest.host.as_str())
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header(http::header::USER_AGENT, "enclave-callback/1")
            .body(Full::new(body))
            .map_err(|e| DeliveryError::Http(who.clone(), e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| DeliveryError::Http(who.clone(), e.to_string()))?;
        let status = resp.status();
        // Read frame by frame: a server that ends an HTTP/1.0 body by
        // closing without TLS close_notify (Python's http.server does)
        // still gave us its answer, and the caller checks its content.
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        out.extend_from_slice(d);
                        if out.len() > 64 << 10 {
                            return Err(DeliveryError::Http(
                                who,
                                "answer larger than 64 KiB".into(),
                            ));
                        }
                    }
                }
                Err(e) if !out.is_empty() || status.is_success() => {
                    tracing::debug!(error = %e, "callback server closed without finishing its answer cleanly");
                    break;
                }
                Err(e) => return Err(DeliveryError::Http(who, e.to_string())),
            }
        }
        Ok((status, Bytes::from(out)))
    }
}

fn sealer(cfg: &CallbackCfg, corpid: &str) -> Result<Sealer, DeliveryError> {
    let key = AesKey::parse(&cfg.aes_key).map_err(|e| DeliveryError::Settings(e.to_string()))?;
    Sealer::new(&cfg.token, key, corpid).map_err(|e| DeliveryError::Settings(e.to_string()))
}

/// The `Encrypt` value of a sealed envelope.
fn extract_encrypt(envelope: &str) -> Option<String> {
    let start = envelope.find("<Encrypt><![CDATA[")? + "<Encrypt><![CDATA[".len();
    let end = envelope[start..].find("]]></Encrypt>")? + start;
    Some(envelope[start..end].to_string())
}

fn nonce() -> String {
    let mut b = [0u8; 5];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    (u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]) % 10_000_000_000).to_string()
}

fn now_secs() -> u64 {
    enclave_cluster::fault::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix_and_family() {
        let n: Vec<Cidr> = DEFAULT_NETWORKS
            .iter()
            .filter_map(|s| Cidr::parse(s))
            .collect();
        assert_eq!(n.len(), DEFAULT_NETWORKS.len());
        let inside = |ip: &str| n.iter().any(|c| c.contains(ip.parse().expect("ip")));
        for ip in [
            "10.1.2.3",
            "172.31.255.1",
            "192.168.0.9",
            "127.0.0.1",
            "::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(inside(ip), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!inside(ip), "{ip}");
        }
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        assert!(
            Cidr::parse("0.0.0.0/0").is_some_and(|c| c.contains("1.2.3.4".parse().expect("ip")))
        );
    }

    #[tokio::test]
    async fn urls_must_be_https_without_credentials_on_allowed_networks() {
        let d = Delivery {
            tls: Arc::new(
                rustls::ClientConfig::builder_with_provider(enclave_certs::tls::provider())
                    .with_safe_default_protocol_versions()
                    .expect("versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
            networks: vec![Cidr::parse("10.0.0.0/8").expect("cidr")],
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            d.dest("http://10.0.0.1/cb").await,
            Err(DeliveryError::Url(..))
        ));
        assert!(matches!(
            d.dest("https://u:p@10.0.0.1/cb").await,
            Err(DeliveryError::Url(..))
        ));
        assert!(matches!(
            d.dest("https://8.8.8.8/cb").await,
            Err(DeliveryError::Network(_))
        ));
        let ok = d
            .dest("https://10.0.0.1:8443/cb?x=1")
            .await
            .expect("allowed");
        assert_eq!((ok.addr.port(), ok.path.as_str()), (8443, "/cb?x=1"));
    }

    #[test]
    fn the_encrypt_value_is_read_back_from_an_envelope() {
        let e = super::super::crypto::envelope("abc+/=", "sig", 1, "n");
        assert_eq!(extract_encrypt(&e).as_deref(), Some("abc+/="));
    }
}
