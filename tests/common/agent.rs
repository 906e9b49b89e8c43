//! A minimal z4j protocol v2 agent for tests: connects to `/ws/agent`
//! with a bearer token, does the hello/hello_ack handshake, signs frames
//! with the project key exactly as the Python agent does, and verifies what
//! the brain sends back. It can also misbehave on purpose (replays, stale
//! timestamps, other keys) for the negative suites.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use palisade::security::canonical_json;
use palisade::security::frame::{self, Binding, FrameKey, FrameKind, VerifiedFrame};
use palisade::security::replay::{Direction, ReplayGuard};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct TestAgent {
    pub ws: Ws,
    pub binding: Binding,
    pub key: FrameKey,
    pub seq: u64,
    inbound: ReplayGuard,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Frame(String, Value),
    Closed(u16),
    Timeout,
}

pub fn hello(worker_id: &str, engines: &[&str], retry_contract: bool) -> Value {
    let mut caps = serde_json::Map::new();
    for e in engines {
        let mut c = vec!["cancel_task", "purge_queue", "retry_task", "submit_task"];
        if retry_contract {
            c.push("retry_by_reference_v1");
        }
        c.sort_unstable();
        caps.insert(e.to_string(), json!(c));
    }
    json!({
        "v": 2, "id": "hello_0123456789abcdef", "ts": null, "type": "hello",
        "payload": {
            "protocol_version": "2", "agent_version": "1.13.0", "framework": "bare", "engines": engines,
            "schedulers": [], "capabilities": caps, "host": { "name": "test-host" }, "worker_id": worker_id,
            "worker_role": null, "worker_pid": 4242, "worker_started_at": "2026-12-04T19:49:00.531692Z",
            "runtime_features": ["retry_by_reference", "external_schedule_protocol_v1"]
        }
    })
}

/// Open the socket and send `hello_value` as the first message; returns the
/// raw socket for handshake-level tests.
pub async fn open(base: &str, token: Option<&str>) -> Ws {
    let url = format!("{}/ws/agent", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    ws
}

/// Next message or the close code (within `wait`).
pub async fn next(ws: &mut Ws, wait: Duration) -> Result<Message, Option<u16>> {
    match tokio::time::timeout(wait, ws.next()).await {
        Err(_) => Err(None),
        Ok(None) => Err(Some(1006)),
        Ok(Some(Err(_))) => Err(Some(1006)),
        Ok(Some(Ok(Message::Close(c)))) => Err(Some(c.map(|f| u16::from(f.code)).unwrap_or(1005))),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

impl TestAgent {
    pub async fn connect(
        base: &str,
        token: &str,
        hmac_secret: &str,
        worker_id: &str,
        engines: &[&str],
        retry: bool,
    ) -> Result<TestAgent, Option<u16>> {
        let mut ws = open(base, Some(token)).await;
        ws.send(Message::binary(hello(worker_id, engines, retry).to_string().into_bytes())).await.unwrap();
        let first = next(&mut ws, Duration::from_secs(10)).await?;
        let ack = frame::parse_hello_ack(&first.into_data()).expect("a valid hello_ack");
        Ok(TestAgent {
            ws,
            binding: ack.binding,
            key: FrameKey::from_urlsafe_b64(hmac_secret).unwrap(),
            seq: 0,
            inbound: ReplayGuard::new(Direction::BrainToAgent),
        })
    }

    /// Sign like the agent: our binding, the next seq, now, a fresh nonce.
    pub fn frame(&mut self, kind: FrameKind, id: &str, payload: Value) -> Vec<u8> {
        self.seq += 1;
        let ts = frame::format_ts(chrono::Utc::now());
        self.frame_with(kind, id, payload, &ts, &frame::new_nonce(), self.seq)
    }

    pub fn frame_with(&self, kind: FrameKind, id: &str, payload: Value, ts: &str, nonce: &str, seq: u64) -> Vec<u8> {
        let p = canonical_json::Value::from_serde(&payload).unwrap();
        frame::sign(&self.key, &self.binding, kind, id, ts, nonce, seq, &p).unwrap()
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        let _ = self.ws.send(Message::binary(bytes)).await;
    }

    pub async fn send(&mut self, kind: FrameKind, id: &str, payload: Value) {
        let bytes = self.frame(kind, id, payload);
        self.send_raw(bytes).await;
    }

    /// One event batch with one event per task id (z4j sends one per frame).
    pub async fn send_events(&mut self, batch_id: &str, events: Vec<Value>) {
        self.send(FrameKind::EventBatch, batch_id, json!({ "events": events })).await;
    }

    /// The next signed frame from the brain (verified like the agent does),
    /// or how the socket ended.
    pub async fn recv(&mut self, wait: Duration) -> Got {
        loop {
            match next(&mut self.ws, wait).await {
                Err(None) => return Got::Timeout,
                Err(Some(code)) => return Got::Closed(code),
                Ok(m) if m.is_binary() || m.is_text() => {
                    let f: VerifiedFrame = self
                        .inbound
                        .verify(&self.key, &self.binding, &m.into_data(), chrono::Utc::now(), mono_ms())
                        .expect("every brain frame verifies");
                    let payload = f.payload.to_serde().unwrap();
                    return Got::Frame(format!("{}:{}", f.kind.as_str(), f.id), payload);
                }
                Ok(_) => continue,
            }
        }
    }

    /// Skip frames until one of `kind` arrives.
    pub async fn recv_kind(&mut self, kind: &str, wait: Duration) -> Result<(String, Value), Got> {
        let end = std::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.recv(left).await {
                Got::Frame(k, v) if k.starts_with(&format!("{kind}:")) => {
                    return Ok((k[kind.len() + 1..].to_string(), v))
                }
                Got::Frame(..) => continue,
                other => return Err(other),
            }
        }
    }

    pub async fn expect_close(&mut self, wait: Duration) -> u16 {
        let end = std::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.recv(left).await {
                Got::Closed(c) => return c,
                Got::Timeout => panic!("socket stayed open"),
                Got::Frame(..) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// A task event in the agent's shape.
pub fn task_event(kind: &str, task_id: &str, data: Value) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "kind": kind, "engine": "rq", "task_id": task_id,
        "occurred_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(), "data": data,
    })
}
