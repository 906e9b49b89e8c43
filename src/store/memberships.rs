//! The `memberships` table: who holds which role in which project.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::projects::role_from_db;
use super::StoreError;
use crate::security::rbac::Role;

#[derive(Clone, Debug, Serialize)]
pub struct Membership {
    pub id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT m.id, m.project_id, m.user_id, u.email, u.display_name, m.role, m.created_at, m.updated_at
                      FROM memberships m JOIN users u ON u.id = m.user_id";

fn from_row(r: &Row) -> Result<Membership, StoreError> {
    Ok(Membership {
        id: r.get("id"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        email: r.get("email"),
        display_name: r.get("display_name"),
        role: role_from_db(r.get("role"))?,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

pub async fn list(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<Membership>, StoreError> {
    let sql = format!("{SELECT} WHERE m.project_id = $1 ORDER BY m.created_at, m.id LIMIT 5000");
    c.query(&sql, &[&project_id]).await?.iter().map(from_row).collect()
}

/// One membership, only if it belongs to `project_id` (a membership id from
/// another project is "not found", never acted on).
pub async fn get(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<Membership>, StoreError> {
    let sql = format!("{SELECT} WHERE m.project_id = $1 AND m.id = $2");
    c.query_opt(&sql, &[&project_id, &id]).await?.map(|r| from_row(&r)).transpose()
}

/// Insert; `StoreError::Conflict` when the user is already a member.
pub async fn insert(
    c: &impl GenericClient,
    project_id: Uuid,
    user_id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    c.execute(
        "INSERT INTO memberships (id, project_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        &[&id, &project_id, &user_id, &role.as_str(), &now],
    )
    .await?;
    Ok(id)
}

pub async fn set_role(c: &impl GenericClient, id: Uuid, role: Role, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = c
        .execute("UPDATE memberships SET role = $2, updated_at = $3 WHERE id = $1", &[&id, &role.as_str(), &now])
        .await?;
    Ok(n == 1)
}

pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM memberships WHERE id = $1", &[&id]).await? == 1)
}

/// The admin memberships of a project, row-locked for the rest of the
/// transaction, so two concurrent demotions cannot both see "another admin
/// remains" and leave the project with none.
pub async fn lock_admins(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let rows = c
        .query(
            "SELECT id FROM memberships WHERE project_id = $1 AND role = 'admin' ORDER BY id FOR UPDATE",
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn role_of(c: &impl GenericClient, project_id: Uuid, user_id: Uuid) -> Result<Option<Role>, StoreError> {
    let row = c
        .query_opt("SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2", &[&project_id, &user_id])
        .await?;
    row.map(|r| role_from_db(r.get(0))).transpose()
}
