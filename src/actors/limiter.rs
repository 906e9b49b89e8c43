//! Per-client-IP sliding-window rate limits.
//!
//! One actor owns every window, so concurrent requests cannot race on a
//! counter. Each bucket keeps an exact sliding log: the timestamps of the
//! allowed hits inside the window (never more than the limit), pruned inline
//! on every hit and in a sweep every `SWEEP_EVERY` checks.
//!
//! Memory is bounded by a hard cap on tracked keys per bucket. When a
//! bucket is full and an unseen key arrives, we first sweep expired keys;
//! if it is still full the new key is REFUSED (429), not admitted by
//! evicting another key. Evicting would let an attacker who rotates through
//! more addresses than the cap flush each address's history and so reset
//! its own budget, turning the limiter off exactly when it matters. Keys
//! already tracked keep working, and per-account lockout still protects
//! every account. The cost is that during a flood from more distinct
//! addresses than the cap, first-time addresses wait until windows expire
//! (at most one window). See SECURITY.md.

use std::collections::{HashMap, VecDeque};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::clock::SharedClock;

/// Keys are client addresses; anything longer is cut so a hostile
/// `X-Forwarded-For` behind a trusted proxy cannot bloat memory.
pub const MAX_KEY_CHARS: usize = 120;
const SWEEP_EVERY: u32 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Login,
    PasswordReset,
    Invitation,
    Setup,
    AgentConnect,
    ChannelTest,
}

impl Bucket {
    pub const ALL: [Bucket; 6] = [
        Bucket::Login,
        Bucket::PasswordReset,
        Bucket::Invitation,
        Bucket::Setup,
        Bucket::AgentConnect,
        Bucket::ChannelTest,
    ];

    /// (allowed hits, window in milliseconds)
    pub fn limit(self) -> (usize, u64) {
        match self {
            Bucket::Login => (20, 60_000),
            Bucket::PasswordReset => (10, 60_000),
            Bucket::Invitation => (30, 60_000),
            Bucket::Setup => (5, 15 * 60_000),
            Bucket::AgentConnect => (600, 60_000),
            Bucket::ChannelTest => (20, 60_000),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { retry_after_secs: u64 },
}

#[derive(Clone, Debug, Serialize)]
pub struct BucketStats {
    pub bucket: Bucket,
    pub keys: usize,
    pub max_keys: usize,
    pub approx_bytes: usize,
    pub refused_new_keys: u64,
}

pub enum LimiterMsg {
    Check {
        bucket: Bucket,
        key: String,
        reply: RpcReplyPort<Decision>,
    },
    Stats(RpcReplyPort<Vec<BucketStats>>),
    /// Panics inside the handler. Only reachable through an `ActorRef`
    /// (never from the network); the supervision tests use it.
    InjectPanic,
}

pub struct Limiter;

pub struct LimiterArgs {
    pub clock: SharedClock,
    pub max_keys: usize,
}

struct Window {
    hits: HashMap<Box<str>, VecDeque<u64>>,
    checks: u32,
    refused_new_keys: u64,
    /// No tracked key can expire before this instant (a lower bound set by
    /// the last sweep). While the table is full and `now` is earlier, a new
    /// key is refused in O(1): sweeping could not free a slot. Without it a
    /// flood of new addresses would cost a full sweep per request.
    no_expiry_before: u64,
}

pub struct LimiterState {
    clock: SharedClock,
    max_keys: usize,
    windows: HashMap<Bucket, Window>,
}

/// Upper bound on the bytes one tracked key costs in `bucket`: the key, a
/// full deque of u64 timestamps, and per-entry map/deque overhead.
pub fn bytes_per_key_bound(bucket: Bucket) -> usize {
    let (max, _) = bucket.limit();
    MAX_KEY_CHARS * 4 + max.next_power_of_two() * 8 + 96
}

fn truncate_key(mut key: String) -> String {
    if let Some((idx, _)) = key.char_indices().nth(MAX_KEY_CHARS) {
        key.truncate(idx);
    }
    key
}

fn retry_after(oldest: u64, window_ms: u64, now: u64) -> u64 {
    let ms = (oldest + window_ms).saturating_sub(now);
    ms.div_ceil(1000).clamp(1, window_ms / 1000)
}

impl Window {
    fn sweep(&mut self, now: u64, window_ms: u64) {
        self.hits.retain(|_, q| q.back().is_some_and(|newest| newest + window_ms > now));
        self.no_expiry_before = self.hits.values().filter_map(|q| q.back()).map(|t| t + window_ms).min().unwrap_or(now);
    }

    fn check(&mut self, key: String, now: u64, max: usize, window_ms: u64, max_keys: usize) -> Decision {
        self.checks = self.checks.wrapping_add(1);
        if self.checks.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now, window_ms);
        }
        if let Some(q) = self.hits.get_mut(key.as_str()) {
            while q.front().is_some_and(|t| t + window_ms <= now) {
                q.pop_front();
            }
            if q.len() < max {
                q.push_back(now);
                return Decision::Allow;
            }
            let oldest = q.front().copied().unwrap_or(now);
            return Decision::Deny { retry_after_secs: retry_after(oldest, window_ms, now) };
        }
        if self.hits.len() >= max_keys {
            if now >= self.no_expiry_before {
                self.sweep(now, window_ms);
            }
            if self.hits.len() >= max_keys {
                self.refused_new_keys += 1;
                let wait_ms = self.no_expiry_before.saturating_sub(now);
                return Decision::Deny { retry_after_secs: wait_ms.div_ceil(1000).clamp(1, window_ms / 1000) };
            }
        }
        let mut q = VecDeque::with_capacity(1);
        q.push_back(now);
        self.hits.insert(key.into_boxed_str(), q);
        Decision::Allow
    }

    fn approx_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Box<str>, VecDeque<u64>)>() + 8;
        self.hits.capacity() * entry + self.hits.iter().map(|(k, q)| k.len() + q.capacity() * 8).sum::<usize>()
    }
}

impl Actor for Limiter {
    type Msg = LimiterMsg;
    type State = LimiterState;
    type Arguments = LimiterArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<LimiterMsg>,
        args: LimiterArgs,
    ) -> Result<LimiterState, ActorProcessingErr> {
        let windows = Bucket::ALL
            .iter()
            .map(|b| (*b, Window { hits: HashMap::new(), checks: 0, refused_new_keys: 0, no_expiry_before: 0 }))
            .collect();
        Ok(LimiterState { clock: args.clock, max_keys: args.max_keys, windows })
    }

    async fn handle(
        &self,
        _me: ActorRef<LimiterMsg>,
        msg: LimiterMsg,
        st: &mut LimiterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LimiterMsg::Check { bucket, key, reply } => {
                let now = st.clock.monotonic_ms();
                let (max, window_ms) = bucket.limit();
                let max_keys = st.max_keys;
                let decision = match st.windows.get_mut(&bucket) {
                    Some(w) => w.check(truncate_key(key), now, max, window_ms, max_keys),
                    None => Decision::Allow,
                };
                let _ = reply.send(decision);
            }
            LimiterMsg::Stats(reply) => {
                let mut stats: Vec<BucketStats> = st
                    .windows
                    .iter()
                    .map(|(b, w)| BucketStats {
                        bucket: *b,
                        keys: w.hits.len(),
                        max_keys: st.max_keys,
                        approx_bytes: w.approx_bytes(),
                        refused_new_keys: w.refused_new_keys,
                    })
                    .collect();
                stats.sort_by_key(|s| format!("{:?}", s.bucket));
                let _ = reply.send(stats);
            }
            LimiterMsg::InjectPanic => panic!("fault injected into the limiter by a test"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window { hits: HashMap::new(), checks: 0, refused_new_keys: 0, no_expiry_before: 0 }
    }

    #[test]
    fn allows_exactly_the_limit_per_window() {
        let mut w = window();
        for _ in 0..20 {
            assert_eq!(w.check("a".into(), 1_000, 20, 60_000, 10), Decision::Allow);
        }
        assert_eq!(w.check("a".into(), 1_000, 20, 60_000, 10), Decision::Deny { retry_after_secs: 60 });
        // Slides: one second before the oldest hit expires, still denied.
        assert!(matches!(w.check("a".into(), 60_000, 20, 60_000, 10), Decision::Deny { retry_after_secs: 1 }));
        assert_eq!(w.check("a".into(), 61_000, 20, 60_000, 10), Decision::Allow);
    }

    #[test]
    fn full_table_refuses_new_keys_but_keeps_serving_known_ones() {
        let mut w = window();
        for i in 0..10 {
            assert_eq!(w.check(format!("ip{i}"), 1_000, 20, 60_000, 10), Decision::Allow);
        }
        assert!(matches!(w.check("new".into(), 2_000, 20, 60_000, 10), Decision::Deny { .. }));
        assert_eq!(w.refused_new_keys, 1);
        assert_eq!(w.check("ip3".into(), 2_000, 20, 60_000, 10), Decision::Allow);
        // Once the old windows lapse, the sweep frees room.
        assert_eq!(w.check("new".into(), 61_001, 20, 60_000, 10), Decision::Allow);
        assert_eq!(w.hits.len(), 2);
    }

    #[test]
    fn keys_are_capped_at_120_chars() {
        let k = truncate_key("x".repeat(500));
        assert_eq!(k.chars().count(), MAX_KEY_CHARS);
        let k = truncate_key("é".repeat(500));
        assert_eq!(k.chars().count(), MAX_KEY_CHARS);
    }
}
