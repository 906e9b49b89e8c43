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
use crate::clock::SharedClock;
use crate::fleet::events::Event;
use crate::fleet::projection::{self, QueueUpsert};
use crate::fleet::AgentIdentity;
use crate::store::ingest::{self as store, Owned, Scoped};
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
pub enum Done {
    /// A WebSocket session, which then sends `event_batch_ack`.
    Session { session: ActorRef<SessionMsg>, batch_id: String, received: usize, dropped: usize },
    /// A long-poll request waiting to count the frame as accepted.
    Waiter(tokio::sync::oneshot::Sender<bool>),
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
}

pub struct IngestState {
    args: IngestArgs,
    pending: Vec<Job>,
    pending_events: usize,
    inflight: usize,
    flush_queued: bool,
}

async fn commit(db: &Db, clock: &SharedClock, jobs: &[Job]) -> Result<(), StoreError> {
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
    let mut queues: HashMap<(Uuid, String, String), QueueUpsert> = HashMap::new();
    for j in jobs {
        let (p, a) = (j.identity.project_id, j.identity.agent_id);
        let group = groups.entry((p, a)).or_default();
        group.extend(j.events.iter().filter(|e| fresh.contains(&(p, e.id))));
        for q in &j.queues {
            keep_latest(&mut queues, p, q.clone());
        }
    }
    let projections: Vec<((Uuid, Uuid), projection::Projection)> =
        groups.into_iter().map(|(k, events)| (k, projection::project(&events))).collect();
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    for ((project_id, agent_id), proj) in &projections {
        let (project_id, agent_id) = (*project_id, *agent_id);
        tasks.extend(proj.tasks.iter().map(|row| Owned { project_id, agent_id, row }));
        workers.extend(proj.workers.iter().map(|row| Owned { project_id, agent_id, row }));
        for q in &proj.queues {
            keep_latest(&mut queues, project_id, q.clone());
        }
    }
    // One statement per kind (not one per agent), each row once per
    // statement, in key order: fewer round trips, and concurrent commits
    // take row locks in the same order.
    for round in rounds(tasks, |o| (o.project_id, o.row.engine.clone(), o.row.task_id.clone())) {
        store::upsert_tasks(&tx, &round, now).await?;
    }
    for round in rounds(workers, |o| (o.project_id, o.row.engine.clone(), o.row.name.clone())) {
        store::upsert_workers(&tx, &round).await?;
    }
    let mut queues: Vec<((Uuid, String, String), QueueUpsert)> = queues.into_iter().collect();
    queues.sort_by(|a, b| a.0.cmp(&b.0));
    let queues: Vec<(Uuid, QueueUpsert)> = queues.into_iter().map(|((p, _, _), q)| (p, q)).collect();
    store::upsert_queues(&tx, &queues).await?;
    tx.commit().await?;
    Ok(())
}

/// One upsert per queue per statement (PostgreSQL refuses to update a row
/// twice in one INSERT … ON CONFLICT); the newest depth wins.
fn keep_latest(map: &mut HashMap<(Uuid, String, String), QueueUpsert>, project: Uuid, q: QueueUpsert) {
    let key = (project, q.engine.clone(), q.name.clone());
    match map.get(&key) {
        Some(old) if old.at > q.at => {}
        _ => {
            map.insert(key, q);
        }
    }
}

/// Split rows so that no key repeats within a round (the same task seen by
/// two agents in one commit goes into a second statement), each round
/// sorted by key.
fn rounds<T, K: Ord + Clone + std::hash::Hash>(rows: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Vec<(K, T)>> = Vec::new();
    for row in rows {
        let k = key(&row);
        let slot = seen.entry(k.clone()).or_insert(0);
        if out.len() <= *slot {
            out.push(Vec::new());
        }
        out[*slot].push((k, row));
        *slot += 1;
    }
    out.into_iter()
        .map(|mut round| {
            round.sort_by(|a, b| a.0.cmp(&b.0));
            round.into_iter().map(|(_, row)| row).collect()
        })
        .collect()
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
        tokio::spawn(async move {
            let outcome = commit(&db, &clock, &jobs).await;
            if let Err(e) = &outcome {
                tracing::error!(error = %e, jobs = jobs.len(), "ingest commit failed; batches stay unacknowledged and agents will re-send them");
            }
            for job in jobs {
                match job.done {
                    Some(Done::Session { session, batch_id, received, dropped }) => {
                        let msg = match &outcome {
                            Ok(()) => SessionMsg::Committed { batch_id, received, dropped },
                            Err(_) => SessionMsg::CommitFailed { batch_id },
                        };
                        let _ = session.cast(msg);
                    }
                    Some(Done::Waiter(tx)) => {
                        let _ = tx.send(outcome.is_ok());
                    }
                    None => {}
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

#[cfg(test)]
mod tests {
    use super::rounds;

    #[test]
    fn rounds_never_repeat_a_key_and_are_sorted() {
        let rows = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("b", 5), ("a", 6)];
        let out = rounds(rows, |r| r.0);
        assert_eq!(out, vec![vec![("a", 2), ("b", 1), ("c", 4)], vec![("a", 6), ("b", 3)], vec![("b", 5)]]);
        assert!(rounds(Vec::<(&str, i32)>::new(), |r| r.0).is_empty());
    }
}
