//! Schema migrations: the SQL files in `schema/`, compiled into the binary,
//! applied in order, each in its own transaction, and recorded in
//! `schema_migrations` with a checksum. Re-running is a no-op; an applied
//! file that was edited afterwards is refused rather than silently skipped.
//! A session-level advisory lock makes concurrent replicas take turns.

use sha2::{Digest, Sha256};

use super::{Db, StoreError};

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "foundation", sql: include_str!("../../schema/0001_foundation.sql") },
    Migration { version: 2, name: "audit", sql: include_str!("../../schema/0002_audit.sql") },
    Migration { version: 3, name: "projects", sql: include_str!("../../schema/0003_projects.sql") },
    Migration { version: 4, name: "agents", sql: include_str!("../../schema/0004_agents.sql") },
    Migration { version: 5, name: "notifications", sql: include_str!("../../schema/0005_notifications.sql") },
];

/// Arbitrary constant naming "palisade migrations" in pg_advisory_lock.
const MIGRATION_LOCK: i64 = 0x7061_6c69_7361_6465;

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Apply every pending migration; returns the versions applied now.
pub async fn run(db: &Db) -> Result<Vec<i32>, StoreError> {
    let mut conn = db.conn().await?;
    // Fast path, and what lets a least-privilege application role (which
    // cannot create tables) start once an owner has migrated: nothing to do.
    if let Some(applied) = applied_versions(&conn).await? {
        if MIGRATIONS.iter().all(|m| applied.contains(&m.version)) {
            return Ok(Vec::new());
        }
    }
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = apply_pending(&mut conn).await;
    // Unlock even on failure so a retry (or another replica) can proceed.
    let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}

async fn applied_versions(conn: &deadpool_postgres::Object) -> Result<Option<Vec<i32>>, StoreError> {
    let exists: bool = conn.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(None);
    }
    let rows = conn.query("SELECT version FROM schema_migrations", &[]).await?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

async fn apply_pending(conn: &mut deadpool_postgres::Object) -> Result<Vec<i32>, StoreError> {
    let rows = conn.query("SELECT version, checksum FROM schema_migrations", &[]).await?;
    let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some((_, stored)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *stored != sum {
                return Err(StoreError::Migration(format!(
                    "migration {:04}_{} was changed after it was applied (checksum mismatch)",
                    m.version, m.name
                )));
            }
            continue;
        }
        let tx = conn.transaction().await?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Migration(format!("{:04}_{}: {e}", m.version, m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &sum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strictly_increasing() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
    }
}
