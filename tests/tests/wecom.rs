//! The WeCom-compatible API against real `enclave` processes: what an
//! integration sees across nodes and leader changes, scopes and disabled
//! apps, callbacks through a receiver outage and a leader kill, bulk jobs
//! across a leader kill, sign-in codes, and bad input of every family.
//! `wechatpy.rs` drives the same API with a real third-party SDK.

use std::collections::BTreeSet;
use std::time::Duration;

use enclave_ops::Client;
use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use enclave_tests::wecom::{Receiver, TestApp, Wecom, create_app};
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";
const ALL: &[&str] = &["directory:write", "message:send", "appchat", "oauth"];

#[path = "wecom/app_message.rs"]
mod app_message;
#[path = "wecom/bad_input.rs"]
mod bad_input;
#[path = "wecom/bulk.rs"]
mod bulk;
#[path = "wecom/callbacks.rs"]
mod callbacks;
#[path = "wecom/media.rs"]
mod media;
#[path = "wecom/sign_in.rs"]
mod sign_in;

fn wecom(c: &mut TestCluster, i: usize) -> Wecom {
    let url = c.endpoints(i).api_url();
    Wecom::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

async fn admin(
    c: &TestCluster,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, b) = c
        .admin(i)
        .request(method, path, body.map(|b| b.to_string().into_bytes()))
        .await
        .expect("admin request");
    (
        s.as_u16(),
        serde_json::from_slice(&b).unwrap_or(Value::Null),
    )
}

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(i64::MIN)
}

async fn state_hash(c: &TestCluster, i: usize) -> String {
    let (s, v) = admin(c, i, Method::GET, "/v1/cluster/state-hash", None).await;
    assert_eq!(s, 200, "{v}");
    v["sha256"].as_str().expect("hash").to_string()
}
