//! Test harness: a fresh PostgreSQL database per test, the real server
//! started in-process on 127.0.0.1:0 against it, a manual clock the test can
//! advance, and a small cookie-aware HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod chain;
pub mod fake_dns;
pub mod fixtures;
pub mod process;
pub mod receiver;
pub mod smtp_sink;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use palisade::clock::ManualClock;
use palisade::config::Config;
use palisade::server::{self, Running};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const SECRET: &str = "test-master-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const ADMIN_EMAIL: &str = "root@palisade.test";
pub const ADMIN_PASSWORD: &str = "Orbit-Lantern-42!";

/// The server tests run against: PALISADE_TEST_DATABASE_URL, else the local
/// PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts a throwaway one when
/// none answers).
pub fn admin_url() -> String {
    std::env::var("PALISADE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn fresh() -> TestDb {
        let admin = admin_url();
        let name = format!("palisade_t_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) =
            tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let mut url = url::Url::parse(&admin).expect("PALISADE_TEST_DATABASE_URL must be a URL");
        url.set_path(&format!("/{name}"));
        TestDb { url: url.to_string(), name }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

pub struct TestServer {
    pub running: Option<Running>,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
    pub data_dir: tempdir::Dir,
}

pub mod tempdir {
    /// A directory removed on drop (no extra crate needed).
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("palisade-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn config_with(db_url: &str, data_dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("PALISADE_ENV", "prod"),
        ("PALISADE_SECRET", SECRET),
        ("PALISADE_BIND", "127.0.0.1:0"),
        ("PALISADE_PUBLIC_URL", "http://127.0.0.1:0"),
        ("PALISADE_DB_POOL_SIZE", "8"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.insert("PALISADE_DATABASE_URL".into(), db_url.to_string());
    vars.insert("PALISADE_DATA_DIR".into(), data_dir.display().to_string());
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test config")
}

/// `PALISADE_TEST_LOG=debug cargo test ...` shows server logs for a test.
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("PALISADE_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> TestServer {
        TestServer::start_on(TestDb::fresh().await, tempdir::Dir::new(), extra).await
    }

    /// Start on an existing database and data directory (restart tests).
    pub async fn start_on(db: TestDb, data_dir: tempdir::Dir, extra: &[(&str, &str)]) -> TestServer {
        TestServer::try_start_on(db, data_dir, extra).await.map_err(|(e, _, _)| e).expect("server starts")
    }

    pub async fn try_start_on(
        db: TestDb,
        data_dir: tempdir::Dir,
        extra: &[(&str, &str)],
    ) -> Result<TestServer, (String, TestDb, tempdir::Dir)> {
        TestServer::try_start_with_options(db, data_dir, extra, server::Options::default()).await
    }

    /// Start with a resolver the test controls for every outbound name.
    pub async fn start_with_dns(
        db: TestDb,
        data_dir: tempdir::Dir,
        extra: &[(&str, &str)],
        dns: Arc<fake_dns::FakeDns>,
    ) -> TestServer {
        let options = server::Options { resolver: Some(dns) };
        TestServer::try_start_with_options(db, data_dir, extra, options)
            .await
            .map_err(|(e, _, _)| e)
            .expect("server starts")
    }

    pub async fn try_start_with_options(
        db: TestDb,
        data_dir: tempdir::Dir,
        extra: &[(&str, &str)],
        options: server::Options,
    ) -> Result<TestServer, (String, TestDb, tempdir::Dir)> {
        init_logging();
        let clock = ManualClock::new();
        let config = config_with(&db.url, data_dir.path(), extra);
        match server::start_with(config, clock.clone(), options).await {
            Ok(running) => {
                let base = format!("http://{}", running.addr);
                Ok(TestServer { running: Some(running), base, clock, db, data_dir })
            }
            Err(e) => Err((e.to_string(), db, data_dir)),
        }
    }

    /// Stop cleanly and hand back the database and data directory.
    pub async fn stop(mut self) -> (TestDb, tempdir::Dir) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let TestServer { db, data_dir, .. } = self;
        (db, data_dir)
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Complete first-boot setup and return the admin's signed-in browser.
    pub async fn admin(&self) -> Browser {
        let token = self.running().setup_token.clone().expect("first boot token");
        let mut b = self.browser();
        let r = b
            .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        b
    }

    /// Create a user through the admin API and return their signed-in browser.
    pub async fn user(&self, admin: &mut Browser, email: &str, password: &str, is_admin: bool) -> Browser {
        let r =
            admin.post("/api/v1/users", json!({ "email": email, "password": password, "is_admin": is_admin })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let mut b = self.browser();
        let r = b.post("/api/v1/auth/login", json!({ "email": email, "password": password })).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        b
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }
}

/// Keeps the cookies a real browser would keep and echoes the CSRF cookie
/// in `X-CSRF-Token` on unsafe requests (like the dashboard does).
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    pub send_csrf: bool,
    pub extra_headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            cookies: HashMap::new(),
            send_csrf: true,
            extra_headers: Vec::new(),
        }
    }

    pub fn csrf(&self) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k.ends_with("palisade_csrf")).map(|(_, v)| v.clone())
    }

    pub fn session_token(&self) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k.ends_with("palisade_session")).map(|(_, v)| v.clone())
    }

    pub async fn request(&mut self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client.request(method.clone(), format!("{}{}", self.base, path));
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            rb = rb.header("cookie", cookie);
        }
        if self.send_csrf && method != Method::GET {
            if let Some(t) = self.csrf() {
                rb = rb.header("x-csrf-token", t);
            }
        }
        for (k, v) in &self.extra_headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }
    pub async fn post(&mut self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&mut self, path: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&mut self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None).await
    }
}
