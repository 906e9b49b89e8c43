//! Reading tasks, their events, workers, queues and the raw event stream.
//! Every query is scoped by project first, and every list is keyset
//! paginated on an index that starts with `project_id`, so a page costs the
//! same with a million tasks as with a hundred (see docs/task-queries.md).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    pub engine: String,
    pub task_id: String,
    pub name: Option<String>,
    pub queue: Option<String>,
    pub worker: Option<String>,
    pub state: String,
    pub agent_id: Option<Uuid>,
    pub received_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub runtime_ms: Option<i64>,
    pub retries: i32,
    pub exception: Option<String>,
    pub args: Option<Value>,
    pub kwargs: Option<Value>,
    pub result: Option<Value>,
    pub last_event_at: DateTime<Utc>,
}

// A macro, not a const, so `LIST_SQL` can be assembled with `concat!` and
// tests can EXPLAIN the exact text the store runs.
macro_rules! task_columns {
    () => {
        "engine, task_id, name, queue, worker, state, agent_id, received_at, started_at, \
         finished_at, runtime_ms, retries, exception, args, kwargs, result, last_event_at"
    };
}
const TASK_COLUMNS: &str = task_columns!();

/// The task-list query. Every optional filter is `$n IS NULL OR ...`; it is
/// sent as an unnamed statement so PostgreSQL plans it with the bound values
/// (a cached generic plan could not pick the per-filter index).
pub const LIST_SQL: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks
     WHERE project_id = $1
       AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR name = $3)
       AND ($4::text IS NULL OR queue = $4) AND ($5::text IS NULL OR worker = $5)
       AND ($6::text IS NULL OR engine = $6)
       AND ($7::timestamptz IS NULL OR last_event_at >= $7) AND ($8::timestamptz IS NULL OR last_event_at < $8)
       AND ($9::text IS NULL OR name ILIKE $9 OR task_id ILIKE $9)
       AND ($10::timestamptz IS NULL OR (last_event_at, engine, task_id) < ($10, $11, $12))
     ORDER BY last_event_at DESC, engine DESC, task_id DESC
     LIMIT $13"
);

fn task(r: &Row) -> TaskRow {
    TaskRow {
        engine: r.get(0),
        task_id: r.get(1),
        name: r.get(2),
        queue: r.get(3),
        worker: r.get(4),
        state: r.get(5),
        agent_id: r.get(6),
        received_at: r.get(7),
        started_at: r.get(8),
        finished_at: r.get(9),
        runtime_ms: r.get(10),
        retries: r.get(11),
        exception: r.get(12),
        args: r.get(13),
        kwargs: r.get(14),
        result: r.get(15),
        last_event_at: r.get(16),
    }
}

/// Position of the last row of a page; the next page starts after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub engine: String,
    pub task_id: String,
}

#[derive(Default, Debug)]
pub struct TaskFilter {
    pub state: Option<String>,
    pub name: Option<String>,
    pub queue: Option<String>,
    pub worker: Option<String>,
    pub engine: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Substring of the name or task id (trigram index).
    pub search: Option<String>,
    pub after: Option<Cursor>,
}

fn like_pattern(s: &str) -> String {
    format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

pub async fn list(
    c: &impl GenericClient,
    project_id: Uuid,
    f: &TaskFilter,
    limit: i64,
) -> Result<Vec<TaskRow>, StoreError> {
    let search = f.search.as_deref().map(like_pattern);
    let (cur_at, cur_engine, cur_id) = match &f.after {
        Some(c) => (Some(c.at), Some(c.engine.as_str()), Some(c.task_id.as_str())),
        None => (None, None, None),
    };
    let rows = c
        .query(
            LIST_SQL,
            &[
                &project_id,
                &f.state,
                &f.name,
                &f.queue,
                &f.worker,
                &f.engine,
                &f.since,
                &f.until,
                &search,
                &cur_at,
                &cur_engine,
                &cur_id,
                &limit,
            ],
        )
        .await?;
    Ok(rows.iter().map(task).collect())
}

pub async fn get(
    c: &impl GenericClient,
    project_id: Uuid,
    engine: &str,
    task_id: &str,
) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE project_id = $1 AND engine = $2 AND task_id = $3");
    Ok(c.query_opt(&sql, &[&project_id, &engine, &task_id]).await?.map(|r| task(&r)))
}

#[derive(Clone, Debug, Serialize)]
pub struct EventRow {
    pub id: Uuid,
    pub engine: String,
    pub task_id: String,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub agent_id: Option<Uuid>,
    pub data: Value,
}

fn event(r: &Row) -> EventRow {
    EventRow {
        id: r.get(0),
        engine: r.get(1),
        task_id: r.get(2),
        kind: r.get(3),
        occurred_at: r.get(4),
        received_at: r.get(5),
        agent_id: r.get(6),
        data: r.get(7),
    }
}

const EVENT_COLUMNS: &str = "id, engine, task_id, kind, occurred_at, received_at, agent_id, data";

pub async fn task_events(
    c: &impl GenericClient,
    project_id: Uuid,
    engine: &str,
    task_id: &str,
) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM task_events WHERE project_id = $1 AND engine = $2 AND task_id = $3
         ORDER BY occurred_at LIMIT 1000"
    );
    Ok(c.query(&sql, &[&project_id, &engine, &task_id]).await?.iter().map(event).collect())
}

/// Newest events first; `before` is the `received_at` of the last one seen.
pub async fn events(
    c: &impl GenericClient,
    project_id: Uuid,
    kind: Option<&str>,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM task_events WHERE project_id = $1 AND ($2::text IS NULL OR kind = $2)
           AND ($3::timestamptz IS NULL OR received_at < $3) ORDER BY received_at DESC LIMIT $4"
    );
    Ok(c.query(&sql, &[&project_id, &kind, &before, &limit]).await?.iter().map(event).collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerRow {
    pub engine: String,
    pub name: String,
    pub agent_id: Option<Uuid>,
    pub state: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
}

pub async fn workers(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<WorkerRow>, StoreError> {
    let rows = c
        .query(
            "SELECT engine, name, agent_id, state, first_seen, last_seen, succeeded, failed FROM workers
             WHERE project_id = $1 ORDER BY last_seen DESC LIMIT 1000",
            &[&project_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| WorkerRow {
            engine: r.get(0),
            name: r.get(1),
            agent_id: r.get(2),
            state: r.get(3),
            first_seen: r.get(4),
            last_seen: r.get(5),
            succeeded: r.get(6),
            failed: r.get(7),
        })
        .collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct QueueRow {
    pub engine: String,
    pub name: String,
    pub depth: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

pub async fn queues(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<QueueRow>, StoreError> {
    let rows = c
        .query(
            "SELECT engine, name, depth, updated_at FROM queues WHERE project_id = $1 ORDER BY engine, name LIMIT 1000",
            &[&project_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| QueueRow { engine: r.get(0), name: r.get(1), depth: r.get(2), updated_at: r.get(3) })
        .collect())
}

pub async fn queue_depth(
    c: &impl GenericClient,
    project_id: Uuid,
    engine: &str,
    queue: &str,
) -> Result<Option<i64>, StoreError> {
    let row = c
        .query_opt(
            "SELECT depth FROM queues WHERE project_id = $1 AND engine = $2 AND name = $3",
            &[&project_id, &engine, &queue],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Task ids of the project matching a filter, for bulk retry.
pub async fn ids_matching(
    c: &impl GenericClient,
    project_id: Uuid,
    engine: &str,
    state: &str,
    name: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT task_id FROM tasks WHERE project_id = $1 AND engine = $2 AND state = $3 AND ($4::text IS NULL OR name = $4)
             ORDER BY last_event_at DESC LIMIT $5",
            &[&project_id, &engine, &state, &name, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `ids` are tasks of this project (isolation for bulk retry).
pub async fn existing_ids(
    c: &impl GenericClient,
    project_id: Uuid,
    engine: &str,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT task_id FROM tasks WHERE project_id = $1 AND engine = $2 AND task_id = ANY($3)",
            &[&project_id, &engine, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
