//! Fast fixtures for authorization tests: rows written through the
//! library's own store functions (no HTTP, no Argon2 per user, no rate
//! limits), and browsers holding sessions or API keys for them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use palisade::security::keys::Purpose;
use palisade::security::rbac::Role;
use palisade::security::tokens;
use palisade::state::AppState;
use palisade::store::invitations::NewInvitation;
use palisade::store::{invitations, memberships, projects, users};
use serde_json::Value;
use uuid::Uuid;

use super::{Browser, TestServer};

/// Every fixture user's password.
pub const USER_PASSWORD: &str = "Quartz-Meadow-58!";

static PHC: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

impl TestServer {
    pub fn state(&self) -> &AppState {
        &self.running().state
    }

    /// The Argon2 hash of `USER_PASSWORD`, computed once per test binary.
    pub async fn phc(&self) -> String {
        PHC.get_or_init(|| async { self.state().hasher.hash(USER_PASSWORD).await.unwrap() }).await.clone()
    }

    pub async fn make_user(&self, email: &str, is_admin: bool) -> Uuid {
        let phc = self.phc().await;
        let conn = self.state().db.conn().await.unwrap();
        let new = users::NewUser { email, display_name: "", password_hash: &phc, is_admin };
        users::insert(&conn, &new, self.state().clock.now()).await.unwrap().id
    }

    pub async fn make_project(&self, slug: &str, created_by: Uuid) -> Uuid {
        let conn = self.state().db.conn().await.unwrap();
        let new = projects::NewProject { slug, name: slug, description: "", created_by };
        projects::insert(&conn, &new, self.state().clock.now()).await.unwrap().id
    }

    pub async fn add_member(&self, project: Uuid, user: Uuid, role: Role) -> Uuid {
        let conn = self.state().db.conn().await.unwrap();
        memberships::insert(&conn, project, user, role, self.state().clock.now()).await.unwrap()
    }

    /// A browser signed in as `user` through a freshly minted session.
    pub async fn session(&self, user: Uuid) -> Browser {
        let st = self.state();
        let conn = st.db.conn().await.unwrap();
        let issued = st.issue_session(&conn, user, None, None).await.unwrap();
        let mut b = self.browser();
        b.cookies.insert(st.cookies.session.to_string(), issued.token);
        b.cookies.insert(st.cookies.csrf.to_string(), issued.csrf);
        b
    }

    /// A browser that sends `Authorization: Bearer <key>` and no cookie.
    pub fn with_key(&self, key: &str) -> Browser {
        let mut b = self.browser();
        b.extra_headers.push(("authorization".into(), format!("Bearer {key}")));
        b
    }

    /// A pending invitation and its plaintext token.
    pub async fn make_invitation(&self, project: Uuid, email: &str, role: Role, inviter: Uuid) -> (Uuid, String) {
        let st = self.state();
        let token = tokens::mint();
        let hash = st.keys.key(Purpose::Invitation).mac(token.as_bytes());
        let now = st.clock.now();
        let conn = st.db.conn().await.unwrap();
        let new = NewInvitation {
            project_id: project,
            email,
            role,
            token_hash: &hash,
            invited_by: inviter,
            expires_at: now + chrono::Duration::hours(72),
        };
        (invitations::insert(&conn, &new, now).await.unwrap().id, token)
    }

    /// A valid password-reset token for `user`.
    pub async fn make_reset_token(&self, user: Uuid) -> String {
        let st = self.state();
        let token = tokens::mint();
        let hash = st.keys.key(Purpose::PasswordReset).mac(token.as_bytes());
        let now = st.clock.now();
        let conn = st.db.conn().await.unwrap();
        conn.execute(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&Uuid::new_v4(), &user, &hash.as_slice(), &now, &(now + chrono::Duration::minutes(30))],
        )
        .await
        .unwrap();
        token
    }

    /// Mint an API key through the API with `owner`'s session.
    pub async fn make_key(&self, owner: Uuid, scopes: &[&str], project: Option<&str>) -> (String, Value) {
        let mut b = self.session(owner).await;
        let mut body = serde_json::json!({ "name": "fixture", "scopes": scopes });
        if let Some(p) = project {
            body["project"] = p.into();
        }
        let r = b.post("/api/v1/api-keys", body).await;
        assert_eq!(r.status, reqwest::StatusCode::CREATED, "{:?}", r.body);
        (r.body["key"].as_str().unwrap().to_string(), r.body["api_key"].clone())
    }
}

/// Parse a role name (tests read roles from JSON).
pub fn role(name: &str) -> Role {
    name.parse().unwrap()
}

/// Fleet fixtures: agents, tasks and commands written straight to the
/// store, for tests that need targets without running an agent.
impl TestServer {
    /// An agent and its bearer token.
    pub async fn make_agent(&self, project: Uuid, name: &str) -> (Uuid, String) {
        let st = self.state();
        let token = tokens::mint();
        let hash = palisade::security::frame::agent_token_hash(st.config.secret.expose(), &token);
        let conn = st.db.conn().await.unwrap();
        let a = palisade::store::agents::insert(&conn, project, name, &hash, None, st.clock.now()).await.unwrap();
        (a.id, token)
    }

    /// A task row as ingest would leave it.
    pub async fn make_task(&self, project: Uuid, engine: &str, task_id: &str, state: &str) {
        let conn = self.state().db.conn().await.unwrap();
        conn.execute(
            "INSERT INTO tasks (project_id, engine, task_id, name, queue, state, last_event_at, updated_at)
             VALUES ($1, $2, $3, 'fixture.task', 'default', $4, now(), now())",
            &[&project, &engine, &task_id, &state],
        )
        .await
        .unwrap();
    }

    /// A pending command (nobody will deliver it).
    pub async fn make_command(&self, project: Uuid) -> Uuid {
        let st = self.state();
        let conn = st.db.conn().await.unwrap();
        let params = serde_json::json!({ "engine": "rq", "task_id": "t" });
        let new = palisade::store::commands::NewCommand {
            project_id: project,
            agent_id: None,
            engine: "rq",
            action: "cancel_task",
            target_type: "task",
            target_id: Some("rq:t"),
            parameters: &params,
            issued_by: None,
            expires_at: st.clock.now() + chrono::Duration::hours(1),
        };
        palisade::store::commands::insert(&conn, &new, st.clock.now()).await.unwrap().id
    }
}

/// A project with an agent minted through the REST API, as an operator
/// would: the credentials are what `POST …/agents` shows once.
pub struct Fleet {
    pub slug: String,
    pub project_id: Uuid,
    pub agent_id: Uuid,
    pub token: String,
    pub hmac_secret: String,
}

impl TestServer {
    /// The admin and two projects ("alpha", "beta"), each with one agent.
    pub async fn fleets(&self) -> (Browser, Fleet, Fleet) {
        let mut admin = self.admin().await;
        let a = self.fleet_with(&mut admin, "alpha").await;
        let b = self.fleet_with(&mut admin, "beta").await;
        (admin, a, b)
    }

    /// Create project `slug` and one agent in it, through the API.
    pub async fn fleet_with(&self, admin: &mut Browser, slug: &str) -> Fleet {
        let r = admin.post("/api/v1/projects", serde_json::json!({ "slug": slug, "name": slug })).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let project_id = Uuid::parse_str(r.body["project"]["id"].as_str().unwrap()).unwrap();
        let agent =
            admin.post(&format!("/api/v1/projects/{slug}/agents"), serde_json::json!({ "name": "agent" })).await;
        assert_eq!(agent.status, 201, "{:?}", agent.body);
        Fleet {
            slug: slug.to_string(),
            project_id,
            agent_id: Uuid::parse_str(agent.body["agent"]["id"].as_str().unwrap()).unwrap(),
            token: agent.body["token"].as_str().unwrap().to_string(),
            hmac_secret: agent.body["hmac_secret"].as_str().unwrap().to_string(),
        }
    }
}

/// Notification fixtures, written through the library (no HTTP, no
/// validation: a fixture may hold a destination the policy refuses at send).
impl TestServer {
    /// A webhook channel to `url`, its secrets encrypted as the API would.
    pub async fn make_channel(&self, project: Uuid, name: &str, url: &str) -> Uuid {
        use palisade::store::notify_channels::{insert, ChannelWrite};
        let st = self.state();
        let id = Uuid::new_v4();
        let secrets = serde_json::json!({ "url": url, "secret": "fixture-signing-secret-0123456789" });
        let blob = st.deliverer.cipher.encrypt(project, id, secrets.to_string().as_bytes()).unwrap();
        let keys = vec!["secret".to_string(), "url".to_string()];
        let w = ChannelWrite {
            name,
            config: &serde_json::json!({}),
            destination: "https://fixture.example",
            secrets: &blob,
            secret_keys: &keys,
            enabled: true,
        };
        let conn = st.db.conn().await.unwrap();
        insert(&conn, id, project, "webhook", &w, None, st.clock.now()).await.unwrap().id
    }

    /// A `task.failed` rule sending to `channel`.
    pub async fn make_rule(&self, project: Uuid, name: &str, channel: Uuid) -> Uuid {
        use palisade::store::notify_rules::{insert, RuleWrite};
        let st = self.state();
        let w = RuleWrite {
            name,
            trigger: "task.failed",
            filters: &serde_json::json!({}),
            cooldown_secs: 300,
            enabled: true,
        };
        let conn = st.db.conn().await.unwrap();
        insert(&conn, project, &w, &[channel], None, st.clock.now()).await.unwrap().id
    }
}
