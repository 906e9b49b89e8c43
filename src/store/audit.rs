//! SQL for the audit log. Only `actors::audit_writer` calls the insert;
//! everything else here reads.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use futures_util::{Stream, StreamExt};
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::audit::canonical::{AuditRow, RowView};

/// `pg_advisory_xact_lock` key naming "the audit chain": every replica's
/// writer takes it for the whole append transaction.
pub const CHAIN_LOCK: i64 = 0x6175_6469_7463_6861;

const COLUMNS: &str = "seq, occurred_at, actor_kind, actor_id, action, project_id, target_type, target_id, outcome, \
                       client_ip, request_id, details, key_id, prev_hmac, row_hmac";

fn hash32(v: impl AsRef<[u8]>) -> [u8; 32] {
    // Column CHECKs guarantee 32 bytes; a tampered length becomes zeros,
    // which can never verify, so the verifier reports the row.
    <[u8; 32]>::try_from(v.as_ref()).unwrap_or([0u8; 32])
}

/// Borrow a row's fields without copying (the verifier's hot path).
pub fn view(r: &Row) -> RowView<'_> {
    RowView {
        seq: r.get(0),
        occurred_at: r.get(1),
        actor_kind: r.get(2),
        actor_id: r.get(3),
        action: r.get(4),
        project_id: r.get(5),
        target_type: r.get(6),
        target_id: r.get(7),
        outcome: r.get(8),
        client_ip: r.get(9),
        request_id: r.get(10),
        details: r.get(11),
        key_id: r.get(12),
        prev_hmac: hash32(r.get::<_, &[u8]>(13)),
        row_hmac: hash32(r.get::<_, &[u8]>(14)),
    }
}

pub fn from_row(r: &Row) -> AuditRow {
    AuditRow {
        seq: r.get(0),
        occurred_at: r.get(1),
        actor_kind: r.get(2),
        actor_id: r.get(3),
        action: r.get(4),
        project_id: r.get(5),
        target_type: r.get(6),
        target_id: r.get(7),
        outcome: r.get(8),
        client_ip: r.get(9),
        request_id: r.get(10),
        details: r.get(11),
        key_id: r.get(12),
        prev_hmac: hash32(r.get::<_, Vec<u8>>(13)),
        row_hmac: hash32(r.get::<_, Vec<u8>>(14)),
    }
}

pub async fn lock_chain(c: &impl GenericClient) -> Result<(), StoreError> {
    c.execute(LOCK_SQL, &[&CHAIN_LOCK]).await?;
    Ok(())
}

/// (seq, row_hmac) of the newest row.
pub async fn head(c: &impl GenericClient) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    let row = c.query_opt(HEAD_SQL, &[]).await?;
    Ok(row.map(|r| (r.get(0), hash32(r.get::<_, Vec<u8>>(1)))))
}

/// (seq, prev_hmac) of the oldest row.
pub async fn first(c: &impl GenericClient) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    let row = c.query_opt("SELECT seq, prev_hmac FROM audit_log ORDER BY seq ASC LIMIT 1", &[]).await?;
    Ok(row.map(|r| (r.get(0), hash32(r.get::<_, Vec<u8>>(1)))))
}

pub async fn row_at(c: &impl GenericClient, seq: i64) -> Result<Option<AuditRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq = $1");
    Ok(c.query_opt(&sql, &[&seq]).await?.map(|r| from_row(&r)))
}

const HEAD_SQL: &str = "SELECT seq, row_hmac FROM audit_log ORDER BY seq DESC LIMIT 1";
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";

/// Closes the connection (so PostgreSQL rolls the transaction back) unless
/// the append finished: an error or a cancelled future never hands a
/// connection with an open transaction back to the pool.
struct OpenTx(Option<Object>);

impl Drop for OpenTx {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

/// One append transaction in two round trips instead of seven: BEGIN, the
/// chain lock and the head read go out together (tokio-postgres pipelines
/// requests polled together, and PostgreSQL runs them in order), then the
/// INSERT and COMMIT go out together. If the INSERT fails, PostgreSQL turns
/// the COMMIT into a rollback and the INSERT's error is what we return, so
/// nothing is reported committed that was not. `build` gets the head read
/// under the lock and returns the rows that extend it.
pub async fn append<T>(
    conn: Object,
    build: impl FnOnce(Option<(i64, [u8; 32])>) -> (Vec<AuditRow>, T),
) -> Result<T, StoreError> {
    let mut guard = OpenTx(Some(conn));
    let Some(c) = guard.0.as_ref() else {
        return Err(StoreError::Unavailable("no connection".into()));
    };
    let lock = c.prepare_cached(LOCK_SQL).await?;
    let head = c.prepare_cached(HEAD_SQL).await?;
    let insert = c.prepare_cached(&INSERT_SQL).await?;
    let (begun, locked, head) =
        tokio::join!(c.batch_execute("BEGIN"), c.execute(&lock, &[&CHAIN_LOCK]), c.query_opt(&head, &[]));
    begun?;
    locked?;
    let head = head?.map(|r| (r.get(0), hash32(r.get::<_, &[u8]>(1))));
    let (rows, out) = build(head);
    if rows.is_empty() {
        c.batch_execute("COMMIT").await?;
    } else {
        let (inserted, committed) = tokio::join!(execute_insert(c, &insert, &rows), c.batch_execute("COMMIT"));
        inserted?;
        committed?;
    }
    // Finished: the connection goes back to the pool with no transaction.
    drop(guard.0.take());
    Ok(out)
}

/// Built once: it is the statement-cache key of every append.
static INSERT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO audit_log ({COLUMNS}) SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], \
         $4::text[], $5::text[], $6::uuid[], $7::text[], $8::text[], $9::text[], $10::inet[], $11::text[], \
         $12::text[], $13::text[], $14::bytea[], $15::bytea[])"
    )
});

/// One multi-row INSERT for a whole group-commit batch.
pub async fn insert_batch(c: &impl GenericClient, rows: &[AuditRow]) -> Result<(), StoreError> {
    let stmt = c.prepare_cached(&INSERT_SQL).await?;
    execute_insert(c, &stmt, rows).await
}

async fn execute_insert(
    c: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.occurred_at).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.actor_kind.as_str()).collect();
    let actor: Vec<Option<&str>> = rows.iter().map(|r| r.actor_id.as_deref()).collect();
    let action: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    let project: Vec<Option<Uuid>> = rows.iter().map(|r| r.project_id).collect();
    let ttype: Vec<Option<&str>> = rows.iter().map(|r| r.target_type.as_deref()).collect();
    let tid: Vec<Option<&str>> = rows.iter().map(|r| r.target_id.as_deref()).collect();
    let outcome: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    let ip: Vec<Option<IpAddr>> = rows.iter().map(|r| r.client_ip).collect();
    let req: Vec<Option<&str>> = rows.iter().map(|r| r.request_id.as_deref()).collect();
    let details: Vec<&str> = rows.iter().map(|r| r.details.as_str()).collect();
    let key: Vec<&str> = rows.iter().map(|r| r.key_id.as_str()).collect();
    let prev: Vec<&[u8]> = rows.iter().map(|r| r.prev_hmac.as_slice()).collect();
    let mac: Vec<&[u8]> = rows.iter().map(|r| r.row_hmac.as_slice()).collect();
    c.execute(
        stmt,
        &[&seq, &at, &kind, &actor, &action, &project, &ttype, &tid, &outcome, &ip, &req, &details, &key, &prev, &mac],
    )
    .await?;
    Ok(())
}

/// Raw rows with `from <= seq <= to` in order, streamed (constant memory).
pub async fn stream_range(
    c: &tokio_postgres::Client,
    from: i64,
    to: i64,
) -> Result<tokio_postgres::RowStream, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq");
    Ok(c.query_raw(&sql, [&from, &to]).await?)
}

/// Rows with `seq >= from` in order, streamed (constant memory).
pub async fn stream_from(
    c: &impl GenericClient,
    from: i64,
) -> Result<impl Stream<Item = Result<AuditRow, StoreError>> + '_, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq");
    let rows = c.query_raw(&sql, [&from]).await?;
    Ok(rows.map(|r| r.map(|row| from_row(&row)).map_err(StoreError::from)))
}

pub async fn bounds(c: &impl GenericClient) -> Result<Option<(i64, i64)>, StoreError> {
    let r = c.query_one("SELECT min(seq), max(seq) FROM audit_log", &[]).await?;
    let (lo, hi): (Option<i64>, Option<i64>) = (r.get(0), r.get(1));
    Ok(lo.zip(hi))
}

/// Filters for reading the log; all optional, combined with AND.
#[derive(Default, Debug, Clone)]
pub struct Filter {
    pub action: Option<String>,
    /// Prefix match on the action, e.g. `auth.` for every auth event.
    pub action_prefix: Option<String>,
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: only rows with a smaller seq (newest first).
    pub before_seq: Option<i64>,
}

pub async fn list(c: &impl GenericClient, f: &Filter, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    let prefix = f
        .action_prefix
        .as_ref()
        .map(|p| format!("{}%", p.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR action LIKE $2)
           AND ($3::text IS NULL OR actor_kind = $3) AND ($4::text IS NULL OR actor_id = $4)
           AND ($5::uuid IS NULL OR project_id = $5)
           AND ($6::timestamptz IS NULL OR occurred_at >= $6) AND ($7::timestamptz IS NULL OR occurred_at < $7)
           AND ($8::bigint IS NULL OR seq < $8)
         ORDER BY seq DESC LIMIT $9"
    );
    let rows = c
        .query(
            &sql,
            &[&f.action, &prefix, &f.actor_kind, &f.actor_id, &f.project_id, &f.from, &f.to, &f.before_seq, &limit],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Delete every row below `below` (retention). Runs inside the writer's
/// locked transaction with the prune flag the table's guard trigger honours.
/// The migration revoked DELETE even from the owner, so the owner grants it
/// to itself for this one transaction (a role without that right — the
/// application role in a split-role deployment — cannot prune at all).
pub async fn prune_below(c: &impl GenericClient, below: i64) -> Result<u64, StoreError> {
    c.batch_execute("GRANT DELETE ON audit_log TO CURRENT_USER; SET LOCAL palisade.audit_prune = 'on'").await?;
    let n = c.execute("DELETE FROM audit_log WHERE seq < $1", &[&below]).await?;
    c.batch_execute("REVOKE DELETE ON audit_log FROM CURRENT_USER").await?;
    Ok(n)
}
