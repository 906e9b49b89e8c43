//! Invitations end to end: mailed through a real SMTP dialogue to a sink
//! started by the test, previewed, accepted by a new person and by an
//! existing account, expiring, single use, revocable, identical answers
//! for every unusable token, and rate limited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::smtp_sink::SmtpSink;
use common::*;
use palisade::security::rbac::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn ga_id(srv: &TestServer) -> Uuid {
    let conn = srv.state().db.conn().await.unwrap();
    conn.query_one("SELECT id FROM users WHERE is_admin", &[]).await.unwrap().get(0)
}

fn token_from(text: &str, page: &str) -> String {
    let marker = format!("/{page}#token=");
    let start = text.find(&marker).unwrap_or_else(|| panic!("no {marker} link in: {text}")) + marker.len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn without_request_id(v: &Value) -> Value {
    let mut v = v.clone();
    v["error"]["request_id"] = Value::Null;
    v
}

#[tokio::test]
async fn an_invitation_is_mailed_previewed_and_accepted_once() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let srv = TestServer::start_with(&[("PALISADE_SMTP_URL", &url), ("PALISADE_SMTP_FROM", "ops@palisade.test")]).await;
    let mut ga = srv.admin().await;
    ga.post("/api/v1/projects", json!({ "slug": "billing", "name": "Billing" })).await;
    let r = ga
        .post("/api/v1/projects/billing/invitations", json!({ "email": "New.Person@Example.test", "role": "operator" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email_sent"], true);
    assert!(r.body.get("token").is_none() && r.body.get("accept_url").is_none(), "mailed links are not shown");
    assert_eq!(r.body["invitation"]["email"], "new.person@example.test");
    assert_eq!(r.body["invitation"]["status"], "pending");

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_to, vec!["new.person@example.test"]);
    assert_eq!(mail.mail_from, "ops@palisade.test");
    assert!(mail.header("Subject").unwrap().contains("Billing"));
    let text = mail.text();
    assert!(text.contains(&format!("{}/invite#token=", srv.base)), "{text}");
    let token = token_from(&text, "invite");
    assert_eq!(token.len(), 43, "256-bit token");

    let mut anon = srv.browser();
    let r = anon.post("/api/v1/invitations/preview", json!({ "token": token })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["email"], "new.person@example.test");
    assert_eq!(r.body["role"], "operator");
    assert_eq!(r.body["project"], json!({ "slug": "billing", "name": "Billing" }));
    assert_eq!(r.body["account_exists"], false);

    // The password policy applies, and a rejected password keeps the link.
    let r = anon
        .post("/api/v1/invitations/accept", json!({ "token": token, "password": "qz7", "display_name": "N" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text.contains("qz7"), "the password is not echoed");
    let good = json!({ "token": token, "password": "Meadow-Lantern-81!", "display_name": "New Person" });
    let r = anon.post("/api/v1/invitations/accept", good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["new_account"], true);
    assert!(r.set_cookies().is_empty(), "accepting does not sign in");

    // Single use.
    let r = anon.post("/api/v1/invitations/accept", good).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "invalid_or_expired"));
    let r = anon.post("/api/v1/invitations/preview", json!({ "token": token })).await;
    assert_eq!(r.code(), "invalid_or_expired");

    let mut newbie = srv.browser();
    let r = newbie
        .post("/api/v1/auth/login", json!({ "email": "new.person@example.test", "password": "Meadow-Lantern-81!" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = newbie.get("/api/v1/projects/billing/permissions").await;
    assert_eq!(r.body["role"], "operator");
    let listed = ga.get("/api/v1/projects/billing/invitations").await;
    assert_eq!(listed.body["invitations"][0]["status"], "accepted");
    assert!(!listed.text.contains(&token));
    srv.shutdown().await;
}

#[tokio::test]
async fn without_smtp_the_link_is_shown_once_to_its_creator() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    ga.post("/api/v1/projects", json!({ "slug": "nomail", "name": "No Mail" })).await;
    let r = ga.post("/api/v1/projects/nomail/invitations", json!({ "email": "x@y.test", "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["email_sent"], false);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(r.body["accept_url"], format!("{}/invite#token={token}", srv.base));
    let listed = ga.get("/api/v1/projects/nomail/invitations").await;
    assert!(!listed.text.contains(&token), "the list never shows it again");
    srv.shutdown().await;
}

#[tokio::test]
async fn expired_revoked_superseded_and_unknown_tokens_look_the_same() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("tokens", ga_user).await;
    let (revoked_id, revoked) = srv.make_invitation(p, "r@t.test", Role::Viewer, ga_user).await;
    let (_, superseded) = srv.make_invitation(p, "s@t.test", Role::Viewer, ga_user).await;
    let (_, expiring) = srv.make_invitation(p, "e@t.test", Role::Viewer, ga_user).await;
    let archived_project = srv.make_project("gone", ga_user).await;
    let (_, archived) = srv.make_invitation(archived_project, "g@t.test", Role::Viewer, ga_user).await;

    assert_eq!(
        ga.delete(&format!("/api/v1/projects/tokens/invitations/{revoked_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let r = ga.delete(&format!("/api/v1/projects/tokens/invitations/{revoked_id}")).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_pending"));
    let r = ga.post("/api/v1/projects/tokens/invitations", json!({ "email": "s@t.test", "role": "admin" })).await;
    let replacement = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(ga.delete("/api/v1/projects/gone").await.status, StatusCode::NO_CONTENT);
    // 72 hours minus a second: still valid; one more second: expired.
    srv.clock.advance(Duration::from_secs(72 * 3600 - 1));
    let mut anon = srv.browser();
    assert_eq!(anon.post("/api/v1/invitations/preview", json!({ "token": expiring })).await.status, StatusCode::OK);
    srv.clock.advance(Duration::from_secs(1));

    let reference =
        anon.post("/api/v1/invitations/preview", json!({ "token": palisade::security::tokens::mint() })).await;
    assert_eq!((reference.status, reference.code()), (StatusCode::NOT_FOUND, "invalid_or_expired"));
    for (why, token) in [
        ("revoked", revoked),
        ("superseded", superseded),
        ("expired", expiring.clone()),
        ("archived project", archived),
        ("replacement also expired", replacement),
        ("garbage", "x".into()),
        ("huge", "y".repeat(5000)),
    ] {
        let accept = json!({ "token": token, "password": "Meadow-Lantern-81!", "display_name": "Z" });
        for (path, body) in
            [("/api/v1/invitations/preview", json!({ "token": token })), ("/api/v1/invitations/accept", accept)]
        {
            let r = anon.post(path, body).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{why} {path}");
            assert_eq!(without_request_id(&r.body), without_request_id(&reference.body), "{why} {path}");
        }
    }
    let mut ga = srv.session(ga_user).await;
    let listed = ga.get("/api/v1/projects/tokens/invitations").await;
    let statuses: Vec<_> = listed.body["invitations"].as_array().unwrap().iter().map(|i| i["status"].clone()).collect();
    assert!(statuses.contains(&json!("expired")) && statuses.contains(&json!("revoked")), "{statuses:?}");
    let conn = srv.state().db.conn().await.unwrap();
    let id: Uuid = conn.query_one("SELECT id FROM invitations WHERE email = 'e@t.test'", &[]).await.unwrap().get(0);
    let r = ga.delete(&format!("/api/v1/projects/tokens/invitations/{id}")).await;
    assert_eq!(r.code(), "not_pending", "an expired invitation cannot be revoked");
    srv.shutdown().await;
}

#[tokio::test]
async fn an_existing_user_accepts_while_signed_in_as_that_user() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("joiners", ga_user).await;
    let dana = srv.make_user("dana@j.test", false).await;
    let eve = srv.make_user("eve@j.test", false).await;
    let (_, token) = srv.make_invitation(p, "dana@j.test", Role::Auditor, ga_user).await;
    let mut anon = srv.browser();
    let r = anon.post("/api/v1/invitations/preview", json!({ "token": token })).await;
    assert_eq!(r.body["account_exists"], true);
    let r = anon.post("/api/v1/invitations/accept", json!({ "token": token, "password": "Meadow-Lantern-81!" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "account_exists"));
    // Someone else's session cannot take it.
    let r = srv.session(eve).await.post("/api/v1/invitations/accept", json!({ "token": token })).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "invitation_for_other_account"));
    // A cross-site request riding Dana's cookie fails the CSRF check.
    let mut d = srv.session(dana).await;
    d.send_csrf = false;
    let r = d.post("/api/v1/invitations/accept", json!({ "token": token })).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "csrf_failed"));
    d.send_csrf = true;
    let r = d.post("/api/v1/invitations/accept", json!({ "token": token })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["new_account"], false);
    assert_eq!(d.get("/api/v1/projects/joiners/permissions").await.body["role"], "auditor");
    // Inviting a member again is a conflict, not a second membership.
    let r = ga.post("/api/v1/projects/joiners/invitations", json!({ "email": "DANA@j.test", "role": "admin" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "already_member"));
    srv.shutdown().await;
}

#[tokio::test]
async fn invitation_endpoints_allow_30_per_minute_per_address() {
    let srv = TestServer::start_with(&[("PALISADE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let mut ga = srv.admin().await;
    ga.post("/api/v1/projects", json!({ "slug": "limits", "name": "L" })).await;
    let mut attacker = srv.browser();
    attacker.extra_headers.push(("x-forwarded-for".into(), "198.51.100.9".into()));
    for i in 0..30 {
        let path = if i % 2 == 0 { "/api/v1/invitations/preview" } else { "/api/v1/invitations/accept" };
        let r = attacker.post(path, json!({ "token": palisade::security::tokens::mint() })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "attempt {i}");
    }
    let r = attacker.post("/api/v1/invitations/preview", json!({ "token": "z".repeat(43) })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    // The admin, from another address, is unaffected; create counts too.
    ga.extra_headers.push(("x-forwarded-for".into(), "192.0.2.1".into()));
    for i in 0..30 {
        let r = ga
            .post("/api/v1/projects/limits/invitations", json!({ "email": format!("p{i}@l.test"), "role": "viewer" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = ga.post("/api/v1/projects/limits/invitations", json!({ "email": "late@l.test", "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    srv.clock.advance(Duration::from_secs(61));
    let r = attacker.post("/api/v1/invitations/preview", json!({ "token": "z".repeat(43) })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the window slides");
    srv.shutdown().await;
}
