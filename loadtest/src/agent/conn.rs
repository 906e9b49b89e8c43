//! One simulated agent: connect, handshake, then heartbeats + agent_status
//! on the brain's interval, event frames as the phase asks, acks and
//! commands handled, invalid frames injected, reconnect like the agent.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use palisade::security::canonical_json::Value;
use palisade::security::frame::{FrameError, FrameKey, FrameKind, VerifiedFrame};
use palisade::security::replay::{Direction, ReplayGuard};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant as TokioInstant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::dial::{self, Ws};
use super::events::EventGen;
use super::frames::{self, hex_id, Signer};
use super::inflight::{InFlight, Ledger, Model};
use super::{Credential, Phase, Shared};
use crate::metrics::Counter;

/// The agent's watchdog polls every 2 s (§4.2).
const WATCHDOG: Duration = Duration::from_secs(2);
/// Only every n-th task is offered to the commander, to keep the shared
/// pool's lock out of the hot path.
const TASK_SAMPLE: u64 = 16;

pub struct AgentSpec {
    pub index: usize,
    pub cred: Credential,
    pub key: FrameKey,
    pub source: Option<IpAddr>,
    pub worker_id: String,
    pub host: String,
}

/// How a session ended.
#[derive(Debug)]
enum End {
    Stop,
    /// Our deliberately invalid frame was answered by 4403, as required.
    Rejected,
    Closed,
    InboundInvalid,
    Transport,
}

/// The agent's "connection" backoff: 1 s doubling to 30 s, +0–30 % jitter,
/// reset by every successful handshake (§3.4).
struct Backoff(Duration);

impl Backoff {
    const START: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    fn next(&mut self) -> Duration {
        let base = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        base.mul_f64(1.0 + rand::rng().random_range(0.0..0.3))
    }

    fn reset(&mut self) {
        self.0 = Self::START;
    }
}

/// State that survives reconnects, like the agent's buffer.
struct Agent {
    spec: AgentSpec,
    shared: Arc<Shared>,
    ledger: Ledger,
    events: EventGen,
    /// Next slot of the open-model schedule.
    next_due: Option<Instant>,
    steady_start: Option<Instant>,
    sent_tasks: u64,
    /// Command acks/results that could not go out because the session was
    /// about to be closed (after our invalid frame); like the agent's
    /// buffer, they are sent at the start of the next session.
    pending: Vec<(FrameKind, String, Value)>,
}

pub async fn run(spec: AgentSpec, shared: Arc<Shared>, mut phase: watch::Receiver<Phase>) {
    let events = EventGen::new(&spec.host, std::process::id(), spec.index as u64);
    let mut agent = Agent {
        spec,
        shared,
        ledger: Ledger::default(),
        events,
        next_due: None,
        steady_start: None,
        sent_tasks: 0,
        pending: Vec::new(),
    };
    let mut backoff = Backoff(Backoff::START);
    loop {
        if *phase.borrow() == Phase::Stop {
            return;
        }
        let wait = match agent.connect_once(&mut phase).await {
            Ok(End::Stop) => return,
            Ok(End::Rejected) => {
                backoff.reset();
                // The agent reconnects ~1.1–1.2 s after a post-handshake 4403.
                Backoff::START.mul_f64(1.0 + rand::rng().random_range(0.0..0.3))
            }
            Ok(_) => {
                backoff.reset();
                backoff.next()
            }
            Err(kind) => {
                agent.shared.metrics.incr(Counter::HandshakesFailed);
                agent.shared.metrics.error(&kind);
                backoff.next()
            }
        };
        tokio::select! {
            _ = sleep(wait) => {}
            _ = async { while phase.changed().await.is_ok() { if *phase.borrow() == Phase::Stop { return; } } } => return,
        }
    }
}

fn mono_ms(shared: &Shared) -> u64 {
    u64::try_from(shared.metrics.started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Agent {
    async fn connect_once(&mut self, phase: &mut watch::Receiver<Phase>) -> Result<End, String> {
        let t0 = Instant::now();
        let cfg = &self.shared.cfg;
        let mut ws = dial::connect(&cfg.ws_url, cfg.addr, self.spec.source, &self.spec.cred.token)
            .await
            .map_err(|e| e.kind())?;
        let hello = frames::hello(&self.spec.worker_id, &self.spec.host, std::process::id());
        let ack = dial::handshake(&mut ws, hello).await.map_err(|e| e.kind())?;
        let m = self.shared.metrics.clone();
        m.record("handshake", t0.elapsed());
        m.incr(Counter::HandshakesOk);
        m.conn_opened();
        let mut session = Session {
            signer: Signer::new(self.spec.key.clone(), ack.binding.clone()),
            guard: ReplayGuard::new(Direction::BrainToAgent),
            connected_at: Instant::now(),
            connected_text: palisade::security::frame::format_ts(Utc::now()),
            valid_sent: 0,
            acked: 0,
            awaiting_reject: None,
        };
        let heartbeat = Duration::from_secs(u64::from(ack.heartbeat_interval_seconds.max(1)));
        let end = self.session(&mut ws, &mut session, heartbeat, phase).await;
        let end = match end {
            Ok(end) => end,
            Err(kind) => {
                m.error(kind);
                End::Transport
            }
        };
        m.conn_closed();
        match &end {
            End::Stop | End::Rejected => m.add(Counter::FramesVerified, session.valid_sent),
            _ => {
                m.add(Counter::FramesVerified, session.acked);
                m.incr(Counter::Disconnects);
            }
        }
        if matches!(end, End::Stop | End::InboundInvalid) {
            let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(close))).await;
        }
        Ok(end)
    }

    async fn session(
        &mut self,
        ws: &mut Ws,
        s: &mut Session,
        heartbeat: Duration,
        phase: &mut watch::Receiver<Phase>,
    ) -> Result<End, &'static str> {
        // The agent's first frames: heartbeat and agent_status, then
        // whatever is still buffered from earlier sessions.
        self.send_heartbeat(ws, s).await?;
        for (kind, id, payload) in std::mem::take(&mut self.pending) {
            self.sign_and_write(ws, s, kind, &id, &payload).await?;
            if kind == FrameKind::CommandResult {
                self.shared.metrics.incr(Counter::CommandResultsSent);
            }
        }
        if !self.ledger.is_empty() {
            for id in self.ledger.all() {
                self.resend(ws, s, &id).await?;
            }
        }
        let mut hb = tokio::time::interval_at(TokioInstant::now() + heartbeat, heartbeat);
        let mut watchdog = tokio::time::interval_at(TokioInstant::now() + WATCHDOG, WATCHDOG);
        let mut current = *phase.borrow();
        loop {
            let idle = s.awaiting_reject.is_none();
            let steady_due = match current {
                Phase::Steady { interval, start } if idle && self.ledger.len() < self.shared.cfg.inflight_cap => {
                    Some(self.due(interval, start))
                }
                _ => None,
            };
            let max_room = matches!(current, Phase::Max { window } if idle && self.ledger.len() < window);
            let reject_deadline = s.awaiting_reject.unwrap_or_else(Instant::now);
            tokio::select! {
                msg = ws.next() => {
                    if let Some(end) = self.inbound(ws, s, msg).await? {
                        return Ok(end);
                    }
                }
                _ = hb.tick() => self.send_heartbeat(ws, s).await?,
                _ = sleep_until(steady_due.unwrap_or_else(Instant::now).into()), if steady_due.is_some() => {
                    let intended = steady_due.unwrap_or_else(Instant::now);
                    if let Phase::Steady { interval, .. } = current {
                        self.next_due = Some(intended + interval);
                    }
                    self.send_events(ws, s, intended, Model::Open).await?;
                }
                _ = std::future::ready(()), if max_room => {
                    self.send_events(ws, s, Instant::now(), Model::Closed).await?;
                }
                _ = watchdog.tick() => {
                    for id in self.ledger.overdue(Instant::now(), self.shared.cfg.ack_deadline) {
                        self.resend(ws, s, &id).await?;
                    }
                }
                _ = sleep_until(reject_deadline.into()), if s.awaiting_reject.is_some() => {
                    self.shared.metrics.incr(Counter::InvalidUnanswered);
                    self.shared.metrics.error("invalid_frame_not_rejected");
                    return Ok(End::Closed);
                }
                changed = phase.changed() => {
                    current = if changed.is_ok() { *phase.borrow() } else { Phase::Stop };
                    if current == Phase::Stop {
                        return Ok(End::Stop);
                    }
                }
            }
        }
    }

    /// The next open-model slot. The schedule starts at a random offset
    /// within the first interval so agents do not fire in lockstep, and it
    /// never skips slots: a late slot is sent late and its lag counts.
    fn due(&mut self, interval: Duration, start: Instant) -> Instant {
        if self.steady_start != Some(start) {
            self.steady_start = Some(start);
            self.next_due = Some(start + interval.mul_f64(rand::rng().random_range(0.0..1.0)));
        }
        self.next_due.unwrap_or(start)
    }

    async fn write(&self, ws: &mut Ws, s: &mut Session, frame: Vec<u8>) -> Result<(), &'static str> {
        ws.send(Message::Binary(frame.into())).await.map_err(|_| "ws_send_failed")?;
        s.valid_sent += 1;
        self.shared.metrics.incr(Counter::FramesSent);
        Ok(())
    }

    async fn sign_and_write(
        &self,
        ws: &mut Ws,
        s: &mut Session,
        kind: FrameKind,
        id: &str,
        payload: &Value,
    ) -> Result<(), &'static str> {
        let frame = s.signer.sign(kind, id, payload).map_err(|_| "sign_failed")?;
        self.write(ws, s, frame).await
    }

    async fn send_heartbeat(&self, ws: &mut Ws, s: &mut Session) -> Result<(), &'static str> {
        let runtime = format!("{:032x}:{}", self.spec.index, std::process::id());
        let buffer = format!("{:032x}", self.spec.index);
        let hb = frames::heartbeat(self.ledger.len(), &buffer, &runtime);
        self.sign_and_write(ws, s, FrameKind::Heartbeat, &hex_id("hb_", 12), &hb).await?;
        let age = s.connected_at.elapsed().as_secs_f64();
        let status = frames::agent_status(age, self.ledger.len(), &s.connected_text);
        self.sign_and_write(ws, s, FrameKind::AgentStatus, &hex_id("as_", 12), &status).await
    }

    async fn send_events(
        &mut self,
        ws: &mut Ws,
        s: &mut Session,
        intended: Instant,
        model: Model,
    ) -> Result<(), &'static str> {
        let n = self.shared.cfg.events_per_frame.max(1);
        let mut events = Vec::with_capacity(n);
        let mut last_task = String::new();
        for _ in 0..n {
            let (event, task) = self.events.next_event();
            events.push(event);
            last_task = task;
        }
        let payload = frames::event_batch(events);
        let id = hex_id("ev_", 32);
        let frame = s.signer.sign(FrameKind::EventBatch, &id, &payload).map_err(|_| "sign_failed")?;
        let now = Instant::now();
        self.ledger.insert(id, InFlight { payload, intended, first_sent: now, last_sent: now, model });
        self.write(ws, s, frame).await?;
        self.shared.metrics.add(Counter::EventsSent, n as u64);
        self.sent_tasks += 1;
        if self.sent_tasks.is_multiple_of(TASK_SAMPLE) {
            self.shared.tasks.push(&s.signer.binding().agent_id, last_task);
        }
        if rand::rng().random_bool(self.shared.cfg.invalid_share.clamp(0.0, 1.0)) {
            self.send_invalid(ws, s).await?;
        }
        Ok(())
    }

    /// A heartbeat with one MAC digit flipped. Nothing else is sent until
    /// the brain closes the session (it must, with 4403).
    async fn send_invalid(&self, ws: &mut Ws, s: &mut Session) -> Result<(), &'static str> {
        let hb = frames::heartbeat(self.ledger.len(), "invalid", "invalid:0");
        let mut frame = s.signer.sign(FrameKind::Heartbeat, &hex_id("hb_", 12), &hb).map_err(|_| "sign_failed")?;
        if !frames::flip_hmac(&mut frame) {
            return Ok(());
        }
        ws.send(Message::Binary(frame.into())).await.map_err(|_| "ws_send_failed")?;
        self.shared.metrics.incr(Counter::InvalidSent);
        s.awaiting_reject = Some(Instant::now() + self.shared.cfg.reject_wait);
        Ok(())
    }

    async fn resend(&mut self, ws: &mut Ws, s: &mut Session, id: &str) -> Result<(), &'static str> {
        let Some(payload) = self.ledger.get(id).map(|f| f.payload.clone()) else { return Ok(()) };
        self.sign_and_write(ws, s, FrameKind::EventBatch, id, &payload).await?;
        self.ledger.mark_sent(id, Instant::now());
        self.shared.metrics.incr(Counter::Resends);
        Ok(())
    }

    async fn inbound(
        &mut self,
        ws: &mut Ws,
        s: &mut Session,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<Option<End>, &'static str> {
        let bytes = match msg {
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Close(frame))) => return Ok(Some(self.closed(s, frame.map_or(1005, |f| f.code.into())))),
            Some(Ok(_)) => return Ok(None),
            Some(Err(_)) => return Err("ws_read_error"),
            None => return Ok(Some(self.closed(s, 1006))),
        };
        let m = &self.shared.metrics;
        let frame = match s.guard.verify(&self.spec.key, s.signer.binding(), &bytes, Utc::now(), mono_ms(&self.shared))
        {
            Ok(frame) => frame,
            // hello/hello_ack are unsigned; after the handshake the agent ignores them.
            Err(FrameError::Unsigned(_)) => return Ok(None),
            Err(e) => {
                m.incr(Counter::InboundRejected);
                m.error(match e {
                    FrameError::Signature(_) => "inbound_signature_error",
                    FrameError::Protocol(_) => "inbound_protocol_error",
                    _ => "inbound_version_error",
                });
                return Ok(Some(End::InboundInvalid));
            }
        };
        m.incr(Counter::InboundVerified);
        match frame.kind {
            FrameKind::EventBatchAck => self.acked(s, &frame),
            FrameKind::Command => self.command(ws, s, &frame).await?,
            FrameKind::Error => {
                m.error("brain_error_frame");
                let fatal = frame.payload_object().and_then(|p| p.get("fatal")).and_then(Value::as_bool);
                if fatal == Some(true) {
                    return Ok(Some(End::Closed));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn closed(&self, s: &Session, code: u16) -> End {
        let m = &self.shared.metrics;
        if s.awaiting_reject.is_some() {
            if code == 4403 {
                m.incr(Counter::InvalidRejected);
                return End::Rejected;
            }
            m.incr(Counter::InvalidOtherClose);
            m.error(&format!("invalid_frame_answered_{code}"));
        } else {
            m.error(&format!("close_{code}"));
        }
        End::Closed
    }

    fn acked(&mut self, s: &mut Session, frame: &VerifiedFrame) {
        let m = &self.shared.metrics;
        let acked_id = frame.payload_object().and_then(|p| p.get("acked_id")).and_then(Value::as_str).unwrap_or("");
        let Some(f) = self.ledger.ack(acked_id) else {
            m.incr(Counter::AcksUnknown);
            return;
        };
        let now = Instant::now();
        match f.model {
            Model::Open => {
                m.record_since("lag", f.intended, now);
                m.record_since("lag_service", f.first_sent, now);
            }
            Model::Closed => m.record_since("lag_closed", f.first_sent, now),
        }
        let n = event_count(&f.payload).unwrap_or(0);
        m.add(Counter::EventsAcked, n);
        m.incr(Counter::EventFramesAcked);
        s.acked += 1;
    }

    async fn command(&mut self, ws: &mut Ws, s: &mut Session, frame: &VerifiedFrame) -> Result<(), &'static str> {
        let m = &self.shared.metrics;
        m.incr(Counter::CommandsReceived);
        self.shared.commands.arrived(&frame.id, Instant::now());
        let payload = frame.payload_object();
        let claim = payload.and_then(|p| p.get("delivery_claim_token")).and_then(Value::as_str).map(str::to_owned);
        let action = payload.and_then(|p| p.get("action")).and_then(Value::as_str).unwrap_or("").to_owned();
        let params = payload.and_then(|p| p.get("parameters")).and_then(Value::as_object);
        let task_id = params.and_then(|p| p.get("task_id")).and_then(Value::as_str).unwrap_or("").to_owned();
        let ack = frames::command_ack(claim.as_deref());
        let result = match action.as_str() {
            "cancel_task" | "retry_task" | "submit_task" => frames::command_result(
                true,
                frames::obj(vec![
                    ("task_id", frames::s(task_id)),
                    ("engine", frames::s(frames::ENGINE)),
                    ("cancelled", Value::Bool(action == "cancel_task")),
                ]),
                None,
                claim.as_deref(),
            ),
            other => frames::command_result(
                false,
                Value::Null,
                Some(format!("unrecognized action '{other}'")),
                claim.as_deref(),
            ),
        };
        if s.awaiting_reject.is_some() {
            // The brain is closing this session (our invalid frame); anything
            // written now is discarded, so keep both for the next session.
            self.pending.push((FrameKind::CommandAck, frame.id.clone(), ack));
            self.pending.push((FrameKind::CommandResult, frame.id.clone(), result));
            return Ok(());
        }
        self.sign_and_write(ws, s, FrameKind::CommandAck, &frame.id, &ack).await?;
        self.sign_and_write(ws, s, FrameKind::CommandResult, &frame.id, &result).await?;
        self.shared.metrics.incr(Counter::CommandResultsSent);
        Ok(())
    }
}

fn event_count(payload: &Value) -> Option<u64> {
    payload.as_object()?.get("events")?.as_array().map(|a| a.len() as u64)
}

struct Session {
    signer: Signer,
    guard: ReplayGuard,
    connected_at: Instant,
    connected_text: String,
    /// Valid frames written in this session (all before any invalid one).
    valid_sent: u64,
    acked: u64,
    awaiting_reject: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff(Backoff::START);
        let first = b.next();
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1300));
        for _ in 0..10 {
            b.next();
        }
        let late = b.next();
        assert!(late >= Backoff::MAX && late <= Backoff::MAX.mul_f64(1.3));
        b.reset();
        assert!(b.next() <= Duration::from_millis(1300));
    }

    #[test]
    fn counts_events_in_a_batch() {
        let p = frames::event_batch(vec![Value::Null, Value::Null]);
        assert_eq!(event_count(&p), Some(2));
        assert_eq!(event_count(&Value::Null), None);
    }
}
