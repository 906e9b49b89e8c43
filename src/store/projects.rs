//! The `projects` table, and the one query the authorization check needs:
//! a project by slug together with the caller's membership role.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::security::rbac::Role;

#[derive(Clone, Debug, Serialize)]
pub struct Project {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "p.id, p.slug, p.name, p.description, p.created_at, p.updated_at, p.archived_at";

impl Project {
    fn from_row(r: &Row) -> Project {
        Project {
            id: r.get("id"),
            slug: r.get("slug"),
            name: r.get("name"),
            description: r.get("description"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            archived_at: r.get("archived_at"),
        }
    }

    pub fn archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// A role read back from the database; the column's CHECK constraint makes
/// anything else a corrupted row, reported as a store error.
pub fn role_from_db(raw: &str) -> Result<Role, StoreError> {
    raw.parse().map_err(|_| StoreError::Db(format!("unknown role {raw:?} in the database")))
}

/// Slugs appear in URLs and must never need escaping: 3 to 50 characters of
/// `a-z`, `0-9` and inner hyphens (the table has the same CHECK).
pub fn valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=50).contains(&b.len())
        && b.iter().all(inner_ok)
        && b.first().is_some_and(edge_ok)
        && b.last().is_some_and(edge_ok)
}

pub struct NewProject<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub created_by: Uuid,
}

pub async fn insert(c: &impl GenericClient, p: &NewProject<'_>, now: DateTime<Utc>) -> Result<Project, StoreError> {
    let sql = format!(
        "INSERT INTO projects AS p (id, slug, name, description, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
    );
    let row = c.query_one(&sql, &[&Uuid::new_v4(), &p.slug, &p.name, &p.description, &p.created_by, &now]).await?;
    Ok(Project::from_row(&row))
}

pub async fn by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<Project>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM projects p WHERE p.id = $1");
    Ok(c.query_opt(&sql, &[&id]).await?.map(|r| Project::from_row(&r)))
}

/// Every project (a global admin's view), oldest first.
pub async fn list_all(
    c: &impl GenericClient,
    include_archived: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<Project>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects p WHERE $1 OR p.archived_at IS NULL
         ORDER BY p.created_at, p.id LIMIT $2 OFFSET $3"
    );
    Ok(c.query(&sql, &[&include_archived, &limit, &offset]).await?.iter().map(Project::from_row).collect())
}

/// The projects a user is a member of, with their role in each.
pub async fn list_for_user(
    c: &impl GenericClient,
    user_id: Uuid,
    include_archived: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<(Project, Role)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, m.role FROM projects p JOIN memberships m ON m.project_id = p.id
         WHERE m.user_id = $1 AND ($2 OR p.archived_at IS NULL)
         ORDER BY p.created_at, p.id LIMIT $3 OFFSET $4"
    );
    let rows = c.query(&sql, &[&user_id, &include_archived, &limit, &offset]).await?;
    rows.iter().map(|r| Ok((Project::from_row(r), role_from_db(r.get("role"))?))).collect()
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Project>, StoreError> {
    let sql = format!(
        "UPDATE projects p SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = $4
         WHERE p.id = $1 RETURNING {COLUMNS}"
    );
    Ok(c.query_opt(&sql, &[&id, &name, &description, &now]).await?.map(|r| Project::from_row(&r)))
}

/// Archive (`Some(now)`) or restore (`None`). Returns the row only when the
/// state actually changed, so repeating either is a visible no-op.
pub async fn set_archived(
    c: &impl GenericClient,
    id: Uuid,
    archived_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<Project>, StoreError> {
    let sql = format!(
        "UPDATE projects p SET archived_at = $2, updated_at = $3
         WHERE p.id = $1 AND (p.archived_at IS NULL) <> ($2::timestamptz IS NULL) RETURNING {COLUMNS}"
    );
    Ok(c.query_opt(&sql, &[&id, &archived_at, &now]).await?.map(|r| Project::from_row(&r)))
}

/// What authorization needs about one project: small, cached, cloned cheaply.
#[derive(Clone, Debug)]
pub struct ProjectRef {
    pub id: Uuid,
    pub slug: String,
    pub archived: bool,
}

/// The project with this slug and the user's role in it, in one round trip.
pub async fn access(
    c: &impl GenericClient,
    slug: &str,
    user_id: Uuid,
) -> Result<Option<(ProjectRef, Option<Role>)>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT p.id, p.slug, p.archived_at IS NOT NULL AS archived, m.role
             FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $2
             WHERE p.slug = $1",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&slug, &user_id]).await? else {
        return Ok(None);
    };
    let role = match r.get::<_, Option<&str>>("role") {
        Some(raw) => Some(role_from_db(raw)?),
        None => None,
    };
    Ok(Some((ProjectRef { id: r.get("id"), slug: r.get("slug"), archived: r.get("archived") }, role)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_shape() {
        for ok in ["abc", "my-project", "a1-b2", "x".repeat(50).as_str()] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in ["", "ab", "-abc", "abc-", "ABC", "a_b", "a b", "ab/c", "é-abc", "x".repeat(51).as_str(), "a..b"] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
