//! API keys: format and storage, scopes that never exceed the owner's role,
//! the places bearer auth can never reach, the cookie-plus-key confused
//! deputy, revocation/expiry/deactivation, project binding, last use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use palisade::security::rbac::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn ga_id(srv: &TestServer) -> Uuid {
    let conn = srv.state().db.conn().await.unwrap();
    conn.query_one("SELECT id FROM users WHERE is_admin", &[]).await.unwrap().get(0)
}

fn without_request_id(v: &Value) -> Value {
    let mut v = v.clone();
    v["error"]["request_id"] = Value::Null;
    v
}

#[tokio::test]
async fn keys_are_shown_once_and_stored_as_prefix_plus_hmac() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let r = ga.post("/api/v1/api-keys", json!({ "name": "ci", "scopes": ["projects:read", "tasks:read"] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("pal_") && key.len() == 47, "{key}");
    let prefix = r.body["api_key"]["prefix"].as_str().unwrap();
    assert_eq!(prefix, &key[..12]);
    assert_eq!(r.body["api_key"]["scopes"], json!(["projects:read", "tasks:read"]));
    let list = ga.get("/api/v1/api-keys").await;
    assert_eq!(list.body["api_keys"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&key), "the key is never shown again");
    assert!(list.body["scopes"].as_array().unwrap().contains(&json!("commands:write")), "catalogue is served");
    let conn = srv.state().db.conn().await.unwrap();
    let row = conn.query_one("SELECT key_hash, prefix FROM api_keys", &[]).await.unwrap();
    let hash: Vec<u8> = row.get(0);
    assert_eq!(hash.len(), 32);
    assert_eq!(hash, srv.state().api_key_hash(&key).to_vec());

    for (body, why) in [
        (json!({ "name": "x", "scopes": ["admin:*"] }), "unknown scope"),
        (json!({ "name": "x", "scopes": ["members:write"] }), "no key may manage members"),
        (json!({ "name": "", "scopes": [] }), "empty name"),
        (json!({ "name": "x", "scopes": [], "expires_in_days": 0 }), "expiry out of range"),
        (json!({ "name": "x", "scopes": [], "expires_in_days": 4000 }), "expiry out of range"),
    ] {
        let r = ga.post("/api/v1/api-keys", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {}", r.text);
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn bearer_never_reaches_auth_user_management_or_key_management() {
    let srv = TestServer::start().await;
    let _ = srv.admin().await;
    let ga = ga_id(&srv).await;
    // Even a global admin's key with every scope.
    let all: Vec<String> =
        palisade::security::rbac::Scope::catalogue().iter().map(|s| s.name()).collect::<Vec<String>>();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let (key, row) = srv.make_key(ga, &refs, None).await;
    let mut k = srv.with_key(&key);
    let id = row["id"].as_str().unwrap();
    for (method, path, body) in [
        ("GET", "/api/v1/auth/me".to_string(), None),
        ("GET", "/api/v1/auth/sessions".to_string(), None),
        ("POST", "/api/v1/auth/logout".to_string(), Some(json!({}))),
        ("POST", "/api/v1/auth/change-password".to_string(), Some(json!({}))),
        ("GET", "/api/v1/users".to_string(), None),
        ("POST", "/api/v1/users".to_string(), Some(json!({}))),
        ("GET", format!("/api/v1/users/{ga}"), None),
        ("GET", "/api/v1/api-keys".to_string(), None),
        ("POST", "/api/v1/api-keys".to_string(), Some(json!({ "name": "child", "scopes": [] }))),
        ("DELETE", format!("/api/v1/api-keys/{id}"), None),
        ("POST", "/api/v1/projects".to_string(), Some(json!({ "slug": "by-key", "name": "K" }))),
    ] {
        let r = k.request(method.parse().unwrap(), &path, body).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "bearer_not_allowed"), "{method} {path}");
    }
    // Public routes never look at the header: the key is not a session.
    assert_eq!(k.get("/api/v1/setup/status").await.status, StatusCode::UNAUTHORIZED);
    // The key still works where keys are allowed.
    assert_eq!(k.get("/api/v1/projects").await.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_key_cannot_ride_on_a_session_cookie() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    srv.make_project("omega", ga_user).await;
    let viewer = srv.make_user("v@omega.test", false).await;
    let (low_key, _) = srv.make_key(viewer, &["tasks:read"], None).await;
    // A victim's browser (valid cookie, no CSRF header) plus a low-scope
    // key: refused outright, whichever credential would have won.
    ga.send_csrf = false;
    ga.extra_headers.push(("authorization".into(), format!("Bearer {low_key}")));
    let r = ga.post("/api/v1/projects", json!({ "slug": "deputy", "name": "D" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "ambiguous_credentials"));
    let r = ga.delete("/api/v1/projects/omega").await;
    assert_eq!(r.code(), "ambiguous_credentials");
    let r = ga.get("/api/v1/projects/omega").await;
    assert_eq!(r.code(), "ambiguous_credentials");
    ga.extra_headers.clear();
    // An unusable Authorization header is refused, not ignored.
    ga.cookies.clear();
    ga.extra_headers.push(("authorization".into(), "Basic dXNlcjpwYXNz".into()));
    let r = ga.get("/api/v1/projects").await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let conn = srv.state().db.conn().await.unwrap();
    let n: i64 =
        conn.query_one("SELECT count(*) FROM projects WHERE archived_at IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    srv.shutdown().await;
}

#[tokio::test]
async fn keys_never_exceed_their_owner_or_their_scopes() {
    let srv = TestServer::start().await;
    let _ = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("scoped", ga_user).await;
    let (admin, viewer) = (srv.make_user("a@s.test", false).await, srv.make_user("v@s.test", false).await);
    srv.add_member(p, admin, Role::Admin).await;
    srv.add_member(p, viewer, Role::Viewer).await;

    let (k, _) = srv.make_key(admin, &["projects:read", "members:read"], None).await;
    let mut admin_key = srv.with_key(&k);
    assert_eq!(admin_key.get("/api/v1/projects/scoped/memberships").await.status, StatusCode::OK);
    // Session-only actions stay out of reach whatever the scopes; no CSRF
    // header is needed or checked: the refusal is the policy's.
    let r = admin_key.post("/api/v1/projects/scoped/memberships", json!({ "user_id": viewer, "role": "admin" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r =
        admin_key.post("/api/v1/projects/scoped/invitations", json!({ "email": "e@s.test", "role": "admin" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = admin_key.get("/api/v1/projects/scoped/permissions").await;
    assert_eq!(r.body["via_api_key"], true);
    assert_eq!(r.body["actions"], json!(["read_project", "read_members", "read_invitations"]));

    // A viewer's key with the same scopes gets the viewer's rights only.
    let (vk, _) = srv.make_key(viewer, &["projects:read", "members:read"], None).await;
    let mut viewer_key = srv.with_key(&vk);
    assert_eq!(viewer_key.get("/api/v1/projects/scoped/memberships").await.status, StatusCode::FORBIDDEN);
    assert_eq!(viewer_key.get("/api/v1/projects/scoped/permissions").await.body["actions"], json!(["read_project"]));
    // And a key without projects:read cannot read the project.
    let (nk, _) = srv.make_key(admin, &["tasks:read"], None).await;
    let r = srv.with_key(&nk).get("/api/v1/projects/scoped").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = srv.with_key(&nk).get("/api/v1/projects").await;
    assert_eq!(
        (r.status, r.body["error"]["details"]["required_scope"].clone()),
        (StatusCode::FORBIDDEN, json!("projects:read"))
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn revoked_expired_and_orphaned_keys_stop_at_once() {
    let srv = TestServer::start().await;
    let _ = srv.admin().await;
    let user = srv.make_user("k@x.test", false).await;
    let mut owner = srv.session(user).await;
    let r = owner.post("/api/v1/api-keys", json!({ "name": "a", "scopes": ["projects:read"] })).await;
    let (revoked, revoked_id) = (r.body["key"].as_str().unwrap().to_string(), r.body["api_key"]["id"].clone());
    let r =
        owner.post("/api/v1/api-keys", json!({ "name": "b", "scopes": ["projects:read"], "expires_in_days": 1 })).await;
    let expiring = r.body["key"].as_str().unwrap().to_string();
    let r = owner.post("/api/v1/api-keys", json!({ "name": "c", "scopes": ["projects:read"] })).await;
    let orphan = r.body["key"].as_str().unwrap().to_string();
    for k in [&revoked, &expiring, &orphan] {
        assert_eq!(srv.with_key(k).get("/api/v1/projects").await.status, StatusCode::OK);
    }
    let unknown = srv.with_key(&format!("pal_{}", "A".repeat(43))).get("/api/v1/projects").await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));

    // Another user cannot revoke it (not found), its owner can.
    let stranger = srv.make_user("s@x.test", false).await;
    let path = format!("/api/v1/api-keys/{}", revoked_id.as_str().unwrap());
    assert_eq!(srv.session(stranger).await.delete(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(owner.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(owner.delete(&path).await.status, StatusCode::NOT_FOUND);
    let r = srv.with_key(&revoked).get("/api/v1/projects").await;
    assert_eq!(without_request_id(&r.body), without_request_id(&unknown.body), "revoked looks like unknown");

    srv.clock.advance(Duration::from_secs(86_401));
    let r = srv.with_key(&expiring).get("/api/v1/projects").await;
    assert_eq!(without_request_id(&r.body), without_request_id(&unknown.body), "expired looks like unknown");

    // A day has passed: the admin signs in afresh.
    let mut ga = srv.session(ga_id(&srv).await).await;
    let r = ga.patch(&format!("/api/v1/users/{user}"), json!({ "is_active": false })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(srv.with_key(&orphan).get("/api/v1/projects").await.status, StatusCode::UNAUTHORIZED);
    srv.shutdown().await;
}

#[tokio::test]
async fn project_bound_keys_stay_in_their_project() {
    let srv = TestServer::start().await;
    let _ = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let (p, q) = (srv.make_project("home", ga_user).await, srv.make_project("away", ga_user).await);
    let owner = srv.make_user("o@x.test", false).await;
    srv.add_member(p, owner, Role::Admin).await;
    srv.add_member(q, owner, Role::Admin).await;
    let (key, row) = srv.make_key(owner, &["projects:read", "members:read"], Some("home")).await;
    assert_eq!(row["project_slug"], "home");
    let mut k = srv.with_key(&key);
    assert_eq!(k.get("/api/v1/projects/home/memberships").await.status, StatusCode::OK);
    assert_eq!(k.get("/api/v1/projects/away/memberships").await.status, StatusCode::FORBIDDEN);
    assert_eq!(k.get("/api/v1/projects/away").await.status, StatusCode::FORBIDDEN);
    let listed = k.get("/api/v1/projects").await;
    let slugs: Vec<_> = listed.body["projects"].as_array().unwrap().iter().map(|p| p["slug"].clone()).collect();
    assert_eq!(slugs, vec![json!("home")]);

    // Binding needs standing in the project; outsiders learn nothing.
    let outsider = srv.make_user("x@x.test", false).await;
    let mut b = srv.session(outsider).await;
    for slug in ["home", "no-such-project"] {
        let r = b.post("/api/v1/api-keys", json!({ "name": "n", "scopes": [], "project": slug })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{slug}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn last_use_is_recorded_with_the_resolved_client_address() {
    let srv = TestServer::start_with(&[("PALISADE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let _ = srv.admin().await;
    let user = srv.make_user("u@x.test", false).await;
    let (key, row) = srv.make_key(user, &["projects:read"], None).await;
    assert!(row["last_used_at"].is_null());
    let mut k = srv.with_key(&key);
    k.extra_headers.push(("x-forwarded-for".into(), "203.0.113.7".into()));
    assert_eq!(k.get("/api/v1/projects").await.status, StatusCode::OK);
    let conn = srv.state().db.conn().await.unwrap();
    let mut ip = None;
    for _ in 0..100 {
        let r = conn.query_one("SELECT host(last_used_ip), last_used_at IS NOT NULL FROM api_keys", &[]).await.unwrap();
        if r.get::<_, bool>(1) {
            ip = r.get::<_, Option<String>>(0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));
    let shown = srv.session(user).await.get("/api/v1/api-keys").await;
    assert_eq!(shown.body["api_keys"][0]["last_used_ip"], "203.0.113.7");
    srv.shutdown().await;
}
