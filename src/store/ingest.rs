//! Writing agent events: one transaction per ingest batch. Events are
//! inserted first with `ON CONFLICT DO NOTHING … RETURNING`, and only the
//! ones that were new are folded into tasks, workers and queues, so a
//! re-sent batch is a no-op.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::fleet::events::Event;
use crate::fleet::projection::{QueueUpsert, TaskUpsert, WorkerUpsert};

/// One event with the identity it arrived under.
pub struct Scoped<'a> {
    pub project_id: Uuid,
    pub agent_id: Uuid,
    pub event: &'a Event,
}

/// A projected row with the project and agent it belongs to. One upsert
/// statement carries the rows of every agent in a commit; the caller
/// guarantees each key appears once per statement and that rows are in key
/// order, so concurrent commits lock rows in the same order and cannot
/// deadlock.
pub struct Owned<'a, T> {
    pub project_id: Uuid,
    pub agent_id: Uuid,
    pub row: &'a T,
}

/// Insert events; returns the (project, id) pairs that were new.
pub async fn insert_events(
    c: &impl GenericClient,
    events: &[Scoped<'_>],
    received_at: DateTime<Utc>,
) -> Result<HashSet<(Uuid, Uuid)>, StoreError> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let project: Vec<Uuid> = events.iter().map(|e| e.project_id).collect();
    let id: Vec<Uuid> = events.iter().map(|e| e.event.id).collect();
    let engine: Vec<&str> = events.iter().map(|e| e.event.engine.as_str()).collect();
    let task: Vec<&str> = events.iter().map(|e| e.event.task_id.as_str()).collect();
    let kind: Vec<&str> = events.iter().map(|e| e.event.kind_text.as_str()).collect();
    let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.event.occurred_at).collect();
    let agent: Vec<Uuid> = events.iter().map(|e| e.agent_id).collect();
    let data: Vec<&Value> = events.iter().map(|e| &e.event.data).collect();
    let stmt = c
        .prepare_cached(
            "INSERT INTO task_events (project_id, id, engine, task_id, kind, occurred_at, received_at, agent_id, data)
             SELECT p, i, e, t, k, o, $7, a, d FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                 $6::timestamptz[], $8::uuid[], $9::jsonb[]) AS u(p, i, e, t, k, o, a, d)
             ON CONFLICT (project_id, id) DO NOTHING
             RETURNING project_id, id",
        )
        .await?;
    let rows = c.query(&stmt, &[&project, &id, &engine, &task, &kind, &at, &received_at, &agent, &data]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn upsert_tasks(
    c: &impl GenericClient,
    owned: &[Owned<'_, TaskUpsert>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if owned.is_empty() {
        return Ok(());
    }
    let project: Vec<Uuid> = owned.iter().map(|o| o.project_id).collect();
    let agent: Vec<Uuid> = owned.iter().map(|o| o.agent_id).collect();
    let tasks: Vec<&TaskUpsert> = owned.iter().map(|o| o.row).collect();
    let engine: Vec<&str> = tasks.iter().map(|t| t.engine.as_str()).collect();
    let task_id: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    let name: Vec<Option<&str>> = tasks.iter().map(|t| t.name.as_deref()).collect();
    let queue: Vec<Option<&str>> = tasks.iter().map(|t| t.queue.as_deref()).collect();
    let worker: Vec<Option<&str>> = tasks.iter().map(|t| t.worker.as_deref()).collect();
    let state: Vec<&str> = tasks.iter().map(|t| t.state).collect();
    let received: Vec<Option<DateTime<Utc>>> = tasks.iter().map(|t| t.received_at).collect();
    let started: Vec<Option<DateTime<Utc>>> = tasks.iter().map(|t| t.started_at).collect();
    let finished: Vec<Option<DateTime<Utc>>> = tasks.iter().map(|t| t.finished_at).collect();
    let runtime: Vec<Option<i64>> = tasks.iter().map(|t| t.runtime_ms).collect();
    let retries: Vec<i32> = tasks.iter().map(|t| t.retries).collect();
    let exception: Vec<Option<&str>> = tasks.iter().map(|t| t.exception.as_deref()).collect();
    let args: Vec<Option<&Value>> = tasks.iter().map(|t| t.args.as_ref()).collect();
    let kwargs: Vec<Option<&Value>> = tasks.iter().map(|t| t.kwargs.as_ref()).collect();
    let result: Vec<Option<&Value>> = tasks.iter().map(|t| t.result.as_ref()).collect();
    let last: Vec<DateTime<Utc>> = tasks.iter().map(|t| t.last_event_at).collect();
    // The newer event's state wins; everything else merges (earliest
    // receipt, latest start/finish, retries add up across batches because
    // only new events are folded).
    let stmt = c
        .prepare_cached(
            "INSERT INTO tasks AS t (project_id, engine, task_id, name, queue, worker, state, agent_id, received_at,
                 started_at, finished_at, runtime_ms, retries, exception, args, kwargs, result, last_event_at, updated_at)
             SELECT p, e, i, n, q, w, s, a, rc, st, fi, rt, re, ex, ar, kw, rs, la, $3
             FROM UNNEST($1::uuid[], $2::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                 $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::bigint[], $14::int[], $15::text[],
                 $16::jsonb[], $17::jsonb[], $18::jsonb[], $19::timestamptz[])
                 AS u(p, a, e, i, n, q, w, s, rc, st, fi, rt, re, ex, ar, kw, rs, la)
             ON CONFLICT (project_id, engine, task_id) DO UPDATE SET
                 name = COALESCE(EXCLUDED.name, t.name),
                 queue = COALESCE(EXCLUDED.queue, t.queue),
                 worker = COALESCE(EXCLUDED.worker, t.worker),
                 state = CASE WHEN EXCLUDED.last_event_at >= t.last_event_at THEN EXCLUDED.state ELSE t.state END,
                 agent_id = EXCLUDED.agent_id,
                 received_at = LEAST(t.received_at, EXCLUDED.received_at),
                 started_at = GREATEST(t.started_at, EXCLUDED.started_at),
                 finished_at = GREATEST(t.finished_at, EXCLUDED.finished_at),
                 runtime_ms = COALESCE(EXCLUDED.runtime_ms, t.runtime_ms),
                 retries = t.retries + EXCLUDED.retries,
                 exception = CASE WHEN EXCLUDED.last_event_at >= t.last_event_at
                     THEN COALESCE(EXCLUDED.exception, t.exception) ELSE COALESCE(t.exception, EXCLUDED.exception) END,
                 args = COALESCE(EXCLUDED.args, t.args),
                 kwargs = COALESCE(EXCLUDED.kwargs, t.kwargs),
                 result = COALESCE(EXCLUDED.result, t.result),
                 last_event_at = GREATEST(t.last_event_at, EXCLUDED.last_event_at),
                 updated_at = EXCLUDED.updated_at",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &project, &agent, &now, &engine, &task_id, &name, &queue, &worker, &state, &received, &started, &finished,
            &runtime, &retries, &exception, &args, &kwargs, &result, &last,
        ],
    )
    .await?;
    Ok(())
}

pub async fn upsert_workers(c: &impl GenericClient, owned: &[Owned<'_, WorkerUpsert>]) -> Result<(), StoreError> {
    if owned.is_empty() {
        return Ok(());
    }
    let project: Vec<Uuid> = owned.iter().map(|o| o.project_id).collect();
    let agent: Vec<Uuid> = owned.iter().map(|o| o.agent_id).collect();
    let workers: Vec<&WorkerUpsert> = owned.iter().map(|o| o.row).collect();
    let engine: Vec<&str> = workers.iter().map(|w| w.engine.as_str()).collect();
    let name: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    let state: Vec<Option<&str>> = workers.iter().map(|w| w.state).collect();
    let seen: Vec<DateTime<Utc>> = workers.iter().map(|w| w.last_seen).collect();
    let ok: Vec<i64> = workers.iter().map(|w| w.succeeded).collect();
    let failed: Vec<i64> = workers.iter().map(|w| w.failed).collect();
    let stmt = c
        .prepare_cached(
            "INSERT INTO workers AS w (project_id, engine, name, agent_id, state, first_seen, last_seen, succeeded, failed)
             SELECT p, e, n, a, COALESCE(s, 'online'), l, l, o, f
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bigint[],
                 $8::bigint[]) AS u(p, a, e, n, s, l, o, f)
             ON CONFLICT (project_id, engine, name) DO UPDATE SET
                 agent_id = EXCLUDED.agent_id,
                 state = CASE WHEN EXCLUDED.last_seen >= w.last_seen THEN EXCLUDED.state ELSE w.state END,
                 last_seen = GREATEST(w.last_seen, EXCLUDED.last_seen),
                 succeeded = w.succeeded + EXCLUDED.succeeded,
                 failed = w.failed + EXCLUDED.failed",
        )
        .await?;
    c.execute(&stmt, &[&project, &agent, &engine, &name, &state, &seen, &ok, &failed]).await?;
    Ok(())
}

/// `queues`: (project, row), each (project, engine, name) once, in key order.
pub async fn upsert_queues(c: &impl GenericClient, queues: &[(Uuid, QueueUpsert)]) -> Result<(), StoreError> {
    if queues.is_empty() {
        return Ok(());
    }
    let project: Vec<Uuid> = queues.iter().map(|(p, _)| *p).collect();
    let queues: Vec<&QueueUpsert> = queues.iter().map(|(_, q)| q).collect();
    let engine: Vec<&str> = queues.iter().map(|q| q.engine.as_str()).collect();
    let name: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    let depth: Vec<Option<i64>> = queues.iter().map(|q| q.depth).collect();
    let at: Vec<DateTime<Utc>> = queues.iter().map(|q| q.at).collect();
    let stmt = c
        .prepare_cached(
            "INSERT INTO queues AS q (project_id, engine, name, depth, updated_at)
             SELECT p, e, n, d, a FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
                 AS u(p, e, n, d, a)
             ON CONFLICT (project_id, engine, name) DO UPDATE SET
                 depth = CASE WHEN EXCLUDED.updated_at >= q.updated_at THEN EXCLUDED.depth ELSE q.depth END,
                 updated_at = GREATEST(q.updated_at, EXCLUDED.updated_at)",
        )
        .await?;
    c.execute(&stmt, &[&project, &engine, &name, &depth, &at]).await?;
    Ok(())
}
