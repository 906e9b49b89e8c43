//! Micro-benchmark: what one agent frame costs the brain's CPU, per core.
//!
//! Single-threaded, release build, on frames shaped like the z4j 1.13
//! agent's `event_batch` (realistic task events with a worker, queue,
//! arguments and a traceback-sized exception now and then):
//!
//! - verify: canonical-JSON parse + HMAC-SHA256 check (`frame::verify`);
//! - replay: the session's guard (timestamp window, nonce cache, seq);
//! - normalize: event validation and brain-side redaction of every string;
//! - ack: signing the `event_batch_ack` the session sends back.
//!
//! Run: `cargo run --release --example frame_bench`
//! (see BENCHMARKS.md, "Agent gateway", for recorded numbers).

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use chrono::Utc;
use palisade::fleet::events;
use palisade::security::canonical_json::Value as CValue;
use palisade::security::frame::{self, Binding, FrameKey, FrameKind};
use palisade::security::redaction::{Redactor, RedactorConfig};
use palisade::security::replay::{Direction, ReplayGuard};
use serde_json::json;

const FRAMES: usize = 20_000;
const ROUNDS: usize = 7;

fn event(i: usize) -> serde_json::Value {
    let kinds = ["task.sent", "task.received", "task.started", "task.succeeded"];
    let mut data = json!({
        "task_name": "app.tasks.send_email",
        "queue": "default",
        "worker": "worker-7@host-3",
        "args": ["user-4711", {"template": "welcome", "locale": "en"}],
        "kwargs": {"retry": true, "priority": 5},
    });
    if i % 10 == 9 {
        data["exception"] = json!("ConnectionError: upstream timed out after 30s\n  File \"/app/tasks.py\", line 42, in send_email\n    smtp.send(msg)");
    }
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "kind": kinds[i % kinds.len()],
        "engine": "rq",
        "task_id": format!("task-{}", i / 4),
        "occurred_at": Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
        "data": data,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let key = FrameKey::new(&[7u8; 32]).map_err(|e| e.to_string())?;
    let binding = Binding {
        agent_id: uuid::Uuid::new_v4().to_string(),
        project_id: uuid::Uuid::new_v4().to_string(),
        session_id: uuid::Uuid::new_v4().to_string(),
    };
    let redactor = Redactor::new(&RedactorConfig::default()).map_err(|e| e.to_string())?;
    println!("| events per frame | frame bytes | verify | replay guard | normalize + redact | sign ack | total per frame | frames/s per core | events/s per core |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for per_frame in [1usize, 10] {
        let mut frames = Vec::with_capacity(FRAMES);
        let ts = frame::format_ts(Utc::now());
        for n in 0..FRAMES {
            let events: Vec<serde_json::Value> = (0..per_frame).map(|i| event(n * per_frame + i)).collect();
            let payload = CValue::from_serde(&json!({ "events": events })).map_err(|e| e.to_string())?;
            let bytes = frame::sign(
                &key,
                &binding,
                FrameKind::EventBatch,
                &format!("batch-{n}"),
                &ts,
                &frame::new_nonce(),
                n as u64 + 1,
                &payload,
            )
            .map_err(|e| e.to_string())?;
            frames.push(bytes);
        }
        let size = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
        let (mut t_verify, mut t_replay, mut t_norm, mut t_ack) = (vec![], vec![], vec![], vec![]);
        let ack_payload = CValue::from_serde(&json!({"batch_id": "b", "received": per_frame, "dropped": 0}))
            .map_err(|e| e.to_string())?;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let verified: Vec<_> = frames.iter().filter_map(|f| frame::verify(&key, &binding, f).ok()).collect();
            t_verify.push(t.elapsed().as_secs_f64() / FRAMES as f64);
            if verified.len() != FRAMES {
                return Err("a frame did not verify".into());
            }
            let mut guard = ReplayGuard::new(Direction::AgentToBrain);
            let now = Utc::now();
            let t = Instant::now();
            for (i, f) in verified.iter().enumerate() {
                black_box(guard.check(f.seq, &f.nonce, &f.ts, now, i as u64).is_ok());
            }
            t_replay.push(t.elapsed().as_secs_f64() / FRAMES as f64);
            let t = Instant::now();
            for f in &verified {
                black_box(events::normalize(&f.payload, &redactor, now));
            }
            t_norm.push(t.elapsed().as_secs_f64() / FRAMES as f64);
            let ts = frame::format_ts(now);
            let t = Instant::now();
            for i in 0..FRAMES {
                let nonce = frame::new_nonce();
                black_box(
                    frame::sign(&key, &binding, FrameKind::EventBatchAck, "b", &ts, &nonce, i as u64 + 1, &ack_payload)
                        .map_err(|e| e.to_string())?,
                );
            }
            t_ack.push(t.elapsed().as_secs_f64() / FRAMES as f64);
        }
        let (v, r, n, a) = (median(t_verify), median(t_replay), median(t_norm), median(t_ack));
        let total = v + r + n + a;
        let us = |x: f64| format!("{:.1} µs", x * 1e6);
        println!(
            "| {per_frame} | {size} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            us(v),
            us(r),
            us(n),
            us(a),
            us(total),
            1.0 / total,
            per_frame as f64 / total
        );
    }
    Ok(())
}
