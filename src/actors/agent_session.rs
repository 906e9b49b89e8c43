//! One actor per live agent WebSocket.
//!
//! It owns everything that must be ordered for one connection: the inbound
//! replay guard (timestamp skew, nonce cache, strictly increasing seq), the
//! outbound seq counter, and the socket's write half. Every outbound frame
//! is assigned its seq, signed and written inside one handler call, so
//! frames reach the socket in seq order (the agent drops the connection on
//! a reordered frame). A separate reader task feeds it frames through a
//! small permit pool, so a flood of frames cannot grow its mailbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::actors::agent_inbound as inbound;
use crate::actors::dispatcher::DispatcherMsg;
use crate::actors::ingest::Done;
use crate::audit::{ActorKind, AuditEvent, Outcome};
use crate::fleet::commands::CommandSpec;
use crate::fleet::AgentIdentity;
use crate::routes::ws_agent::{close_message, AgentSocket};
use crate::security::canonical_json;
use crate::security::frame::{self, Binding, FrameError, FrameKey, FrameKind, Hello, VerifiedFrame};
use crate::security::replay::{Direction, ReplayGuard};
use crate::state::AppState;
use crate::store::agents;

/// A socket write that takes longer than this means the agent stopped
/// reading; the session ends rather than hold a writer forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const REPLACED: u16 = 4002;
    pub const REVOKED: u16 = 4003;
    pub const BAD_FRAME: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const SIGNATURE: u16 = 4403;
    pub const IDLE: u16 = 4408;
    pub const UNSUPPORTED_VERSION: u16 = 4426;
    pub const TOO_MANY: u16 = 4429;
}

pub enum SessionMsg {
    /// A data message from the socket; the permit returns when it is handled.
    Frame(Vec<u8>, OwnedSemaphorePermit),
    /// Ingest committed these batches (in the order they arrived):
    /// acknowledge them to the agent.
    Committed(Vec<Ack>),
    /// Ingest could not commit these batches: no ack, the agent re-sends
    /// them after 90 s.
    CommitFailed(Vec<String>),
    SendCommand(CommandSpec),
    /// Close with a code (replaced, revoked, idle …) and stop.
    Close(u16, &'static str),
    /// The reader saw the socket end.
    SocketClosed,
}

/// One committed `event_batch`, as its ack will report it.
pub struct Ack {
    pub batch_id: String,
    pub received: usize,
    pub dropped: usize,
}

pub struct AgentSession;

pub struct SessionArgs {
    pub state: AppState,
    pub identity: AgentIdentity,
    pub session_id: Uuid,
    pub key: FrameKey,
    pub hello: Arc<Hello>,
    pub sink: SplitSink<AgentSocket, Message>,
    pub client_ip: std::net::IpAddr,
}

pub struct SessionState {
    st: AppState,
    identity: AgentIdentity,
    session_id: Uuid,
    binding: Binding,
    key: FrameKey,
    hello: Arc<Hello>,
    sink: SplitSink<AgentSocket, Message>,
    guard: ReplayGuard,
    out_seq: u64,
    client_ip: std::net::IpAddr,
    last_touch: Instant,
    closing: bool,
}

impl SessionState {
    /// This connection's ingest stream.
    fn stream(&self) -> u64 {
        self.session_id.as_u64_pair().0
    }

    /// Assign the next seq, sign, write: one step, so order is preserved.
    async fn send(&mut self, kind: FrameKind, id: &str, payload: &Value) -> bool {
        let Some(bytes) = self.signed(kind, id, payload) else { return false };
        self.write(vec![bytes]).await
    }

    /// Acks for several batches: each gets its seq and signature in order,
    /// and all of them go out with one flush.
    async fn send_acks(&mut self, acks: Vec<Ack>) -> bool {
        let mut frames = Vec::with_capacity(acks.len());
        for a in acks {
            let id: String = format!("eba_{}", a.batch_id).chars().take(64).collect();
            let payload = json!({
                "acked_id": a.batch_id, "received": a.received,
                "accepted": a.received.saturating_sub(a.dropped), "rejected": a.dropped,
            });
            let Some(bytes) = self.signed(FrameKind::EventBatchAck, &id, &payload) else { return false };
            frames.push(bytes);
        }
        self.write(frames).await
    }

    /// Signed frames, in order, then one flush, all within the write deadline.
    async fn write(&mut self, frames: Vec<Vec<u8>>) -> bool {
        let sink = &mut self.sink;
        let write = async move {
            for bytes in frames {
                sink.feed(Message::Binary(bytes.into())).await?;
            }
            sink.flush().await
        };
        matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
    }

    /// The next outbound frame, signed with the next seq.
    fn signed(&mut self, kind: FrameKind, id: &str, payload: &Value) -> Option<Vec<u8>> {
        let payload = canonical_json::Value::from_serde(payload).ok()?;
        self.out_seq += 1;
        let ts = frame::format_ts(self.st.clock.now());
        let nonce = frame::new_nonce();
        match frame::sign(&self.key, &self.binding, kind, id, &ts, &nonce, self.out_seq, &payload) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(error = %e, "could not sign an outbound frame");
                None
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        if self.closing {
            return;
        }
        self.closing = true;
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(close_message(code, reason))).await;
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.sink.close()).await;
    }

    fn audit(&self, action: &str, outcome: Outcome, details: Value) {
        let ev = AuditEvent::new(action)
            .actor(ActorKind::Agent, Some(self.identity.agent_id.to_string()))
            .project(self.identity.project_id)
            .target("agent", self.identity.agent_id)
            .outcome(outcome)
            .ip(Some(self.client_ip))
            .details(details);
        let st = self.st.clone();
        // Security events of a session are recorded without holding up the
        // socket; the row is still written by the audit writer.
        tokio::spawn(async move {
            let _ = st.audit(ev).await;
        });
    }

    fn touch(&mut self) {
        if self.last_touch.elapsed() < TOUCH_EVERY {
            return;
        }
        self.last_touch = Instant::now();
        let (db, id, now) = (self.st.db.clone(), self.identity.agent_id, self.st.clock.now());
        tokio::spawn(async move {
            if let Ok(c) = db.conn().await {
                let _ = agents::touch(&c, id, now).await;
            }
        });
    }

    /// Handle one inbound message. `false` ends the session.
    async fn on_frame(&mut self, me: &ActorRef<SessionMsg>, bytes: &[u8]) -> bool {
        let (now, mono) = (self.st.clock.now(), self.st.clock.monotonic_ms());
        let frame = match self.guard.verify(&self.key, &self.binding, bytes, now, mono) {
            Ok(f) => f,
            Err(FrameError::Unsigned(_)) => return true, // a late hello: ignored, as the agent does
            Err(FrameError::Signature(e)) => {
                self.audit(
                    "agent.frame_rejected",
                    Outcome::Denied,
                    json!({ "reason": e.to_string(), "session_id": self.session_id }),
                );
                self.close(close::SIGNATURE, "frame failed verification").await;
                return false;
            }
            Err(e) => {
                self.audit(
                    "agent.frame_rejected",
                    Outcome::Denied,
                    json!({ "reason": e.to_string(), "session_id": self.session_id }),
                );
                self.close(close::BAD_FRAME, "malformed frame").await;
                return false;
            }
        };
        self.touch();
        match frame.kind {
            FrameKind::EventBatch => self.on_events(me, frame).await,
            FrameKind::Heartbeat => {
                inbound::heartbeat(&self.st, &self.identity, self.stream(), &frame);
                true
            }
            FrameKind::CommandAck | FrameKind::CommandResult => {
                inbound::command_reply(&self.st, &self.identity, &frame);
                true
            }
            // Agent status, registry deltas and agent errors carry nothing
            // we act on; brain-only kinds reflected back are ignored.
            _ => true,
        }
    }

    async fn on_events(&mut self, me: &ActorRef<SessionMsg>, frame: VerifiedFrame) -> bool {
        // While this waits for room in the ingest budget we do not take the
        // next frame, so the reader stops too and TCP pushes back.
        let session = me.clone();
        let batch_id = frame.id.clone();
        inbound::submit_events(&self.st, &self.identity, self.stream(), &frame, move |received, dropped| {
            Done::Session { session, batch_id, received, dropped }
        })
        .await;
        true
    }
}

impl Actor for AgentSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(&self, _me: ActorRef<SessionMsg>, a: SessionArgs) -> Result<SessionState, ActorProcessingErr> {
        let binding = Binding {
            agent_id: a.identity.agent_id.to_string(),
            project_id: a.identity.project_id.to_string(),
            session_id: a.session_id.to_string(),
        };
        Ok(SessionState {
            st: a.state,
            identity: a.identity,
            session_id: a.session_id,
            binding,
            key: a.key,
            hello: a.hello,
            sink: a.sink,
            guard: ReplayGuard::new(Direction::AgentToBrain),
            out_seq: 0,
            client_ip: a.client_ip,
            last_touch: Instant::now(),
            closing: false,
        })
    }

    async fn post_start(&self, me: ActorRef<SessionMsg>, s: &mut SessionState) -> Result<(), ActorProcessingErr> {
        s.audit(
            "agent.connected",
            Outcome::Success,
            json!({
                "session_id": s.session_id, "worker_id": s.hello.worker_id, "agent_version": s.hello.agent_version,
                "engines": s.hello.engines,
            }),
        );
        // Now that the session can receive commands, ask for pending ones.
        let _ = s.st.dispatcher.cast(DispatcherMsg::Online {
            identity: s.identity.clone(),
            session: me,
            session_id: s.session_id,
            hello: s.hello.clone(),
        });
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        s: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Frame(bytes, _permit) => {
                if !s.on_frame(&me, &bytes).await {
                    me.stop(Some("frame rejected".into()));
                }
            }
            SessionMsg::Committed(acks) => {
                if !s.send_acks(acks).await {
                    me.stop(Some("socket write failed".into()));
                }
            }
            SessionMsg::CommitFailed(batch_ids) => {
                tracing::debug!(?batch_ids, "batches not acknowledged; the agent will re-send them")
            }
            SessionMsg::SendCommand(spec) => {
                let payload = crate::fleet::commands::frame_payload(&spec);
                if !s.send(FrameKind::Command, &spec.id.to_string(), &payload).await {
                    me.stop(Some("socket write failed".into()));
                }
            }
            SessionMsg::Close(code, reason) => {
                s.close(code, reason).await;
                me.stop(Some(reason.into()));
            }
            SessionMsg::SocketClosed => me.stop(Some("socket closed".into())),
        }
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<SessionMsg>, s: &mut SessionState) -> Result<(), ActorProcessingErr> {
        s.close(close::NORMAL, "session ended").await;
        s.audit("agent.disconnected", Outcome::Success, json!({ "session_id": s.session_id }));
        Ok(())
    }
}
