//! What a handler receives: the parsed request plus the authenticated
//! principal, with helpers that turn bad input into typed 4xx errors.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use warp::http::{HeaderMap, Method};

use crate::audit::{ActorKind, AuditEvent};
use crate::authn::SessionAuth;
use crate::bearer::ApiKeyAuth;
use crate::error::ApiError;
use crate::security::rbac::{Scope, Standing};
use crate::state::AppState;
use crate::store::projects::ProjectRef;

#[derive(Clone)]
pub enum Principal {
    Anonymous,
    Session(SessionAuth),
    /// An `Authorization: Bearer pal_…` key. Only `Listing` and `Project`
    /// routes admit it; it is never CSRF-checked (a browser cannot attach
    /// it cross-site) and never combined with a session cookie.
    ApiKey(ApiKeyAuth),
    /// An agent's bearer token (long-poll transport only).
    Agent(crate::fleet::AgentIdentity),
}

/// The signed-in person behind a request, however they authenticated.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user_id: Uuid,
    pub is_admin: bool,
}

impl Principal {
    pub fn caller(&self) -> Option<Caller> {
        match self {
            Principal::Anonymous => None,
            Principal::Session(s) => Some(Caller { user_id: s.session.user.id, is_admin: s.session.user.is_admin }),
            Principal::ApiKey(k) => {
                Some(Caller { user_id: k.credential.owner.id, is_admin: k.credential.owner.is_admin })
            }
            Principal::Agent(_) => None,
        }
    }

    /// The scopes the request is limited to: `None` for a session (limited
    /// by role only), the key's scopes for an API key.
    pub fn key_scopes(&self) -> Option<&[Scope]> {
        match self {
            Principal::ApiKey(k) => Some(&k.scopes),
            _ => None,
        }
    }
}

/// Set by the dispatcher on `Access::Project` routes once the caller has
/// been authorized: the project and how the caller stands in it.
#[derive(Clone, Debug)]
pub struct ProjectAccess {
    pub project: Arc<ProjectRef>,
    pub standing: Standing,
}

pub struct Req {
    pub state: AppState,
    pub method: Method,
    pub params: Vec<(&'static str, String)>,
    pub query: String,
    pub headers: HeaderMap,
    pub client_ip: IpAddr,
    pub body: Bytes,
    pub request_id: String,
    pub principal: Principal,
    pub project: Option<ProjectAccess>,
}

/// Map a serde_json error to our envelope without ever including the
/// parser's message for type errors: serde's text quotes the offending
/// value ("invalid type: string \"hunter2\""), which may be a password.
pub fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("request body is not valid JSON (line {}, column {})", e.line(), e.column()),
        ),
        Category::Data => {
            let text = e.to_string();
            // "missing field `x`" and "unknown field `x`" name only our own
            // field names, which are safe and useful to show.
            let field = ["missing field `", "unknown field `"]
                .iter()
                .find_map(|p| text.strip_prefix(p))
                .and_then(|rest| rest.split('`').next());
            match field {
                Some(f) if text.starts_with("missing") => ApiError::validation(format!("missing field `{f}`")),
                Some(f) => ApiError::validation(format!("unknown field `{f}`")),
                None => ApiError::validation(format!(
                    "a field has the wrong type or an invalid value (line {}, column {})",
                    e.line(),
                    e.column()
                )),
            }
        }
    }
}

impl Req {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("malformed_json", "request body is empty; expected a JSON object"));
        }
        // Only JSON is accepted: a form or text/plain body is what a
        // cross-site HTML form can send without a preflight.
        let ct = self.headers.get(warp::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                warp::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request body must be application/json",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| json_error(&e))
    }

    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|_| ApiError::validation("query string has an unknown parameter or an invalid value"))
    }

    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// A path id that is not a UUID cannot name anything: 404, not 400.
    pub fn param_uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        Uuid::parse_str(self.param(name)).map_err(|_| ApiError::not_found())
    }

    pub fn session(&self) -> Result<&SessionAuth, ApiError> {
        match &self.principal {
            Principal::Session(s) => Ok(s),
            Principal::Anonymous | Principal::ApiKey(_) | Principal::Agent(_) => Err(ApiError::unauthenticated()),
        }
    }

    pub fn caller(&self) -> Result<Caller, ApiError> {
        self.principal.caller().ok_or_else(ApiError::unauthenticated)
    }

    /// The authorized project of an `Access::Project` route. Its absence
    /// means the route table is wrong (a handler reads a project its route
    /// did not declare), which is a server bug, not a client error.
    pub fn project(&self) -> Result<&ProjectAccess, ApiError> {
        self.project.as_ref().ok_or_else(|| {
            tracing::error!("handler asked for a project on a route without Access::Project");
            ApiError::internal()
        })
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.headers.get(warp::http::header::USER_AGENT).and_then(|v| v.to_str().ok())
    }

    /// An audit event pre-filled with who, from where, and which request.
    pub fn audit(&self, action: &str) -> AuditEvent {
        let ev = AuditEvent::new(action).ip(Some(self.client_ip)).request(&self.request_id);
        let ev = match &self.project {
            Some(p) => ev.project(p.project.id),
            None => ev,
        };
        match &self.principal {
            Principal::Session(s) => ev.user(s.session.user.id),
            // The key id names the actor; the key row names its owner.
            Principal::ApiKey(k) => ev.actor(ActorKind::ApiKey, Some(k.id().to_string())),
            Principal::Anonymous => ev.actor(ActorKind::Anonymous, None),
            Principal::Agent(a) => ev.actor(ActorKind::Agent, Some(a.agent_id.to_string())).project(a.project_id),
        }
    }

    pub fn agent(&self) -> Result<&crate::fleet::AgentIdentity, ApiError> {
        match &self.principal {
            Principal::Agent(a) => Ok(a),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}
