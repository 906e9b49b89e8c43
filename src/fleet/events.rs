//! Agent events: validation, brain-side redaction and normalisation.
//!
//! Every event of an `event_batch` is re-scrubbed here, as a whole (not
//! only `data`), before anything stores or forwards it: the agent's own
//! redaction is not trusted to be configured or current.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::security::canonical_json;
use crate::security::redaction::{RedactionStats, Redactor};

/// Event kinds the agent protocol defines; anything else is `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TaskSent,
    TaskReceived,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskRetried,
    TaskRevoked,
    TaskRejected,
    WorkerOnline,
    WorkerOffline,
    WorkerHeartbeat,
    QueueDepth,
    Schedule,
    Unknown,
}

impl Kind {
    pub fn parse(s: &str) -> Kind {
        match s {
            "task.sent" => Kind::TaskSent,
            "task.received" => Kind::TaskReceived,
            "task.started" => Kind::TaskStarted,
            "task.succeeded" => Kind::TaskSucceeded,
            "task.failed" => Kind::TaskFailed,
            "task.retried" => Kind::TaskRetried,
            "task.revoked" => Kind::TaskRevoked,
            "task.rejected" => Kind::TaskRejected,
            "worker.online" => Kind::WorkerOnline,
            "worker.offline" => Kind::WorkerOffline,
            "worker.heartbeat" => Kind::WorkerHeartbeat,
            "queue.depth_report" => Kind::QueueDepth,
            s if s.starts_with("schedule.") => Kind::Schedule,
            _ => Kind::Unknown,
        }
    }

    /// The task state this event puts a task in, if it is a task event.
    pub fn task_state(self) -> Option<&'static str> {
        Some(match self {
            Kind::TaskSent => "pending",
            Kind::TaskReceived => "received",
            Kind::TaskStarted => "started",
            Kind::TaskSucceeded => "succeeded",
            Kind::TaskFailed => "failed",
            Kind::TaskRetried => "retried",
            Kind::TaskRevoked => "revoked",
            Kind::TaskRejected => "rejected",
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Kind::TaskSucceeded | Kind::TaskFailed | Kind::TaskRevoked | Kind::TaskRejected)
    }
}

/// One event ready to store: redacted, validated, scoped.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: Uuid,
    pub kind: Kind,
    /// The wire kind string (kept for unknown/schedule kinds).
    pub kind_text: String,
    pub engine: String,
    pub task_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

/// What happened to each event of a batch.
#[derive(Default, Debug)]
pub struct Normalized {
    pub events: Vec<Event>,
    /// Events dropped permanently (no engine or kind, not an object): they
    /// are acknowledged so the agent stops re-sending them.
    pub dropped: usize,
    pub redactions: RedactionStats,
}

/// Hard caps on what one event may carry after redaction; larger strings
/// are already truncated by the redactor.
const MAX_FIELD_CHARS: usize = 256;
pub const MAX_EVENTS_PER_BATCH: usize = 5_000;

fn short(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).map(|s| s.chars().take(MAX_FIELD_CHARS).collect()).unwrap_or_default()
}

/// Events carry a v4/v7 UUID minted at capture and kept across re-sends;
/// anything else gets a deterministic id derived from the event itself, so
/// a re-sent copy still deduplicates.
fn event_id(raw: Option<&Value>, engine: &str, task_id: &str, kind: &str, occurred: &str, data: &Value) -> Uuid {
    if let Some(id) = raw.and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()) {
        if !id.is_nil() && !id.is_max() && matches!(id.get_version_num(), 4 | 7) {
            return id;
        }
    }
    let material = format!("{engine}\u{1f}{task_id}\u{1f}{kind}\u{1f}{occurred}\u{1f}{data}");
    let digest = crate::security::keys::hmac_sha256(b"palisade/event-id/v1", &[material.as_bytes()]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Python `isoformat()` timestamps; clamped to [now − 400 days, now + 60 s]
/// so a bad agent clock cannot push rows out of every time window.
fn occurred(raw: Option<&Value>, now: DateTime<Utc>) -> DateTime<Utc> {
    let parsed = raw
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(&s.replace(' ', "T")).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    parsed.clamp(now - Duration::days(400), now + Duration::seconds(60))
}

/// Normalise the `events` array of a verified `event_batch` payload.
pub fn normalize(payload: &canonical_json::Value, redactor: &Redactor, now: DateTime<Utc>) -> Normalized {
    let mut out = Normalized::default();
    let Some(events) = payload.as_object().and_then(|o| o.get("events")).and_then(|e| e.as_array()) else {
        return out;
    };
    for raw in events.iter().take(MAX_EVENTS_PER_BATCH) {
        let Ok(serde_value) = raw.to_serde() else {
            out.dropped += 1;
            continue;
        };
        let (clean, stats) = redactor.redact(&serde_value);
        out.redactions.merge(&stats);
        let Value::Object(mut obj) = clean else {
            out.dropped += 1;
            continue;
        };
        let engine = short(obj.get("engine"));
        let kind_text = short(obj.get("kind"));
        if engine.is_empty() || kind_text.is_empty() || engine == crate::security::redaction::REDACTED {
            out.dropped += 1;
            continue;
        }
        let task_id = short(obj.get("task_id"));
        // Moved out of the scrubbed copy, which is dropped at the end of
        // this iteration: no second deep copy of the payload.
        let data = match obj.remove("data") {
            Some(Value::Object(m)) => Value::Object(m),
            _ => Value::Object(Map::new()),
        };
        let occurred_text = obj.get("occurred_at").and_then(Value::as_str).unwrap_or("");
        let id = event_id(obj.get("id"), &engine, &task_id, &kind_text, occurred_text, &data);
        out.events.push(Event {
            id,
            kind: Kind::parse(&kind_text),
            kind_text,
            engine,
            task_id,
            occurred_at: occurred(obj.get("occurred_at"), now),
            data,
        });
    }
    out.dropped += events.len().saturating_sub(MAX_EVENTS_PER_BATCH);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(events: serde_json::Value) -> canonical_json::Value {
        canonical_json::Value::from_serde(&serde_json::json!({ "events": events })).unwrap()
    }

    #[test]
    fn redacts_the_whole_event_and_keeps_ids() {
        let r = Redactor::with_defaults().unwrap();
        let now = Utc::now();
        let p = payload(serde_json::json!([{
            "id": "2495d629-3eb5-49a8-a42e-eb791581e36b", "kind": "task.failed", "engine": "rq",
            "task_id": "t1", "occurred_at": "2026-12-04T19:49:03.518576+00:00",
            "data": { "task_name": "charge", "queue": "default", "kwargs": { "password": "hunter2" },
                      "exception": "ValueError: redis://:s3cret@cache:6379/0 unreachable" }
        }]));
        let n = normalize(&p, &r, now);
        assert_eq!(n.events.len(), 1);
        let e = &n.events[0];
        assert_eq!(e.id.to_string(), "2495d629-3eb5-49a8-a42e-eb791581e36b");
        assert_eq!(e.kind, Kind::TaskFailed);
        let text = e.data.to_string();
        assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");
        assert!(!n.redactions.is_clean());
    }

    #[test]
    fn drops_events_without_engine_or_kind_and_clamps_time() {
        let r = Redactor::with_defaults().unwrap();
        let now = Utc::now();
        let p = payload(serde_json::json!([
            { "kind": "worker.offline", "engine": "", "task_id": "" },
            { "kind": "", "engine": "rq" },
            "not an object",
            { "kind": "task.started", "engine": "rq", "task_id": "x", "occurred_at": "1999-01-01T00:00:00+00:00" },
            { "kind": "mystery", "engine": "rq", "task_id": "y", "occurred_at": "2999-01-01T00:00:00+00:00" }
        ]));
        let n = normalize(&p, &r, now);
        assert_eq!(n.dropped, 3);
        assert_eq!(n.events.len(), 2);
        assert_eq!(n.events[0].occurred_at, now - Duration::days(400));
        assert_eq!(n.events[1].occurred_at, now + Duration::seconds(60));
        assert_eq!(n.events[1].kind, Kind::Unknown);
    }

    #[test]
    fn events_without_a_valid_id_get_a_stable_one() {
        let r = Redactor::with_defaults().unwrap();
        let now = Utc::now();
        let ev = serde_json::json!([{ "id": "not-a-uuid", "kind": "task.started", "engine": "rq", "task_id": "z", "occurred_at": "2026-01-01T00:00:00+00:00" }]);
        let a = normalize(&payload(ev.clone()), &r, now);
        let b = normalize(&payload(ev), &r, now);
        assert_eq!(a.events[0].id, b.events[0].id, "a re-sent copy deduplicates");
        let nil = serde_json::json!([{ "id": "00000000-0000-0000-0000-000000000000", "kind": "task.started", "engine": "rq", "task_id": "z" }]);
        assert!(!normalize(&payload(nil), &r, now).events[0].id.is_nil());
    }
}
