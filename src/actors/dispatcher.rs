//! Command delivery. Commands are rows first (created by the REST route in
//! the same transaction as their audit row); this actor moves them through
//! their lifecycle: it claims a pending command for one capable session
//! with a conditional UPDATE (so no command is ever delivered twice, even
//! across replicas), hands it to that session, records acks and results,
//! and times out what nobody answered. A newly connected session gets the
//! pending commands of its project (oldest first); a periodic sweep retries
//! pending commands, which is how a command issued on one replica reaches an
//! agent connected to another.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use uuid::Uuid;

use super::agent_session::SessionMsg;
use super::notifier::NotifierMsg;
use super::session_registry::{RegistryMsg, Target};
use crate::audit::{ActorKind, AuditEvent, Outcome};
use crate::fleet::commands::{result_status, Action, RESULT_TIMEOUT_SECS};
use crate::fleet::AgentIdentity;
use crate::notify::triggers;
use crate::security::frame::Hello;
use crate::state::AppState;
use crate::store::commands::{self as store, CommandRow};
use crate::store::StoreError;

const SWEEP_EVERY: Duration = Duration::from_secs(2);
const DELIVER_ON_CONNECT: i64 = 500;

pub enum DispatcherMsg {
    /// A command was just created.
    Dispatch {
        project_id: Uuid,
        command_id: Uuid,
    },
    /// A session is ready for commands.
    Online {
        identity: AgentIdentity,
        session: ActorRef<SessionMsg>,
        session_id: Uuid,
        hello: Arc<Hello>,
    },
    Acked {
        identity: AgentIdentity,
        command_id: Uuid,
    },
    Finished {
        identity: AgentIdentity,
        command_id: Uuid,
        status: String,
        result: Option<Value>,
        error: Option<String>,
    },
    Sweep,
}

pub struct Dispatcher;

pub struct DispatcherState {
    st: AppState,
}

fn capable(hello: &Hello, c: &CommandRow) -> bool {
    let engine_ok = hello.engines.contains(&c.engine);
    let retry_ok =
        Action::from_wire(&c.action).is_none_or(|a| !a.needs_retry_contract()) || hello.retries_by_reference(&c.engine);
    engine_ok && retry_ok
}

impl DispatcherState {
    async fn claim_and_send(&self, c: &CommandRow, target: Target) -> Result<(), StoreError> {
        let conn = self.st.db.conn().await?;
        let now = self.st.clock.now();
        if let Some(row) = store::claim(&conn, c.id, target.agent_id, &target.session_id.to_string(), now).await? {
            let _ = target.session.cast(SessionMsg::SendCommand(row.spec()));
        }
        Ok(())
    }

    async fn dispatch(&self, project_id: Uuid, command_id: Uuid) -> Result<(), StoreError> {
        let conn = self.st.db.conn().await?;
        let Some(c) = store::get(&conn, project_id, command_id).await? else { return Ok(()) };
        drop(conn);
        if c.status != "pending" {
            return Ok(());
        }
        let needs_retry = Action::from_wire(&c.action).is_some_and(|a| a.needs_retry_contract());
        let (engine, agent_id) = (c.engine.clone(), c.agent_id);
        let found = self
            .st
            .registry
            .call(
                |reply| RegistryMsg::Find { project_id, agent_id, engine, needs_retry, reply },
                Duration::from_secs(2),
            )
            .await;
        match found {
            Ok(Some(target)) => self.claim_and_send(&c, target).await,
            _ => Ok(()), // stays pending: delivered when a capable agent connects
        }
    }

    async fn online(
        &self,
        identity: &AgentIdentity,
        session: ActorRef<SessionMsg>,
        session_id: Uuid,
        hello: &Hello,
    ) -> Result<(), StoreError> {
        let conn = self.st.db.conn().await?;
        let pending = store::pending(&conn, identity.project_id, self.st.clock.now(), DELIVER_ON_CONNECT).await?;
        drop(conn);
        for c in pending.iter().filter(|c| c.agent_id.is_none_or(|a| a == identity.agent_id) && capable(hello, c)) {
            let target = Target { session: session.clone(), agent_id: identity.agent_id, session_id };
            self.claim_and_send(c, target).await?;
        }
        Ok(())
    }

    /// Record a result; a failure's notification commits with it.
    async fn finished(
        &self,
        identity: &AgentIdentity,
        command_id: Uuid,
        outcome: &store::Outcome<'_>,
    ) -> Result<(), StoreError> {
        let now = self.st.clock.now();
        let mut conn = self.st.db.conn().await?;
        let tx = conn.transaction().await?;
        let row = store::finished(&tx, identity.project_id, identity.agent_id, command_id, outcome, now).await?;
        let notified = notify_failed(&tx, row.as_slice(), now).await?;
        tx.commit().await?;
        self.kick(notified);
        if let Some(row) = &row {
            self.audit_finished(row, Some(identity));
        }
        Ok(())
    }

    fn kick(&self, enqueued: u64) {
        if enqueued > 0 {
            let _ = self.st.notifier.cast(NotifierMsg::Kick);
        }
    }

    fn audit_finished(&self, row: &CommandRow, actor: Option<&AgentIdentity>) {
        let outcome = if row.status == "succeeded" { Outcome::Success } else { Outcome::Failure };
        let mut ev = AuditEvent::new(format!("command.{}", row.status))
            .project(row.project_id)
            .target("command", row.id)
            .outcome(outcome)
            .details(json!({ "action": row.action, "engine": row.engine, "error": row.error }));
        ev = match actor {
            Some(a) => ev.actor(ActorKind::Agent, Some(a.agent_id.to_string())),
            None => ev.actor(ActorKind::System, None),
        };
        let st = self.st.clone();
        tokio::spawn(async move {
            let _ = st.audit(ev).await;
        });
    }

    async fn sweep(&self) -> Result<(), StoreError> {
        let now = self.st.clock.now();
        let mut conn = self.st.db.conn().await?;
        // Timing out and the `command.failed` notification commit together.
        let tx = conn.transaction().await?;
        let timed_out = store::expire(&tx, now, now - chrono::Duration::seconds(RESULT_TIMEOUT_SECS)).await?;
        let notified = notify_failed(&tx, &timed_out, now).await?;
        tx.commit().await?;
        self.kick(notified);
        for row in &timed_out {
            self.audit_finished(row, None);
        }
        let projects = store::projects_with_pending(&conn, now).await?;
        for project in projects {
            for c in store::pending(&conn, project, now, DELIVER_ON_CONNECT).await? {
                self.dispatch(project, c.id).await?;
            }
        }
        Ok(())
    }
}

/// `command.failed` for the rows that ended badly.
async fn notify_failed(
    c: &impl deadpool_postgres::GenericClient,
    rows: &[CommandRow],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let occurrences: Vec<_> = rows
        .iter()
        .filter(|r| r.status == "failed" || r.status == "timed_out")
        .map(|r| triggers::command_failed(r.project_id, r.id, &r.action, &r.status, r.error.as_deref(), now))
        .collect();
    triggers::enqueue(c, &occurrences, now).await
}

impl Actor for Dispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = AppState;

    async fn pre_start(
        &self,
        _me: ActorRef<DispatcherMsg>,
        st: AppState,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        Ok(DispatcherState { st })
    }

    async fn post_start(
        &self,
        me: ActorRef<DispatcherMsg>,
        _s: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        me.send_interval(SWEEP_EVERY, || DispatcherMsg::Sweep);
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<DispatcherMsg>,
        msg: DispatcherMsg,
        s: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        let outcome = match msg {
            DispatcherMsg::Dispatch { project_id, command_id } => s.dispatch(project_id, command_id).await,
            DispatcherMsg::Online { identity, session, session_id, hello } => {
                s.online(&identity, session, session_id, &hello).await
            }
            DispatcherMsg::Acked { identity, command_id } => match s.st.db.conn().await {
                Ok(c) => store::acked(&c, identity.project_id, identity.agent_id, command_id, s.st.clock.now())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            },
            DispatcherMsg::Finished { identity, command_id, status, result, error } => {
                let Some(status) = result_status(&status) else { return Ok(()) };
                let outcome = store::Outcome { status, result: result.as_ref(), error: error.as_deref() };
                s.finished(&identity, command_id, &outcome).await
            }
            DispatcherMsg::Sweep => s.sweep().await,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "command dispatch step failed; the sweep will retry");
        }
        Ok(())
    }
}
