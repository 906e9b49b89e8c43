//! Channel configs as JSON objects: the split into a public part (stored
//! in clear, shown to members) and a secret part (encrypted, never shown),
//! the masked view every API answer uses, and PATCH merging.

use serde_json::{Map, Value};

use super::channel::{ChannelConfig, ChannelKind, ConfigError, Target};
use crate::security::redaction::SECRET_MASK;
use crate::security::ssrf::{TargetHost, PAGERDUTY_EVENTS_URL};

/// Most bytes a config object may take (serialised), as in z4j.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// Split a full config into `(public, secret)` objects.
pub fn split(kind: ChannelKind, full: &Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    let secret_keys = kind.secret_keys();
    let mut public = Map::new();
    let mut secret = Map::new();
    for (k, v) in full {
        if secret_keys.contains(&k.as_str()) {
            secret.insert(k.clone(), v.clone());
        } else {
            public.insert(k.clone(), v.clone());
        }
    }
    (public, secret)
}

/// The view of a config every API answer uses: public fields as stored,
/// each secret field that is set replaced by the mask.
pub fn masked(kind: ChannelKind, public: &Value, secret_keys_set: &[String]) -> Value {
    let mut out = public.as_object().cloned().unwrap_or_default();
    for k in kind.secret_keys() {
        if secret_keys_set.iter().any(|s| s == k) {
            out.insert((*k).to_string(), Value::String(SECRET_MASK.to_string()));
        }
    }
    Value::Object(out)
}

/// A config submitted on create must not carry the mask (it would be
/// stored as the secret).
pub fn refuse_mask(config: &Map<String, Value>) -> Result<(), ConfigError> {
    if config.values().any(|v| v.as_str() == Some(SECRET_MASK)) {
        return Err(ConfigError::Invalid("a secret field holds the mask; send the real value"));
    }
    Ok(())
}

/// Apply a PATCH to the current full config:
/// 1. a value equal to the mask keeps what is stored (a client may echo
///    back what it read);
/// 2. `null` or `""` removes the field;
/// 3. if a destination field changes, every secret not supplied in this
///    same patch is dropped, so a credential never follows a new URL or
///    SMTP server;
/// 4. validation runs on the result (by the caller).
pub fn merge(kind: ChannelKind, current: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = current.clone();
    let mut supplied = Vec::new();
    let mut destination_changed = false;
    for (k, v) in patch {
        if v.as_str() == Some(SECRET_MASK) {
            continue;
        }
        if kind.destination_keys().contains(&k.as_str()) && current.get(k) != Some(v) {
            destination_changed = true;
        }
        if v.is_null() || v.as_str() == Some("") {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
        supplied.push(k.as_str());
    }
    if destination_changed {
        for k in kind.secret_keys() {
            if !supplied.contains(k) && !kind.destination_keys().contains(k) {
                out.remove(*k);
            }
        }
    }
    out
}

/// `scheme://host[:port]` of a checked target: what members see instead of
/// a URL that may carry a token.
pub fn destination(config: &ChannelConfig, target: &Target) -> String {
    match target {
        Target::Http(url) => {
            let host = match url.host() {
                TargetHost::Domain(d) => d.clone(),
                TargetHost::Ip(std::net::IpAddr::V6(a)) => format!("[{a}]"),
                TargetHost::Ip(a) => a.to_string(),
            };
            let scheme = url.url().scheme();
            let default = if scheme == "https" { 443 } else { 80 };
            match (url.port(), config) {
                (_, ChannelConfig::PagerDuty { .. }) => {
                    PAGERDUTY_EVENTS_URL.trim_end_matches("/v2/enqueue").to_string()
                }
                (p, _) if p == default => format!("{scheme}://{host}"),
                (p, _) => format!("{scheme}://{host}:{p}"),
            }
        }
        Target::Smtp(t) => match &t.host {
            TargetHost::Domain(d) => format!("smtp://{d}:{}", t.port),
            TargetHost::Ip(std::net::IpAddr::V6(a)) => format!("smtp://[{a}]:{}", t.port),
            TargetHost::Ip(a) => format!("smtp://{a}:{}", t.port),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn mask_keeps_and_destination_change_drops_secrets() {
        let current = obj(
            json!({ "url": "https://a.example/x", "secret": "old-secret-value-xxxxxxxxx", "headers": { "X-K": "v" } }),
        );
        // Echoed mask: nothing changes.
        let same = merge(ChannelKind::Webhook, &current, &obj(json!({ "url": SECRET_MASK, "secret": SECRET_MASK })));
        assert_eq!(same, current);
        // New URL without the secret: the secret and headers are dropped.
        let moved = merge(ChannelKind::Webhook, &current, &obj(json!({ "url": "https://b.example/x" })));
        assert_eq!(moved, obj(json!({ "url": "https://b.example/x" })));
        // New URL with a new secret: kept.
        let both = merge(
            ChannelKind::Webhook,
            &current,
            &obj(json!({ "url": "https://b.example/x", "secret": "new-secret-value-xxxxxxxx" })),
        );
        assert_eq!(both["secret"], "new-secret-value-xxxxxxxx");
        assert!(both.get("headers").is_none());
        // Email: changing the server drops the password, not the username.
        let mail = obj(json!({ "host": "a.example", "username": "u", "password": "p" }));
        let moved = merge(ChannelKind::Email, &mail, &obj(json!({ "host": "b.example" })));
        assert_eq!(moved, obj(json!({ "host": "b.example", "username": "u" })));
        // Empty string clears.
        let cleared = merge(ChannelKind::Email, &mail, &obj(json!({ "username": "" })));
        assert!(cleared.get("username").is_none());
    }

    #[test]
    fn masked_view_hides_every_secret() {
        let (public, secret) = split(
            ChannelKind::Email,
            &obj(json!({ "host": "smtp.example.com", "username": "u", "password": "hunter2-hunter2" })),
        );
        assert!(secret.contains_key("password") && !public.contains_key("password"));
        let keys: Vec<String> = secret.keys().cloned().collect();
        let view = masked(ChannelKind::Email, &Value::Object(public), &keys).to_string();
        assert!(!view.contains("hunter2") && view.contains(SECRET_MASK) && view.contains("smtp.example.com"));
        assert!(refuse_mask(&obj(json!({ "password": SECRET_MASK }))).is_err());
    }
}
