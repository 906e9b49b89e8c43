//! Every case of the shared SSRF corpus, asserted against its
//! recommended verdict (the Palisade target, not z4j's behaviour).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use super::*;

const CORPUS: &str = include_str!("../../tests/vectors/ssrf-cases.json");

fn corpus() -> Value {
    serde_json::from_str(CORPUS).expect("corpus is valid JSON")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn cases<'a>(corpus: &'a Value, section: &str) -> &'a Vec<Value> {
    corpus[section].as_array().expect("section is an array")
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().expect("string field")
}

/// Answers only from the corpus `fake_dns` table; every other name fails,
/// as it did when the corpus was recorded without network DNS.
struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl FakeDns {
    fn from_corpus(corpus: &Value) -> Self {
        let table = corpus["fake_dns"].as_object().expect("fake_dns object");
        let map = table
            .iter()
            .map(|(name, addrs)| {
                let addrs = addrs.as_array().expect("addr list").iter();
                (name.clone(), addrs.map(|a| ip(a.as_str().expect("addr"))).collect())
            })
            .collect();
        Self(map)
    }
}

impl Resolve for FakeDns {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> ResolveFuture<'a> {
        let answer = self.0.get(host).cloned();
        Box::pin(async move { answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nxdomain")) })
    }
}

async fn evaluate(policy: &OutboundPolicy, dns: &dyn Resolve, raw: &str) -> Result<SocketAddr, SsrfError> {
    let checked = policy.validate_url(raw)?;
    policy.resolve_checked(checked.host(), checked.port(), dns).await
}

fn verdict<T>(r: &Result<T, SsrfError>) -> &'static str {
    if r.is_ok() {
        "ALLOW"
    } else {
        "BLOCK"
    }
}

#[tokio::test]
async fn corpus_url_cases_match_recommended_verdicts() {
    let corpus = corpus();
    let dns = FakeDns::from_corpus(&corpus);
    let policy = OutboundPolicy::default();
    let mut failures = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in cases(&corpus, "url_cases") {
        let url = text(case, "url");
        let want = text(case, "recommended_verdict");
        let got = evaluate(&policy, &dns, url).await;
        let code = got.as_ref().err().map_or("-", |e| e.code());
        println!("{want} {code:22} {url:?}");
        *counts.entry(format!("{want} {code}")).or_default() += 1;
        if verdict(&got) != want {
            failures.push(format!("{url:?}: want {want}, got {got:?}"));
        }
    }
    for (k, n) in &counts {
        println!("{n:3}  {k}");
    }
    assert_eq!(cases(&corpus, "url_cases").len(), 81);
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn corpus_url_cases_fail_for_the_intended_reason() {
    let corpus = corpus();
    let dns = FakeDns::from_corpus(&corpus);
    let policy = OutboundPolicy::default();
    let expected = [
        ("http://public.example/hook", SsrfError::SchemeNotAllowed),
        ("file:///etc/passwd", SsrfError::SchemeNotAllowed),
        ("https:/public.example/x", SsrfError::InvalidUrl),
        ("//public.example/x", SsrfError::InvalidUrl),
        (" https://127.0.0.1/", SsrfError::InvalidUrl),
        ("https://2130706433/", SsrfError::NonCanonicalHost),
        ("https://0x7f.1/", SsrfError::NonCanonicalHost),
        ("https://0177.0.0.1/", SsrfError::NonCanonicalHost),
        ("https://127.1/", SsrfError::NonCanonicalHost),
        ("https://0/", SsrfError::NonCanonicalHost),
        ("https://134744072/", SsrfError::NonCanonicalHost),
        ("https://0.0.0.0/", SsrfError::AddressNotAllowed),
        ("https://[fec0::1]/", SsrfError::AddressNotAllowed),
        ("https://[::ffff:8.8.8.8]/", SsrfError::AddressNotAllowed),
        ("https://[fe80::1%25eth0]/", SsrfError::InvalidUrl),
        ("https://%31%32%37.0.0.1/", SsrfError::InvalidUrl),
        ("https://localhost/", SsrfError::HostNotAllowed),
        (
            "https://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/",
            SsrfError::HostNotAllowed,
        ),
        ("https://metadata.google.internal/computeMetadata/v1/", SsrfError::HostNotAllowed),
        ("https://mixed.example/", SsrfError::AddressNotAllowed),
        ("https://sitelocal.example/", SsrfError::AddressNotAllowed),
        ("https://unresolvable.invalid/", SsrfError::ResolutionFailed),
        ("https://127.0.0.1@public.example/", SsrfError::UserinfoNotAllowed),
        ("https://user:pass@public.example/", SsrfError::UserinfoNotAllowed),
        ("https://127.0.0.1\\@public.example/", SsrfError::InvalidUrl),
        ("https://public.example#@127.0.0.1/", SsrfError::FragmentNotAllowed),
        ("https://public.example:0/", SsrfError::PortNotAllowed),
        ("https://public.example:99999/", SsrfError::PortNotAllowed),
        ("https://public.example:8443/", SsrfError::PortNotAllowed),
    ];
    for (url, want) in expected {
        assert_eq!(evaluate(&policy, &dns, url).await, Err(want), "{url}");
    }
}

#[tokio::test]
async fn corpus_allowed_cases_pin_the_resolved_address() {
    let corpus = corpus();
    let dns = FakeDns::from_corpus(&corpus);
    let policy = OutboundPolicy::default();
    let pinned = evaluate(&policy, &dns, "https://public\u{3002}example/").await;
    assert_eq!(pinned, Ok("93.184.215.14:443".parse().expect("sockaddr")));
    let checked = policy.validate_url("HTTPS://PUBLIC.EXAMPLE/hook").expect("valid");
    assert_eq!(checked.url().as_str(), "https://public.example/hook");
    assert_eq!(checked.host(), &TargetHost::Domain("public.example".into()));
    assert_eq!(checked.scheme(), Scheme::Https);
}

#[test]
fn corpus_host_locks() {
    let corpus = corpus();
    let policy = OutboundPolicy::default();
    for case in cases(&corpus, "host_locks") {
        let url = text(case, "url");
        let lock = HostLock::for_channel_type(text(case, "channel")).expect("locked channel");
        let got = policy.validate_url(url).and_then(|c| lock.check(&c));
        assert_eq!(verdict(&got), text(case, "verdict"), "{url}: {got:?}");
    }
}

#[test]
fn corpus_telegram() {
    let corpus = corpus();
    let policy = OutboundPolicy::default();
    for case in cases(&corpus, "telegram") {
        let token = text(&case["config"], "bot_token");
        let got = validate_telegram_config(token, text(&case["config"], "chat_id"));
        assert_eq!(got.is_ok(), case["validate_telegram_config"].is_null(), "{case}");
        // The dispatch-time path must agree with the config-time check on the token.
        assert_eq!(policy.telegram_send_url(token).is_ok(), got != Err(SsrfError::InvalidBotToken));
    }
}

#[tokio::test]
async fn corpus_smtp() {
    let corpus = corpus();
    let dns = FakeDns::from_corpus(&corpus);
    let policy = OutboundPolicy::default();
    for case in cases(&corpus, "smtp") {
        let cfg = &case["config"];
        // z4j coerces a numeric string; the JSON layer will do the same.
        let port: u16 = match &cfg["smtp_port"] {
            Value::String(s) => s.parse().expect("numeric port"),
            other => other.as_u64().and_then(|p| u16::try_from(p).ok()).expect("port"),
        };
        let got = match policy.validate_smtp_target(text(cfg, "smtp_host"), port) {
            Ok(t) => policy.resolve_checked(&t.host, t.port, &dns).await,
            Err(e) => Err(e),
        };
        assert_eq!(got.is_ok(), case["validate_smtp_config"].is_null(), "{case}: {got:?}");
    }
    assert_eq!(policy.validate_smtp_target("0x7f.1", 465), Err(SsrfError::NonCanonicalHost));
    assert_eq!(policy.validate_smtp_target(" ", 587), Err(SsrfError::MissingHost));
    assert_eq!(policy.validate_smtp_target("[::1]", 25), Err(SsrfError::AddressNotAllowed));
    let custom = OutboundPolicy { smtp_extra_ports: vec![1025], ..OutboundPolicy::default() };
    assert!(custom.validate_smtp_target("public.example", 1025).is_ok());
    assert_eq!(policy.validate_smtp_target("public.example", 1025), Err(SsrfError::PortNotAllowed));
}

#[test]
fn corpus_headers() {
    let corpus = corpus();
    for case in cases(&corpus, "headers") {
        let keys: Vec<&str> =
            case["headers_keys"].as_array().expect("keys").iter().map(|k| k.as_str().expect("key")).collect();
        let error = case["error"].as_str().unwrap_or("");
        // The corpus records only names; rebuild the values (and, for the
        // count case, the full map) that produced each recorded error.
        let value = if error.contains("CR/LF") {
            "a\r\nX-Injected: 1".to_owned()
        } else if error.contains("size limit") {
            "x".repeat(MAX_HEADER_VALUE_LEN + 1)
        } else {
            "v".to_owned()
        };
        let names: Vec<String> = if error.contains("too many") {
            (0..=MAX_CUSTOM_HEADERS).map(|i| format!("X-{i}")).collect()
        } else {
            keys.iter().map(|k| (*k).to_owned()).collect()
        };
        let got = validate_headers(names.iter().map(|n| (n.as_str(), value.as_str())));
        assert_eq!(got.is_ok(), case["error"].is_null(), "{case}: {got:?}");
    }
}
