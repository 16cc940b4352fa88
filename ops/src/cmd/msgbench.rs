//! `enclavectl bench messages`: the messaging benchmark against a running
//! cluster (start one with `ENCLAVE_API__TOKEN_RATE_PER_SEC=0
//! ops/dev-cluster.sh --release`: bulk senders exceed the per-token limit).
//!
//! (a) throughput: `--senders` members send 1:1 messages into
//! `--conversations` conversations for `--duration`, spread over every
//! node's api port; messages/s and send→ack p50/p99, then a check that
//! every acknowledged message is stored with its sequence number.
//! (b) fan-out: one group of `--members` members, every member connected by
//! WebSocket (spread over the nodes); the owner sends `--fanout-messages`
//! messages one at a time; for each, send → last member received.
//!
//! Setup (users, passwords) goes through the admin port and is reused on
//! later runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Args)]
pub struct MessagesBench {
    /// Concurrent senders (phase a).
    #[arg(long, default_value_t = 64)]
    pub senders: usize,
    /// Conversations the senders write into (phase a).
    #[arg(long, default_value_t = 1000)]
    pub conversations: usize,
    /// Length of phase a, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Group size, every member connected by WebSocket (phase b); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Messages sent into the group, one at a time (phase b).
    #[arg(long, default_value_t = 30)]
    pub fanout_messages: usize,
    /// Where phase (a)'s senders connect: the leader only (as etcd's
    /// benchmark clients do) or every node (followers forward).
    #[arg(long, value_enum, default_value_t = super::bench::Target::All)]
    pub target: super::bench::Target,
    /// Text length in characters.
    #[arg(long, default_value_t = 100)]
    pub text_size: usize,
}

pub(crate) const PASSWORD: &str = "bench-password-1";

pub(crate) fn user(i: usize) -> String {
    format!("bench-{i:05}")
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Debug, Serialize)]
struct Throughput {
    senders: usize,
    conversations: usize,
    seconds: f64,
    acknowledged: u64,
    errors: u64,
    messages_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// CPU-µs per acknowledged message, all nodes together.
    cpu_us_per_msg: Option<f64>,
    verified: bool,
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

/// Every node's api endpoint, from the cluster status, and the leader's.
pub(crate) async fn api_endpoints(admin: &Client) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let status: Value = admin.get_json("/v1/cluster/status").await?;
    let leader = status["leader"].as_str().map(str::to_string);
    let mut leader_api = None;
    // Voters as the answering node knows them: `[id, {name, api, ...}]`.
    let mut out: Vec<String> = Vec::new();
    for m in status["members"].as_array().into_iter().flatten() {
        for v in m["status"]["voters"].as_array().into_iter().flatten() {
            if let Some(api) = v[1]["api"].as_str().filter(|a| !a.is_empty()) {
                let url = format!("https://{api}");
                if v[1]["name"].as_str().map(str::to_string) == leader {
                    leader_api = Some(url.clone());
                }
                if !out.contains(&url) {
                    out.push(url);
                }
            }
        }
    }
    if out.is_empty() {
        bail!("no api endpoints in the cluster status (is the cluster initialized?)");
    }
    Ok((out, leader_api))
}

/// Make sure the root department (id 1, which bench members join)
/// exists; it is created as "Enterprise" if not.
pub(crate) async fn ensure_root_department(admin: &Client) -> anyhow::Result<()> {
    let depts: serde_json::Value = admin.get_json("/v1/directory/departments").await?;
    let has_root = depts["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["id"] == 1);
    if has_root {
        return Ok(());
    }
    let (s, b) = admin
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(json!({ "name": "Enterprise" }).to_string().into_bytes()),
        )
        .await?;
    if !s.is_success() {
        bail!(
            "creating the root department: {s} {}",
            String::from_utf8_lossy(&b)
        );
    }
    Ok(())
}

/// Create the bench users that do not exist yet (8 at a time).
pub(crate) async fn ensure_users(admin: &Client, n: usize) -> anyhow::Result<()> {
    ensure_root_department(admin).await?;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let admin = admin.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                // Existing users are kept (hashing a password is slow on purpose).
                let (s, _) = admin
                    .request(Method::GET, &format!("/v1/directory/members/{}", user(i)), None)
                    .await?;
                if s.is_success() {
                    continue;
                }
                let body = json!({ "userid": user(i), "name": format!("Bench {i}"), "departments": [1], "password": PASSWORD });
                let (s, b) = admin
                    .request(Method::POST, "/v1/directory/members", Some(body.to_string().into_bytes()))
                    .await?;
                if !s.is_success() && s.as_u16() != 409 {
                    bail!("creating {}: {s} {}", user(i), String::from_utf8_lossy(&b));
                }
                if i % 200 == 199 {
                    eprintln!("  users: {}/{n}", i + 1);
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("setup task")??;
    }
    eprintln!(
        "  {n} users ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) async fn login(api: &Client, userid: &str) -> anyhow::Result<String> {
    let v: Value = api
        .post_json(
            "/v1/login",
            &json!({ "userid": userid, "password": PASSWORD }),
        )
        .await
        .with_context(|| format!("logging in {userid}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access token in the login answer")
}

/// Log in users `0..n`, 8 at a time, round-robin over the endpoints.
pub(crate) async fn login_all(apis: &[Client], n: usize) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let apis = apis.to_vec();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                out.push((i, login(&apis[i % apis.len()], &user(i)).await?));
            }
        }));
    }
    let mut tokens = vec![String::new(); n];
    for t in tasks {
        for (i, tok) in t.await.context("login task")?? {
            tokens[i] = tok;
        }
    }
    Ok(tokens)
}

pub async fn run(
    args: MessagesBench,
    admin: &Client,
    cert_dir: &Path,
    output: Output,
) -> anyhow::Result<()> {
    let secs = super::cluster::parse_duration(&args.duration)?;
    if secs == 0 || secs > 3600 {
        bail!("--duration must be between 1s and 1h");
    }
    if args.senders == 0 || args.senders > 1024 {
        bail!("--senders must be between 1 and 1024");
    }
    if args.conversations < args.senders || args.conversations > 100_000 {
        bail!("--conversations must be between --senders and 100000");
    }
    if args.members > 2000 {
        bail!("--members must be at most 2000 (the default group limit)");
    }
    let ca = cert_dir.join("ca.pem");
    let (endpoints, leader_api) = api_endpoints(admin).await?;
    let apis: Vec<Client> = endpoints
        .iter()
        .map(|e| Client::anonymous(e, &ca).map(|c| c.with_timeout(Duration::from_secs(15))))
        .collect::<Result<_, _>>()?;
    // Users: senders plus one peer per conversation, and the group.
    let users = (args.senders + args.conversations).max(args.members);
    eprintln!("setting up {users} users...");
    ensure_users(admin, users).await?;
    let text: String = "消".repeat(args.text_size.max(1));

    // ---- (a) throughput
    eprintln!(
        "(a) {} senders into {} conversations for {secs}s...",
        args.senders, args.conversations
    );
    let tokens = login_all(&apis, args.senders).await?;
    let sender_apis: Vec<Client> = match (args.target, &leader_api) {
        (super::bench::Target::Leader, Some(l)) => {
            vec![Client::anonymous(l, &ca)?.with_timeout(Duration::from_secs(15))]
        }
        (super::bench::Target::Leader, None) => bail!("no leader known"),
        (super::bench::Target::All, _) => apis.clone(),
    };
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let cpu = super::scalebench::CpuMeter::start(admin, cert_dir).await;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, token) in tokens.iter().enumerate() {
        // Conversation c belongs to sender c % senders, with peer senders + c.
        let peers: Vec<String> = (0..args.conversations)
            .filter(|c| c % args.senders == s)
            .map(|c| user(args.senders + c))
            .collect();
        let mut session = sender_apis[s % sender_apis.len()].session();
        let auth = format!("Bearer {token}");
        let text = text.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut acked: Vec<(String, u64, String)> = Vec::new();
            let mut errors = 0u64;
            let mut i = 0usize;
            while Instant::now() < deadline {
                let peer = &peers[i % peers.len()];
                let id = format!("{run_id}-{s}-{i}");
                i += 1;
                let body = json!({ "text": text, "client_msg_id": id })
                    .to_string()
                    .into_bytes();
                let t = Instant::now();
                match session
                    .request(
                        Method::POST,
                        &format!("/v1/direct/{peer}/messages"),
                        Some(body),
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                    )
                    .await
                {
                    Ok((st, b)) if st.is_success() => {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        let v: Value = serde_json::from_slice(&b).unwrap_or_default();
                        acked.push((
                            v["conversation"].as_str().unwrap_or_default().to_string(),
                            v["seq"].as_u64().unwrap_or(0),
                            id,
                        ));
                    }
                    Ok((st, _)) if st.as_u16() == 429 => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => {
                        errors += 1;
                        // Say what went wrong (the first few times).
                        if errors <= 3 {
                            match other {
                                Ok((st, b)) => eprintln!(
                                    "  sender {s}: HTTP {st}: {}",
                                    String::from_utf8_lossy(&b)
                                ),
                                Err(e) => eprintln!("  sender {s}: {e}"),
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (lat, acked, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut acked = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, a, e) = t.await.context("sender task")?;
        lat.extend(l);
        acked.extend(a);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_us_per_msg = cpu.per_op(acked.len() as u64).await;
    lat.sort_by(f64::total_cmp);
    eprintln!("  verifying {} acknowledged messages...", acked.len());
    let verified = verify(&apis[0], &tokens, args.senders, &acked).await?;
    let a = Throughput {
        senders: args.senders,
        conversations: args.conversations,
        seconds: elapsed,
        acknowledged: acked.len() as u64,
        errors,
        messages_per_sec: acked.len() as f64 / elapsed,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        cpu_us_per_msg,
        verified,
    };
    if output == Output::Text {
        println!(
            "(a) senders={} conversations={} messages/s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.1} cpu_us_per_msg={} acked={} errors={} verified={}",
            a.senders,
            a.conversations,
            a.messages_per_sec,
            a.p50_ms,
            a.p99_ms,
            a.max_ms,
            a.cpu_us_per_msg.map_or("?".into(), |c| format!("{c:.0}")),
            a.acknowledged,
            a.errors,
            a.verified
        );
        if a.errors > 0 {
            println!(
                "    (errors include 429 rate_limited: run the cluster with ENCLAVE_API__TOKEN_RATE_PER_SEC=0)"
            );
        }
    }
    if !verified {
        bail!("acknowledged messages are missing or wrong in the store");
    }

    // ---- (b) fan-out
    let b = if args.members >= 2 {
        Some(fanout(&args, admin, &apis, &endpoints, &ca).await?)
    } else {
        None
    };
    if let (Output::Text, Some(b)) = (output, &b) {
        println!(
            "(b) members={} connected={} messages={} send->last-member p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
            b.members, b.connected, b.messages, b.p50_ms, b.p99_ms, b.max_ms
        );
    }
    if output == Output::Json {
        print_json(&json!({ "throughput": a, "fanout": b, "endpoints": endpoints }))?;
    }
    Ok(())
}

/// Every acknowledged message is stored under its sequence number, once.
async fn verify(
    api: &Client,
    tokens: &[String],
    senders: usize,
    acked: &[(String, u64, String)],
) -> anyhow::Result<bool> {
    // Group by conversation; read each as its sender (conversation c belongs
    // to sender c % senders, and the sender is the one who acked it).
    let mut by_conv: HashMap<&str, Vec<u64>> = HashMap::new();
    for (conv, seq, _) in acked {
        by_conv.entry(conv.as_str()).or_default().push(*seq);
    }
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, (conv, _, id)) in acked.iter().enumerate() {
        let _ = i;
        let s: usize = id
            .split('-')
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        owner.insert(conv.as_str(), s % senders);
    }
    let mut session = api.session();
    let mut ok = true;
    for (conv, seqs) in &by_conv {
        let auth = format!("Bearer {}", tokens[owner[conv]]);
        let mut stored = std::collections::HashSet::new();
        let mut after = 0u64;
        loop {
            let (s, b) = session
                .request(
                    Method::GET,
                    &format!("/v1/conversations/{conv}/messages?after_seq={after}&limit=1000"),
                    None,
                    &[("authorization", &auth)],
                )
                .await?;
            if !s.is_success() {
                bail!("reading {conv}: {s} {}", String::from_utf8_lossy(&b));
            }
            let v: Value = serde_json::from_slice(&b)?;
            for m in v["messages"].as_array().into_iter().flatten() {
                stored.insert(m["seq"].as_u64().unwrap_or(0));
            }
            match v["next_after_seq"].as_u64() {
                Some(n) => after = n,
                None => break,
            }
        }
        let mut uniq = seqs.clone();
        uniq.sort_unstable();
        uniq.dedup();
        if uniq.len() != seqs.len() {
            eprintln!("{conv}: two acknowledgements share a sequence number");
            ok = false;
        }
        let missing = seqs.iter().filter(|s| !stored.contains(s)).count();
        if missing > 0 {
            eprintln!("{conv}: {missing} acknowledged messages missing");
            ok = false;
        }
    }
    Ok(ok)
}

async fn fanout(
    args: &MessagesBench,
    admin: &Client,
    apis: &[Client],
    endpoints: &[String],
    ca: &Path,
) -> anyhow::Result<Fanout> {
    let n = args.members;
    eprintln!("(b) group of {n}: logging in every member...");
    let _ = admin;
    let tokens = login_all(apis, n).await?;
    let owner_api = &apis[0];
    let members: Vec<String> = (1..n).map(user).collect();
    let mut session = owner_api.session();
    let auth = format!("Bearer {}", tokens[0]);
    let (s, b) = session
        .request(
            Method::POST,
            "/v1/conversations",
            Some(
                json!({ "name": "fan-out bench", "members": members })
                    .to_string()
                    .into_bytes(),
            ),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
        )
        .await?;
    if !s.is_success() {
        bail!("creating the group: {s} {}", String::from_utf8_lossy(&b));
    }
    let group: Value = serde_json::from_slice(&b)?;
    let conv = group["id"].as_str().unwrap_or_default().to_string();
    let head: Value = {
        let (_, b) = session
            .request(Method::GET, "/v1/me", None, &[("authorization", &auth)])
            .await?;
        serde_json::from_slice(&b)?
    };
    let since = head["sync_head"].as_u64().unwrap_or(0);
    eprintln!("  connecting {n} WebSockets...");
    let tag = conv.clone();
    let (connected, mut rx) = connect_members(
        &tokens,
        endpoints,
        since,
        ca,
        args.fanout_messages,
        Arc::new(move |v: &Value| {
            (v["type"] == "message" && v["conversation"] == tag.as_str())
                .then(|| v["message"]["seq"].as_u64().unwrap_or(0))
        }),
    )
    .await?;
    eprintln!(
        "  {connected}/{n} connected; sending {} messages...",
        args.fanout_messages
    );
    let text: String = "通知".repeat(args.text_size.max(2) / 2);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut last: HashMap<u64, (usize, Instant)> = HashMap::new();
    for k in 0..args.fanout_messages {
        let t = Instant::now();
        let (s, b) = session
            .request(
                Method::POST,
                &format!("/v1/conversations/{conv}/messages"),
                Some(
                    json!({ "text": text, "client_msg_id": format!("fan-{k}-{since}") })
                        .to_string()
                        .into_bytes(),
                ),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
            )
            .await?;
        if !s.is_success() {
            bail!(
                "sending into the group: {s} {}",
                String::from_utf8_lossy(&b)
            );
        }
        let v: Value = serde_json::from_slice(&b)?;
        let seq = v["seq"].as_u64().unwrap_or(0);
        sent_at.insert(seq, t);
        // Wait until every connected member has it (bounded), so each
        // message is measured on its own.
        await_all(&mut rx, seq, connected, &mut last).await;
    }
    let lat = reach_latencies(&sent_at, &last, connected, "messages");
    Ok(Fanout {
        members: n,
        connected,
        messages: lat.len(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
    })
}

/// What a member's stream reports: a frame's key if it is one being
/// measured.
pub(crate) type KeyOf = Arc<dyn Fn(&Value) -> Option<u64> + Send + Sync>;

/// Connect one WebSocket per token (round-robin over `endpoints`) from
/// `since`. Each reports `(key, received at)` for every frame `key_of`
/// recognises, until it has seen `per_member`. Returns how many connected
/// and the reports.
pub(crate) async fn connect_members(
    tokens: &[String],
    endpoints: &[String],
    since: u64,
    ca: &Path,
    per_member: usize,
    key_of: KeyOf,
) -> anyhow::Result<(usize, tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>)> {
    let mut tls = enclave_certs::tls::anonymous_client_config(ca)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for (i, token) in tokens.iter().enumerate() {
        let addr = endpoints[i % endpoints.len()]
            .trim_start_matches("https://")
            .to_string();
        let connector = connector.clone();
        let token = token.clone();
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let key_of = key_of.clone();
        tokio::spawn(async move {
            let ws = async {
                let tcp = tokio::net::TcpStream::connect(&addr).await?;
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(h, _)| h)
                    .to_string();
                let name = rustls::pki_types::ServerName::try_from(host)?;
                let stream = connector.connect(name, tcp).await?;
                let url = format!("wss://{addr}/v1/stream?since={since}&access_token={token}");
                let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
                Ok::<_, anyhow::Error>(ws)
            }
            .await;
            let Ok(mut ws) = ws else {
                let _ = ready.send(false);
                return;
            };
            let mut seen = 0;
            let mut signalled = false;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if v["type"] == "synced" && !signalled {
                    signalled = true;
                    let _ = ready.send(true);
                } else if let Some(k) = key_of(&v) {
                    let _ = tx.send((k, Instant::now()));
                    seen += 1;
                    if seen >= per_member {
                        break;
                    }
                }
            }
        });
    }
    drop(ready_tx);
    let mut connected = 0;
    for _ in 0..tokens.len() {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(true)) => connected += 1,
            Ok(Some(false)) => {}
            _ => break,
        }
    }
    Ok((connected, rx))
}

/// Sorted latencies (ms) from each send to the last of `connected`
/// members having it; sends that did not reach everyone are left out and
/// counted on stderr.
pub(crate) fn reach_latencies(
    sent_at: &HashMap<u64, Instant>,
    last: &HashMap<u64, (usize, Instant)>,
    connected: usize,
    what: &str,
) -> Vec<f64> {
    let mut lat: Vec<f64> = sent_at
        .iter()
        .filter_map(|(k, t)| {
            let (count, at) = last.get(k)?;
            (*count >= connected).then(|| at.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    if lat.len() < sent_at.len() {
        eprintln!(
            "  {} of {} {what} did not reach every connected member",
            sent_at.len() - lat.len(),
            sent_at.len()
        );
    }
    lat.sort_by(f64::total_cmp);
    lat
}

/// Collect reports until `connected` members have `key` (at most 30 s):
/// `last[key]` = (members that have it, when the last one got it).
pub(crate) async fn await_all(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    key: u64,
    connected: usize,
    last: &mut HashMap<u64, (usize, Instant)>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while last.get(&key).map_or(0, |(c, _)| *c) < connected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((k, at))) => {
                let e = last.entry(k).or_insert((0, at));
                e.0 += 1;
                e.1 = e.1.max(at);
            }
            _ => break,
        }
    }
}
