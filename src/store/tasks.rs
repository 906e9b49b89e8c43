//! Reading tasks, their events, workers, queues and the raw event stream.
//! Every query is scoped by project first, and every list is keyset
//! paginated on an index that starts with `project_id`, so a page costs the
//! same with a million tasks as with a hundred (see docs/task-queries.md).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::types::ToSql;
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

const TASK_COLUMNS: &str = "engine, task_id, name, queue, worker, state, agent_id, received_at, started_at, \
                            finished_at, runtime_ms, retries, exception, args, kwargs, result, last_event_at";

/// The task-list statement for one filter shape, and its parameters.
///
/// Only the filters that are present appear in the text, so each shape is
/// its own prepared statement with a plan PostgreSQL can cache: every
/// equality filter is an index condition whatever its value (see
/// docs/task-queries.md). Free-text search is the exception: a generic plan
/// cannot use the trigram index for an unknown pattern, so `cacheable` is
/// false and the statement is planned with its values on every call.
pub struct ListQuery<'a> {
    pub sql: String,
    pub params: Vec<&'a (dyn ToSql + Sync)>,
    pub cacheable: bool,
}

impl<'a> ListQuery<'a> {
    fn bind(&mut self, p: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn and_eq(&mut self, column: &str, value: &'a Option<String>) {
        if let Some(v) = value {
            let n = self.bind(v);
            self.sql.push_str(&format!(" AND {column} = {n}"));
        }
    }
}

/// `search` is the ILIKE pattern already built from `f.search`.
pub fn list_query<'a>(
    project_id: &'a Uuid,
    f: &'a TaskFilter,
    search: &'a Option<String>,
    limit: &'a i64,
) -> ListQuery<'a> {
    let mut q = ListQuery {
        sql: format!("SELECT {TASK_COLUMNS} FROM tasks WHERE project_id = $1"),
        params: vec![project_id],
        cacheable: search.is_none(),
    };
    q.and_eq("state", &f.state);
    q.and_eq("name", &f.name);
    q.and_eq("queue", &f.queue);
    q.and_eq("worker", &f.worker);
    q.and_eq("engine", &f.engine);
    if let Some(since) = &f.since {
        let n = q.bind(since);
        q.sql.push_str(&format!(" AND last_event_at >= {n}"));
    }
    if let Some(until) = &f.until {
        let n = q.bind(until);
        q.sql.push_str(&format!(" AND last_event_at < {n}"));
    }
    if let Some(pattern) = search {
        let n = q.bind(pattern);
        q.sql.push_str(&format!(" AND (name ILIKE {n} OR task_id ILIKE {n})"));
    }
    if let Some(c) = &f.after {
        let (a, e, t) = (q.bind(&c.at), q.bind(&c.engine), q.bind(&c.task_id));
        q.sql.push_str(&format!(" AND (last_event_at, engine, task_id) < ({a}, {e}, {t})"));
    }
    let n = q.bind(limit);
    q.sql.push_str(&format!(" ORDER BY last_event_at DESC, engine DESC, task_id DESC LIMIT {n}"));
    q
}

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
    let q = list_query(&project_id, f, &search, &limit);
    let rows = if q.cacheable {
        let stmt = c.prepare_cached(&q.sql).await?;
        c.query(&stmt, &q.params).await?
    } else {
        c.query(&q.sql, &q.params).await?
    };
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
