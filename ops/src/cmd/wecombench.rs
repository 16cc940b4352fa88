//! `enclavectl bench wecom`: the WeCom-compatible API against a running
//! cluster, as integrations use it. Start the cluster without the member
//! token rate limit (the fan-out logs in many members):
//! `ENCLAVE_API__TOKEN_RATE_PER_SEC=0 ENCLAVE_APPS__RATE_PER_SEC=0 ops/dev-cluster.sh --release`.
//!
//! (a) HR full sync: `media/upload` of a `--rows`-row CSV in WeCom's user
//! template, then `batch/replaceuser` until `batch/getresult` says done:
//! upload time, job time, rows/s.
//! (b) `user/create` from `--clients` concurrent clients for
//! `--duration`: users/s, p50/p99.
//! (c) `message/send` to a department of `--members` members, every one
//! connected by WebSocket (spread over the nodes), `--messages` sends one
//! at a time: send → last member received, p50/p99.
//!
//! **It replaces the directory**: (a) disables every active member absent
//! from its file. Run it on a benchmark cluster.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::msgbench::{
    api_endpoints, await_all, connect_members, ensure_users, login_all, percentile,
    reach_latencies, user,
};
use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Args)]
pub struct WecomBench {
    /// Rows of the full-sync file (phase a); 0 skips it.
    #[arg(long, default_value_t = 160_000)]
    pub rows: usize,
    /// Concurrent `user/create` clients (phase b); 0 skips it.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Length of phase b, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Department size for the fan-out (phase c), every member connected
    /// by WebSocket; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Messages sent to the department, one at a time (phase c).
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
}

/// The department of the fan-out phase.
const FANOUT_DEPT: u64 = 90_001;

#[derive(Debug, Serialize)]
struct Sync {
    rows: usize,
    upload_s: f64,
    job_s: f64,
    rows_per_sec: f64,
    failed_rows: u64,
}

#[derive(Debug, Serialize)]
struct Creates {
    clients: usize,
    seconds: f64,
    created: u64,
    errors: u64,
    users_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Fanout {
    members: usize,
    connected: usize,
    messages: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// One api port in WeCom's dialect.
#[derive(Clone, Debug)]
struct Wecom {
    api: Client,
    token: String,
    agentid: u64,
}

impl Wecom {
    async fn call(
        &self,
        method: Method,
        api: &str,
        query: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let path = format!("/cgi-bin/{api}?access_token={}{query}", self.token);
        let (s, b) = self
            .api
            .request(method, &path, body.map(|b| b.to_string().into_bytes()))
            .await?;
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        if !s.is_success() {
            bail!("{api}: HTTP {s} {v}");
        }
        Ok(v)
    }

    async fn ok(
        &self,
        method: Method,
        api: &str,
        query: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let v = self.call(method, api, query, body).await?;
        if v["errcode"] != 0 {
            bail!("{api}: {v}");
        }
        Ok(v)
    }
}

/// Register a throw-away app and get a token on `api`.
async fn app(admin: &Client, api: &Client) -> anyhow::Result<Wecom> {
    let name = format!("bench-{}", std::process::id());
    let body = json!({ "name": name, "scopes": ["directory:write", "message:send"] });
    let (s, b) = admin
        .request(
            Method::POST,
            "/v1/apps",
            Some(body.to_string().into_bytes()),
        )
        .await?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if !s.is_success() {
        bail!("registering the bench app: {s} {v}");
    }
    let q = format!(
        "/cgi-bin/gettoken?corpid={}&corpsecret={}",
        v["corpid"].as_str().unwrap_or_default(),
        v["secret"].as_str().unwrap_or_default()
    );
    let t: Value = api.get_json(&q).await?;
    let token = t["access_token"]
        .as_str()
        .with_context(|| format!("gettoken: {t}"))?
        .to_string();
    Ok(Wecom {
        api: api.clone(),
        token,
        agentid: v["agentid"].as_u64().unwrap_or_default(),
    })
}

/// WeCom's user template: the fan-out members first (kept, moved to the
/// fan-out department), then synthetic employees.
fn csv(rows: usize, fanout: usize) -> Vec<u8> {
    let mut s = String::with_capacity(rows * 80);
    s.push_str("姓名,帐号,手机号,邮箱,所在部门,职位,性别,排序\n");
    for i in 0..rows {
        if i < fanout {
            s.push_str(&format!("Bench {i},{},,,{FANOUT_DEPT},,0,{i}\n", user(i)));
        } else {
            s.push_str(&format!(
                "员工{i},hr-{i:07},139{i:08},hr{i}@example.com,1,职员,{},{}\n",
                1 + i % 2,
                i % 100
            ));
        }
    }
    s.into_bytes()
}

async fn upload(w: &Wecom, bytes: Vec<u8>) -> anyhow::Result<String> {
    let boundary = "----enclave-bench";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"users.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (s, b) = w
        .api
        .session()
        .request(
            Method::POST,
            &format!("/cgi-bin/media/upload?access_token={}&type=file", w.token),
            Some(body),
            &[("content-type", ct.as_str())],
        )
        .await?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if !s.is_success() || v["errcode"] != 0 {
        bail!("media/upload: {s} {v}");
    }
    Ok(v["media_id"].as_str().unwrap_or_default().to_string())
}

async fn full_sync(w: &Wecom, rows: usize, fanout: usize) -> anyhow::Result<Sync> {
    let file = csv(rows, fanout);
    eprintln!(
        "(a) uploading a {rows}-row file ({} MiB)...",
        file.len() >> 20
    );
    let t = Instant::now();
    let media = upload(w, file).await?;
    let upload_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let v = w
        .ok(
            Method::POST,
            "batch/replaceuser",
            "",
            Some(json!({ "media_id": media })),
        )
        .await?;
    let jobid = v["jobid"].as_str().unwrap_or_default().to_string();
    let mut last = -1;
    let done = loop {
        let v = w
            .ok(
                Method::GET,
                "batch/getresult",
                &format!("&jobid={jobid}"),
                None,
            )
            .await?;
        if v["status"] == 3 {
            break v;
        }
        let p = v["percentage"].as_i64().unwrap_or(0);
        if p / 10 != last / 10 {
            eprintln!("  {p}% after {:.1}s", t.elapsed().as_secs_f64());
            last = p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job_s = t.elapsed().as_secs_f64();
    let failed_rows = done["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["errcode"] != 0)
        .count() as u64;
    Ok(Sync {
        rows,
        upload_s,
        job_s,
        rows_per_sec: rows as f64 / job_s,
        failed_rows,
    })
}

async fn creates(ws: &[Wecom], clients: usize, secs: u64) -> anyhow::Result<Creates> {
    eprintln!("(b) user/create from {clients} clients for {secs}s...");
    let run = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let w = ws[c % ws.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut session = w.api.session();
            let path = format!("/cgi-bin/user/create?access_token={}", w.token);
            let mut i = 0;
            while Instant::now() < deadline {
                let body = json!({ "userid": format!("uc-{run}-{c}-{i}"), "name": format!("新员工{i}"), "department": [1] });
                i += 1;
                let t = Instant::now();
                match session
                    .request(Method::POST, &path, Some(body.to_string().into_bytes()), &[])
                    .await
                {
                    Ok((s, b)) if s.is_success() && serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["errcode"] == 0) => {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    other => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("  client {c}: {:?}", other.map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned())));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.context("client task")?;
        lat.extend(l);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(Creates {
        clients,
        seconds,
        created: lat.len() as u64,
        errors,
        users_per_sec: lat.len() as f64 / seconds,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
    })
}

async fn fanout(
    w: &Wecom,
    apis: &[Client],
    endpoints: &[String],
    ca: &Path,
    members: usize,
    messages: usize,
) -> anyhow::Result<Fanout> {
    eprintln!("(c) department of {members}: logging in every member...");
    let tokens = login_all(apis, members).await?;
    let me: Value = {
        let (_, b) = apis[0]
            .session()
            .request(
                Method::GET,
                "/v1/me",
                None,
                &[("authorization", &format!("Bearer {}", tokens[0]))],
            )
            .await?;
        serde_json::from_slice(&b)?
    };
    let since = me["sync_head"].as_u64().unwrap_or(0);
    let tag = format!("fan-{}-", std::process::id());
    let key_tag = tag.clone();
    eprintln!("  connecting {members} WebSockets...");
    let (connected, mut rx) = connect_members(
        &tokens,
        endpoints,
        since,
        ca,
        messages,
        Arc::new(move |v: &Value| {
            let m = &v["message"];
            if v["type"] != "message"
                || !m["sender"].as_str().is_some_and(|s| s.starts_with("app:"))
            {
                return None;
            }
            m["text"]
                .as_str()?
                .strip_prefix(key_tag.as_str())?
                .parse()
                .ok()
        }),
    )
    .await?;
    eprintln!("  {connected}/{members} connected; sending {messages} messages...");
    let mut sent_at = HashMap::new();
    let mut last = HashMap::new();
    for k in 0..messages as u64 {
        let body = json!({ "toparty": FANOUT_DEPT.to_string(), "msgtype": "text", "agentid": w.agentid,
                           "text": { "content": format!("{tag}{k}") } });
        let t = Instant::now();
        w.ok(Method::POST, "message/send", "", Some(body)).await?;
        sent_at.insert(k, t);
        await_all(&mut rx, k, connected, &mut last).await;
    }
    let lat = reach_latencies(&sent_at, &last, connected, "messages");
    Ok(Fanout {
        members,
        connected,
        messages: lat.len(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
    })
}

pub async fn run(
    args: WecomBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    let secs = super::cluster::parse_duration(&args.duration)?;
    if args.members > 2000 {
        bail!("--members must be at most 2000");
    }
    let ca = cert_dir.join("ca.pem");
    let (endpoints, _) = api_endpoints(admin).await?;
    let apis: Vec<Client> = endpoints
        .iter()
        .map(|e| Client::anonymous(e, &ca).map(|c| c.with_timeout(Duration::from_secs(120))))
        .collect::<Result<_, _>>()?;
    eprintln!("setting up {} members with passwords...", args.members);
    ensure_users(admin, args.members).await?;
    let w = app(admin, &apis[0]).await?;
    let _ = w
        .call(
            Method::POST,
            "department/create",
            "",
            Some(json!({ "id": FANOUT_DEPT, "name": "bench-fanout", "parentid": 1 })),
        )
        .await?;
    let sync = if args.rows > 0 {
        Some(full_sync(&w, args.rows.max(args.members), args.members).await?)
    } else {
        None
    };
    let ws: Vec<Wecom> = apis
        .iter()
        .map(|a| Wecom {
            api: a.clone(),
            token: w.token.clone(),
            agentid: w.agentid,
        })
        .collect();
    let creates = if args.clients > 0 {
        Some(creates(&ws, args.clients, secs).await?)
    } else {
        None
    };
    let fan = if args.members > 0 {
        Some(fanout(&w, &apis, &endpoints, &ca, args.members, args.messages).await?)
    } else {
        None
    };
    match output {
        Output::Json => print_json(&json!({ "sync": sync, "user_create": creates, "fanout": fan })),
        Output::Text => {
            if let Some(s) = sync {
                println!(
                    "(a) replaceuser rows={} upload_s={:.1} job_s={:.1} rows/s={:.0} failed_rows={}",
                    s.rows, s.upload_s, s.job_s, s.rows_per_sec, s.failed_rows
                );
            }
            if let Some(c) = creates {
                println!(
                    "(b) user/create clients={} users/s={:.0} p50_ms={:.2} p99_ms={:.2} created={} errors={}",
                    c.clients, c.users_per_sec, c.p50_ms, c.p99_ms, c.created, c.errors
                );
            }
            if let Some(f) = fan {
                println!(
                    "(c) message/send department={} connected={} messages={} send->last-member p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
                    f.members, f.connected, f.messages, f.p50_ms, f.p99_ms, f.max_ms
                );
            }
            Ok(())
        }
    }
}
