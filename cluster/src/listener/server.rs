//! The TLS accept loop behind every Enclave port.
//!
//! For each TCP connection: take the *current* server config (so hot-reloaded
//! certificates apply to the next handshake only), complete the handshake
//! under a timeout, read the client's identity from its verified certificate,
//! and serve HTTP/1.1 or HTTP/2 with that identity attached to every request
//! as a [`ConnInfo`] extension. Handlers never trust a claimed identity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use enclave_certs::{Identity, ReloadingServerConfig};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::{AlertDescription, CertificateError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{Instrument, debug, info, warn};

use super::metrics::{HandshakeLabels, ListenerLabels, ListenerMetrics};

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub listener: &'static str,
    pub remote: SocketAddr,
    /// Present when the client presented a certificate (mTLS listeners).
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listener name for logs and metrics: `peer`, `api` or `admin`.
    pub name: &'static str,
    pub handshake_timeout: Duration,
    /// How long open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

/// ALPN protocol a joining node offers on the peer port. Only connections
/// that offer it get the server-authenticated (no client certificate)
/// handshake, and they reach only the join routes.
pub const JOIN_ALPN: &[u8] = b"enclave-join/1";

/// The join side-door of the peer port: its TLS config (no client auth) and routes.
#[derive(Debug, Clone)]
pub struct JoinDoor {
    pub tls: Arc<ReloadingServerConfig>,
    pub router: Router,
}

/// Serve `router` on `listener` until `shutdown` flips to true, then stop
/// accepting and give open connections `shutdown_grace` to finish.
#[allow(clippy::too_many_arguments)]
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ReloadingServerConfig>,
    router: Router,
    join: Option<JoinDoor>,
    opts: ServeOptions,
    metrics: ListenerMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let name = opts.name;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let main_config = tls.current();
        let join = join.clone();
        let router = router.clone();
        let metrics = metrics.clone();
        let watcher = graceful.watcher();
        let opts = opts.clone();
        let span = tracing::debug_span!("conn", listener = name, %remote);
        tokio::spawn(
            async move {
                let handshake = tokio::time::timeout(opts.handshake_timeout, async {
                    let start = tokio_rustls::LazyConfigAcceptor::new(
                        rustls::server::Acceptor::default(),
                        tcp,
                    )
                    .await?;
                    let wants_join = start
                        .client_hello()
                        .alpn()
                        .is_some_and(|mut a| a.any(|p| p == JOIN_ALPN));
                    match (&join, wants_join) {
                        (Some(door), true) => {
                            let mut config = (*door.tls.current()).clone();
                            config.alpn_protocols = vec![JOIN_ALPN.to_vec()];
                            let s = start.into_stream(Arc::new(config)).await?;
                            Ok::<_, std::io::Error>((s, Some(door.router.clone())))
                        }
                        _ => Ok((start.into_stream(main_config).await?, None)),
                    }
                })
                .await;
                let (stream, join_router) = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        let reason = refusal_reason(&e);
                        count(&metrics, name, reason);
                        metrics.note_refusal(name, reason, &remote.ip().to_string());
                        // Refusals are expected noise on an exposed port; the
                        // reason is in the metric and at debug level.
                        debug!(reason, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        count(&metrics, name, "timeout");
                        metrics.note_refusal(name, "timeout", &remote.ip().to_string());
                        debug!("TLS handshake timed out");
                        return;
                    }
                };
                count(&metrics, name, "ok");
                let identity = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| Identity::from_der(c));
                let info = ConnInfo {
                    listener: name,
                    remote,
                    identity,
                };
                let gauge = metrics
                    .open_connections
                    .get_or_create(&ListenerLabels {
                        listener: name.into(),
                    })
                    .clone();
                gauge.inc();
                let router = join_router.unwrap_or(router);
                let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    router.clone().oneshot(req)
                });
                let builder = Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    debug!(error = %e, "connection ended with error");
                }
                gauge.dec();
            }
            .instrument(span),
        );
    }
    drop(listener);
    info!(
        listener = name,
        "stopped accepting; draining open connections"
    );
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(listener = name, grace = ?opts.shutdown_grace, "connections still open after the grace period; closing them");
    }
}

fn count(metrics: &ListenerMetrics, listener: &str, result: &str) {
    metrics
        .handshakes
        .get_or_create(&HandshakeLabels {
            listener: listener.into(),
            result: result.into(),
        })
        .inc();
}

/// Classify a failed handshake for metrics and logs.
fn refusal_reason(e: &std::io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return "other";
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_certificate",
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => "unknown_ca",
            CertificateError::Revoked => "revoked",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::ApplicationVerificationFailure => "wrong_role",
            _ => "bad_certificate",
        },
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::InappropriateMessage { .. } => "not_tls",
        rustls::Error::AlertReceived(AlertDescription::UnknownCA) => "client_rejected_server",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        _ => "other",
    }
}
