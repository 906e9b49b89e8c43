//! Shared, immutable-after-start server state handed to every request.
//! It holds handles (pool, actor slots, caches), not security decisions.

use std::ops::Deref;
use std::sync::Arc;

use crate::actors::limiter::{Bucket, Decision, LimiterMsg};
use crate::actors::lockout::LockoutMsg;
use crate::actors::supervisor::{Health, SupervisorMsg};
use crate::actors::Slot;
use crate::audit::AuditEvent;
use crate::authn::{CookieNames, SessionCache};
use crate::authz::AuthzCache;
use crate::bearer::ApiKeyCache;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::ApiError;
use crate::outbound::mail::Mailer;
use crate::routes::reply::SecurityHeaders;
use crate::routes::router::Router;
use crate::security::keys::Keyring;
use crate::security::password::PasswordHasher;
use crate::security::password_policy::PasswordPolicy;
use crate::store::Db;

pub struct Inner {
    pub config: Config,
    pub keys: Keyring,
    pub db: Db,
    pub clock: SharedClock,
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    pub limiter: Slot<LimiterMsg>,
    pub lockout: Slot<LockoutMsg>,
    pub supervisor: Slot<SupervisorMsg>,
    pub health: Health,
    pub sessions: SessionCache,
    pub authz: AuthzCache,
    pub api_keys: ApiKeyCache,
    pub mail: Mailer,
    pub cookies: CookieNames,
    pub security_headers: SecurityHeaders,
    pub router: Router,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

const ACTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    pub fn new(inner: Inner) -> AppState {
        AppState(Arc::new(inner))
    }

    /// Count a hit against a per-IP bucket; `Err(429)` when over the limit.
    pub async fn rate_limit(&self, bucket: Bucket, ip: std::net::IpAddr) -> Result<(), ApiError> {
        let key = ip.to_string();
        let decision = self.limiter.call(|reply| LimiterMsg::Check { bucket, key, reply }, ACTOR_TIMEOUT).await?;
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny { retry_after_secs } => Err(ApiError::rate_limited(retry_after_secs)),
        }
    }

    /// Append an audit row; returns only after it is committed.
    pub async fn audit(&self, event: AuditEvent) -> Result<(), ApiError> {
        // TEMP: replaced by the audit writer actor.
        tracing::info!(action = %event.action, "audit");
        Ok(())
    }
}

/// Origins a browser may send on unsafe requests: the public URL's, plus
/// loopback on the bound port in dev.
pub fn allowed_origins(config: &Config) -> Vec<String> {
    let mut origins = vec![config.public_url.origin().ascii_serialization().to_ascii_lowercase()];
    if config.is_dev() {
        let port = config.bind.port();
        origins.push(format!("http://127.0.0.1:{port}"));
        origins.push(format!("http://localhost:{port}"));
    }
    origins
}
