//! Time as a dependency.
//!
//! Lockout windows, rate-limit windows, session expiry and setup-token expiry
//! all depend on "now". Reading the time through this trait lets the tests
//! advance a manual clock instead of sleeping, and keeps every component of
//! one server on the same notion of time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// Wall-clock time plus a monotonic millisecond counter.
pub trait Clock: Send + Sync + 'static {
    /// Current wall-clock time (UTC). Used for anything stored or compared
    /// with stored timestamps.
    fn now(&self) -> DateTime<Utc>;
    /// Milliseconds on a clock that never goes backwards. Used for in-memory
    /// windows (rate limits, nonce TTLs) so a wall-clock step cannot reset them.
    fn monotonic_ms(&self) -> u64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock { start: Instant::now() })
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to: real time at creation plus an
/// offset that tests advance. Both readings move together.
pub struct ManualClock {
    base: DateTime<Utc>,
    offset_ms: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock { base: Utc::now(), offset_ms: AtomicI64::new(0) })
    }

    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    fn monotonic_ms(&self) -> u64 {
        // Start well above zero so "older than the window" arithmetic never
        // needs to saturate in tests.
        let offset = self.offset_ms.load(Ordering::SeqCst).max(0);
        1_000_000 + u64::try_from(offset).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_both_readings_together() {
        let clock = ManualClock::new();
        let (w0, m0) = (clock.now(), clock.monotonic_ms());
        clock.advance(std::time::Duration::from_secs(61));
        assert_eq!((clock.now() - w0).num_seconds(), 61);
        assert_eq!(clock.monotonic_ms() - m0, 61_000);
    }
}
