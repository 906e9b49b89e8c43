//! `notification_outbox`: messages decided but not yet delivered. Rows are
//! written in the transaction that decided them and leave only as `sent`
//! or `failed`, so a restart or a receiver outage loses nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;

/// One message per enabled channel of each rule, for a whole set of fired
/// (project, rule, trigger, payload) in one statement.
pub async fn enqueue_many(
    c: &impl GenericClient,
    fired: &[(Uuid, Uuid, &str, Value)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if fired.is_empty() {
        return Ok(0);
    }
    let projects: Vec<Uuid> = fired.iter().map(|f| f.0).collect();
    let rules: Vec<Uuid> = fired.iter().map(|f| f.1).collect();
    let triggers: Vec<&str> = fired.iter().map(|f| f.2).collect();
    let payloads: Vec<&Value> = fired.iter().map(|f| &f.3).collect();
    let stmt = c
        .prepare_cached(
            "INSERT INTO notification_outbox (id, project_id, channel_id, rule_id, trigger, payload, status,
                 next_attempt_at, created_at)
             SELECT gen_random_uuid(), u.p, ch.id, u.r, u.t, u.d, 'pending', $5, $5
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[]) AS u(p, r, t, d)
             JOIN notification_rule_channels rc ON rc.rule_id = u.r
             JOIN notification_channels ch ON ch.id = rc.channel_id AND ch.project_id = u.p AND ch.enabled",
        )
        .await?;
    Ok(c.execute(&stmt, &[&projects, &rules, &triggers, &payloads, &now]).await?)
}

/// Up to `per_channel` due rows of every channel not in `busy`, oldest
/// first. Walks channels (few) and probes each one's index, so a backlog
/// on one dead receiver never hides another channel's messages.
pub async fn due(
    c: &impl GenericClient,
    now: DateTime<Utc>,
    busy: &[Uuid],
    per_channel: i64,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT o.id, ch.id FROM notification_channels ch
             CROSS JOIN LATERAL (
                 SELECT id, next_attempt_at FROM notification_outbox o
                 WHERE o.channel_id = ch.id AND o.status = 'pending' AND o.next_attempt_at <= $1
                 ORDER BY o.next_attempt_at LIMIT $3) o
             WHERE ch.id <> ALL($2::uuid[])
             ORDER BY o.next_attempt_at LIMIT $4",
        )
        .await?;
    let rows = c.query(&stmt, &[&now, &busy, &per_channel, &limit]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub struct Claimed {
    pub id: Uuid,
    pub project_id: Uuid,
    pub channel_id: Uuid,
    pub payload: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Take rows for sending (conditional, so two replicas never both send
/// one); `lease_until` bounds how long a crashed sender holds them.
pub async fn claim(
    c: &impl GenericClient,
    ids: &[Uuid],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = c
        .query(
            "UPDATE notification_outbox SET status = 'sending', lease_until = $3, attempts = attempts + 1
             WHERE id = ANY($1) AND status = 'pending' AND next_attempt_at <= $2
             RETURNING id, project_id, channel_id, payload, attempts, created_at",
            &[&ids, &now, &lease_until],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            project_id: r.get(1),
            channel_id: r.get(2),
            payload: r.get(3),
            attempts: r.get(4),
            created_at: r.get(5),
        })
        .collect())
}

/// Rows whose sender died mid-send become due again.
pub async fn release_expired(c: &impl GenericClient, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(c.execute(
        "UPDATE notification_outbox SET status = 'pending', lease_until = NULL WHERE status = 'sending' AND lease_until <= $1",
        &[&now],
    )
    .await?)
}

/// The outcome of one attempt.
pub enum Outcome<'a> {
    Sent { status: Option<i32> },
    Retry { at: DateTime<Utc>, error: &'a str, status: Option<i32> },
    Failed { error: &'a str, status: Option<i32> },
}

pub async fn record(
    c: &impl GenericClient,
    id: Uuid,
    outcome: &Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match outcome {
        Outcome::Sent { status } => {
            c.execute(
                "UPDATE notification_outbox SET status = 'sent', lease_until = NULL, last_status = $2, last_error = NULL,
                     finished_at = $3 WHERE id = $1 AND status = 'sending'",
                &[&id, status, &now],
            )
            .await?
        }
        Outcome::Retry { at, error, status } => {
            c.execute(
                "UPDATE notification_outbox SET status = 'pending', lease_until = NULL, next_attempt_at = $2,
                     last_error = $3, last_status = $4 WHERE id = $1 AND status = 'sending'",
                &[&id, at, error, status],
            )
            .await?
        }
        Outcome::Failed { error, status } => {
            c.execute(
                "UPDATE notification_outbox SET status = 'failed', lease_until = NULL, last_error = $2, last_status = $3,
                     finished_at = $4 WHERE id = $1 AND status = 'sending'",
                &[&id, error, status, &now],
            )
            .await?
        }
    };
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub rule_id: Option<Uuid>,
    pub trigger: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The project's recent deliveries (newest first), without payloads.
pub async fn recent(
    c: &impl GenericClient,
    project_id: Uuid,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = c
        .query(
            "SELECT id, channel_id, rule_id, trigger, status, attempts, next_attempt_at, last_error, last_status,
                 created_at, finished_at
             FROM notification_outbox WHERE project_id = $1 AND ($2::text IS NULL OR status = $2)
             ORDER BY created_at DESC, id LIMIT $3",
            &[&project_id, &status, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeliveryRow {
            id: r.get(0),
            channel_id: r.get(1),
            rule_id: r.get(2),
            trigger: r.get(3),
            status: r.get(4),
            attempts: r.get(5),
            next_attempt_at: r.get(6),
            last_error: r.get(7),
            last_status: r.get(8),
            created_at: r.get(9),
            finished_at: r.get(10),
        })
        .collect())
}

/// Forget finished rows older than `before` (bounded per call).
pub async fn prune(c: &impl GenericClient, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(c.execute(
        "DELETE FROM notification_outbox WHERE id IN (
             SELECT id FROM notification_outbox WHERE finished_at < $1 LIMIT 5000)",
        &[&before],
    )
    .await?)
}
