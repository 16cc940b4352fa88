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
    println!("CA           {}", s(&["ca_fingerprint"]));
    if let Some(line) = blob_line(&status) {
        println!("blob bytes   {line}");
    }
    println!(
        "you are      {} ({})",
        s(&["caller", "name"]),
        s(&["caller", "role"])
    );
    Ok(())
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
