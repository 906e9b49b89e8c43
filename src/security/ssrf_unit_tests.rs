//! Policy unit tests that do not need the corpus: range boundaries, the
//! operator escape hatches, rebinding, error hygiene and provider locks.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}
#[test]
fn header_rules() {
    assert_eq!(validate_header("X-Custom", "ok\tvalue"), Ok(()));
    assert_eq!(validate_header("Content-Type", "application/json"), Ok(()));
    for name in ["Host", "COOKIE", "Transfer-Encoding", "TE", "Proxy-Foo", "X-Z4J-Signature"] {
        assert_eq!(validate_header(name, "v"), Err(SsrfError::HeaderNotAllowed), "{name}");
    }
    for (name, value) in [("X-A", "a\nb"), ("X-A", "a\rb"), ("X-A", "a\0b"), ("Bad Name", "v"), ("", "v"), ("X:Y", "v")]
    {
        assert_eq!(validate_header(name, value), Err(SsrfError::InvalidHeader), "{name:?}");
    }
    assert_eq!(validate_header(&"X".repeat(MAX_HEADER_NAME_LEN + 1), "v"), Err(SsrfError::InvalidHeader));
    assert_eq!(validate_headers([("X-A", "1"), ("x-a", "2")]), Err(SsrfError::InvalidHeader));
    let twenty: Vec<String> = (0..MAX_CUSTOM_HEADERS).map(|i| format!("X-{i}")).collect();
    assert_eq!(validate_headers(twenty.iter().map(|n| (n.as_str(), "v"))), Ok(()));
}

#[test]
fn ipv4_range_boundaries() {
    let cases = [
        ("0.255.255.255", false),
        ("1.0.0.0", true),
        ("9.255.255.255", true),
        ("10.0.0.0", false),
        ("10.255.255.255", false),
        ("11.0.0.0", true),
        ("100.63.255.255", true),
        ("100.64.0.0", false),
        ("100.127.255.255", false),
        ("100.128.0.0", true),
        ("126.255.255.255", true),
        ("127.0.0.0", false),
        ("128.0.0.0", true),
        ("169.253.255.255", true),
        ("169.254.169.254", false),
        ("169.255.0.0", true),
        ("172.15.255.255", true),
        ("172.16.0.0", false),
        ("172.31.255.255", false),
        ("172.32.0.0", true),
        ("192.0.0.9", false),
        ("192.0.1.0", true),
        ("192.0.2.255", false),
        ("192.88.99.1", false),
        ("192.167.255.255", true),
        ("192.168.0.0", false),
        ("192.169.0.0", true),
        ("198.17.255.255", true),
        ("198.18.0.0", false),
        ("198.19.255.255", false),
        ("198.20.0.0", true),
        ("198.51.100.1", false),
        ("203.0.113.10", false),
        ("223.255.255.255", true),
        ("224.0.0.0", false),
        ("239.255.255.255", false),
        ("240.0.0.0", false),
        ("255.255.255.255", false),
        ("8.8.8.8", true),
    ];
    for (addr, want) in cases {
        assert_eq!(is_globally_routable(ip(addr)), want, "{addr}");
    }
}

#[test]
fn ipv6_range_boundaries() {
    let cases = [
        ("::", false),
        ("::1", false),
        ("::8.8.8.8", false),
        ("::ffff:8.8.8.8", false),
        ("::ffff:127.0.0.1", false),
        ("64:ff9b::808:808", true),
        ("64:ff9b::a9fe:a9fe", false),
        ("64:ff9b::a00:1", false),
        ("64:ff9b:1::1", false),
        ("100::1", false),
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2000::", true),
        ("2001::1", false),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:200::1", true),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8::1", false),
        ("2001:db9::", true),
        ("2002:7f00:1::1", false),
        ("2002:808:808::1", false),
        ("2003::1", true),
        ("2606:4700::1111", true),
        ("3ffe:ffff::1", true),
        ("3fff::1", false),
        ("3fff:fff::1", false),
        ("3fff:1000::1", true),
        ("4000::1", false),
        ("fc00::1", false),
        ("fd00:ec2::254", false),
        ("fe80::1", false),
        ("febf::1", false),
        ("fec0::1", false),
        ("ff02::1", false),
    ];
    for (addr, want) in cases {
        assert_eq!(is_globally_routable(ip(addr)), want, "{addr}");
    }
}

#[test]
fn allowed_cidrs_open_private_ranges_only() {
    let policy = OutboundPolicy {
        allowed_cidrs: ["10.20.0.0/16", "0.0.0.0/0", "fd00::/8"].iter().map(|c| c.parse().expect("cidr")).collect(),
        ..OutboundPolicy::default()
    };
    assert!(policy.is_ip_allowed(ip("10.20.3.4")));
    assert!(policy.is_ip_allowed(ip("192.168.1.1")));
    assert!(policy.is_ip_allowed(ip("fd12::1")));
    // Covered by the allow-list, but still refused.
    for addr in [
        "127.0.0.1",
        "0.0.0.0",
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "224.0.0.1",
        "255.255.255.255",
        "fd00:ec2::254",
        "::ffff:10.20.3.4",
    ] {
        assert!(!policy.is_ip_allowed(ip(addr)), "{addr}");
    }
    let narrow =
        OutboundPolicy { allowed_cidrs: vec!["10.20.0.0/16".parse().expect("cidr")], ..OutboundPolicy::default() };
    assert!(!narrow.is_ip_allowed(ip("10.21.0.1")));
    assert!(narrow.validate_url("https://10.20.0.7/hook").is_ok());
    assert_eq!(narrow.validate_url("https://10.21.0.7/hook").err(), Some(SsrfError::AddressNotAllowed));
    assert!(!OutboundPolicy::default().is_ip_allowed(ip("10.20.3.4")));
}

#[test]
fn loopback_needs_its_own_switch() {
    let listed: Vec<IpNet> = ["127.0.0.1/32", "::1/128"].iter().map(|c| c.parse().expect("cidr")).collect();
    let policy = OutboundPolicy {
        allow_loopback: true,
        allowed_cidrs: listed.clone(),
        extra_ports: vec![8080],
        ..OutboundPolicy::default()
    };
    assert!(policy.validate_url("https://127.0.0.1:8080/hook").is_ok());
    assert!(policy.is_ip_allowed(ip("::1")));
    assert!(!policy.is_ip_allowed(ip("::ffff:127.0.0.1")));
    // Only the listed loopback addresses.
    assert!(!policy.is_ip_allowed(ip("127.0.0.2")));
    // The switch without a listed range opens nothing, and a listed range
    // without the switch opens nothing either.
    let switch_only = OutboundPolicy { allow_loopback: true, ..OutboundPolicy::default() };
    assert!(!switch_only.is_ip_allowed(ip("127.0.0.1")));
    let range_only = OutboundPolicy { allowed_cidrs: listed, ..OutboundPolicy::default() };
    assert!(!range_only.is_ip_allowed(ip("127.0.0.1")));
    // Named loopback stays refused: the name list runs before DNS.
    assert_eq!(policy.validate_url("https://localhost:8080/").err(), Some(SsrfError::HostNotAllowed));
}

#[test]
fn mixed_answers_are_refused_whole() {
    let policy = OutboundPolicy::default();
    assert_eq!(
        policy.check_resolved("a.example", &[ip("52.1.2.3"), ip("10.0.0.5")]),
        Err(SsrfError::AddressNotAllowed)
    );
    assert_eq!(
        policy.check_resolved("a.example", &[ip("10.0.0.5"), ip("52.1.2.3")]),
        Err(SsrfError::AddressNotAllowed)
    );
    assert_eq!(
        policy.check_resolved("a.example", &[ip("2606:4700::1"), ip("fe80::1")]),
        Err(SsrfError::AddressNotAllowed)
    );
    assert_eq!(policy.check_resolved("a.example", &[]), Err(SsrfError::ResolutionFailed));
    assert_eq!(policy.check_resolved("a.example", &[ip("52.1.2.3"), ip("8.8.8.8")]), Ok(ip("52.1.2.3")));
    assert_eq!(policy.check_resolved("LOCALHOST.", &[ip("52.1.2.3")]), Err(SsrfError::HostNotAllowed));
}

/// A zone that answers public first and private afterwards: each
/// resolution is judged on its own, so the second dial is refused.
#[tokio::test]
async fn rebinding_is_judged_on_every_resolution() {
    struct Rebinder(AtomicU32);
    impl Resolve for Rebinder {
        fn resolve<'a>(&'a self, _host: &'a str, _port: u16) -> ResolveFuture<'a> {
            let first = self.0.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move { Ok(vec![if first { ip("52.1.2.3") } else { ip("127.0.0.1") }]) })
        }
    }
    let dns = Rebinder(AtomicU32::new(0));
    let policy = OutboundPolicy::default();
    let checked = policy.validate_url("https://rebind.example/").expect("valid");
    assert!(policy.resolve_checked(checked.host(), 443, &dns).await.is_ok());
    assert_eq!(policy.resolve_checked(checked.host(), 443, &dns).await, Err(SsrfError::AddressNotAllowed));
}

#[tokio::test]
async fn system_resolver_answers_are_vetted() {
    let policy = OutboundPolicy::default();
    let host = TargetHost::Domain("127.0.0.1".into());
    // A numeric "name" resolves locally without DNS; the answer is refused.
    assert_eq!(policy.resolve_checked(&host, 443, &SystemResolver).await, Err(SsrfError::AddressNotAllowed));
}

#[test]
fn errors_never_carry_addresses() {
    let policy = OutboundPolicy::default();
    let inputs = ["https://10.1.2.3/", "https://[fd00:ec2::254]/", "https://169.254.169.254/", "https://2130706433/"];
    for raw in inputs {
        let err = policy.validate_url(raw).expect_err("refused");
        for shown in [err.to_string(), err.public_message().to_owned(), format!("{err:?}"), err.code().to_owned()] {
            assert!(!shown.chars().any(|c| c.is_ascii_digit()), "{raw}: {shown}");
        }
    }
    let err = policy.check_resolved("internal.example", &[ip("10.0.0.5")]).expect_err("refused");
    assert!(!err.public_message().contains("10.0.0.5") && !err.to_string().contains("10.0.0.5"));
    // No DNS oracle: private answer and no answer look the same to callers.
    assert_eq!(SsrfError::AddressNotAllowed.public_message(), SsrfError::ResolutionFailed.public_message());
}

#[test]
fn url_shape_and_port_rules() {
    let policy = OutboundPolicy::default();
    let http = OutboundPolicy { allow_http: true, ..OutboundPolicy::default() };
    assert_eq!(
        policy.validate_url(&format!("https://a.example/{}", "x".repeat(MAX_URL_LEN))),
        Err(SsrfError::UrlTooLong)
    );
    assert_eq!(policy.validate_url("https:///public.example/"), Err(SsrfError::MissingHost));
    assert_eq!(policy.validate_url("https:public.example/"), Err(SsrfError::InvalidUrl));
    assert_eq!(policy.validate_url("https://public.example/\u{7f}"), Err(SsrfError::InvalidUrl));
    assert_eq!(policy.validate_url("https://8.8.8.8./"), Err(SsrfError::NonCanonicalHost));
    assert_eq!(policy.validate_url("https://pub!ic.example/"), Err(SsrfError::InvalidUrl));
    assert_eq!(policy.validate_url("https://a..example/"), Err(SsrfError::InvalidUrl));
    assert_eq!(policy.validate_url("https://foo.localhost/"), Err(SsrfError::HostNotAllowed));
    assert_eq!(policy.validate_url("https://public.example:80/"), Err(SsrfError::PortNotAllowed));
    assert!(policy.validate_url("https://8.8.8.8/").is_ok());
    assert!(http.validate_url("http://public.example/").is_ok_and(|c| c.port() == 80 && c.scheme() == Scheme::Http));
    assert_eq!(http.validate_url("http://public.example:22/"), Err(SsrfError::PortNotAllowed));
    let dotted = policy.validate_url("https://public.example./x").expect("trailing dot accepted");
    assert_eq!(dotted.url().as_str(), "https://public.example/x");
    let extra = OutboundPolicy { extra_ports: vec![8443], ..OutboundPolicy::default() };
    assert!(extra.validate_url("https://public.example:8443/").is_ok_and(|c| c.port() == 8443));
}

#[test]
fn provider_urls_and_locks() {
    let policy = OutboundPolicy { allow_http: true, extra_ports: vec![8443], ..OutboundPolicy::default() };
    assert!(policy.pagerduty_url().is_ok());
    let check = |lock: HostLock, url: &str| policy.validate_url(url).and_then(|c| lock.check(&c));
    assert_eq!(check(HostLock::Slack, "http://hooks.slack.com/services/x"), Err(SsrfError::SchemeNotAllowed));
    assert_eq!(check(HostLock::Slack, "https://hooks.slack.com:8443/services/x"), Err(SsrfError::PortNotAllowed));
    assert_eq!(check(HostLock::Slack, "https://evilhooks.slack.com/services/x"), Err(SsrfError::HostNotAllowed));
    assert_eq!(check(HostLock::Discord, "https://discord.com/api/v10/webhooks/1/a"), Ok(()));
    assert_eq!(check(HostLock::Discord, "https://discord.com/api/users/1"), Err(SsrfError::PathNotAllowed));
    assert_eq!(check(HostLock::Discord, "https://discordapp.com/api/webhooks/"), Err(SsrfError::PathNotAllowed));
    assert_eq!(
        check(HostLock::PagerDuty, "https://events.pagerduty.com/v2/enqueue?x=1"),
        Err(SsrfError::PathNotAllowed)
    );
    assert_eq!(check(HostLock::Telegram, "https://api.telegram.org/bot1:a/getUpdates"), Err(SsrfError::PathNotAllowed));
    assert_eq!(check(HostLock::Teams, "https://.webhook.office.com/x"), Err(SsrfError::InvalidUrl));
    assert_eq!(HostLock::for_channel_type("webhook"), None);
    assert_eq!(validate_telegram_config("1:a", "-"), Err(SsrfError::InvalidChatId));
    assert_eq!(validate_telegram_config(":a", "1"), Err(SsrfError::InvalidBotToken));
}
