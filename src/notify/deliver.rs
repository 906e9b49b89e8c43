//! One message to one channel: decrypt the channel's secrets, validate the
//! config again under today's policy, render, send through `outbound`, and
//! say what happened in words safe for logs, the delivery list and API
//! answers (our own categories, with any secret of the channel masked out
//! of a receiver's reply).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::channel::{ChannelConfig, ChannelKind, Target};
use super::cipher::ChannelCipher;
use super::message::{clip, Notification};
use super::{render, signature};
use crate::outbound::smtp::SmtpMessage;
use crate::outbound::{Outbound, OutboundError};
use crate::security::redaction::sanitize_outbound_error;
use crate::store::notify_channels::ChannelRow;

/// Longest `Retry-After` we honour; a receiver cannot park a message for
/// days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent {
        status: Option<u16>,
    },
    /// Worth retrying (network trouble, 5xx, 429); `after` is the
    /// receiver's `Retry-After`, if any.
    Retry {
        error: String,
        status: Option<u16>,
        after: Option<Duration>,
    },
    /// Will not get better by waiting (policy refusal, 4xx, bad config).
    Failed {
        error: String,
        status: Option<u16>,
    },
}

impl Attempt {
    pub fn ok(&self) -> bool {
        matches!(self, Attempt::Sent { .. })
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Sent { status } | Attempt::Retry { status, .. } | Attempt::Failed { status, .. } => *status,
        }
    }
    pub fn error(&self) -> Option<&str> {
        match self {
            Attempt::Sent { .. } => None,
            Attempt::Retry { error, .. } | Attempt::Failed { error, .. } => Some(error),
        }
    }
}

/// What delivery needs; shared by the Notifier and the test endpoint.
#[derive(Clone)]
pub struct Deliverer {
    pub outbound: Outbound,
    pub cipher: Arc<ChannelCipher>,
}

fn failed(error: impl Into<String>) -> Attempt {
    Attempt::Failed { error: error.into(), status: None }
}

fn from_outbound(e: OutboundError) -> Attempt {
    if e.is_transient() {
        Attempt::Retry { error: e.to_string(), status: None, after: None }
    } else {
        failed(e.to_string())
    }
}

/// The full config (public fields plus decrypted secrets) of a stored row.
pub fn full_config(cipher: &ChannelCipher, row: &ChannelRow) -> Result<Map<String, Value>, &'static str> {
    let plain = cipher.decrypt(row.project_id, row.id, &row.secrets).map_err(|_| {
        "the channel's secrets cannot be decrypted (was the master secret rotated without PALISADE_PREVIOUS_SECRETS?)"
    })?;
    let secrets: Map<String, Value> =
        serde_json::from_slice(&plain).map_err(|_| "the channel's secrets are unreadable")?;
    let mut full = row.config.as_object().cloned().unwrap_or_default();
    full.extend(secrets);
    Ok(full)
}

/// Every secret string of a config, for masking receiver replies.
fn secret_strings(kind: ChannelKind, full: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for k in kind.secret_keys() {
        match full.get(*k) {
            Some(Value::String(s)) => {
                out.push(s.clone());
                // URL tokens travel in the path; mask each long segment too.
                out.extend(s.split(['/', '?', '&', '=']).filter(|p| p.len() >= 8).map(str::to_string));
            }
            Some(Value::Object(m)) => out.extend(m.values().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    out
}

impl Deliverer {
    pub async fn deliver(&self, row: &ChannelRow, n: &Notification, delivery_id: Uuid) -> Attempt {
        let Some(kind) = ChannelKind::parse(&row.kind) else { return failed("unknown channel type") };
        let full = match full_config(&self.cipher, row) {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let secrets = secret_strings(kind, &full);
        let config = match ChannelConfig::from_json(kind, Value::Object(full)) {
            Ok(c) => c,
            Err(e) => return failed(format!("the stored config is no longer valid: {e}")),
        };
        // Checked again at every send: the policy or the rules may have
        // changed since the channel was saved.
        let target = match config.check(&self.outbound.policy) {
            Ok(t) => t,
            Err(e) => return failed(format!("refused by the outbound policy: {e}")),
        };
        let attempt = self.send(&config, target, n, delivery_id).await;
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        match attempt {
            Attempt::Retry { error, status, after } => {
                Attempt::Retry { error: sanitize_outbound_error(&error, &refs), status, after }
            }
            Attempt::Failed { error, status } => {
                Attempt::Failed { error: sanitize_outbound_error(&error, &refs), status }
            }
            sent => sent,
        }
    }

    async fn send(&self, config: &ChannelConfig, target: Target, n: &Notification, delivery_id: Uuid) -> Attempt {
        let url = match target {
            Target::Smtp(smtp) => {
                let ChannelConfig::Email(e) = config else { return failed("channel type and target disagree") };
                let (subject, body) = render::email(n);
                let msg = SmtpMessage {
                    security: e.security,
                    credentials: e.username.clone().zip(e.password.clone()),
                    from: &e.from,
                    to: &e.to,
                    subject: &subject,
                    body,
                };
                return match self.outbound.smtp.send(&smtp, msg).await {
                    Ok(()) => Attempt::Sent { status: None },
                    Err(e) => from_outbound(e),
                };
            }
            Target::Http(url) => url,
        };
        let mut headers = vec![(signature::DELIVERY_HEADER.to_string(), delivery_id.to_string())];
        let (body, ok): (Vec<u8>, fn(u16) -> bool) = match config {
            ChannelConfig::Webhook { secret, headers: custom, .. } => {
                let body = render::webhook(n, delivery_id);
                let ts = chrono::Utc::now().timestamp();
                headers.push((signature::TIMESTAMP_HEADER.to_string(), ts.to_string()));
                headers.push((signature::SIGNATURE_HEADER.to_string(), signature::sign(secret, ts, &body)));
                headers.extend(custom.iter().cloned());
                (body, |s| (200..300).contains(&s))
            }
            ChannelConfig::Slack { .. } => (render::slack(n), |s| s == 200),
            ChannelConfig::Discord { .. } => (render::discord(n), |s| s == 200 || s == 204),
            ChannelConfig::Teams { .. } => (render::teams(n), |s| (200..300).contains(&s)),
            ChannelConfig::PagerDuty { routing_key } => (render::pagerduty(n, routing_key), |s| s == 202 || s == 200),
            ChannelConfig::Email(_) => return failed("channel type and target disagree"),
        };
        match self.outbound.http.post(&url, "application/json", &headers, body).await {
            Ok(reply) if ok(reply.status) => Attempt::Sent { status: Some(reply.status) },
            Ok(reply) => {
                let error = format!("the receiver answered HTTP {}: {}", reply.status, clip(reply.body.trim(), 200));
                let status = Some(reply.status);
                if reply.status == 429 || reply.status == 408 || reply.status >= 500 {
                    let after = reply.retry_after.map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    Attempt::Retry { error, status, after }
                } else {
                    Attempt::Failed { error, status }
                }
            }
            Err(e) => from_outbound(e),
        }
    }
}
