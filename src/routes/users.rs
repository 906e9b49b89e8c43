//! User management for global admins.

use serde::Deserialize;
use serde_json::json;

use super::auth::password_ok;
use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::{internal, ApiError};
use crate::security::email;
use crate::store::users::{self, UserPatch};
use crate::store::{sessions, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let page: Page = req.query()?;
    let limit = page.limit.unwrap_or(100).clamp(1, 500);
    let offset = page.offset.unwrap_or(0).max(0);
    let conn = req.state.db.conn().await?;
    let items = users::list(&conn, limit, offset).await?;
    Ok(reply::ok(&json!({ "users": items, "limit": limit, "offset": offset })))
}

pub async fn get(req: Req) -> Result<Response, ApiError> {
    let id = req.param_uuid("id")?;
    let conn = req.state.db.conn().await?;
    let user = users::by_id(&conn, id).await?.ok_or_else(ApiError::not_found)?;
    Ok(reply::ok(&json!({ "user": user })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    email: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    is_admin: bool,
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let body: Create = req.json()?;
    let email = email::normalize(&body.email).map_err(|_| ApiError::validation("email address is not valid"))?;
    if body.display_name.chars().count() > 200 {
        return Err(ApiError::validation("display_name is longer than 200 characters"));
    }
    password_ok(st, &body.password, Some(&email))?;
    let phc = st.hasher.hash(&body.password).await.map_err(internal("hashing a new user's password"))?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let new = users::NewUser {
        email: &email,
        display_name: &body.display_name,
        password_hash: &phc,
        is_admin: body.is_admin,
    };
    let user = match users::insert(&tx, &new, st.clock.now()).await {
        Ok(u) => u,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("email_taken", "a user with this email already exists"))
        }
        Err(e) => return Err(e.into()),
    };
    st.audit(
        req.audit("user.created")
            .target("user", user.id)
            .details(json!({ "email": user.email, "is_admin": user.is_admin })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::created(&json!({ "user": user })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    display_name: Option<String>,
    is_admin: Option<bool>,
    is_active: Option<bool>,
}

pub async fn update(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let id = req.param_uuid("id")?;
    let body: Patch = req.json()?;
    if body.display_name.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(ApiError::validation("display_name is longer than 200 characters"));
    }
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let before = users::by_id(&tx, id).await?.ok_or_else(ApiError::not_found)?;
    let loses_admin =
        before.is_admin && before.is_active && (body.is_admin == Some(false) || body.is_active == Some(false));
    if loses_admin && users::other_active_admins(&tx, id).await? == 0 {
        return Err(ApiError::conflict("last_admin", "cannot demote or deactivate the last active global admin"));
    }
    let patch =
        UserPatch { display_name: body.display_name.clone(), is_admin: body.is_admin, is_active: body.is_active };
    let user = users::update(&tx, id, &patch, st.clock.now()).await?.ok_or_else(ApiError::not_found)?;
    let deactivated = before.is_active && !user.is_active;
    let revoked = if deactivated {
        sessions::revoke_all_for_user(&tx, id, None, "deactivated", st.clock.now()).await?.len()
    } else {
        0
    };
    let mut changed = Vec::new();
    if body.display_name.is_some() {
        changed.push("display_name");
    }
    if body.is_admin.is_some_and(|a| a != before.is_admin) {
        changed.push("is_admin");
    }
    if body.is_active.is_some_and(|a| a != before.is_active) {
        changed.push("is_active");
    }
    st.audit(req.audit("user.updated").target("user", id).details(json!({
        "fields": changed, "is_admin": user.is_admin, "is_active": user.is_active, "sessions_revoked": revoked,
    })))
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(id);
    st.api_keys.forget_user(id);
    Ok(reply::ok(&json!({ "user": user })))
}

pub async fn delete(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let id = req.param_uuid("id")?;
    let me = req.session()?.session.user.id;
    if id == me {
        return Err(ApiError::conflict("cannot_delete_self", "you cannot delete your own account"));
    }
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let target = users::by_id(&tx, id).await?.ok_or_else(ApiError::not_found)?;
    if target.is_admin && target.is_active && users::other_active_admins(&tx, id).await? == 0 {
        return Err(ApiError::conflict("last_admin", "cannot delete the last active global admin"));
    }
    users::delete(&tx, id).await?;
    st.audit(req.audit("user.deleted").target("user", id).details(json!({ "email": target.email }))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(id);
    st.api_keys.forget_user(id);
    st.authz.forget_user(id);
    Ok(reply::no_content())
}

pub async fn revoke_sessions(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    users::by_id(&tx, id).await?.ok_or_else(ApiError::not_found)?;
    let revoked = sessions::revoke_all_for_user(&tx, id, None, "admin_revoke", st.clock.now()).await?;
    st.audit(req.audit("auth.sessions_revoked_by_admin").target("user", id).details(json!({ "count": revoked.len() })))
        .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.sessions.forget_user(id);
    Ok(reply::ok(&json!({ "revoked": revoked.len() })))
}
