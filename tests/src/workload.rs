//! The failover workload and its recorder: concurrent clients append
//! uniquely-identified messages to group conversations through random
//! nodes (each with its own idempotency key) and read conversations back
//! with linearizable reads; every operation is recorded as invoke + ok /
//! fail / unknown with its times, for [`crate::checker::check`].
//!
//! Outcome rules (conservative, so the checker never blames the cluster
//! for the client's ignorance):
//! - 200 → ok (with the sequence number the message got);
//! - a 4xx answer, or no TCP connection at all → fail (it did not happen);
//! - a 5xx answer, a timeout or a broken connection → unknown (it may have
//!   happened). An unknown append is retried later with the same
//!   idempotency key through another node, which must never make a second
//!   message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enclave_ops::{Client, ClientError, Session};
use http::Method;
use serde_json::{Value, json};

use crate::api::{Api, seed_directory};
use crate::checker::{Event, NodeState, Op, Outcome};
use crate::cluster::TestCluster;

pub const PASSWORD: &str = "failover-Passw0rd!";

/// Small deterministic PRNG (SplitMix64): fixed seeds give repeatable
/// schedules without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() as f64 / u64::MAX as f64) < p
    }
}

/// Users, their tokens and the conversations they write to.
#[derive(Debug, Clone)]
pub struct Setup {
    pub users: Vec<String>,
    pub tokens: Vec<String>,
    pub convs: Vec<String>,
    /// API base URLs, one per node.
    pub urls: Vec<String>,
    pub ca: PathBuf,
}

/// Seed the directory, log `clients` users in and create `convs` groups
/// with all of them as members (before any fault).
pub async fn setup(cluster: &TestCluster, clients: usize, convs: usize) -> Setup {
    let users: Vec<String> = (0..clients).map(|i| format!("w{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    seed_directory(cluster, 0, &refs, PASSWORD).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api_url()).collect();
    let ca = cluster.nodes[0].tls_dir.join("ca.pem");
    let mut tokens = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let api = Api::new(&urls[i % urls.len()], &ca);
        tokens.push(api.login(u, PASSWORD).await);
    }
    let api = Api::new(&urls[0], &ca);
    let mut conv_ids = Vec::new();
    for k in 0..convs {
        let (s, v) = api
            .call(
                Method::POST,
                "/v1/conversations",
                Some(&tokens[0]),
                Some(json!({ "name": format!("failover {k}"), "members": users[1..] })),
            )
            .await;
        assert_eq!(s, 200, "create group: {v}");
        conv_ids.push(v["id"].as_str().expect("conversation id").to_string());
    }
    Setup {
        users,
        tokens,
        convs: conv_ids,
        urls,
        ca,
    }
}

/// The shared, append-only history.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    start: Option<Instant>,
    events: Arc<Mutex<Vec<Event>>>,
    errors: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start: Some(start),
            ..Recorder::default()
        }
    }
    /// Microseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start
            .map(|s| s.elapsed().as_micros() as u64)
            .unwrap_or(0)
    }
    pub fn record(&self, e: Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }
    /// Count one failed or unknown request by its reason.
    pub fn note_error(&self, reason: &str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }
    /// Failed/unknown requests by reason.
    pub fn errors(&self) -> BTreeMap<String, usize> {
        self.errors.lock().map(|m| m.clone()).unwrap_or_default()
    }
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Workload shape.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Fraction of a client's operations that are reads (the suite runs
    /// one writer (0.0) and one reader (1.0) per user).
    pub read_ratio: f64,
    /// Per-request timeout (an unanswered request becomes unknown).
    pub timeout: Duration,
    /// Pause between one client's operations.
    pub think: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            read_ratio: 0.1,
            // Like a real client: give up on a silent node after 2 s and
            // try another (a leader cut off by a partition never answers).
            timeout: Duration::from_secs(2),
            think: Duration::from_millis(5),
        }
    }
}

/// Running clients.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub recorder: Recorder,
}

impl Workload {
    /// One task per user in `setup`.
    pub fn start(setup: &Setup, opts: Options, recorder: Recorder) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        // Writers and readers are separate clients (as in Jepsen): a read
        // stuck on a lagging node must not hold up a writer, or the write
        // unavailability figure would measure the reads.
        for k in 0..setup.users.len() * 2 {
            let c = k % setup.users.len();
            let reader = k >= setup.users.len();
            let mut opts = opts.clone();
            opts.read_ratio = if reader { 1.0 } else { 0.0 };
            if reader {
                opts.think = opts.think.max(Duration::from_millis(50));
            }
            let client = ClientTask {
                id: k,
                token: setup.tokens[c].clone(),
                convs: setup.convs.clone(),
                nodes: setup
                    .urls
                    .iter()
                    .map(|u| {
                        Client::anonymous(u, &setup.ca)
                            .expect("client")
                            .with_timeout(opts.timeout)
                    })
                    .collect(),
                rng: Rng::new(opts.seed.wrapping_mul(1_000_003).wrapping_add(k as u64)),
                rec: recorder.clone(),
                opts: opts.clone(),
                failed: std::sync::atomic::AtomicUsize::new(usize::MAX),
            };
            handles.push(tokio::spawn(client.run(stop.clone())));
        }
        Workload {
            stop,
            handles,
            recorder,
        }
    }

    /// Stop the clients (each finishes its current operation) and return
    /// the history.
    pub async fn stop(self) -> Vec<Event> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        self.recorder.events()
    }
}

struct ClientTask {
    id: usize,
    token: String,
    convs: Vec<String>,
    nodes: Vec<Client>,
    rng: Rng,
    rec: Recorder,
    opts: Options,
    /// The node whose last request failed or timed out (usize::MAX: none).
    failed: std::sync::atomic::AtomicUsize,
}

enum Answer {
    Ok(Value),
    Fail,
    Unknown,
}

impl ClientTask {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        let mut sessions: Vec<Option<Session>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut retry: Vec<(String, String)> = Vec::new();
        let mut n = 0u64;
        // Per conversation, the longest prefix this client has read: the
        // next read starts one message before it (see `read`).
        let mut heads: std::collections::HashMap<String, u64> = Default::default();
        // Like a load balancer's health check: a node that just failed or
        // did not answer is avoided for a few seconds (unless all are), so
        // one frozen node does not capture every client.
        let mut avoid: Vec<Option<std::time::Instant>> = vec![None; self.nodes.len()];
        while !stop.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            let healthy: Vec<usize> = (0..self.nodes.len())
                .filter(|i| avoid[*i].is_none_or(|t| t <= now))
                .collect();
            let node = if healthy.is_empty() {
                self.rng.below(self.nodes.len())
            } else {
                healthy[self.rng.below(healthy.len())]
            };
            if !retry.is_empty() && self.rng.chance(0.5) {
                let (conv, id) = retry.remove(0);
                if self.append(&mut sessions, node, &conv, &id).await {
                    retry.push((conv, id));
                }
            } else if self.rng.chance(self.opts.read_ratio) {
                let conv = self.convs[self.rng.below(self.convs.len())].clone();
                let known = heads.get(&conv).copied().unwrap_or(0);
                if let Some(head) = self.read(&mut sessions, node, &conv, known).await {
                    let h = heads.entry(conv).or_insert(0);
                    *h = (*h).max(head);
                }
            } else {
                let conv = self.convs[self.rng.below(self.convs.len())].clone();
                let id = format!("c{}-{n}", self.id);
                n += 1;
                if self.append(&mut sessions, node, &conv, &id).await {
                    // Unknown: retry with the same key, at most twice more.
                    if retry.len() < 64 {
                        retry.push((conv, id));
                    }
                }
            }
            let bad = self.failed.swap(usize::MAX, Ordering::Relaxed);
            if bad < avoid.len() {
                avoid[bad] = Some(std::time::Instant::now() + Duration::from_secs(3));
            }
            tokio::time::sleep(self.opts.think).await;
        }
    }

    async fn call(
        &self,
        sessions: &mut [Option<Session>],
        node: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let session = sessions[node].get_or_insert_with(|| self.nodes[node].session());
        let r = session
            .request(
                method,
                path,
                body.map(|b| b.to_string().into_bytes()),
                &headers,
            )
            .await;
        match r {
            Ok((status, bytes)) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if status.is_success() {
                    Answer::Ok(v)
                } else {
                    let what = format!(
                        "HTTP {} {}",
                        status.as_u16(),
                        v["error"]["code"].as_str().unwrap_or("")
                    );
                    self.rec.note_error(&what);
                    if status.is_server_error() {
                        self.failed.store(node, Ordering::Relaxed);
                    }
                    sessions[node] = None;
                    // 4xx (but a timeout) and `no_quorum` say the write
                    // was not taken; any other 5xx may hide a commit.
                    let definite = (status.is_client_error() && status.as_u16() != 408)
                        || v["error"]["code"] == "no_quorum";
                    if definite {
                        Answer::Fail
                    } else {
                        Answer::Unknown
                    }
                }
            }
            Err(e) => {
                sessions[node] = None;
                let reason = match &e {
                    ClientError::Connect { .. } => "connection refused",
                    ClientError::Timeout { .. } => "timeout",
                    _ => "connection broken",
                };
                self.rec.note_error(reason);
                self.failed.store(node, Ordering::Relaxed);
                match e {
                    ClientError::Connect { .. } => Answer::Fail,
                    _ => Answer::Unknown,
                }
            }
        }
    }

    /// One append attempt; true when its outcome is unknown.
    async fn append(
        &self,
        sessions: &mut [Option<Session>],
        node: usize,
        conv: &str,
        id: &str,
    ) -> bool {
        let invoked = self.rec.now();
        let answer = self
            .call(
                sessions,
                node,
                Method::POST,
                &format!("/v1/conversations/{conv}/messages"),
                Some(json!({ "text": id, "client_msg_id": id })),
            )
            .await;
        let completed = self.rec.now();
        let (outcome, unknown) = match answer {
            Answer::Ok(v) => (Outcome::Ok(v["seq"].as_u64()), false),
            Answer::Fail => (Outcome::Fail, false),
            Answer::Unknown => (Outcome::Unknown, true),
        };
        self.rec.record(Event {
            client: self.id,
            op: Op::Append {
                conv: conv.to_string(),
                id: id.to_string(),
            },
            invoked,
            completed,
            outcome,
            node,
        });
        unknown
    }

    /// A linearizable read of `conv` through `node`, from one message
    /// before `known` (the longest prefix this client has seen) to the end,
    /// as a syncing client does. Reading the whole conversation every time
    /// made each read cost O(conversation) and the soak's load grow all
    /// run long. The one-message overlap keeps a stale answer visible: a
    /// node whose conversation is shorter than `known` returns nothing, and
    /// the read's head (`from + seen.len()`) falls below `known`. Returns
    /// that head on success.
    async fn read(
        &self,
        sessions: &mut [Option<Session>],
        node: usize,
        conv: &str,
        known: u64,
    ) -> Option<u64> {
        let invoked = self.rec.now();
        let mut seen = Vec::new();
        let from = known.saturating_sub(1);
        let mut after = from;
        let ok = loop {
            let answer = self
                .call(
                    sessions,
                    node,
                    Method::GET,
                    &format!(
                        "/v1/conversations/{conv}/messages?consistency=linearizable&limit=1000&after_seq={after}"
                    ),
                    None,
                )
                .await;
            let Answer::Ok(v) = answer else {
                break false;
            };
            let Some(msgs) = v["messages"].as_array() else {
                break false;
            };
            for m in msgs {
                seen.push(m["text"].as_str().unwrap_or("").to_string());
            }
            match v["next_after_seq"].as_u64() {
                Some(next) if next > after => after = next,
                _ => break true,
            }
        };
        let completed = self.rec.now();
        let head_len = seen.len() as u64;
        self.rec.record(Event {
            client: self.id,
            op: Op::Read {
                conv: conv.to_string(),
                from,
                seen,
            },
            invoked,
            completed,
            outcome: if ok {
                Outcome::Ok(None)
            } else {
                Outcome::Unknown
            },
            node,
        });
        ok.then_some(from + head_len)
    }
}

/// Every conversation's messages on node `i` (a local read of what that
/// node applied), as `(seq, text)`.
pub async fn node_state(
    cluster: &TestCluster,
    setup: &Setup,
    i: usize,
) -> Result<NodeState, String> {
    let client = Client::anonymous(&cluster.nodes[i].api_url(), &setup.ca)
        .map_err(|e| e.to_string())?
        .with_timeout(Duration::from_secs(30));
    let mut session = client.session();
    let auth = format!("Bearer {}", setup.tokens[0]);
    let mut state = BTreeMap::new();
    for conv in &setup.convs {
        let mut msgs = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, bytes) = session
                .request(
                    Method::GET,
                    &format!("/v1/conversations/{conv}/messages?limit=1000&after_seq={after}"),
                    None,
                    &[("authorization", auth.as_str())],
                )
                .await
                .map_err(|e| format!("{}: {e}", cluster.nodes[i].name))?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{}: {status} {v}", cluster.nodes[i].name));
            }
            for m in v["messages"].as_array().into_iter().flatten() {
                msgs.push((
                    m["seq"].as_u64().unwrap_or(0),
                    m["text"].as_str().unwrap_or("").to_string(),
                ));
            }
            match v["next_after_seq"].as_u64() {
                Some(next) if next > after => after = next,
                _ => break,
            }
        }
        state.insert(conv.clone(), msgs);
    }
    Ok(state)
}

/// Counts for a report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub appends_ok: usize,
    pub appends_fail: usize,
    pub appends_unknown: usize,
    pub reads_ok: usize,
    pub reads_failed: usize,
}

pub fn counts(history: &[Event]) -> Counts {
    let mut c = Counts::default();
    for e in history {
        match (&e.op, &e.outcome) {
            (Op::Append { .. }, Outcome::Ok(_)) => c.appends_ok += 1,
            (Op::Append { .. }, Outcome::Fail) => c.appends_fail += 1,
            (Op::Append { .. }, Outcome::Unknown) => c.appends_unknown += 1,
            (Op::Read { .. }, Outcome::Ok(_)) => c.reads_ok += 1,
            (Op::Read { .. }, _) => c.reads_failed += 1,
        }
    }
    c
}

/// The longest stretch (µs) inside `[from, to]` with no acknowledged
/// append completing, and when it began.
pub fn longest_write_gap(history: &[Event], from: u64, to: u64) -> (u64, u64) {
    let mut acks: Vec<u64> = history
        .iter()
        .filter(|e| matches!(e.op, Op::Append { .. }) && matches!(e.outcome, Outcome::Ok(_)))
        .map(|e| e.completed)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    acks.sort_unstable();
    let mut prev = from;
    let mut best = (0, from);
    for t in acks.into_iter().chain(std::iter::once(to)) {
        if t - prev > best.0 {
            best = (t - prev, prev);
        }
        prev = t;
    }
    best
}

/// Time (µs) from `at` until the first append that was invoked at or after
/// `at` was acknowledged: how long writes were unavailable after a fault.
/// `None` if none was.
pub fn recovery_after(history: &[Event], at: u64) -> Option<u64> {
    history
        .iter()
        .filter(|e| matches!(e.op, Op::Append { .. }) && matches!(e.outcome, Outcome::Ok(_)))
        .filter(|e| e.invoked >= at)
        .map(|e| e.completed - at)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(invoked: u64, completed: u64) -> Event {
        Event {
            client: 0,
            op: Op::Append {
                conv: "c".into(),
                id: format!("{invoked}"),
            },
            invoked,
            completed,
            outcome: Outcome::Ok(Some(1)),
            node: 0,
        }
    }

    #[test]
    fn write_gaps_and_recovery_are_measured_from_acknowledgements() {
        let h = vec![ack(0, 10), ack(10, 20), ack(25, 500), ack(600, 650)];
        assert_eq!(longest_write_gap(&h, 0, 700), (480, 20));
        // A write invoked before the fault does not count as recovery.
        assert_eq!(recovery_after(&h, 30), Some(620));
        assert_eq!(recovery_after(&h, 700), None);
    }

    #[test]
    fn the_rng_is_deterministic_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<usize> = (0..100).map(|_| a.below(3)).collect();
        let ys: Vec<usize> = (0..100).map(|_| b.below(3)).collect();
        assert_eq!(xs, ys);
        assert!((0..3).all(|k| xs.contains(&k)));
    }
}
