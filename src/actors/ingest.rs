//! Ingest: batches events from every agent session into PostgreSQL and
//! tells each session when its batch is committed (the session then sends
//! `event_batch_ack`; never before).
//!
//! Memory is bounded by `Budget`: a session must take one permit per event
//! *before* submitting, and the permits return only after the commit. When
//! the database is slow the budget runs out, sessions wait for permits, stop
//! reading their sockets, and TCP pushes back on the agents, which buffer
//! on disk. Up to `MAX_INFLIGHT` commits overlap; batches may commit out of
//! order, which the projection tolerates (newest event wins).

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::actors::agent_session::SessionMsg;
use crate::actors::notifier::NotifierMsg;
use crate::actors::Slot;
use crate::clock::SharedClock;
use crate::fleet::events::{Event, Kind};
use crate::fleet::projection::{self, QueueUpsert};
use crate::fleet::AgentIdentity;
use crate::notify::triggers::{self, TaskFailure};
use crate::store::ingest::{self as store, Scoped};
use crate::store::{Db, StoreError};

/// Events held in memory (queued or being committed) across all sessions.
pub const DEFAULT_BUDGET: usize = 50_000;
const MAX_EVENTS_PER_COMMIT: usize = 5_000;
const MAX_INFLIGHT: usize = 2;

/// Events admitted but not yet committed. Cloned into every session.
#[derive(Clone)]
pub struct Budget(pub Arc<Semaphore>);

impl Budget {
    pub fn new(events: usize) -> Budget {
        Budget(Arc::new(Semaphore::new(events)))
    }

    /// Wait for room for `n` events (at least one permit, so empty batches
    /// are ordered like the rest).
    pub async fn admit(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n.clamp(1, MAX_EVENTS_PER_COMMIT)).unwrap_or(1);
        self.0.clone().acquire_many_owned(n).await.ok()
    }

    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// Who to tell when a batch is durable.
pub struct Done {
    pub session: ActorRef<SessionMsg>,
    pub batch_id: String,
    pub received: usize,
    pub dropped: usize,
}

pub struct Job {
    pub identity: AgentIdentity,
    pub events: Vec<Event>,
    pub queues: Vec<QueueUpsert>,
    pub done: Option<Done>,
    pub permit: OwnedSemaphorePermit,
}

pub enum IngestMsg {
    Submit(Job),
    Flush,
    CommitDone,
}

pub struct Ingest;

pub struct IngestArgs {
    pub db: Db,
    pub clock: SharedClock,
    /// Woken after a commit that enqueued notifications.
    pub notifier: Slot<NotifierMsg>,
}

pub struct IngestState {
    args: IngestArgs,
    pending: Vec<Job>,
    pending_events: usize,
    inflight: usize,
    flush_queued: bool,
}

/// Commit one group of batches; returns how many notifications it enqueued.
async fn commit(db: &Db, clock: &SharedClock, jobs: &[Job]) -> Result<u64, StoreError> {
    let now = clock.now();
    let mut conn = db.conn().await?;
    let tx = conn.transaction().await?;
    let scoped: Vec<Scoped<'_>> = jobs
        .iter()
        .flat_map(|j| {
            j.events.iter().map(move |e| Scoped {
                project_id: j.identity.project_id,
                agent_id: j.identity.agent_id,
                event: e,
            })
        })
        .collect();
    let fresh = store::insert_events(&tx, &scoped, now).await?;
    // Fold per (project, agent): only events the insert reported as new.
    let mut groups: HashMap<(Uuid, Uuid), Vec<&Event>> = HashMap::new();
    let mut queues: HashMap<Uuid, HashMap<(String, String), QueueUpsert>> = HashMap::new();
    for j in jobs {
        let (p, a) = (j.identity.project_id, j.identity.agent_id);
        let group = groups.entry((p, a)).or_default();
        group.extend(j.events.iter().filter(|e| fresh.contains(&(p, e.id))));
        for q in &j.queues {
            keep_latest(queues.entry(p).or_default(), q.clone());
        }
    }
    for ((project, agent), events) in &groups {
        let proj = projection::project(events);
        store::upsert_tasks(&tx, *project, *agent, &proj.tasks, now).await?;
        store::upsert_workers(&tx, *project, *agent, &proj.workers).await?;
        for q in proj.queues {
            keep_latest(queues.entry(*project).or_default(), q);
        }
    }
    for (project, qs) in queues {
        let list: Vec<QueueUpsert> = qs.into_values().collect();
        store::upsert_queues(&tx, project, &list).await?;
    }
    // Notifications for failures that were newly stored, in this same
    // transaction: a re-sent batch finds nothing new and enqueues nothing,
    // and a rolled-back batch enqueues nothing either. Only rows are
    // written here; delivery is the Notifier's, off this path.
    let failures: Vec<TaskFailure<'_>> = groups
        .iter()
        .flat_map(|((project, _), events)| {
            events.iter().filter(|e| e.kind == Kind::TaskFailed).map(move |e| TaskFailure {
                project_id: *project,
                engine: &e.engine,
                task_id: &e.task_id,
                occurred_at: e.occurred_at,
                data: &e.data,
            })
        })
        .collect();
    let enqueued = triggers::task_failures(&tx, &failures, now).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// One upsert per queue per statement (PostgreSQL refuses to update a row
/// twice in one INSERT … ON CONFLICT).
fn keep_latest(map: &mut HashMap<(String, String), QueueUpsert>, q: QueueUpsert) {
    let key = (q.engine.clone(), q.name.clone());
    match map.get(&key) {
        Some(old) if old.at > q.at => {}
        _ => {
            map.insert(key, q);
        }
    }
}

impl IngestState {
    fn flush(&mut self, me: &ActorRef<IngestMsg>) {
        if self.pending.is_empty() || self.inflight >= MAX_INFLIGHT {
            return;
        }
        let mut taken = 0;
        let mut n = 0;
        for j in &self.pending {
            if n > 0 && taken + j.events.len() > MAX_EVENTS_PER_COMMIT {
                break;
            }
            taken += j.events.len();
            n += 1;
        }
        let jobs: Vec<Job> = self.pending.drain(..n).collect();
        self.pending_events -= taken;
        self.inflight += 1;
        let (db, clock, me) = (self.args.db.clone(), self.args.clock.clone(), me.clone());
        let notifier = self.args.notifier.clone();
        tokio::spawn(async move {
            let outcome = commit(&db, &clock, &jobs).await;
            match &outcome {
                Err(e) => {
                    tracing::error!(error = %e, jobs = jobs.len(), "ingest commit failed; batches stay unacknowledged and agents will re-send them");
                }
                Ok(n) if *n > 0 => {
                    let _ = notifier.cast(NotifierMsg::Kick);
                }
                Ok(_) => {}
            }
            for job in jobs {
                if let Some(d) = job.done {
                    let msg = match &outcome {
                        Ok(_) => {
                            SessionMsg::Committed { batch_id: d.batch_id, received: d.received, dropped: d.dropped }
                        }
                        Err(_) => SessionMsg::CommitFailed { batch_id: d.batch_id },
                    };
                    let _ = d.session.cast(msg);
                }
                drop(job.permit);
            }
            let _ = me.cast(IngestMsg::CommitDone);
        });
    }
}

impl Actor for Ingest {
    type Msg = IngestMsg;
    type State = IngestState;
    type Arguments = IngestArgs;

    async fn pre_start(&self, _me: ActorRef<IngestMsg>, args: IngestArgs) -> Result<IngestState, ActorProcessingErr> {
        Ok(IngestState { args, pending: Vec::new(), pending_events: 0, inflight: 0, flush_queued: false })
    }

    async fn handle(
        &self,
        me: ActorRef<IngestMsg>,
        msg: IngestMsg,
        st: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Submit(job) => {
                st.pending_events += job.events.len();
                st.pending.push(job);
                if !st.flush_queued {
                    st.flush_queued = me.cast(IngestMsg::Flush).is_ok();
                }
            }
            IngestMsg::Flush => {
                st.flush_queued = false;
                st.flush(&me);
            }
            IngestMsg::CommitDone => {
                st.inflight = st.inflight.saturating_sub(1);
                st.flush(&me);
            }
        }
        Ok(())
    }
}
