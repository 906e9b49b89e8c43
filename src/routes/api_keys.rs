//! Personal API keys: list, create (the key is shown once), revoke.
//!
//! These routes take a browser session only (`Access::User`): a key cannot
//! list, mint or revoke keys, so a leaked key cannot make itself permanent
//! or breed wider ones. A key never exceeds its owner: every use is checked
//! against the owner's current role *and* the key's scopes.

use serde::Deserialize;
use serde_json::json;

use super::access::project_access;
use super::reply;
use super::request::Req;
use super::router::Response;
use crate::bearer;
use crate::error::ApiError;
use crate::security::rbac::{Action, Scope};
use crate::store::api_keys::{self, NewApiKey};
use crate::store::StoreError;

const MAX_SCOPES: usize = 32;
const MAX_DAYS: i64 = 3650;

fn catalogue() -> Vec<String> {
    Scope::catalogue().iter().map(|s| s.name()).collect()
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let caller = req.caller()?;
    let conn = req.state.db.conn().await?;
    let keys = api_keys::list_for_user(&conn, caller.user_id).await?;
    Ok(reply::ok(&json!({ "api_keys": keys, "scopes": catalogue() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    scopes: Vec<String>,
    /// Slug of the one project the key may act in.
    project: Option<String>,
    expires_in_days: Option<i64>,
}

fn parse_scopes(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_SCOPES {
        return Err(ApiError::validation(format!("at most {MAX_SCOPES} scopes")));
    }
    let mut out: Vec<String> = Vec::new();
    for s in raw {
        let scope: Scope = s
            .parse()
            .map_err(|_| ApiError::validation("unknown scope").with_details(json!({ "known_scopes": catalogue() })))?;
        if !out.contains(&scope.name()) {
            out.push(scope.name());
        }
    }
    Ok(out)
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let caller = req.caller()?;
    let body: Create = req.json()?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 200 characters, without control characters"));
    }
    let scopes = parse_scopes(&body.scopes)?;
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_DAYS).contains(&d) => Some(st.clock.now() + chrono::Duration::days(d)),
        Some(_) => return Err(ApiError::validation(format!("expires_in_days must be between 1 and {MAX_DAYS}"))),
    };
    // Binding a key to a project is itself an action in that project, so
    // the same policy decides it (non-members get the usual 403).
    let project = match &body.project {
        Some(slug) => Some(project_access(st, slug, caller, &req.principal, Action::ManageApiKeys).await?.project),
        None => None,
    };
    let key = bearer::mint();
    let prefix = bearer::visible_prefix(&key);
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let new = NewApiKey {
        user_id: caller.user_id,
        name,
        prefix: &prefix,
        key_hash: &st.api_key_hash(&key),
        scopes: &scopes,
        project_id: project.as_ref().map(|p| p.id),
        expires_at,
    };
    let row = api_keys::insert(&tx, &new, st.clock.now()).await?;
    let mut ev = req.audit("api_key.created").target("api_key", row.id).details(json!({
        "name": row.name, "prefix": row.prefix, "scopes": row.scopes, "expires_at": row.expires_at,
    }));
    if let Some(p) = &project {
        ev = ev.project(p.id);
    }
    st.audit(ev).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::created(&json!({ "api_key": row, "key": key })))
}

pub async fn revoke(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let caller = req.caller()?;
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let hash = api_keys::revoke(&tx, caller.user_id, id, st.clock.now()).await?.ok_or_else(ApiError::not_found)?;
    st.audit(req.audit("api_key.revoked").target("api_key", id)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    st.api_keys.forget(&hash);
    Ok(reply::no_content())
}
