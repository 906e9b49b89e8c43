//! The `commands` table and its state transitions. Every transition is a
//! single conditional UPDATE, so two replicas (or a retry) can never move a
//! command twice, and every statement is scoped by project.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::fleet::commands::CommandSpec;

#[derive(Clone, Debug, Serialize)]
pub struct CommandRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub engine: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub parameters: Value,
    pub status: String,
    pub issued_by: Option<Uuid>,
    pub issued_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip)]
    pub delivery_claim_token: Uuid,
    pub result: Option<Value>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, project_id, agent_id, engine, action, target_type, target_id, parameters, status, issued_by, \
                       issued_at, dispatched_at, acked_at, finished_at, expires_at, delivery_claim_token, result, error";

fn from_row(r: &Row) -> CommandRow {
    CommandRow {
        id: r.get(0),
        project_id: r.get(1),
        agent_id: r.get(2),
        engine: r.get(3),
        action: r.get(4),
        target_type: r.get(5),
        target_id: r.get(6),
        parameters: r.get(7),
        status: r.get(8),
        issued_by: r.get(9),
        issued_at: r.get(10),
        dispatched_at: r.get(11),
        acked_at: r.get(12),
        finished_at: r.get(13),
        expires_at: r.get(14),
        delivery_claim_token: r.get(15),
        result: r.get(16),
        error: r.get(17),
    }
}

impl CommandRow {
    pub fn spec(&self) -> CommandSpec {
        CommandSpec {
            id: self.id,
            action: self.action.clone(),
            engine: self.engine.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            parameters: self.parameters.clone(),
            issued_by: self.issued_by,
            delivery_claim_token: self.delivery_claim_token,
        }
    }
}

pub struct NewCommand<'a> {
    pub project_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub engine: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub parameters: &'a Value,
    pub issued_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(c: &impl GenericClient, n: &NewCommand<'_>, now: DateTime<Utc>) -> Result<CommandRow, StoreError> {
    let sql = format!(
        "INSERT INTO commands (id, project_id, agent_id, engine, action, target_type, target_id, parameters, status,
             issued_by, issued_at, expires_at, delivery_claim_token)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    let row = c
        .query_one(
            &sql,
            &[
                &Uuid::new_v4(),
                &n.project_id,
                &n.agent_id,
                &n.engine,
                &n.action,
                &n.target_type,
                &n.target_id,
                n.parameters,
                &n.issued_by,
                &now,
                &n.expires_at,
                &Uuid::new_v4(),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<CommandRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM commands WHERE project_id = $1 AND id = $2");
    Ok(c.query_opt(&sql, &[&project_id, &id]).await?.map(|r| from_row(&r)))
}

pub async fn list(
    c: &impl GenericClient,
    project_id: Uuid,
    status: Option<&str>,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM commands WHERE project_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($3::timestamptz IS NULL OR issued_at < $3) ORDER BY issued_at DESC LIMIT $4"
    );
    Ok(c.query(&sql, &[&project_id, &status, &before, &limit]).await?.iter().map(from_row).collect())
}

/// Pending commands of a project, oldest first (for delivery on connect).
pub async fn pending(
    c: &impl GenericClient,
    project_id: Uuid,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM commands WHERE project_id = $1 AND status = 'pending' AND expires_at > $2
         ORDER BY issued_at LIMIT $3"
    );
    Ok(c.query(&sql, &[&project_id, &now, &limit]).await?.iter().map(from_row).collect())
}

/// pending → dispatched, for exactly one session. `None` when someone else
/// claimed it first (or it expired): the caller must not send it.
pub async fn claim(
    c: &impl GenericClient,
    id: Uuid,
    agent_id: Uuid,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<CommandRow>, StoreError> {
    let sql = format!(
        "UPDATE commands SET status = 'dispatched', dispatched_at = $4, agent_id = $2, session_id = $3
         WHERE id = $1 AND status = 'pending' AND expires_at > $4 AND (agent_id IS NULL OR agent_id = $2)
         RETURNING {COLUMNS}"
    );
    Ok(c.query_opt(&sql, &[&id, &agent_id, &session_id, &now]).await?.map(|r| from_row(&r)))
}

/// dispatched → acked. Only the agent the command went to can ack it.
pub async fn acked(
    c: &impl GenericClient,
    project_id: Uuid,
    agent_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE commands SET status = 'acked', acked_at = $4
             WHERE project_id = $1 AND agent_id = $2 AND id = $3 AND status = 'dispatched'",
            &[&project_id, &agent_id, &id, &now],
        )
        .await?;
    Ok(n == 1)
}

/// What an agent reported for a command.
pub struct Outcome<'a> {
    pub status: &'a str,
    pub result: Option<&'a Value>,
    pub error: Option<&'a str>,
}

/// dispatched|acked → succeeded|failed; returns the finished row.
pub async fn finished(
    c: &impl GenericClient,
    project_id: Uuid,
    agent_id: Uuid,
    id: Uuid,
    o: &Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<Option<CommandRow>, StoreError> {
    let sql = format!(
        "UPDATE commands SET status = $4, result = $5, error = $6, finished_at = $7,
             acked_at = COALESCE(acked_at, $7)
         WHERE project_id = $1 AND agent_id = $2 AND id = $3 AND status IN ('dispatched', 'acked')
         RETURNING {COLUMNS}"
    );
    Ok(c.query_opt(&sql, &[&project_id, &agent_id, &id, &o.status, &o.result, &o.error, &now])
        .await?
        .map(|r| from_row(&r)))
}

/// Time out what nobody finished: dispatched/acked past the result
/// deadline, pending past its expiry. Returns the rows that timed out.
pub async fn expire(
    c: &impl GenericClient,
    now: DateTime<Utc>,
    result_deadline: DateTime<Utc>,
) -> Result<Vec<CommandRow>, StoreError> {
    let sql = format!(
        "UPDATE commands SET status = 'timed_out', finished_at = $1,
             error = CASE WHEN status = 'pending' THEN 'no capable agent connected in time' ELSE 'the agent did not answer in time' END
         WHERE (status IN ('dispatched', 'acked') AND dispatched_at < $2) OR (status = 'pending' AND expires_at <= $1)
         RETURNING {COLUMNS}"
    );
    Ok(c.query(&sql, &[&now, &result_deadline]).await?.iter().map(from_row).collect())
}

/// Projects that have pending commands (the sweep tries to deliver them).
pub async fn projects_with_pending(c: &impl GenericClient, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
    let rows = c
        .query("SELECT DISTINCT project_id FROM commands WHERE status = 'pending' AND expires_at > $1", &[&now])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
