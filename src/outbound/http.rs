//! The one HTTP client for user-configured destinations (notification
//! channels). Every request goes through `security::ssrf`:
//!
//! * the URL was validated by [`OutboundPolicy::validate_url`] (and the
//!   channel's host lock) and is re-validated here from its parsed form;
//! * names are resolved only through [`PinnedDns`], reqwest's DNS hook: it
//!   asks our [`Resolve`], refuses the whole answer if any address is not
//!   allowed, and hands the connector exactly one checked address. The
//!   connector can therefore never dial an address the policy did not
//!   approve — not on a reconnect, not for Happy Eyeballs — while TLS (SNI,
//!   certificate name) and the Host header keep the name from the URL;
//! * redirects are off (a 3xx is an answer, not an instruction), proxies
//!   from the environment are ignored, reqwest's own retries are off (the
//!   outbox owns retrying), connect and total time are bounded, and at most
//!   [`MAX_RESPONSE_BYTES`] of the answer is read.
//!
//! Errors are our own categories ([`OutboundError`]); reqwest's text, which
//! quotes the URL (and with it any token in the path), never leaves here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolving};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::OutboundError;
use crate::security::ssrf::{CheckedUrl, OutboundPolicy, Resolve, SsrfError, TargetHost};

/// Bytes of a response body kept (for the delivery log and the test
/// endpoint); the rest is never read.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024;
/// Upper bound on connection set-up (TCP and TLS) within the total deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const AGENT: &str = concat!("palisade/", env!("CARGO_PKG_VERSION"), " (notifications)");

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    /// At most [`MAX_RESPONSE_BYTES`] of the body, lossily decoded.
    pub body: String,
    /// `Retry-After` in seconds, when the receiver sent the numeric form.
    pub retry_after: Option<u64>,
}

/// reqwest's DNS hook: resolve through our resolver, vet through the policy,
/// return only the pinned address.
struct PinnedDns {
    policy: Arc<OutboundPolicy>,
    resolver: Arc<dyn Resolve>,
}

impl reqwest::dns::Resolve for PinnedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, resolver) = (self.policy.clone(), self.resolver.clone());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in afterwards.
            let target = TargetHost::Domain(host);
            let pinned = policy.resolve_checked(&target, 0, resolver.as_ref()).await?;
            let addrs: Addrs = Box::new(std::iter::once(pinned));
            Ok(addrs)
        })
    }
}

/// Shared by every channel; cheap to clone. Connection pools are keyed by
/// scheme, host name and port, so a TLS session negotiated for one name is
/// never reused for another name that happens to share an address.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    total_timeout: Duration,
}

impl HttpClient {
    pub fn new(
        policy: Arc<OutboundPolicy>,
        resolver: Arc<dyn Resolve>,
        total_timeout: Duration,
    ) -> Result<HttpClient, OutboundError> {
        let dns = PinnedDns { policy: policy.clone(), resolver };
        let client = reqwest::Client::builder()
            .dns_resolver(dns)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .referer(false)
            .connect_timeout(CONNECT_TIMEOUT.min(total_timeout))
            .timeout(total_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .user_agent(AGENT)
            .build()
            .map_err(|_| OutboundError::Setup)?;
        Ok(HttpClient { client, policy, total_timeout })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// POST `body` to a checked URL. `headers` were validated by the caller
    /// (channel config rules); names or values that still do not form a
    /// header are refused rather than skipped.
    pub async fn post(
        &self,
        url: &CheckedUrl,
        content_type: &'static str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<HttpReply, OutboundError> {
        // Re-validate the parsed URL itself: a `CheckedUrl` may have been
        // built under an older policy (or a stored row).
        let again = self.policy.validate_url(url.url().as_str())?;
        if let TargetHost::Ip(addr) = again.host() {
            // IP literals never reach the DNS hook; judge them here.
            if !self.policy.is_ip_allowed(*addr) {
                return Err(OutboundError::Policy(SsrfError::AddressNotAllowed));
            }
        }
        let mut request = self
            .client
            .post(again.url().clone())
            .header(CONTENT_TYPE, content_type)
            // Compressed answers would need a bounded decompressor; asking
            // for none keeps the size cap honest.
            .header(ACCEPT_ENCODING, "identity");
        for (name, value) in headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| OutboundError::Policy(SsrfError::InvalidHeader))?;
            let value = HeaderValue::from_str(value).map_err(|_| OutboundError::Policy(SsrfError::InvalidHeader))?;
            if name == USER_AGENT || name == CONTENT_TYPE {
                return Err(OutboundError::Policy(SsrfError::HeaderNotAllowed));
            }
            request = request.header(name, value);
        }
        let send = async {
            let mut response = request.body(body).send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let mut kept = Vec::new();
            while kept.len() < MAX_RESPONSE_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = MAX_RESPONSE_BYTES - kept.len();
                        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Ok(None) => break,
                    // The status is what matters; a body cut short is kept
                    // as far as it came.
                    Err(_) => break,
                }
            }
            Ok(HttpReply { status, body: String::from_utf8_lossy(&kept).into_owned(), retry_after })
        };
        // reqwest's timeout covers the body too; this outer bound also
        // covers our own chunk loop, so nothing here can outlive it.
        match tokio::time::timeout(self.total_timeout + Duration::from_millis(500), send).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout),
        }
    }
}

/// Map reqwest's error to our categories without keeping its text. A policy
/// refusal from the DNS hook travels inside the error chain.
fn classify(e: reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(ssrf) = err.downcast_ref::<SsrfError>() {
            return OutboundError::Policy(*ssrf);
        }
        source = err.source();
    }
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_connect() {
        OutboundError::Connect
    } else {
        OutboundError::Protocol
    }
}

/// The address a pinned connection would use for `url`, resolved and
/// checked exactly as the DNS hook does (for diagnostics and tests).
pub async fn pinned_addr(
    policy: &OutboundPolicy,
    resolver: &dyn Resolve,
    url: &CheckedUrl,
) -> Result<SocketAddr, SsrfError> {
    policy.resolve_checked(url.host(), url.port(), resolver).await
}
