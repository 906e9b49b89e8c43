//! The per-second time series behind the report's plots.

use serde::Serialize;

use super::{Counter, Latency, Snapshot};
use crate::proc_stats::ProcSample;

/// One tick of the run (normally one second).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Point {
    pub t_s: f64,
    pub phase: String,
    pub connections: i64,
    pub handshakes_per_s: f64,
    pub frames_sent_per_s: f64,
    pub events_acked_per_s: f64,
    pub http_rps: f64,
    pub lat_p50_ms: f64,
    pub lat_p99_ms: f64,
    pub lat_max_ms: f64,
    pub rss_bytes: u64,
    pub cpu_percent: f64,
}

impl Point {
    /// Builds a point from two counter snapshots, the interval histogram of
    /// the scenario's primary latency, and a brain sample.
    pub fn build(
        t_s: f64,
        phase: &str,
        connections: i64,
        prev: &Snapshot,
        now: &Snapshot,
        interval: &Latency,
        brain: Option<(&ProcSample, f64)>,
    ) -> Point {
        let p = interval.percentiles();
        let http = now.rate_since(prev, Counter::HttpOk) + now.rate_since(prev, Counter::HttpFailed);
        Point {
            t_s,
            phase: phase.to_owned(),
            connections,
            handshakes_per_s: now.rate_since(prev, Counter::HandshakesOk),
            frames_sent_per_s: now.rate_since(prev, Counter::FramesSent),
            events_acked_per_s: now.rate_since(prev, Counter::EventsAcked),
            http_rps: http,
            lat_p50_ms: p.p50,
            lat_p99_ms: p.p99,
            lat_max_ms: p.max,
            rss_bytes: brain.map_or(0, |(s, _)| s.rss_bytes),
            cpu_percent: brain.map_or(0.0, |(_, cpu)| cpu),
        }
    }
}

/// Peak, mean and last of a series column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub last: f64,
}

pub fn stats(values: impl IntoIterator<Item = f64>) -> Stats {
    let mut n = 0usize;
    let mut s = Stats { min: f64::INFINITY, mean: 0.0, max: f64::NEG_INFINITY, last: 0.0 };
    let mut sum = 0.0;
    for v in values {
        n += 1;
        sum += v;
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        s.last = v;
    }
    if n == 0 {
        return Stats::default();
    }
    s.mean = sum / n as f64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn point_rates_come_from_snapshot_deltas() {
        let at = Instant::now();
        let mut prev = Snapshot { at, values: [0; Counter::ALL.len()] };
        prev.values[Counter::EventsAcked as usize] = 100;
        let mut now = Snapshot { at: at + Duration::from_millis(500), values: prev.values };
        now.values[Counter::EventsAcked as usize] = 600;
        now.values[Counter::HttpOk as usize] = 10;
        now.values[Counter::HttpFailed as usize] = 5;
        let mut lat = Latency::new();
        lat.record(Duration::from_millis(4));
        let p = Point::build(1.0, "steady", 7, &prev, &now, &lat, None);
        assert_eq!(p.events_acked_per_s, 1000.0);
        assert_eq!(p.http_rps, 30.0);
        assert!((p.lat_p99_ms - 4.0).abs() < 0.01);
        assert_eq!(p.connections, 7);
    }

    #[test]
    fn stats_of_a_column() {
        let s = stats([1.0, 3.0, 2.0]);
        assert_eq!(s, Stats { min: 1.0, mean: 2.0, max: 3.0, last: 2.0 });
        assert_eq!(stats(std::iter::empty()), Stats::default());
    }
}
