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
    println!(
        "you are      {} ({})",
        s(&["caller", "name"]),
        s(&["caller", "role"])
    );
    Ok(())
}
