//! Failed-login counters. Every change is one atomic statement, so two
//! replicas counting failures for the same email cannot lose an increment.
//! Failures decay: a counter whose window (the lock duration) has passed
//! restarts at one, so an old failure never contributes to a new lock.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::StoreError;

pub async fn locked_until(
    c: &impl GenericClient,
    email_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = c
        .query_opt(
            "SELECT locked_until FROM login_lockouts WHERE email_hash = $1 AND locked_until > $2",
            &[&email_hash, &now],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Count one failure; returns (failures in window, locked_until if locked).
pub async fn record_failure(
    c: &impl GenericClient,
    email_hash: &[u8],
    now: DateTime<Utc>,
    threshold: i32,
    window: chrono::Duration,
) -> Result<(i32, Option<DateTime<Utc>>), StoreError> {
    let window_cutoff = now - window;
    let lock_until = now + window;
    let row = c
        .query_one(
            "INSERT INTO login_lockouts AS l (email_hash, failures, window_starts_at, locked_until, updated_at)
             VALUES ($1, 1, $2, CASE WHEN 1 >= $3 THEN $5::timestamptz ELSE NULL END, $2)
             ON CONFLICT (email_hash) DO UPDATE SET
               failures = CASE WHEN l.window_starts_at <= $4 THEN 1 ELSE l.failures + 1 END,
               window_starts_at = CASE WHEN l.window_starts_at <= $4 THEN $2 ELSE l.window_starts_at END,
               locked_until = CASE
                   WHEN (CASE WHEN l.window_starts_at <= $4 THEN 1 ELSE l.failures + 1 END) >= $3 THEN $5::timestamptz
                   ELSE l.locked_until END,
               updated_at = $2
             RETURNING failures, locked_until",
            &[&email_hash, &now, &threshold, &window_cutoff, &lock_until],
        )
        .await?;
    let locked: Option<DateTime<Utc>> = row.get(1);
    Ok((row.get(0), locked.filter(|t| *t > now)))
}

pub async fn reset(c: &impl GenericClient, email_hash: &[u8]) -> Result<(), StoreError> {
    c.execute("DELETE FROM login_lockouts WHERE email_hash = $1", &[&email_hash]).await?;
    Ok(())
}
