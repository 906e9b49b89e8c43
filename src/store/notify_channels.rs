//! `notification_channels`: where a project's notifications go. Secret
//! fields live only in `secrets` (ciphertext, see `notify::cipher`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;

#[derive(Clone)]
pub struct ChannelRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub destination: String,
    pub secrets: Vec<u8>,
    pub secret_keys: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, project_id, name, kind, config, destination, secrets, secret_keys, enabled, created_at, updated_at";

fn from_row(r: &Row) -> ChannelRow {
    ChannelRow {
        id: r.get(0),
        project_id: r.get(1),
        name: r.get(2),
        kind: r.get(3),
        config: r.get(4),
        destination: r.get(5),
        secrets: r.get(6),
        secret_keys: r.get(7),
        enabled: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    }
}

/// Everything a save writes besides identity.
pub struct ChannelWrite<'a> {
    pub name: &'a str,
    pub config: &'a Value,
    pub destination: &'a str,
    pub secrets: &'a [u8],
    pub secret_keys: &'a [String],
    pub enabled: bool,
}

pub async fn insert(
    c: &impl GenericClient,
    id: Uuid,
    project_id: Uuid,
    kind: &str,
    w: &ChannelWrite<'_>,
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<ChannelRow, StoreError> {
    let sql = format!(
        "INSERT INTO notification_channels (id, project_id, name, kind, config, destination, secrets, secret_keys,
             enabled, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
    );
    let row = c
        .query_one(
            &sql,
            &[
                &id,
                &project_id,
                &w.name,
                &kind,
                &w.config,
                &w.destination,
                &w.secrets,
                &w.secret_keys,
                &w.enabled,
                &created_by,
                &now,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn list(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<ChannelRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM notification_channels WHERE project_id = $1 ORDER BY name");
    Ok(c.query(&sql, &[&project_id]).await?.iter().map(from_row).collect())
}

/// `FOR UPDATE` when `lock`: a PATCH merges into what it read.
pub async fn get(
    c: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notification_channels WHERE project_id = $1 AND id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    Ok(c.query_opt(&sql, &[&project_id, &id]).await?.as_ref().map(from_row))
}

/// For the Notifier, which has the id from an outbox row.
pub async fn by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM notification_channels WHERE id = $1");
    Ok(c.query_opt(&sql, &[&id]).await?.as_ref().map(from_row))
}

pub async fn update(
    c: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    w: &ChannelWrite<'_>,
    now: DateTime<Utc>,
) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!(
        "UPDATE notification_channels SET name = $3, config = $4, destination = $5, secrets = $6, secret_keys = $7,
             enabled = $8, updated_at = $9
         WHERE project_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row = c
        .query_opt(
            &sql,
            &[&project_id, &id, &w.name, &w.config, &w.destination, &w.secrets, &w.secret_keys, &w.enabled, &now],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Deleting a channel also drops its queued deliveries and its place in
/// rules (foreign keys cascade).
pub async fn delete(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!("DELETE FROM notification_channels WHERE project_id = $1 AND id = $2 RETURNING {COLUMNS}");
    Ok(c.query_opt(&sql, &[&project_id, &id]).await?.as_ref().map(from_row))
}
