//! The `password_reset_tokens` table. Tokens are stored as HMACs, claimed
//! atomically (one UPDATE both checks and consumes), and never reusable.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;

/// At most this many unexpired, unused tokens per account, so a flood of
/// requests for one address cannot fill the table or the victim's inbox.
pub const MAX_OPEN_PER_USER: i64 = 3;

/// Issue a token for the active account with this email, if there is one.
///
/// This is one statement whatever the answer: the same index lookup and the
/// same round trip run for unknown addresses as for known ones, which is
/// what keeps the request endpoint's work (and so its timing) independent
/// of whether the account exists. Returns the user id when a row was
/// written.
pub async fn issue_for_email(
    c: &impl GenericClient,
    email: &str,
    token_hash: &[u8],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<IpAddr>,
) -> Result<Option<Uuid>, StoreError> {
    let row = c
        .query_opt(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, created_at, expires_at, requested_ip)
             SELECT $1, u.id, $3, $4, $5, $6 FROM users u
             WHERE u.email = $2 AND u.is_active
               AND (SELECT count(*) FROM password_reset_tokens t
                    WHERE t.user_id = u.id AND t.consumed_at IS NULL AND t.expires_at > $4) < $7
             RETURNING user_id",
            &[&Uuid::new_v4(), &email, &token_hash, &now, &expires_at, &ip, &MAX_OPEN_PER_USER],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Consume the token if it is valid; returns its user. Inside the caller's
/// transaction, so a rejected new password (rolled back) leaves the token
/// usable.
pub async fn claim(c: &impl GenericClient, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<Uuid>, StoreError> {
    let row = c
        .query_opt(
            "UPDATE password_reset_tokens SET consumed_at = $2
             WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > $2 RETURNING user_id",
            &[&token_hash, &now],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// After a successful reset, every other outstanding link of the user dies.
pub async fn consume_all_for_user(
    c: &impl GenericClient,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(c.execute(
        "UPDATE password_reset_tokens SET consumed_at = $2 WHERE user_id = $1 AND consumed_at IS NULL",
        &[&user_id, &now],
    )
    .await?)
}
