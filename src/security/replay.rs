//! Replay protection for verified frames (spec §3.1): one [`ReplayGuard`] per
//! session and receiving direction, run after the MAC check.
//!
//! Checks, in the reference order: seq is an int ≥ 1, nonce is non-empty, ts
//! parses as an ISO-8601 time with an offset, |now − ts| ≤ 60 s, seq is
//! strictly greater than the last accepted one, and the nonce was not seen in
//! the last 180 s (at most 4096 remembered). State changes only when every
//! check passes.
//!
//! Time is passed in: wall-clock `now` for the skew check and a monotonic
//! millisecond reading (`Clock::monotonic_ms`) for the nonce TTL, so a wall
//! clock step cannot shorten the replay window and tests control both.

#[path = "replay_iso_ts.rs"]
mod iso_ts;
#[path = "replay_nonce_cache.rs"]
mod nonce_cache;

pub use iso_ts::{parse_aware_micros, TsError};
pub use nonce_cache::{MAX_NONCES, NONCE_TTL_MS};

use std::fmt;

use chrono::{DateTime, Utc};

use crate::security::frame::{verify, Binding, FrameError, FrameKey, VerifiedFrame};
use nonce_cache::NonceCache;

/// Largest accepted |now − ts|, inclusive (exactly 60.0 s passes).
pub const MAX_SKEW_MICROS: u64 = 60_000_000;

/// Which way the guarded frames travel; only used in messages, as in z4j.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    AgentToBrain,
    BrainToAgent,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AgentToBrain => "agent->brain",
            Direction::BrainToAgent => "brain->agent",
        })
    }
}

fn seconds(micros: &u64) -> f64 {
    *micros as f64 / 1e6
}

/// A replay or freshness failure. Always signature-class (close 4403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("frame envelope missing valid seq")]
    InvalidSeq,
    #[error("frame envelope missing nonce")]
    MissingNonce,
    #[error("frame envelope missing ts")]
    MissingTs,
    #[error("frame ts is naive (no UTC offset)")]
    NaiveTs,
    #[error("frame ts is not an ISO-8601 timestamp")]
    InvalidTs,
    #[error("frame ts skew {:.1}s exceeds limit 60s ({direction})", seconds(.skew_micros))]
    Skew { skew_micros: u64, direction: Direction },
    #[error("frame seq {seq} not strictly greater than last-seen {last} ({direction})")]
    SeqNotIncreasing { seq: u64, last: u64, direction: Direction },
    #[error("frame nonce replay detected ({direction})")]
    NonceReplay { direction: Direction },
}

impl From<ReplayError> for FrameError {
    fn from(e: ReplayError) -> FrameError {
        FrameError::Signature(e.into())
    }
}

/// Replay state of one session in one direction. Starts empty (last seq 0)
/// and holds no heap memory until the first frame.
pub struct ReplayGuard {
    direction: Direction,
    last_seq: u64,
    nonces: NonceCache,
}

impl ReplayGuard {
    pub fn new(direction: Direction) -> ReplayGuard {
        ReplayGuard { direction, last_seq: 0, nonces: NonceCache::new() }
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The last accepted seq (0 before the first frame).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn tracked_nonces(&self) -> usize {
        self.nonces.len()
    }

    /// Heap memory held, for accounting (at most 48 KiB).
    pub fn heap_bytes(&self) -> usize {
        self.nonces.heap_bytes()
    }

    /// Runs every check on the envelope fields of one frame and, if all
    /// pass, records its seq and nonce.
    pub fn check(
        &mut self,
        seq: u64,
        nonce: &str,
        ts: &str,
        now: DateTime<Utc>,
        mono_ms: u64,
    ) -> Result<(), ReplayError> {
        if seq < 1 {
            return Err(ReplayError::InvalidSeq);
        }
        if nonce.is_empty() {
            return Err(ReplayError::MissingNonce);
        }
        if ts.is_empty() {
            return Err(ReplayError::MissingTs);
        }
        let ts_micros = parse_aware_micros(ts).map_err(|e| match e {
            TsError::Naive => ReplayError::NaiveTs,
            TsError::Invalid => ReplayError::InvalidTs,
        })?;
        // Python's clock has microsecond resolution; truncating ours the
        // same way keeps the 60.0 s boundary identical.
        let skew_micros = now.timestamp_micros().abs_diff(ts_micros);
        if skew_micros > MAX_SKEW_MICROS {
            return Err(ReplayError::Skew { skew_micros, direction: self.direction });
        }
        if seq <= self.last_seq {
            return Err(ReplayError::SeqNotIncreasing { seq, last: self.last_seq, direction: self.direction });
        }
        self.nonces.evict_expired(mono_ms);
        let fp = self.nonces.fingerprint(nonce);
        if self.nonces.contains(fp) {
            return Err(ReplayError::NonceReplay { direction: self.direction });
        }
        self.nonces.insert(fp, mono_ms);
        self.last_seq = seq;
        Ok(())
    }

    pub fn check_frame(&mut self, frame: &VerifiedFrame, now: DateTime<Utc>, mono_ms: u64) -> Result<(), ReplayError> {
        self.check(frame.seq, &frame.nonce, &frame.ts, now, mono_ms)
    }

    /// [`verify`] followed by [`ReplayGuard::check_frame`]: the complete
    /// inbound path of §2.5, with replay failures as `FrameError::Signature`.
    pub fn verify(
        &mut self,
        key: &FrameKey,
        binding: &Binding,
        bytes: &[u8],
        now: DateTime<Utc>,
        mono_ms: u64,
    ) -> Result<VerifiedFrame, FrameError> {
        let frame = verify(key, binding, bytes)?;
        self.check_frame(&frame, now, mono_ms)?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    const TS: &str = "2026-05-11T10:00:00.183456Z";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 11, 10, 0, 0).unwrap() + Duration::microseconds(183_456)
    }

    fn guard() -> ReplayGuard {
        ReplayGuard::new(Direction::AgentToBrain)
    }

    #[test]
    fn skew_boundary_is_inclusive_at_60s() {
        for (offset_us, ok) in [
            (60_000_000i64, true),
            (-60_000_000, true),
            (60_000_001, false),
            (-60_000_001, false),
            (60_001_000, false),
            (-60_001_000, false),
        ] {
            let mut g = guard();
            let now = t0() + Duration::microseconds(offset_us);
            let r = g.check(1, "n", TS, now, 0);
            assert_eq!(r.is_ok(), ok, "offset {offset_us}: {r:?}");
        }
        // Sub-microsecond parts of our clock are ignored, like Python's.
        let now = t0() + Duration::seconds(60) + Duration::nanoseconds(999);
        assert!(guard().check(1, "n", TS, now, 0).is_ok());
    }

    #[test]
    fn skew_message_matches_python() {
        let err = guard().check(2, "n", TS, t0() + Duration::seconds(61), 0).unwrap_err();
        assert_eq!(err.to_string(), "frame ts skew 61.0s exceeds limit 60s (agent->brain)");
        let err = ReplayGuard::new(Direction::BrainToAgent)
            .check(2, "n", TS, t0() - Duration::milliseconds(60_050), 0)
            .unwrap_err();
        assert_eq!(err.to_string(), "frame ts skew 60.0s exceeds limit 60s (brain->agent)");
    }

    #[test]
    fn seq_must_strictly_increase() {
        let mut g = guard();
        g.check(2, "a", TS, t0(), 0).unwrap();
        let err = g.check(2, "b", TS, t0(), 0).unwrap_err();
        assert_eq!(err.to_string(), "frame seq 2 not strictly greater than last-seen 2 (agent->brain)");
        assert!(matches!(g.check(1, "c", TS, t0(), 0), Err(ReplayError::SeqNotIncreasing { seq: 1, last: 2, .. })));
        // Gaps are allowed.
        g.check(10, "d", TS, t0(), 0).unwrap();
        assert_eq!(g.last_seq(), 10);
    }

    #[test]
    fn envelope_field_errors_in_python_order() {
        let mut g = guard();
        assert_eq!(g.check(0, "", "", t0(), 0), Err(ReplayError::InvalidSeq));
        assert_eq!(g.check(1, "", "", t0(), 0), Err(ReplayError::MissingNonce));
        assert_eq!(g.check(1, "n", "", t0(), 0), Err(ReplayError::MissingTs));
        assert_eq!(g.check(1, "n", "2026-05-11T10:00:00.183456", t0(), 0), Err(ReplayError::NaiveTs));
        assert_eq!(g.check(1, "n", "yesterday", t0(), 0), Err(ReplayError::InvalidTs));
        // Skew is checked before seq: a stale replay reports skew.
        g.check(5, "n", TS, t0(), 0).unwrap();
        assert!(matches!(g.check(5, "n", TS, t0() + Duration::seconds(90), 0), Err(ReplayError::Skew { .. })));
        // ...and seq before nonce.
        assert!(matches!(g.check(5, "n", TS, t0(), 0), Err(ReplayError::SeqNotIncreasing { .. })));
        assert!(matches!(g.check(6, "n", TS, t0(), 0), Err(ReplayError::NonceReplay { .. })));
        // Offsets other than Z are fine.
        g.check(7, "m", "2026-05-11T12:00:00.183456+02:00", t0(), 0).unwrap();
    }

    #[test]
    fn nonce_window_is_180s_on_the_monotonic_clock() {
        let mut g = guard();
        g.check(1, "dup", TS, t0(), 1_000).unwrap();
        let replay = g.check(2, "dup", TS, t0(), 1_000 + NONCE_TTL_MS);
        assert_eq!(replay, Err(ReplayError::NonceReplay { direction: Direction::AgentToBrain }));
        assert_eq!(replay.unwrap_err().to_string(), "frame nonce replay detected (agent->brain)");
        // Rejection did not commit seq 2.
        assert_eq!(g.last_seq(), 1);
        g.check(2, "dup", TS, t0(), 1_000 + NONCE_TTL_MS + 1).unwrap();
        assert_eq!(g.last_seq(), 2);
    }

    #[test]
    fn failed_checks_commit_nothing() {
        let mut g = guard();
        g.check(1, "a", TS, t0(), 0).unwrap();
        // Stale: neither seq 9 nor nonce "b" is recorded.
        assert!(g.check(9, "b", TS, t0() + Duration::seconds(61), 0).is_err());
        assert_eq!((g.last_seq(), g.tracked_nonces()), (1, 1));
        g.check(2, "b", TS, t0(), 0).unwrap();
        // Replayed nonce: seq 3 is not recorded, so 3 is still usable.
        assert!(g.check(3, "a", TS, t0(), 0).is_err());
        assert_eq!(g.last_seq(), 2);
        g.check(3, "c", TS, t0(), 0).unwrap();
        assert_eq!(g.tracked_nonces(), 3);
    }

    #[test]
    fn oldest_nonce_is_evicted_at_4096() {
        let mut g = guard();
        for seq in 1..=MAX_NONCES as u64 {
            g.check(seq, &format!("n{seq}"), TS, t0(), seq).unwrap();
        }
        assert_eq!(g.tracked_nonces(), MAX_NONCES);
        let next = MAX_NONCES as u64 + 1;
        // Still remembered: the cache is full but n1 has not been pushed out.
        assert!(g.check(next, "n1", TS, t0(), next).is_err());
        g.check(next, "fresh", TS, t0(), next).unwrap();
        assert_eq!(g.tracked_nonces(), MAX_NONCES);
        // n1 was the oldest and is gone; n2 is still there.
        g.check(next + 1, "n1", TS, t0(), next).unwrap();
        assert!(g.check(next + 2, "n3", TS, t0(), next).is_err());
        assert!(g.heap_bytes() <= 48 * 1024, "{}", g.heap_bytes());
    }

    #[test]
    fn typical_session_memory_is_small() {
        let mut g = guard();
        assert_eq!(g.heap_bytes(), 0);
        // Heartbeat + agent_status every 10 s and a few events: ~40 per 180 s.
        let mut seq = 0;
        for tick in 0..1_000u64 {
            seq += 1;
            g.check(seq, &format!("n{seq}"), TS, t0(), tick * 4_500).unwrap();
        }
        assert!(g.tracked_nonces() <= 41, "{}", g.tracked_nonces());
        assert!(g.heap_bytes() <= 1024, "{}", g.heap_bytes());
        assert!(std::mem::size_of::<ReplayGuard>() <= 128);
    }
}
