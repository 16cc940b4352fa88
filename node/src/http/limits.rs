//! In-memory rate limits of this node (not replicated): requests per
//! token, failed logins per source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;

use super::ApiError;

/// Token buckets by key: `rate` requests/s (0 = unlimited), bursts up to
/// `burst`. Bounded: idle buckets are forgotten past 100,000 keys.
#[derive(Debug)]
pub struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
    pub rate: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: std::hash::Hash + Eq + Copy> Buckets<K> {
    pub fn new(rate: u64, burst: u64) -> Self {
        Buckets {
            map: Mutex::default(),
            rate: rate as f64,
            burst: burst as f64,
        }
    }

    /// Take one request from `key`'s bucket; false if it is empty.
    pub fn take(&self, key: K) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }
}

/// In-memory limits of this node: requests per member token and per app,
/// failed logins per source address.
#[derive(Debug)]
pub struct Limits {
    tokens: Buckets<[u8; 32]>,
    /// Requests per integrated app (by agentid), on this node.
    pub apps: Buckets<u32>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub failures_per_source: u32,
    pub failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(50, 200)
    }
}

impl Limits {
    /// `rate` requests/s per member token (0 = unlimited), bursts up to
    /// `burst`; apps get the defaults of `apps.rate_per_sec` until
    /// [`Limits::with_apps`].
    pub fn new(rate: u64, burst: u64) -> Limits {
        Limits {
            tokens: Buckets::new(rate, burst),
            apps: Buckets::new(200, 1000),
            failures: Mutex::default(),
            failures_per_source: 20,
            failure_window: Duration::from_secs(300),
        }
    }

    pub fn with_apps(mut self, rate: u64, burst: u64) -> Limits {
        self.apps = Buckets::new(rate, burst);
        self
    }

    pub fn check_token(&self, hash: &[u8; 32]) -> Result<(), ApiError> {
        if self.tokens.take(*hash) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests/s with this token; slow down",
                self.tokens.rate
            ),
        ))
    }

    /// Refuse a login attempt from an address with too many recent failures.
    pub fn check_source(&self, ip: IpAddr) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, since)) = map.get(&ip)
            && *n >= self.failures_per_source
            && since.elapsed() < self.failure_window
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!(
                    "too many failed logins from {ip}; try again in {} s",
                    self.failure_window
                        .saturating_sub(since.elapsed())
                        .as_secs()
                ),
            ));
        }
        Ok(())
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let window = self.failure_window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.failure_window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
}
