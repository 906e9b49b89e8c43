//! Simulated z4j 1.13 agents: the `agents` scenario.
//!
//! `fleet` runs the phases (connect storm, idle hold, open-model steady
//! phase, closed-model max phase, drain); `conn` is one agent's session loop;
//! `dial` opens a session; `frames` and `events` build what the agent sends;
//! `commander` plays the operator issuing commands over REST.

pub mod commander;
pub mod conn;
pub mod dial;
pub mod events;
pub mod fleet;
pub mod frames;
mod inflight;
pub mod selftest;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// What every agent should be doing now; broadcast through a `watch`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    /// Connect and hold the session; heartbeats only.
    Connect,
    /// Open model: each agent sends one event frame every `interval`, on a
    /// fixed schedule from `start`, whatever the brain does.
    Steady {
        interval: Duration,
        start: Instant,
    },
    /// Closed model: each agent keeps `window` event frames unacknowledged.
    Max {
        window: usize,
    },
    /// No new events; wait for outstanding acks.
    Drain,
    Stop,
}

/// Settings shared by every agent of the fleet.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub ws_url: String,
    pub addr: SocketAddr,
    /// Share of event frames followed by a deliberately invalid frame.
    pub invalid_share: f64,
    /// Re-send an unacknowledged event frame after this long (agent: 90 s).
    pub ack_deadline: Duration,
    pub events_per_frame: usize,
    /// Unacknowledged event frames at which the agent stops sending events
    /// (the real agent's cap is 256).
    pub inflight_cap: usize,
    /// How long to wait for the brain's close after an invalid frame.
    pub reject_wait: Duration,
}

/// Credentials of one minted agent (`POST /projects/{slug}/agents`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    pub token: String,
    pub hmac_secret: String,
    #[serde(default)]
    pub agent_id: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Recently reported tasks, for the commander to target.
#[derive(Default)]
pub struct TaskPool(Mutex<VecDeque<(String, String)>>);

const TASK_POOL_CAP: usize = 4_096;

impl TaskPool {
    pub fn push(&self, agent_id: &str, task_id: String) {
        let mut q = lock(&self.0);
        if q.len() >= TASK_POOL_CAP {
            q.pop_front();
        }
        q.push_back((agent_id.to_owned(), task_id));
    }

    /// A task seen a while ago (old enough to have been committed).
    pub fn pick(&self) -> Option<(String, String)> {
        let q = lock(&self.0);
        q.get(q.len() / 2).cloned()
    }
}

/// When each command frame reached an agent, by command id.
#[derive(Default)]
pub struct CommandLog(Mutex<HashMap<String, Instant>>);

const COMMAND_LOG_CAP: usize = 100_000;

impl CommandLog {
    pub fn arrived(&self, id: &str, at: Instant) {
        let mut m = lock(&self.0);
        if m.len() < COMMAND_LOG_CAP {
            m.entry(id.to_owned()).or_insert(at);
        }
    }

    pub fn take(&self, id: &str) -> Option<Instant> {
        lock(&self.0).remove(id)
    }
}

/// What the agent tasks share.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub cfg: AgentConfig,
    pub tasks: TaskPool,
    pub commands: CommandLog,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_pool_is_bounded() {
        let p = TaskPool::default();
        assert!(p.pick().is_none());
        for i in 0..(TASK_POOL_CAP + 10) {
            p.push("a", i.to_string());
        }
        assert_eq!(lock(&p.0).len(), TASK_POOL_CAP);
        assert!(p.pick().is_some());
    }

    #[test]
    fn command_log_keeps_first_arrival() {
        let log = CommandLog::default();
        let t0 = Instant::now();
        log.arrived("c", t0);
        log.arrived("c", t0 + Duration::from_secs(1));
        assert_eq!(log.take("c"), Some(t0));
        assert_eq!(log.take("c"), None);
    }
}
