//! Shared, immutable-after-start server state handed to every request.
//! It holds handles (pool, actor slots, caches), not security decisions.

use std::ops::Deref;
use std::sync::Arc;

use crate::actors::audit_writer::AuditMsg;
use crate::actors::dispatcher::DispatcherMsg;
use crate::actors::ingest::{Budget, IngestMsg};
use crate::actors::limiter::{Bucket, Decision, LimiterMsg};
use crate::actors::lockout::LockoutMsg;
use crate::actors::notifier::NotifierMsg;
use crate::actors::session_registry::RegistryMsg;
use crate::actors::supervisor::{Health, SupervisorMsg};
use crate::actors::Slot;
use crate::audit::checkpoint::CheckpointSink;
use crate::audit::keys::AuditKeys;
use crate::audit::AuditEvent;
use crate::authn::{CookieNames, SessionCache};
use crate::authz::AuthzCache;
use crate::bearer::ApiKeyCache;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::ApiError;
use crate::notify::deliver::Deliverer;
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
    pub audit_writer: Slot<AuditMsg>,
    pub audit_keys: Arc<AuditKeys>,
    pub checkpoint_sink: Arc<dyn CheckpointSink>,
    /// One whole-chain verification at a time on this server (the endpoint
    /// and the scheduled watch share it).
    pub verify_gate: tokio::sync::Semaphore,
    pub limiter: Slot<LimiterMsg>,
    pub lockout: Slot<LockoutMsg>,
    pub registry: Slot<RegistryMsg>,
    pub longpoll: Slot<crate::actors::longpoll::LongPollMsg>,
    pub ingest: Slot<IngestMsg>,
    pub dispatcher: Slot<DispatcherMsg>,
    pub notifier: Slot<NotifierMsg>,
    /// Sends one notification (outbound client, channel-secret cipher).
    pub deliverer: Deliverer,
    pub ingest_budget: Budget,
    pub redactor: Arc<crate::security::redaction::Redactor>,
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
const AUDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

    /// Append an audit row; returns only after it is committed. Callers do
    /// this before committing the action itself, so an action whose row
    /// could not be written is rolled back and reported as failed.
    pub async fn audit(&self, event: AuditEvent) -> Result<i64, ApiError> {
        let action = event.action.clone();
        match self.audit_writer.call(|reply| AuditMsg::Append { event, reply }, AUDIT_TIMEOUT).await? {
            Ok(seq) => Ok(seq),
            Err(e) => {
                tracing::error!(error = %e, action, "audit append failed; refusing the action");
                Err(ApiError::unavailable("the audit log could not record this action, so it was not performed"))
            }
        }
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
