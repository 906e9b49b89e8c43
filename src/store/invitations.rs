//! The `invitations` table. Tokens are found by their HMAC; an invitation is
//! usable while it is neither accepted, revoked nor expired and its project
//! is active.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::projects::role_from_db;
use super::StoreError;
use crate::security::rbac::Role;

#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.accepted_at.is_some() {
            "accepted"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "pending"
        }
    }
}

const COLUMNS: &str =
    "i.id, i.project_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at, i.accepted_at, i.revoked_at";

fn from_row(r: &Row) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: r.get("id"),
        project_id: r.get("project_id"),
        email: r.get("email"),
        role: role_from_db(r.get("role"))?,
        invited_by: r.get("invited_by"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        accepted_at: r.get("accepted_at"),
        revoked_at: r.get("revoked_at"),
    })
}

pub struct NewInvitation<'a> {
    pub project_id: Uuid,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a [u8],
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    c: &impl GenericClient,
    n: &NewInvitation<'_>,
    now: DateTime<Utc>,
) -> Result<Invitation, StoreError> {
    let sql = format!(
        "INSERT INTO invitations AS i (id, project_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    );
    let row = c
        .query_one(
            &sql,
            &[
                &Uuid::new_v4(),
                &n.project_id,
                &n.email,
                &n.role.as_str(),
                &n.token_hash,
                &n.invited_by,
                &now,
                &n.expires_at,
            ],
        )
        .await?;
    from_row(&row)
}

/// Revoke the still-open invitations for one address in one project: a new
/// invitation replaces them, so only the newest link works.
pub async fn supersede(
    c: &impl GenericClient,
    project_id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(c.execute(
        "UPDATE invitations SET revoked_at = $3
             WHERE project_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        &[&project_id, &email, &now],
    )
    .await?)
}

/// The most recent invitations of a project (any status).
pub async fn list(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<Invitation>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM invitations i WHERE i.project_id = $1 ORDER BY i.created_at DESC, i.id LIMIT 500"
    );
    c.query(&sql, &[&project_id]).await?.iter().map(from_row).collect()
}

pub async fn get(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<Invitation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM invitations i WHERE i.project_id = $1 AND i.id = $2 FOR UPDATE");
    c.query_opt(&sql, &[&project_id, &id]).await?.map(|r| from_row(&r)).transpose()
}

pub async fn revoke(c: &impl GenericClient, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
            &[&id, &now],
        )
        .await?;
    Ok(n == 1)
}

/// A usable invitation with its project's slug and name. `lock` row-locks
/// it for the caller's transaction (accept), so two racing accepts of one
/// token cannot both pass.
pub async fn find_usable(
    c: &impl GenericClient,
    token_hash: &[u8],
    now: DateTime<Utc>,
    lock: bool,
) -> Result<Option<(Invitation, String, String)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, p.slug, p.name FROM invitations i JOIN projects p ON p.id = i.project_id
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > $2
           AND p.archived_at IS NULL{}",
        if lock { " FOR UPDATE OF i" } else { "" }
    );
    let Some(r) = c.query_opt(&sql, &[&token_hash, &now]).await? else {
        return Ok(None);
    };
    Ok(Some((from_row(&r)?, r.get("slug"), r.get("name"))))
}

/// Stamp an invitation accepted; false if it was no longer open (the
/// guarded UPDATE is the single-use guarantee).
pub async fn mark_accepted(
    c: &impl GenericClient,
    id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE invitations SET accepted_at = $3, accepted_by = $2
             WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
            &[&id, &user_id, &now],
        )
        .await?;
    Ok(n == 1)
}
