//! Unacknowledged event frames of one agent. Like the real agent's buffer,
//! it outlives a session: frames not acked when a session ends are sent
//! again (same `id`, new seq/nonce/ts) in the next one, and frames not acked
//! within the deadline are sent again in the same session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use palisade::security::canonical_json::Value;

/// How an event frame's latency is measured once its ack arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// From its slot in the fixed-rate schedule.
    Open,
    /// From when it was first sent.
    Closed,
}

pub struct InFlight {
    /// The `event_batch` payload, signed again on every re-send.
    pub payload: Value,
    /// The scheduled send time (open model) or first send (closed model).
    pub intended: Instant,
    pub first_sent: Instant,
    pub last_sent: Instant,
    pub model: Model,
}

#[derive(Default)]
pub struct Ledger {
    frames: HashMap<String, InFlight>,
}

impl Ledger {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn insert(&mut self, id: String, frame: InFlight) {
        self.frames.insert(id, frame);
    }

    /// Removes and returns the frame an `event_batch_ack` names.
    pub fn ack(&mut self, id: &str) -> Option<InFlight> {
        self.frames.remove(id)
    }

    pub fn get(&self, id: &str) -> Option<&InFlight> {
        self.frames.get(id)
    }

    pub fn mark_sent(&mut self, id: &str, at: Instant) {
        if let Some(f) = self.frames.get_mut(id) {
            f.last_sent = at;
        }
    }

    /// Frames whose last send is older than `deadline`, oldest slot first.
    pub fn overdue(&self, now: Instant, deadline: Duration) -> Vec<String> {
        let mut ids: Vec<(Instant, &String)> = self
            .frames
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_sent) >= deadline)
            .map(|(id, f)| (f.intended, id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// Every frame, oldest slot first (re-sent after a reconnect).
    pub fn all(&self) -> Vec<String> {
        self.overdue(Instant::now(), Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(intended: Instant, last_sent: Instant) -> InFlight {
        InFlight { payload: Value::Null, intended, first_sent: last_sent, last_sent, model: Model::Open }
    }

    #[test]
    fn overdue_frames_in_schedule_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = Ledger::default();
        l.insert("b".into(), frame(t0 + s, t0));
        l.insert("a".into(), frame(t0, t0));
        l.insert("c".into(), frame(t0 + 2 * s, t0 + 5 * s));
        assert_eq!(l.overdue(t0 + 3 * s, 3 * s), vec!["a".to_owned(), "b".to_owned()]);
        l.mark_sent("a", t0 + 3 * s);
        assert_eq!(l.overdue(t0 + 3 * s, 3 * s), vec!["b".to_owned()]);
        assert_eq!(l.all().len(), 3);
        assert!(l.ack("b").is_some());
        assert!(l.ack("b").is_none());
        assert_eq!(l.len(), 2);
    }
}
