//! The registry of live agent sessions, and their supervisor.
//!
//! It spawns each `AgentSession` linked to itself, finds sessions for
//! command delivery, closes sessions when their agent is revoked or their
//! project archived, and enforces the connection rules: one session per
//! (agent, worker) — a newer connection replaces the older one, which is
//! closed 4002 — and at most `MAX_WORKERS_PER_AGENT` per agent (4429).
//! ractor's default would stop the supervisor when a child dies; this one
//! only forgets the child, so no session's death can take the registry down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use uuid::Uuid;

use super::agent_session::{close, AgentSession, SessionArgs, SessionMsg};
use super::notifier::NotifierMsg;
use super::Slot;
use crate::fleet::AgentIdentity;
use crate::security::frame::Hello;

pub const MAX_WORKERS_PER_AGENT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("more than {MAX_WORKERS_PER_AGENT} connections for one agent")]
    TooMany,
    #[error("could not start the session: {0}")]
    Spawn(String),
}

/// A session a command can be sent to.
pub struct Target {
    pub session: ActorRef<SessionMsg>,
    pub agent_id: Uuid,
    pub session_id: Uuid,
}

#[derive(Clone, Debug, Serialize)]
pub struct OnlineAgent {
    pub agent_id: Uuid,
    pub sessions: usize,
    pub workers: Vec<String>,
}

pub enum RegistryMsg {
    Open {
        args: Box<SessionArgs>,
        worker_id: Option<String>,
        reply: RpcReplyPort<Result<ActorRef<SessionMsg>, OpenError>>,
    },
    /// The newest session of the project able to run `engine` (and, for
    /// retries, advertising the retry-by-reference contract).
    Find {
        project_id: Uuid,
        agent_id: Option<Uuid>,
        engine: String,
        needs_retry: bool,
        reply: RpcReplyPort<Option<Target>>,
    },
    CloseAgent {
        agent_id: Uuid,
        code: u16,
    },
    CloseProject {
        project_id: Uuid,
        code: u16,
    },
    Online {
        project_id: Uuid,
        reply: RpcReplyPort<Vec<OnlineAgent>>,
    },
    Count(RpcReplyPort<usize>),
}

struct Entry {
    identity: AgentIdentity,
    worker_id: Option<String>,
    session_id: Uuid,
    hello: Arc<Hello>,
    actor: ActorRef<SessionMsg>,
    opened: Instant,
}

pub struct SessionRegistry;

pub struct RegistryState {
    entries: HashMap<ActorId, Entry>,
    slots: HashMap<(Uuid, Option<String>), ActorId>,
    per_agent: HashMap<Uuid, usize>,
    notifier: Slot<NotifierMsg>,
}

pub struct RegistryArgs {
    /// Told when an agent's last session ends (absent while starting).
    pub notifier: Slot<NotifierMsg>,
}

impl RegistryState {
    /// Drop a session; returns its agent when that was the agent's last one.
    fn forget(&mut self, id: &ActorId) -> Option<AgentIdentity> {
        let e = self.entries.remove(id)?;
        let slot = (e.identity.agent_id, e.worker_id);
        if self.slots.get(&slot) == Some(id) {
            self.slots.remove(&slot);
        }
        if let Some(n) = self.per_agent.get_mut(&e.identity.agent_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_agent.remove(&e.identity.agent_id);
                return Some(e.identity);
            }
        }
        None
    }

    /// A session ended on its own (not replaced): if it was the agent's
    /// last, the Notifier decides after a grace period whether that is an
    /// `agent.offline`.
    fn ended(&mut self, id: &ActorId) {
        if let Some(agent) = self.forget(id) {
            let msg = NotifierMsg::AgentOffline { project_id: agent.project_id, agent_id: agent.agent_id };
            let _ = self.notifier.cast(msg);
        }
    }

    async fn open(
        &mut self,
        me: &ActorRef<RegistryMsg>,
        args: Box<SessionArgs>,
        worker_id: Option<String>,
    ) -> Result<ActorRef<SessionMsg>, OpenError> {
        let args = *args;
        let agent = args.identity.agent_id;
        let slot = (agent, worker_id.clone());
        let replacing = self.slots.get(&slot).cloned();
        let live = self.per_agent.get(&agent).copied().unwrap_or(0) - usize::from(replacing.is_some());
        if live >= MAX_WORKERS_PER_AGENT {
            let mut sink = args.sink;
            let _ = futures_util::SinkExt::send(
                &mut sink,
                crate::routes::ws_agent::close_message(close::TOO_MANY, "too many connections for this agent"),
            )
            .await;
            return Err(OpenError::TooMany);
        }
        if let Some(old) = replacing.and_then(|id| self.entries.get(&id)) {
            let _ = old.actor.cast(SessionMsg::Close(close::REPLACED, "replaced by a newer connection"));
        }
        if let Some(old) = replacing {
            // Replaced, not gone: the agent stays online.
            let _ = self.forget(&old);
        }
        let (identity, session_id, hello) = (args.identity.clone(), args.session_id, args.hello.clone());
        let (actor, _) = Actor::spawn_linked(None, AgentSession, args, me.get_cell())
            .await
            .map_err(|e| OpenError::Spawn(e.to_string()))?;
        self.slots.insert(slot, actor.get_id());
        *self.per_agent.entry(agent).or_default() += 1;
        self.entries.insert(
            actor.get_id(),
            Entry { identity, worker_id, session_id, hello, actor: actor.clone(), opened: Instant::now() },
        );
        Ok(actor)
    }

    fn find(&self, project_id: Uuid, agent_id: Option<Uuid>, engine: &str, needs_retry: bool) -> Option<Target> {
        self.entries
            .values()
            .filter(|e| e.identity.project_id == project_id && agent_id.is_none_or(|a| a == e.identity.agent_id))
            .filter(|e| e.hello.engines.iter().any(|x| x == engine))
            .filter(|e| !needs_retry || e.hello.retries_by_reference(engine))
            .max_by_key(|e| e.opened)
            .map(|e| Target { session: e.actor.clone(), agent_id: e.identity.agent_id, session_id: e.session_id })
    }
}

impl Actor for SessionRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState {
            entries: HashMap::new(),
            slots: HashMap::new(),
            per_agent: HashMap::new(),
            notifier: args.notifier,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        st: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Open { args, worker_id, reply } => {
                let r = st.open(&me, args, worker_id).await;
                let _ = reply.send(r);
            }
            RegistryMsg::Find { project_id, agent_id, engine, needs_retry, reply } => {
                let _ = reply.send(st.find(project_id, agent_id, &engine, needs_retry));
            }
            RegistryMsg::CloseAgent { agent_id, code } => {
                for e in st.entries.values().filter(|e| e.identity.agent_id == agent_id) {
                    let _ = e.actor.cast(SessionMsg::Close(code, "agent revoked"));
                }
            }
            RegistryMsg::CloseProject { project_id, code } => {
                for e in st.entries.values().filter(|e| e.identity.project_id == project_id) {
                    let _ = e.actor.cast(SessionMsg::Close(code, "project archived"));
                }
            }
            RegistryMsg::Online { project_id, reply } => {
                let mut by_agent: HashMap<Uuid, OnlineAgent> = HashMap::new();
                for e in st.entries.values().filter(|e| e.identity.project_id == project_id) {
                    let o = by_agent.entry(e.identity.agent_id).or_insert_with(|| OnlineAgent {
                        agent_id: e.identity.agent_id,
                        sessions: 0,
                        workers: Vec::new(),
                    });
                    o.sessions += 1;
                    if let Some(w) = &e.worker_id {
                        o.workers.push(w.clone());
                    }
                }
                let _ = reply.send(by_agent.into_values().collect());
            }
            RegistryMsg::Count(reply) => {
                let _ = reply.send(st.entries.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<RegistryMsg>,
        evt: SupervisionEvent,
        st: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => st.ended(&cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(error = %err, "an agent session failed; its connection is gone and the agent will reconnect");
                st.ended(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
