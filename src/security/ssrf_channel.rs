//! Per-channel restrictions layered on top of the generic outbound policy:
//! provider host locks, the Telegram token format and custom webhook
//! headers. Run them at config time *and* at dispatch, so a row written by
//! an older version or edited in the database is judged by today's rules.

use super::{CheckedUrl, OutboundPolicy, Scheme, SsrfError, TargetHost};

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const PAGERDUTY_HOST: &str = "events.pagerduty.com";
const PAGERDUTY_PATH: &str = "/v2/enqueue";
const TELEGRAM_HOST: &str = "api.telegram.org";
const SLACK_HOST: &str = "hooks.slack.com";
const DISCORD_HOSTS: [&str; 4] = ["discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"];
const TEAMS_HOST: &str = "outlook.office.com";
/// Teams tenants get their own label under these; the leading dot is what
/// stops `evilwebhook.office.com` from matching.
const TEAMS_SUFFIXES: [&str; 2] = [".webhook.office.com", ".logic.azure.com"];

const MAX_BOT_TOKEN_LEN: usize = 256;
const MAX_CHAT_ID_LEN: usize = 128;

pub const MAX_CUSTOM_HEADERS: usize = 20;
pub const MAX_HEADER_NAME_LEN: usize = 100;
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Headers a user may not set: they would let a webhook config smuggle
/// requests (framing, hop-by-hop), impersonate the brain or a proxy hop,
/// forge our signature, or defeat the bounded-decompression guard.
const RESERVED_HEADERS: [&str; 21] = [
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "accept-encoding",
    "x-z4j-signature",
    "x-z4j-timestamp",
];

/// Channel types whose destination is a fixed provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLock {
    Slack,
    Discord,
    Teams,
    Telegram,
    PagerDuty,
}

impl HostLock {
    /// `webhook` and `email` have no lock and return `None`.
    pub fn for_channel_type(kind: &str) -> Option<Self> {
        match kind {
            "slack" => Some(Self::Slack),
            "discord" => Some(Self::Discord),
            "teams" => Some(Self::Teams),
            "telegram" => Some(Self::Telegram),
            "pagerduty" => Some(Self::PagerDuty),
            _ => None,
        }
    }

    /// Check a URL that already passed [`OutboundPolicy::validate_url`].
    /// Hosts compare by equality on the normalised name; the only suffix
    /// match is the Teams tenant form, anchored on a leading dot.
    pub fn check(self, checked: &CheckedUrl) -> Result<(), SsrfError> {
        // Providers are HTTPS-only on the default port whatever the operator
        // allows for generic webhooks.
        if checked.scheme != Scheme::Https {
            return Err(SsrfError::SchemeNotAllowed);
        }
        if checked.port != 443 {
            return Err(SsrfError::PortNotAllowed);
        }
        let TargetHost::Domain(host) = &checked.host else {
            return Err(SsrfError::HostNotAllowed);
        };
        // Only Teams tolerates `outlook.office.com.` (as z4j and the corpus
        // do); the other providers never hand out such URLs.
        if checked.had_trailing_dot && self != Self::Teams {
            return Err(SsrfError::HostNotAllowed);
        }
        let host = host.as_str();
        let path = checked.url.path();
        match self {
            Self::Slack => require(host == SLACK_HOST),
            Self::Discord => {
                require(DISCORD_HOSTS.contains(&host))?;
                path_ok(discord_path(path))
            }
            Self::Teams => require(
                host == TEAMS_HOST
                    || TEAMS_SUFFIXES.iter().any(|s| host.strip_suffix(s).is_some_and(|tenant| !tenant.is_empty())),
            ),
            Self::Telegram => {
                require(host == TELEGRAM_HOST)?;
                let token = path.strip_prefix("/bot").and_then(|p| p.strip_suffix("/sendMessage"));
                path_ok(token.is_some_and(bot_token_ok) && checked.url.query().is_none())
            }
            Self::PagerDuty => {
                require(host == PAGERDUTY_HOST)?;
                path_ok(path == PAGERDUTY_PATH && checked.url.query().is_none())
            }
        }
    }
}

fn require(ok: bool) -> Result<(), SsrfError> {
    ok.then_some(()).ok_or(SsrfError::HostNotAllowed)
}

fn path_ok(ok: bool) -> Result<(), SsrfError> {
    ok.then_some(()).ok_or(SsrfError::PathNotAllowed)
}

/// `/api/webhooks/...` or the versioned `/api/v10/webhooks/...`.
fn discord_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/") else {
        return false;
    };
    let rest = match rest.strip_prefix('v').and_then(|r| r.split_once('/')) {
        Some((version, tail)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => tail,
        _ => rest,
    };
    rest.strip_prefix("webhooks/").is_some_and(|tail| !tail.is_empty())
}

/// `^\d+:[A-Za-z0-9_-]+$`, matched exactly (no trailing-newline leniency).
fn bot_token_ok(token: &str) -> bool {
    token.len() <= MAX_BOT_TOKEN_LEN
        && token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `^(-?\d+|@[A-Za-z0-9_]+)$`.
fn chat_id_ok(chat_id: &str) -> bool {
    if chat_id.len() > MAX_CHAT_ID_LEN {
        return false;
    }
    if let Some(handle) = chat_id.strip_prefix('@') {
        return !handle.is_empty() && handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    }
    let digits = chat_id.strip_prefix('-').unwrap_or(chat_id);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The token is interpolated into the request path, so its format is what
/// keeps a config from steering the request elsewhere (`123:x@evil/#`).
pub fn validate_telegram_config(bot_token: &str, chat_id: &str) -> Result<(), SsrfError> {
    if !bot_token_ok(bot_token) {
        return Err(SsrfError::InvalidBotToken);
    }
    if !chat_id_ok(chat_id) {
        return Err(SsrfError::InvalidChatId);
    }
    Ok(())
}

impl OutboundPolicy {
    /// The `sendMessage` URL for a bot, re-validated end to end.
    pub fn telegram_send_url(&self, bot_token: &str) -> Result<CheckedUrl, SsrfError> {
        if !bot_token_ok(bot_token) {
            return Err(SsrfError::InvalidBotToken);
        }
        let checked = self.validate_url(&format!("https://{TELEGRAM_HOST}/bot{bot_token}/sendMessage"))?;
        HostLock::Telegram.check(&checked)?;
        Ok(checked)
    }

    /// The fixed PagerDuty Events v2 endpoint, through the same pipeline so
    /// it is resolved and pinned like any other target.
    pub fn pagerduty_url(&self) -> Result<CheckedUrl, SsrfError> {
        let checked = self.validate_url(PAGERDUTY_EVENTS_URL)?;
        HostLock::PagerDuty.check(&checked)?;
        Ok(checked)
    }
}

/// One custom webhook header.
pub fn validate_header(name: &str, value: &str) -> Result<(), SsrfError> {
    // RFC 9110 token characters only: anything else cannot be a header name
    // and would be mangled or rejected further down the stack.
    let name_ok = !name.is_empty()
        && name.len() <= MAX_HEADER_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    // CR/LF would split the header; other controls are refused along with
    // them because HTTP stacks disagree on how to treat them.
    let value_ok = value.len() <= MAX_HEADER_VALUE_LEN && !value.chars().any(|c| c.is_control() && c != '\t');
    if !name_ok || !value_ok {
        return Err(SsrfError::InvalidHeader);
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Err(SsrfError::HeaderNotAllowed);
    }
    Ok(())
}

/// A whole custom-header map: count, duplicates (case-insensitive, since a
/// second copy would be merged or picked unpredictably) and each entry.
pub fn validate_headers<'a, I>(headers: I) -> Result<(), SsrfError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in headers {
        if seen.len() == MAX_CUSTOM_HEADERS {
            return Err(SsrfError::TooManyHeaders);
        }
        validate_header(name, value)?;
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(SsrfError::InvalidHeader);
        }
        seen.push(lower);
    }
    Ok(())
}
