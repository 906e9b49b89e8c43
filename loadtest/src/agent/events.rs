//! Realistic task events (§4.1): each simulated worker runs a handful of
//! tasks at once and reports their lifecycle — sent, received, started, then
//! succeeded, failed, or retried and started again.

use chrono::Utc;
use palisade::security::canonical_json::Value;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::frames::{int, obj, s, ENGINE};

const TASK_NAMES: [&str; 6] = [
    "app.tasks.send_email",
    "app.tasks.resize_image",
    "app.tasks.sync_account",
    "billing.charge",
    "reports.build",
    "etl.load",
];
const QUEUES: [&str; 3] = ["default", "high", "low"];
const ACTIVE_TASKS: usize = 8;
const MAX_RETRIES: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Sent,
    Received,
    Started,
    Retried,
    Done,
}

struct Task {
    id: String,
    name: &'static str,
    queue: &'static str,
    stage: Stage,
    retries: u8,
}

/// Event generator of one simulated worker.
pub struct EventGen {
    rng: SmallRng,
    worker: String,
    active: Vec<Task>,
}

/// Python's `datetime.isoformat()` of an aware UTC time, as the agent
/// writes `occurred_at`: microseconds and `+00:00`.
pub fn occurred_at_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

impl EventGen {
    pub fn new(host: &str, pid: u32, seed: u64) -> EventGen {
        EventGen { rng: SmallRng::seed_from_u64(seed), worker: format!("{host}@{pid}"), active: Vec::new() }
    }

    fn new_task(&mut self) -> Task {
        Task {
            id: uuid::Uuid::new_v4().to_string(),
            name: TASK_NAMES[self.rng.random_range(0..TASK_NAMES.len())],
            queue: QUEUES[self.rng.random_range(0..QUEUES.len())],
            stage: Stage::New,
            retries: 0,
        }
    }

    /// The next event, and the id of a task the brain now knows about.
    pub fn next_event(&mut self) -> (Value, String) {
        if self.active.len() < ACTIVE_TASKS {
            let t = self.new_task();
            self.active.push(t);
        }
        let i = self.rng.random_range(0..self.active.len());
        let roll: f64 = self.rng.random();
        let Some(task) = self.active.get_mut(i) else {
            // Unreachable: the vector is non-empty and `i` is in range.
            return (Value::Null, String::new());
        };
        let (next, kind) = match task.stage {
            Stage::New => (Stage::Sent, "task.sent"),
            Stage::Sent => (Stage::Received, "task.received"),
            Stage::Received | Stage::Retried => (Stage::Started, "task.started"),
            // 85 % succeed, 10 % fail for good, 5 % are retried (bounded).
            Stage::Started if roll < 0.85 => (Stage::Done, "task.succeeded"),
            Stage::Started if roll < 0.95 || task.retries >= MAX_RETRIES => (Stage::Done, "task.failed"),
            Stage::Started => (Stage::Retried, "task.retried"),
            Stage::Done => (Stage::Done, "task.succeeded"),
        };
        task.stage = next;
        if kind == "task.retried" {
            task.retries += 1;
        }
        let mut data = vec![("task_name", s(task.name)), ("queue", s(task.queue)), ("worker", s(self.worker.as_str()))];
        match kind {
            "task.succeeded" => data.push(("runtime_ms", int(self.rng.random_range(2..2_000)))),
            "task.failed" | "task.retried" => {
                data.push(("exception", s("ConnectionError: upstream timed out after 30s")));
                data.push(("retry_count", int(i64::from(task.retries))));
            }
            _ => {}
        }
        let event = obj(vec![
            ("id", s(uuid::Uuid::new_v4().to_string())),
            ("kind", s(kind)),
            ("engine", s(ENGINE)),
            ("task_id", s(task.id.as_str())),
            ("occurred_at", s(occurred_at_now())),
            ("data", obj(data)),
        ]);
        let task_id = task.id.clone();
        if next == Stage::Done {
            self.active.swap_remove(i);
        }
        (event, task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn lifecycles_are_ordered_and_complete() {
        let mut g = EventGen::new("lt-host", 7, 1);
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        for _ in 0..5_000 {
            let (ev, task) = g.next_event();
            let o = ev.as_object().unwrap();
            assert_eq!(o.get("engine").and_then(Value::as_str), Some("rq"));
            assert!(o.get("occurred_at").and_then(Value::as_str).unwrap().ends_with("+00:00"));
            let kind = o.get("kind").and_then(Value::as_str).unwrap().to_owned();
            seen.entry(task).or_default().push(kind);
        }
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for life in seen.values() {
            assert_eq!(life[0], "task.sent");
            if life.len() > 1 {
                assert_eq!(life[1], "task.received");
            }
            for k in life {
                *kinds.entry(k.as_str()).or_default() += 1;
            }
        }
        for k in ["task.sent", "task.received", "task.started", "task.succeeded", "task.failed", "task.retried"] {
            assert!(kinds.get(k).copied().unwrap_or(0) > 0, "{k} never generated: {kinds:?}");
        }
        assert!(kinds["task.succeeded"] > kinds["task.failed"]);
    }

    #[test]
    fn occurred_at_is_python_isoformat() {
        let t = occurred_at_now();
        assert_eq!(t.len(), "2026-12-04T19:49:03.511000+00:00".len(), "{t}");
    }
}
