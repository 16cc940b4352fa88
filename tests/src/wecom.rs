//! A client of the WeCom-compatible face (`/cgi-bin/...`), and a callback
//! receiver that answers WeCom's URL handshake and records the events it
//! is POSTed, for the integration tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_node::apps::crypto::{AesKey, Sealer};
use enclave_ops::Client;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::TestCluster;

/// An app as `POST /v1/apps` created it.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub corpid: String,
    pub agentid: u32,
    pub secret: String,
}

/// Register an app through node `via`'s admin port.
pub async fn create_app(
    cluster: &TestCluster,
    via: usize,
    name: &str,
    scopes: &[&str],
    domains: &[&str],
) -> TestApp {
    let (s, b) = cluster
        .admin(via)
        .request(
            Method::POST,
            "/v1/apps",
            Some(
                json!({ "name": name, "scopes": scopes, "trusted_domains": domains })
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .expect("create app");
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    assert!(s.is_success(), "create app {name}: {s} {v}");
    TestApp {
        corpid: v["corpid"].as_str().expect("corpid").to_string(),
        agentid: v["agentid"].as_u64().expect("agentid") as u32,
        secret: v["secret"].as_str().expect("secret").to_string(),
    }
}

/// One api port, speaking the WeCom dialect.
#[derive(Debug, Clone)]
pub struct Wecom {
    pub url: String,
    client: Client,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Wecom {
    pub fn new(url: &str, ca: &Path) -> Wecom {
        Wecom {
            url: url.to_string(),
            client: Client::anonymous(url, ca)
                .expect("client")
                .with_timeout(Duration::from_secs(60)),
        }
    }

    /// Any request; WeCom answers HTTP 200 always, so anything else fails
    /// the test. Returns the JSON body.
    pub async fn raw(&self, method: Method, path_and_query: &str, body: Option<Vec<u8>>) -> Value {
        let (status, bytes) = self
            .client
            .session()
            .request(method.clone(), path_and_query, body, &[])
            .await
            .expect("request");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        assert_eq!(
            status.as_u16(),
            200,
            "{method} {path_and_query}: HTTP {status} {v}"
        );
        v
    }

    fn path(api: &str, token: &str, query: &[(&str, &str)]) -> String {
        let mut p = format!("/cgi-bin/{api}?access_token={}", enc(token));
        for (k, v) in query {
            p.push_str(&format!("&{k}={}", enc(v)));
        }
        p
    }

    pub async fn get(&self, api: &str, token: &str, query: &[(&str, &str)]) -> Value {
        self.raw(Method::GET, &Self::path(api, token, query), None)
            .await
    }

    pub async fn post(&self, api: &str, token: &str, body: Value) -> Value {
        self.raw(
            Method::POST,
            &Self::path(api, token, &[]),
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// A fresh access token; panics unless it is issued.
    pub async fn token(&self, app: &TestApp) -> String {
        let v = self
            .raw(
                Method::GET,
                &format!(
                    "/cgi-bin/gettoken?corpid={}&corpsecret={}",
                    enc(&app.corpid),
                    enc(&app.secret)
                ),
                None,
            )
            .await;
        assert_eq!(v["errcode"], 0, "gettoken: {v}");
        v["access_token"].as_str().expect("token").to_string()
    }

    /// Upload `bytes` as `media/upload?type=file`; returns the media_id.
    pub async fn upload(&self, token: &str, name: &str, bytes: &[u8]) -> String {
        let boundary = "----enclave-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/form-data; boundary={boundary}");
        let (status, b) = self
            .client
            .session()
            .request(
                Method::POST,
                &Self::path("media/upload", token, &[("type", "file")]),
                Some(body),
                &[("content-type", ct.as_str())],
            )
            .await
            .expect("upload");
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!(
            (status.as_u16(), &v["errcode"]),
            (200, &json!(0)),
            "upload: {v}"
        );
        v["media_id"].as_str().expect("media_id").to_string()
    }
}

/// One callback the receiver got: the decrypted XML's elements.
pub type Event = BTreeMap<String, String>;

/// Very small XML reader for WeCom's flat messages: element → text
/// (CDATA unwrapped). Nested elements are flattened.
pub fn parse_xml(xml: &str) -> Event {
    let mut out = Event::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let name = &rest[..close];
        if name.starts_with('/') || name == "xml" {
            rest = &rest[close + 1..];
            continue;
        }
        let body_start = close + 1;
        let end_tag = format!("</{name}>");
        let Some(end) = rest[body_start..].find(&end_tag) else {
            rest = &rest[body_start..];
            continue;
        };
        let raw = &rest[body_start..body_start + end];
        if !raw.contains('<') || raw.starts_with("<![CDATA[") {
            let text = raw
                .replace("]]]]><![CDATA[>", "]]>")
                .trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>")
                .to_string();
            out.insert(name.to_string(), text);
            rest = &rest[body_start + end + end_tag.len()..];
        } else {
            rest = &rest[body_start..];
        }
    }
    out
}

/// An HTTPS callback server on 127.0.0.1 with a certificate of the test
/// CA: answers the echostr handshake, decrypts and records every POST.
/// It can be stopped (connections refused) and started again.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub token: String,
    pub aes_key: String,
    tls_dir: PathBuf,
    corpid: String,
    pub events: Arc<Mutex<Vec<Event>>>,
    stop: Option<watch::Sender<bool>>,
}

impl Receiver {
    pub async fn start(tls_dir: &Path, corpid: &str) -> Receiver {
        let port = crate::proc::free_ports::<1>()[0];
        let mut r = Receiver {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            token: "ReceiverToken1".into(),
            aes_key: enclave_node::apps::crypto::generate_aes_key().expect("key"),
            tls_dir: tls_dir.to_path_buf(),
            corpid: corpid.to_string(),
            events: Arc::default(),
            stop: None,
        };
        r.up().await;
        r
    }

    pub fn url(&self) -> String {
        format!("https://{}/wecom/callback", self.addr)
    }

    /// Stop accepting: the port refuses connections.
    pub fn down(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }

    /// Listen again on the same port.
    pub async fn up(&mut self) {
        enclave_certs::tls::install_default_provider();
        let m = enclave_certs::TlsMaterial::load(&enclave_certs::TlsPaths::from_dir(&self.tls_dir))
            .expect("receiver TLS material");
        let mut config =
            enclave_certs::tls::server_config(&m, &enclave_certs::ClientAuth::None).expect("tls");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener =
            crate::wait_for_async("the receiver port", Duration::from_secs(10), || async {
                TcpListener::bind(self.addr).await.ok()
            })
            .await;
        let (tx, mut rx) = watch::channel(false);
        self.stop = Some(tx);
        let sealer = Arc::new(
            Sealer::new(
                &self.token,
                AesKey::parse(&self.aes_key).expect("key"),
                &self.corpid,
            )
            .expect("sealer"),
        );
        let events = self.events.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = rx.changed() => return,
                };
                let acceptor = acceptor.clone();
                let sealer = sealer.clone();
                let events = events.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let sealer = sealer.clone();
                        let events = events.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(req, &sealer, &events).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    sealer: &Sealer,
    events: &Mutex<Vec<Event>>,
) -> hyper::Response<Full<Bytes>> {
    let q: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let resp = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() == hyper::Method::GET {
        // URL verification: answer with the decrypted echostr.
        return match sealer.open(
            &get("echostr"),
            &get("msg_signature"),
            &get("timestamp"),
            &get("nonce"),
        ) {
            Ok(plain) => resp(200, String::from_utf8_lossy(&plain).into_owned()),
            Err(e) => resp(403, e.to_string()),
        };
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let env = parse_xml(&String::from_utf8_lossy(&body));
    let encrypt = env.get("Encrypt").cloned().unwrap_or_default();
    match sealer.open(
        &encrypt,
        &get("msg_signature"),
        &get("timestamp"),
        &get("nonce"),
    ) {
        Ok(plain) => {
            events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(parse_xml(&String::from_utf8_lossy(&plain)));
            resp(200, "success".into())
        }
        Err(e) => resp(400, e.to_string()),
    }
}
