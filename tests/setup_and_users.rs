//! First boot and user administration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn setup_token_is_single_use_hashed_and_expires() {
    let srv = TestServer::start().await;
    let token = srv.running().setup_token.clone().unwrap();
    let db = srv.db.client().await;
    let row = db.query_one("SELECT token_hash, expires_at - created_at FROM setup_tokens", &[]).await.unwrap();
    let hash: Vec<u8> = row.get(0);
    assert_eq!(hash.len(), 32);
    assert!(!String::from_utf8_lossy(&hash).contains(&token));

    let mut b = srv.browser();
    assert_eq!(b.get("/api/v1/setup/status").await.body["first_boot"], true);
    let r = b.post("/api/v1/setup/complete", json!({ "token": "wrong-token-wrong-token-wrong-token-1234567", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "invalid_setup_token");
    // A weak password does not burn the token.
    let r = b.post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": "weak" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post(
            "/api/v1/setup/complete",
            json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "display_name": "Root" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["user"]["is_admin"], true);
    assert_eq!(b.get("/api/v1/auth/me").await.body["user"]["email"], ADMIN_EMAIL, "setup signs the admin in");
    let r = srv
        .browser()
        .post(
            "/api/v1/setup/complete",
            json!({ "token": token, "email": "two@palisade.test", "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "already_initialised");
    // After first boot the status endpoint needs a session.
    assert_eq!(srv.browser().get("/api/v1/setup/status").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.get("/api/v1/setup/status").await.body["first_boot"], false);
    let n: i64 = db.query_one("SELECT count(*) FROM setup_tokens", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    srv.shutdown().await;
}

#[tokio::test]
async fn setup_token_expires_after_an_hour() {
    let srv = TestServer::start().await;
    let token = srv.running().setup_token.clone().unwrap();
    srv.clock.advance(Duration::from_secs(3601));
    let r = srv
        .browser()
        .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    srv.shutdown().await;
}

#[tokio::test]
async fn setup_is_rate_limited_to_5_per_15_minutes() {
    let srv = TestServer::start().await;
    let mut b = srv.browser();
    for _ in 0..5 {
        let r = b
            .post(
                "/api/v1/setup/complete",
                json!({ "token": "x".repeat(43), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let r = b
        .post(
            "/api/v1/setup/complete",
            json!({ "token": "x".repeat(43), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 60);
    srv.clock.advance(Duration::from_secs(15 * 60 + 1));
    let token = srv.running().setup_token.clone().unwrap();
    let r = b
        .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    srv.shutdown().await;
}

#[tokio::test]
async fn users_are_managed_by_global_admins_only() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let mut bob = srv.user(&mut admin, "bob@palisade.test", "Velvet-Summit-38$", false).await;
    for (m, p) in [("GET", "/api/v1/users"), ("POST", "/api/v1/users")] {
        let r = if m == "GET" {
            bob.get(p).await
        } else {
            bob.post(p, json!({"email":"x@y.z","password":"Velvet-Summit-38$"})).await
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
        assert_eq!(r.code(), "forbidden");
    }
    let r = admin.get("/api/v1/users").await;
    assert_eq!(r.body["users"].as_array().unwrap().len(), 2);
    let bob_id = r.body["users"].as_array().unwrap().iter().find(|u| u["email"] == "bob@palisade.test").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!r.text.contains("password_hash") && !r.text.contains("$argon2"), "no password hash in answers");
    let r = admin.post("/api/v1/users", json!({ "email": "BOB@palisade.test", "password": "Velvet-Summit-38$" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Deactivating revokes Bob's sessions at once.
    let r = admin.patch(&format!("/api/v1/users/{bob_id}"), json!({ "is_active": false })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(bob.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    let r = srv
        .browser()
        .post("/api/v1/auth/login", json!({ "email": "bob@palisade.test", "password": "Velvet-Summit-38$" }))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "inactive users cannot sign in");
    let r = admin.delete(&format!("/api/v1/users/{bob_id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.get(&format!("/api/v1/users/{bob_id}")).await.status, StatusCode::NOT_FOUND);
    srv.shutdown().await;
}

#[tokio::test]
async fn the_last_global_admin_cannot_be_removed() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let me = admin.get("/api/v1/auth/me").await.body["user"]["id"].as_str().unwrap().to_string();
    let r = admin.patch(&format!("/api/v1/users/{me}"), json!({ "is_admin": false })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "last_admin"));
    let r = admin.patch(&format!("/api/v1/users/{me}"), json!({ "is_active": false })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "last_admin"));
    let r = admin.delete(&format!("/api/v1/users/{me}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let _second = srv.user(&mut admin, "second@palisade.test", "Velvet-Summit-38$", true).await;
    let r = admin.patch(&format!("/api/v1/users/{me}"), json!({ "is_admin": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    srv.shutdown().await;
}
