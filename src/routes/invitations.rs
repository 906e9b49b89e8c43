//! Invitations: an admin invites an email address with a role; the invitee
//! previews and accepts with a one-time token (256 bits, 72 hours, stored
//! as an HMAC). A new person creates their account on accept; someone who
//! already has an account accepts while signed in as that account.
//!
//! Create, preview and accept share the per-IP `invitation` rate limit.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::auth::password_ok;
use super::memberships::parse_role;
use super::reply;
use super::request::{Principal, Req};
use super::router::Response;
use crate::actors::limiter::Bucket;
use crate::audit::Outcome;
use crate::error::{internal, ApiError};
use crate::outbound::mail;
use crate::security::keys::Purpose;
use crate::security::{email, tokens};
use crate::store::invitations::{self, Invitation, NewInvitation};
use crate::store::{memberships, users, StoreError};

pub const TTL_HOURS: i64 = 72;

fn invalid_or_expired() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_or_expired", "this invitation link is invalid, used or expired")
}

fn view(inv: &Invitation, now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({
        "id": inv.id, "email": inv.email, "role": inv.role, "invited_by": inv.invited_by,
        "created_at": inv.created_at, "expires_at": inv.expires_at, "accepted_at": inv.accepted_at,
        "revoked_at": inv.revoked_at, "status": inv.status(now),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    email: String,
    role: String,
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::Invitation, req.client_ip).await?;
    let project = req.project()?.project.clone();
    let body: Create = req.json()?;
    let address = email::normalize(&body.email).map_err(|_| ApiError::validation("email address is not valid"))?;
    let role = parse_role(&body.role)?;
    let inviter = req.caller()?.user_id;
    let token = tokens::mint();
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    if let Some((user, _)) = users::find_credentials(&tx, &address).await? {
        if memberships::role_of(&tx, project.id, user.id).await?.is_some() {
            return Err(ApiError::conflict("already_member", "this person is already a member of the project"));
        }
    }
    let superseded = invitations::supersede(&tx, project.id, &address, now).await?;
    let inv = invitations::insert(
        &tx,
        &NewInvitation {
            project_id: project.id,
            email: &address,
            role,
            token_hash: &st.keys.key(Purpose::Invitation).mac(token.as_bytes()),
            invited_by: inviter,
            expires_at: now + chrono::Duration::hours(TTL_HOURS),
        },
        now,
    )
    .await?;
    st.audit(
        req.audit("invitation.created")
            .target("invitation", inv.id)
            .project(project.id)
            .details(json!({ "email": address, "role": role, "superseded": superseded, "mailed": st.mail.enabled() })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;

    let link = mail::token_link(&st.config.public_url, "invite", &token);
    let mut out = json!({ "invitation": view(&inv, now), "email_sent": false });
    if st.mail.enabled() {
        let name = project_name(st, project.id).await?;
        let sent = st.mail.send(&address, &mail::invitation(&name, role.as_str(), &link, TTL_HOURS)).await;
        let ev = req.audit("invitation.email_delivery").target("invitation", inv.id).project(project.id);
        let ev = match &sent {
            Ok(()) => ev,
            Err(e) => {
                tracing::warn!(error = %e, invitation = %inv.id, "invitation mail was not delivered");
                ev.outcome(Outcome::Failure).details(json!({ "reason": "delivery_failed" }))
            }
        };
        st.audit(ev).await?;
        out["email_sent"] = json!(sent.is_ok());
        if sent.is_ok() {
            return Ok(reply::created(&out));
        }
    }
    // No mail (not configured, or delivery failed): this response is the
    // only place the link will ever appear.
    out["accept_url"] = json!(link);
    out["token"] = json!(token);
    Ok(reply::created(&out))
}

async fn project_name(st: &crate::state::AppState, id: uuid::Uuid) -> Result<String, ApiError> {
    let conn = st.db.conn().await?;
    Ok(crate::store::projects::by_id(&conn, id).await?.map(|p| p.name).unwrap_or_default())
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project = req.project()?.project.clone();
    let now = req.state.clock.now();
    let conn = req.state.db.conn().await?;
    let items: Vec<_> = invitations::list(&conn, project.id).await?.iter().map(|i| view(i, now)).collect();
    Ok(reply::ok(&json!({ "invitations": items })))
}

pub async fn revoke(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project = req.project()?.project.clone();
    let id = req.param_uuid("id")?;
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let inv = invitations::get(&tx, project.id, id).await?.ok_or_else(ApiError::not_found)?;
    if inv.status(now) != "pending" {
        return Err(ApiError::conflict("not_pending", "the invitation was already accepted, revoked or has expired"));
    }
    invitations::revoke(&tx, id, now).await?;
    st.audit(
        req.audit("invitation.revoked")
            .target("invitation", id)
            .project(project.id)
            .details(json!({ "email": inv.email })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Preview {
    token: String,
}

fn token_hash(req: &Req, token: &str) -> Option<[u8; 32]> {
    tokens::plausible(token).then(|| req.state.keys.key(Purpose::Invitation).mac(token.as_bytes()))
}

/// What the invitation is for, so the page can show it before the invitee
/// commits. Every unusable token gets the same 404.
pub async fn preview(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::Invitation, req.client_ip).await?;
    let body: Preview = req.json()?;
    let hash = token_hash(&req, &body.token).ok_or_else(invalid_or_expired)?;
    let conn = st.db.conn().await?;
    let (inv, slug, name) =
        invitations::find_usable(&conn, &hash, st.clock.now(), false).await?.ok_or_else(invalid_or_expired)?;
    // The token holder learns whether to sign in or to create an account;
    // that is about the invited address only, which the link already names.
    let account_exists = users::find_credentials(&conn, &inv.email).await?.is_some();
    Ok(reply::ok(&json!({
        "email": inv.email, "role": inv.role, "expires_at": inv.expires_at,
        "project": { "slug": slug, "name": name }, "account_exists": account_exists,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    token: String,
    password: Option<String>,
    display_name: Option<String>,
}

/// Accept an invitation.
///
/// - Signed in (session cookie): the session's account joins, provided its
///   email is the invited one. The route is not CSRF-exempt, so a session
///   caller must send the CSRF header: another site cannot make a
///   signed-in victim join a project.
/// - Not signed in: a new account is created with `password` (the policy
///   applies) and `display_name`; if the invited address already has an
///   account, the answer is 409 `account_exists` (sign in, then accept).
///
/// No session is issued; the new user signs in normally.
pub async fn accept(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::Invitation, req.client_ip).await?;
    let body: Accept = req.json()?;
    let display_name = body.display_name.clone().unwrap_or_default();
    if display_name.chars().count() > 200 {
        return Err(ApiError::validation("display_name is longer than 200 characters"));
    }
    let hash = token_hash(&req, &body.token).ok_or_else(invalid_or_expired)?;
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let (inv, slug, _) = invitations::find_usable(&tx, &hash, now, true).await?.ok_or_else(invalid_or_expired)?;
    let (user, created) = match &req.principal {
        Principal::Session(s) => {
            if s.session.user.email != inv.email {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invitation_for_other_account",
                    "this invitation is for another email address; sign out to accept it",
                ));
            }
            if memberships::role_of(&tx, inv.project_id, s.session.user.id).await?.is_some() {
                return Err(ApiError::conflict("already_member", "you are already a member of this project"));
            }
            (s.session.user.clone(), false)
        }
        _ => {
            if users::find_credentials(&tx, &inv.email).await?.is_some() {
                return Err(ApiError::conflict(
                    "account_exists",
                    "an account with this email exists; sign in and accept the invitation again",
                ));
            }
            let password = body.password.as_deref().ok_or_else(|| ApiError::validation("missing field `password`"))?;
            password_ok(st, password, Some(&inv.email))?;
            let phc = st.hasher.hash(password).await.map_err(internal("hashing an invitee's password"))?;
            let new =
                users::NewUser { email: &inv.email, display_name: &display_name, password_hash: &phc, is_admin: false };
            let user = match users::insert(&tx, &new, now).await {
                Ok(u) => u,
                Err(StoreError::Conflict(_)) => {
                    return Err(ApiError::conflict("account_exists", "an account with this email exists"))
                }
                Err(e) => return Err(e.into()),
            };
            (user, true)
        }
    };
    if !invitations::mark_accepted(&tx, inv.id, user.id, now).await? {
        return Err(invalid_or_expired());
    }
    let membership = match memberships::insert(&tx, inv.project_id, user.id, inv.role, now).await {
        Ok(id) => id,
        // Lost a race with an admin adding the same person directly.
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("already_member", "you are already a member of this project"))
        }
        Err(e) => return Err(e.into()),
    };
    let mut ev = req
        .audit("invitation.accepted")
        .target("invitation", inv.id)
        .project(inv.project_id)
        .details(json!({ "user_id": user.id, "role": inv.role, "new_account": created }));
    if created {
        ev = ev.user(user.id);
    }
    st.audit(ev).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_membership(user.id, inv.project_id);
    Ok(reply::created(&json!({
        "user": user, "membership_id": membership, "project": { "slug": slug }, "role": inv.role,
        "new_account": created,
    })))
}
