//! First boot: `GET /api/v1/setup/status` and `POST /api/v1/setup/complete`.
//! The one-time token is printed on stderr at start-up (see `server`), kept
//! only as an HMAC, valid for an hour, and consumed by the first success.

use serde::Deserialize;
use serde_json::json;

use super::auth::{login_response, password_ok};
use super::reply;
use super::request::{Principal, Req};
use super::router::Response;
use crate::actors::limiter::Bucket;
use crate::audit::Outcome;
use crate::error::{internal, ApiError};
use crate::security::keys::Purpose;
use crate::security::{email, tokens};
use crate::store::setup::TokenCheck;
use crate::store::{setup as setup_store, users};

pub async fn status(req: Req) -> Result<Response, ApiError> {
    let conn = req.state.db.conn().await?;
    let first_boot = !users::any_exist(&conn).await?;
    // After first boot the answer is only for signed-in users: an
    // anonymous caller has no reason to probe the instance's state.
    if !first_boot && matches!(req.principal, Principal::Anonymous) {
        return Err(ApiError::unauthenticated());
    }
    Ok(reply::ok(&json!({ "first_boot": first_boot })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    token: String,
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

pub async fn complete(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::Setup, req.client_ip).await?;
    let body: Complete = req.json()?;
    let email = email::normalize(&body.email).map_err(|_| ApiError::validation("email address is not valid"))?;
    let display_name = body.display_name.unwrap_or_default();
    if display_name.chars().count() > 200 {
        return Err(ApiError::validation("display_name is longer than 200 characters"));
    }
    let token_ok = tokens::plausible(&body.token);
    let token_hash = st.keys.key(Purpose::SetupToken).mac(body.token.as_bytes());

    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(crate::store::StoreError::from)?;
    if users::any_exist(&tx).await? {
        st.audit(req.audit("setup.attempt").outcome(Outcome::Denied).details(json!({"reason": "already_initialised"})))
            .await?;
        return Err(ApiError::conflict("already_initialised", "this instance already has an administrator"));
    }
    let check =
        if token_ok { setup_store::consume(&tx, &token_hash, st.clock.now()).await? } else { TokenCheck::Wrong };
    if check != TokenCheck::Valid {
        let reason = match check {
            TokenCheck::Missing => "no_active_token",
            TokenCheck::Expired => "expired",
            _ => "invalid_token",
        };
        drop(tx);
        st.audit(req.audit("setup.attempt").outcome(Outcome::Denied).details(json!({ "reason": reason }))).await?;
        return Err(ApiError::new(
            warp::http::StatusCode::NOT_FOUND,
            "invalid_setup_token",
            "the setup token is invalid, used or expired; restart the server for a new one",
        ));
    }
    // A weak password rolls the transaction back, so the token stays usable.
    password_ok(st, &body.password, Some(&email))?;
    let phc = st.hasher.hash(&body.password).await.map_err(internal("hashing the admin password"))?;
    let user = users::insert(
        &tx,
        &users::NewUser { email: &email, display_name: &display_name, password_hash: &phc, is_admin: true },
        st.clock.now(),
    )
    .await?;
    let issued = st.issue_session(&tx, user.id, Some(req.client_ip), req.user_agent()).await?;
    st.audit(req.audit("setup.completed").user(user.id).target("user", user.id)).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(login_response(st, &user, &issued, warp::http::StatusCode::CREATED))
}
