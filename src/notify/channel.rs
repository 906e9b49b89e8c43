//! Channel kinds and their typed configuration. [`ChannelConfig::check`] is
//! the one validator: the API runs it when a channel is saved and the
//! Notifier runs it again before every send, so a row written by an older
//! version, edited in the database, or judged under a changed policy gets
//! today's rules (z4j checked some host locks only at dispatch and the
//! Telegram token only at save).

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::outbound::smtp::SmtpSecurity;
use crate::security::ssrf::{validate_headers, CheckedUrl, HostLock, OutboundPolicy, SmtpTarget, SsrfError};

pub const MIN_SIGNING_SECRET: usize = 24;
pub const MAX_SECRET_LEN: usize = 256;
pub const MAX_RECIPIENTS: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Discord,
    Teams,
    PagerDuty,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 6] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Teams,
        ChannelKind::PagerDuty,
        ChannelKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Teams => "teams",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Config keys stored encrypted and masked in every answer.
    pub fn secret_keys(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Webhook => &["url", "secret", "headers"],
            ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => &["webhook_url"],
            ChannelKind::PagerDuty => &["routing_key"],
            ChannelKind::Email => &["password"],
        }
    }

    /// Keys naming where messages go. Changing one drops every secret not
    /// re-supplied in the same request, so a credential never follows a
    /// new destination by accident.
    pub fn destination_keys(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Webhook => &["url"],
            ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => &["webhook_url"],
            ChannelKind::PagerDuty => &[],
            ChannelKind::Email => &["host", "port", "security"],
        }
    }

    fn lock(self) -> Option<HostLock> {
        match self {
            ChannelKind::Slack => Some(HostLock::Slack),
            ChannelKind::Discord => Some(HostLock::Discord),
            ChannelKind::Teams => Some(HostLock::Teams),
            _ => None,
        }
    }
}

/// Why a config is refused. Messages name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{}", .0.public_message())]
    Policy(SsrfError),
}

impl From<SsrfError> for ConfigError {
    fn from(e: SsrfError) -> Self {
        ConfigError::Policy(e)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFields {
    url: String,
    secret: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlFields {
    webhook_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PagerDutyFields {
    routing_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFields {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    security: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    from: String,
    to: Vec<String>,
}

/// A parsed channel config, secrets included. Never `Debug`.
pub enum ChannelConfig {
    Webhook { url: String, secret: Zeroizing<String>, headers: Vec<(String, String)> },
    Slack { webhook_url: Zeroizing<String> },
    Discord { webhook_url: Zeroizing<String> },
    Teams { webhook_url: Zeroizing<String> },
    PagerDuty { routing_key: Zeroizing<String> },
    Email(EmailConfig),
}

crate::assert_not_impl!(ChannelConfig, std::fmt::Debug);

pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub from: String,
    pub to: Vec<String>,
}

/// Where a checked config sends to.
pub enum Target {
    Http(CheckedUrl),
    Smtp(SmtpTarget),
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ConfigError> {
    // serde's messages can quote values (secrets); ours name the problem only.
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown field") {
            ConfigError::Invalid("config has a field this channel type does not use")
        } else if text.starts_with("missing field") {
            ConfigError::Invalid("config is missing a required field for this channel type")
        } else {
            ConfigError::Invalid("a config field has the wrong type")
        }
    })
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

impl ChannelConfig {
    /// Typed parse of the full (public + secret) config object.
    pub fn from_json(kind: ChannelKind, value: serde_json::Value) -> Result<ChannelConfig, ConfigError> {
        Ok(match kind {
            ChannelKind::Webhook => {
                let f: WebhookFields = parse(value)?;
                ChannelConfig::Webhook {
                    url: f.url,
                    secret: Zeroizing::new(f.secret),
                    headers: f.headers.into_iter().collect(),
                }
            }
            ChannelKind::Slack => {
                ChannelConfig::Slack { webhook_url: Zeroizing::new(parse::<UrlFields>(value)?.webhook_url) }
            }
            ChannelKind::Discord => {
                ChannelConfig::Discord { webhook_url: Zeroizing::new(parse::<UrlFields>(value)?.webhook_url) }
            }
            ChannelKind::Teams => {
                ChannelConfig::Teams { webhook_url: Zeroizing::new(parse::<UrlFields>(value)?.webhook_url) }
            }
            ChannelKind::PagerDuty => {
                ChannelConfig::PagerDuty { routing_key: Zeroizing::new(parse::<PagerDutyFields>(value)?.routing_key) }
            }
            ChannelKind::Email => {
                let f: EmailFields = parse(value)?;
                let port = f.port.unwrap_or(587);
                let security = match f.security.as_deref() {
                    None if port == 465 => SmtpSecurity::Tls,
                    None | Some("starttls") => SmtpSecurity::StartTls,
                    Some("tls") => SmtpSecurity::Tls,
                    Some("none") => SmtpSecurity::None,
                    Some(_) => return Err(ConfigError::Invalid("security must be starttls, tls or none")),
                };
                ChannelConfig::Email(EmailConfig {
                    host: f.host,
                    port,
                    security,
                    username: f.username.filter(|u| !u.is_empty()),
                    password: f.password.filter(|p| !p.is_empty()).map(Zeroizing::new),
                    from: f.from,
                    to: f.to,
                })
            }
        })
    }

    /// Validate against the policy; returns the destination to dial. Names
    /// are not resolved here: that happens (and is checked and pinned) on
    /// every connection.
    pub fn check(&self, policy: &OutboundPolicy) -> Result<Target, ConfigError> {
        let locked = |kind: ChannelKind, url: &str| -> Result<Target, ConfigError> {
            let checked = policy.validate_url(url)?;
            if let Some(lock) = kind.lock() {
                lock.check(&checked)?;
            }
            Ok(Target::Http(checked))
        };
        match self {
            ChannelConfig::Webhook { url, secret, headers } => {
                let n = secret.chars().count();
                if !(MIN_SIGNING_SECRET..=MAX_SECRET_LEN).contains(&n) || !printable(secret) {
                    return Err(ConfigError::Invalid("secret must be 24 to 256 printable characters"));
                }
                validate_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
                // Ours to set: the signature scheme and the body's framing.
                for (name, _) in headers {
                    let lower = name.to_ascii_lowercase();
                    if lower.starts_with("x-palisade-")
                        || lower.starts_with("x-z4j-")
                        || lower == "content-type"
                        || lower == "user-agent"
                    {
                        return Err(SsrfError::HeaderNotAllowed.into());
                    }
                }
                locked(ChannelKind::Webhook, url)
            }
            ChannelConfig::Slack { webhook_url } => locked(ChannelKind::Slack, webhook_url),
            ChannelConfig::Discord { webhook_url } => locked(ChannelKind::Discord, webhook_url),
            ChannelConfig::Teams { webhook_url } => locked(ChannelKind::Teams, webhook_url),
            ChannelConfig::PagerDuty { routing_key } => {
                let ok = (8..=64).contains(&routing_key.len())
                    && routing_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(ConfigError::Invalid("routing_key must be 8 to 64 letters, digits, '-' or '_'"));
                }
                Ok(Target::Http(policy.pagerduty_url()?))
            }
            ChannelConfig::Email(e) => {
                let target = policy.validate_smtp_target(&e.host, e.port)?;
                if e.password.is_some() && e.username.is_none() {
                    return Err(ConfigError::Invalid("password needs a username"));
                }
                if e.username.is_some() && e.security == SmtpSecurity::None {
                    return Err(ConfigError::Invalid(
                        "credentials are only sent over TLS; use security starttls or tls",
                    ));
                }
                let short = |s: &Option<String>| s.as_ref().is_none_or(|s| s.len() <= MAX_SECRET_LEN && printable(s));
                if !short(&e.username) || !e.password.as_ref().is_none_or(|p| p.len() <= MAX_SECRET_LEN && printable(p))
                {
                    return Err(ConfigError::Invalid("username and password must be at most 256 printable characters"));
                }
                if e.from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(ConfigError::Invalid("from must be an email address"));
                }
                if e.to.is_empty() || e.to.len() > MAX_RECIPIENTS {
                    return Err(ConfigError::Invalid("to must list 1 to 20 email addresses"));
                }
                if e.to.iter().any(|t| t.parse::<lettre::Address>().is_err()) {
                    return Err(ConfigError::Invalid("to must list 1 to 20 email addresses"));
                }
                Ok(Target::Smtp(target))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(kind: ChannelKind, v: serde_json::Value) -> Result<(), ConfigError> {
        ChannelConfig::from_json(kind, v)?.check(&OutboundPolicy::default()).map(|_| ())
    }

    #[test]
    fn host_locks_apply_at_save() {
        let slack = |u: &str| check(ChannelKind::Slack, json!({ "webhook_url": u }));
        assert!(slack("https://hooks.slack.com/services/T0/B0/x").is_ok());
        assert!(slack("https://hooks.slack.com.evil.example/services/x").is_err());
        assert!(slack("https://evil.example/services/x").is_err());
        let discord = |u: &str| check(ChannelKind::Discord, json!({ "webhook_url": u }));
        assert!(discord("https://discord.com/api/webhooks/1/abc").is_ok());
        assert!(discord("https://discord.com/other").is_err());
        let teams = |u: &str| check(ChannelKind::Teams, json!({ "webhook_url": u }));
        assert!(teams("https://tenant.webhook.office.com/webhookb2/x").is_ok());
        assert!(teams("https://evilwebhook.office.com/x").is_err());
    }

    #[test]
    fn webhook_rules() {
        let hook = |v| check(ChannelKind::Webhook, v);
        let secret = "a-long-enough-signing-secret";
        assert!(hook(json!({ "url": "https://hooks.example.com/x", "secret": secret })).is_ok());
        assert!(hook(json!({ "url": "https://hooks.example.com/x", "secret": "short" })).is_err());
        assert!(hook(json!({ "url": "https://hooks.example.com/x" })).is_err());
        assert_eq!(
            hook(json!({ "url": "https://10.0.0.5/x", "secret": secret })).err(),
            Some(ConfigError::Policy(SsrfError::AddressNotAllowed))
        );
        assert_eq!(
            hook(json!({ "url": "http://hooks.example.com/x", "secret": secret })).err(),
            Some(ConfigError::Policy(SsrfError::SchemeNotAllowed))
        );
        for name in ["X-Palisade-Delivery", "X-Z4J-Signature", "Content-Type", "User-Agent", "Host"] {
            let v = json!({ "url": "https://h.example.com/", "secret": secret, "headers": { name: "v" } });
            assert!(hook(v).is_err(), "{name}");
        }
        assert!(hook(json!({ "url": "https://h.example.com/", "secret": secret, "extra": 1 })).is_err());
    }

    #[test]
    fn email_rules() {
        let mail = |v| check(ChannelKind::Email, v);
        let base = json!({ "host": "smtp.example.com", "from": "ops@example.com", "to": ["a@example.com"] });
        assert!(mail(base.clone()).is_ok());
        let mut v = base.clone();
        v["security"] = "none".into();
        v["username"] = "u".into();
        v["password"] = "p".into();
        assert!(mail(v).is_err(), "credentials without TLS");
        let mut v = base.clone();
        v["port"] = 6379.into();
        assert_eq!(mail(v).err(), Some(ConfigError::Policy(SsrfError::PortNotAllowed)));
        let mut v = base.clone();
        v["host"] = "169.254.169.254".into();
        assert_eq!(mail(v).err(), Some(ConfigError::Policy(SsrfError::AddressNotAllowed)));
        let mut v = base;
        v["to"] = json!(["not an address\r\nBcc: x@y"]);
        assert!(mail(v).is_err());
    }

    #[test]
    fn errors_never_quote_values() {
        let err = ChannelConfig::from_json(ChannelKind::Slack, json!({ "webhook_url": ["hunter2-secret"] }))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
