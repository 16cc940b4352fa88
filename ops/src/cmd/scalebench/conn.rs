//! Connections that retry what the cluster refuses, and the worker pool
//! that seeding and verifying run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use anyhow::bail;
use futures_util::future::try_join_all;
use http::{Method, StatusCode};
use serde_json::Value;

use super::progress::Progress;
use super::seed::Rng;
use crate::client::{Client, ClientError, Session};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Retries by reason. `another node`: the connection's node did not
/// answer (down, restarting) and the call went to the next node.
#[derive(Debug, Default)]
pub(super) struct Counters([AtomicU64; 5]);
pub(super) const REASONS: [&str; 5] = [
    "503 overloaded",
    "429",
    "503 other",
    "transport",
    "another node",
];
const MOVED: usize = 4;
/// How long a connection that moved stays away from its own node.
const HOME_AGAIN: Duration = Duration::from_secs(5);

impl Counters {
    pub(super) fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Relaxed)).sum()
    }
    pub(super) fn get(&self) -> [u64; 5] {
        self.0.each_ref().map(|c| c.load(Relaxed))
    }
}

#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    /// Retries and moves to another node this call took.
    pub(super) retries: u32,
}

impl Answer {
    /// `503 overloaded`: the status and error code.
    pub(super) fn code(&self) -> String {
        format!(
            "{} {}",
            self.status.as_u16(),
            self.body["error"]["code"].as_str().unwrap_or("-")
        )
    }
    pub(super) fn ok(self, what: impl std::fmt::Display) -> anyhow::Result<Value> {
        if !self.status.is_success() {
            bail!(
                "{what}: HTTP {}: {}",
                self.code(),
                self.body["error"]["message"].as_str().unwrap_or("")
            );
        }
        Ok(self.body)
    }
}

/// One persistent connection. Patient ones (seeding, verifying) retry any
/// 503 and dropped connections for minutes; the run's retry 429 and 503
/// `overloaded` four times. A connection made by [`Conn::spread`] moves
/// to the next node when its node does not answer (a refused or cut
/// connection; not a timeout, nor a TLS refusal), as a client behind a
/// load balancer would:
/// a node restarting to defragment costs its clients a retry, not errors.
#[derive(Debug)]
pub(super) struct Conn {
    session: Session,
    /// This connection's own node first, then the others in the order it
    /// tries them; `at` is the one `session` is to.
    ring: Vec<Client>,
    at: usize,
    /// When it last left its own node (it goes back after [`HOME_AGAIN`]).
    away_since: Option<std::time::Instant>,
    ctr: Arc<Counters>,
    patient: bool,
}

impl Conn {
    /// A connection to `client`'s node only.
    pub(super) fn new(client: &Client, ctr: &Arc<Counters>, patient: bool) -> Conn {
        Conn {
            session: client.session(),
            ring: vec![client.clone()],
            at: 0,
            away_since: None,
            ctr: ctr.clone(),
            patient,
        }
    }

    /// Connection `i` of many: to node `i` (round-robin over `clients`),
    /// moving on to the following ones when its node does not answer.
    pub(super) fn spread(clients: &[Client], i: usize, ctr: &Arc<Counters>, patient: bool) -> Conn {
        let n = clients.len().max(1);
        let mut c = Conn::new(&clients[i % n], ctr, patient);
        c.ring = (0..clients.len())
            .map(|k| clients[(i + k) % n].clone())
            .collect();
        c
    }

    /// `n` connections round-robin over `clients`.
    pub(super) fn many(
        clients: &[Client],
        n: usize,
        ctr: &Arc<Counters>,
        patient: bool,
    ) -> Vec<Conn> {
        (0..n.max(1))
            .map(|i| Conn::spread(clients, i, ctr, patient))
            .collect()
    }

    /// The api endpoint this connection is to now.
    fn endpoint(&self) -> &str {
        self.ring.get(self.at).map_or("", |c| c.endpoint())
    }

    /// Go on with the next node of the ring.
    fn move_on(&mut self) {
        self.go_to((self.at + 1) % self.ring.len().max(1));
        self.away_since.get_or_insert_with(std::time::Instant::now);
        self.ctr.0[MOVED].fetch_add(1, Relaxed);
    }

    fn go_to(&mut self, at: usize) {
        if let Some(c) = self.ring.get(at) {
            self.at = at;
            self.session = c.session();
        }
    }

    pub(super) async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let bytes = body.map(|b| b.to_string().into_bytes());
        let mut h: Vec<(&str, &str)> = Vec::new();
        if bytes.is_some() {
            h.push(("content-type", "application/json"));
        }
        if let Some(a) = &auth {
            h.push(("authorization", a));
        }
        if let Some(k) = key {
            h.push(("idempotency-key", k));
        }
        // Back to its own node a while after leaving it, so that the
        // clients of a node that restarted do not all end up elsewhere.
        if self.away_since.is_some_and(|t| t.elapsed() >= HOME_AGAIN) {
            self.away_since = None;
            self.go_to(0);
        }
        let mut retries = 0u32;
        let mut moved = 0u32;
        loop {
            let r = self
                .session
                .request_with_headers(method.clone(), path, bytes.clone(), &h)
                .await;
            let (status, head, b) = match r {
                Ok(x) => x,
                // This node does not answer: the next one (each once per
                // call). A call cut after the node took it is safe to
                // repeat: sends and group creations carry idempotency
                // keys, read markers and PUTs are idempotent, adding
                // members takes a 409 as "look again", and a repeated
                // login only makes one more session.
                Err(ClientError::Connect { .. } | ClientError::Http { .. })
                    if (moved as usize) + 1 < self.ring.len() =>
                {
                    moved += 1;
                    self.move_on();
                    continue;
                }
                Err(_) if self.patient && retries < 5 => {
                    self.ctr.0[3].fetch_add(1, Relaxed);
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("{method} {}{path}", self.endpoint())));
                }
            };
            let body: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            let which = match (status.as_u16(), body["error"]["code"].as_str()) {
                (503, Some("overloaded")) => 0,
                (429, _) => 1,
                (503, _) if self.patient => 2,
                _ => {
                    return Ok(Answer {
                        status,
                        body,
                        retries: retries + moved,
                    });
                }
            };
            if retries >= if self.patient { 120 } else { 4 } {
                return Ok(Answer {
                    status,
                    body,
                    retries: retries + moved,
                });
            }
            self.ctr.0[which].fetch_add(1, Relaxed);
            retries += 1;
            let after = (head
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.25)
            .clamp(0.05, 5.0);
            // A little jitter, so that refused clients do not all come back at once.
            let jitter = Rng::new(
                retries.into(),
                self.ctr.total() ^ self.endpoint().len() as u64,
            )
            .below(200);
            tokio::time::sleep(
                Duration::from_secs_f64(after) + Duration::from_millis(jitter as u64),
            )
            .await;
        }
    }

    pub(super) async fn get(&mut self, path: &str, token: Option<&str>) -> anyhow::Result<Value> {
        let a = self.call(Method::GET, path, None, token, None).await?;
        a.ok(format_args!("GET {}{path}", self.endpoint()))
    }

    /// Page through `base` (`cursor`/`next_cursor`) from `cursor`, calling
    /// `f` on each item of `field` until it returns false.
    pub(super) async fn paged(
        &mut self,
        base: &str,
        field: &str,
        token: Option<&str>,
        mut cursor: Option<String>,
        mut f: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            let path = match &cursor {
                Some(k) => format!(
                    "{base}{}cursor={}",
                    if base.contains('?') { "&" } else { "?" },
                    enc(k)
                ),
                None => base.to_string(),
            };
            let v = self.get(&path, token).await?;
            for x in v[field].as_array().into_iter().flatten() {
                if !f(x) {
                    return Ok(());
                }
            }
            match v["next_cursor"].as_str() {
                Some(k) => cursor = Some(k.to_string()),
                None => return Ok(()),
            }
        }
    }
}

/// What went wrong with a call that got no answer.
pub(super) fn err_kind(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Timeout { .. }) => "timeout",
        Some(ClientError::Connect { .. }) => "connect",
        _ => "transport",
    }
    .to_string()
}

/// `job(conn, i)` for i in 0..n, a worker per connection; results in
/// order; the first error stops all.
pub(super) async fn pool<R>(
    conns: &mut [Conn],
    n: usize,
    prog: &Progress,
    job: impl AsyncFn(&mut Conn, usize) -> anyhow::Result<R>,
) -> anyhow::Result<Vec<R>> {
    let (next, job) = (&AtomicUsize::new(0), &job);
    let workers = conns.iter_mut().map(|c| async move {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Relaxed);
            if i >= n {
                return Ok::<_, anyhow::Error>(out);
            }
            out.push((i, job(c, i).await?));
            prog.add(1);
        }
    });
    let mut all: Vec<(usize, R)> = try_join_all(workers).await?.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}
