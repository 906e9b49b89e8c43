//! SMTP for email notification channels, whose server is user-supplied.
//!
//! The server name is resolved and checked through the SSRF policy on every
//! delivery, and lettre is handed the checked *address* to dial, while TLS
//! verifies the certificate against the *name* the user configured. So the
//! connection is pinned (a rebinding DNS server cannot swap the address
//! between check and dial, unlike z4j, which let the SMTP library resolve
//! again), and credentials only ever travel inside TLS.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use super::OutboundError;
use crate::security::ssrf::{OutboundPolicy, Resolve, SmtpTarget, TargetHost};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which must succeed.
    StartTls,
    /// No encryption; refused when credentials are configured.
    None,
}

/// One message to send.
pub struct SmtpMessage<'a> {
    pub security: SmtpSecurity,
    /// `(user, password)`; the password is wiped when dropped.
    pub credentials: Option<(String, Zeroizing<String>)>,
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: String,
}

#[derive(Clone)]
pub struct SmtpSender {
    policy: Arc<OutboundPolicy>,
    resolver: Arc<dyn Resolve>,
    timeout: Duration,
    hello: ClientId,
}

impl SmtpSender {
    pub fn new(policy: Arc<OutboundPolicy>, resolver: Arc<dyn Resolve>, timeout: Duration, hello: &str) -> SmtpSender {
        SmtpSender { policy, resolver, timeout, hello: ClientId::Domain(hello.to_owned()) }
    }

    pub async fn send(&self, target: &SmtpTarget, msg: SmtpMessage<'_>) -> Result<(), OutboundError> {
        if msg.credentials.is_some() && msg.security == SmtpSecurity::None {
            return Err(OutboundError::TlsRequired);
        }
        let message = build(&msg)?;
        let pinned = self.policy.resolve_checked(&target.host, target.port, self.resolver.as_ref()).await?;
        // The certificate must match what the user configured, not the
        // address we dial.
        let tls_name = match &target.host {
            TargetHost::Domain(name) => name.clone(),
            TargetHost::Ip(addr) => addr.to_string(),
        };
        let tls = |name: String| TlsParameters::new(name).map_err(|_| OutboundError::Setup);
        let tls = match msg.security {
            SmtpSecurity::Tls => Tls::Wrapper(tls(tls_name)?),
            SmtpSecurity::StartTls => Tls::Required(tls(tls_name)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(pinned.ip().to_string())
            .port(pinned.port())
            .tls(tls)
            .hello_name(self.hello.clone())
            .timeout(Some(self.timeout));
        if let Some((user, pass)) = &msg.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.to_string()));
        }
        let transport = builder.build();
        let sent = tokio::time::timeout(self.timeout + Duration::from_secs(1), transport.send(message)).await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(OutboundError::SmtpRejected),
            Ok(Err(e)) if e.is_timeout() => Err(OutboundError::Timeout),
            Ok(Err(e)) if e.is_transient() || e.is_response() => Err(OutboundError::Protocol),
            Ok(Err(_)) => Err(OutboundError::Connect),
            Err(_) => Err(OutboundError::Timeout),
        }
    }
}

fn build(msg: &SmtpMessage<'_>) -> Result<Message, OutboundError> {
    let from: Mailbox = msg.from.parse().map_err(|_| OutboundError::Message)?;
    // Subjects come from task data: no line breaks (lettre encodes headers,
    // but a clean single line is what every client shows correctly).
    let subject: String = msg.subject.chars().filter(|c| !c.is_control()).take(200).collect();
    let mut builder = Message::builder().from(from).subject(subject).header(ContentType::TEXT_PLAIN);
    for to in msg.to {
        builder = builder.to(to.parse::<Mailbox>().map_err(|_| OutboundError::Message)?);
    }
    builder.body(msg.body.clone()).map_err(|_| OutboundError::Message)
}
