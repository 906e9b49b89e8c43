//! The run's shared measurements: lock-free counters, named latency
//! histograms (each with a whole-run and a per-interval copy for the time
//! series), and errors by kind.
//!
//! Histograms sit behind a std `Mutex`: recording is a few hundred
//! nanoseconds and never spans an `.await`, which keeps contention low at
//! the rates a 2-core box can produce.

pub mod latency;
pub mod series;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use latency::{Latency, Percentiles};

/// Every counter the scenarios increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    HandshakesOk,
    HandshakesFailed,
    /// Valid signed frames written to a socket.
    FramesSent,
    /// Valid frames the brain provably accepted: written before any rejection
    /// on their session and before the session ended abnormally.
    FramesVerified,
    EventsSent,
    /// Events whose `event_batch_ack` arrived (the brain acks after commit).
    EventsAcked,
    EventFramesAcked,
    /// Event frames sent again after the ack deadline or a reconnect.
    Resends,
    InvalidSent,
    /// Deliberately invalid frames answered by close 4403.
    InvalidRejected,
    InvalidOtherClose,
    InvalidUnanswered,
    /// Brain frames whose MAC and replay checks passed at the agent.
    InboundVerified,
    InboundRejected,
    AcksUnknown,
    CommandsReceived,
    CommandResultsSent,
    CommandsIssued,
    CommandsCompleted,
    Disconnects,
    HttpOk,
    HttpFailed,
}

impl Counter {
    pub const ALL: [Counter; 22] = [
        Counter::HandshakesOk,
        Counter::HandshakesFailed,
        Counter::FramesSent,
        Counter::FramesVerified,
        Counter::EventsSent,
        Counter::EventsAcked,
        Counter::EventFramesAcked,
        Counter::Resends,
        Counter::InvalidSent,
        Counter::InvalidRejected,
        Counter::InvalidOtherClose,
        Counter::InvalidUnanswered,
        Counter::InboundVerified,
        Counter::InboundRejected,
        Counter::AcksUnknown,
        Counter::CommandsReceived,
        Counter::CommandResultsSent,
        Counter::CommandsIssued,
        Counter::CommandsCompleted,
        Counter::Disconnects,
        Counter::HttpOk,
        Counter::HttpFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::HandshakesOk => "handshakes_ok",
            Counter::HandshakesFailed => "handshakes_failed",
            Counter::FramesSent => "frames_sent",
            Counter::FramesVerified => "frames_verified",
            Counter::EventsSent => "events_sent",
            Counter::EventsAcked => "events_acked",
            Counter::EventFramesAcked => "event_frames_acked",
            Counter::Resends => "resends",
            Counter::InvalidSent => "invalid_sent",
            Counter::InvalidRejected => "invalid_rejected_4403",
            Counter::InvalidOtherClose => "invalid_other_close",
            Counter::InvalidUnanswered => "invalid_unanswered",
            Counter::InboundVerified => "inbound_verified",
            Counter::InboundRejected => "inbound_rejected",
            Counter::AcksUnknown => "acks_unknown",
            Counter::CommandsReceived => "commands_received",
            Counter::CommandResultsSent => "command_results_sent",
            Counter::CommandsIssued => "commands_issued",
            Counter::CommandsCompleted => "commands_completed",
            Counter::Disconnects => "disconnects",
            Counter::HttpOk => "http_ok",
            Counter::HttpFailed => "http_failed",
        }
    }
}

/// Counter values at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub at: Instant,
    pub values: [u64; Counter::ALL.len()],
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.values.get(c as usize).copied().unwrap_or(0)
    }

    /// Per-second rate of `c` between `earlier` and `self`.
    pub fn rate_since(&self, earlier: &Snapshot, c: Counter) -> f64 {
        rate(self.get(c).saturating_sub(earlier.get(c)), self.at.saturating_duration_since(earlier.at))
    }
}

/// `count / elapsed` in events per second; 0 for an empty window.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

#[derive(Default)]
struct HistPair {
    total: Latency,
    interval: Latency,
}

pub struct Metrics {
    pub started: Instant,
    counters: [AtomicU64; Counter::ALL.len()],
    connections: AtomicI64,
    connections_max: AtomicI64,
    hists: Mutex<BTreeMap<String, HistPair>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while recording cannot leave a histogram half-updated in a way
    // that matters for reporting, so a poisoned lock is simply reused.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            connections: AtomicI64::new(0),
            connections_max: AtomicI64::new(0),
            hists: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn incr(&self, c: Counter) {
        self.add(c, 1);
    }

    pub fn add(&self, c: Counter, n: u64) {
        if let Some(a) = self.counters.get(c as usize) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counters.get(c as usize).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot { at: Instant::now(), values: std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed)) }
    }

    pub fn conn_opened(&self) {
        let now = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.connections_max.fetch_max(now, Ordering::Relaxed);
    }

    pub fn conn_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn connections_max(&self) -> i64 {
        self.connections_max.load(Ordering::Relaxed)
    }

    pub fn error(&self, kind: &str) {
        let mut errors = lock(&self.errors);
        match errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                errors.insert(kind.to_owned(), 1);
            }
        }
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn record(&self, name: &str, d: Duration) {
        let mut hists = lock(&self.hists);
        if let Some(pair) = hists.get_mut(name) {
            pair.total.record(d);
            pair.interval.record(d);
            return;
        }
        let mut pair = HistPair::default();
        pair.total.record(d);
        pair.interval.record(d);
        hists.insert(name.to_owned(), pair);
    }

    /// Open-model recording from the intended start (see `latency`).
    pub fn record_since(&self, name: &str, intended: Instant, done: Instant) {
        self.record(name, done.saturating_duration_since(intended));
    }

    /// A copy of the whole-run histogram `name` (empty when never recorded).
    pub fn histogram(&self, name: &str) -> Latency {
        lock(&self.hists).get(name).map(|p| p.total.clone()).unwrap_or_default()
    }

    pub fn histogram_names(&self) -> Vec<String> {
        lock(&self.hists).keys().cloned().collect()
    }

    /// Merges and resets the interval copies of the histograms `selectors`
    /// pick; the time series calls this each tick. A selector ending in `:`
    /// picks every name with that prefix, any other picks that exact name.
    pub fn take_interval(&self, selectors: &[&str]) -> Latency {
        let mut out = Latency::new();
        let mut hists = lock(&self.hists);
        for (name, pair) in hists.iter_mut() {
            if selectors.iter().any(|s| selects(s, name)) {
                out.add(&pair.interval);
            }
            pair.interval.reset();
        }
        out
    }

    /// Forgets the samples of the histograms `selectors` pick (as in
    /// [`Metrics::take_interval`]).
    pub fn reset_histograms(&self, selectors: &[&str]) {
        let mut hists = lock(&self.hists);
        for (name, pair) in hists.iter_mut() {
            if selectors.iter().any(|s| selects(s, name)) {
                pair.total.reset();
                pair.interval.reset();
            }
        }
    }
}

fn selects(selector: &str, name: &str) -> bool {
    if selector.ends_with(':') {
        name.starts_with(selector)
    } else {
        name == selector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_count_over_seconds() {
        assert_eq!(rate(100, Duration::from_secs(4)), 25.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert!((rate(1, Duration::from_millis(250)) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn snapshot_rates_use_deltas() {
        let m = Metrics::new();
        m.add(Counter::EventsAcked, 10);
        let a = m.snapshot();
        m.add(Counter::EventsAcked, 50);
        let mut b = m.snapshot();
        b.at = a.at + Duration::from_secs(2);
        assert_eq!(b.rate_since(&a, Counter::EventsAcked), 25.0);
        assert_eq!(b.rate_since(&a, Counter::FramesSent), 0.0);
    }

    #[test]
    fn connection_gauge_tracks_max() {
        let m = Metrics::new();
        m.conn_opened();
        m.conn_opened();
        m.conn_closed();
        m.conn_opened();
        m.conn_closed();
        assert_eq!(m.connections(), 1);
        assert_eq!(m.connections_max(), 2);
    }

    #[test]
    fn interval_histograms_reset_but_totals_keep() {
        let m = Metrics::new();
        m.record("lag", Duration::from_millis(3));
        m.record("http:GET /x", Duration::from_millis(5));
        assert_eq!(m.take_interval(&["lag"]).len(), 1);
        assert_eq!(m.take_interval(&["lag"]).len(), 0);
        assert_eq!(m.histogram("lag").len(), 1);
        assert_eq!(m.take_interval(&["http:"]).len(), 0, "reset by the earlier take");
        m.record("lag_service", Duration::from_millis(9));
        m.take_interval(&[]);
        m.record("lag", Duration::from_millis(1));
        m.record("lag_service", Duration::from_millis(9));
        assert_eq!(m.take_interval(&["lag"]).len(), 1, "exact names do not pick lag_service");
        m.error("close_4429");
        m.error("close_4429");
        assert_eq!(m.errors().get("close_4429"), Some(&2));
    }

    #[test]
    fn counter_indexes_match_the_table() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }
}
