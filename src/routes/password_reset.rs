//! Password reset by email: `request` mails a one-time link (30 minutes,
//! single use, stored as an HMAC), `confirm` sets the new password, ends
//! every session of the account and lifts its login lockout.
//!
//! `request` must not reveal whether an account exists. It answers 202
//! with the same body in every case, and does the same work in every case:
//! one token is minted and MACed, one INSERT … SELECT runs (it writes a row
//! only for an active account), one audit row is written, and the mail, if
//! any, is sent by a background task after the response. On top of that,
//! the answer is held until `RESPONSE_FLOOR` has passed since the request
//! arrived, which hides what small differences remain (a row written or
//! not, a task spawned or not) behind a constant that dwarfs them.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::auth::{lockout_key, password_ok};
use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::limiter::Bucket;
use crate::actors::lockout::LockoutMsg;
use crate::audit::Outcome;
use crate::error::{internal, ApiError};
use crate::outbound::mail;
use crate::security::keys::Purpose;
use crate::security::{email, tokens};
use crate::store::{password_resets, sessions, users, StoreError};

pub const TTL_MINUTES: i64 = 30;
pub const RESPONSE_FLOOR: Duration = Duration::from_millis(250);
const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    email: String,
}

pub async fn request(req: Req) -> Result<Response, ApiError> {
    let started = tokio::time::Instant::now();
    let st = &req.state;
    st.rate_limit(Bucket::PasswordReset, req.client_ip).await?;
    let body: Request = req.json()?;
    // A string that is not an address cannot name an account: saying so
    // reveals nothing about which accounts exist.
    let address = email::normalize(&body.email).map_err(|_| ApiError::validation("email address is not valid"))?;
    let token = tokens::mint();
    let hash = st.keys.key(Purpose::PasswordReset).mac(token.as_bytes());
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let issued = password_resets::issue_for_email(
        &tx,
        &address,
        &hash,
        now,
        now + chrono::Duration::minutes(TTL_MINUTES),
        Some(req.client_ip),
    )
    .await?;
    st.audit(req.audit("auth.password_reset_requested").details(
        json!({ "email": address, "issued": issued.is_some(), "mailed": issued.is_some() && st.mail.enabled() }),
    ))
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    if issued.is_some() && st.mail.enabled() {
        let st = st.clone();
        let link = mail::token_link(&st.config.public_url, "reset", &token);
        tokio::spawn(async move {
            if let Err(e) = st.mail.send(&address, &mail::password_reset(&link, TTL_MINUTES)).await {
                tracing::warn!(error = %e, "password reset mail was not delivered");
            }
        });
    }
    tokio::time::sleep_until(started + RESPONSE_FLOOR).await;
    Ok(reply::json(
        StatusCode::ACCEPTED,
        &json!({ "accepted": true, "message": "if an account uses this address, a reset link is on its way" }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    token: String,
    password: String,
}

fn invalid_or_expired() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_or_expired", "this reset link is invalid, used or expired")
}

pub async fn confirm(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::PasswordReset, req.client_ip).await?;
    let body: Confirm = req.json()?;
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let mut user = None;
    if tokens::plausible(&body.token) {
        let hash = st.keys.key(Purpose::PasswordReset).mac(body.token.as_bytes());
        if let Some(user_id) = password_resets::claim(&tx, &hash, now).await? {
            user = users::by_id(&tx, user_id).await?.filter(|u| u.is_active);
        }
    }
    let Some(user) = user else {
        drop(tx);
        st.audit(req.audit("auth.password_reset_failed").outcome(Outcome::Failure)).await?;
        return Err(invalid_or_expired());
    };
    // A rejected password drops the transaction, un-consuming the token.
    password_ok(st, &body.password, Some(&user.email))?;
    let phc = st.hasher.hash(&body.password).await.map_err(internal("hashing a reset password"))?;
    users::set_password(&tx, user.id, &phc, now).await?;
    let revoked = sessions::revoke_all_for_user(&tx, user.id, None, "password_reset", now).await?;
    password_resets::consume_all_for_user(&tx, user.id, now).await?;
    st.audit(
        req.audit("auth.password_reset_completed")
            .user(user.id)
            .target("user", user.id)
            .details(json!({ "sessions_revoked": revoked.len() })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(user.id);
    // The owner proved control of the mailbox: a lock an attacker caused
    // by guessing must not keep them out of their new password.
    let key = lockout_key(st, &user.email);
    st.lockout.call(|reply| LockoutMsg::Reset { key, reply }, ACTOR_TIMEOUT).await??;
    Ok(reply::ok(&json!({ "password_reset": true, "sessions_revoked": revoked.len() })))
}
