//! Authentication: turning a session cookie into a user, and issuing,
//! rotating and revoking sessions.
//!
//! The cookie carries 256 random bits; the database stores only their HMAC.
//! Lookups go through a short-lived in-process cache (a copy of the row, not
//! security state of its own): entries live at most `CACHE_TTL`, are dropped
//! locally on logout/revocation, and every expiry, idle and activity check
//! is re-evaluated against the clock on each request. Another replica's
//! revocation therefore takes effect here within `CACHE_TTL`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use moka::sync::Cache;
use uuid::Uuid;
use warp::http::header::{HeaderMap, HeaderValue, COOKIE};

use crate::error::ApiError;
use crate::security::keys::Purpose;
use crate::security::tokens;
use crate::state::AppState;
use crate::store::sessions::{self, ActiveSession, NewSession};
use crate::store::StoreError;

pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// `last_seen_at` is written at most this often per session, so the idle
/// timeout has up to this much slack (documented in SECURITY.md).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Cookie names: `__Host-` prefixed in prod, plain in dev (plain HTTP).
#[derive(Clone)]
pub struct CookieNames {
    pub session: &'static str,
    pub csrf: &'static str,
    secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> CookieNames {
        if secure {
            CookieNames { session: "__Host-palisade_session", csrf: "__Host-palisade_csrf", secure }
        } else {
            CookieNames { session: "palisade_session", csrf: "palisade_csrf", secure }
        }
    }

    fn attrs(&self, http_only: bool, same_site: &str) -> String {
        let mut a = String::new();
        if http_only {
            a.push_str("; HttpOnly");
        }
        if self.secure {
            a.push_str("; Secure");
        }
        a.push_str("; SameSite=");
        a.push_str(same_site);
        a.push_str("; Path=/");
        a
    }

    /// `Set-Cookie` values for a new session. The session cookie is
    /// HttpOnly/Lax; the CSRF cookie must be readable by the dashboard's
    /// script (it echoes it in `X-CSRF-Token`) and is Strict.
    pub fn set(&self, issued: &IssuedSession) -> [String; 2] {
        [
            format!("{}={}{}", self.session, issued.token, self.attrs(true, "Lax")),
            format!("{}={}{}", self.csrf, issued.csrf, self.attrs(false, "Strict")),
        ]
    }

    /// Deletion cookies carry the same attributes they were set with;
    /// browsers ignore a `__Host-` deletion that lacks `Secure`.
    pub fn clear(&self) -> [String; 2] {
        [
            format!("{}={}; Max-Age=0", self.session, self.attrs(true, "Lax")),
            format!("{}={}; Max-Age=0", self.csrf, self.attrs(false, "Strict")),
        ]
    }
}

/// Value of cookie `name` from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A fresh session's secrets; shown to the client once, as cookies.
pub struct IssuedSession {
    pub id: Uuid,
    pub token: String,
    pub csrf: String,
}

/// An authenticated browser session.
#[derive(Clone)]
pub struct SessionAuth {
    pub session: Arc<ActiveSession>,
    pub token_hash: [u8; 32],
}

pub struct SessionCache {
    entries: Cache<[u8; 32], Arc<ActiveSession>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache {
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl SessionCache {
    pub fn forget(&self, token_hash: &[u8; 32]) {
        self.entries.invalidate(token_hash);
    }

    /// Drop every cached session of a user (deactivation, password change).
    pub fn forget_user(&self, user_id: Uuid) {
        let _ = self.entries.invalidate_entries_if(move |_, s| s.user.id == user_id);
    }
}

impl AppState {
    fn session_hash(&self, token: &str) -> [u8; 32] {
        self.keys.key(Purpose::SessionToken).mac(token.as_bytes())
    }

    /// Resolve the session cookie, if any. `Ok(None)` means "no valid
    /// session" (absent, unknown, expired, idle, revoked, user inactive).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<SessionAuth>, ApiError> {
        let Some(token) = cookie(headers, self.cookies.session) else {
            return Ok(None);
        };
        if !tokens::plausible(token) {
            return Ok(None);
        }
        let hash = self.session_hash(token);
        let session = match self.sessions.entries.get(&hash) {
            Some(s) => s,
            None => {
                let conn = self.db.conn().await?;
                let Some(found) = sessions::find_by_token_hash(&conn, &hash).await? else {
                    return Ok(None);
                };
                let found = Arc::new(found);
                self.sessions.entries.insert(hash, found.clone());
                found
            }
        };
        let now = self.clock.now();
        let idle = chrono::Duration::from_std(self.config.session_idle).unwrap_or(chrono::Duration::minutes(30));
        let live = session.info.expires_at > now
            && session.info.last_seen_at + idle > now
            && session.user.is_active
            // Defence in depth: password changes revoke other sessions
            // explicitly, but a session minted before the change must
            // never outlive it even if that revocation were lost.
            && session.info.created_at + chrono::Duration::seconds(1) >= session.user.password_changed_at;
        if !live {
            self.sessions.forget(&hash);
            return Ok(None);
        }
        let session = if now - session.info.last_seen_at >= chrono::Duration::from_std(TOUCH_EVERY).unwrap_or_default()
        {
            // Record activity: update the cached copy at once (so this
            // replica does not write again for TOUCH_EVERY) and the row in
            // the background (the response does not wait for it).
            let mut fresh = (*session).clone();
            fresh.info.last_seen_at = now;
            let fresh = Arc::new(fresh);
            self.sessions.entries.insert(hash, fresh.clone());
            let (db, id) = (self.db.clone(), session.info.id);
            tokio::spawn(async move {
                if let Ok(conn) = db.conn().await {
                    if let Err(e) = sessions::touch(&conn, id, now).await {
                        tracing::warn!(error = %e, "could not record session activity");
                    }
                }
            });
            fresh
        } else {
            session
        };
        Ok(Some(SessionAuth { session, token_hash: hash }))
    }

    /// Create a session row and return its secrets. Any cookie the client
    /// presented is ignored: every login starts a new session (no fixation).
    pub async fn issue_session(
        &self,
        c: &impl GenericClient,
        user_id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<IssuedSession, StoreError> {
        let token = tokens::mint();
        let csrf = tokens::mint();
        let now = self.clock.now();
        let absolute = chrono::Duration::from_std(self.config.session_absolute).unwrap_or(chrono::Duration::hours(12));
        let ua: Option<String> = user_agent.map(|u| u.chars().take(256).collect());
        let id = sessions::insert(
            c,
            &NewSession {
                token_hash: &self.session_hash(&token),
                csrf_hash: &self.keys.key(Purpose::CsrfToken).mac(csrf.as_bytes()),
                user_id,
                expires_at: now + absolute,
                ip,
                user_agent: ua.as_deref(),
            },
            now,
        )
        .await?;
        Ok(IssuedSession { id, token, csrf })
    }
}
