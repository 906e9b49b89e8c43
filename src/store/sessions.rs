//! Browser sessions. Rows are found by the HMAC of the cookie token; the
//! token itself never reaches the database.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::users::User;
use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// What authentication needs on every request: the session, its CSRF
/// binding and its user, fetched in one round trip.
#[derive(Clone)]
pub struct ActiveSession {
    pub info: SessionInfo,
    pub csrf_hash: Vec<u8>,
    pub user: User,
}

pub struct NewSession<'a> {
    pub token_hash: &'a [u8],
    pub csrf_hash: &'a [u8],
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert(c: &impl GenericClient, s: &NewSession<'_>, now: DateTime<Utc>) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    c.execute(
        "INSERT INTO sessions (id, token_hash, csrf_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
        &[&id, &s.token_hash, &s.csrf_hash, &s.user_id, &now, &s.expires_at, &s.ip, &s.user_agent],
    )
    .await?;
    Ok(id)
}

/// The unrevoked session with this token hash, with its user. Expiry and
/// idle checks are done by the caller against its clock.
pub async fn find_by_token_hash(
    c: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<ActiveSession>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT s.id, s.csrf_hash, s.created_at, s.last_seen_at, s.expires_at, s.ip, s.user_agent,
                    u.id AS uid, u.email, u.display_name, u.is_admin, u.is_active, u.password_changed_at,
                    u.last_login_at, u.created_at AS ucreated, u.updated_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&token_hash]).await? else {
        return Ok(None);
    };
    Ok(Some(ActiveSession {
        info: SessionInfo {
            id: r.get("id"),
            created_at: r.get("created_at"),
            last_seen_at: r.get("last_seen_at"),
            expires_at: r.get("expires_at"),
            ip: r.get("ip"),
            user_agent: r.get("user_agent"),
        },
        csrf_hash: r.get("csrf_hash"),
        user: User {
            id: r.get("uid"),
            email: r.get("email"),
            display_name: r.get("display_name"),
            is_admin: r.get("is_admin"),
            is_active: r.get("is_active"),
            password_changed_at: r.get("password_changed_at"),
            last_login_at: r.get("last_login_at"),
            created_at: r.get("ucreated"),
            updated_at: r.get("updated_at"),
        },
    }))
}

pub async fn touch(c: &impl GenericClient, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
    c.execute("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2", &[&id, &now]).await?;
    Ok(())
}

pub async fn revoke(c: &impl GenericClient, id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &reason, &now],
        )
        .await?;
    Ok(n == 1)
}

/// Revoke every live session of a user except `keep`; returns the ids
/// revoked so caches can drop them.
pub async fn revoke_all_for_user(
    c: &impl GenericClient,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = c
        .query(
            "UPDATE sessions SET revoked_at = $4, revoked_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)
             RETURNING id",
            &[&user_id, &keep, &reason, &now],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn list_active(
    c: &impl GenericClient,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<SessionInfo>, StoreError> {
    let rows = c
        .query(
            "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC LIMIT 100",
            &[&user_id, &now],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SessionInfo {
            id: r.get(0),
            created_at: r.get(1),
            last_seen_at: r.get(2),
            expires_at: r.get(3),
            ip: r.get(4),
            user_agent: r.get(5),
        })
        .collect())
}
