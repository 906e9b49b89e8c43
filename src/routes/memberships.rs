//! Project memberships: list, add an existing user, change a role, remove.
//! A project never loses its last admin through this API (409).

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::ApiError;
use crate::security::email;
use crate::security::rbac::Role;
use crate::store::memberships::{self, Membership};
use crate::store::{users, StoreError};

/// Roles arrive as strings; an unknown one is a validation error naming
/// the allowed values (never echoing the input).
pub fn parse_role(raw: &str) -> Result<Role, ApiError> {
    raw.parse().map_err(|_| ApiError::validation("role must be one of viewer, auditor, operator, admin"))
}

fn last_admin() -> ApiError {
    ApiError::conflict("last_admin", "a project must keep at least one admin; promote someone else first")
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project = req.project()?.project.clone();
    let conn = req.state.db.conn().await?;
    let items = memberships::list(&conn, project.id).await?;
    Ok(reply::ok(&json!({ "memberships": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Add {
    user_id: Option<Uuid>,
    email: Option<String>,
    role: String,
}

/// Add an existing user by id or email. Someone without an account is
/// invited instead (`POST …/invitations`).
pub async fn add(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project = req.project()?.project.clone();
    let body: Add = req.json()?;
    let role = parse_role(&body.role)?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let user = match (body.user_id, body.email.as_deref()) {
        (Some(id), None) => users::by_id(&tx, id).await?,
        (None, Some(raw)) => {
            let e = email::normalize(raw).map_err(|_| ApiError::validation("email address is not valid"))?;
            users::find_credentials(&tx, &e).await?.map(|(u, _)| u)
        }
        _ => return Err(ApiError::validation("give exactly one of user_id or email")),
    };
    let user = user.ok_or_else(|| {
        ApiError::new(
            warp::http::StatusCode::NOT_FOUND,
            "user_not_found",
            "no user with this id or email; invite them instead",
        )
    })?;
    let id = match memberships::insert(&tx, project.id, user.id, role, st.clock.now()).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("already_member", "this user is already a member of the project"))
        }
        Err(e) => return Err(e.into()),
    };
    let membership = memberships::get(&tx, project.id, id).await?.ok_or_else(ApiError::internal)?;
    st.audit(
        req.audit("membership.granted")
            .target("membership", id)
            .project(project.id)
            .details(json!({ "user_id": user.id, "role": role })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_membership(user.id, project.id);
    Ok(reply::created(&json!({ "membership": membership })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    role: String,
}

/// Lock the project's admins and refuse if `m` is the only one.
async fn keep_an_admin(tx: &impl deadpool_postgres::GenericClient, m: &Membership) -> Result<(), ApiError> {
    if m.role != Role::Admin {
        return Ok(());
    }
    let admins = memberships::lock_admins(tx, m.project_id).await?;
    if admins.iter().all(|id| *id == m.id) {
        return Err(last_admin());
    }
    Ok(())
}

pub async fn update(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project = req.project()?.project.clone();
    let id = req.param_uuid("id")?;
    let body: Patch = req.json()?;
    let role = parse_role(&body.role)?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let before = memberships::get(&tx, project.id, id).await?.ok_or_else(ApiError::not_found)?;
    if role != Role::Admin {
        keep_an_admin(&tx, &before).await?;
    }
    memberships::set_role(&tx, id, role, st.clock.now()).await?;
    let after = memberships::get(&tx, project.id, id).await?.ok_or_else(ApiError::not_found)?;
    st.audit(
        req.audit("membership.updated")
            .target("membership", id)
            .project(project.id)
            .details(json!({ "user_id": before.user_id, "from": before.role, "to": role })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_membership(before.user_id, project.id);
    Ok(reply::ok(&json!({ "membership": after })))
}

pub async fn remove(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project = req.project()?.project.clone();
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let before = memberships::get(&tx, project.id, id).await?.ok_or_else(ApiError::not_found)?;
    keep_an_admin(&tx, &before).await?;
    memberships::delete(&tx, id).await?;
    st.audit(
        req.audit("membership.revoked")
            .target("membership", id)
            .project(project.id)
            .details(json!({ "user_id": before.user_id, "role": before.role })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_membership(before.user_id, project.id);
    Ok(reply::no_content())
}
