//! Projects: list, create, read, update, archive, and the caller's
//! permissions in one project (which the dashboard mirrors).

use serde::Deserialize;
use serde_json::json;

use super::reply;
use super::request::{Principal, Req};
use super::router::Response;
use crate::error::ApiError;
use crate::security::rbac::{self, Role, Standing};
use crate::store::projects::{self, valid_slug, NewProject, Project};
use crate::store::StoreError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    include_archived: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn item(p: &Project, role: Option<Role>) -> serde_json::Value {
    json!({
        "id": p.id, "slug": p.slug, "name": p.name, "description": p.description,
        "created_at": p.created_at, "updated_at": p.updated_at, "archived_at": p.archived_at,
        "role": role,
    })
}

/// Global admins see every project; others see the projects they belong
/// to; a project-bound API key sees only its project.
pub async fn list(req: Req) -> Result<Response, ApiError> {
    let q: ListQuery = req.query()?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let include_archived = q.include_archived.unwrap_or(false);
    let caller = req.caller()?;
    let conn = req.state.db.conn().await?;
    let mut items: Vec<(Project, Option<Role>)> = if caller.is_admin {
        let mine = projects::list_for_user(&conn, caller.user_id, true, 100_000, 0).await?;
        projects::list_all(&conn, include_archived, limit, offset)
            .await?
            .into_iter()
            .map(|p| {
                let role = mine.iter().find(|(m, _)| m.id == p.id).map(|(_, r)| *r);
                (p, role)
            })
            .collect()
    } else {
        projects::list_for_user(&conn, caller.user_id, include_archived, limit, offset)
            .await?
            .into_iter()
            .map(|(p, r)| (p, Some(r)))
            .collect()
    };
    if let Principal::ApiKey(k) = &req.principal {
        if let Some(bound) = k.bound_project() {
            items.retain(|(p, _)| p.id == bound);
        }
    }
    let list: Vec<_> = items.iter().map(|(p, r)| item(p, *r)).collect();
    Ok(reply::ok(&json!({ "projects": list, "limit": limit, "offset": offset })))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 200 characters, without control characters"));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 2000 {
        return Err(ApiError::validation("description is longer than 2000 characters"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    slug: String,
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let body: Create = req.json()?;
    if !valid_slug(&body.slug) {
        return Err(ApiError::validation(
            "slug must be 3 to 50 characters of a-z, 0-9 and inner hyphens (e.g. \"payments-eu\")",
        ));
    }
    check_name(&body.name)?;
    check_description(&body.description)?;
    let caller = req.caller()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let new = NewProject {
        slug: &body.slug,
        name: body.name.trim(),
        description: &body.description,
        created_by: caller.user_id,
    };
    let project = match projects::insert(&tx, &new, st.clock.now()).await {
        Ok(p) => p,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("slug_taken", "a project with this slug exists"))
        }
        Err(e) => return Err(e.into()),
    };
    st.audit(
        req.audit("project.created")
            .target("project", project.id)
            .project(project.id)
            .details(json!({ "slug": project.slug, "name": project.name })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    // A request for this slug before it existed may be cached as "none".
    st.authz.forget_project(&project.slug);
    Ok(reply::created(&json!({ "project": item(&project, None) })))
}

pub async fn get(req: Req) -> Result<Response, ApiError> {
    let access = req.project()?;
    let conn = req.state.db.conn().await?;
    let project = projects::by_id(&conn, access.project.id).await?.ok_or_else(ApiError::not_found)?;
    let role = match access.standing {
        Standing::Member(r) => Some(r),
        Standing::GlobalAdmin => None,
    };
    Ok(reply::ok(&json!({ "project": item(&project, role) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    name: Option<String>,
    description: Option<String>,
    /// Only `false` (restore); archiving is `DELETE`.
    archived: Option<bool>,
}

pub async fn update(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let access = req.project()?.clone();
    let body: Patch = req.json()?;
    if let Some(n) = &body.name {
        check_name(n)?;
    }
    if let Some(d) = &body.description {
        check_description(d)?;
    }
    if body.archived == Some(true) {
        return Err(ApiError::validation("archive a project with DELETE /api/v1/projects/{slug}"));
    }
    // Renaming stays possible while archived (rbac lets UpdateProject
    // through), so an admin can label a project before restoring it.
    let restore = body.archived == Some(false);
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let now = st.clock.now();
    let id = access.project.id;
    let mut project = projects::update(&tx, id, body.name.as_deref().map(str::trim), body.description.as_deref(), now)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let restored = if restore { projects::set_archived(&tx, id, None, now).await? } else { None };
    if let Some(p) = &restored {
        project = p.clone();
    }
    let mut fields = Vec::new();
    if body.name.is_some() {
        fields.push("name");
    }
    if body.description.is_some() {
        fields.push("description");
    }
    if restored.is_some() {
        fields.push("archived");
    }
    st.audit(
        req.audit(if restored.is_some() { "project.restored" } else { "project.updated" })
            .target("project", id)
            .project(id)
            .details(json!({ "fields": fields, "name": project.name })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_project(&project.slug);
    Ok(reply::ok(&json!({ "project": item(&project, None) })))
}

/// Soft archive: the project stays readable by its members, refuses every
/// change, and its agents are disconnected (`crate::projects::on_archived`).
/// Archiving an archived project is a no-op answered the same way.
pub async fn archive(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let access = req.project()?.clone();
    let id = access.project.id;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let now = st.clock.now();
    let Some(project) = projects::set_archived(&tx, id, Some(now), now).await? else {
        return Ok(reply::no_content());
    };
    st.audit(req.audit("project.archived").target("project", id).project(id).details(json!({ "slug": project.slug })))
        .await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.authz.forget_project(&project.slug);
    crate::projects::on_archived(st, id).await;
    Ok(reply::no_content())
}

/// The actions the caller may take in this project right now, evaluated by
/// the same function the dispatcher uses (role, API-key scopes, archive
/// state), so the dashboard can mirror the server exactly.
pub async fn permissions(req: Req) -> Result<Response, ApiError> {
    let access = req.project()?;
    let actions = rbac::allowed_actions(Some(access.standing), req.principal.key_scopes(), access.project.archived);
    let (role, global_admin) = match access.standing {
        Standing::Member(r) => (Some(r), false),
        Standing::GlobalAdmin => (None, true),
    };
    Ok(reply::ok(&json!({
        "project": access.project.slug,
        "archived": access.project.archived,
        "role": role,
        "global_admin": global_admin,
        "via_api_key": matches!(req.principal, Principal::ApiKey(_)),
        "actions": actions,
    })))
}
