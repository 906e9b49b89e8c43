//! Everything that reaches out of the process on the product's behalf.
//! Project rule: nothing outside `src/outbound/` opens an SMTP connection or
//! builds an HTTP client, so every outbound path can be reviewed (and
//! SSRF-guarded where the destination is user-supplied) in one place.
//! `tests/outbound_invariant.rs` fails the build's tests if that changes.
//!
//! * `mail` — the operator's relay for invitations and password resets
//!   (operator-configured, so not run through the SSRF policy);
//! * `http` and `smtp` — notification channels, whose destinations are
//!   user-supplied: resolved, checked and pinned through `security::ssrf`.

pub mod http;
pub mod mail;
pub mod policy_log;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use crate::security::ssrf::{OutboundPolicy, Resolve, SsrfError};

/// Why an outbound delivery did not happen. No variant carries text from a
/// library, an address, or a URL, so `Display` is safe for logs, audit rows
/// and API answers alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("refused by the outbound policy: {}", .0.public_message())]
    Policy(SsrfError),
    #[error("the connection could not be established")]
    Connect,
    #[error("the receiver did not answer in time")]
    Timeout,
    #[error("the exchange with the receiver failed")]
    Protocol,
    #[error("TLS is required to send credentials")]
    TlsRequired,
    #[error("the SMTP server refused the message")]
    SmtpRejected,
    #[error("the message could not be built")]
    Message,
    #[error("the outbound client could not be set up")]
    Setup,
}

impl From<SsrfError> for OutboundError {
    fn from(e: SsrfError) -> Self {
        OutboundError::Policy(e)
    }
}

impl OutboundError {
    /// Stable snake_case code for delivery rows and metrics.
    pub fn code(self) -> &'static str {
        match self {
            OutboundError::Policy(e) => e.code(),
            OutboundError::Connect => "connect_failed",
            OutboundError::Timeout => "timeout",
            OutboundError::Protocol => "protocol_error",
            OutboundError::TlsRequired => "tls_required",
            OutboundError::SmtpRejected => "smtp_rejected",
            OutboundError::Message => "bad_message",
            OutboundError::Setup => "setup_failed",
        }
    }

    /// Worth trying again later? Network trouble is; a policy refusal or a
    /// malformed message will not change by waiting (except a name that did
    /// not resolve, which may be a passing DNS failure).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            OutboundError::Connect
                | OutboundError::Timeout
                | OutboundError::Protocol
                | OutboundError::Policy(SsrfError::ResolutionFailed)
        )
    }
}

/// The outbound side of notifications: the policy, the resolver every name
/// goes through, the shared HTTP client and the SMTP sender.
#[derive(Clone)]
pub struct Outbound {
    pub policy: Arc<OutboundPolicy>,
    pub resolver: Arc<dyn Resolve>,
    pub http: http::HttpClient,
    pub smtp: smtp::SmtpSender,
}

impl Outbound {
    /// `hello_name` is what we call ourselves in SMTP `EHLO` (the public
    /// host), so the machine's own hostname is not announced to strangers.
    pub fn new(
        policy: OutboundPolicy,
        resolver: Arc<dyn Resolve>,
        timeout: Duration,
        hello_name: &str,
    ) -> Result<Outbound, OutboundError> {
        let policy = Arc::new(policy);
        let http = http::HttpClient::new(policy.clone(), resolver.clone(), timeout)?;
        let smtp = smtp::SmtpSender::new(policy.clone(), resolver.clone(), timeout, hello_name);
        Ok(Outbound { policy, resolver, http, smtp })
    }
}
