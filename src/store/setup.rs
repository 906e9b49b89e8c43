//! The first-boot setup token: at most one row, stored as an HMAC.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use subtle::ConstantTimeEq;

use super::StoreError;

pub async fn replace(
    c: &impl GenericClient,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO setup_tokens (singleton, token_hash, expires_at, created_at) VALUES (true, $1, $2, $3)
         ON CONFLICT (singleton) DO UPDATE SET token_hash = EXCLUDED.token_hash,
             expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at",
        &[&token_hash, &expires_at, &now],
    )
    .await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Missing,
    Expired,
    Wrong,
}

/// Check and consume the token inside the caller's transaction. The row is
/// locked, so two racing completions cannot both succeed; it is deleted
/// only when valid (the caller commits with the new admin).
pub async fn consume(c: &impl GenericClient, token_hash: &[u8], now: DateTime<Utc>) -> Result<TokenCheck, StoreError> {
    let Some(row) =
        c.query_opt("SELECT token_hash, expires_at FROM setup_tokens WHERE singleton FOR UPDATE", &[]).await?
    else {
        return Ok(TokenCheck::Missing);
    };
    let stored: Vec<u8> = row.get(0);
    let expires_at: DateTime<Utc> = row.get(1);
    if !bool::from(stored.ct_eq(token_hash)) {
        return Ok(TokenCheck::Wrong);
    }
    if expires_at <= now {
        return Ok(TokenCheck::Expired);
    }
    c.execute("DELETE FROM setup_tokens WHERE singleton", &[]).await?;
    Ok(TokenCheck::Valid)
}

pub async fn clear(c: &impl GenericClient) -> Result<(), StoreError> {
    c.execute("DELETE FROM setup_tokens", &[]).await?;
    Ok(())
}
