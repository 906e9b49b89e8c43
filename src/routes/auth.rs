//! Sign-in, sign-out, the current user, password change and sessions.

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::http::StatusCode;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::limiter::Bucket;
use crate::actors::lockout::{EmailKey, LockoutMsg};
use crate::audit::{AuditEvent, Outcome};
use crate::authn::IssuedSession;
use crate::error::{internal, ApiError};
use crate::security::email;
use crate::security::keys::Purpose;
use crate::state::AppState;
use crate::store::users::{self, User, UserPatch};
use crate::store::{sessions, StoreError};

const ACTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longer inputs are refused without hashing: Argon2 pre-hashes its input,
/// but there is no reason to spend even that on a megabyte "password".
const MAX_PASSWORD_BYTES: usize = 1024;

/// Apply the password policy; the error names the rule, never the password.
pub fn password_ok(st: &AppState, password: &str, email: Option<&str>) -> Result<(), ApiError> {
    st.policy.check(password, email).map_err(|v| ApiError::weak_password(v.rule(), v.message()))
}

pub fn login_response(st: &AppState, user: &User, issued: &IssuedSession, status: StatusCode) -> Response {
    let body = json!({ "user": user, "session": { "id": issued.id } });
    reply::with_cookies(reply::json(status, &body), &st.cookies.set(issued))
}

pub fn lockout_key(st: &AppState, normalized_or_raw: &str) -> EmailKey {
    st.keys.key(Purpose::LockoutEmail).mac(normalized_or_raw.as_bytes())
}

/// Emails that do not parse are still counted (lower-cased, trimmed), so a
/// malformed address is locked exactly like an unknown valid one.
fn canonical_login_email(raw: &str) -> String {
    email::normalize(raw).unwrap_or_else(|_| raw.trim().to_lowercase().chars().take(254).collect())
}

type LockReply = ractor::RpcReplyPort<Result<Option<u64>, StoreError>>;

async fn lockout(
    st: &AppState,
    key: EmailKey,
    kind: fn(EmailKey, LockReply) -> LockoutMsg,
) -> Result<Option<u64>, ApiError> {
    Ok(st.lockout.call(|reply| kind(key, reply), ACTOR_TIMEOUT).await??)
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

pub async fn login(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::Login, req.client_ip).await?;
    let body: Login = req.json()?;
    let email = canonical_login_email(&body.email);
    let key = lockout_key(st, &email);
    let fail_event = |reason: &str| {
        req.audit("auth.login").outcome(Outcome::Failure).details(json!({ "email": email, "reason": reason }))
    };

    // The lock is checked before any hashing, and answers the same for
    // accounts that exist and accounts that do not.
    if let Some(secs) = lockout(st, key, |key, reply| LockoutMsg::Check { key, reply }).await? {
        st.audit(fail_event("locked").outcome(Outcome::Denied)).await?;
        return Err(ApiError::account_locked(secs));
    }
    let conn = st.db.conn().await?;
    let creds = users::find_credentials(&conn, &email).await?;
    drop(conn);
    let too_long = body.password.len() > MAX_PASSWORD_BYTES;
    let verified = match &creds {
        Some((user, phc)) if !too_long => {
            st.hasher.verify(&body.password, phc).await.map_err(internal("password verify"))? && user.is_active
        }
        // Unknown account: same Argon2 cost as a real check, so timing does
        // not reveal whether the email is registered.
        _ => st.hasher.verify_dummy(&body.password).await.map_err(internal("password verify"))?,
    };
    let Some((user, phc)) = creds.filter(|_| verified) else {
        let locked = lockout(st, key, |key, reply| LockoutMsg::Failure { key, reply }).await?;
        st.audit(fail_event("invalid_credentials")).await?;
        if locked.is_some() {
            st.audit(
                AuditEvent::new("auth.lockout")
                    .ip(Some(req.client_ip))
                    .request(&req.request_id)
                    .details(json!({ "email": email })),
            )
            .await?;
            crate::notify::triggers::after_commit(st, |c, now| {
                let email = email.clone();
                Box::pin(async move { crate::notify::triggers::lockout(c, &email, now).await })
            })
            .await;
        }
        return Err(ApiError::invalid_credentials());
    };
    st.lockout.call(|reply| LockoutMsg::Reset { key, reply }, ACTOR_TIMEOUT).await??;
    let rehash = if crate::security::password::needs_rehash(&phc) {
        Some(st.hasher.hash(&body.password).await.map_err(internal("rehash"))?)
    } else {
        None
    };
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    users::record_login(&tx, user.id, st.clock.now(), rehash.as_deref()).await?;
    let issued = st.issue_session(&tx, user.id, Some(req.client_ip), req.user_agent()).await?;
    st.audit(req.audit("auth.login").user(user.id).details(json!({ "session_id": issued.id }))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(login_response(st, &user, &issued, StatusCode::OK))
}

pub async fn logout(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    sessions::revoke(&tx, s.session.info.id, "logout", st.clock.now()).await?;
    st.audit(req.audit("auth.logout").target("session", s.session.info.id)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget(&s.token_hash);
    Ok(reply::with_cookies(reply::no_content(), &st.cookies.clear()))
}

pub async fn me(req: Req) -> Result<Response, ApiError> {
    let s = req.session()?;
    Ok(reply::ok(&json!({
        "user": s.session.user,
        "session": { "id": s.session.info.id, "expires_at": s.session.info.expires_at },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MePatch {
    display_name: Option<String>,
}

pub async fn update_me(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let body: MePatch = req.json()?;
    if body.display_name.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(ApiError::validation("display_name is longer than 200 characters"));
    }
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let patch = UserPatch { display_name: body.display_name, ..Default::default() };
    let user = users::update(&tx, s.session.user.id, &patch, st.clock.now()).await?.ok_or_else(ApiError::not_found)?;
    st.audit(req.audit("user.updated").target("user", user.id).details(json!({ "fields": ["display_name"] }))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(user.id);
    Ok(reply::ok(&json!({ "user": user })))
}

pub async fn policy(req: Req) -> Result<Response, ApiError> {
    Ok(reply::ok(&req.state.policy.describe()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

pub async fn change_password(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let user = &s.session.user;
    let body: ChangePassword = req.json()?;
    // A stolen session must not become a way to brute-force the password:
    // wrong current passwords count toward the same lockout as logins.
    let key = lockout_key(st, &user.email);
    if let Some(secs) = lockout(st, key, |key, reply| LockoutMsg::Check { key, reply }).await? {
        return Err(ApiError::account_locked(secs));
    }
    let conn = st.db.conn().await?;
    let phc = users::password_hash(&conn, user.id).await?.ok_or_else(ApiError::unauthenticated)?;
    drop(conn);
    let ok = body.current_password.len() <= MAX_PASSWORD_BYTES
        && st.hasher.verify(&body.current_password, &phc).await.map_err(internal("password verify"))?;
    if !ok {
        lockout(st, key, |key, reply| LockoutMsg::Failure { key, reply }).await?;
        st.audit(req.audit("auth.password_change_failed").outcome(Outcome::Failure)).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_current_password",
            "the current password is not correct",
        ));
    }
    password_ok(st, &body.new_password, Some(&user.email))?;
    let new_phc = st.hasher.hash(&body.new_password).await.map_err(internal("hashing a new password"))?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let now = st.clock.now();
    users::set_password(&tx, user.id, &new_phc, now).await?;
    // Every session of the user ends, this one included; the caller gets a
    // fresh session (rotation), everyone else must sign in again.
    let revoked = sessions::revoke_all_for_user(&tx, user.id, None, "password_changed", now).await?;
    let issued = st.issue_session(&tx, user.id, Some(req.client_ip), req.user_agent()).await?;
    st.audit(
        req.audit("auth.password_changed")
            .target("user", user.id)
            .details(json!({ "sessions_revoked": revoked.len() })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(user.id);
    let conn = st.db.conn().await?;
    let fresh = users::by_id(&conn, user.id).await?.ok_or_else(ApiError::unauthenticated)?;
    Ok(login_response(st, &fresh, &issued, StatusCode::OK))
}

pub async fn list_sessions(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let conn = st.db.conn().await?;
    let rows = sessions::list_active(&conn, s.session.user.id, st.clock.now()).await?;
    let current = s.session.info.id;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let is_current = r.id == current;
            json!({ "id": r.id, "created_at": r.created_at, "last_seen_at": r.last_seen_at,
                    "expires_at": r.expires_at, "ip": r.ip, "user_agent": r.user_agent, "is_current": is_current })
        })
        .collect();
    Ok(reply::ok(&json!({ "sessions": items })))
}

pub async fn revoke_others(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let revoked =
        sessions::revoke_all_for_user(&tx, s.session.user.id, Some(s.session.info.id), "revoke_others", st.clock.now())
            .await?;
    st.audit(req.audit("auth.other_sessions_revoked").details(json!({ "count": revoked.len() }))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(s.session.user.id);
    Ok(reply::ok(&json!({ "revoked": revoked.len() })))
}

pub async fn revoke_one(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let s = req.session()?;
    let id: Uuid = req.param_uuid("id")?;
    let conn = st.db.conn().await?;
    let mine = sessions::list_active(&conn, s.session.user.id, st.clock.now()).await?.iter().any(|r| r.id == id);
    drop(conn);
    if !mine {
        return Err(ApiError::not_found());
    }
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    sessions::revoke(&tx, id, "user_revoke", st.clock.now()).await?;
    st.audit(req.audit("auth.session_revoked").target("session", id)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(s.session.user.id);
    Ok(reply::no_content())
}
