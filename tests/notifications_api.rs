//! Channels and rules over the API: secrets never come back (API answers,
//! log lines, audit rows, public columns), configs are validated on save
//! with typed 4xx answers, PATCH keeps or drops secrets as documented, and
//! ids from another project are not found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::agent::{task_event, TestAgent};
use common::fake_dns::FakeDns;
use common::receiver::Receiver;
use common::smtp_sink::SmtpSink;
use common::*;
use palisade::security::redaction::SECRET_MASK;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

/// Every log line of this test binary, at debug level and above (trace for
/// Palisade itself), libraries included.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buf = buf.clone();
            move || Capture(buf.clone())
        };
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,palisade=trace"))
            .with_writer(writer)
            .with_ansi(false)
            .init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRETS: [&str; 8] = [
    "WEBHOOKURLTOKEN0123456789",
    "SIGNINGSECRET-abcdef0123456789xyz",
    "HEADERSECRET-0123456789",
    "SLACKTOKENxyz0123456789",
    "DISCORDTOKEN0123456789",
    "TEAMSTOKEN0123456789",
    "PDROUTINGKEY0123456789",
    "SMTPPASSWORD0123456789",
];

#[tokio::test]
async fn no_channel_secret_reaches_an_answer_a_log_line_or_an_audit_row() {
    let logs = captured().clone();
    let rx = Receiver::start().await;
    // The receiver echoes secrets back in an error answer.
    rx.status.store(500, std::sync::atomic::Ordering::SeqCst);
    *rx.reply_body.lock().unwrap() = format!("bad token {} / {}", SECRETS[0], SECRETS[1]).into_bytes();
    let sink = SmtpSink::start().await;
    let dns = FakeDns::new();
    dns.set("mail.test", &["127.0.0.1"]);
    let ports = format!("{},{}", rx.port(), sink.addr.port());
    let env = [
        ("PALISADE_OUTBOUND_ALLOW_HTTP", "1"),
        ("PALISADE_OUTBOUND_ALLOW_LOOPBACK", "1"),
        ("PALISADE_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32"),
        ("PALISADE_OUTBOUND_ALLOW_PORTS", ports.as_str()),
        ("PALISADE_OUTBOUND_SMTP_PORTS", ports.as_str()),
    ];
    let srv = TestServer::start_with_dns(TestDb::fresh().await, tempdir::Dir::new(), &env, dns).await;
    let (mut admin, a, _b) = srv.fleets().await;
    let mut answers = String::new();
    let base = "/api/v1/projects/alpha/notifications";
    let configs = [
        (
            "hook",
            "webhook",
            json!({ "url": format!("http://127.0.0.1:{}/hook?token={}", rx.port(), SECRETS[0]),
                                     "secret": SECRETS[1], "headers": { "X-Api-Key": SECRETS[2] } }),
        ),
        ("slack", "slack", json!({ "webhook_url": format!("https://hooks.slack.com/services/T0/B0/{}", SECRETS[3]) })),
        ("discord", "discord", json!({ "webhook_url": format!("https://discord.com/api/webhooks/1/{}", SECRETS[4]) })),
        ("teams", "teams", json!({ "webhook_url": format!("https://t.webhook.office.com/webhookb2/{}", SECRETS[5]) })),
        ("pd", "pagerduty", json!({ "routing_key": SECRETS[6] })),
        (
            "mail",
            "email",
            json!({ "host": "mail.test", "port": sink.addr.port(), "security": "starttls",
                                  "username": "mailer", "password": SECRETS[7], "from": "p@example.com",
                                  "to": ["ops@example.com"] }),
        ),
    ];
    let mut ids = Vec::new();
    for (name, kind, config) in &configs {
        let r = admin.post(&format!("{base}/channels"), json!({ "name": name, "type": kind, "config": config })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert!(r.text.contains(SECRET_MASK), "{}", r.text);
        answers.push_str(&r.text);
        ids.push(r.body["channel"]["id"].as_str().unwrap().to_string());
    }
    let hook = admin.get(&format!("{base}/channels")).await;
    answers.push_str(&hook.text);
    let listed = &hook.body["channels"];
    let webhook = listed.as_array().unwrap().iter().find(|c| c["name"] == "hook").unwrap();
    assert_eq!(webhook["destination"], format!("http://127.0.0.1:{}", rx.port()));
    assert_eq!(webhook["config"]["secret"], SECRET_MASK);
    assert_eq!(webhook["config"]["url"], SECRET_MASK);
    // Echoing the masked view back keeps every secret.
    for (i, id) in ids.iter().enumerate() {
        let current = listed.as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap();
        let r = admin
            .patch(
                &format!("{base}/channels/{id}"),
                json!({ "config": current["config"], "name": format!("renamed-{i}") }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push_str(&r.text);
    }
    // Tests, and one real failure delivered through the outbox to all six.
    for id in &ids {
        let r = admin.post(&format!("{base}/channels/{id}/test"), json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["ok"], false, "{}", r.text);
        answers.push_str(&r.text);
    }
    let r = admin
        .post(&format!("{base}/rules"), json!({ "name": "all", "trigger": "task.failed", "channel_ids": ids }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    ag.send_events("ev_1", vec![task_event("task.failed", "t1", json!({ "task_name": "x" }))]).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        let d = admin.get(&format!("{base}/deliveries")).await;
        let all = d.body["deliveries"].as_array().cloned().unwrap_or_default();
        if all.len() == 6 && all.iter().all(|x| x["attempts"].as_i64().unwrap_or(0) >= 1 && x["status"] != "sending") {
            answers.push_str(&d.text);
            deliveries = d.body["deliveries"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hook_delivery = deliveries.as_array().unwrap().iter().find(|d| d["last_status"] == 500).unwrap();
    assert!(hook_delivery["last_error"].as_str().unwrap().contains(SECRET_MASK), "{hook_delivery}");
    assert!(rx.count() >= 2, "the test send and the delivery reached the webhook receiver");

    let c = srv.db.client().await;
    let audit: String =
        c.query_one("SELECT string_agg(row_to_json(a)::text, ' ') FROM audit_log a", &[]).await.unwrap().get(0);
    assert!(audit.contains("notification.channel.created") && audit.contains("notification.channel.test"));
    let public: String = c
        .query_one(
            "SELECT string_agg(config::text || destination || array_to_string(secret_keys, ','), ' ') FROM notification_channels",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let outbox: String = c
        .query_one("SELECT string_agg(row_to_json(o)::text, ' ') FROM notification_outbox o", &[])
        .await
        .unwrap()
        .get(0);
    let blobs: Vec<Vec<u8>> =
        c.query("SELECT secrets FROM notification_channels", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    srv.shutdown().await;
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(logs.contains("notification delivery failed"), "logging was not captured");
    for secret in SECRETS {
        assert!(!answers.contains(secret), "{secret} in an API answer");
        assert!(!logs.contains(secret), "{secret} in the logs");
        assert!(!audit.contains(secret), "{secret} in the audit log");
        assert!(!public.contains(secret), "{secret} in a public column");
        assert!(!outbox.contains(secret), "{secret} in the outbox");
        assert!(
            !blobs.iter().any(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes())),
            "{secret} stored in clear"
        );
    }
}

#[tokio::test]
async fn configs_are_validated_on_save_with_typed_answers() {
    let srv = TestServer::start().await;
    let (mut admin, _a, _b) = srv.fleets().await;
    let base = "/api/v1/projects/alpha/notifications";
    let cases = [
        (
            json!({ "type": "webhook", "config": { "url": "https://10.0.0.5/x", "secret": "s".repeat(30) } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "https://169.254.169.254/latest", "secret": "s".repeat(30) } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "http://hooks.example.com/x", "secret": "s".repeat(30) } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "https://hooks.example.com:6379/x", "secret": "s".repeat(30) } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "https://u:p@hooks.example.com/x", "secret": "s".repeat(30) } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "https://hooks.example.com/x", "secret": "short" } }),
            422,
            "validation_failed",
        ),
        (
            json!({ "type": "webhook", "config": { "url": "https://hooks.example.com/x", "secret": SECRET_MASK } }),
            422,
            "validation_failed",
        ),
        (
            json!({ "type": "slack", "config": { "webhook_url": "https://hooks.slack.com.evil.example/services/x" } }),
            422,
            "destination_rejected",
        ),
        (
            json!({ "type": "slack", "config": { "webhook_url": "https://hooks.slack.com/x", "extra": 1 } }),
            422,
            "validation_failed",
        ),
        (
            json!({ "type": "email", "config": { "host": "localhost", "from": "a@b.example", "to": ["c@d.example"] } }),
            422,
            "destination_rejected",
        ),
        (json!({ "type": "telegram", "config": {} }), 422, "validation_failed"),
        (json!({ "type": "slack", "config": { "webhook_url": 12 } }), 422, "validation_failed"),
    ];
    for (i, (mut body, status, code)) in cases.into_iter().enumerate() {
        body["name"] = json!(format!("c{i}"));
        let r = admin.post(&format!("{base}/channels"), body.clone()).await;
        assert_eq!((r.status.as_u16(), r.code()), (status, code), "{body} -> {}", r.text);
        // The refusal never names an address or echoes the value.
        assert!(
            !r.text.contains("10.0.0.5") && !r.text.contains("169.254") && !r.text.contains("hunter"),
            "{}",
            r.text
        );
    }
    let ok = admin
        .post(
            &format!("{base}/channels"),
            json!({ "name": "s", "type": "slack",
            "config": { "webhook_url": "https://hooks.slack.com/services/T/B/tok" } }),
        )
        .await;
    assert_eq!(ok.status, 201);
    let id = ok.body["channel"]["id"].as_str().unwrap().to_string();
    let dup = admin
        .post(
            &format!("{base}/channels"),
            json!({ "name": "s", "type": "slack",
        "config": { "webhook_url": "https://hooks.slack.com/services/T/B/tok" } }),
        )
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "channel_name_taken"));
    // A PATCH is validated like a create, on the merged result.
    let r = admin
        .patch(&format!("{base}/channels/{id}"), json!({ "config": { "webhook_url": "https://evil.example/x" } }))
        .await;
    assert_eq!(r.code(), "destination_rejected");
    // Another project's view: not found.
    assert_eq!(
        admin.patch(&format!("/api/v1/projects/beta/notifications/channels/{id}"), json!({ "name": "x" })).await.status,
        404
    );
    assert_eq!(admin.delete(&format!("/api/v1/projects/beta/notifications/channels/{id}")).await.status, 404);
    assert_eq!(
        admin.post(&format!("/api/v1/projects/beta/notifications/channels/{id}/test"), json!({})).await.status,
        404
    );

    // Rules: foreign channel ids, filters that cannot apply, bad triggers.
    let beta_rule = admin
        .post(
            "/api/v1/projects/beta/notifications/rules",
            json!({ "name": "r", "trigger": "task.failed", "channel_ids": [id] }),
        )
        .await;
    assert_eq!(beta_rule.code(), "validation_failed", "{}", beta_rule.text);
    let rules = format!("{base}/rules");
    for body in [
        json!({ "name": "r", "trigger": "task.exploded", "channel_ids": [id] }),
        json!({ "name": "r", "trigger": "agent.offline", "channel_ids": [id], "filters": { "queues": ["q"] } }),
        json!({ "name": "r", "trigger": "task.failed", "channel_ids": [] }),
        json!({ "name": "r", "trigger": "task.failed", "channel_ids": [id], "cooldown_secs": 90000 }),
        json!({ "name": "r", "trigger": "task.failed", "channel_ids": [id], "filters": { "min_severity": "apocalyptic" } }),
        json!({ "name": "r", "trigger": "task.failed", "channel_ids": [id], "filters": { "regex": ".*" } }),
    ] {
        let r = admin.post(&rules, body.clone()).await;
        assert_eq!(r.status, 422, "{body} -> {}", r.text);
    }
    let r = admin
        .post(
            &rules,
            json!({ "name": "r", "trigger": "task.failed", "channel_ids": [id],
            "filters": { "task_names": ["billing.*"], "min_severity": "error" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rule_id = r.body["rule"]["id"].as_str().unwrap().to_string();
    let r = admin.patch(&format!("{rules}/{rule_id}"), json!({ "cooldown_secs": 0, "enabled": false })).await;
    assert_eq!((r.status.as_u16(), r.body["rule"]["enabled"].clone()), (200, json!(false)));
    // Deleting the channel removes it from the rule.
    assert_eq!(admin.delete(&format!("{base}/channels/{id}")).await.status, 204);
    let r = admin.get(&rules).await;
    assert_eq!(r.body["rules"][0]["channel_ids"], json!([]));
    assert_eq!(admin.delete(&format!("{rules}/{rule_id}")).await.status, 204);
    srv.shutdown().await;
}

#[tokio::test]
async fn changing_the_destination_drops_unsupplied_secrets_and_tests_are_rate_limited() {
    // No name resolves: test sends fail fast and nothing leaves the machine.
    let srv = TestServer::start_with_dns(TestDb::fresh().await, tempdir::Dir::new(), &[], FakeDns::new()).await;
    let (mut admin, _a, _b) = srv.fleets().await;
    let base = "/api/v1/projects/alpha/notifications/channels";
    let r = admin
        .post(
            base,
            json!({ "name": "h", "type": "webhook",
            "config": { "url": "https://a.example.com/x", "secret": "first-signing-secret-0123456789" } }),
        )
        .await;
    let id = r.body["channel"]["id"].as_str().unwrap().to_string();
    // New URL without the secret: refused (a webhook needs one), so the old
    // secret cannot silently follow the new destination.
    let r = admin.patch(&format!("{base}/{id}"), json!({ "config": { "url": "https://b.example.com/x" } })).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = admin
        .patch(
            &format!("{base}/{id}"),
            json!({ "config": { "url": "https://b.example.com/x", "secret": "second-signing-secret-0123456789" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["channel"]["destination"], "https://b.example.com");
    // The test endpoint: 20 a minute per address, then 429.
    let mut last = 0;
    for _ in 0..21 {
        last = admin.post(&format!("{base}/{id}/test"), json!({})).await.status.as_u16();
    }
    assert_eq!(last, 429);
    srv.shutdown().await;
}
