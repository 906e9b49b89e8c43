//! The `agents` table: identities agents authenticate as.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct AgentRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    pub framework: Option<String>,
    pub engines: Vec<String>,
    pub capabilities: Value,
    pub host_name: Option<String>,
}

const COLUMNS: &str =
    "id, project_id, name, created_at, revoked_at, last_seen_at, agent_version, framework, engines, capabilities, host_name";

fn from_row(r: &Row) -> AgentRow {
    AgentRow {
        id: r.get(0),
        project_id: r.get(1),
        name: r.get(2),
        created_at: r.get(3),
        revoked_at: r.get(4),
        last_seen_at: r.get(5),
        agent_version: r.get(6),
        framework: r.get(7),
        engines: r.get(8),
        capabilities: r.get(9),
        host_name: r.get(10),
    }
}

pub async fn insert(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    token_hash: &str,
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<AgentRow, StoreError> {
    let sql = format!(
        "INSERT INTO agents (id, project_id, name, token_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING {COLUMNS}"
    );
    let row = c.query_one(&sql, &[&Uuid::new_v4(), &project_id, &name, &token_hash, &created_by, &now]).await?;
    Ok(from_row(&row))
}

pub async fn list(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<AgentRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE project_id = $1 AND revoked_at IS NULL ORDER BY created_at");
    Ok(c.query(&sql, &[&project_id]).await?.iter().map(from_row).collect())
}

pub async fn by_id(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<AgentRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE project_id = $1 AND id = $2");
    Ok(c.query_opt(&sql, &[&project_id, &id]).await?.map(|r| from_row(&r)))
}

pub async fn revoke(
    c: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE agents SET revoked_at = $3 WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL",
            &[&project_id, &id, &now],
        )
        .await?;
    Ok(n == 1)
}

/// A live agent for a bearer token hash, with whether its project is
/// archived (an archived project's agents are refused).
pub async fn find_by_token_hash(c: &impl GenericClient, hash: &str) -> Result<Option<(AgentRow, bool)>, StoreError> {
    let sql = format!(
        "SELECT {}, p.archived_at IS NOT NULL FROM agents a JOIN projects p ON p.id = a.project_id
         WHERE a.token_hash = $1 AND a.revoked_at IS NULL",
        COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
    );
    Ok(c.query_opt(&sql, &[&hash]).await?.map(|r| (from_row(&r), r.get(11))))
}

pub struct Hello<'a> {
    pub agent_version: &'a str,
    pub framework: &'a str,
    pub engines: &'a [String],
    pub capabilities: &'a Value,
    pub host_name: Option<&'a str>,
}

pub async fn record_hello(
    c: &impl GenericClient,
    id: Uuid,
    h: &Hello<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE agents SET last_seen_at = $2, agent_version = $3, framework = $4, engines = $5, capabilities = $6,
             host_name = $7 WHERE id = $1",
        &[&id, &now, &h.agent_version, &h.framework, &h.engines, h.capabilities, &h.host_name],
    )
    .await?;
    Ok(())
}

pub async fn touch(c: &impl GenericClient, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
    c.execute(
        "UPDATE agents SET last_seen_at = $2 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)",
        &[&id, &now],
    )
    .await?;
    Ok(())
}
