//! The dispatcher's two security steps after routing: who is calling
//! (session cookie or API key, never both), and may they call this route.
//! For project routes the answer comes from `security::rbac` and nowhere
//! else; handlers receive the resolved project and never check roles.

use warp::http::{HeaderMap, StatusCode};

use super::request::{Caller, Principal, ProjectAccess};
use super::router::{Access, Route};
use crate::authz::Lookup;
use crate::bearer::{self, Presented};
use crate::error::ApiError;
use crate::security::rbac::{self, Action, Decision, Standing};
use crate::state::AppState;
use crate::store::projects::valid_slug;

pub fn bearer_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "bearer_not_allowed",
        "this endpoint needs a browser session; API keys cannot use it",
    )
}

fn ambiguous() -> ApiError {
    ApiError::bad_request("ambiguous_credentials", "send a session cookie or an API key, not both")
}

/// One answer for "not a member", "role too low", "key lacks the scope",
/// "key bound to another project" and, for everyone but global admins,
/// "no such project": the body names the action (which the caller chose)
/// and nothing about the project, so slugs cannot be enumerated.
pub fn project_forbidden(action: Action) -> ApiError {
    ApiError::forbidden("you are not allowed to do this in this project")
        .with_details(serde_json::json!({ "action": action.name() }))
}

pub fn project_archived() -> ApiError {
    ApiError::conflict("project_archived", "the project is archived; it can be read but not changed")
}

/// Resolve the caller. Public routes only ever see a session (their
/// handlers decide what a signed-in caller changes); every other route
/// accepts a session cookie or an API key, and refuses a request carrying
/// both: otherwise a low-scope key could ride along with a victim's cookie
/// (the cookie would authorize, the key would waive CSRF).
pub async fn principal(
    state: &AppState,
    route: &Route,
    headers: &HeaderMap,
    client_ip: std::net::IpAddr,
) -> Result<Principal, ApiError> {
    let session = |r: Result<Option<_>, ApiError>| match r {
        Ok(Some(s)) => Ok(Principal::Session(s)),
        Ok(None) => Ok(Principal::Anonymous),
        Err(e) => Err(e),
    };
    if route.access == Access::Agent {
        return agent_principal(state, headers).await;
    }
    if route.access == Access::Public {
        // A public route must keep working (login, health) even when the
        // session store hiccups.
        return Ok(session(state.authenticate(headers).await).unwrap_or(Principal::Anonymous));
    }
    match bearer::presented(headers) {
        Presented::Nothing => session(state.authenticate(headers).await),
        _ if crate::authn::cookie(headers, state.cookies.session).is_some() => Err(ambiguous()),
        Presented::Malformed => Err(bearer::invalid_key()),
        Presented::Key(key) => Ok(Principal::ApiKey(state.authenticate_key(key, client_ip).await?)),
    }
}

/// Apply the route's access rule. Returns the resolved project for project
/// routes.
pub async fn authorize(
    state: &AppState,
    access: Access,
    params: &[(&'static str, String)],
    principal: &Principal,
) -> Result<Option<ProjectAccess>, ApiError> {
    let caller = match (access, principal) {
        (Access::Public, _) => return Ok(None),
        (Access::Agent, Principal::Agent(_)) => return Ok(None),
        (Access::Agent, _) | (_, Principal::Agent(_)) => return Err(ApiError::unauthenticated()),
        (_, Principal::Anonymous) => return Err(ApiError::unauthenticated()),
        (Access::User | Access::GlobalAdmin, Principal::ApiKey(_)) => return Err(bearer_not_allowed()),
        (_, p) => p.caller().ok_or_else(ApiError::unauthenticated)?,
    };
    match access {
        Access::Public | Access::User | Access::Agent => Ok(None),
        Access::GlobalAdmin if caller.is_admin => Ok(None),
        Access::GlobalAdmin => Err(ApiError::forbidden("this action needs a global admin")),
        Access::Listing(scope) => match principal.key_scopes() {
            Some(granted) if !rbac::scopes_cover(granted, scope) => {
                Err(ApiError::forbidden("the API key does not hold the scope this endpoint needs")
                    .with_details(serde_json::json!({ "required_scope": scope.name() })))
            }
            _ => Ok(None),
        },
        Access::Project(action) => {
            let slug = params.iter().find(|(k, _)| *k == "slug").map(|(_, v)| v.as_str()).unwrap_or("");
            project_access(state, slug, caller, principal, action).await.map(Some)
        }
    }
}

/// An agent's bearer token, for the long-poll transport. Refusals carry
/// the codes the z4j agent classifies (401: bad token; 403
/// `project_inactive`: archived project), so it backs off correctly.
async fn agent_principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = super::ws_agent::bearer(headers).ok_or_else(ApiError::unauthenticated)?;
    match super::ws_agent::authenticate_agent(state, token).await? {
        Some((a, false)) => {
            Ok(Principal::Agent(crate::fleet::AgentIdentity { agent_id: a.id, project_id: a.project_id, name: a.name }))
        }
        Some((_, true)) => {
            Err(ApiError::new(warp::http::StatusCode::FORBIDDEN, "project_inactive", "the agent's project is archived"))
        }
        None => Err(ApiError::unauthenticated()),
    }
}

pub(crate) async fn project_access(
    state: &AppState,
    slug: &str,
    caller: Caller,
    principal: &Principal,
    action: Action,
) -> Result<ProjectAccess, ApiError> {
    // Global admins may learn that a slug does not exist (they can list
    // every project anyway); everyone else gets the non-member answer.
    let unknown = || if caller.is_admin { ApiError::not_found() } else { project_forbidden(action) };
    if !valid_slug(slug) {
        return Err(unknown());
    }
    let (project, role) = match state.project_lookup(slug, caller.user_id).await? {
        Lookup::NoProject => return Err(unknown()),
        Lookup::Found(p, r) => (p, r),
    };
    if let Principal::ApiKey(k) = principal {
        if k.bound_project().is_some_and(|bound| bound != project.id) {
            return Err(project_forbidden(action));
        }
    }
    let standing = Standing::of(caller.is_admin, role);
    match (rbac::decide(standing, principal.key_scopes(), action, project.archived), standing) {
        (Decision::Allow, Some(standing)) => Ok(ProjectAccess { project, standing }),
        (Decision::Archived, _) => Err(project_archived()),
        _ => Err(project_forbidden(action)),
    }
}
