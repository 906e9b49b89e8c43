//! Harness for the real-agent interop test: the pinned virtualenv, the
//! worker processes, the producer, and event-driven waits on the REST API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod procs;
pub mod proxy;
pub mod redis;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::common::Browser;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python apps (rq_tasks, rq_settings, dramatiq_app, produce).
pub fn apps() -> PathBuf {
    repo().join("tests/interop")
}

/// The pinned virtualenv: scripts/interop-venv.sh builds it once (cached,
/// honours PALISADE_INTEROP_VENV) and prints its path.
pub fn venv() -> PathBuf {
    let out = std::process::Command::new(repo().join("scripts/interop-venv.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/interop-venv.sh");
    assert!(out.status.success(), "scripts/interop-venv.sh failed ({})", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    let path = PathBuf::from(text.lines().last().expect("the venv path").trim());
    assert!(path.join("bin/python").exists(), "no python in {}", path.display());
    path
}

/// A private directory (0700, as the agent wants for Z4J_HOME).
pub fn private_dir(parent: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = parent.join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p
}

/// Run tests/interop/produce.py and parse what it prints.
pub fn produce(venv: &Path, redis_env: &[(String, String)], args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(venv.join("bin/python"));
    cmd.arg(apps().join("produce.py")).args(args).env("PYTHONPATH", apps()).env("PYTHONDONTWRITEBYTECODE", "1");
    // The producer never gets agent credentials.
    for k in ["Z4J_TOKEN", "Z4J_BRAIN_URL", "Z4J_HMAC_SECRET", "Z4J_PROJECT_ID"] {
        cmd.env_remove(k);
    }
    for (k, v) in redis_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run produce.py");
    assert!(
        out.status.success(),
        "produce.py {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("produce.py printed no JSON ({e})"))
}

/// Poll `$probe` (an expression giving `Option<T>`) until it is `Some`, at
/// most `$secs` seconds; the panic names `$what`. Waits are on observed
/// state; the sleep only paces the polling.
#[macro_export]
macro_rules! wait_for {
    ($secs:expr, $what:expr, $probe:expr) => {{
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs($secs);
        loop {
            if let Some(v) = $probe {
                break v;
            }
            if std::time::Instant::now() > deadline {
                panic!("timed out after {} s waiting for {}", $secs, $what);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}

/// Every task of the project (following the cursor), newest first.
pub async fn all_tasks(admin: &mut Browser, slug: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/projects/{slug}/tasks?limit=200&cursor={c}"),
            None => format!("/api/v1/projects/{slug}/tasks?limit=200"),
        };
        let r = admin.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.body["tasks"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

pub async fn task(admin: &mut Browser, slug: &str, engine: &str, id: &str) -> Option<Value> {
    let r = admin.get(&format!("/api/v1/projects/{slug}/tasks/{engine}/{id}")).await;
    (r.status == 200).then_some(r.body)
}

/// The task's state once it is one of `states`.
pub async fn task_state_in(admin: &mut Browser, slug: &str, engine: &str, id: &str, states: &[&str]) -> Option<String> {
    let body = task(admin, slug, engine, id).await?;
    let state = body["task"]["state"].as_str()?.to_string();
    states.contains(&state.as_str()).then_some(state)
}

pub const TERMINAL: [&str; 3] = ["succeeded", "failed", "timed_out"];

/// Issue a command; returns its id.
pub async fn command(admin: &mut Browser, slug: &str, kind: &str, body: Value) -> String {
    let r = admin.post(&format!("/api/v1/projects/{slug}/commands/{kind}"), body).await;
    assert_eq!(r.status, 202, "{kind}: {}", r.text);
    r.body["command"]["id"].as_str().unwrap().to_string()
}

/// The command row once it reached a terminal status.
pub async fn command_done(admin: &mut Browser, slug: &str, id: &str) -> Option<Value> {
    let r = admin.get(&format!("/api/v1/projects/{slug}/commands/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.body["command"].clone();
    TERMINAL.contains(&c["status"].as_str().unwrap_or("")).then_some(c)
}

/// Global audit rows with this action whose actor is `agent_id`.
pub async fn agent_audit(admin: &mut Browser, action: &str, agent_id: &str) -> Vec<Value> {
    let r = admin.get(&format!("/api/v1/audit?action={action}&actor_id={agent_id}&limit=100")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entries"].as_array().unwrap().to_vec()
}

/// Seconds since `t`, for the timings the test reports.
pub fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 100.0).round() / 100.0
}
