//! Outbound mail: the one place that opens SMTP connections, and the text of
//! the messages the server sends (invitations, password resets).
//!
//! The server is configured by the operator (`PALISADE_SMTP_URL`), not by
//! users, so it is not run through the SSRF policy: pointing it at a relay
//! on loopback or on the private network is the normal deployment. What is
//! refused is sending SMTP credentials in clear text to another host.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Bound on one delivery (connect, TLS, dialogue), so a dead relay cannot
/// hold a request or a background task for long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("PALISADE_SMTP_URL is not a usable SMTP URL (smtp://host[:port][?tls=required|opportunistic] or smtps://host[:port])")]
    BadUrl,
    #[error(
        "PALISADE_SMTP_URL would send credentials in clear text to a non-loopback host; use smtps:// or ?tls=required"
    )]
    CleartextCredentials,
    #[error("PALISADE_SMTP_FROM is not a valid email address")]
    BadFrom,
    #[error("no SMTP server is configured")]
    NotConfigured,
    #[error("the recipient address is not valid")]
    BadRecipient,
    #[error("the message could not be built")]
    Build,
    #[error("SMTP delivery failed: {0}")]
    Send(String),
}

/// Holds the SMTP credentials (inside the transport), so it is never
/// `Debug`: a stray `{:?}` cannot print them.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

crate::assert_not_impl!(Mailer, std::fmt::Debug);

fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// Refuse a URL that would put a password on the wire unencrypted.
fn check_url(raw: &str) -> Result<(), MailError> {
    let url = url::Url::parse(raw).map_err(|_| MailError::BadUrl)?;
    let host = url.host().ok_or(MailError::BadUrl)?;
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let encrypted = url.scheme() == "smtps" || tls.as_deref() == Some("required");
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    if has_credentials && !encrypted && !loopback(&host) {
        return Err(MailError::CleartextCredentials);
    }
    Ok(())
}

impl Mailer {
    pub fn disabled() -> Mailer {
        Mailer { transport: None, from: default_from(None) }
    }

    /// Build from the operator's settings; `smtp_url: None` disables mail
    /// (links are then shown to the admin who created them instead).
    pub fn from_config(smtp_url: Option<&str>, from: Option<&str>, public_url: &url::Url) -> Result<Mailer, MailError> {
        let from = match from {
            Some(f) => f.parse::<Mailbox>().map_err(|_| MailError::BadFrom)?,
            None => default_from(public_url.host_str()),
        };
        let Some(raw) = smtp_url else {
            return Ok(Mailer { transport: None, from });
        };
        check_url(raw)?;
        // lettre's own error text can quote the URL, credentials included;
        // it is replaced by ours.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(raw)
            .map_err(|_| MailError::BadUrl)?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(Mailer { transport: Some(transport), from })
    }

    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Send one plain-text message.
    pub async fn send(&self, to: &str, mail: &Mail) -> Result<(), MailError> {
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        let to: Mailbox = to.parse().map_err(|_| MailError::BadRecipient)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|_| MailError::Build)?;
        match tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(1), transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(MailError::Send(e.to_string())),
            Err(_) => Err(MailError::Send("timed out".into())),
        }
    }
}

/// `palisade@<public host>`, or `palisade@localhost` when that host does
/// not make a valid address.
fn default_from(host: Option<&str>) -> Mailbox {
    let address = host
        .and_then(|h| lettre::Address::new("palisade", h).ok())
        // A fixed, known-valid literal; the checked constructor is not
        // needed to know that.
        .unwrap_or_else(|| lettre::Address::new_dangerous("palisade", "localhost"));
    Mailbox::new(Some("Palisade".into()), address)
}

/// One message: subject and plain-text body.
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// A link to a dashboard page carrying a one-time token. The token travels
/// in the fragment, which browsers never send to a server or put in a
/// `Referer`, so it cannot end up in a proxy's access log.
pub fn token_link(public_url: &url::Url, page: &str, token: &str) -> String {
    format!("{}/{page}#token={token}", public_url.as_str().trim_end_matches('/'))
}

pub fn invitation(project_name: &str, role: &str, link: &str, hours: i64) -> Mail {
    // The project name is chosen by an admin; keep it on one line of plain
    // text (headers are encoded by lettre, but a body line break could
    // still be used to forge a convincing second paragraph).
    let name: String = project_name.chars().filter(|c| !c.is_control()).take(200).collect();
    Mail {
        subject: format!("You are invited to {name} on Palisade"),
        body: format!(
            "You have been invited to join the project \"{name}\" on Palisade as {role}.\r\n\r\n\
             Open this link to accept (it works once and expires in {hours} hours):\r\n\r\n\
             {link}\r\n\r\n\
             If you did not expect this invitation, ignore this message.\r\n"
        ),
    }
}

pub fn password_reset(link: &str, minutes: i64) -> Mail {
    Mail {
        subject: "Reset your Palisade password".into(),
        body: format!(
            "Someone (hopefully you) asked to reset the password of this Palisade account.\r\n\r\n\
             Open this link to choose a new password (it works once and expires in {minutes} minutes):\r\n\r\n\
             {link}\r\n\r\n\
             Resetting signs out every session of the account. If you did not ask for this, ignore this message;\r\n\
             your password stays as it is.\r\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn cleartext_credentials_only_to_loopback() {
        let public = url("https://palisade.example.com");
        assert!(Mailer::from_config(Some("smtp://127.0.0.1:2525"), None, &public).unwrap().enabled());
        assert!(Mailer::from_config(Some("smtp://u:p@localhost:25"), None, &public).is_ok());
        assert!(Mailer::from_config(Some("smtp://relay.internal:25"), None, &public).is_ok());
        assert!(matches!(
            Mailer::from_config(Some("smtp://u:p@relay.example.com:25"), None, &public),
            Err(MailError::CleartextCredentials)
        ));
        assert!(Mailer::from_config(Some("smtp://u:p@relay.example.com?tls=required"), None, &public).is_ok());
        assert!(Mailer::from_config(Some("smtps://u:p@relay.example.com"), None, &public).is_ok());
        assert!(matches!(Mailer::from_config(Some("http://x"), None, &public), Err(MailError::BadUrl)));
        assert!(matches!(Mailer::from_config(Some("not a url"), None, &public), Err(MailError::BadUrl)));
        assert!(!Mailer::from_config(None, None, &public).unwrap().enabled());
    }

    #[test]
    fn errors_never_quote_the_url() {
        let public = url("https://palisade.example.com");
        let err = Mailer::from_config(Some("smtp://u:hunter2@relay.example.com:25"), None, &public).err().unwrap();
        assert!(!err.to_string().contains("hunter2"));
        let err = Mailer::from_config(Some("ftp://u:hunter2@x"), None, &public).err().unwrap();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn sender_defaults() {
        assert_eq!(default_from(Some("palisade.example.com")).email.to_string(), "palisade@palisade.example.com");
        assert_eq!(default_from(None).email.to_string(), "palisade@localhost");
        let public = url("https://x.example");
        assert!(matches!(Mailer::from_config(None, Some("not an address"), &public), Err(MailError::BadFrom)));
        assert!(Mailer::from_config(None, Some("Ops <ops@x.example>"), &public).is_ok());
    }

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        assert_eq!(token_link(&url("https://p.example/"), "invite", "abc"), "https://p.example/invite#token=abc");
        let m = invitation("Evil\r\nBcc: x@y", "viewer", "https://p/invite#token=t", 72);
        assert!(m.subject.starts_with("You are invited to EvilBcc: x@y"));
        assert!(m.body.contains("https://p/invite#token=t"));
    }
}
