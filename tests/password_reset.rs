//! Password reset end to end (mail through the SMTP sink), and what an
//! attacker can learn from it: nothing about which accounts exist, no
//! second use of a link, no link older than 30 minutes, no more than 10
//! attempts a minute from one address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::smtp_sink::SmtpSink;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "Harbor-Violet-205!";

fn token_from(text: &str) -> String {
    let start = text.find("/reset#token=").unwrap_or_else(|| panic!("no reset link in {text}")) + "/reset#token=".len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn server_with_mail() -> (SmtpSink, TestServer) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let srv =
        TestServer::start_with(&[("PALISADE_SMTP_URL", &url), ("PALISADE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    (sink, srv)
}

#[tokio::test]
async fn a_reset_sets_the_password_ends_sessions_and_lifts_the_lockout() {
    let (sink, srv) = server_with_mail().await;
    let mut ga = srv.admin().await;
    let mut victim = srv.user(&mut ga, "victim@r.test", ADMIN_PASSWORD, false).await;
    let mut second = srv.browser();
    second.post("/api/v1/auth/login", json!({ "email": "victim@r.test", "password": ADMIN_PASSWORD })).await;
    assert_eq!(second.get("/api/v1/auth/me").await.status, StatusCode::OK);
    // Someone guesses until the account locks.
    let mut guesser = srv.browser();
    for _ in 0..5 {
        guesser.post("/api/v1/auth/login", json!({ "email": "victim@r.test", "password": "Wrong-Guess-000!" })).await;
    }
    let r = guesser.post("/api/v1/auth/login", json!({ "email": "victim@r.test", "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::LOCKED);

    let r = srv.browser().post("/api/v1/auth/password-reset/request", json!({ "email": "VICTIM@r.test" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_to, vec!["victim@r.test"]);
    let text = mail.text();
    assert!(text.contains(&format!("{}/reset#token=", srv.base)), "{text}");
    let token = token_from(&text);

    let mut anon = srv.browser();
    // A weak password is refused and does not burn the link.
    let r = anon.post("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": "weakling" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(victim.get("/api/v1/auth/me").await.status, StatusCode::OK, "nothing changed yet");
    let r = anon.post("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": NEW_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["sessions_revoked"], 2);
    assert!(r.set_cookies().is_empty(), "a reset does not sign in");
    // Every session is gone, the lock is lifted, the old password is dead.
    assert_eq!(victim.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(second.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    let r = anon.post("/api/v1/auth/login", json!({ "email": "victim@r.test", "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = anon.post("/api/v1/auth/login", json!({ "email": "victim@r.test", "password": NEW_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);
    // The link works once.
    let r = srv
        .browser()
        .post("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": "Another-Harbor-7!" }))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "invalid_or_expired"));
    srv.shutdown().await;
}

fn comparable(r: &Resp) -> (StatusCode, Value, Vec<String>) {
    let mut names: Vec<String> =
        r.headers.keys().map(|k| k.as_str().to_string()).filter(|k| k != "x-request-id" && k != "date").collect();
    names.sort();
    (r.status, r.body.clone(), names)
}

#[tokio::test]
async fn the_request_reveals_nothing_about_which_accounts_exist() {
    let (sink, srv) = server_with_mail().await;
    let mut ga = srv.admin().await;
    srv.user(&mut ga, "real@r.test", ADMIN_PASSWORD, false).await;
    let r = ga.post("/api/v1/users", json!({ "email": "dormant@r.test", "password": ADMIN_PASSWORD })).await;
    let dormant = r.body["user"]["id"].as_str().unwrap().to_string();
    ga.patch(&format!("/api/v1/users/{dormant}"), json!({ "is_active": false })).await;

    let mut answers = Vec::new();
    for (i, email) in ["real@r.test", "nobody@r.test", "dormant@r.test", "REAL@R.TEST", "x@unknown-domain.test"]
        .into_iter()
        .enumerate()
    {
        let mut b = srv.browser();
        b.extra_headers.push(("x-forwarded-for".into(), format!("192.0.2.{}", i + 1)));
        let r = b.post("/api/v1/auth/password-reset/request", json!({ "email": email })).await;
        answers.push((email, comparable(&r)));
    }
    for (email, a) in &answers {
        assert_eq!(a, &answers[0].1, "{email} answered differently from an existing account");
    }
    assert_eq!(answers[0].1 .0, StatusCode::ACCEPTED);
    // Only the existing, active account gets mail (twice: two requests).
    let mails = sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails_after = sink.messages();
    assert_eq!(mails_after.len(), 2, "no mail for unknown or inactive accounts");
    assert!(mails.iter().all(|m| m.rcpt_to == vec!["real@r.test"]));
    srv.shutdown().await;
}

#[tokio::test]
async fn links_expire_after_30_minutes_and_a_reset_kills_the_others() {
    let (sink, srv) = server_with_mail().await;
    let mut ga = srv.admin().await;
    srv.user(&mut ga, "late@r.test", ADMIN_PASSWORD, false).await;
    let mut b = srv.browser();
    for _ in 0..2 {
        b.post("/api/v1/auth/password-reset/request", json!({ "email": "late@r.test" })).await;
    }
    let mails = sink.wait_for(2).await;
    let (first, second) = (token_from(&mails[0].text()), token_from(&mails[1].text()));
    assert_ne!(first, second);
    let r = b.post("/api/v1/auth/password-reset/confirm", json!({ "token": first, "password": NEW_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = b.post("/api/v1/auth/password-reset/confirm", json!({ "token": second, "password": NEW_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "other outstanding links die with the reset");

    b.post("/api/v1/auth/password-reset/request", json!({ "email": "late@r.test" })).await;
    let third = token_from(&sink.wait_for(3).await[2].text());
    srv.clock.advance(Duration::from_secs(30 * 60 + 1));
    let r =
        b.post("/api/v1/auth/password-reset/confirm", json!({ "token": third, "password": "Later-Harbor-206!" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "invalid_or_expired"));
    srv.shutdown().await;
}

#[tokio::test]
async fn at_most_three_links_are_open_per_account() {
    let (sink, srv) = server_with_mail().await;
    let mut ga = srv.admin().await;
    srv.user(&mut ga, "flooded@r.test", ADMIN_PASSWORD, false).await;
    let mut b = srv.browser();
    for _ in 0..6 {
        let r = b.post("/api/v1/auth/password-reset/request", json!({ "email": "flooded@r.test" })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    sink.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 3, "the inbox is not flooded");
    let conn = srv.state().db.conn().await.unwrap();
    let n: i64 = conn.query_one("SELECT count(*) FROM password_reset_tokens", &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn reset_endpoints_allow_10_per_minute_per_address() {
    let (_sink, srv) = server_with_mail().await;
    let mut a = srv.browser();
    a.extra_headers.push(("x-forwarded-for".into(), "198.51.100.20".into()));
    for i in 0..10 {
        let r = if i % 2 == 0 {
            a.post("/api/v1/auth/password-reset/request", json!({ "email": format!("n{i}@r.test") })).await
        } else {
            a.post("/api/v1/auth/password-reset/confirm", json!({ "token": "q".repeat(43), "password": NEW_PASSWORD }))
                .await
        };
        assert!(r.status == StatusCode::ACCEPTED || r.status == StatusCode::NOT_FOUND, "attempt {i}: {}", r.status);
    }
    let r = a.post("/api/v1/auth/password-reset/request", json!({ "email": "n@r.test" })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    let mut other = srv.browser();
    other.extra_headers.push(("x-forwarded-for".into(), "198.51.100.21".into()));
    let r = other.post("/api/v1/auth/password-reset/request", json!({ "email": "n@r.test" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the limit is per address");
    srv.shutdown().await;
}
