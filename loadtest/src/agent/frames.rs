//! Frames a z4j 1.13 agent sends (spec §1.7, §4), built the way the real
//! agent builds them: `hello` unsigned, everything else signed with the
//! session's binding, `seq` from 1 per session, fresh `ts` and nonce.

use chrono::Utc;
use palisade::security::canonical_json::{Object, Value};
use palisade::security::frame::{format_ts, new_nonce, sign, Binding, FrameError, FrameKey, FrameKind};
use rand::Rng;

/// Agent-side signer of one session.
pub struct Signer {
    key: FrameKey,
    binding: Binding,
    seq: u64,
}

impl Signer {
    pub fn new(key: FrameKey, binding: Binding) -> Signer {
        Signer { key, binding, seq: 0 }
    }

    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// Signs the next frame (seq + 1, current time, new nonce).
    pub fn sign(&mut self, kind: FrameKind, id: &str, payload: &Value) -> Result<Vec<u8>, FrameError> {
        self.seq += 1;
        sign(&self.key, &self.binding, kind, id, &format_ts(Utc::now()), &new_nonce(), self.seq, payload)
    }
}

pub fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

pub fn int(n: i64) -> Value {
    Value::Int(n)
}

pub fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(Object::from_entries(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|i| s(*i)).collect())
}

/// `prefix` + `n` random lowercase hex digits (frame ids, §4 table).
pub fn hex_id(prefix: &str, n: usize) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(prefix.len() + n);
    out.push_str(prefix);
    for _ in 0..n {
        let d: u32 = rng.random_range(0..16);
        out.push(char::from_digit(d, 16).unwrap_or('0'));
    }
    out
}

/// Capabilities of the rq adapter (§1.7), which our simulated agents claim.
pub const ENGINE: &str = "rq";
const RQ_CAPS: [&str; 8] = [
    "bulk_retry",
    "cancel_task",
    "list_dead_letters",
    "purge_queue",
    "requeue_dead_letter",
    "retry_by_reference_v1",
    "retry_task",
    "submit_task",
];

/// The unsigned first message. `worker_id` keeps each simulated worker in
/// its own `(agent_id, worker_id)` slot, so many of them can share one
/// minted agent token (z4j allows 64 workers per agent).
pub fn hello(worker_id: &str, host: &str, pid: u32) -> Vec<u8> {
    let frame = serde_json::json!({
        "v": 2,
        "id": hex_id("hello_", 16),
        "ts": null,
        "type": "hello",
        "payload": {
            "protocol_version": "2",
            "agent_version": "1.13.0",
            "framework": "bare",
            "engines": [ENGINE],
            "schedulers": [],
            "capabilities": { ENGINE: RQ_CAPS },
            "host": { "name": host },
            "worker_id": worker_id,
            "worker_role": null,
            "worker_pid": pid,
            "worker_started_at": Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "runtime_features": ["retry_by_reference", "external_schedule_protocol_v1"],
        }
    });
    frame.to_string().into_bytes()
}

fn telemetry_loss(buffer_id: &str, runtime_id: &str) -> Value {
    obj(vec![
        ("buffer_id", s(buffer_id)),
        ("runtime_id", s(runtime_id)),
        ("capacity_evicted_frames", int(0)),
        ("content_rejected_frames", int(0)),
        ("event_records", int(0)),
        ("command_results", int(0)),
        ("other_frames", int(0)),
        ("unclassified_frames", int(0)),
        ("adapter_events", obj(vec![(ENGINE, int(0))])),
    ])
}

/// `heartbeat` payload (§4.3) with the rq adapter's health keys.
pub fn heartbeat(buffer_size: usize, buffer_id: &str, runtime_id: &str) -> Value {
    obj(vec![
        ("buffer_size", int(buffer_size as i64)),
        ("last_flush_at", Value::Null),
        ("dropped_events", int(0)),
        ("telemetry_loss", telemetry_loss(buffer_id, runtime_id)),
        (
            "adapter_health",
            obj(vec![
                ("rq.broker_type", s("redis")),
                ("rq.broker_connected", s("True")),
                ("rq.queue_depths", s("{\"default\": 0}")),
            ]),
        ),
    ])
}

/// `agent_status` payload (§4.4); carries floats, as the real one does.
pub fn agent_status(session_age_s: f64, buffer_depth: usize, connected_at: &str) -> Value {
    obj(vec![
        ("telemetry_loss", Value::Null),
        ("auth_failure_streak", int(0)),
        ("protocol_failure_streak", int(0)),
        ("connection_failure_streak", int(0)),
        ("last_successful_connect_at", s(connected_at)),
        ("current_session_age_seconds", Value::Float(session_age_s.max(0.0))),
        ("buffer_depth", int(buffer_depth as i64)),
        ("buffer_oldest_age_seconds", Value::Null),
        ("agent_version", s("1.13.0")),
        ("protocol_version", s("2")),
        ("engines", strings(&[ENGINE])),
        ("schedulers", Value::Array(Vec::new())),
    ])
}

pub fn event_batch(events: Vec<Value>) -> Value {
    obj(vec![("events", Value::Array(events))])
}

pub fn command_ack(claim: Option<&str>) -> Value {
    obj(vec![("delivery_claim_token", claim.map_or(Value::Null, s))])
}

pub fn command_result(ok: bool, result: Value, error: Option<String>, claim: Option<&str>) -> Value {
    obj(vec![
        ("status", s(if ok { "success" } else { "failed" })),
        ("result", result),
        ("error", error.map_or(Value::Null, s)),
        ("delivery_claim_token", claim.map_or(Value::Null, s)),
    ])
}

/// Corrupts a signed frame so its MAC no longer verifies while it stays
/// valid JSON with a well-formed 64-char lowercase `hmac`: one hex digit of
/// the MAC is changed. The brain must treat it as a signature failure
/// (close 4403), not a protocol error (1011).
pub fn flip_hmac(frame: &mut [u8]) -> bool {
    const KEY: &[u8] = b"\"hmac\":\"";
    let Some(pos) = frame.windows(KEY.len()).position(|w| w == KEY) else { return false };
    let idx = pos + KEY.len() + rand::rng().random_range(0..64);
    match frame.get_mut(idx) {
        Some(b) if b.is_ascii_hexdigit() => {
            *b = if *b == b'0' { b'1' } else { b'0' };
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade::security::frame::{parse_hello, verify, FrameError, SignatureError};

    fn key() -> FrameKey {
        FrameKey::new(&[7u8; 32]).unwrap()
    }

    fn binding() -> Binding {
        Binding {
            agent_id: "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into(),
            project_id: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".into(),
            session_id: "11111111-2222-4333-8444-555555555555".into(),
        }
    }

    #[test]
    fn hello_passes_the_brains_strict_parser() {
        let h = parse_hello(&hello("bare-1-2", "lt-host", 42)).unwrap();
        assert_eq!(h.engines, vec!["rq"]);
        assert_eq!(h.worker_id.as_deref(), Some("bare-1-2"));
        assert!(h.retries_by_reference("rq"));
        assert!(h.id.starts_with("hello_") && h.id.len() == 22);
    }

    #[test]
    fn signed_frames_verify_and_seq_increments() {
        let mut signer = Signer::new(key(), binding());
        let hb = signer.sign(FrameKind::Heartbeat, &hex_id("hb_", 12), &heartbeat(0, "b", "r:1")).unwrap();
        let st = signer.sign(FrameKind::AgentStatus, &hex_id("as_", 12), &agent_status(0.25, 0, "x")).unwrap();
        let a = verify(&key(), &binding(), &hb).unwrap();
        let b = verify(&key(), &binding(), &st).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.kind, FrameKind::Heartbeat);
    }

    #[test]
    fn command_frames_keep_the_command_id() {
        let mut signer = Signer::new(key(), binding());
        let id = "c0ffee00-1234-4abc-8def-0123456789ab";
        let r = signer.sign(FrameKind::CommandResult, id, &command_result(true, Value::Null, None, Some("t"))).unwrap();
        let f = verify(&key(), &binding(), &r).unwrap();
        assert_eq!(f.id, id);
        let ack = signer.sign(FrameKind::CommandAck, id, &command_ack(None)).unwrap();
        assert_eq!(verify(&key(), &binding(), &ack).unwrap().kind, FrameKind::CommandAck);
    }

    #[test]
    fn flipped_frames_fail_as_signature_errors() {
        let mut signer = Signer::new(key(), binding());
        for _ in 0..50 {
            let mut f = signer.sign(FrameKind::EventBatch, &hex_id("ev_", 32), &event_batch(vec![])).unwrap();
            assert!(flip_hmac(&mut f));
            match verify(&key(), &binding(), &f) {
                Err(FrameError::Signature(SignatureError::Mismatch)) => {}
                other => panic!("expected a MAC mismatch, got {other:?}"),
            }
        }
        assert!(!flip_hmac(&mut b"{}".to_vec()));
    }

    #[test]
    fn ids_have_the_reference_shape() {
        let id = hex_id("ev_", 32);
        assert_eq!(id.len(), 35);
        assert!(id[3..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
