//! The outbound client against real sockets, with a resolver the test
//! controls: names that resolve to loopback are refused, a rebinding
//! answer (public first, loopback second) is refused whole, the address
//! that was checked is the one dialled (and a later answer is judged
//! again), redirects are not followed, answers are capped, a blackholed
//! receiver times out, and SMTP dials the checked address too. Every
//! address used is on loopback; refused answers are never dialled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_dns::FakeDns;
use common::receiver::Receiver;
use common::smtp_sink::SmtpSink;
use palisade::outbound::http::MAX_RESPONSE_BYTES;
use palisade::outbound::smtp::{SmtpMessage, SmtpSecurity};
use palisade::outbound::{Outbound, OutboundError};
use palisade::security::ssrf::{OutboundPolicy, SsrfError};

fn policy(ports: &[u16], loopback: bool) -> OutboundPolicy {
    OutboundPolicy {
        allow_http: true,
        extra_ports: ports.to_vec(),
        allowed_cidrs: if loopback { vec!["127.0.0.1/32".parse().unwrap()] } else { Vec::new() },
        allow_loopback: loopback,
        smtp_extra_ports: ports.to_vec(),
    }
}

fn client(policy: OutboundPolicy, dns: &Arc<FakeDns>, timeout: Duration) -> Outbound {
    Outbound::new(policy, dns.clone(), timeout, "palisade.test").unwrap()
}

async fn post(out: &Outbound, url: &str) -> Result<palisade::outbound::http::HttpReply, OutboundError> {
    let checked = out.policy.validate_url(url)?;
    out.http.post(&checked, "application/json", &[], b"{}".to_vec()).await
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_and_never_dialled() {
    let rx = Receiver::start().await;
    let dns = FakeDns::new();
    dns.set("internal.test", &["127.0.0.1"]);
    dns.set("metadata.test", &["169.254.169.254"]);
    dns.set("private.test", &["10.1.2.3"]);
    // The port and http are allowed; loopback is not.
    let out = client(policy(&[rx.port()], false), &dns, Duration::from_secs(5));
    for name in ["internal.test", "metadata.test", "private.test"] {
        let err = post(&out, &format!("http://{name}:{}/hook", rx.port())).await.unwrap_err();
        assert_eq!(err, OutboundError::Policy(SsrfError::AddressNotAllowed), "{name}");
        // What a caller may see names no address.
        assert!(!err.to_string().contains("127.0.0.1") && !err.to_string().contains("169.254"), "{err}");
        assert_eq!(dns.lookups(name), 1, "{name} resolved through the injected resolver");
    }
    // The literal form is refused before any lookup.
    assert_eq!(
        post(&out, &format!("http://127.0.0.1:{}/hook", rx.port())).await.unwrap_err(),
        OutboundError::Policy(SsrfError::AddressNotAllowed)
    );
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn a_rebinding_answer_public_first_loopback_second_is_refused_whole() {
    let rx = Receiver::start().await;
    let dns = FakeDns::new();
    dns.set("rebind.test", &["93.184.215.14", "127.0.0.1"]);
    dns.set("rebind6.test", &["2606:2800:220:1::1", "::ffff:127.0.0.1"]);
    let out = client(policy(&[rx.port()], false), &dns, Duration::from_secs(5));
    for name in ["rebind.test", "rebind6.test"] {
        let err = post(&out, &format!("http://{name}:{}/", rx.port())).await.unwrap_err();
        assert_eq!(err, OutboundError::Policy(SsrfError::AddressNotAllowed), "{name}");
    }
    // Even with loopback allowed, one bad address (metadata) spoils the answer.
    let out = client(policy(&[rx.port()], true), &dns, Duration::from_secs(5));
    dns.set("mixed.test", &["127.0.0.1", "169.254.169.254"]);
    assert!(post(&out, &format!("http://mixed.test:{}/", rx.port())).await.is_err());
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn the_checked_address_is_the_one_dialled_and_every_new_connection_is_judged_again() {
    let rx = Receiver::start().await;
    let dns = FakeDns::new();
    // First lookup: the allowed receiver. Later lookups: 0.0.0.0, which the
    // policy always refuses (and which Linux would route to this very
    // receiver, so a dial would be visible here, on loopback).
    dns.sequence("receiver.test", &[&["127.0.0.1"], &["0.0.0.0"]]);
    let out = client(policy(&[rx.port()], true), &dns, Duration::from_secs(5));
    let url = format!("http://receiver.test:{}/hook", rx.port());
    let reply = post(&out, &url).await.unwrap();
    assert_eq!(reply.status, 200);
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    // The system resolver does not know `receiver.test`: reaching the
    // receiver at all proves the connector used the pinned answer. TLS and
    // Host keep the name.
    assert_eq!(got[0].header("host"), Some(format!("receiver.test:{}", rx.port()).as_str()));
    assert_eq!(got[0].path, "/hook");
    // The receiver closes every connection, so the next request dials
    // again, resolves again, and is refused.
    let err = post(&out, &url).await.unwrap_err();
    assert_eq!(err, OutboundError::Policy(SsrfError::AddressNotAllowed));
    assert_eq!(dns.lookups("receiver.test"), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1);
    // A loopback address outside the listed range stays refused.
    dns.set("other-loopback.test", &["127.0.0.2"]);
    let err = post(&out, &format!("http://other-loopback.test:{}/", rx.port())).await.unwrap_err();
    assert_eq!(err, OutboundError::Policy(SsrfError::AddressNotAllowed));
}

#[tokio::test]
async fn redirects_are_answers_and_bodies_are_capped() {
    let rx = Receiver::start().await;
    let dns = FakeDns::new();
    let out = client(policy(&[rx.port()], true), &dns, Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{}/hook", rx.port());
    rx.status.store(302, std::sync::atomic::Ordering::SeqCst);
    let reply = post(&out, &url).await.unwrap();
    assert_eq!(reply.status, 302);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1, "the Location was not followed");
    rx.status.store(200, std::sync::atomic::Ordering::SeqCst);
    *rx.reply_body.lock().unwrap() = vec![b'x'; 1 << 20];
    let reply = post(&out, &url).await.unwrap();
    assert_eq!(reply.body.len(), MAX_RESPONSE_BYTES);
    // Nothing listening: a connect error in our words, no address.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = client(policy(&[closed], true), &dns, Duration::from_secs(5));
    let err = post(&out, &format!("http://127.0.0.1:{closed}/x")).await.unwrap_err();
    assert_eq!(err, OutboundError::Connect);
    assert!(!err.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_blackholed_receiver_times_out_on_schedule() {
    let rx = Receiver::start().await;
    rx.blackhole.store(true, std::sync::atomic::Ordering::SeqCst);
    let dns = FakeDns::new();
    let out = client(policy(&[rx.port()], true), &dns, Duration::from_secs(1));
    let started = Instant::now();
    let err = post(&out, &format!("http://127.0.0.1:{}/hook", rx.port())).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err, OutboundError::Timeout);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn smtp_dials_the_checked_address_of_the_configured_name() {
    let sink = SmtpSink::start().await;
    let port = sink.addr.port();
    let dns = FakeDns::new();
    dns.set("mail.test", &["127.0.0.1"]);
    dns.set("evil-mail.test", &["10.9.9.9"]);
    let out = client(policy(&[port], true), &dns, Duration::from_secs(5));
    let to = vec!["ops@example.com".to_string()];
    let msg = |subject: &'static str| SmtpMessage {
        security: SmtpSecurity::None,
        credentials: None,
        from: "palisade@example.com",
        to: &to,
        subject,
        body: "hello".into(),
    };
    let target = out.policy.validate_smtp_target("mail.test", port).unwrap();
    out.smtp.send(&target, msg("pinned")).await.unwrap();
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].header("Subject").as_deref(), Some("pinned"));
    assert_eq!(dns.lookups("mail.test"), 1);
    // A private answer is refused before any connection.
    let target = out.policy.validate_smtp_target("evil-mail.test", port).unwrap();
    assert_eq!(
        out.smtp.send(&target, msg("refused")).await.unwrap_err(),
        OutboundError::Policy(SsrfError::AddressNotAllowed)
    );
    // Credentials never travel without TLS.
    let mut m = msg("creds");
    m.credentials = Some(("user".into(), zeroize::Zeroizing::new("pass".into())));
    let target = out.policy.validate_smtp_target("mail.test", port).unwrap();
    assert_eq!(out.smtp.send(&target, m).await.unwrap_err(), OutboundError::TlsRequired);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.messages().len(), 1);
}
