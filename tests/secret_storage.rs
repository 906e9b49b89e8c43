//! Secret storage review: run a scenario that issues every kind of
//! credential the product has — setup token, session and CSRF tokens,
//! invitation tokens (mailed and shown), password-reset tokens, API keys,
//! passwords — then read every column of every table as text and find none
//! of them, in any encoding a careless implementation might have used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::smtp_sink::SmtpSink;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn token_after(text: &str, marker: &str) -> String {
    let start = text.find(marker).unwrap() + marker.len();
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// The forms a secret could take in a text dump: as is, hex of its bytes,
/// and (for our base64url tokens) hex and base64 of the raw 32 bytes.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string(), hex::encode(secret.as_bytes())];
    let body = secret.strip_prefix("pal_").unwrap_or(secret);
    if let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body) {
        out.push(hex::encode(&raw));
        out.push(base64::engine::general_purpose::STANDARD.encode(&raw));
    }
    out
}

/// Every column of every table, as text; returns "<what> in <table>.<column>".
async fn scan(db: &tokio_postgres::Client, secrets: &[(&str, String)]) -> (Vec<String>, usize) {
    let tables: Vec<String> = db
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in ["users", "sessions", "invitations", "password_reset_tokens", "api_keys", "memberships", "projects"] {
        assert!(tables.contains(&t.to_string()), "{t} is scanned");
    }
    let (mut hits, mut scanned) = (Vec::new(), 0);
    for t in &tables {
        let columns: Vec<String> = db
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
                &[t],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for c in columns {
            let rows = db.query(&format!("SELECT \"{c}\"::text FROM \"{t}\""), &[]).await.unwrap();
            for r in rows {
                let Some(text) = r.get::<_, Option<String>>(0) else { continue };
                scanned += 1;
                let lower = text.to_lowercase();
                for (what, secret) in secrets {
                    if forms(secret).iter().any(|f| lower.contains(&f.to_lowercase())) {
                        hits.push(format!("{what} in {t}.{c}"));
                    }
                }
            }
        }
    }
    (hits, scanned)
}

#[tokio::test]
async fn no_table_holds_any_issued_secret() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let srv = TestServer::start_with(&[("PALISADE_SMTP_URL", &url)]).await;
    let mut secrets: Vec<(&str, String)> = Vec::new();
    secrets.push(("setup token", srv.running().setup_token.clone().unwrap()));
    secrets.push(("admin password", ADMIN_PASSWORD.to_string()));
    let mut ga = srv.admin().await;
    secrets.push(("session", ga.session_token().unwrap()));
    secrets.push(("csrf", ga.csrf().unwrap()));

    ga.post("/api/v1/projects", json!({ "slug": "vault", "name": "Vault" })).await;
    // A mailed invitation, accepted by a new person who then signs in.
    let r = ga.post("/api/v1/projects/vault/invitations", json!({ "email": "ivy@v.test", "role": "admin" })).await;
    assert_eq!(r.body["email_sent"], true);
    let invite = token_after(&sink.wait_for(1).await[0].text(), "/invite#token=");
    secrets.push(("mailed invitation", invite.clone()));
    let r = srv
        .browser()
        .post(
            "/api/v1/invitations/accept",
            json!({ "token": invite, "password": "Quartz-Willow-4411!", "display_name": "Ivy" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    secrets.push(("invitee password", "Quartz-Willow-4411!".into()));
    let mut ivy = srv.browser();
    ivy.post("/api/v1/auth/login", json!({ "email": "ivy@v.test", "password": "Quartz-Willow-4411!" })).await;
    secrets.push(("invitee session", ivy.session_token().unwrap()));
    secrets.push(("invitee csrf", ivy.csrf().unwrap()));
    // A pending invitation whose link was never used.
    let r =
        ivy.post("/api/v1/projects/vault/invitations", json!({ "email": "pending@v.test", "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    secrets.push(("pending invitation", token_after(&sink.wait_for(2).await[1].text(), "/invite#token=")));

    // API keys, one used and one revoked.
    for name in ["used", "revoked"] {
        let r = ivy
            .post("/api/v1/api-keys", json!({ "name": name, "scopes": ["projects:read"], "project": "vault" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let key = r.body["key"].as_str().unwrap().to_string();
        if name == "used" {
            assert_eq!(srv.with_key(&key).get("/api/v1/projects/vault").await.status, StatusCode::OK);
        } else {
            ivy.delete(&format!("/api/v1/api-keys/{}", r.body["api_key"]["id"].as_str().unwrap())).await;
        }
        secrets.push(("api key", key));
    }

    // Password resets: one completed, one left outstanding.
    let mut anon = srv.browser();
    anon.post("/api/v1/auth/password-reset/request", json!({ "email": "ivy@v.test" })).await;
    let done = token_after(&sink.wait_for(3).await[2].text(), "/reset#token=");
    let r = anon
        .post("/api/v1/auth/password-reset/confirm", json!({ "token": done, "password": "Copper-Orchard-9090!" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    secrets.push(("used reset token", done));
    secrets.push(("reset password", "Copper-Orchard-9090!".into()));
    anon.post("/api/v1/auth/password-reset/request", json!({ "email": "ivy@v.test" })).await;
    secrets.push(("open reset token", token_after(&sink.wait_for(4).await[3].text(), "/reset#token=")));

    let db = srv.db.client().await;
    // Every one of those actions left an audit row (the scan below covers
    // their details too), project-scoped ones tagged with the project.
    let actions: Vec<String> =
        db.query("SELECT DISTINCT action FROM audit_log", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    for a in [
        "project.created",
        "invitation.created",
        "invitation.email_delivery",
        "invitation.accepted",
        "api_key.created",
        "api_key.revoked",
        "auth.password_reset_requested",
        "auth.password_reset_completed",
    ] {
        assert!(actions.contains(&a.to_string()), "no {a} audit row: {actions:?}");
    }
    let untagged: i64 = db
        .query_one("SELECT count(*) FROM audit_log WHERE action LIKE 'invitation.%' AND project_id IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(untagged, 0);
    let mut ga = srv.session(db.query_one("SELECT id FROM users WHERE is_admin", &[]).await.unwrap().get(0)).await;
    let r = ga.get("/api/v1/audit/verify").await;
    assert_eq!((r.status, r.body["intact"].clone()), (StatusCode::OK, json!(true)), "{}", r.text);
    // The scanner itself must see a planted secret, in a disguised form.
    db.batch_execute("CREATE TABLE canary (note text, blob bytea)").await.unwrap();
    let planted = secrets[2].1.clone();
    db.execute("INSERT INTO canary VALUES ('ok', $1)", &[&planted.as_bytes()]).await.unwrap();
    let (hits, _) = scan(&db, &secrets).await;
    assert_eq!(hits, vec!["session in canary.blob".to_string()]);
    db.batch_execute("DROP TABLE canary").await.unwrap();

    let (hits, scanned) = scan(&db, &secrets).await;
    assert!(hits.is_empty(), "plaintext secrets stored: {hits:?}");
    assert!(scanned > 50, "the scan saw the data ({scanned} values)");
    // And the token columns are the 32-byte HMACs they claim to be.
    for (t, c) in [
        ("sessions", "token_hash"),
        ("sessions", "csrf_hash"),
        ("invitations", "token_hash"),
        ("password_reset_tokens", "token_hash"),
        ("api_keys", "key_hash"),
    ] {
        let bad: i64 =
            db.query_one(&format!("SELECT count(*) FROM {t} WHERE octet_length({c}) <> 32"), &[]).await.unwrap().get(0);
        assert_eq!(bad, 0, "{t}.{c}");
    }
    srv.shutdown().await;
}
