//! The one path every node-side write takes: propose through the cluster,
//! answer after commit + apply. Also the audit record of actions that
//! happen outside the domain.

use enclave_cluster::types::{Payload, ResponsePayload};
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::{ApiError, NodeState, cluster_error, refusal};
use crate::domain::{self, Command, Done};
use crate::messaging::encode_domain;

/// Propose a domain command through the cluster; answer after commit + apply.
pub async fn submit(
    state: &NodeState,
    origin: &crate::audit::Origin,
    cmd: &Command,
    idempotency_key: Option<String>,
) -> Result<Done, ApiError> {
    crate::lifecycle::gate(state, cmd)?;
    let outcome: domain::Outcome =
        write_app(state, encode_domain(origin, cmd), idempotency_key).await?;
    outcome.map_err(refusal)
}

/// Propose an application command through the cluster and decode its
/// (postcard) outcome: the one path every node-side write takes.
pub async fn write_app<T: DeserializeOwned>(
    state: &NodeState,
    command: Vec<u8>,
    idempotency_key: Option<String>,
) -> Result<T, ApiError> {
    // Held until the write is committed and applied (or failed).
    let _slot = state.admission.write()?;
    let resp = state
        .cluster
        .write(Payload::App(command), idempotency_key)
        .await
        .map_err(cluster_error)?;
    applied_locally(state, resp.index).await;
    match resp.payload {
        ResponsePayload::App(b) => {
            // A retried send answered from its idempotency record: the
            // message by reference, read here (applied above).
            let expanded = if resp.deduplicated {
                crate::messaging::expand_retry(&state.view(), &b)
            } else {
                None
            };
            let b = match expanded {
                None => b,
                Some(Ok(full)) => full,
                Some(Err(e)) => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("answering a retried request: {e}"),
                    ));
                }
            };
            postcard::from_bytes(&b).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "decode",
                    format!("undecodable outcome: {e}"),
                )
            })
        }
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

/// Append an audit record for an action done outside the domain (after
/// the action: cluster operations are not domain commands). A failure is
/// logged, never hidden.
pub async fn record(
    state: &NodeState,
    origin: &crate::audit::Origin,
    action: &str,
    target: &str,
    outcome: &str,
) {
    let cmd = crate::messaging::encode_record(origin, action, target, outcome);
    if let Err(e) = state
        .cluster
        .write(enclave_cluster::types::Payload::App(cmd), None)
        .await
    {
        tracing::error!(action, target, outcome, error = %e, "could not write the audit record");
    }
}

/// Read your writes on the node that took them: wait (briefly) until this
/// node has applied `index`, so a read the client makes next, here, sees
/// the write. On the leader it has already; a follower trails by the
/// replication delay.
pub async fn applied_locally(state: &NodeState, index: u64) {
    let mut applied = state.cluster.sm.app().hub.applied.subscribe();
    let wait = applied.wait_for(|i| *i >= index);
    if tokio::time::timeout(std::time::Duration::from_secs(2), wait)
        .await
        .is_err()
    {
        tracing::debug!(index, "the write is not applied here yet; answering anyway");
    }
}
