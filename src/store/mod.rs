//! PostgreSQL access: a deadpool pool, plain SQL migrations from `schema/`,
//! the embedded default cluster, and one small repository module per table
//! family. Repositories take a `&Db` (or a transaction) and return
//! `StoreError`; they hold no state of their own.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod commands;
pub mod embedded;
pub mod ingest;
pub mod invitations;
pub mod lockouts;
pub mod memberships;
pub mod migrate;
pub mod notify_channels;
pub mod notify_outbox;
pub mod notify_rules;
pub mod password_resets;
pub mod projects;
pub mod sessions;
pub mod setup;
pub mod tasks;
pub mod tls;
pub mod users;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use self::tls::PgTls;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        if let Some(db) = e.as_db_error() {
            if db.code() == &SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(db.constraint().unwrap_or("unknown").to_string());
            }
        }
        if e.is_closed() {
            return StoreError::Unavailable(e.to_string());
        }
        // The driver's Display is just "db error"; keep the server's message
        // and SQLSTATE so the log line says what actually went wrong.
        match e.as_db_error() {
            Some(db) => StoreError::Db(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None => StoreError::Db(with_causes(&e)),
        }
    }
}

/// "error performing TLS handshake" alone does not say which certificate
/// check failed; the causes do.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(b) => StoreError::from(b),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Shared handle to the connection pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: PgTls,
}

impl Db {
    /// Build a pool from a `postgres://` URL or a key=value string. Nothing
    /// is dialled until the first query, so this never blocks start-up.
    pub fn connect(url: &str, max_size: usize) -> Result<Db, StoreError> {
        Db::connect_with_ca(url, max_size, None)
    }

    /// Like `connect`; with `sslmode=require` in the URL the server's
    /// certificate is verified against `ca` (PEM) or the system's roots.
    pub fn connect_with_ca(url: &str, max_size: usize, ca: Option<&std::path::Path>) -> Result<Db, StoreError> {
        let pg: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| StoreError::BadUrl(e.to_string()))?;
        let tls = if pg.get_ssl_mode() == SslMode::Require { PgTls::verified(ca)? } else { PgTls::plaintext() };
        Db::build(pg, max_size, tls)
    }

    /// A pool over these settings, in plaintext (the embedded cluster's
    /// Unix socket, tools on loopback).
    pub fn from_config(pg: tokio_postgres::Config, max_size: usize) -> Result<Db, StoreError> {
        Db::build(pg, max_size, PgTls::plaintext())
    }

    fn build(mut pg: tokio_postgres::Config, max_size: usize, tls: PgTls) -> Result<Db, StoreError> {
        if pg.get_application_name().is_none() {
            pg.application_name("palisade");
        }
        pg.connect_timeout(Duration::from_secs(5));
        if !tls.is_tls() {
            pg.ssl_mode(SslMode::Disable);
        }
        let mgr =
            Manager::from_config(pg.clone(), tls.clone(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        Ok(Db { pool, config: pg, tls })
    }

    /// A separate pool to the same database. Actors that routes wait on
    /// while holding a connection (the audit writer) must not draw from the
    /// routes' pool, or a burst of requests could hold every connection
    /// while waiting for an actor that is waiting for a connection.
    /// Connection settings, for tools that need a connection of their own
    /// outside the pool (e.g. on a dedicated runtime).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn sibling(&self, max_size: usize) -> Result<Db, StoreError> {
        Db::build(self.config.clone(), max_size, self.tls.clone())
    }

    /// Whether connections are TLS (verified) rather than plaintext.
    pub fn is_tls(&self) -> bool {
        self.tls.is_tls()
    }

    /// One connection outside the pool, with the pool's TLS settings; its
    /// driver runs on the current runtime until the client is dropped.
    pub async fn dedicated(&self) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
        let (client, conn) = self.config.connect(self.tls.clone()).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((client, driver))
    }

    pub async fn conn(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Readiness probe: one round trip with a short deadline.
    pub async fn ping(&self) -> bool {
        let probe = async {
            let c = self.conn().await?;
            c.simple_query("SELECT 1").await?;
            Ok::<_, StoreError>(())
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(())))
    }

    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}
