//! Projects and memberships as users and attackers see them: lifecycle,
//! archive rules, the last-admin invariant, cross-project isolation without
//! slug enumeration, cache invalidation, and the permissions endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use palisade::security::rbac::{self, Action, Role, Standing};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn ga_id(srv: &TestServer) -> Uuid {
    let conn = srv.state().db.conn().await.unwrap();
    conn.query_one("SELECT id FROM users WHERE is_admin", &[]).await.unwrap().get(0)
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn projects_are_created_listed_archived_and_restored() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let r = ga.post("/api/v1/projects", json!({ "slug": "payments", "name": "Payments", "description": "EU" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["project"]["slug"], "payments");
    let r = ga.post("/api/v1/projects", json!({ "slug": "payments", "name": "Again" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "slug_taken"));
    for bad in ["Payments", "a", "-x-", "has space", "ünï"] {
        let r = ga.post("/api/v1/projects", json!({ "slug": bad, "name": "X" })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r = ga.post("/api/v1/projects", json!({ "slug": "ok-slug", "name": "" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    ga.post("/api/v1/projects", json!({ "slug": "search", "name": "Search" })).await;

    // Members are added by email; unknown people are invited instead.
    let viewer = srv.make_user("viewer@p.test", false).await;
    let admin = srv.make_user("admin@p.test", false).await;
    let r =
        ga.post("/api/v1/projects/payments/memberships", json!({ "email": "Viewer@P.test", "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["membership"]["role"], "viewer");
    let r = ga.post("/api/v1/projects/payments/memberships", json!({ "user_id": admin, "role": "admin" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = ga.post("/api/v1/projects/payments/memberships", json!({ "user_id": viewer, "role": "viewer" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "already_member"));
    let r =
        ga.post("/api/v1/projects/payments/memberships", json!({ "email": "ghost@p.test", "role": "viewer" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "user_not_found"));
    let r = ga.post("/api/v1/projects/payments/memberships", json!({ "user_id": viewer, "role": "owner" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text.contains("owner"), "the rejected value is not echoed");

    // A member lists only their projects; a global admin lists all.
    let mut v = srv.session(viewer).await;
    let r = v.get("/api/v1/projects").await;
    let slugs: Vec<_> = r.body["projects"].as_array().unwrap().iter().map(|p| p["slug"].clone()).collect();
    assert_eq!(slugs, vec![json!("payments")]);
    assert_eq!(r.body["projects"][0]["role"], "viewer");
    assert_eq!(ga.get("/api/v1/projects").await.body["projects"].as_array().unwrap().len(), 2);

    // Archive: idempotent, members keep read access, every change refused.
    assert_eq!(ga.delete("/api/v1/projects/payments").await.status, StatusCode::NO_CONTENT);
    assert_eq!(ga.delete("/api/v1/projects/payments").await.status, StatusCode::NO_CONTENT);
    let r = v.get("/api/v1/projects/payments").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["project"]["archived_at"].is_string());
    let r = v.get("/api/v1/projects/payments/permissions").await;
    assert_eq!(r.body["archived"], true);
    assert!(names(&r.body["actions"]).iter().all(|a| !Action::from_name(a).unwrap().writes()));
    let mut a = srv.session(admin).await;
    assert_eq!(a.get("/api/v1/projects/payments/memberships").await.status, StatusCode::OK, "reads still work");
    let r = a.post("/api/v1/projects/payments/memberships", json!({ "email": "x@p.test", "role": "viewer" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "project_archived"));
    let r = a.post("/api/v1/projects/payments/invitations", json!({ "email": "x@p.test", "role": "viewer" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "project_archived"));
    // Refusal for a role that could never act comes first: 403, not 409.
    let r = v.post("/api/v1/projects/payments/memberships", json!({ "email": "x@p.test", "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Archived projects drop out of the default listings.
    assert_eq!(v.get("/api/v1/projects").await.body["projects"].as_array().unwrap().len(), 0);
    assert_eq!(v.get("/api/v1/projects?include_archived=true").await.body["projects"].as_array().unwrap().len(), 1);
    assert_eq!(ga.get("/api/v1/projects").await.body["projects"].as_array().unwrap().len(), 1);

    // Restore, and changes work again.
    let r = ga.patch("/api/v1/projects/payments", json!({ "archived": false, "name": "Payments EU" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["project"]["archived_at"].is_null());
    assert_eq!(r.body["project"]["name"], "Payments EU");
    let r =
        a.post("/api/v1/projects/payments/memberships", json!({ "email": "viewer@p.test", "role": "viewer" })).await;
    assert_eq!(r.code(), "already_member", "the admin can act again");
    assert_eq!(
        ga.patch("/api/v1/projects/payments", json!({ "archived": true })).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_demoted() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("solo", ga_user).await;
    let (a, b) = (srv.make_user("a@solo.test", false).await, srv.make_user("b@solo.test", false).await);
    let ma = srv.add_member(p, a, Role::Admin).await;
    let mut alice = srv.session(a).await;
    let r = alice.patch(&format!("/api/v1/projects/solo/memberships/{ma}"), json!({ "role": "viewer" })).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "last_admin"));
    let r = alice.delete(&format!("/api/v1/projects/solo/memberships/{ma}")).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "last_admin"));
    // With a second admin, one may step down; the other is then the last.
    let r = alice.post("/api/v1/projects/solo/memberships", json!({ "user_id": b, "role": "admin" })).await;
    let mb = r.body["membership"]["id"].as_str().unwrap().to_string();
    let r = alice.patch(&format!("/api/v1/projects/solo/memberships/{ma}"), json!({ "role": "operator" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["membership"]["role"], "operator");
    let r = ga.delete(&format!("/api/v1/projects/solo/memberships/{mb}")).await;
    assert_eq!(r.code(), "last_admin", "global admins obey the invariant too");

    // Two admins demoting each other at the same moment: one must lose.
    ga.patch(&format!("/api/v1/projects/solo/memberships/{ma}"), json!({ "role": "admin" })).await;
    let (mut g1, mut g2) = (srv.session(ga_user).await, srv.session(ga_user).await);
    let (pa, pb) =
        (format!("/api/v1/projects/solo/memberships/{ma}"), format!("/api/v1/projects/solo/memberships/{mb}"));
    let (r1, r2) = tokio::join!(g1.patch(&pa, json!({ "role": "viewer" })), g2.patch(&pb, json!({ "role": "viewer" })));
    let mut statuses = vec![r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::CONFLICT]);
    let conn = srv.state().db.conn().await.unwrap();
    let admins: i64 = conn
        .query_one("SELECT count(*) FROM memberships WHERE project_id = $1 AND role = 'admin'", &[&p])
        .await
        .unwrap()
        .get(0);
    assert_eq!(admins, 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn outsiders_get_the_same_403_for_real_and_unknown_projects() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let (p, q) = (srv.make_project("alpha", ga_user).await, srv.make_project("beta", ga_user).await);
    let (alice, bob) = (srv.make_user("alice@x.test", false).await, srv.make_user("bob@x.test", false).await);
    srv.add_member(p, alice, Role::Admin).await;
    let bob_in_beta = srv.add_member(q, bob, Role::Admin).await;
    let mut b = srv.session(bob).await;
    let mut seen = Vec::new();
    for path in [
        "/api/v1/projects/alpha",
        "/api/v1/projects/does-not-exist",
        "/api/v1/projects/NOT_A_SLUG",
        "/api/v1/projects/alpha/permissions",
        "/api/v1/projects/nope/permissions",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        let mut body = r.body.clone();
        body["error"]["request_id"] = Value::Null;
        seen.push((path.ends_with("permissions"), body));
    }
    for pair in seen.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert_eq!(pair[0].1, pair[1].1, "responses differ, so slugs could be enumerated");
        }
    }
    // Global admins may learn that a slug is unknown.
    assert_eq!(ga.get("/api/v1/projects/does-not-exist").await.status, StatusCode::NOT_FOUND);
    // An id from another project is not found, even for that project's admin.
    let mut a = srv.session(alice).await;
    let r = a.patch(&format!("/api/v1/projects/alpha/memberships/{bob_in_beta}"), json!({ "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.delete(&format!("/api/v1/projects/alpha/memberships/{}", Uuid::new_v4())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.delete("/api/v1/projects/alpha/memberships/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    srv.shutdown().await;
}

#[tokio::test]
async fn membership_changes_apply_at_once_and_the_warm_path_skips_the_database() {
    let srv = TestServer::start().await;
    let _ = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("gamma", ga_user).await;
    let (boss, carol) = (srv.make_user("boss@x.test", false).await, srv.make_user("carol@x.test", false).await);
    srv.add_member(p, boss, Role::Admin).await;
    let mc = srv.add_member(p, carol, Role::Admin).await;
    let mut c = srv.session(carol).await;
    let mut boss_b = srv.session(boss).await;
    assert_eq!(c.get("/api/v1/projects/gamma/memberships").await.status, StatusCode::OK);
    let loads = srv.state().authz.loads();
    for _ in 0..50 {
        assert_eq!(c.get("/api/v1/projects/gamma/memberships").await.status, StatusCode::OK);
    }
    assert_eq!(srv.state().authz.loads(), loads, "warm authorization checks must not query the database");

    // Demotion is seen by the very next request (the cache entry is gone).
    let r = boss_b.patch(&format!("/api/v1/projects/gamma/memberships/{mc}"), json!({ "role": "viewer" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(c.get("/api/v1/projects/gamma/memberships").await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/api/v1/projects/gamma").await.status, StatusCode::OK);
    // Removal too.
    assert_eq!(boss_b.delete(&format!("/api/v1/projects/gamma/memberships/{mc}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get("/api/v1/projects/gamma").await.status, StatusCode::FORBIDDEN);
    // And a grant.
    let r = boss_b.post("/api/v1/projects/gamma/memberships", json!({ "user_id": carol, "role": "auditor" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(c.get("/api/v1/projects/gamma/permissions").await.body["role"], "auditor");
    srv.shutdown().await;
}

#[tokio::test]
async fn permissions_endpoint_serves_the_policy_table_for_every_action() {
    let srv = TestServer::start().await;
    let mut ga = srv.admin().await;
    let ga_user = ga_id(&srv).await;
    let p = srv.make_project("delta", ga_user).await;
    for role in Role::ALL {
        let u = srv.make_user(&format!("{role}@delta.test"), false).await;
        srv.add_member(p, u, role).await;
        let r = srv.session(u).await.get("/api/v1/projects/delta/permissions").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["role"], role.as_str());
        let listed = names(&r.body["actions"]);
        // Every action, including those whose routes come later.
        for action in Action::ALL {
            assert_eq!(
                listed.contains(&action.name().to_string()),
                rbac::allowed(role, *action),
                "{role} {}",
                action.name()
            );
        }
    }
    let r = ga.get("/api/v1/projects/delta/permissions").await;
    assert_eq!(r.body["global_admin"], true);
    assert_eq!(names(&r.body["actions"]).len(), Action::ALL.len());
    let want: Vec<String> =
        rbac::allowed_actions(Some(Standing::GlobalAdmin), None, false).iter().map(|a| a.name().to_string()).collect();
    assert_eq!(names(&r.body["actions"]), want);
    srv.shutdown().await;
}
