//! The latency bound: how many requests this node serves at once, adapted
//! to how quickly it answers.
//!
//! A fixed count (`api.max_concurrent_requests`) alone is the wrong bound
//! for a surge: the count that keeps answers quick depends on the machine,
//! the data and the mix. Measured at 160,000 members, 1,000 clients put
//! ~330 requests in flight on each node, well under the count, and each
//! was answered after ~1.3 s: queued, not refused.
//!
//! So every [`INTERVAL`] the node looks at the *median* time of the
//! answers it gave in that interval. When the median of two intervals in
//! a row is over the target (`api.latency_target_ms`), requests are
//! standing in a queue, not passing in a burst (a burst drains within an
//! interval, as CoDel assumes); the bound then drops to 9/10 of what is
//! in flight (once an interval, never below [`FLOOR`]) and requests beyond
//! it are refused at once with 503 `overloaded` and `Retry-After`. While
//! the median is within the target the bound grows by one each interval,
//! up to the fixed count (additive increase, multiplicative decrease, as
//! TCP's congestion window): from the floor back to the default 2,048 in
//! under 3.5 minutes — slowly on purpose, as the clients refused a moment
//! ago come back after `Retry-After`.
//!
//! Why the median and not CoDel's minimum: CoDel watches a FIFO queue,
//! where every packet waits behind the queue. Requests here share the
//! cores (tokio runs them all a little at a time), so a cheap lookup is
//! still answered within tens of milliseconds while a send waits seconds:
//! at 160k members the fastest answer stayed under 100 ms with ~300
//! requests in flight per node and a median over a second.
//!
//! Not samples: refusals (they did no work) and requests whose time is set
//! by something other than this node's queue — password hashing (bounded
//! on its own, [`super::Admission::hashing`]) and file transfers (paced by
//! the client's network) — which call [`not_a_sample`].

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often the bound is reconsidered, and the span whose median answer
/// time decides.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The bound never drops below this (or the fixed count, if smaller): a
/// few dozen requests at once are never refused for slowness.
pub const FLOOR: usize = 32;
/// Answer times kept per interval (beyond, the interval's first ones
/// decide).
const MAX_SAMPLES: usize = 4096;

tokio::task_local! {
    static NOT_A_SAMPLE: Cell<bool>;
}

/// Mark the request being served as not a latency sample (its time is not
/// this node's queue). Outside a request it does nothing.
pub fn not_a_sample() {
    let _ = NOT_A_SAMPLE.try_with(|c| c.set(true));
}

/// Run `fut` (a request being served); also whether it is a sample.
pub async fn scoped<F: Future>(fut: F) -> (F::Output, bool) {
    NOT_A_SAMPLE
        .scope(Cell::new(false), async {
            let out = fut.await;
            let sample = !NOT_A_SAMPLE.with(Cell::get);
            (out, sample)
        })
        .await
}

#[derive(Debug)]
pub struct LatencyBound {
    /// `None`: the bound stays at `max` (`api.latency_target_ms` = 0).
    target: Option<Duration>,
    max: usize,
    floor: usize,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    /// Answer times of this interval (at most [`MAX_SAMPLES`]).
    samples: Vec<Duration>,
    /// Whether the last complete interval's median was over the target.
    over: bool,
    /// The median of the last complete interval (for messages).
    last: Option<Duration>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: usize,
    /// The median answer time of the last interval, when that is why.
    pub slow: Option<Duration>,
}

/// A request being served: counted until dropped.
#[derive(Debug)]
pub struct Entered<'a> {
    bound: &'a LatencyBound,
    pub started: Instant,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.bound.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Entered<'_> {
    /// The request was answered at `now`; `sample`: its time counts.
    /// The new bound, when this answer changed it.
    pub fn answered(self, now: Instant, sample: bool) -> Option<usize> {
        if !sample {
            return None;
        }
        self.bound
            .record(now.saturating_duration_since(self.started), now)
    }
}

impl LatencyBound {
    pub fn new(max: usize, target: Option<Duration>, now: Instant) -> LatencyBound {
        LatencyBound {
            target,
            max,
            floor: FLOOR.min(max),
            limit: AtomicUsize::new(max),
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(Window {
                start: now,
                samples: Vec::new(),
                over: false,
                last: None,
            }),
        }
    }

    /// Take a place for a request started at `now`, or refuse.
    pub fn enter(&self, now: Instant) -> Result<Entered<'_>, Refused> {
        let limit = self.limit.load(Ordering::Acquire);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused {
                limit,
                slow: (limit < self.max).then(|| self.last_median()).flatten(),
            });
        }
        Ok(Entered {
            bound: self,
            started: now,
        })
    }

    /// Requests being served now and the current bound.
    pub fn usage(&self) -> (usize, usize) {
        (
            self.in_flight.load(Ordering::Acquire),
            self.limit.load(Ordering::Acquire),
        )
    }

    fn last_median(&self) -> Option<Duration> {
        self.window.lock().map(|w| w.last).unwrap_or(None)
    }

    /// One answer that took `took`, at `now`; at an interval's end the
    /// bound is reconsidered. The new bound, when it changed.
    fn record(&self, took: Duration, now: Instant) -> Option<usize> {
        let target = self.target?;
        let mut w = self.window.lock().ok()?;
        if w.samples.len() < MAX_SAMPLES {
            w.samples.push(took);
        }
        if now.saturating_duration_since(w.start) < INTERVAL {
            return None;
        }
        w.start = now;
        let mut samples = std::mem::take(&mut w.samples);
        let mid = (samples.len() - 1) / 2;
        let median = *samples.select_nth_unstable(mid).1;
        samples.clear();
        w.samples = samples;
        w.last = Some(median);
        let over = median > target;
        let standing = over && w.over;
        w.over = over;
        let limit = self.limit.load(Ordering::Acquire);
        let next = if standing {
            let busy = self.in_flight.load(Ordering::Acquire);
            (busy.min(limit) * 9 / 10).max(self.floor)
        } else if over {
            // One slow interval may be a burst: wait for the next.
            limit
        } else {
            (limit + 1).min(self.max)
        };
        if next != limit {
            if next < limit && limit == self.max {
                tracing::warn!(
                    median_ms = median.as_millis() as u64,
                    target_ms = target.as_millis() as u64,
                    limit = next,
                    "answering slowly: serving fewer requests at once, refusing the rest (api.latency_target_ms)"
                );
            } else if next == self.max {
                tracing::info!(
                    limit = next,
                    "answering quickly again: the request bound is back at api.max_concurrent_requests"
                );
            }
            self.limit.store(next, Ordering::Release);
            return Some(next);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` requests in flight at `t`, answered after `took`.
    fn interval(b: &LatencyBound, t: Instant, n: usize, took: Duration) -> usize {
        let mut held = Vec::new();
        for _ in 0..n {
            if let Ok(e) = b.enter(t) {
                held.push(e);
            }
        }
        let admitted = held.len();
        for e in held {
            let _ = e.answered(t + took, true);
        }
        admitted
    }

    #[test]
    fn a_standing_queue_shrinks_the_bound_and_quick_answers_grow_it_back() {
        let t0 = Instant::now();
        let b = LatencyBound::new(1000, Some(100 * MS), t0);
        // Quick answers: the bound stays at the fixed count.
        let mut t = t0;
        for _ in 0..5 {
            t += INTERVAL;
            interval(&b, t - INTERVAL, 300, 5 * MS);
        }
        assert_eq!(b.usage().1, 1000);
        // 300 in flight, each answered after 250 ms: after two slow
        // intervals the bound shrinks to 9/10 of what is in flight, then on,
        // down to the floor.
        let mut limits = Vec::new();
        for _ in 0..40 {
            let held: Vec<_> = (0..300).filter_map(|_| b.enter(t).ok()).collect();
            t += 250 * MS;
            for e in held {
                let _ = e.answered(t, true);
            }
            limits.push(b.usage().1);
        }
        // (The first interval still holds a quick answer from before; the
        // second is one slow interval, maybe a burst.)
        assert_eq!(limits[..2], [1000, 1000], "{limits:?}");
        assert!(limits[2] < 300 && limits[2] >= 260, "{limits:?}");
        assert!(limits.windows(2).all(|w| w[1] <= w[0]), "{limits:?}");
        assert_eq!(*limits.last().unwrap_or(&0), FLOOR, "{limits:?}");
        // Beyond the bound: refused at once, saying why.
        let held: Vec<_> = (0..FLOOR).filter_map(|_| b.enter(t).ok()).collect();
        assert_eq!(held.len(), FLOOR);
        let r = b.enter(t).err();
        assert_eq!(r.map(|r| r.limit), Some(FLOOR));
        assert!(r.and_then(|r| r.slow).is_some_and(|d| d > 100 * MS));
        drop(held);
        // Quick again: it grows back by one each interval (slowly: the
        // refused come back after Retry-After), up to the fixed count.
        let mut grew = Vec::new();
        for _ in 0..1000 {
            t += INTERVAL;
            interval(&b, t - INTERVAL, 10, 5 * MS);
            grew.push(b.usage().1);
        }
        assert!(grew.windows(2).all(|w| w[1] >= w[0]), "{grew:?}");
        assert!((FLOOR + 98..=FLOOR + 100).contains(&grew[99]), "{grew:?}");
        assert_eq!(b.usage(), (0, 1000));
    }

    #[test]
    fn one_slow_request_among_quick_ones_is_a_burst_not_a_queue() {
        let t0 = Instant::now();
        let b = LatencyBound::new(100, Some(50 * MS), t0);
        let mut t = t0;
        for _ in 0..20 {
            let slow = b.enter(t).ok();
            let quick = b.enter(t).ok();
            t += INTERVAL;
            if let Some(q) = quick {
                let _ = q.answered(t - INTERVAL + 2 * MS, true);
            }
            if let Some(s) = slow {
                let _ = s.answered(t, true);
            }
        }
        assert_eq!(b.usage().1, 100);
        // A whole slow interval between quick ones: a burst, held, not cut.
        for took in [5, 5, 300, 5, 5] {
            let span = INTERVAL.max(took * MS);
            t += span;
            interval(&b, t - span, 60, took * MS);
            assert_eq!(b.usage().1, 100, "after an interval of {took} ms");
        }
    }

    #[test]
    fn requests_that_are_not_samples_and_a_zero_target_change_nothing() {
        let t0 = Instant::now();
        let b = LatencyBound::new(100, Some(10 * MS), t0);
        let off = LatencyBound::new(100, None, t0);
        let mut t = t0;
        for _ in 0..20 {
            let held: Vec<_> = (0..80).filter_map(|_| b.enter(t).ok()).collect();
            let held_off: Vec<_> = (0..80).filter_map(|_| off.enter(t).ok()).collect();
            t += Duration::from_secs(1);
            for e in held {
                let _ = e.answered(t, false);
            }
            for e in held_off {
                let _ = e.answered(t, true);
            }
        }
        assert_eq!(b.usage(), (0, 100));
        assert_eq!(off.usage(), (0, 100));
        // The fixed count still holds with no target.
        let held: Vec<_> = (0..100).filter_map(|_| off.enter(t).ok()).collect();
        assert_eq!(held.len(), 100);
        assert_eq!(off.enter(t).err().map(|r| r.slow), Some(None));
    }

    #[tokio::test]
    async fn a_request_marks_itself_as_not_a_sample() {
        let ((), sample) = scoped(async {}).await;
        assert!(sample);
        let ((), sample) = scoped(async { not_a_sample() }).await;
        assert!(!sample);
        // Outside a request: nothing happens, nothing panics.
        not_a_sample();
    }
}
