//! The Notifier: delivers outbox rows, one task per attempt.
//!
//! * Durable: it only ever reads the outbox. A row is `pending` until a
//!   conditional UPDATE claims it (`sending`, with a lease); a crash
//!   mid-send leaves the lease to run out and the row is sent again
//!   (at-least-once; receivers dedupe on `X-Palisade-Delivery`).
//! * Isolated: at most [`PER_CHANNEL`] attempts per channel and
//!   [`MAX_INFLIGHT`] overall run at once, each bounded by the outbound
//!   timeout, so a blackholed receiver holds two slots and nothing else.
//!   Ingest never waits on it: triggers only insert rows.
//! * Retrying: network errors, timeouts, 5xx and 429 come back after an
//!   exponential backoff with jitter (or the receiver's `Retry-After`),
//!   for up to [`GIVE_UP_AFTER`]; anything else fails at once.
//!
//! It also turns "an agent's last connection closed" into `agent.offline`
//! after the grace period, if the agent has not come back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::session_registry::RegistryMsg;
use crate::notify::deliver::Attempt;
use crate::notify::message::Notification;
use crate::notify::triggers;
use crate::state::AppState;
use crate::store::notify_outbox::{self as outbox, Claimed, Outcome};
use crate::store::{notify_channels, Db, StoreError};

pub const PER_CHANNEL: usize = 2;
pub const MAX_INFLIGHT: usize = 32;
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(24);
const TICK: Duration = Duration::from_millis(500);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
const BACKOFF_BASE_SECS: i64 = 5;
const BACKOFF_CAP_SECS: i64 = 15 * 60;
/// Finished rows are kept this long for `GET …/notifications/deliveries`.
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(7);

pub enum NotifierMsg {
    /// Something was enqueued: look now rather than at the next tick.
    Kick,
    Tick,
    Done {
        channel_id: Uuid,
    },
    /// The registry saw an agent's last session end.
    AgentOffline {
        project_id: Uuid,
        agent_id: Uuid,
    },
    OfflineCheck {
        project_id: Uuid,
        agent_id: Uuid,
    },
}

pub struct Notifier;

pub struct NotifierArgs {
    pub st: AppState,
    /// Its own connections: deliveries must not compete with requests.
    pub db: Db,
}

pub struct NotifierState {
    st: AppState,
    db: Db,
    inflight: usize,
    per_channel: HashMap<Uuid, usize>,
    housekeeping: Option<Instant>,
}

/// Delay before attempt `attempts + 1`: 5 s, 10 s, 20 s … capped at 15 min,
/// with jitter in the upper half so retries of many rows spread out.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let full = BACKOFF_BASE_SECS.saturating_mul(1i64 << exp).min(BACKOFF_CAP_SECS) * 1000;
    let jitter = rand::random_range(0..=full / 2);
    chrono::Duration::milliseconds(full / 2 + jitter)
}

fn outcome_of<'a>(attempt: &'a Attempt, claimed: &Claimed, now: DateTime<Utc>) -> Outcome<'a> {
    let status = attempt.status().map(i32::from);
    match attempt {
        Attempt::Sent { .. } => Outcome::Sent { status },
        Attempt::Retry { error, after, .. } if now - claimed.created_at < GIVE_UP_AFTER => {
            let mut wait = backoff(claimed.attempts);
            if let Some(after) = after.and_then(|a| chrono::Duration::from_std(a).ok()) {
                wait = wait.max(after);
            }
            Outcome::Retry { at: now + wait, error, status }
        }
        Attempt::Retry { error, .. } | Attempt::Failed { error, .. } => Outcome::Failed { error, status },
    }
}

async fn attempt_one(st: &AppState, db: &Db, claimed: &Claimed) -> Result<(), StoreError> {
    let conn = db.conn().await?;
    let channel = notify_channels::by_id(&conn, claimed.channel_id).await?;
    drop(conn);
    let attempt = match (&channel, serde_json::from_value::<Notification>(claimed.payload.clone())) {
        (None, _) => return Ok(()), // deleted: its outbox rows went with it
        (Some(ch), _) if !ch.enabled => Attempt::Failed { error: "the channel is disabled".into(), status: None },
        (_, Err(_)) => Attempt::Failed { error: "the queued message is unreadable".into(), status: None },
        (Some(ch), Ok(n)) => st.deliverer.deliver(ch, &n, claimed.id).await,
    };
    let now = st.clock.now();
    if let Some(e) = attempt.error() {
        tracing::warn!(delivery = %claimed.id, channel = %claimed.channel_id, attempt = claimed.attempts, error = e,
            "notification delivery failed");
    }
    let conn = db.conn().await?;
    outbox::record(&conn, claimed.id, &outcome_of(&attempt, claimed, now), now).await
}

impl NotifierState {
    async fn housekeeping(&mut self) -> Result<(), StoreError> {
        if self.housekeeping.is_some_and(|t| t.elapsed() < HOUSEKEEPING_EVERY) {
            return Ok(());
        }
        self.housekeeping = Some(Instant::now());
        let now = self.st.clock.now();
        let conn = self.db.conn().await?;
        let released = outbox::release_expired(&conn, now).await?;
        if released > 0 {
            tracing::warn!(released, "notification deliveries whose sender stopped mid-send are due again");
        }
        outbox::prune(&conn, now - KEEP_FINISHED).await?;
        Ok(())
    }

    async fn pump(&mut self, me: &ActorRef<NotifierMsg>) -> Result<(), StoreError> {
        self.housekeeping().await?;
        let free = MAX_INFLIGHT.saturating_sub(self.inflight);
        if free == 0 {
            return Ok(());
        }
        let busy: Vec<Uuid> = self.per_channel.iter().filter(|(_, n)| **n >= PER_CHANNEL).map(|(c, _)| *c).collect();
        let now = self.st.clock.now();
        let conn = self.db.conn().await?;
        let due = outbox::due(&conn, now, &busy, PER_CHANNEL as i64, free as i64).await?;
        let mut take: HashMap<Uuid, usize> = HashMap::new();
        let mut ids = Vec::new();
        for (id, channel) in due {
            let used = self.per_channel.get(&channel).copied().unwrap_or(0) + take.get(&channel).copied().unwrap_or(0);
            if used < PER_CHANNEL && ids.len() < free {
                *take.entry(channel).or_default() += 1;
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let lease = chrono::Duration::from_std(self.st.config.outbound_timeout * 2 + Duration::from_secs(30))
            .unwrap_or(chrono::Duration::minutes(1));
        let claimed = outbox::claim(&conn, &ids, now, now + lease).await?;
        drop(conn);
        let full = claimed.len() == free;
        for c in claimed {
            self.inflight += 1;
            *self.per_channel.entry(c.channel_id).or_default() += 1;
            let (st, db, me) = (self.st.clone(), self.db.clone(), me.clone());
            tokio::spawn(async move {
                if let Err(e) = attempt_one(&st, &db, &c).await {
                    tracing::warn!(error = %e, delivery = %c.id, "could not record a notification attempt; it will be retried when its lease ends");
                }
                let _ = me.cast(NotifierMsg::Done { channel_id: c.channel_id });
            });
        }
        if full {
            // More may be due; look again once slots free up.
            let _ = me.cast(NotifierMsg::Kick);
        }
        Ok(())
    }

    fn offline(&self, me: &ActorRef<NotifierMsg>, project_id: Uuid, agent_id: Uuid) {
        let (grace, me) = (self.st.config.agent_offline_grace, me.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = me.cast(NotifierMsg::OfflineCheck { project_id, agent_id });
        });
    }

    fn offline_check(&self, me: &ActorRef<NotifierMsg>, project_id: Uuid, agent_id: Uuid) {
        let (st, db, me) = (self.st.clone(), self.db.clone(), me.clone());
        tokio::spawn(async move {
            let online = st
                .registry
                .call(|reply| RegistryMsg::Online { project_id, reply }, Duration::from_secs(5))
                .await
                .map(|agents| agents.iter().any(|a| a.agent_id == agent_id));
            if !matches!(online, Ok(false)) {
                return; // back online, or the registry is restarting (it would know nothing)
            }
            let run = async {
                let mut conn = db.conn().await?;
                let tx = conn.transaction().await?;
                let n = triggers::agent_offline(&tx, project_id, agent_id, st.clock.now()).await?;
                tx.commit().await?;
                Ok::<u64, StoreError>(n)
            };
            match run.await {
                Ok(n) if n > 0 => {
                    let _ = me.cast(NotifierMsg::Kick);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, %agent_id, "could not enqueue agent.offline"),
            }
        });
    }
}

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        Ok(NotifierState { st: args.st, db: args.db, inflight: 0, per_channel: HashMap::new(), housekeeping: None })
    }

    async fn post_start(&self, me: ActorRef<NotifierMsg>, _s: &mut NotifierState) -> Result<(), ActorProcessingErr> {
        me.send_interval(TICK, || NotifierMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<NotifierMsg>,
        msg: NotifierMsg,
        s: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NotifierMsg::Kick | NotifierMsg::Tick => {
                if let Err(e) = s.pump(&me).await {
                    tracing::warn!(error = %e, "notification outbox poll failed; retrying on the next tick");
                }
            }
            NotifierMsg::Done { channel_id } => {
                s.inflight = s.inflight.saturating_sub(1);
                if let Some(n) = s.per_channel.get_mut(&channel_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        s.per_channel.remove(&channel_id);
                    }
                }
                if let Err(e) = s.pump(&me).await {
                    tracing::warn!(error = %e, "notification outbox poll failed; retrying on the next tick");
                }
            }
            NotifierMsg::AgentOffline { project_id, agent_id } => s.offline(&me, project_id, agent_id),
            NotifierMsg::OfflineCheck { project_id, agent_id } => s.offline_check(&me, project_id, agent_id),
        }
        Ok(())
    }
}
