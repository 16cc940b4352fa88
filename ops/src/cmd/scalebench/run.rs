//! The timed mix: an open-loop scheduler feeding simulated clients, and
//! each operation's statistics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use serde_json::json;

use super::conn::{Conn, Counters, REASONS, err_kind};
use super::progress::Progress;
use super::seed::{Ack, ConvInfo, Listing, PINYIN, Rng, userid};
use super::{OpStats, RunReport, ScaleBench};
use crate::client::Client;
use crate::cmd::msgbench::{PASSWORD, percentile};

const KINDS: [&str; 5] = ["send", "sync", "read", "directory", "login"];
const SEND: usize = 0;
const SYNC: usize = 1;
const READ: usize = 2;
const DIRECTORY: usize = 3;
const LOGIN: usize = 4;

const DRAIN: Duration = Duration::from_secs(30);

/// `send=50,sync=20,…` into weights in the order of [`KINDS`] (0 if absent).
pub(super) fn parse_mix(s: &str) -> anyhow::Result<[u64; 5]> {
    let mut w = [0u64; 5];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = (part.split_once('='))
            .with_context(|| format!("--mix: {part:?} is not NAME=WEIGHT"))?;
        let i = (KINDS.iter().position(|x| *x == k.trim())).with_context(|| {
            format!(
                "--mix: unknown operation {k:?} (one of {})",
                KINDS.join(", ")
            )
        })?;
        w[i] = (v.trim().parse())
            .with_context(|| format!("--mix: weight {v:?} of {k} is not a whole number"))?;
    }
    if w.iter().sum::<u64>() == 0 {
        bail!("--mix: give at least one operation a weight above 0");
    }
    Ok(w)
}

fn pick(w: &[u64; 5], r: u64) -> usize {
    let mut x = r % w.iter().sum::<u64>().max(1);
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    LOGIN
}

/// A simulated client: an active member, its conversations, what it knows.
#[derive(Debug)]
struct Sim {
    idx: usize,
    token: String,
    convs: Vec<String>,
    last: HashMap<String, u64>,
    since: String,
    rng: Rng,
    sent: u64,
    acks: Vec<Ack>,
}

#[derive(Debug)]
struct Shared {
    run_id: u128,
    n: usize,
    text: String,
    prog: Arc<Progress>,
    stop_at: Instant,
}

/// One operation; Ok(retries) or Err((error kind, retries)).
async fn op(st: &mut Sim, c: &mut Conn, kind: usize, sh: &Shared) -> Result<u32, (String, u32)> {
    if st.convs.is_empty() && (kind == SEND || kind == READ) {
        return Err(("no_conversation".to_string(), 0));
    }
    let conv = st
        .convs
        .get(st.rng.below(st.convs.len()))
        .cloned()
        .unwrap_or_default();
    let (method, path, body) = match kind {
        SEND => {
            st.sent += 1;
            let marker = format!("scale-{}-{}-{}", sh.run_id, st.idx, st.sent);
            let body = json!({ "text": format!("{marker} {}", sh.text), "client_msg_id": marker });
            (
                Method::POST,
                format!("/v1/conversations/{conv}/messages"),
                Some(body),
            )
        }
        SYNC => (
            Method::GET,
            format!("/v1/sync?since={}&limit=500", st.since),
            None,
        ),
        READ => {
            let seq = st.last.get(&conv).copied().unwrap_or(0);
            (
                Method::POST,
                format!("/v1/conversations/{conv}/read"),
                Some(json!({ "seq": seq })),
            )
        }
        DIRECTORY if st.rng.next().is_multiple_of(2) => {
            let q = PINYIN[st.rng.below(PINYIN.len())];
            (
                Method::GET,
                format!("/v1/directory/members?q={q}&limit=20"),
                None,
            )
        }
        DIRECTORY => (
            Method::GET,
            format!("/v1/directory/members/{}", userid(st.rng.below(sh.n))),
            None,
        ),
        _ => {
            let body = json!({ "userid": userid(st.idx), "password": PASSWORD });
            (Method::POST, "/v1/login".to_string(), Some(body))
        }
    };
    let token = (kind != LOGIN).then_some(st.token.as_str());
    let a =
        (c.call(method, &path, body.as_ref(), token, None).await).map_err(|e| (err_kind(&e), 0))?;
    if !a.status.is_success() {
        return Err((a.code(), a.retries));
    }
    if kind == SEND {
        let ack = Ack::from_answer(st.idx, &a.body).ok_or(("bad_answer".to_string(), a.retries))?;
        let last = st.last.entry(ack.conv.clone()).or_default();
        *last = (*last).max(ack.seq);
        st.acks.push(ack);
    } else if kind == SYNC {
        if let Some(next) = a.body["next"].as_str() {
            st.since = next.to_string();
        }
        for m in a.body["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["message"])
        {
            if let (Some(conv), Some(seq)) = (m["conversation"].as_str(), m["seq"].as_u64()) {
                let last = st.last.entry(conv.to_string()).or_default();
                *last = (*last).max(seq);
            }
        }
    }
    Ok(a.retries)
}

/// An empty [`OpStats`] for each of [`KINDS`], in order.
fn no_stats() -> Vec<OpStats> {
    KINDS
        .iter()
        .map(|kind| OpStats {
            kind,
            ..Default::default()
        })
        .collect()
}

/// A client's loop: its operations in order, each timed from when it was
/// scheduled.
async fn simulate(
    mut st: Sim,
    mut c: Conn,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>,
    sh: Arc<Shared>,
) -> (Vec<OpStats>, Vec<Ack>) {
    let mut stats = no_stats();
    while let Some((kind, at)) = rx.recv().await {
        let r = match Instant::now() > sh.stop_at {
            true => Err(("abandoned".to_string(), 0)),
            false => op(&mut st, &mut c, kind, &sh).await,
        };
        let s = &mut stats[kind];
        s.count += 1;
        match r {
            Ok(n) => {
                s.retries += u64::from(n);
                s.ok += 1;
                s.lat.push(at.elapsed().as_secs_f64() * 1000.0);
            }
            Err((k, n)) => {
                s.retries += u64::from(n);
                *s.errors.entry(k).or_default() += 1;
            }
        }
        sh.prog.add(1);
    }
    (stats, st.acks)
}

/// The open loop: operation k at t0 + k/rate, to client k % clients.
pub(super) async fn drive(
    args: &ScaleBench,
    secs: u64,
    n: usize,
    apis: &[Client],
    tokens: &[String],
    lists: Vec<Listing>,
    ctr: &Arc<Counters>,
) -> anyhow::Result<(RunReport, Vec<Ack>)> {
    let (mix, r0) = (parse_mix(&args.mix)?, ctr.get());
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let total = (secs as f64 * args.rate).round() as u64;
    let prog = Progress::start("run", total as usize);
    let t0 = Instant::now() + Duration::from_millis(200);
    let sh = Arc::new(Shared {
        run_id: since_epoch.map(|d| d.as_millis()).unwrap_or(0),
        n,
        text: "消息内容".repeat(20),
        prog: prog.clone(),
        stop_at: t0 + Duration::from_secs(secs) + DRAIN,
    });
    let (mut txs, mut tasks) = (Vec::new(), Vec::new());
    for (i, l) in lists.into_iter().enumerate() {
        let convs: Vec<ConvInfo> = l
            .convs
            .into_iter()
            .filter(|c| c.kind == "group" || c.kind == "direct")
            .collect();
        let st = Sim {
            idx: i,
            token: tokens[i].clone(),
            last: convs.iter().map(|c| (c.id.clone(), c.last_seq)).collect(),
            convs: convs.into_iter().map(|c| c.id).collect(),
            since: l.head.to_string(),
            rng: Rng::new(args.seed, 0xC_0000_0000 + i as u64),
            sent: 0,
            acks: Vec::new(),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let c = Conn::spread(apis, i, ctr, false);
        tasks.push(tokio::spawn(simulate(st, c, rx, sh.clone())));
        txs.push(tx);
    }
    let mut rng = Rng::new(args.seed, 0xD_0000_0000);
    for k in 0..total {
        let at = t0 + Duration::from_secs_f64(k as f64 / args.rate);
        tokio::time::sleep_until(at.into()).await;
        let _ = txs[k as usize % txs.len()].send((pick(&mix, rng.next()), at));
    }
    drop(txs);
    let mut ops = no_stats();
    let mut acks = Vec::new();
    for t in tasks {
        let (stats, a) = t.await.context("a simulated client failed")?;
        for (o, s) in ops.iter_mut().zip(stats) {
            (o.count, o.ok, o.retries) = (o.count + s.count, o.ok + s.ok, o.retries + s.retries);
            o.lat.extend(s.lat);
            for (k, v) in s.errors {
                *o.errors.entry(k).or_default() += v;
            }
        }
        acks.extend(a);
    }
    let seconds = t0.elapsed().as_secs_f64();
    prog.finish();
    for o in &mut ops {
        o.lat.sort_by(f64::total_cmp);
        (o.p50_ms, o.p99_ms, o.p999_ms) = (
            percentile(&o.lat, 0.5),
            percentile(&o.lat, 0.99),
            percentile(&o.lat, 0.999),
        );
        o.max_ms = o.lat.last().copied().unwrap_or(0.0);
    }
    let ok: u64 = ops.iter().map(|o| o.ok).sum();
    let run = RunReport {
        seconds,
        target_rate: args.rate,
        clients: args.clients,
        endpoints: apis.iter().map(|a| a.endpoint().to_string()).collect(),
        scheduled: total,
        ok,
        errors: total - ok,
        ops_per_sec: ok as f64 / seconds.max(1e-9),
        cpu_us_per_op: None,
        retried: (REASONS.into_iter().zip(ctr.get().into_iter().zip(r0)))
            .map(|(k, (a, b))| (k, a - b))
            .collect(),
        ops,
    };
    Ok((run, acks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_parses_refuses_and_picks_by_weight() {
        let w = [50, 20, 10, 15, 5];
        assert_eq!(
            parse_mix("send=50,sync=20,read=10,directory=15,login=5").ok(),
            Some(w)
        );
        assert_eq!(parse_mix(" sync = 1 ,").ok(), Some([0, 1, 0, 0, 0]));
        for bad in ["send", "post=1", "send=x", "send=-1", "send=0", ""] {
            assert!(parse_mix(bad).is_err(), "{bad:?} accepted");
        }
        let (mut n, mut r) = ([0u32; 5], Rng::new(1, 2));
        for _ in 0..100_000 {
            n[pick(&w, r.next())] += 1;
        }
        for (i, wi) in w.iter().enumerate() {
            assert!(
                (f64::from(n[i]) / 1000.0 - *wi as f64).abs() < 1.0,
                "{i}: {n:?}"
            );
        }
    }
}
