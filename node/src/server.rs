//! Starting and stopping a node: bind the three listeners, serve them, keep
//! TLS material fresh, shut down gracefully on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::messaging::NodeApp;
use anyhow::{Context, bail};
use enclave_certs::{
    CertInfo, ClientAuth, ReloadOutcome, ReloadingClientConfig, ReloadingServerConfig, Role,
    TlsMaterial,
};
use enclave_cluster::listener::{JoinDoor, ServeOptions, serve_tls};
use enclave_cluster::node::ClusterNode;
use enclave_cluster::peer::Peers;
use enclave_cluster::types::Member;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::Config;
use crate::http::{CertStatus, ListenStatus, NodeState};
use crate::metrics::{ListenerOnly, Metrics, ReloadLabels};

/// How other nodes and clients reach this node.
pub fn advertised_member(
    config: &Config,
    name: &str,
    peer: SocketAddr,
    api: SocketAddr,
    admin: SocketAddr,
) -> Member {
    let advertise = |addr: SocketAddr| -> String {
        let host = if !config.advertise_host.is_empty() {
            config.advertise_host.clone()
        } else if addr.ip().is_unspecified() {
            // Listening on all interfaces: the node name must then resolve
            // (it is a DNS SAN of the node certificate).
            name.to_string()
        } else {
            addr.ip().to_string()
        };
        if host.contains(':') {
            format!("[{host}]:{}", addr.port())
        } else {
            format!("{host}:{}", addr.port())
        }
    };
    Member {
        name: name.to_string(),
        peer: advertise(peer),
        api: advertise(api),
        admin: advertise(admin),
    }
}

/// Addresses actually bound (port 0 in the config picks a free port).
#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    pub node_id: String,
    pub pid: u32,
    pub peer: SocketAddr,
    pub api: SocketAddr,
    pub admin: SocketAddr,
}

/// How a node's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped by a signal: the process ends.
    Stopped,
    /// Asked to defragment its store: start the program again in place.
    Restart,
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    pub bound: Bound,
    pub state: Arc<NodeState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Registered before the node reports itself listening, so a signal
    /// sent as soon as it is up is never handled by the default action.
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

struct Listener {
    name: &'static str,
    tls: Arc<ReloadingServerConfig>,
}

/// Bind and serve. Fails (naming the file or key at fault) if the TLS
/// material is unusable or a port cannot be bound.
pub async fn start(config: Config) -> anyhow::Result<RunningNode> {
    if let Some(dir) = enclave_cluster::fault::enabled() {
        tracing::warn!(
            dir = %dir.display(),
            "TEST-ONLY fault hooks enabled by {}: this node's clock and disk speed can be altered; never set it in production",
            enclave_cluster::fault::ENV
        );
    }
    let paths = config.tls.clone();
    if enclave_certs::install::recover_interrupted_install(&paths)
        .context("finishing an interrupted certificate install")?
    {
        tracing::warn!(key = %paths.key.display(), "finished a certificate install that was interrupted between its two renames");
    }
    let material = TlsMaterial::load_for_role(&paths, &[Role::Node])
        .context("loading the node's TLS material")?;
    let identity = material
        .identity()
        .context("node certificate carries no identity")?;
    if !config.node_id.is_empty() && config.node_id != identity.name {
        bail!(
            "node.id is {:?} but the node certificate {} is for {:?}; fix one of them",
            config.node_id,
            paths.cert.display(),
            identity.name
        );
    }
    if let Some(crl) = &paths.crl
        && !crl.exists()
    {
        tracing::warn!(
            crl = %crl.display(),
            "no CRL file: no certificate is treated as revoked until one is placed there (tls.crl)"
        );
    }
    let node_id = identity.name.clone();
    let ca_fingerprint =
        enclave_certs::fingerprint(material.ca.first().context("CA file has no certificate")?);
    std::fs::create_dir_all(config.run_dir())
        .with_context(|| format!("creating {}", config.run_dir().display()))?;
    // The data directory's format: refuse a newer one, migrate an older
    // one (after a copy) before anything opens it.
    match crate::lifecycle::check_data_format(&config.data_dir)? {
        crate::lifecycle::FormatOutcome::Migrated { from, backup } => tracing::warn!(
            from,
            to = crate::lifecycle::DATA_FORMAT,
            backup = %backup.display(),
            "data directory migrated; the copy taken before can be deleted once the cluster is healthy"
        ),
        crate::lifecycle::FormatOutcome::Fresh | crate::lifecycle::FormatOutcome::Current => {}
    }

    let api_auth = if config.require_device_cert {
        ClientAuth::devices()
    } else {
        ClientAuth::None
    };
    let mk = |name, auth| -> anyhow::Result<Listener> {
        let tls = ReloadingServerConfig::new(paths.clone(), auth)
            .with_context(|| format!("TLS config for the {name} listener"))?;
        Ok(Listener { name, tls })
    };
    let peer = mk("peer", ClientAuth::nodes())?;
    // The one listener that may also accept TLS 1.2 (`api.tls_min_version`).
    let api = Listener {
        name: "api",
        tls: ReloadingServerConfig::with_versions(paths.clone(), api_auth, config.api_tls_versions)
            .context("TLS config for the api listener")?,
    };
    let admin = mk("admin", ClientAuth::operators())?;

    let bind = |key: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {key} = {addr}"))
    };
    let peer_l = bind("listen.peer", config.listen_peer).await?;
    let api_l = bind("listen.api", config.listen_api).await?;
    let admin_l = bind("listen.admin", config.listen_admin).await?;
    let bound = Bound {
        node_id: node_id.clone(),
        pid: std::process::id(),
        peer: peer_l.local_addr()?,
        api: api_l.local_addr()?,
        admin: admin_l.local_addr()?,
    };

    let me = advertised_member(&config, &node_id, bound.peer, bound.api, bound.admin);
    let peer_tls = ReloadingClientConfig::new(paths.clone())
        .context("TLS client config for peer connections")?;
    let peers = Peers::new(peer_tls.clone());
    let cluster = ClusterNode::start(
        &config.data_dir,
        me,
        peers,
        Arc::new(NodeApp::default()),
        config.raft.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "opening the node's store in {}",
            config.data_dir.join("store").display()
        )
    })?;

    let metrics = Metrics::new(&node_id, |r| {
        cluster.register_metrics(r);
        crate::admin::certs::register_metrics(r, peer_tls.clone());
    });
    let cert_info = CertInfo::from_file(&paths.cert)?;
    set_expiry(&metrics, &cert_info);
    let state = Arc::new(NodeState {
        config: config.clone(),
        node_id: node_id.clone(),
        ca_fingerprint,
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        bound: ListenStatus {
            peer: bound.peer.to_string(),
            api: bound.api.to_string(),
            admin: bound.admin.to_string(),
        },
        cert: RwLock::new(CertStatus {
            serial: cert_info.serial.clone(),
            not_after: cert_info.not_after.clone(),
        }),
        cluster: {
            cluster.set_cert_not_after(cert_info.not_after.clone());
            cluster.clone()
        },
        blobs: crate::blobs::Blobs::open(
            &config.data_dir,
            enclave_cluster::peer::client::Peers::sharing_cluster_id(
                peer_tls.clone(),
                cluster.peers.cluster_id.clone(),
            ),
            config.clamd_socket.clone(),
        )
        .with_context(|| {
            format!(
                "opening the blob store in {}",
                config.data_dir.join("blobs").display()
            )
        })?,
        peer_tls,
        denials: Default::default(),
        app_calls: Default::default(),
        restarting: AtomicBool::new(false),
        restart: tokio::sync::Notify::new(),
        limits: crate::http::Limits::new(config.token_rate_per_sec, config.token_burst)
            .with_apps(config.apps.rate_per_sec, config.apps.burst),
        admission: crate::http::admission::Admission::new(
            config.admission,
            metrics.rate_limited.clone(),
            metrics.admission_request_limit.clone(),
        ),
        delivery: delivery(&config)?,
        runner_wake: tokio::sync::Notify::new(),
    });

    let (shutdown, shutdown_rx) = watch::channel(false);
    let opts = |name| ServeOptions {
        name,
        handshake_timeout: config.tls_handshake_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    let mut tasks = Vec::new();
    let join_tls = ReloadingServerConfig::new(paths.clone(), ClientAuth::None)
        .context("TLS config for the join door")?;
    let join_door = JoinDoor {
        tls: join_tls.clone(),
        router: crate::join::router(state.clone()),
    };
    for (l, listener, router, join) in [
        (
            &peer,
            peer_l,
            enclave_cluster::peer::hello::router(node_id.clone())
                .merge(enclave_cluster::peer::server::routes(cluster.clone()))
                .merge(crate::join::rejoin_router(state.clone()))
                .merge(crate::blobs::peer::router(state.clone()))
                .merge(crate::lifecycle::peer_router(state.clone())),
            Some(join_door),
        ),
        (&api, api_l, crate::api::router(state.clone()), None),
        (&admin, admin_l, crate::admin::router(state.clone()), None),
    ] {
        tasks.push(tokio::spawn(serve_tls(
            listener,
            l.tls.clone(),
            router,
            join,
            opts(l.name),
            metrics.listeners.clone(),
            shutdown_rx.clone(),
        )));
    }
    let term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    if let Some(target) = config.syslog.clone() {
        tasks.push(tokio::spawn(crate::syslog::forward_loop(
            state.clone(),
            target,
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::admin::audit::start_record(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::admin::audit::denial_loop(
        state.clone(),
        std::time::Duration::from_secs(30),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::admin::audit::checkpoint_loop(
        state.clone(),
        std::time::Duration::from_secs(10),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::runner::work_loop(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::lifecycle::finalize_loop(
        state.clone(),
        std::time::Duration::from_secs(5),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::blobs::repair::work_loop(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::runner::callback_loop(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::metrics::watch_loop(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::sdnotify::notify_loop(
        state.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(reload_loop(
        hup,
        vec![
            peer,
            api,
            admin,
            Listener {
                name: "join",
                tls: join_tls,
            },
        ],
        state.clone(),
        shutdown_rx,
    )));

    state.ready.store(true, Ordering::Release);
    // Logged before endpoints.json is written: whoever waits for that file
    // (a test, a script) finds the line already in the log.
    info!(node = %node_id, peer = %bound.peer, api = %bound.api, admin = %bound.admin, "node started");
    enclave_certs::files::write_public(
        &config.run_dir().join("endpoints.json"),
        &serde_json::to_vec_pretty(&bound)?,
    )?;
    Ok(RunningNode {
        bound,
        state,
        shutdown,
        tasks,
        term,
        int,
    })
}

impl RunningNode {
    /// Run until SIGTERM or SIGINT, then stop gracefully.
    /// Serve until SIGTERM/SIGINT (then [`Exit::Stopped`]) or until the
    /// node is asked to restart itself to defragment its store
    /// ([`Exit::Restart`]: the caller starts the program again in place,
    /// `crate::defrag::restart_in_place`). Either way the node has shut
    /// down gracefully when this returns.
    pub async fn run_until_signalled(mut self) -> anyhow::Result<Exit> {
        let state = self.state.clone();
        let exit = tokio::select! {
            _ = self.term.recv() => { info!(signal = "SIGTERM", "shutting down"); Exit::Stopped }
            _ = self.int.recv() => { info!(signal = "SIGINT", "shutting down"); Exit::Stopped }
            _ = state.restart.notified() => {
                info!("shutting down to restart and defragment the store");
                Exit::Restart
            }
        };
        self.shutdown().await;
        Ok(exit)
    }

    pub async fn shutdown(self) {
        self.state.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.cluster.shutdown().await;
        let _ = std::fs::remove_file(self.state.config.run_dir().join("endpoints.json"));
        info!("node stopped");
    }
}

/// Callbacks trust the cluster CA and `apps.callback_ca`, and go only to
/// `apps.callback_networks`, with the api port's TLS versions.
fn delivery(config: &Config) -> anyhow::Result<crate::apps::delivery::Delivery> {
    let mut cas = vec![config.tls.ca.clone()];
    cas.extend(config.apps.callback_ca.clone());
    let networks = config
        .apps
        .callback_networks
        .iter()
        .filter_map(|n| crate::apps::delivery::Cidr::parse(n))
        .collect();
    crate::apps::delivery::Delivery::new(
        &cas,
        config.api_tls_versions,
        networks,
        config.apps.callback_timeout,
    )
    .context("apps.callback_ca: callback TLS settings")
}

fn set_expiry(metrics: &Metrics, info: &CertInfo) {
    for l in ["peer", "api", "admin"] {
        metrics
            .cert_expiry_seconds
            .get_or_create(&ListenerOnly { listener: l.into() })
            .set(info.not_after_unix);
    }
}

/// Re-check TLS material every `tls.reload_interval_secs` and on SIGHUP.
async fn reload_loop(
    mut hup: tokio::signal::unix::Signal,
    listeners: Vec<Listener>,
    state: Arc<NodeState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(state.config.tls_reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            _ = tick.tick() => "interval",
            Some(_) = hup.recv() => "SIGHUP",
            _ = crate::admin::certs::RELOAD.notified() => "admin",
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let mut changed = false;
        for l in &listeners {
            let result = match l.tls.reload_if_changed() {
                Ok(ReloadOutcome::Unchanged) => {
                    if trigger == "SIGHUP" {
                        info!(listener = l.name, "SIGHUP: TLS material unchanged");
                    }
                    continue;
                }
                Ok(ReloadOutcome::Reloaded { serial }) => {
                    info!(
                        listener = l.name,
                        serial, trigger, "TLS material reloaded; new handshakes use it"
                    );
                    changed = true;
                    "ok"
                }
                Err(e) => {
                    let msg = e.to_string();
                    if l.tls.is_new_failure(&msg) || trigger == "SIGHUP" {
                        error!(listener = l.name, error = %msg, "TLS reload failed; still serving the previous certificate");
                    }
                    "error"
                }
            };
            state
                .metrics
                .tls_reloads
                .get_or_create(&ReloadLabels {
                    listener: l.name.into(),
                    result: result.into(),
                })
                .inc();
        }
        if changed {
            match state.peer_tls.reload_if_changed() {
                Ok(true) => {
                    state.cluster.peers.reset();
                    state.blobs.reset_peers();
                    info!("peer client certificate reloaded");
                }
                Ok(false) => {}
                Err(e) => error!(error = %e, "peer client TLS reload failed"),
            }
        }
        if changed && let Ok(info) = CertInfo::from_file(&state.config.tls.cert) {
            set_expiry(&state.metrics, &info);
            state.set_cert_status(CertStatus {
                serial: info.serial,
                not_after: info.not_after,
            });
        }
    }
}
