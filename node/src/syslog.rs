//! Forwarding audit records to the site's SIEM: RFC 5424 messages over TLS
//! with RFC 5425 octet-counting framing.
//!
//! Every node forwards the chain it has applied, from a cursor kept in
//! `<data_dir>/audit-syslog.cursor` (advanced only after a record was
//! written and flushed), so nothing is lost across restarts or outages of
//! the SIEM. With three nodes the SIEM receives each record up to three
//! times, identical but for the sending host: deduplicate by `seq`/`hash`
//! (both in the structured data).
//!
//! Metrics: `enclave_audit_forwarded_records_total`,
//! `enclave_audit_forward_errors_total{stage}` and
//! `enclave_audit_forward_backlog_records` (records applied here and not
//! yet forwarded), see docs/operator/monitoring.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::audit::Linked;
use crate::config::SyslogTarget;
use crate::http::NodeState;

/// `authpriv` (10) × 8 + `notice` (5).
const PRI: u8 = 85;

fn escape_param(v: &str) -> String {
    // RFC 5424 §6.3.3: escape `"`, `\` and `]` in PARAM-VALUE.
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One RFC 5424 message for a record.
pub fn format_record(l: &Linked, hostname: &str) -> String {
    let r = &l.record;
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(r.time_ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into());
    let sd = format!(
        "[enclave@32473 seq=\"{}\" hash=\"{}\" action=\"{}\" target=\"{}\" outcome=\"{}\" actor=\"{}\" role=\"{}\" source=\"{}\" node=\"{}\" request_id=\"{}\"]",
        r.seq,
        l.hash,
        escape_param(&r.action),
        escape_param(&r.target),
        escape_param(&r.outcome),
        escape_param(&r.origin.id),
        escape_param(&r.origin.role),
        escape_param(&r.origin.source),
        escape_param(&r.origin.node),
        escape_param(&r.origin.request_id),
    );
    let msg = serde_json::to_string(l).unwrap_or_default();
    format!("<{PRI}>1 {ts} {hostname} enclave - AUDIT {sd} {msg}")
}

fn cursor_path(state: &NodeState) -> PathBuf {
    state.config.data_dir.join("audit-syslog.cursor")
}

fn read_cursor(state: &NodeState) -> u64 {
    std::fs::read_to_string(cursor_path(state))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_cursor(state: &NodeState, seq: u64) -> std::io::Result<()> {
    let path = cursor_path(state);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seq}\n"))?;
    std::fs::rename(&tmp, &path)
}

async fn connect(
    target: &SyslogTarget,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use anyhow::Context;
    let config = enclave_certs::tls::anonymous_client_config(&target.ca)
        .with_context(|| format!("audit.syslog_ca {}", target.ca.display()))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&target.addr))
        .await
        .context("connect timed out")??;
    let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())
        .context("audit.syslog_server_name is not a valid name")?;
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .context("TLS handshake timed out")??;
    Ok(tls)
}

/// Forward records as they are applied, until shutdown.
pub async fn forward_loop(
    state: Arc<NodeState>,
    target: SyslogTarget,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut applied = state.cluster.sm.app().hub.applied.subscribe();
    let mut cursor = read_cursor(&state);
    let mut conn = None;
    let mut backoff = Duration::from_millis(500);
    let metrics = state.metrics.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let view = state.view();
        if let Ok((head, _)) = crate::audit::head(&view) {
            metrics
                .audit_forward_backlog
                .set(head.saturating_sub(cursor).min(i64::MAX as u64) as i64);
        }
        let records = match crate::audit::records(&view, cursor, 1000) {
            Ok(r) => r,
            Err(e) => {
                metrics.audit_forward_error("read");
                tracing::error!(error = %e, "syslog: reading the audit chain failed");
                Vec::new()
            }
        };
        drop(view);
        if records.is_empty() {
            tokio::select! {
                _ = applied.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if conn.is_none() {
            match connect(&target).await {
                Ok(c) => {
                    tracing::info!(addr = %target.addr, "syslog: connected");
                    backoff = Duration::from_millis(500);
                    conn = Some(c);
                }
                Err(e) => {
                    metrics.audit_forward_error("connect");
                    tracing::warn!(addr = %target.addr, error = %format!("{e:#}"), "syslog: cannot connect; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        let mut sent = cursor;
        let mut failed = false;
        let mut written = 0u64;
        for l in &records {
            let msg = format_record(l, &state.node_id);
            let frame = format!("{} {msg}", msg.len());
            if let Err(e) = stream.write_all(frame.as_bytes()).await {
                tracing::warn!(error = %e, "syslog: write failed; reconnecting");
                failed = true;
                break;
            }
            sent = l.record.seq;
            written += 1;
        }
        if !failed && stream.flush().await.is_err() {
            failed = true;
        }
        if failed {
            metrics.audit_forward_error("write");
            conn = None;
            continue;
        }
        metrics.audit_forwarded.inc_by(written);
        cursor = sent;
        if let Err(e) = write_cursor(&state, cursor) {
            metrics.audit_forward_error("cursor");
            tracing::error!(error = %e, path = %cursor_path(&state).display(), "syslog: cannot save the cursor");
        }
    }
}
