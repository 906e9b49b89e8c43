//! Login, password storage and policy, rate limiting and lockout, over real
//! HTTP against a real database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn stored_password_is_argon2id_with_the_promised_parameters() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let _ = srv.user(&mut admin, "ops@palisade.test", "Copper-Falcon-77?", false).await;
    let db = srv.db.client().await;
    let rows = db.query("SELECT email, password_hash FROM users ORDER BY email", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let phc: String = r.get(1);
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{phc}");
        let parts: Vec<&str> = phc.split('$').collect();
        assert_eq!(parts[4].len(), 22, "16-byte salt");
        assert_eq!(parts[5].len(), 43, "32-byte hash");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn every_password_rule_rejects_with_its_name() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let cases = [
        ("Sh0rt-pass!", "too_short"),
        (&"Aa1!".repeat(65)[..], "too_long"),
        ("alllowercaseletters", "too_few_classes"),
        ("Password123!", "common_password"),
        ("Carol-Staging-9x", "contains_user_info"),
    ];
    for (pw, rule) in cases {
        let r = admin.post("/api/v1/users", json!({ "email": "carol@palisade.test", "password": pw })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{pw}: {:?}", r.body);
        assert_eq!(r.code(), "weak_password");
        assert_eq!(r.body["error"]["details"]["rule"], rule, "{pw}");
        assert!(!r.text.contains(pw), "the password must never be echoed");
    }
    let policy = srv.browser().get("/api/v1/auth/policy").await;
    assert_eq!(policy.status, StatusCode::OK);
    assert_eq!(policy.body["min_length"], 12);
    assert_eq!(policy.body["required_character_classes"], 3);
    assert!(policy.body["denylist_size"].as_u64().unwrap() >= 1500);
    srv.shutdown().await;
}

#[tokio::test]
async fn the_21st_login_from_one_ip_in_a_minute_is_rate_limited() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let mut b = srv.browser();
    // Twenty different (unknown) emails so lockout never triggers.
    for i in 0..20 {
        let r = b
            .post("/api/v1/auth/login", json!({ "email": format!("u{i}@x.test"), "password": "wrong-password-1A!" }))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(r.code(), "invalid_credentials");
    }
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The window slides: a minute later the correct password works.
    srv.clock.advance(Duration::from_secs(61));
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn five_failures_lock_known_and_unknown_emails_alike() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    for email in [ADMIN_EMAIL, "nobody@palisade.test"] {
        let mut b = srv.browser();
        for i in 0..5 {
            let r = b.post("/api/v1/auth/login", json!({ "email": email, "password": "Wrong-Password-9!" })).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{email} attempt {i}");
        }
        // Sixth attempt: locked, even with the right password, and the
        // answer is the same whether or not the account exists.
        let r = b.post("/api/v1/auth/login", json!({ "email": email, "password": ADMIN_PASSWORD })).await;
        assert_eq!(r.status, StatusCode::LOCKED, "{email}");
        assert_eq!(r.code(), "account_locked");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((850..=900).contains(&retry), "{retry}");
        // Normalisation: a different spelling of the same mailbox is locked too.
        let r =
            b.post("/api/v1/auth/login", json!({ "email": email.to_uppercase(), "password": ADMIN_PASSWORD })).await;
        assert_eq!(r.status, StatusCode::LOCKED);
    }
    // The lock survives in PostgreSQL, keyed by HMAC (no plaintext email).
    let db = srv.db.client().await;
    let n: i64 =
        db.query_one("SELECT count(*) FROM login_lockouts WHERE locked_until IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
    let leaked: i64 = db
        .query_one("SELECT count(*) FROM login_lockouts WHERE encode(email_hash, 'escape') LIKE '%palisade%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);

    // After the window the right password works again and resets the counter.
    srv.clock.advance(Duration::from_secs(15 * 60 + 1));
    let mut b = srv.browser();
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let n: i64 = db.query_one("SELECT count(*) FROM login_lockouts", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "success cleared the admin's counter; the unknown email's remains");
    srv.shutdown().await;
}

#[tokio::test]
async fn lock_is_checked_before_hashing_and_unknown_users_pay_one_hash() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let hasher = &srv.running().state.hasher;
    let mut b = srv.browser();
    let before = hasher.verifications();
    let r =
        b.post("/api/v1/auth/login", json!({ "email": "ghost@palisade.test", "password": "Whatever-Pass-1!" })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hasher.verifications() - before, 1, "unknown account: exactly one Argon2 verification");
    let before = hasher.verifications();
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Whatever-Pass-1!" })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hasher.verifications() - before, 1, "known account: exactly one Argon2 verification");
    for _ in 0..4 {
        b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Whatever-Pass-1!" })).await;
    }
    let before = hasher.verifications();
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::LOCKED);
    assert_eq!(hasher.verifications(), before, "a locked account costs no hashing");
    srv.shutdown().await;
}

#[tokio::test]
async fn failures_decay_after_the_window() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let mut b = srv.browser();
    for _ in 0..4 {
        b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Wrong-Password-9!" })).await;
    }
    srv.clock.advance(Duration::from_secs(16 * 60));
    // Four old failures no longer count: four more do not lock.
    for _ in 0..4 {
        let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Wrong-Password-9!" })).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let srv = TestServer::start_with(&[("PALISADE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let _admin = srv.admin().await;
    let mut b = srv.browser();
    // 20 attempts from one forwarded client, then a 21st from another one.
    b.extra_headers = vec![("x-forwarded-for".into(), "198.51.100.7".into())];
    for i in 0..20 {
        b.post("/api/v1/auth/login", json!({ "email": format!("a{i}@x.test"), "password": "Wrong-Password-9!" })).await;
    }
    let r = b.post("/api/v1/auth/login", json!({ "email": "z@x.test", "password": "Wrong-Password-9!" })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    b.extra_headers = vec![("x-forwarded-for".into(), "198.51.100.8".into())];
    let r = b.post("/api/v1/auth/login", json!({ "email": "z@x.test", "password": "Wrong-Password-9!" })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a different client has its own budget");
    srv.shutdown().await;

    // Without trust, the header is ignored: everything is the socket peer.
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let mut b = srv.browser();
    for i in 0..20 {
        b.extra_headers = vec![("x-forwarded-for".into(), format!("203.0.113.{i}"))];
        b.post("/api/v1/auth/login", json!({ "email": format!("a{i}@x.test"), "password": "Wrong-Password-9!" })).await;
    }
    b.extra_headers = vec![("x-forwarded-for".into(), "203.0.113.99".into())];
    let r = b.post("/api/v1/auth/login", json!({ "email": "z@x.test", "password": "Wrong-Password-9!" })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    srv.shutdown().await;
}
