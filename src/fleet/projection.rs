//! Folding newly stored events into the current-state tables: one upsert
//! per task, worker and queue touched by a batch.
//!
//! Only events that were not stored before are folded (the ingest inserts
//! events first and folds what the insert reported as new), so a re-sent
//! batch changes nothing. Within a task, the newest event decides the
//! state; the database upsert applies the same rule against the stored
//! row, so batches committed out of order still converge.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::events::{Event, Kind};

#[derive(Clone, Debug, PartialEq)]
pub struct TaskUpsert {
    pub engine: String,
    pub task_id: String,
    pub name: Option<String>,
    pub queue: Option<String>,
    pub worker: Option<String>,
    pub state: &'static str,
    pub received_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub runtime_ms: Option<i64>,
    pub retries: i32,
    pub exception: Option<String>,
    pub args: Option<Value>,
    pub kwargs: Option<Value>,
    pub result: Option<Value>,
    pub last_event_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerUpsert {
    pub engine: String,
    pub name: String,
    pub state: Option<&'static str>,
    pub last_seen: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueUpsert {
    pub engine: String,
    pub name: String,
    pub depth: Option<i64>,
    pub at: DateTime<Utc>,
}

#[derive(Default, Debug)]
pub struct Projection {
    pub tasks: Vec<TaskUpsert>,
    pub workers: Vec<WorkerUpsert>,
    pub queues: Vec<QueueUpsert>,
}

fn text(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| s.chars().take(512).collect())
}

/// Longest exception text kept on the task row (the agents cap theirs at
/// 4 KiB; the full event stays in `task_events`).
pub const MAX_EXCEPTION_CHARS: usize = 4096;

/// An exception or traceback for the task row. A Python traceback ends with
/// the exception's type and message, so when it must be shortened the end
/// is kept, not the head of the stack.
fn exception_text(data: &Value, key: &str) -> Option<String> {
    let s = data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())?;
    let n = s.chars().count();
    if n <= MAX_EXCEPTION_CHARS {
        return Some(s.to_string());
    }
    let tail: String = s.chars().skip(n - (MAX_EXCEPTION_CHARS - 1)).collect();
    Some(format!("…{tail}"))
}

fn int(data: &Value, key: &str) -> Option<i64> {
    data.get(key).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// Later event wins; at the same instant a terminal state beats a
/// non-terminal one (a task cannot "start" after it finished in the same
/// microsecond).
fn newer(kind: Kind, at: DateTime<Utc>, current_at: DateTime<Utc>, current_terminal: bool) -> bool {
    at > current_at || (at == current_at && (kind.is_terminal() || !current_terminal))
}

fn fold_task(t: &mut TaskUpsert, terminal: &mut bool, e: &Event) {
    let d = &e.data;
    t.name = text(d, "task_name").or(t.name.take());
    t.queue = text(d, "queue").or(t.queue.take());
    t.worker = text(d, "worker").or(t.worker.take());
    match e.kind {
        Kind::TaskSent | Kind::TaskReceived => {
            t.received_at = Some(t.received_at.map_or(e.occurred_at, |r| r.min(e.occurred_at)))
        }
        Kind::TaskStarted => t.started_at = Some(t.started_at.map_or(e.occurred_at, |s| s.max(e.occurred_at))),
        Kind::TaskRetried => t.retries += 1,
        _ => {}
    }
    if e.kind.is_terminal() {
        t.finished_at = Some(t.finished_at.map_or(e.occurred_at, |f| f.max(e.occurred_at)));
    }
    if matches!(e.kind, Kind::TaskFailed | Kind::TaskRetried) {
        t.exception = exception_text(d, "exception").or_else(|| exception_text(d, "traceback")).or(t.exception.take());
    }
    t.runtime_ms = int(d, "runtime_ms").or(t.runtime_ms);
    if let Some(n) = int(d, "retry_count") {
        t.retries = t.retries.max(i32::try_from(n).unwrap_or(i32::MAX));
    }
    for (key, slot) in [("args", &mut t.args), ("kwargs", &mut t.kwargs), ("result", &mut t.result)] {
        if let Some(v) = d.get(key).filter(|v| !v.is_null()) {
            *slot = Some(v.clone());
        }
    }
    if let Some(state) = e.kind.task_state() {
        if newer(e.kind, e.occurred_at, t.last_event_at, *terminal) {
            t.state = state;
            t.last_event_at = e.occurred_at;
            *terminal = e.kind.is_terminal();
        }
    }
}

/// Fold `events` (new, unique) into upserts.
pub fn project(events: &[&Event]) -> Projection {
    let mut order: Vec<&Event> = events.to_vec();
    order.sort_by_key(|e| e.occurred_at);
    let mut tasks: HashMap<(String, String), (TaskUpsert, bool)> = HashMap::new();
    let mut task_order = Vec::new();
    let mut workers: HashMap<(String, String), WorkerUpsert> = HashMap::new();
    let mut worker_order = Vec::new();
    let mut queues: HashMap<(String, String), QueueUpsert> = HashMap::new();
    for e in order {
        if e.kind.task_state().is_some() && !e.task_id.is_empty() {
            let key = (e.engine.clone(), e.task_id.clone());
            let entry = tasks.entry(key.clone()).or_insert_with(|| {
                task_order.push(key);
                let t = TaskUpsert {
                    engine: e.engine.clone(),
                    task_id: e.task_id.clone(),
                    name: None,
                    queue: None,
                    worker: None,
                    state: "pending",
                    received_at: None,
                    started_at: None,
                    finished_at: None,
                    runtime_ms: None,
                    retries: 0,
                    exception: None,
                    args: None,
                    kwargs: None,
                    result: None,
                    last_event_at: e.occurred_at,
                };
                (t, false)
            });
            let (t, terminal) = entry;
            fold_task(t, terminal, e);
        }
        let worker_name = text(&e.data, "worker").or_else(|| text(&e.data, "hostname"));
        if let Some(name) = worker_name {
            let key = (e.engine.clone(), name.clone());
            let w = workers.entry(key.clone()).or_insert_with(|| {
                worker_order.push(key);
                WorkerUpsert {
                    engine: e.engine.clone(),
                    name,
                    state: None,
                    last_seen: e.occurred_at,
                    succeeded: 0,
                    failed: 0,
                }
            });
            w.last_seen = w.last_seen.max(e.occurred_at);
            match e.kind {
                Kind::TaskSucceeded => w.succeeded += 1,
                Kind::TaskFailed => w.failed += 1,
                Kind::WorkerOffline => w.state = Some("offline"),
                Kind::WorkerOnline | Kind::WorkerHeartbeat => w.state = Some("online"),
                _ if w.state.is_none() => w.state = Some("online"),
                _ => {}
            }
        }
        if e.kind == Kind::QueueDepth {
            let mut add = |name: String, depth: Option<i64>| {
                queues.insert(
                    (e.engine.clone(), name.clone()),
                    QueueUpsert { engine: e.engine.clone(), name, depth, at: e.occurred_at },
                );
            };
            if let Some(q) = text(&e.data, "queue") {
                add(q, int(&e.data, "depth"));
            }
            if let Some(Value::Object(depths)) = e.data.get("depths") {
                for (q, d) in depths {
                    add(q.clone(), d.as_i64());
                }
            }
        }
    }
    Projection {
        tasks: task_order.into_iter().filter_map(|k| tasks.remove(&k).map(|(t, _)| t)).collect(),
        workers: worker_order.into_iter().filter_map(|k| workers.remove(&k)).collect(),
        queues: queues.into_values().collect(),
    }
}

/// Queue depths from a heartbeat's `adapter_health` (`"<engine>.queue_depths"`
/// holds a JSON object as a string).
pub fn queue_depths_from_heartbeat(adapter_health: &Value, at: DateTime<Utc>) -> Vec<QueueUpsert> {
    let mut out = Vec::new();
    let Some(map) = adapter_health.as_object() else { return out };
    for (key, v) in map {
        let Some(engine) = key.strip_suffix(".queue_depths") else { continue };
        let Some(parsed) = v.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()) else { continue };
        if let Some(obj) = parsed.as_object() {
            for (q, d) in obj.iter().take(1_000) {
                out.push(QueueUpsert {
                    engine: engine.chars().take(64).collect(),
                    name: q.chars().take(256).collect(),
                    depth: d.as_i64(),
                    at,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;
    use uuid::Uuid;

    fn ev(kind: &str, task: &str, at: DateTime<Utc>, data: Value) -> Event {
        Event {
            id: Uuid::new_v4(),
            kind: Kind::parse(kind),
            kind_text: kind.into(),
            engine: "rq".into(),
            task_id: task.into(),
            occurred_at: at,
            data,
        }
    }

    #[test]
    fn newest_event_decides_state_regardless_of_arrival_order() {
        let t0 = Utc::now();
        let events = [
            ev("task.succeeded", "a", t0 + Duration::seconds(2), json!({ "worker": "w1", "runtime_ms": 12 })),
            ev(
                "task.started",
                "a",
                t0 + Duration::seconds(1),
                json!({ "task_name": "add", "queue": "default", "worker": "w1" }),
            ),
            ev("task.received", "a", t0, json!({ "task_name": "add" })),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let p = project(&refs);
        assert_eq!(p.tasks.len(), 1);
        let t = &p.tasks[0];
        assert_eq!((t.state, t.name.as_deref(), t.queue.as_deref()), ("succeeded", Some("add"), Some("default")));
        assert_eq!(
            (t.received_at, t.started_at, t.finished_at),
            (Some(t0), Some(t0 + Duration::seconds(1)), Some(t0 + Duration::seconds(2)))
        );
        assert_eq!(t.runtime_ms, Some(12));
        assert_eq!(p.workers.len(), 1);
        assert_eq!((p.workers[0].succeeded, p.workers[0].failed), (1, 0));
    }

    #[test]
    fn retries_failures_and_queues() {
        let t0 = Utc::now();
        let events = [
            ev("task.retried", "b", t0, json!({ "exception": "Boom: once", "worker": "w2" })),
            ev("task.failed", "b", t0 + Duration::seconds(1), json!({ "exception": "Boom: twice", "worker": "w2" })),
            ev("queue.depth_report", "", t0, json!({ "queue": "default", "depth": 7 })),
            ev("worker.offline", "", t0 + Duration::seconds(3), json!({ "worker": "w2" })),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let p = project(&refs);
        let t = &p.tasks[0];
        assert_eq!((t.state, t.retries, t.exception.as_deref()), ("failed", 1, Some("Boom: twice")));
        assert_eq!(p.queues, vec![QueueUpsert { engine: "rq".into(), name: "default".into(), depth: Some(7), at: t0 }]);
        assert_eq!((p.workers[0].state, p.workers[0].failed), (Some("offline"), 1));
    }

    #[test]
    fn a_traceback_keeps_its_last_line() {
        // What the real z4j-rq agent sends: RQ's whole traceback, about 900
        // characters, with the exception itself on the last line.
        let frames = "  File \"/venv/lib/python3.11/site-packages/rq/job.py\", line 1539, in _execute\n".repeat(12);
        let tb = format!("Traceback (most recent call last):\n{frames}ValueError: boom: expected\n");
        let t0 = Utc::now();
        let p = project(&[&ev("task.failed", "c", t0, json!({ "exception": tb }))]);
        assert_eq!(p.tasks[0].exception.as_deref(), Some(tb.as_str()), "kept whole below the cap");

        let long = format!("Traceback (most recent call last):\n{}ValueError: deep\n", frames.repeat(10));
        let p = project(&[&ev("task.failed", "d", t0, json!({ "exception": long }))]);
        let kept = p.tasks[0].exception.clone().unwrap();
        assert_eq!(kept.chars().count(), MAX_EXCEPTION_CHARS);
        assert!(kept.starts_with('…') && kept.ends_with("ValueError: deep\n"), "{kept}");
    }

    #[test]
    fn heartbeat_queue_depths() {
        let at = Utc::now();
        let q = queue_depths_from_heartbeat(
            &json!({ "rq.queue_depths": "{\"default\": 3, \"high\": 0}", "rq.broker_type": "redis" }),
            at,
        );
        assert_eq!(q.len(), 2);
        assert!(q.iter().any(|x| x.name == "default" && x.depth == Some(3)));
    }
}
