//! The `api_keys` table. A key is found by the HMAC of the whole key; the
//! short prefix is stored only so people can tell their keys apart.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::users::User;
use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub project_id: Option<Uuid>,
    pub project_slug: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<IpAddr>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "k.id, k.user_id, k.name, k.prefix, k.scopes, k.project_id, p.slug AS project_slug, k.created_at,
                       k.expires_at, k.last_used_at, k.last_used_ip, k.revoked_at";
const FROM: &str = "FROM api_keys k LEFT JOIN projects p ON p.id = k.project_id";

fn from_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get("id"),
        user_id: r.get("user_id"),
        name: r.get("name"),
        prefix: r.get("prefix"),
        scopes: r.get("scopes"),
        project_id: r.get("project_id"),
        project_slug: r.get("project_slug"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        last_used_at: r.get("last_used_at"),
        last_used_ip: r.get("last_used_ip"),
        revoked_at: r.get("revoked_at"),
    }
}

pub struct NewApiKey<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: &'a [String],
    pub project_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(c: &impl GenericClient, n: &NewApiKey<'_>, now: DateTime<Utc>) -> Result<ApiKey, StoreError> {
    let id = Uuid::new_v4();
    c.execute(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, project_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[&id, &n.user_id, &n.name, &n.prefix, &n.key_hash, &n.scopes, &n.project_id, &now, &n.expires_at],
    )
    .await?;
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE k.id = $1");
    Ok(from_row(&c.query_one(&sql, &[&id]).await?))
}

/// The user's keys that are not revoked (expired ones are listed, marked by
/// their `expires_at`, so their owner can see why they stopped working).
pub async fn list_for_user(c: &impl GenericClient, user_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} {FROM} WHERE k.user_id = $1 AND k.revoked_at IS NULL ORDER BY k.created_at, k.id");
    Ok(c.query(&sql, &[&user_id]).await?.iter().map(from_row).collect())
}

/// Revoke one of the user's own keys; `None` when there is no such live key
/// of theirs (another user's key id is "not found").
pub async fn revoke(
    c: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<[u8; 32]>, StoreError> {
    let row = c
        .query_opt(
            "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING key_hash",
            &[&id, &user_id, &now],
        )
        .await?;
    Ok(row.and_then(|r| <[u8; 32]>::try_from(r.get::<_, Vec<u8>>(0)).ok()))
}

/// A live key's row with its owner, for bearer authentication (one round
/// trip; expiry and owner state are judged by the caller against its clock).
#[derive(Clone)]
pub struct KeyCredential {
    pub key: ApiKey,
    pub owner: User,
}

pub async fn find_by_hash(c: &impl GenericClient, key_hash: &[u8]) -> Result<Option<KeyCredential>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, u.email, u.display_name, u.is_admin, u.is_active, u.password_changed_at, u.last_login_at,
                u.created_at AS ucreated, u.updated_at AS uupdated
         {FROM} JOIN users u ON u.id = k.user_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let Some(r) = c.query_opt(&stmt, &[&key_hash]).await? else {
        return Ok(None);
    };
    let key = from_row(&r);
    let owner = User {
        id: key.user_id,
        email: r.get("email"),
        display_name: r.get("display_name"),
        is_admin: r.get("is_admin"),
        is_active: r.get("is_active"),
        password_changed_at: r.get("password_changed_at"),
        last_login_at: r.get("last_login_at"),
        created_at: r.get("ucreated"),
        updated_at: r.get("uupdated"),
    };
    Ok(Some(KeyCredential { key, owner }))
}

/// Record use; never moves the timestamp backwards.
pub async fn touch(c: &impl GenericClient, id: Uuid, now: DateTime<Utc>, ip: IpAddr) -> Result<(), StoreError> {
    c.execute(
        "UPDATE api_keys SET last_used_at = $2, last_used_ip = $3
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        &[&id, &now, &ip],
    )
    .await?;
    Ok(())
}
