//! In-memory rate limits of this node (not replicated): requests per
//! token, failed logins per source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;

use super::ApiError;

/// In-memory limits of this node: requests per token, failed logins per
/// source address.
#[derive(Debug)]
pub struct Limits {
    tokens: Mutex<HashMap<[u8; 32], Bucket>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub per_token_rps: f64,
    pub per_token_burst: f64,
    pub failures_per_source: u32,
    pub failure_window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens: Mutex::default(),
            failures: Mutex::default(),
            per_token_rps: 50.0,
            per_token_burst: 200.0,
            failures_per_source: 20,
            failure_window: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// `rate` requests/s per token (0 = unlimited), bursts up to `burst`.
    pub fn new(rate: u64, burst: u64) -> Limits {
        Limits {
            per_token_rps: rate as f64,
            per_token_burst: burst as f64,
            ..Default::default()
        }
    }

    pub fn check_token(&self, hash: &[u8; 32]) -> Result<(), ApiError> {
        if self.per_token_rps <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bounded: forget idle buckets.
            map.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
        }
        let b = map.entry(*hash).or_insert(Bucket {
            tokens: self.per_token_burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.per_token_rps;
        b.tokens = (b.tokens + refill).min(self.per_token_burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} requests/s with this token; slow down",
                    self.per_token_rps
                ),
            ));
        }
        b.tokens -= 1.0;
        Ok(())
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
