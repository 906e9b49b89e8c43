//! API keys as bearer credentials: the key format, turning an
//! `Authorization: Bearer pal_…` header into a key and its owner, and
//! recording when a key was last used.
//!
//! A key is `pal_` followed by 256 random bits in base64url (47 characters).
//! The database stores only its HMAC under the api-key purpose key, plus the
//! first `VISIBLE_PREFIX_CHARS` characters so owners can recognise it. As
//! with sessions, lookups go through a short-lived cache of the row (not of
//! a decision): revocation here drops the entry at once, another replica's
//! revocation takes effect within `CACHE_TTL`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use uuid::Uuid;
use warp::http::header::AUTHORIZATION;
use warp::http::{HeaderMap, StatusCode};

use crate::error::ApiError;
use crate::security::keys::Purpose;
use crate::security::rbac::Scope;
use crate::security::tokens;
use crate::state::AppState;
use crate::store::api_keys::{self, KeyCredential};

pub const KEY_PREFIX: &str = "pal_";
/// `pal_` plus 8 characters: 48 bits, enough to tell keys apart, far too
/// few to help guess the other 208.
pub const VISIBLE_PREFIX_CHARS: usize = 12;
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// `last_used_at` is written at most this often per key per replica.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A fresh key; shown to its owner once.
pub fn mint() -> String {
    format!("{KEY_PREFIX}{}", tokens::mint())
}

pub fn visible_prefix(key: &str) -> String {
    key.chars().take(VISIBLE_PREFIX_CHARS).collect()
}

/// Only strings shaped like our keys are hashed and looked up.
pub fn plausible(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 43
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the `Authorization` header carries.
pub enum Presented<'a> {
    Nothing,
    Key(&'a str),
    /// Present but not `Bearer <token>`: refused, never ignored, so a client
    /// that thinks it is authenticating learns that it is not.
    Malformed,
}

pub fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(AUTHORIZATION) { Presented::Malformed } else { Presented::Nothing };
    };
    let Ok(value) = value.to_str() else {
        return Presented::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Presented::Key(token.trim())
        }
        _ => Presented::Malformed,
    }
}

pub fn invalid_key() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "the API key is invalid, expired or revoked")
}

/// An authenticated API-key caller.
#[derive(Clone)]
pub struct ApiKeyAuth {
    pub credential: Arc<KeyCredential>,
    pub scopes: Arc<[Scope]>,
    pub key_hash: [u8; 32],
}

impl ApiKeyAuth {
    pub fn id(&self) -> Uuid {
        self.credential.key.id
    }
    pub fn owner_id(&self) -> Uuid {
        self.credential.owner.id
    }
    pub fn bound_project(&self) -> Option<Uuid> {
        self.credential.key.project_id
    }
}

#[derive(Clone)]
struct Cached {
    credential: Arc<KeyCredential>,
    scopes: Arc<[Scope]>,
}

pub struct ApiKeyCache {
    entries: Cache<[u8; 32], Cached>,
}

impl Default for ApiKeyCache {
    fn default() -> Self {
        ApiKeyCache {
            entries: Cache::builder()
                .max_capacity(50_000)
                .time_to_live(CACHE_TTL)
                .support_invalidation_closures()
                .build(),
        }
    }
}

impl ApiKeyCache {
    pub fn forget(&self, key_hash: &[u8; 32]) {
        self.entries.invalidate(key_hash);
    }

    /// Drop every cached key of a user (deactivated or deleted).
    pub fn forget_user(&self, user_id: Uuid) {
        let _ = self.entries.invalidate_entries_if(move |_, c| c.credential.owner.id == user_id);
    }
}

/// Scopes as stored; a name this version does not know grants nothing.
fn parse_scopes(raw: &[String]) -> Arc<[Scope]> {
    raw.iter().filter_map(|s| s.parse().ok()).collect::<Vec<Scope>>().into()
}

impl AppState {
    pub fn api_key_hash(&self, key: &str) -> [u8; 32] {
        self.keys.key(Purpose::ApiKey).mac(key.as_bytes())
    }

    /// Resolve a presented key, or 401 `invalid_api_key` (the same answer
    /// for unknown, revoked, expired and owner-deactivated keys).
    pub async fn authenticate_key(&self, key: &str, client_ip: IpAddr) -> Result<ApiKeyAuth, ApiError> {
        if !plausible(key) {
            return Err(invalid_key());
        }
        let hash = self.api_key_hash(key);
        let cached = match self.api_keys.entries.get(&hash) {
            Some(c) => c,
            None => {
                let conn = self.db.conn().await?;
                let Some(found) = api_keys::find_by_hash(&conn, &hash).await? else {
                    return Err(invalid_key());
                };
                let c = Cached { scopes: parse_scopes(&found.key.scopes), credential: Arc::new(found) };
                self.api_keys.entries.insert(hash, c.clone());
                c
            }
        };
        let now = self.clock.now();
        let live = cached.credential.owner.is_active && cached.credential.key.expires_at.is_none_or(|t| t > now);
        if !live {
            self.api_keys.forget(&hash);
            return Err(invalid_key());
        }
        let stale = cached.credential.key.last_used_at.is_none_or(|t| {
            now - t >= chrono::Duration::from_std(TOUCH_EVERY).unwrap_or(chrono::Duration::seconds(60))
        });
        let cached = if stale { self.touch_key(hash, cached, now, client_ip) } else { cached };
        Ok(ApiKeyAuth { credential: cached.credential, scopes: cached.scopes, key_hash: hash })
    }

    /// Update the cached copy at once (so this replica does not write again
    /// for `TOUCH_EVERY`) and the row in the background: the response does
    /// not wait for bookkeeping.
    fn touch_key(&self, hash: [u8; 32], cached: Cached, now: chrono::DateTime<chrono::Utc>, ip: IpAddr) -> Cached {
        let mut credential = (*cached.credential).clone();
        credential.key.last_used_at = Some(now);
        credential.key.last_used_ip = Some(ip);
        let fresh = Cached { credential: Arc::new(credential), scopes: cached.scopes };
        self.api_keys.entries.insert(hash, fresh.clone());
        let (db, id) = (self.db.clone(), fresh.credential.key.id);
        tokio::spawn(async move {
            if let Ok(conn) = db.conn().await {
                if let Err(e) = api_keys::touch(&conn, id, now, ip).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            }
        });
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        let k = mint();
        assert_eq!(k.len(), 47);
        assert!(plausible(&k));
        assert_eq!(visible_prefix(&k).len(), 12);
        assert!(k.starts_with(&visible_prefix(&k)));
        assert!(!plausible(&k[..46]));
        assert!(!plausible(&k.replace("pal_", "z4k_")));
        assert!(!plausible(&format!("pal_{}", "=".repeat(43))));
        assert_ne!(mint(), mint());
    }

    #[test]
    fn header_forms() {
        let mut h = HeaderMap::new();
        assert!(matches!(presented(&h), Presented::Nothing));
        h.insert(AUTHORIZATION, "bearer  pal_x ".parse().unwrap());
        assert!(matches!(presented(&h), Presented::Key("pal_x")));
        h.insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert!(matches!(presented(&h), Presented::Malformed));
        h.insert(AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(matches!(presented(&h), Presented::Malformed));
        h.insert(AUTHORIZATION, "Bearer a".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert!(matches!(presented(&h), Presented::Malformed), "two Authorization headers are ambiguous");
    }
}
