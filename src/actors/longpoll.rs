//! Replay state of long-poll agents (protocol §1.10). There is no socket,
//! so a "session" is the agent's `X-Z4J-Session-Nonce`: its string is the
//! `session_id` inside every MAC, and it has its own inbound replay guard
//! and outbound seq, owned here so concurrent requests of one agent are
//! checked in order. Bounded: at most `MAX_SESSIONS` in all, `PER_AGENT`
//! per agent, each forgotten after `IDLE` without use. A signature failure
//! poisons the nonce; the agent must start a new one (it does, on any
//! non-200).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::fleet::commands::{frame_payload, CommandSpec};
use crate::security::canonical_json;
use crate::security::frame::{self, Binding, FrameError, FrameKey, FrameKind, VerifiedFrame};
use crate::security::replay::{Direction, ReplayGuard};

pub const MAX_SESSIONS: usize = 4_096;
pub const PER_AGENT: usize = 16;
pub const IDLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LongPollError {
    #[error("this session nonce failed verification; start a new session")]
    Poisoned,
    #[error("too many long-poll sessions; retry shortly")]
    Full,
}

pub struct Who {
    pub agent_id: Uuid,
    pub project_id: Uuid,
    pub nonce: String,
    pub key: FrameKey,
}

type Verified = Vec<Result<VerifiedFrame, FrameError>>;

pub enum LongPollMsg {
    /// Make sure the session exists (the agent's connect probe).
    Open {
        who: Who,
        reply: RpcReplyPort<Result<(), LongPollError>>,
    },
    /// Verify the frames of one upload, in order.
    Verify {
        who: Who,
        frames: Vec<Vec<u8>>,
        reply: RpcReplyPort<Result<Verified, LongPollError>>,
    },
    /// Sign command frames for one poll answer.
    Sign {
        who: Who,
        commands: Vec<CommandSpec>,
        reply: RpcReplyPort<Result<Vec<String>, LongPollError>>,
    },
    Count(RpcReplyPort<usize>),
}

struct Session {
    guard: ReplayGuard,
    out_seq: u64,
    last_used: Instant,
    poisoned: bool,
}

pub struct LongPoll;

pub struct LongPollState {
    clock: SharedClock,
    sessions: HashMap<(Uuid, String), Session>,
}

fn binding(who: &Who) -> Binding {
    Binding {
        agent_id: who.agent_id.to_string(),
        project_id: who.project_id.to_string(),
        session_id: who.nonce.clone(),
    }
}

impl LongPollState {
    fn session(&mut self, who: &Who) -> Result<&mut Session, LongPollError> {
        let key = (who.agent_id, who.nonce.clone());
        if !self.sessions.contains_key(&key) {
            self.sessions.retain(|_, s| s.last_used.elapsed() < IDLE);
            let mine = self.sessions.keys().filter(|(a, _)| *a == who.agent_id).count();
            if self.sessions.len() >= MAX_SESSIONS || mine >= PER_AGENT {
                return Err(LongPollError::Full);
            }
            let fresh = Session {
                guard: ReplayGuard::new(Direction::AgentToBrain),
                out_seq: 0,
                last_used: Instant::now(),
                poisoned: false,
            };
            self.sessions.insert(key.clone(), fresh);
        }
        let s = self.sessions.get_mut(&key).ok_or(LongPollError::Full)?;
        if s.poisoned {
            return Err(LongPollError::Poisoned);
        }
        s.last_used = Instant::now();
        Ok(s)
    }

    fn verify(&mut self, who: &Who, frames: &[Vec<u8>]) -> Result<Verified, LongPollError> {
        let (now, mono) = (self.clock.now(), self.clock.monotonic_ms());
        let b = binding(who);
        let s = self.session(who)?;
        let mut out = Vec::with_capacity(frames.len());
        for bytes in frames {
            if s.poisoned {
                out.push(Err(FrameError::Signature(frame::SignatureError::Mismatch)));
                continue;
            }
            let r = s.guard.verify(&who.key, &b, bytes, now, mono);
            if matches!(r, Err(FrameError::Signature(_))) {
                s.poisoned = true;
            }
            out.push(r);
        }
        Ok(out)
    }

    fn sign(&mut self, who: &Who, commands: &[CommandSpec]) -> Result<Vec<String>, LongPollError> {
        let now = frame::format_ts(self.clock.now());
        let b = binding(who);
        let s = self.session(who)?;
        let mut out = Vec::with_capacity(commands.len());
        for c in commands {
            let Ok(payload) = canonical_json::Value::from_serde(&frame_payload(c)) else { continue };
            s.out_seq += 1;
            match frame::sign(
                &who.key,
                &b,
                FrameKind::Command,
                &c.id.to_string(),
                &now,
                &frame::new_nonce(),
                s.out_seq,
                &payload,
            ) {
                Ok(bytes) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => tracing::error!(error = %e, "could not sign a long-poll command"),
            }
        }
        Ok(out)
    }
}

impl Actor for LongPoll {
    type Msg = LongPollMsg;
    type State = LongPollState;
    type Arguments = SharedClock;

    async fn pre_start(
        &self,
        _me: ActorRef<LongPollMsg>,
        clock: SharedClock,
    ) -> Result<LongPollState, ActorProcessingErr> {
        Ok(LongPollState { clock, sessions: HashMap::new() })
    }

    async fn handle(
        &self,
        _me: ActorRef<LongPollMsg>,
        msg: LongPollMsg,
        st: &mut LongPollState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LongPollMsg::Open { who, reply } => {
                let _ = reply.send(st.session(&who).map(|_| ()));
            }
            LongPollMsg::Verify { who, frames, reply } => {
                let _ = reply.send(st.verify(&who, &frames));
            }
            LongPollMsg::Sign { who, commands, reply } => {
                let _ = reply.send(st.sign(&who, &commands));
            }
            LongPollMsg::Count(reply) => {
                let _ = reply.send(st.sessions.len());
            }
        }
        Ok(())
    }
}
