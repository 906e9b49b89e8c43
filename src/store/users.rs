//! The `users` table. `User` deliberately excludes the password hash; the
//! hash only travels through `find_credentials` and `set_password`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub is_active: bool,
    pub password_changed_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, email, display_name, is_admin, is_active, password_changed_at, last_login_at, created_at, updated_at";

impl User {
    fn from_row(r: &Row) -> User {
        User {
            id: r.get("id"),
            email: r.get("email"),
            display_name: r.get("display_name"),
            is_admin: r.get("is_admin"),
            is_active: r.get("is_active"),
            password_changed_at: r.get("password_changed_at"),
            last_login_at: r.get("last_login_at"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        }
    }
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
}

pub async fn insert(c: &impl GenericClient, u: &NewUser<'_>, now: DateTime<Utc>) -> Result<User, StoreError> {
    let sql = format!(
        "INSERT INTO users (id, email, display_name, password_hash, is_admin, is_active, password_changed_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, true, $6, $6, $6) RETURNING {COLUMNS}"
    );
    let row =
        c.query_one(&sql, &[&Uuid::new_v4(), &u.email, &u.display_name, &u.password_hash, &u.is_admin, &now]).await?;
    Ok(User::from_row(&row))
}

pub async fn any_exist(c: &impl GenericClient) -> Result<bool, StoreError> {
    Ok(c.query_one("SELECT EXISTS (SELECT 1 FROM users)", &[]).await?.get(0))
}

pub async fn by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    Ok(c.query_opt(&sql, &[&id]).await?.map(|r| User::from_row(&r)))
}

/// The user and their PHC hash, for login and password change.
pub async fn find_credentials(c: &impl GenericClient, email: &str) -> Result<Option<(User, String)>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = $1");
    Ok(c.query_opt(&sql, &[&email]).await?.map(|r| (User::from_row(&r), r.get("password_hash"))))
}

pub async fn password_hash(c: &impl GenericClient, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id]).await?.map(|r| r.get(0)))
}

pub async fn list(c: &impl GenericClient, limit: i64, offset: i64) -> Result<Vec<User>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2");
    Ok(c.query(&sql, &[&limit, &offset]).await?.iter().map(User::from_row).collect())
}

#[derive(Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub is_admin: Option<bool>,
    pub is_active: Option<bool>,
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    p: &UserPatch,
    now: DateTime<Utc>,
) -> Result<Option<User>, StoreError> {
    let sql = format!(
        "UPDATE users SET display_name = COALESCE($2, display_name), is_admin = COALESCE($3, is_admin),
                is_active = COALESCE($4, is_active), updated_at = $5
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = c.query_opt(&sql, &[&id, &p.display_name, &p.is_admin, &p.is_active, &now]).await?;
    Ok(row.map(|r| User::from_row(&r)))
}

pub async fn set_password(c: &impl GenericClient, id: Uuid, phc: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    c.execute(
        "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1",
        &[&id, &phc, &now],
    )
    .await?;
    Ok(())
}

/// Record a successful login; `rehash` replaces a hash made under weaker
/// parameters without touching `password_changed_at` (sessions survive).
pub async fn record_login(
    c: &impl GenericClient,
    id: Uuid,
    now: DateTime<Utc>,
    rehash: Option<&str>,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE users SET last_login_at = $2, password_hash = COALESCE($3, password_hash) WHERE id = $1",
        &[&id, &now, &rehash],
    )
    .await?;
    Ok(())
}

pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM users WHERE id = $1", &[&id]).await? == 1)
}

/// Active global admins other than `except`, locked so two concurrent
/// demotions cannot both see "one other admin left".
pub async fn other_active_admins(c: &impl GenericClient, except: Uuid) -> Result<i64, StoreError> {
    let rows = c.query("SELECT id FROM users WHERE is_admin AND is_active AND id <> $1 FOR UPDATE", &[&except]).await?;
    Ok(rows.len() as i64)
}
