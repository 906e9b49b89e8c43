//! Latency histograms and the coordinated-omission corrections.
//!
//! Two corrections exist and the harness uses the right one per model:
//!
//! * **Open model** (fixed arrival rate): every operation has an *intended*
//!   start time from the schedule. Latency is measured from that intended
//!   time, not from when the (possibly delayed) send happened, so a stall in
//!   the generator or a blocked socket shows up as latency instead of
//!   silently thinning the sample (the wrk2 method). [`Latency::since`]
//!   takes the intended instant for this reason.
//! * **Closed model** (fixed concurrency): there is no schedule, so a slow
//!   response simply delays the next request. HdrHistogram's corrected
//!   recording back-fills the samples that a stall suppressed, given the
//!   expected interval between requests of one worker; we use the mean
//!   observed service time as that interval ([`Latency::corrected`]).
//!   Both raw and corrected percentiles are reported.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable value: one hour in microseconds. Larger values are
/// clamped (and still counted) rather than dropped.
const MAX_MICROS: u64 = 3_600_000_000;
const SIG_FIGS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Percentiles in milliseconds, the shape every summary uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn new() -> Latency {
        let hist = match Histogram::new_with_bounds(1, MAX_MICROS, SIG_FIGS) {
            Ok(h) => h,
            // The bounds are constants that satisfy the crate's rules
            // (1 ≤ low, high ≥ 2·low, sigfig ≤ 5).
            Err(e) => unreachable!("histogram bounds are valid constants: {e:?}"),
        };
        Latency { hist }
    }

    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        // `saturating_record` cannot fail; values above the top are clamped.
        self.hist.saturating_record(micros);
    }

    /// Open-model recording: latency from the intended start to `done`.
    pub fn since(&mut self, intended: Instant, done: Instant) {
        self.record(done.saturating_duration_since(intended));
    }

    pub fn add(&mut self, other: &Latency) {
        // Both sides use the same bounds, so adding cannot fail; if it ever
        // did, the samples are simply not merged.
        let _ = self.hist.add(&other.hist);
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Closed-model correction: a copy with the samples a stall suppressed
    /// back-filled, for a worker that would have issued a request every
    /// `expected_interval`.
    pub fn corrected(&self, expected_interval: Duration) -> Latency {
        let interval = u64::try_from(expected_interval.as_micros()).unwrap_or(MAX_MICROS);
        if interval == 0 {
            return self.clone();
        }
        Latency { hist: self.hist.clone_correct(interval) }
    }

    /// The mean in microseconds, used as the expected interval of a closed
    /// loop with no think time.
    pub fn mean_duration(&self) -> Duration {
        Duration::from_micros(self.hist.mean().round() as u64)
    }

    pub fn percentiles(&self) -> Percentiles {
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Percentiles {
            count: self.hist.len(),
            p50: ms(self.hist.value_at_quantile(0.50)),
            p95: ms(self.hist.value_at_quantile(0.95)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            max: ms(self.hist.max()),
            mean: self.hist.mean() / 1_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_uniform_samples() {
        let mut l = Latency::new();
        for i in 1..=1000 {
            l.record(ms(i));
        }
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        // 3 significant figures: within 0.1 %.
        assert!((p.p50 - 500.0).abs() <= 0.5, "{p:?}");
        assert!((p.p95 - 950.0).abs() <= 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
        assert!((p.mean - 500.5).abs() <= 0.5, "{p:?}");
    }

    #[test]
    fn empty_histogram_reports_zeroes() {
        assert_eq!(Latency::new().percentiles(), Percentiles::default());
    }

    #[test]
    fn open_model_counts_schedule_slip_as_latency() {
        // Schedule: one request per ms for 1 s. Service takes 1 ms, except
        // that the system stalls for 100 ms at t = 500 ms; requests due
        // during the stall are sent late and their wait counts.
        let start = Instant::now();
        let mut raw = Latency::new();
        let mut open = Latency::new();
        let mut clock = start;
        for k in 0..1000u64 {
            let intended = start + ms(k);
            if k == 500 {
                clock = clock.max(intended) + ms(100);
            }
            let sent = clock.max(intended);
            let done = sent + ms(1);
            clock = done;
            raw.record(done - sent);
            open.since(intended, done);
        }
        let (r, o) = (raw.percentiles(), open.percentiles());
        assert!(r.p99 <= 1.01, "raw service time hides the stall: {r:?}");
        // ~100 requests were delayed by up to 100 ms: p95 and p99 must show it.
        assert!(o.p99 >= 50.0, "corrected p99 reflects the stall: {o:?}");
        assert!(o.max >= 100.0, "{o:?}");
    }

    #[test]
    fn closed_model_correction_backfills_a_stall() {
        // A worker issuing back-to-back 1 ms requests sees one 1 s stall.
        let mut l = Latency::new();
        for _ in 0..999 {
            l.record(ms(1));
        }
        l.record(ms(1000));
        assert!(l.percentiles().p99 <= 1.01, "raw p99 hides the stall");
        let c = l.corrected(ms(1));
        // The stall suppressed ~999 requests (999, 998, … 1 ms late), which
        // the correction adds back: now about half the samples are slow.
        assert!(c.len() >= 1_990, "back-filled count {}", c.len());
        assert!(c.percentiles().p99 >= 900.0, "{:?}", c.percentiles());
        assert!(c.percentiles().p50 >= 1.0);
    }

    #[test]
    fn correction_with_zero_interval_is_identity() {
        let mut l = Latency::new();
        l.record(ms(5));
        assert_eq!(l.corrected(Duration::ZERO).len(), 1);
    }

    #[test]
    fn huge_values_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::from_secs(100_000));
        assert_eq!(l.len(), 1);
        assert!(l.percentiles().max >= 3_599_000.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record(ms(1));
        b.record(ms(3));
        a.add(&b);
        assert_eq!(a.len(), 2);
        assert!((a.percentiles().max - 3.0).abs() < 0.01);
    }
}
