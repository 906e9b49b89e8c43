//! Outbound-request (SSRF) policy: which URLs, hosts and addresses the brain
//! may contact on a user's behalf (webhooks, chat providers, SMTP).
//!
//! One parser decides everything: the WHATWG parser of the `url` crate. The
//! raw string is only scanned lexically to *refuse* inputs that the parser
//! would silently repair (leading spaces, `https:/host`, numeric hosts such
//! as `2130706433`); the dial target always comes from the parsed [`Url`].
//!
//! Name-based targets are resolved through [`Resolve`], every answer is
//! vetted by [`OutboundPolicy::check_resolved`], and the caller connects to
//! the returned address only (pinning), so a rebinding DNS server cannot
//! swap in an internal address between the check and the dial.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

#[path = "ssrf_channel.rs"]
mod channel;
#[path = "ssrf_ip.rs"]
mod ip;
#[cfg(test)]
#[path = "ssrf_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "ssrf_unit_tests.rs"]
mod unit_tests;

pub use channel::{
    validate_header, validate_headers, validate_telegram_config, HostLock, MAX_CUSTOM_HEADERS, MAX_HEADER_NAME_LEN,
    MAX_HEADER_VALUE_LEN, PAGERDUTY_EVENTS_URL,
};
pub use ip::is_globally_routable;

/// Longer URLs are refused before parsing; real webhook URLs are far shorter
/// and the cap bounds the work any single config can cause.
pub const MAX_URL_LEN: usize = 2048;
/// Bound on a resolver call so a slow or hostile DNS server cannot hold a
/// dispatch worker.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// z4j's SMTP allow-list; 2525 is kept because hosted mail relays use it as
/// the alternate submission port and existing configs depend on it.
pub const DEFAULT_SMTP_PORTS: [u16; 4] = [25, 465, 587, 2525];

const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Refused before any DNS lookup. The address checks would catch them too,
/// but not if `/etc/hosts` or a search domain maps them somewhere odd.
const DENIED_NAMES: [&str; 5] =
    ["localhost", "localhost.localdomain", "metadata", "metadata.google.internal", "instance-data"];

/// Why a target was refused. Variants deliberately carry no data, so no
/// internal address, resolved IP or DNS detail can leak through `Display`,
/// logs, audit rows or API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsrfError {
    #[error("invalid URL")]
    InvalidUrl,
    #[error("URL too long")]
    UrlTooLong,
    #[error("scheme not allowed")]
    SchemeNotAllowed,
    #[error("userinfo not allowed")]
    UserinfoNotAllowed,
    #[error("fragment not allowed")]
    FragmentNotAllowed,
    #[error("port not allowed")]
    PortNotAllowed,
    #[error("missing host")]
    MissingHost,
    #[error("numeric host is not a dotted quad")]
    NonCanonicalHost,
    #[error("host not allowed")]
    HostNotAllowed,
    #[error("path not allowed")]
    PathNotAllowed,
    #[error("address not allowed")]
    AddressNotAllowed,
    #[error("name resolution failed")]
    ResolutionFailed,
    #[error("invalid header")]
    InvalidHeader,
    #[error("header not allowed")]
    HeaderNotAllowed,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("invalid bot token")]
    InvalidBotToken,
    #[error("invalid chat id")]
    InvalidChatId,
}

impl SsrfError {
    /// Stable snake_case code for logs, audit rows and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::UrlTooLong => "url_too_long",
            Self::SchemeNotAllowed => "scheme_not_allowed",
            Self::UserinfoNotAllowed => "userinfo_not_allowed",
            Self::FragmentNotAllowed => "fragment_not_allowed",
            Self::PortNotAllowed => "port_not_allowed",
            Self::MissingHost => "missing_host",
            Self::NonCanonicalHost => "non_canonical_host",
            Self::HostNotAllowed => "host_not_allowed",
            Self::PathNotAllowed => "path_not_allowed",
            Self::AddressNotAllowed => "address_not_allowed",
            Self::ResolutionFailed => "resolution_failed",
            Self::InvalidHeader => "invalid_header",
            Self::HeaderNotAllowed => "header_not_allowed",
            Self::TooManyHeaders => "too_many_headers",
            Self::InvalidBotToken => "invalid_bot_token",
            Self::InvalidChatId => "invalid_chat_id",
        }
    }

    /// Text safe to return to an API caller. Outcomes that depend on DNS
    /// share one message: distinguishing "resolves to a private address"
    /// from "does not resolve" would let any user with a channel probe the
    /// internal DNS zone.
    pub fn public_message(self) -> &'static str {
        match self {
            Self::InvalidUrl => "the URL is not valid",
            Self::UrlTooLong => "the URL is too long",
            Self::SchemeNotAllowed => "the URL scheme is not allowed",
            Self::UserinfoNotAllowed => "credentials in the URL are not allowed",
            Self::FragmentNotAllowed => "URL fragments are not allowed",
            Self::PortNotAllowed => "the port is not allowed",
            Self::MissingHost => "a host is required",
            Self::NonCanonicalHost => "numeric hosts must be written as a dotted quad",
            Self::HostNotAllowed => "the host is not allowed",
            Self::PathNotAllowed => "the URL path is not allowed for this channel",
            Self::AddressNotAllowed | Self::ResolutionFailed => "target rejected by policy",
            Self::InvalidHeader => "a custom header name or value is invalid",
            Self::HeaderNotAllowed => "a custom header name is reserved",
            Self::TooManyHeaders => "too many custom headers",
            Self::InvalidBotToken => "the bot token format is invalid",
            Self::InvalidChatId => "the chat id must be an integer or an @handle",
        }
    }
}

/// Operator configuration. Set from the environment only, never through the
/// API, since every field widens what users can make the brain contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Permit `http://` and port 80 (off by default: payloads and custom
    /// headers would cross the network in clear text).
    pub allow_http: bool,
    /// HTTP(S) ports allowed besides 443 (and 80 with `allow_http`).
    pub extra_ports: Vec<u16>,
    /// Private ranges that self-hosted receivers live in. Loopback, cloud
    /// metadata, multicast, unspecified and IPv4-mapped addresses stay
    /// refused even when covered.
    pub allowed_cidrs: Vec<IpNet>,
    /// Permit the loopback addresses that `allowed_cidrs` lists (and only
    /// those); a separate switch so that a broad allow-list cannot expose
    /// services bound to localhost by accident.
    pub allow_loopback: bool,
    /// SMTP ports allowed besides [`DEFAULT_SMTP_PORTS`].
    pub smtp_extra_ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A validated host: a normalised DNS name (lowercase ASCII, IDNA applied,
/// no trailing dot) or an IP literal that already passed the address policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    Domain(String),
    Ip(IpAddr),
}

/// A URL that passed [`OutboundPolicy::validate_url`]. The request must be
/// built from [`CheckedUrl::url`], never from the original string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    url: Url,
    host: TargetHost,
    port: u16,
    scheme: Scheme,
    /// Recorded because some host locks refuse `hooks.slack.com.` while the
    /// generic policy accepts it as the same DNS name.
    had_trailing_dot: bool,
}

impl CheckedUrl {
    pub fn url(&self) -> &Url {
        &self.url
    }
    pub fn into_url(self) -> Url {
        self.url
    }
    pub fn host(&self) -> &TargetHost {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

/// An SMTP destination that passed [`OutboundPolicy::validate_smtp_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: TargetHost,
    pub port: u16,
}

pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Name resolution, abstracted so tests (and the HTTP client's DNS hook) can
/// supply answers. Implementations return every address, unfiltered; the
/// policy decides.
pub trait Resolve: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a>;
}

/// The operating system's resolver (`getaddrinfo` via tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, port)).await?;
            Ok(addrs.map(|sa| sa.ip()).collect())
        })
    }
}

impl OutboundPolicy {
    /// Validate a webhook-style URL. Name-based hosts still need
    /// [`Self::resolve_checked`] before dialling.
    pub fn validate_url(&self, raw: &str) -> Result<CheckedUrl, SsrfError> {
        let raw_host = lexical_precheck(raw, self.allow_http)?;
        let mut url = Url::parse(raw).map_err(|err| match err {
            url::ParseError::InvalidPort => SsrfError::PortNotAllowed,
            url::ParseError::EmptyHost => SsrfError::MissingHost,
            _ => SsrfError::InvalidUrl,
        })?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" if self.allow_http => Scheme::Http,
            _ => return Err(SsrfError::SchemeNotAllowed),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::UserinfoNotAllowed);
        }
        // Meaningless for a POST and a favourite hiding place for `@` tricks.
        if url.fragment().is_some() {
            return Err(SsrfError::FragmentNotAllowed);
        }
        let port = url.port_or_known_default().ok_or(SsrfError::InvalidUrl)?;
        if !self.http_port_allowed(port) {
            return Err(SsrfError::PortNotAllowed);
        }
        let parsed_host = url.host().ok_or(SsrfError::MissingHost)?.to_owned();
        let (host, had_trailing_dot) = self.check_host(parsed_host, raw_host)?;
        if let (TargetHost::Domain(name), true) = (&host, had_trailing_dot) {
            // Dial, SNI and Host header must all use the canonical name.
            url.set_host(Some(name)).map_err(|_| SsrfError::InvalidUrl)?;
        }
        Ok(CheckedUrl { url, host, port, scheme, had_trailing_dot })
    }

    /// Validate an SMTP host and port from a channel config.
    pub fn validate_smtp_target(&self, host: &str, port: u16) -> Result<SmtpTarget, SsrfError> {
        if host.trim().is_empty() {
            return Err(SsrfError::MissingHost);
        }
        if host.len() > MAX_HOST_LEN + 1
            || host.chars().any(|c| c.is_control() || c.is_whitespace() || "%\\@/".contains(c))
        {
            return Err(SsrfError::InvalidUrl);
        }
        if port == 0 || !(DEFAULT_SMTP_PORTS.contains(&port) || self.smtp_extra_ports.contains(&port)) {
            return Err(SsrfError::PortNotAllowed);
        }
        let parsed = if host.contains(':') {
            let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            Host::Ipv6(bare.parse::<Ipv6Addr>().map_err(|_| SsrfError::InvalidUrl)?)
        } else {
            Host::parse(host).map_err(|_| SsrfError::InvalidUrl)?
        };
        let (host, _) = self.check_host(parsed, host)?;
        Ok(SmtpTarget { host, port })
    }

    /// The policy decision for a single address.
    pub fn is_ip_allowed(&self, addr: IpAddr) -> bool {
        ip::address_allowed(addr, &self.allowed_cidrs, self.allow_loopback)
    }

    /// Vet a resolver answer for `host` and return the address to pin.
    /// The whole answer is refused if any address is: picking "a good one"
    /// would let an attacker-controlled zone mix in an internal address that
    /// a later reconnect or Happy-Eyeballs attempt might use.
    pub fn check_resolved(&self, host: &str, addrs: &[IpAddr]) -> Result<IpAddr, SsrfError> {
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if name_denied(&name) {
            return Err(SsrfError::HostNotAllowed);
        }
        let first = *addrs.first().ok_or(SsrfError::ResolutionFailed)?;
        if addrs.iter().all(|&addr| self.is_ip_allowed(addr)) {
            Ok(first)
        } else {
            Err(SsrfError::AddressNotAllowed)
        }
    }

    /// Resolve (for names) and vet a validated host, returning the socket
    /// address to connect to. Call it for every connection attempt, not once
    /// per config, so a changed DNS answer is judged again.
    pub async fn resolve_checked(
        &self,
        host: &TargetHost,
        port: u16,
        resolver: &dyn Resolve,
    ) -> Result<SocketAddr, SsrfError> {
        let addr = match host {
            TargetHost::Ip(addr) if self.is_ip_allowed(*addr) => *addr,
            TargetHost::Ip(_) => return Err(SsrfError::AddressNotAllowed),
            TargetHost::Domain(name) => {
                let answer = tokio::time::timeout(DNS_TIMEOUT, resolver.resolve(name, port))
                    .await
                    .map_err(|_| SsrfError::ResolutionFailed)?
                    .map_err(|_| SsrfError::ResolutionFailed)?;
                self.check_resolved(name, &answer)?
            }
        };
        Ok(SocketAddr::new(addr, port))
    }

    fn http_port_allowed(&self, port: u16) -> bool {
        port == 443 || (port == 80 && self.allow_http) || (port != 0 && self.extra_ports.contains(&port))
    }

    /// Shared by URLs and SMTP hosts. `raw_host` is the host as the user
    /// wrote it, used only to refuse IPv4 spellings other than a dotted quad.
    fn check_host(&self, host: Host<String>, raw_host: &str) -> Result<(TargetHost, bool), SsrfError> {
        match host {
            Host::Domain(name) => {
                let (name, had_trailing_dot) = normalise_domain(&name)?;
                if name_denied(&name) {
                    return Err(SsrfError::HostNotAllowed);
                }
                Ok((TargetHost::Domain(name), had_trailing_dot))
            }
            Host::Ipv4(addr) => {
                // The WHATWG parser accepts `2130706433`, `0x7f.1`, `0177.0.0.1`
                // and `127.1`; other software reads those differently, so
                // only the unambiguous form is accepted, even for public IPs.
                if !raw_host.eq_ignore_ascii_case(&addr.to_string()) {
                    return Err(SsrfError::NonCanonicalHost);
                }
                self.checked_ip(IpAddr::V4(addr))
            }
            Host::Ipv6(addr) => self.checked_ip(IpAddr::V6(addr)),
        }
    }

    fn checked_ip(&self, addr: IpAddr) -> Result<(TargetHost, bool), SsrfError> {
        if self.is_ip_allowed(addr) {
            Ok((TargetHost::Ip(addr), false))
        } else {
            Err(SsrfError::AddressNotAllowed)
        }
    }
}

/// Refuse-only scan of the raw string; returns the raw host text. Nothing
/// here decides what is dialled.
fn lexical_precheck(raw: &str, allow_http: bool) -> Result<&str, SsrfError> {
    if raw.len() > MAX_URL_LEN {
        return Err(SsrfError::UrlTooLong);
    }
    // The WHATWG parser strips or skips these; refusing them keeps what the
    // user sees identical to what we dial.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(SsrfError::InvalidUrl);
    }
    let (scheme, rest) = raw.split_once(':').ok_or(SsrfError::InvalidUrl)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(SsrfError::InvalidUrl);
    }
    if !(scheme.eq_ignore_ascii_case("https") || (allow_http && scheme.eq_ignore_ascii_case("http"))) {
        return Err(SsrfError::SchemeNotAllowed);
    }
    // `https:host` and `https:/host` parse as `https://host`; `https:///host`
    // skips the empty authority. Require exactly the canonical shape.
    let rest = rest.strip_prefix("//").ok_or(SsrfError::InvalidUrl)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(SsrfError::MissingHost);
    }
    if authority.contains('@') {
        return Err(SsrfError::UserinfoNotAllowed);
    }
    // Percent-encoded hosts and IPv6 zone ids (`%25eth0`).
    if authority.contains('%') {
        return Err(SsrfError::InvalidUrl);
    }
    let raw_host = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(SsrfError::InvalidUrl)?;
        &authority[..=end]
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if raw_host.is_empty() {
        return Err(SsrfError::MissingHost);
    }
    Ok(raw_host)
}

/// `name` is the parser's output (lowercase, IDNA-mapped ASCII). Returns the
/// name without one trailing dot, and whether there was one.
fn normalise_domain(name: &str) -> Result<(String, bool), SsrfError> {
    let (bare, had_trailing_dot) = match name.strip_suffix('.') {
        Some(bare) => (bare, true),
        None => (name, false),
    };
    if bare.is_empty() {
        return Err(SsrfError::MissingHost);
    }
    if bare.len() > MAX_HOST_LEN {
        return Err(SsrfError::InvalidUrl);
    }
    // WHATWG accepts characters such as `!$&'()*+,;=` in domains; DNS
    // hostnames never contain them, so anything outside LDH (plus `_`, seen
    // in real service names) is an attempt at confusion.
    let labels_ok = bare.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if !labels_ok {
        return Err(SsrfError::InvalidUrl);
    }
    Ok((bare.to_owned(), had_trailing_dot))
}

fn name_denied(name: &str) -> bool {
    DENIED_NAMES.contains(&name) || name.ends_with(".localhost")
}
