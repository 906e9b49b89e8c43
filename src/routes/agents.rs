//! Agent credentials: mint (shown once), list with online state, revoke.

use serde::Deserialize;
use serde_json::json;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::agent_session::close;
use crate::actors::session_registry::RegistryMsg;
use crate::error::ApiError;
use crate::security::frame;
use crate::security::tokens;
use crate::store::{agents, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    name: String,
}

fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=100).contains(&n) && !name.chars().any(char::is_control)
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project = req.project()?.project.clone();
    let body: NewAgent = req.json()?;
    let name = body.name.trim().to_string();
    if !valid_name(&name) {
        return Err(ApiError::validation("name must be 1 to 100 printable characters"));
    }
    // Same shape as the z4j brain's tokens (43 url-safe characters) and
    // stored only as the protocol's HMAC, so a dump cannot impersonate it.
    let token = tokens::mint();
    let hash = frame::agent_token_hash(st.config.secret.expose(), &token);
    let caller = req.caller()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let agent = match agents::insert(&tx, project.id, &name, &hash, Some(caller.user_id), st.clock.now()).await {
        Ok(a) => a,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("agent_name_taken", "an agent with this name already exists in the project"))
        }
        Err(e) => return Err(e.into()),
    };
    st.audit(
        req.audit("agent.created").project(project.id).target("agent", agent.id).details(json!({ "name": agent.name })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let key = frame::derive_project_key(st.config.secret.expose(), project.id);
    let hmac_secret = frame::hmac_secret_b64(&key);
    let brain_url = st.config.public_url.as_str().trim_end_matches('/').to_string();
    let snippet = format!(
        "export Z4J_BRAIN_URL={brain_url}\nexport Z4J_TOKEN={token}\nexport Z4J_PROJECT_ID={}\nexport Z4J_HMAC_SECRET={hmac_secret}\n",
        project.slug
    );
    Ok(reply::created(&json!({
        "agent": agent,
        "token": token,
        "hmac_secret": hmac_secret,
        "env": { "Z4J_BRAIN_URL": brain_url, "Z4J_TOKEN": token, "Z4J_PROJECT_ID": project.slug, "Z4J_HMAC_SECRET": hmac_secret },
        "env_snippet": snippet,
        "note": "The token and HMAC secret are shown once; only a hash of the token is stored.",
    })))
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let conn = st.db.conn().await?;
    let rows = agents::list(&conn, project_id).await?;
    drop(conn);
    let online = st
        .registry
        .call(|reply| RegistryMsg::Online { project_id, reply }, std::time::Duration::from_secs(2))
        .await
        .unwrap_or_default();
    let items: Vec<_> = rows
        .into_iter()
        .map(|a| {
            let o = online.iter().find(|o| o.agent_id == a.id);
            json!({
                "id": a.id, "name": a.name, "created_at": a.created_at, "last_seen_at": a.last_seen_at,
                "agent_version": a.agent_version, "framework": a.framework, "engines": a.engines,
                "capabilities": a.capabilities, "host_name": a.host_name,
                "online": o.is_some(), "sessions": o.map_or(0, |o| o.sessions),
                "workers": o.map(|o| o.workers.clone()).unwrap_or_default(),
            })
        })
        .collect();
    Ok(reply::ok(&json!({ "agents": items })))
}

pub async fn revoke(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    if !agents::revoke(&tx, project_id, id, st.clock.now()).await? {
        return Err(ApiError::not_found());
    }
    st.audit(req.audit("agent.revoked").project(project_id).target("agent", id)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    // Close its open sessions now, not at the next reconnect.
    let _ = st.registry.cast(RegistryMsg::CloseAgent { agent_id: id, code: close::REVOKED });
    Ok(reply::no_content())
}
