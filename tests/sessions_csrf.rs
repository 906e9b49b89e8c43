//! Session cookies, CSRF double submit, rotation, revocation and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn attrs(cookie: &str) -> (String, Vec<String>) {
    let mut parts = cookie.split(';').map(|p| p.trim().to_string());
    let name = parts.next().unwrap().split('=').next().unwrap().to_string();
    let mut rest: Vec<String> = parts.collect();
    rest.sort();
    (name, rest)
}

#[tokio::test]
async fn prod_cookies_carry_exactly_the_promised_attributes() {
    let srv = TestServer::start().await;
    let token = srv.running().setup_token.clone().unwrap();
    let mut b = srv.browser();
    let r = b
        .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut cookies: Vec<_> = r.set_cookies().iter().map(|c| attrs(c)).collect();
    cookies.sort();
    assert_eq!(
        cookies,
        vec![
            ("__Host-palisade_csrf".to_string(), vec!["Path=/".to_string(), "SameSite=Strict".into(), "Secure".into()]),
            (
                "__Host-palisade_session".to_string(),
                vec!["HttpOnly".to_string(), "Path=/".into(), "SameSite=Lax".into(), "Secure".into()]
            ),
        ]
    );
    // A fresh login sets the same shape, with new values (rotation).
    let old = b.session_token().unwrap();
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.set_cookies().len(), 2);
    assert_ne!(b.session_token().unwrap(), old);
    // Logout deletes both with the same attributes (browsers ignore a
    // __Host- deletion without Secure).
    let r = b.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for c in r.set_cookies() {
        let (name, a) = attrs(&c);
        assert!(name.starts_with("__Host-"));
        assert!(
            a.contains(&"Secure".to_string())
                && a.contains(&"Max-Age=0".to_string())
                && a.contains(&"Path=/".to_string()),
            "{c}"
        );
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn dev_cookies_drop_only_the_prefix_and_secure() {
    let srv = TestServer::start_with(&[("PALISADE_ENV", "dev")]).await;
    let token = srv.running().setup_token.clone().unwrap();
    let mut b = srv.browser();
    let r = b
        .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    let mut cookies: Vec<_> = r.set_cookies().iter().map(|c| attrs(c)).collect();
    cookies.sort();
    assert_eq!(
        cookies,
        vec![
            ("palisade_csrf".to_string(), vec!["Path=/".to_string(), "SameSite=Strict".into()]),
            ("palisade_session".to_string(), vec!["HttpOnly".to_string(), "Path=/".into(), "SameSite=Lax".into()]),
        ]
    );
    assert!(r.header("strict-transport-security").is_none(), "no HSTS in dev");
    srv.shutdown().await;
}

#[tokio::test]
async fn database_holds_no_plaintext_session_or_csrf_token() {
    let srv = TestServer::start().await;
    let admin = srv.admin().await;
    let session = admin.session_token().unwrap();
    let csrf = admin.csrf().unwrap();
    let db = srv.db.client().await;
    // Dump every row of every table as text and look for the secrets.
    let tables: Vec<String> = db
        .query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in tables {
        let rows = db.query(&format!("SELECT t::text FROM {t} t"), &[]).await.unwrap();
        for r in rows {
            let text: String = r.get(0);
            assert!(!text.contains(&session), "session token in {t}");
            assert!(!text.contains(&csrf), "csrf token in {t}");
        }
    }
    let n: i64 =
        db.query_one("SELECT count(*) FROM sessions WHERE octet_length(token_hash) = 32", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn mutating_calls_need_a_matching_csrf_header() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    admin.send_csrf = false;
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "x" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "csrf_failed");
    admin.extra_headers = vec![("x-csrf-token".into(), "not-the-right-token-at-all".into())];
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "x" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "csrf_failed");
    // Header and cookie both forged to the same value: the double submit
    // matches but the token is not bound to this session.
    let forged = "A".repeat(43);
    admin.cookies.insert("__Host-palisade_csrf".into(), forged.clone());
    admin.extra_headers = vec![("x-csrf-token".into(), forged)];
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "x" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Logout is a mutation too.
    let r = admin.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    srv.shutdown().await;
}

#[tokio::test]
async fn correct_csrf_passes_but_cross_site_requests_do_not() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "Root" })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["user"]["display_name"], "Root");
    admin.extra_headers = vec![("origin".into(), "https://evil.example".into())];
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "Evil" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    admin.extra_headers = vec![("sec-fetch-site".into(), "cross-site".into())];
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "Evil" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    srv.shutdown().await;
}

#[tokio::test]
async fn logout_revokes_the_session_server_side() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let stolen = admin.cookies.clone();
    assert_eq!(admin.post("/api/v1/auth/logout", json!({})).await.status, StatusCode::NO_CONTENT);
    let mut thief = srv.browser();
    thief.cookies = stolen;
    let r = thief.get("/api/v1/auth/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthenticated");
    srv.shutdown().await;
}

#[tokio::test]
async fn idle_and_absolute_timeouts() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    srv.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(admin.get("/api/v1/auth/me").await.status, StatusCode::OK);
    // That request was after >60 s, so it recorded activity; give the
    // background write a moment, then stay idle past 30 minutes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.clock.advance(Duration::from_secs(29 * 60));
    tokio::time::sleep(Duration::from_millis(2_100)).await; // session cache TTL
    assert_eq!(admin.get("/api/v1/auth/me").await.status, StatusCode::OK, "activity extended the idle window");
    srv.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(admin.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "idle timeout");

    // Absolute lifetime: active every 20 minutes, still ends at 12 h.
    let mut b = srv.browser();
    b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    for _ in 0..35 {
        srv.clock.advance(Duration::from_secs(20 * 60));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = b.get("/api/v1/auth/me").await.status;
        assert_eq!(s, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // 35 x 20 min = 11 h 40 min; 20 more minutes reaches 12 h while the
    // session has been idle only 20 minutes, so only the absolute limit
    // can end it.
    srv.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(b.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "absolute lifetime");
    srv.shutdown().await;
}

#[tokio::test]
async fn password_change_revokes_other_sessions_and_rotates_this_one() {
    let srv = TestServer::start().await;
    let mut a = srv.admin().await;
    let mut other = srv.browser();
    other.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    let old_token = a.session_token().unwrap();
    let old_cookies = a.cookies.clone();

    let r = a
        .post(
            "/api/v1/auth/change-password",
            json!({ "current_password": "Not-The-Password-1", "new_password": "Harbor-Quartz-81&" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "wrong_current_password");
    let r = a
        .post("/api/v1/auth/change-password", json!({ "current_password": ADMIN_PASSWORD, "new_password": "short" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = a
        .post(
            "/api/v1/auth/change-password",
            json!({ "current_password": ADMIN_PASSWORD, "new_password": "Harbor-Quartz-81&" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_ne!(a.session_token().unwrap(), old_token, "rotated");
    assert_eq!(a.get("/api/v1/auth/me").await.status, StatusCode::OK);
    assert_eq!(other.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "other session revoked");
    let mut old = srv.browser();
    old.cookies = old_cookies;
    assert_eq!(old.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "pre-change cookie dead");
    let r = srv
        .browser()
        .post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Harbor-Quartz-81&" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn sessions_list_and_revoke_others() {
    let srv = TestServer::start().await;
    let mut a = srv.admin().await;
    let mut b = srv.browser();
    b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    let r = a.get("/api/v1/auth/sessions").await;
    let list = r.body["sessions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["is_current"] == true).count(), 1);
    let r = a.post("/api/v1/auth/sessions/revoke-others", json!({})).await;
    assert_eq!(r.body["revoked"], 1);
    assert_eq!(b.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.get("/api/v1/auth/me").await.status, StatusCode::OK);
    srv.shutdown().await;
}
