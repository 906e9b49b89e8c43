//! The permission matrix: every route of `routes::table::routes()` is called
//! by every kind of caller — anonymous, each project role, a member of
//! another project, a global admin, an API key with the route's scope and
//! one without — over real HTTP, and the status must be exactly what the
//! route's access rule and the policy table say: 401, 403 or the route's
//! success status.
//!
//! The expectations are generated from the route table, so a new route is
//! covered automatically; the test only has to know how to call it
//! (`plan`), and fails on any route it does not know. Every call runs
//! against fresh fixtures (a new project with one member per role, fresh
//! target rows) and from its own client address, so no call can influence
//! another through state or rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::fixtures::USER_PASSWORD;
use common::*;
use palisade::routes::router::{Access, Route};
use palisade::routes::table::routes;
use palisade::security::rbac::{self, Action, Family, Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    Viewer,
    Auditor,
    Operator,
    Admin,
    /// Admin of another project, no membership in the one called.
    Outsider,
    GlobalAdmin,
    /// API key (owned by the project's admin) holding the route's scope.
    KeyWith,
    /// API key (same owner) holding every scope but the route's.
    KeyWithout,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Auditor,
    Who::Operator,
    Who::Admin,
    Who::Outsider,
    Who::GlobalAdmin,
    Who::KeyWith,
    Who::KeyWithout,
];

impl Who {
    fn role(self) -> Option<Role> {
        match self {
            Who::Viewer => Some(Role::Viewer),
            Who::Auditor => Some(Role::Auditor),
            Who::Operator => Some(Role::Operator),
            Who::Admin => Some(Role::Admin),
            _ => None,
        }
    }
    fn is_key(self) -> bool {
        matches!(self, Who::KeyWith | Who::KeyWithout)
    }
    fn has_session(self) -> bool {
        !self.is_key() && self != Who::Anonymous
    }
}

/// The scope a route needs from an API key, if keys can reach it at all.
fn route_scope(access: Access) -> Option<Scope> {
    match access {
        Access::Listing(s) => Some(s),
        Access::Project(a) => a.scope(),
        _ => None,
    }
}

/// What the matrix expects, from the route's access rule and the policy.
fn expected(access: Access, who: Who, ok: StatusCode) -> StatusCode {
    let denied = StatusCode::FORBIDDEN;
    match access {
        Access::Public => ok,
        _ if who == Who::Anonymous => StatusCode::UNAUTHORIZED,
        // Only an agent's bearer token opens these; no user, session or
        // API key does (tests/gateway_longpoll.rs covers the agent side).
        Access::Agent => StatusCode::UNAUTHORIZED,
        Access::User => {
            if who.is_key() {
                denied
            } else {
                ok
            }
        }
        Access::GlobalAdmin => {
            if who == Who::GlobalAdmin {
                ok
            } else {
                denied
            }
        }
        Access::Listing(_) => {
            if who == Who::KeyWithout {
                denied
            } else {
                ok
            }
        }
        Access::Project(action) => {
            let allowed = match who {
                Who::Viewer | Who::Auditor | Who::Operator | Who::Admin => rbac::allowed(who.role().unwrap(), action),
                Who::GlobalAdmin => true,
                // The key's owner is the project's admin.
                Who::KeyWith => action.scope().is_some() && rbac::allowed(Role::Admin, action),
                Who::Outsider | Who::KeyWithout | Who::Anonymous => false,
            };
            if allowed {
                ok
            } else {
                denied
            }
        }
    }
}

struct World {
    srv: TestServer,
    ga: Uuid,
    users: HashMap<Who, Uuid>,
    emails: HashMap<Who, String>,
    keys: HashMap<Vec<String>, String>,
    login_email: String,
    seq: u32,
}

/// One concrete call: path with ids filled in, body, success status, and
/// the project it targets (for the `/permissions` cross-check).
struct Call {
    path: String,
    body: Option<Value>,
    ok: StatusCode,
    slug: Option<String>,
}

impl World {
    async fn new() -> World {
        let srv = TestServer::start_with(&[("PALISADE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
        let _ = srv.admin().await;
        let conn = srv.state().db.conn().await.unwrap();
        let ga: Uuid = conn.query_one("SELECT id FROM users WHERE is_admin", &[]).await.unwrap().get(0);
        let mut users = HashMap::new();
        let mut emails = HashMap::new();
        for (who, name) in [
            (Who::Viewer, "viewer"),
            (Who::Auditor, "auditor"),
            (Who::Operator, "operator"),
            (Who::Admin, "admin"),
            (Who::Outsider, "outsider"),
        ] {
            let email = format!("{name}@matrix.test");
            users.insert(who, srv.make_user(&email, false).await);
            emails.insert(who, email);
        }
        users.insert(Who::GlobalAdmin, ga);
        emails.insert(Who::GlobalAdmin, ADMIN_EMAIL.to_string());
        let other = srv.make_project("other-project", ga).await;
        srv.add_member(other, users[&Who::Outsider], Role::Admin).await;
        let login_email = "login-target@matrix.test".to_string();
        srv.make_user(&login_email, false).await;
        World { srv, ga, users, emails, keys: HashMap::new(), login_email, seq: 0 }
    }

    fn next(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// A key owned by the Admin-role user with exactly these scopes.
    async fn key(&mut self, scopes: Vec<String>) -> String {
        if let Some(k) = self.keys.get(&scopes) {
            return k.clone();
        }
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let (key, _) = self.srv.make_key(self.users[&Who::Admin], &refs, None).await;
        self.keys.insert(scopes, key.clone());
        key
    }

    fn key_scopes(who: Who, access: Access) -> Vec<String> {
        let needed = route_scope(access);
        match (who, needed) {
            (Who::KeyWith, Some(s)) => vec![s.name()],
            // No scope reaches this route; the best a key can do is all.
            (Who::KeyWith, None) => Scope::catalogue().iter().map(|s| s.name()).collect(),
            (_, Some(s)) => Scope::catalogue().into_iter().filter(|c| !c.covers(s)).map(|c| c.name()).collect(),
            (_, None) => Vec::new(),
        }
    }

    async fn key_for(&mut self, who: Who, access: Access) -> String {
        self.key(World::key_scopes(who, access)).await
    }

    async fn browser(&mut self, who: Who, access: Access) -> Browser {
        match who {
            Who::Anonymous => self.srv.browser(),
            Who::KeyWith | Who::KeyWithout => {
                let key = self.key_for(who, access).await;
                self.srv.with_key(&key)
            }
            _ => self.srv.session(self.users[&who]).await,
        }
    }

    /// A fresh project with one member per role.
    async fn project(&mut self) -> (Uuid, String) {
        let slug = format!("matrix-{}", self.next());
        let id = self.srv.make_project(&slug, self.ga).await;
        for who in [Who::Viewer, Who::Auditor, Who::Operator, Who::Admin] {
            self.srv.add_member(id, self.users[&who], who.role().unwrap()).await;
        }
        (id, slug)
    }

    async fn scratch_user(&mut self) -> (Uuid, String) {
        let email = format!("scratch-{}@matrix.test", self.next());
        (self.srv.make_user(&email, false).await, email)
    }

    /// How to call each route successfully. A route missing here fails the
    /// test: the matrix must never silently skip a route.
    async fn plan(&mut self, route: &Route, who: Who) -> Call {
        let ok = |path: &str, body: Option<Value>, status: StatusCode| Call {
            path: path.to_string(),
            body,
            ok: status,
            slug: None,
        };
        let me = self.users.get(&who).copied();
        let n = self.next();
        match (route.method.as_str(), route.path) {
            ("GET", "/" | "/setup" | "/assets/app.js" | "/assets/app.css" | "/.well-known/security.txt") => {
                ok(route.path, None, StatusCode::OK)
            }
            ("GET", "/api/v1/health" | "/api/v1/health/ready" | "/api/v1/auth/policy") => {
                ok(route.path, None, StatusCode::OK)
            }
            ("GET", "/api/v1/setup/status") => {
                let s = if who.has_session() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
                ok(route.path, None, s)
            }
            ("POST", "/api/v1/setup/complete") => {
                let body = json!({ "token": "x".repeat(43), "email": "late@matrix.test", "password": ADMIN_PASSWORD });
                ok(route.path, Some(body), StatusCode::CONFLICT)
            }
            ("POST", "/api/v1/auth/login") => {
                let body = json!({ "email": self.login_email, "password": USER_PASSWORD });
                ok(route.path, Some(body), StatusCode::OK)
            }
            ("POST", "/api/v1/auth/logout") => ok(route.path, Some(json!({})), StatusCode::NO_CONTENT),
            (
                "GET",
                "/api/v1/auth/me"
                | "/api/v1/auth/sessions"
                | "/api/v1/users"
                | "/api/v1/projects"
                | "/api/v1/audit"
                | "/api/v1/audit/verify",
            ) => ok(route.path, None, StatusCode::OK),
            ("PATCH", "/api/v1/auth/me") => ok(route.path, Some(json!({ "display_name": "M" })), StatusCode::OK),
            ("POST", "/api/v1/auth/change-password") => {
                // The global admin's password is ADMIN_PASSWORD.
                let current = if who == Who::GlobalAdmin { ADMIN_PASSWORD } else { USER_PASSWORD };
                let body = json!({ "current_password": current, "new_password": "Another-Orbit-77!" });
                ok(route.path, Some(body), StatusCode::OK)
            }
            ("POST", "/api/v1/auth/sessions/revoke-others") => ok(route.path, Some(json!({})), StatusCode::OK),
            ("POST", "/api/v1/auth/sessions/{id}/revoke") => {
                // A second session of the caller, so the call has a target.
                let target = match me {
                    Some(u) => {
                        let conn = self.srv.state().db.conn().await.unwrap();
                        self.srv.state().issue_session(&conn, u, None, None).await.unwrap().id
                    }
                    None => Uuid::new_v4(),
                };
                ok(&format!("/api/v1/auth/sessions/{target}/revoke"), Some(json!({})), StatusCode::NO_CONTENT)
            }
            ("POST", "/api/v1/auth/password-reset/request") => {
                ok(route.path, Some(json!({ "email": format!("r{n}@matrix.test") })), StatusCode::ACCEPTED)
            }
            ("POST", "/api/v1/auth/password-reset/confirm") => {
                let (user, _) = self.scratch_user().await;
                let token = self.srv.make_reset_token(user).await;
                ok(route.path, Some(json!({ "token": token, "password": "Fresh-Harbor-93!" })), StatusCode::OK)
            }
            ("POST", "/api/v1/users") => {
                let body = json!({ "email": format!("new{n}@matrix.test"), "password": USER_PASSWORD });
                ok(route.path, Some(body), StatusCode::CREATED)
            }
            ("GET" | "PATCH" | "DELETE", "/api/v1/users/{id}") | ("POST", "/api/v1/users/{id}/sessions/revoke") => {
                let (user, _) = self.scratch_user().await;
                let path = route.path.replace("{id}", &user.to_string());
                match route.method.as_str() {
                    "GET" => ok(&path, None, StatusCode::OK),
                    "PATCH" => ok(&path, Some(json!({ "display_name": "S" })), StatusCode::OK),
                    "DELETE" => ok(&path, None, StatusCode::NO_CONTENT),
                    _ => ok(&path, Some(json!({})), StatusCode::OK),
                }
            }
            ("POST", "/api/v1/projects") => {
                ok(route.path, Some(json!({ "slug": format!("created-{n}"), "name": "Created" })), StatusCode::CREATED)
            }
            (_, p) if p.starts_with("/api/v1/projects/{slug}") => self.plan_project(route, who).await,
            ("POST", "/api/v1/invitations/preview") => {
                let (project, _) = self.project().await;
                let (_, token) =
                    self.srv.make_invitation(project, &format!("p{n}@matrix.test"), Role::Viewer, self.ga).await;
                ok(route.path, Some(json!({ "token": token })), StatusCode::OK)
            }
            ("POST", "/api/v1/invitations/accept") => {
                // A signed-in caller accepts an invitation to their own
                // address; anyone else creates the invited account.
                let (project, _) = self.srv_project_without_members().await;
                let email = match who {
                    w if w.has_session() => self.emails[&w].clone(),
                    _ => format!("a{n}@matrix.test"),
                };
                let (_, token) = self.srv.make_invitation(project, &email, Role::Viewer, self.ga).await;
                let body = json!({ "token": token, "password": "Invited-Lagoon-64!", "display_name": "I" });
                ok(route.path, Some(body), StatusCode::CREATED)
            }
            ("POST", "/api/v1/agent/events") => ok(route.path, Some(json!({ "frames": ["{}"] })), StatusCode::OK),
            ("GET", "/api/v1/agent/commands") => ok(route.path, None, StatusCode::OK),
            ("GET", "/api/v1/api-keys") => ok(route.path, None, StatusCode::OK),
            ("POST", "/api/v1/api-keys") => {
                ok(route.path, Some(json!({ "name": "k", "scopes": ["tasks:read"] })), StatusCode::CREATED)
            }
            ("DELETE", "/api/v1/api-keys/{id}") => {
                let id = match me {
                    Some(u) => {
                        let conn = self.srv.state().db.conn().await.unwrap();
                        let hash = rand_hash();
                        let new = palisade::store::api_keys::NewApiKey {
                            user_id: u,
                            name: "target",
                            prefix: "pal_target",
                            key_hash: &hash,
                            scopes: &[],
                            project_id: None,
                            expires_at: None,
                        };
                        palisade::store::api_keys::insert(&conn, &new, self.srv.state().clock.now()).await.unwrap().id
                    }
                    None => Uuid::new_v4(),
                };
                ok(&format!("/api/v1/api-keys/{id}"), None, StatusCode::NO_CONTENT)
            }
            (m, p) => panic!("the permission matrix does not know how to call {m} {p}; add it to `plan`"),
        }
    }

    async fn srv_project_without_members(&mut self) -> (Uuid, String) {
        let slug = format!("bare-{}", self.next());
        (self.srv.make_project(&slug, self.ga).await, slug)
    }

    async fn plan_project(&mut self, route: &Route, _who: Who) -> Call {
        let (project, slug) = self.project().await;
        let n = self.next();
        let base = route.path.replace("{slug}", &slug);
        let call =
            |path: String, body: Option<Value>, ok: StatusCode| Call { path, body, ok, slug: Some(slug.clone()) };
        let tail = route.path.trim_start_matches("/api/v1/projects/{slug}");
        match (route.method.as_str(), tail) {
            (
                "GET",
                ""
                | "/permissions"
                | "/memberships"
                | "/invitations"
                | "/agents"
                | "/tasks"
                | "/workers"
                | "/queues"
                | "/events"
                | "/commands"
                | "/audit"
                | "/notifications/channels"
                | "/notifications/rules"
                | "/notifications/deliveries",
            ) => call(base, None, StatusCode::OK),
            ("POST", "/notifications/channels") => {
                let config = json!({ "webhook_url": "https://hooks.slack.com/services/T0/B0/matrix" });
                call(
                    base,
                    Some(json!({ "name": format!("ch-{n}"), "type": "slack", "config": config })),
                    StatusCode::CREATED,
                )
            }
            ("PATCH" | "DELETE", "/notifications/channels/{id}") => {
                let id = self.srv.make_channel(project, &format!("ch-{n}"), "https://hooks.example.com/x").await;
                let path = base.replace("{id}", &id.to_string());
                if route.method == Method::PATCH {
                    call(path, Some(json!({ "name": format!("renamed-{n}") })), StatusCode::OK)
                } else {
                    call(path, None, StatusCode::NO_CONTENT)
                }
            }
            ("POST", "/notifications/channels/{id}/test") => {
                // A documentation address: refused at send, before any
                // connection, so the call answers quickly with ok=false.
                let id = self.srv.make_channel(project, &format!("ch-{n}"), "https://192.0.2.10/hook").await;
                call(base.replace("{id}", &id.to_string()), Some(json!({})), StatusCode::OK)
            }
            ("POST", "/notifications/rules") => {
                let channel = self.srv.make_channel(project, &format!("ch-{n}"), "https://hooks.example.com/x").await;
                let body = json!({ "name": format!("rule-{n}"), "trigger": "task.failed", "channel_ids": [channel] });
                call(base, Some(body), StatusCode::CREATED)
            }
            ("PATCH" | "DELETE", "/notifications/rules/{id}") => {
                let channel = self.srv.make_channel(project, &format!("ch-{n}"), "https://hooks.example.com/x").await;
                let id = self.srv.make_rule(project, &format!("rule-{n}"), channel).await;
                let path = base.replace("{id}", &id.to_string());
                if route.method == Method::PATCH {
                    call(path, Some(json!({ "cooldown_secs": 60 })), StatusCode::OK)
                } else {
                    call(path, None, StatusCode::NO_CONTENT)
                }
            }
            ("POST", "/agents") => call(base, Some(json!({ "name": format!("agent-{n}") })), StatusCode::CREATED),
            ("DELETE", "/agents/{id}") => {
                let (id, _) = self.srv.make_agent(project, &format!("doomed-{n}")).await;
                call(base.replace("{id}", &id.to_string()), None, StatusCode::NO_CONTENT)
            }
            ("GET", "/tasks/{engine}/{task_id}") => {
                self.srv.make_task(project, "rq", "task-1", "failed").await;
                call(base.replace("{engine}", "rq").replace("{task_id}", "task-1"), None, StatusCode::OK)
            }
            ("GET", "/commands/{id}") => {
                let id = self.srv.make_command(project).await;
                call(base.replace("{id}", &id.to_string()), None, StatusCode::OK)
            }
            ("POST", "/commands/retry-task" | "/commands/cancel-task") => {
                self.srv.make_task(project, "rq", "task-1", "failed").await;
                call(base, Some(json!({ "engine": "rq", "task_id": "task-1" })), StatusCode::ACCEPTED)
            }
            ("POST", "/commands/bulk-retry") => {
                self.srv.make_task(project, "rq", "task-1", "failed").await;
                call(base, Some(json!({ "engine": "rq", "task_ids": ["task-1"] })), StatusCode::ACCEPTED)
            }
            ("POST", "/commands/purge-queue") => {
                call(base, Some(json!({ "engine": "rq", "queue": "default", "force": true })), StatusCode::ACCEPTED)
            }
            ("POST", "/commands/restart-worker") => {
                call(base, Some(json!({ "engine": "rq", "worker_name": "w1" })), StatusCode::ACCEPTED)
            }
            ("PATCH", "") => call(base, Some(json!({ "name": "Renamed" })), StatusCode::OK),
            ("DELETE", "") => call(base, None, StatusCode::NO_CONTENT),
            ("POST", "/memberships") => {
                let (user, _) = self.scratch_user().await;
                call(base, Some(json!({ "user_id": user, "role": "viewer" })), StatusCode::CREATED)
            }
            ("PATCH" | "DELETE", "/memberships/{id}") => {
                let (user, _) = self.scratch_user().await;
                let id = self.srv.add_member(project, user, Role::Viewer).await;
                let path = base.replace("{id}", &id.to_string());
                if route.method == Method::PATCH {
                    call(path, Some(json!({ "role": "operator" })), StatusCode::OK)
                } else {
                    call(path, None, StatusCode::NO_CONTENT)
                }
            }
            ("POST", "/invitations") => call(
                base,
                Some(json!({ "email": format!("inv{n}@matrix.test"), "role": "viewer" })),
                StatusCode::CREATED,
            ),
            ("DELETE", "/invitations/{id}") => {
                let (id, _) =
                    self.srv.make_invitation(project, &format!("del{n}@matrix.test"), Role::Viewer, self.ga).await;
                call(base.replace("{id}", &id.to_string()), None, StatusCode::NO_CONTENT)
            }
            (m, p) => {
                panic!("the permission matrix does not know how to call {m} {}; add it", route.path.to_owned() + p)
            }
        }
    }
}

fn rand_hash() -> Vec<u8> {
    (0..32).map(|_| rand::random::<u8>()).collect()
}

async fn send(b: &mut Browser, method: &Method, call: &Call, ip: &str) -> Resp {
    b.extra_headers.push(("x-forwarded-for".into(), ip.into()));
    let r = b.request(method.clone(), &call.path, call.body.clone()).await;
    b.extra_headers.pop();
    r
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_policy_says() {
    let mut w = World::new().await;
    let table = routes();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (i, route) in table.iter().enumerate() {
        for (j, who) in EVERYONE.into_iter().enumerate() {
            let call = w.plan(route, who).await;
            let want = expected(route.access, who, call.ok);
            let mut b = w.browser(who, route.access).await;
            let ip = format!("10.{}.{}.{}", i / 200, i % 200, j + 1);
            let got = send(&mut b, &route.method, &call, &ip).await;
            checked += 1;
            if got.status != want {
                failures.push(format!(
                    "{} {} as {who:?}: want {want}, got {} {}",
                    route.method,
                    route.path,
                    got.status,
                    got.text.chars().take(200).collect::<String>()
                ));
                continue;
            }
            if want == StatusCode::FORBIDDEN {
                assert!(
                    ["forbidden", "bearer_not_allowed"].contains(&got.code()),
                    "{} {}: {}",
                    route.method,
                    route.path,
                    got.text
                );
            }
            if want == StatusCode::UNAUTHORIZED && route.access != Access::Public {
                assert_eq!(got.code(), "unauthenticated");
            }
            // The policy endpoint must agree with what just happened.
            if let (Access::Project(action), Some(slug)) = (route.access, &call.slug) {
                if route.method != Method::DELETE || !route.path.ends_with("{slug}") {
                    agree(&mut w, who, route.access, slug, action, got.status == call.ok).await;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls disagreed with the policy:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, table.len() * EVERYONE.len());
    w.srv.shutdown().await;
}

/// `GET /projects/{slug}/permissions`, asked by the same caller, lists the
/// action exactly when the matrix call succeeded. A key needs
/// `projects:read` to ask; for a key without it, the question goes through
/// a key with the same scopes plus `projects:read`, which changes nothing
/// for any other action.
async fn agree(w: &mut World, who: Who, access: Access, slug: &str, action: Action, succeeded: bool) {
    let read = Scope::read(Family::Projects);
    let mut b = match who {
        Who::Anonymous => return,
        Who::KeyWith | Who::KeyWithout => {
            let mut scopes = World::key_scopes(who, access);
            if !scopes.contains(&read.name()) {
                if action.scope() == Some(read) {
                    return;
                }
                scopes.push(read.name());
            }
            let key = w.key(scopes).await;
            w.srv.with_key(&key)
        }
        _ => w.browser(who, access).await,
    };
    let r = b.get(&format!("/api/v1/projects/{slug}/permissions")).await;
    if who == Who::Outsider {
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!succeeded);
        return;
    }
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = r.body["actions"].as_array().unwrap().iter().any(|a| a == action.name());
    assert_eq!(listed, succeeded, "{who:?}: /permissions and the route disagree on {}", action.name());
}
