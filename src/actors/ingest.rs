//! Ingest: batches events from every agent session into PostgreSQL and
//! tells each session when its batch is committed (the session then sends
//! `event_batch_ack`; never before).
//!
//! Memory is bounded by `Budget`: a session must take one permit per event
//! *before* submitting, and the permits return only after the commit. When
//! the database is slow the budget runs out, sessions wait for permits, stop
//! reading their sockets, and TCP pushes back on the agents, which buffer
//! on disk.
//!
//! Jobs are split into `LANES` lanes by connection (one agent serves many
//! workers, each on its own connection), and each lane has at most one
//! commit in flight. Lanes let two commits use two database cores at once;
//! splitting by connection keeps a worker's tasks in one lane, so the two
//! commits rarely want the same rows (and when they do, one waits: see
//! `ingest_commit`). Within a lane batches commit in arrival order; across
//! lanes order does not matter (newest event wins in the projection).

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::actors::agent_session::{Ack, SessionMsg};
use crate::actors::ingest_commit::commit;
use crate::actors::notifier::NotifierMsg;
use crate::actors::Slot;
use crate::clock::SharedClock;
use crate::fleet::events::Event;
use crate::fleet::projection::QueueUpsert;
use crate::fleet::AgentIdentity;
use crate::store::Db;

/// Events held in memory (queued or being committed) across all sessions.
pub const DEFAULT_BUDGET: usize = 50_000;
const MAX_EVENTS_PER_COMMIT: usize = 5_000;
/// Commits that may run at once (the ingest pool has one more connection).
pub const LANES: usize = 2;

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
    /// The connection it came on (any stable number per connection).
    pub stream: u64,
    pub events: Vec<Event>,
    pub queues: Vec<QueueUpsert>,
    pub done: Option<Done>,
    pub permit: OwnedSemaphorePermit,
}

pub enum IngestMsg {
    Submit(Job),
    Flush,
    CommitDone(usize),
}

pub struct Ingest;

pub struct IngestArgs {
    pub db: Db,
    pub clock: SharedClock,
    /// Woken after a commit that enqueued notifications.
    pub notifier: Slot<NotifierMsg>,
}

#[derive(Default)]
struct Lane {
    pending: Vec<Job>,
    busy: bool,
}

pub struct IngestState {
    args: IngestArgs,
    lanes: Vec<Lane>,
    flush_queued: bool,
}

fn lane_of(stream: u64) -> usize {
    (stream % LANES as u64) as usize
}

impl IngestState {
    fn flush(&mut self, me: &ActorRef<IngestMsg>) {
        for index in 0..self.lanes.len() {
            self.flush_lane(index, me);
        }
    }

    fn flush_lane(&mut self, index: usize, me: &ActorRef<IngestMsg>) {
        let Some(lane) = self.lanes.get_mut(index) else { return };
        if lane.pending.is_empty() || lane.busy {
            return;
        }
        let mut taken = 0;
        let mut n = 0;
        for j in &lane.pending {
            if n > 0 && taken + j.events.len() > MAX_EVENTS_PER_COMMIT {
                break;
            }
            taken += j.events.len();
            n += 1;
        }
        let jobs: Vec<Job> = lane.pending.drain(..n).collect();
        lane.busy = true;
        let (db, clock, me) = (self.args.db.clone(), self.args.clock.clone(), me.clone());
        let notifier = self.args.notifier.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = commit(&db, &clock, &jobs).await;
            tracing::debug!(
                lane = index,
                jobs = jobs.len(),
                events = taken,
                ms = started.elapsed().as_millis() as u64,
                "ingest commit"
            );
            match &outcome {
                Err(e) => {
                    tracing::error!(error = %e, jobs = jobs.len(), "ingest commit failed; batches stay unacknowledged and agents will re-send them");
                }
                Ok(n) if *n > 0 => {
                    let _ = notifier.cast(NotifierMsg::Kick);
                }
                Ok(_) => {}
            }
            // One message per session for all of its batches in this
            // commit: the session signs every ack and writes them with one
            // flush, instead of one socket write (and one wake-up on the
            // agent's side) per batch.
            let mut acks = SessionAcks::default();
            for job in jobs {
                match job.done {
                    Some(Done::Session { session, batch_id, received, dropped }) => {
                        acks.push(session, Ack { batch_id, received, dropped });
                    }
                    Some(Done::Waiter(tx)) => {
                        let _ = tx.send(outcome.is_ok());
                    }
                    None => {}
                }
                drop(job.permit);
            }
            acks.deliver(outcome.is_ok());
            let _ = me.cast(IngestMsg::CommitDone(index));
        });
    }
}

/// Acks of one commit grouped by session, each session's acks in
/// submission order (a session's batches all go to one lane, so this is the
/// order the agent sent them). Order across sessions does not matter: each
/// has its own socket.
#[derive(Default)]
struct SessionAcks(HashMap<ActorId, (ActorRef<SessionMsg>, Vec<Ack>)>);

impl SessionAcks {
    fn push(&mut self, session: ActorRef<SessionMsg>, ack: Ack) {
        self.0.entry(session.get_id()).or_insert_with(|| (session, Vec::new())).1.push(ack);
    }

    fn deliver(self, committed: bool) {
        for (session, acks) in self.0.into_values() {
            let msg = if committed {
                SessionMsg::Committed(acks)
            } else {
                SessionMsg::CommitFailed(acks.into_iter().map(|a| a.batch_id).collect())
            };
            let _ = session.cast(msg);
        }
    }
}

impl Actor for Ingest {
    type Msg = IngestMsg;
    type State = IngestState;
    type Arguments = IngestArgs;

    async fn pre_start(&self, _me: ActorRef<IngestMsg>, args: IngestArgs) -> Result<IngestState, ActorProcessingErr> {
        Ok(IngestState { args, lanes: (0..LANES).map(|_| Lane::default()).collect(), flush_queued: false })
    }

    async fn handle(
        &self,
        me: ActorRef<IngestMsg>,
        msg: IngestMsg,
        st: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IngestMsg::Submit(job) => {
                if let Some(lane) = st.lanes.get_mut(lane_of(job.stream)) {
                    lane.pending.push(job);
                }
                if !st.flush_queued {
                    st.flush_queued = me.cast(IngestMsg::Flush).is_ok();
                }
            }
            IngestMsg::Flush => {
                st.flush_queued = false;
                st.flush(&me);
            }
            IngestMsg::CommitDone(index) => {
                if let Some(lane) = st.lanes.get_mut(index) {
                    lane.busy = false;
                }
                st.flush_lane(index, &me);
            }
        }
        Ok(())
    }
}
