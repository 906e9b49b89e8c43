//! Long-lived actors (ractor) that own state whose correctness depends on
//! ordering or counting. Routes reach them through a `Slot`, which the root
//! supervisor refills when it restarts a child, so a crashed actor is
//! replaced without any route holding a dangling reference.
//! docs/runtime-semantics.md describes ordering, back-pressure and restarts.

pub mod agent_inbound;
pub mod agent_session;
pub mod audit_watch;
pub mod audit_writer;
pub mod dispatcher;
pub mod ingest;
pub mod ingest_commit;
pub mod limiter;
pub mod lockout;
pub mod longpoll;
pub mod notifier;
pub mod session_registry;
pub mod supervisor;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{ActorRef, Message, RpcReplyPort};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("actor {0} is not running")]
    Down(&'static str),
    #[error("actor {0} did not answer in time")]
    Timeout(&'static str),
}

impl From<CallError> for crate::error::ApiError {
    fn from(e: CallError) -> Self {
        tracing::warn!(error = %e, "actor call failed");
        crate::error::ApiError::unavailable("a server component is restarting; retry shortly")
    }
}

/// The current `ActorRef` of a supervised actor, replaced on restart.
pub struct Slot<M: Message> {
    name: &'static str,
    current: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Slot { name: self.name, current: self.current.clone() }
    }
}

impl<M: Message> Slot<M> {
    pub fn new(name: &'static str) -> Slot<M> {
        Slot { name, current: Arc::new(RwLock::new(None)) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn set(&self, actor: Option<ActorRef<M>>) {
        // A poisoned lock only means a writer panicked mid-assignment of an
        // Option; the value is still a valid Option, so keep using it.
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = actor;
    }

    pub fn get(&self) -> Result<ActorRef<M>, CallError> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(CallError::Down(self.name))
    }

    /// Request/response with a deadline; a dead or slow actor becomes a
    /// typed error the route maps to 503, never a hung request.
    pub async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let actor = self.get()?;
        match actor.call(build, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
            Ok(ractor::rpc::CallResult::Timeout) => Err(CallError::Timeout(self.name)),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(CallError::Down(self.name)),
        }
    }

    /// Fire-and-forget.
    pub fn cast(&self, msg: M) -> Result<(), CallError> {
        self.get()?.cast(msg).map_err(|_| CallError::Down(self.name))
    }
}
