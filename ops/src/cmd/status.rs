//! `enclavectl status`: a node's identity, version, uptime and role.

use serde_json::Value;

use super::{Output, print_json};
use crate::client::Client;

pub async fn run(client: &Client, output: Output) -> anyhow::Result<()> {
    let status: Value = client.get_json("/v1/status").await?;
    if output == Output::Json {
        return print_json(&status);
    }
    let s = |path: &[&str]| {
        let mut v = &status;
        for p in path {
            v = &v[*p];
        }
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    };
    println!("node         {}", s(&["node_id"]));
    println!("version      {}", s(&["version"]));
    println!("uptime       {}s", s(&["uptime_secs"]));
    println!("role         {}", s(&["role"]));
    println!("endpoint     {}", client.endpoint());
    println!(
        "listen       peer {}  api {}  admin {}",
        s(&["listen", "peer"]),
        s(&["listen", "api"]),
        s(&["listen", "admin"])
    );
    println!(
        "certificate  serial {} valid until {}",
        s(&["certificate", "serial"]),
        s(&["certificate", "not_after"])
    );
    for line in ca_lines(&status) {
        println!("{line}");
    }
    if let Some(line) = blob_line(&status) {
        println!("blob bytes   {line}");
    }
    println!(
        "you are      {} ({})",
        s(&["caller", "name"]),
        s(&["caller", "role"])
    );
    let mut warnings = node_warnings(&status);
    // The other members' certificates, as the cluster reports them.
    if let Ok(cluster) = client.get_json::<Value>("/v1/cluster/status").await {
        warnings.extend(member_warnings(&cluster, &s(&["node_id"]), now_unix()));
    }
    for w in warnings {
        println!("WARNING      {w}");
    }
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `CA` lines: every CA the node trusts (two during a CA rotation), the
/// one that issued its certificate marked.
fn ca_lines(status: &Value) -> Vec<String> {
    let issuer = status["tls"]["certificate"]["issuer_fingerprint"].as_str();
    let cas: Vec<&Value> = status["tls"]["ca"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if cas.is_empty() {
        return vec![format!(
            "CA           {}",
            status["ca_fingerprint"].as_str().unwrap_or("-")
        )];
    }
    cas.iter()
        .map(|c| {
            let fp = c["fingerprint"].as_str().unwrap_or("-");
            format!(
                "CA           {fp} valid until {}{}",
                c["not_after"].as_str().unwrap_or("-"),
                if cas.len() > 1 && Some(fp) == issuer {
                    "  (issued this node's certificate)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

/// Expiry warnings the node computed (its certificate, its CAs).
fn node_warnings(status: &Value) -> Vec<String> {
    status["tls"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            w.as_str()
                .map(|w| format!("{}: {w}", status["node_id"].as_str().unwrap_or("node")))
        })
        .collect()
}

/// Warnings for the other members whose certificate expires within 30 days.
fn member_warnings(cluster: &Value, me: &str, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for m in cluster["members"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("?");
        if name == me {
            continue;
        }
        let Some(at) = m["status"]["cert_not_after"].as_str() else {
            continue;
        };
        let Ok(t) = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        else {
            continue;
        };
        if let Some(w) =
            enclave_certs::trust::expiry_warning("node certificate", t.unix_timestamp(), now)
        {
            out.push(format!("{name}: {w}"));
        }
    }
    out
}

/// This node's blob store, when the node reports one:
/// `1610612736 (1.5 GiB in 384 chunks)`.
fn blob_line(status: &Value) -> Option<String> {
    let b = status.get("blobs")?;
    let bytes = b["bytes"].as_u64()?;
    let chunks = b["chunks"]
        .as_u64()
        .map(|c| format!(" in {c} chunks"))
        .unwrap_or_default();
    Some(format!(
        "{bytes} ({}{chunks})",
        super::blobs::human_bytes(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warnings_cover_the_node_its_cas_and_the_other_members() {
        let status = serde_json::json!({
            "node_id": "node-1",
            "ca_fingerprint": "sha256:bb",
            "tls": {
                "ca": [
                    {"fingerprint": "sha256:aa", "not_after": "2027-01-01T00:00:00Z"},
                    {"fingerprint": "sha256:bb", "not_after": "2036-01-01T00:00:00Z"}
                ],
                "certificate": {"issuer_fingerprint": "sha256:bb"},
                "warnings": ["CA sha256:aa expires in 12 days"]
            }
        });
        let lines = ca_lines(&status);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].contains("sha256:bb") && lines[1].contains("issued this node"),
            "{lines:?}"
        );
        assert!(!lines[0].contains("issued"), "{lines:?}");
        assert_eq!(
            node_warnings(&status),
            vec!["node-1: CA sha256:aa expires in 12 days"]
        );
        // Before the node reports `tls`: the one fingerprint.
        assert_eq!(
            ca_lines(&serde_json::json!({"ca_fingerprint": "sha256:cc"})),
            vec!["CA           sha256:cc"]
        );
        let now = 1_800_000_000;
        let at = |days: i64| enclave_certs::inspect::rfc3339(now + days * 86_400);
        let cluster = serde_json::json!({"members": [
            {"name": "node-1", "status": {"cert_not_after": at(1)}},
            {"name": "node-2", "status": {"cert_not_after": at(10)}},
            {"name": "node-3", "status": {"cert_not_after": at(60)}},
            {"name": "node-4", "error": "unreachable"}
        ]});
        let w = member_warnings(&cluster, "node-1", now);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("node-2: node certificate expires in"),
            "{w:?}"
        );
    }

    #[test]
    fn blob_bytes_show_when_the_node_reports_them() {
        let v = serde_json::json!({"node_id": "n", "blobs": {"bytes": 1_610_612_736u64, "chunks": 384}});
        assert_eq!(
            blob_line(&v).as_deref(),
            Some("1610612736 (1.5 GiB in 384 chunks)")
        );
        assert_eq!(blob_line(&serde_json::json!({"node_id": "n"})), None);
        assert_eq!(
            blob_line(&serde_json::json!({"blobs": {"bytes": 0}})).as_deref(),
            Some("0 (0 B)")
        );
    }
}
