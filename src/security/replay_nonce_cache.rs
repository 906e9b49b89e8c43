//! The replay guard's memory of recent nonces: insertion-ordered, expiring
//! after 180 s, at most 4096 entries, oldest evicted first (§3.1 step 6).
//!
//! Memory is the constraint (one cache per session and direction, thousands
//! of sessions), so instead of storing nonce strings plus a `HashSet` we keep:
//!
//! * `entries`: one `u64` per nonce, oldest first, packing a 44-bit keyed
//!   fingerprint of the nonce and the low 20 bits of its insertion time in ms;
//! * `index`: an open-addressing table of `u16` tags pointing into `entries`.
//!
//! Full (4096 entries) that is 32 KiB + 16 KiB; a typical agent session
//! (a handful of frames per 10 s) holds well under 1 KiB. Storage grows on
//! demand and is released when traffic stops.
//!
//! Fingerprints: SipHash-1-3 with a random key per cache, truncated to 44
//! bits. A replayed nonce always has the same fingerprint, so collisions can
//! never let a replay through; they can only make a fresh nonce look seen
//! (a false rejection). With at most 4096 entries that chance is ≤ 4096/2^44
//! ≈ 2.3e-10 per frame, and an outsider cannot aim for it without the key.
//!
//! Times: only the low 20 bits (~17.5 min) of the millisecond clock are
//! stored. Every insert first evicts entries older than 180 s, and the whole
//! cache is dropped once the newest entry is older than 180 s, so live
//! entries are never more than 360 s old and the wrapped difference is exact.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

pub const NONCE_TTL_MS: u64 = 180_000;
pub const MAX_NONCES: usize = 4096;

const TIME_BITS: u32 = 20;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// Wrapped differences at or above this are "in the future" (clock stepped back).
const HALF_TIME_RANGE: u64 = 1 << (TIME_BITS - 1);
const OCCUPIED: u16 = 0x8000;
/// Tags carry the entry's insertion counter modulo 2^15, which identifies
/// it uniquely because at most 4096 entries are alive at once.
const COUNTER_MASK: u16 = 0x7fff;
const MIN_INDEX: usize = 16;

pub struct NonceCache {
    keys: RandomState,
    entries: VecDeque<u64>,
    index: Vec<u16>,
    /// Insertion counter of `entries.front()`.
    head: u32,
    newest_ms: u64,
}

impl NonceCache {
    pub fn new() -> NonceCache {
        NonceCache { keys: RandomState::new(), entries: VecDeque::new(), index: Vec::new(), head: 0, newest_ms: 0 }
    }

    pub fn fingerprint(&self, nonce: &str) -> u64 {
        self.keys.hash_one(nonce) >> TIME_BITS
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes currently reserved.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>() + self.index.capacity() * std::mem::size_of::<u16>()
    }

    /// Drops entries inserted more than 180 s before `now_ms` (strictly more,
    /// as in Python: an entry exactly 180 s old is still a replay).
    pub fn evict_expired(&mut self, now_ms: u64) {
        if self.entries.is_empty() {
            return;
        }
        if now_ms.saturating_sub(self.newest_ms) > NONCE_TTL_MS {
            self.clear();
            return;
        }
        while let Some(&front) = self.entries.front() {
            let age = now_ms.wrapping_sub(front) & TIME_MASK;
            if age > NONCE_TTL_MS && age < HALF_TIME_RANGE {
                self.pop_front();
            } else {
                break;
            }
        }
        let small = (self.entries.len() + 1) * 8;
        if self.index.len() > 64 && small <= self.index.len() {
            self.entries.shrink_to(self.entries.len() * 2);
            self.rebuild();
        }
    }

    pub fn contains(&self, fp: u64) -> bool {
        let mask = self.index.len().wrapping_sub(1);
        let mut slot = fp as usize & mask;
        for _ in 0..self.index.len() {
            match self.index.get(slot).copied() {
                None | Some(0) => return false,
                Some(tag) if self.fingerprint_of(tag) == Some(fp) => return true,
                Some(_) => slot = (slot + 1) & mask,
            }
        }
        false
    }

    /// Adds a fingerprint known not to be present.
    pub fn insert(&mut self, fp: u64, now_ms: u64) {
        if self.entries.len() >= MAX_NONCES {
            // Evicting before pushing keeps the deque at its 4096 capacity.
            self.pop_front();
        }
        if (self.entries.len() + 1) * 2 > self.index.len() {
            self.rebuild_with(self.entries.len() + 1);
        }
        let counter = self.head.wrapping_add(self.entries.len() as u32);
        self.entries.push_back((fp << TIME_BITS) | (now_ms & TIME_MASK));
        self.place(fp, tag_for(counter));
        self.newest_ms = now_ms;
    }

    fn clear(&mut self) {
        self.entries = VecDeque::new();
        self.index = Vec::new();
        self.head = 0;
    }

    fn fingerprint_of(&self, tag: u16) -> Option<u64> {
        let pos = u32::from(tag & COUNTER_MASK).wrapping_sub(self.head) & u32::from(COUNTER_MASK);
        self.entries.get(pos as usize).map(|e| e >> TIME_BITS)
    }

    fn place(&mut self, fp: u64, tag: u16) {
        let mask = self.index.len().wrapping_sub(1);
        let mut slot = fp as usize & mask;
        for _ in 0..self.index.len() {
            match self.index.get_mut(slot) {
                Some(cell) if *cell == 0 => {
                    *cell = tag;
                    return;
                }
                Some(_) => slot = (slot + 1) & mask,
                None => return,
            }
        }
    }

    fn pop_front(&mut self) {
        let Some(&front) = self.entries.front() else {
            return;
        };
        let fp = front >> TIME_BITS;
        let tag = tag_for(self.head);
        let mask = self.index.len().wrapping_sub(1);
        let mut slot = fp as usize & mask;
        for _ in 0..self.index.len() {
            match self.index.get(slot).copied() {
                Some(t) if t == tag => {
                    self.remove_slot(slot);
                    break;
                }
                None | Some(0) => break,
                Some(_) => slot = (slot + 1) & mask,
            }
        }
        self.entries.pop_front();
        self.head = self.head.wrapping_add(1);
    }

    /// Linear-probing deletion by backward shift (Knuth's Algorithm R): later
    /// members of the probe run move into the hole unless that would put
    /// them before their home slot. No tombstones, so lookups stay short.
    fn remove_slot(&mut self, mut hole: usize) {
        let mask = self.index.len().wrapping_sub(1);
        let mut next = (hole + 1) & mask;
        for _ in 0..self.index.len() {
            let tag = match self.index.get(next).copied() {
                None | Some(0) => break,
                Some(tag) => tag,
            };
            let home = self.fingerprint_of(tag).unwrap_or(0) as usize & mask;
            let stays = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                if let Some(cell) = self.index.get_mut(hole) {
                    *cell = tag;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(cell) = self.index.get_mut(hole) {
            *cell = 0;
        }
    }

    fn rebuild(&mut self) {
        self.rebuild_with(self.entries.len());
    }

    /// Re-creates the index for `len` entries at a load factor of at most 1/2.
    fn rebuild_with(&mut self, len: usize) {
        let size = (len * 2).next_power_of_two().max(MIN_INDEX);
        self.index = vec![0; size];
        let fps: Vec<(u64, u16)> = self
            .entries
            .iter()
            .zip(0u32..)
            .map(|(e, i)| (e >> TIME_BITS, tag_for(self.head.wrapping_add(i))))
            .collect();
        for (fp, tag) in fps {
            self.place(fp, tag);
        }
    }
}

impl Default for NonceCache {
    fn default() -> NonceCache {
        NonceCache::new()
    }
}

fn tag_for(counter: u32) -> u16 {
    OCCUPIED | (counter as u16 & COUNTER_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(c: &NonceCache, nonce: &str) -> bool {
        c.contains(c.fingerprint(nonce))
    }

    fn add(c: &mut NonceCache, nonce: &str, now: u64) {
        c.evict_expired(now);
        let fp = c.fingerprint(nonce);
        assert!(!c.contains(fp), "{nonce} already present");
        c.insert(fp, now);
    }

    #[test]
    fn ttl_is_strictly_greater_than_180s() {
        let mut c = NonceCache::new();
        add(&mut c, "a", 1_000);
        c.evict_expired(1_000 + NONCE_TTL_MS);
        assert!(seen(&c, "a"));
        c.evict_expired(1_000 + NONCE_TTL_MS + 1);
        assert!(!seen(&c, "a"));
    }

    #[test]
    fn partial_expiry_keeps_younger_entries() {
        let mut c = NonceCache::new();
        for i in 0..100u64 {
            add(&mut c, &format!("n{i}"), i * 1_000);
        }
        c.evict_expired(99_000 + 100_000);
        // At 199 s, entries from before 19 s are more than 180 s old; the
        // one from exactly 19 s is exactly 180 s old and stays.
        assert_eq!(c.len(), 81);
        assert!(!seen(&c, "n18"));
        assert!(seen(&c, "n19"));
        assert!(seen(&c, "n99"));
    }

    #[test]
    fn capacity_is_bounded_and_oldest_goes_first() {
        let mut c = NonceCache::new();
        for i in 0..MAX_NONCES + 10 {
            add(&mut c, &format!("n{i}"), 5_000);
        }
        assert_eq!(c.len(), MAX_NONCES);
        for i in 0..10 {
            assert!(!seen(&c, &format!("n{i}")));
        }
        for i in 10..MAX_NONCES + 10 {
            assert!(seen(&c, &format!("n{i}")), "n{i}");
        }
        // 4096 × 8 B of entries plus an 8192-slot u16 index.
        assert!(c.heap_bytes() <= 48 * 1024, "{}", c.heap_bytes());
    }

    #[test]
    fn long_churn_keeps_index_consistent() {
        // Many wraps of the 15-bit tag counter and the 20-bit time field.
        let mut c = NonceCache::new();
        let mut now = 0u64;
        for i in 0..200_000u64 {
            now += 7;
            add(&mut c, &format!("k{i}"), now);
            if i % 997 == 0 {
                assert!(seen(&c, &format!("k{i}")));
                if i >= 4096 {
                    assert!(!seen(&c, &format!("k{}", i - 4096)));
                }
                assert!(seen(&c, &format!("k{}", i.saturating_sub(4095))));
            }
        }
        assert_eq!(c.len(), MAX_NONCES);
    }

    #[test]
    fn idle_cache_releases_memory_and_survives_clock_wrap() {
        let mut c = NonceCache::new();
        for i in 0..3000 {
            add(&mut c, &format!("n{i}"), 10);
        }
        assert!(c.heap_bytes() > 16 * 1024);
        // Far beyond the 20-bit time range: everything is expired.
        c.evict_expired(10 + (1 << 40));
        assert_eq!(c.len(), 0);
        assert_eq!(c.heap_bytes(), 0);
        add(&mut c, "n1", 20 + (1 << 40));
        assert!(seen(&c, "n1"));
    }

    #[test]
    fn shrinks_after_a_burst() {
        let mut c = NonceCache::new();
        for i in 0..4000u64 {
            add(&mut c, &format!("b{i}"), i / 100);
        }
        let burst = c.heap_bytes();
        // Most of the burst expires; a trickle continues.
        add(&mut c, "late", 170_000);
        add(&mut c, "later", 180_039);
        assert!(c.len() < 200, "{}", c.len());
        assert!(c.heap_bytes() < burst / 4, "{} vs {burst}", c.heap_bytes());
        assert!(seen(&c, "late") && seen(&c, "later") && seen(&c, "b3999"));
    }

    #[test]
    fn clock_stepping_back_keeps_entries() {
        let mut c = NonceCache::new();
        add(&mut c, "a", 500_000);
        c.evict_expired(400_000);
        assert!(seen(&c, "a"));
    }
}
