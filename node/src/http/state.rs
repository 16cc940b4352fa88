//! The state every handler is given: configuration, the cluster handle,
//! metrics, this node's limits.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use enclave_certs::ReloadingClientConfig;
use enclave_cluster::node::ClusterNode;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::messaging::{NodeApp, ViewStore};
use crate::metrics::Metrics;

/// Shared state of a running node, handed to every handler.
#[derive(Debug)]
pub struct NodeState {
    pub config: Config,
    pub node_id: String,
    pub ca_fingerprint: String,
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub bound: ListenStatus,
    pub(crate) cert: RwLock<CertStatus>,
    pub cluster: Arc<ClusterNode<NodeApp>>,
    pub peer_tls: Arc<ReloadingClientConfig>,
    /// Files, images and voice notes: this node's chunks and transfers.
    pub blobs: crate::blobs::Blobs,
    /// Per-token and per-source limits of the client API (this node only).
    pub limits: super::Limits,
    /// How much this node takes on at once (503 `overloaded` beyond).
    pub admission: super::admission::Admission,
    /// How callbacks reach integrated apps' servers.
    pub delivery: crate::apps::delivery::Delivery,
    /// Wakes the leader's runner (a job or a large fan-out was queued).
    pub runner_wake: tokio::sync::Notify,
    /// Authorization denials on the admin port since the last audit pass:
    /// (operator, role, route) -> count.
    pub denials: std::sync::Mutex<std::collections::HashMap<(String, String, String), u32>>,
    /// Calls of integrated apps since the last audit pass, aggregated:
    /// (agentid, app name, "METHOD route errcode") -> count.
    pub app_calls: std::sync::Mutex<std::collections::HashMap<(String, String, String), u32>>,
    /// Set (then `restart` notified) when the node is to stop and start
    /// again in place to defragment its store (`POST /v1/node/defrag`).
    pub restarting: AtomicBool,
    pub restart: tokio::sync::Notify,
}

impl NodeState {
    /// Count a refused request for the audit trail (written aggregated by
    /// `admin::audit::flush_denials`). Bounded: new keys beyond 10,000
    /// are dropped until the next flush.
    pub fn note_denial(&self, who: &str, role: &str, what: &str) {
        let mut d = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        let key = (who.to_string(), role.to_string(), what.to_string());
        if d.len() < 10_000 || d.contains_key(&key) {
            *d.entry(key).or_insert(0) += 1;
        }
    }

    /// Count an integrated app's call for the audit trail (aggregated,
    /// like denials; bounded the same way).
    pub fn note_app_call(&self, agentid: &str, name: &str, what: &str) {
        let mut d = self.app_calls.lock().unwrap_or_else(|p| p.into_inner());
        let key = (agentid.to_string(), name.to_string(), what.to_string());
        if d.len() < 10_000 || d.contains_key(&key) {
            *d.entry(key).or_insert(0) += 1;
        }
    }

    pub fn cert_status(&self) -> CertStatus {
        self.cert.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the certificate facts shown by `/v1/status` (after a reload).
    pub fn set_cert_status(&self, status: CertStatus) {
        self.cluster.set_cert_not_after(status.not_after.clone());
        *self.cert.write().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// This node's applied state, for reads.
    pub fn view(&self) -> ViewStore {
        ViewStore(self.cluster.sm.view())
    }
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct CertStatus {
    pub serial: String,
    pub not_after: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct ListenStatus {
    pub peer: String,
    pub api: String,
    pub admin: String,
}

/// This node's wall clock in ms (see `enclave_cluster::fault` for the
/// test-only clock offset).
pub fn now_ms() -> u64 {
    enclave_cluster::fault::now_ms()
}
