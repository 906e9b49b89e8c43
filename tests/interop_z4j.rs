//! Interop with the real, unmodified z4j 1.13 agents from PyPI.
//!
//! The real `palisade` binary runs on a fresh database; a project and two
//! agents are created through the REST API and their `env` blocks configure
//! a real `rq worker` (z4j-rq) and a real `dramatiq` worker (z4j-dramatiq on
//! a Redis broker), each in its own process group, on Redis databases this
//! run claims and flushes. Everything is then checked through the REST API
//! (and the tables, for the secret): final task states, redaction, a retry
//! that re-runs a failed RQ job, cancel and purge as each adapter allows,
//! one signed webhook per failing task (cooldown holding the repeat), and
//! a corrupted frame (through a proxy) closing 4403 and the agent
//! reconnecting. Waits poll observed state with generous deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod interop_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::process::{env_for, ServerProcess};
use common::receiver::Receiver;
use common::webhook::{allow, receiver_verifies, webhook_rule, WEBHOOK_SECRET};
use common::{tempdir, Browser, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD, SECRET};
use interop_support::procs::Proc;
use interop_support::proxy::FlipProxy;
use interop_support::redis::{self, ClaimedDb};
use interop_support::*;
use serde_json::{json, Value};

const SLUG: &str = "interop";
const CARD: &str = "4111 1111 1111 1111";
const API_KEY: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dcQx";
const RQ_PARKED: &str = "rq_parked";
const DQ_PARKED: &str = "dq_parked";

/// Shared state of the scenario.
struct Run {
    admin: Browser,
    venv: PathBuf,
    work: PathBuf,
    rq_env: Vec<(String, String)>,
    dq_env: Vec<(String, String)>,
    rq_url: String,
    rq_agent: String,
    dq_agent: String,
    timings: Vec<(String, f64)>,
}

impl Run {
    fn note(&mut self, what: &str, secs: f64) {
        eprintln!("interop: {what}: {secs:.2} s");
        self.timings.push((what.to_string(), secs));
    }

    fn rq_enqueue(&self, plan: Value) -> HashMap<String, String> {
        let out = produce(&self.venv, &self.rq_env, &["rq-enqueue", &self.rq_url, &plan.to_string()]);
        serde_json::from_value(out).unwrap()
    }

    fn rq_status(&self, job: &str) -> Value {
        produce(&self.venv, &self.rq_env, &["rq-status", &self.rq_url, job])
    }

    /// `rq suspend` / `rq resume`, as an operator would run them.
    fn rq_cli(&self, args: &[&str]) {
        let out = std::process::Command::new(self.venv.join("bin/rq"))
            .args(args)
            .args(["-u", &self.rq_url])
            .output()
            .expect("run rq");
        assert!(out.status.success(), "rq {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn dq_send(&self, plan: Value) -> HashMap<String, String> {
        serde_json::from_value(produce(&self.venv, &self.dq_env, &["dramatiq-send", &plan.to_string()])).unwrap()
    }
}

/// Prints the server's log if the test fails (or always, with
/// PALISADE_INTEROP_LOG=<filter>, e.g. `palisade=debug`).
struct ServerLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
impl Drop for ServerLog {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("PALISADE_INTEROP_LOG").is_some() {
            let log = self.0.lock().map(|l| l.join("\n")).unwrap_or_default();
            eprintln!("---- palisade log ----\n{log}");
        }
    }
}

async fn mint_agent(admin: &mut Browser, name: &str) -> (String, Vec<(String, String)>) {
    let r = admin.post(&format!("/api/v1/projects/{SLUG}/agents"), json!({ "name": name })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let env: Vec<(String, String)> =
        r.body["env"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
    assert_eq!(env.len(), 4, "the env block configures the agent: {env:?}");
    (r.body["agent"]["id"].as_str().unwrap().to_string(), env)
}

fn worker_env(agent: &[(String, String)], home: &Path, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = agent.to_vec();
    env.push(("Z4J_HOME".into(), home.display().to_string()));
    env.push(("PYTHONPATH".into(), apps().display().to_string()));
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.clone()));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_z4j_agents_work_against_palisade() {
    assert!(redis::answers(), "no Redis answers on {} (scripts/test.sh starts one)", redis::ADDR);
    let venv = venv();
    let rq_db = ClaimedDb::claim("interop-rq");
    let dq_db = ClaimedDb::claim("interop-dramatiq");
    let db = TestDb::fresh().await;
    let dir = tempdir::Dir::new();
    let work = private_dir(dir.path(), "work");

    // The proxy binds first: Palisade must accept its Host header.
    let mut proxy = FlipProxy::bind().await;
    let mut env = env_for(&db.url, &private_dir(dir.path(), "palisade"), SECRET);
    env.push(("PALISADE_ALLOWED_HOSTS", proxy.addr.to_string()));
    // A webhook receiver the operator's allow-list admits (loopback, plain HTTP).
    let rx = Receiver::start().await;
    env.extend(allow(rx.port()));
    if let Ok(filter) = std::env::var("PALISADE_INTEROP_LOG") {
        env.push(("PALISADE_LOG", filter));
    }
    let server = ServerProcess::spawn(&env).expect("palisade serve starts");
    let _server_log = ServerLog(server.log.clone());
    proxy.start(server.addr);

    let mut admin = Browser::new(&server.base());
    let token = server.setup_token.clone().expect("first-boot setup token");
    let r = admin
        .post("/api/v1/setup/complete", json!({ "token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post("/api/v1/projects", json!({ "slug": SLUG, "name": "Interop" })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    webhook_rule(&mut admin, SLUG, rx.port(), "task.failed", 3600).await;
    let (rq_agent, rq_creds) = mint_agent(&mut admin, "rq-workers").await;
    let (dq_agent, dq_creds) = mint_agent(&mut admin, "dramatiq-workers").await;

    // RQ talks to Palisade directly; Dramatiq through the flipping proxy.
    let rq_env = worker_env(
        &rq_creds,
        &private_dir(&work, "rq-home"),
        &[("Z4J_RQ_REDIS_URL", rq_db.url()), ("Z4J_AGENT_NAME", "interop-rq-host".into())],
    );
    let dq_env = worker_env(
        &dq_creds,
        &private_dir(&work, "dq-home"),
        &[
            ("INTEROP_DRAMATIQ_REDIS_URL", dq_db.url()),
            ("Z4J_BRAIN_URL", format!("http://{}", proxy.addr)),
            ("Z4J_AGENT_NAME", "interop-dramatiq-host".into()),
        ],
    );
    let started = Instant::now();
    let rq_args =
        ["worker", "-c", "rq_settings", "--worker-class", "z4j_rq.worker.Worker", "-n", "interop-rq", "default"];
    let rq_worker = Proc::spawn("rq-worker", &venv.join("bin/rq"), &rq_args, &rq_env, &work);
    let dq_args = ["dramatiq_app", "--processes", "1", "--threads", "2", "--queues", "default"];
    let dq_worker = Proc::spawn("dramatiq-worker", &venv.join("bin/dramatiq"), &dq_args, &dq_env, &work);

    let mut run = Run {
        admin,
        venv: venv.clone(),
        work,
        rq_env: vec![("Z4J_RQ_REDIS_URL".into(), rq_db.url())],
        dq_env: vec![("INTEROP_DRAMATIQ_REDIS_URL".into(), dq_db.url())],
        rq_url: rq_db.url(),
        rq_agent,
        dq_agent,
        timings: Vec::new(),
    };
    let online = wait_for!(180, "both agents online", {
        rq_worker.assert_running();
        dq_worker.assert_running();
        let r = run.admin.get(&format!("/api/v1/projects/{SLUG}/agents")).await;
        let agents = r.body["agents"].as_array().cloned().unwrap_or_default();
        (agents.len() == 2 && agents.iter().all(|a| a["online"] == true)).then_some(agents)
    });
    run.note("worker start to both agents online", secs(started));
    for a in &online {
        assert_eq!(a["agent_version"], "1.13.0", "{a}");
        assert_eq!(a["sessions"], 1, "{a}");
    }
    assert!(!proxy.state.extension_negotiated.load(std::sync::atomic::Ordering::SeqCst), "frames must be plain");

    let rq = jobs_reach_final_states(&mut run).await;
    failures_notify_once_per_task(&rx).await;
    retry_reruns_the_failed_job(&mut run, &rq["flaky"]).await;
    cancel_removes_a_queued_rq_job(&mut run, &rq["boom2"]).await;
    purge_empties_the_parked_rq_queue(&mut run).await;
    dramatiq_cancel_and_purge(&mut run).await;
    flipped_byte_closes_4403_and_the_agent_reconnects(&mut run, &proxy).await;
    secrets_never_leave_the_scrub(&mut run, &db).await;

    eprintln!("interop timings (s): {:?}", run.timings);
    // Workers stop before the server, the database and the Redis claims go.
    drop((rq_worker, dq_worker));
}

/// The real agents' failures reach the webhook receiver signed, one message
/// per failing task: the two `rq_tasks.boom` failures fall inside the rule's
/// one-hour cooldown, so the second sends nothing.
async fn failures_notify_once_per_task(rx: &Receiver) {
    rx.wait_for(3, std::time::Duration::from_secs(30)).await;
    // Anything the cooldown let through would arrive within this pause.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let got = rx.all();
    let mut names: Vec<String> =
        got.iter().map(|r| r.json()["task"]["name"].as_str().unwrap_or("").to_string()).collect();
    names.sort();
    assert_eq!(names, ["declined", "rq_tasks.boom", "rq_tasks.flaky"], "one webhook per failing task");
    for hook in &got {
        assert!(receiver_verifies(hook, WEBHOOK_SECRET), "signature does not verify: {:?}", hook.json());
        let body = hook.json();
        assert_eq!((body["trigger"].as_str(), body["project_slug"].as_str()), (Some("task.failed"), Some(SLUG)));
        assert_eq!(body["suppressed"], 0, "{body}");
    }
}

/// Succeeding, failing and secret-carrying jobs on both engines end in the
/// right states. Returns the RQ job ids by key.
async fn jobs_reach_final_states(run: &mut Run) -> HashMap<String, String> {
    let marker = run.work.join("flaky.marker").display().to_string();
    let t0 = Instant::now();
    let rq = run.rq_enqueue(json!([
        { "key": "ok1", "func": "add", "args": [1, 2] },
        { "key": "ok2", "func": "add", "args": [3, 4] },
        { "key": "ok3", "func": "add", "args": [5, 6] },
        { "key": "boom1", "func": "boom", "args": ["expected"] },
        { "key": "boom2", "func": "boom", "args": ["expected"] },
        { "key": "flaky", "func": "flaky", "args": [marker] },
        { "key": "charge", "func": "charge", "kwargs": { "card": CARD, "api_key": API_KEY } },
    ]));
    let dq = run.dq_send(json!([
        { "key": "ok1", "actor": "add", "args": [1, 2] },
        { "key": "ok2", "actor": "add", "args": [3, 4] },
        { "key": "declined", "actor": "declined", "args": ["A-17"] },
    ]));
    let mut want: Vec<(&str, &String, &str, &str)> = vec![
        ("rq", &rq["ok1"], "succeeded", "rq_tasks.add"),
        ("rq", &rq["ok2"], "succeeded", "rq_tasks.add"),
        ("rq", &rq["ok3"], "succeeded", "rq_tasks.add"),
        ("rq", &rq["boom1"], "failed", "rq_tasks.boom"),
        ("rq", &rq["boom2"], "failed", "rq_tasks.boom"),
        ("rq", &rq["flaky"], "failed", "rq_tasks.flaky"),
        ("rq", &rq["charge"], "succeeded", "rq_tasks.charge"),
    ];
    want.extend([
        ("dramatiq", &dq["ok1"], "succeeded", "add"),
        ("dramatiq", &dq["ok2"], "succeeded", "add"),
        ("dramatiq", &dq["declined"], "failed", "declined"),
    ]);
    let mut done_at: Vec<(&str, f64)> = Vec::new();
    let tasks = wait_for!(120, "every job in its final state", {
        let tasks = all_tasks(&mut run.admin, SLUG).await;
        let by_id: HashMap<String, Value> =
            tasks.iter().map(|t| (t["task_id"].as_str().unwrap_or("").to_string(), t.clone())).collect();
        let done = |e: &str, id: &str, s: &str| by_id.get(id).is_some_and(|t| t["state"] == s && t["engine"] == e);
        for engine in ["rq", "dramatiq"] {
            let all = want.iter().filter(|w| w.0 == engine).all(|(e, id, s, _)| done(e, id, s));
            if all && !done_at.iter().any(|(e, _)| *e == engine) {
                done_at.push((engine, secs(t0)));
            }
        }
        (done_at.len() == 2).then_some(by_id)
    });
    for (engine, at) in done_at {
        run.note(&format!("{engine}: enqueue to all final states visible"), at);
    }
    for (engine, id, state, name) in &want {
        let t = &tasks[*id];
        assert_eq!(
            (t["engine"].as_str(), t["state"].as_str(), t["name"].as_str()),
            (Some(*engine), Some(*state), Some(*name)),
            "{t}"
        );
        assert_eq!(t["queue"], "default", "{t}");
    }
    let boom = &tasks[&rq["boom1"]];
    assert!(boom["exception"].as_str().unwrap().contains("ValueError: boom: expected"), "{boom}");
    let declined = tasks[&dq["declined"]]["exception"].as_str().unwrap().to_string();
    assert!(!declined.contains("4111") && declined.contains("[REDACTED]"), "the card in the exception: {declined}");
    // The secret reached Palisade inside RQ's call-string description (the
    // agent only masks the api_key keyword) and Palisade scrubbed it.
    let charge = task(&mut run.admin, SLUG, "rq", &rq["charge"]).await.unwrap();
    let events = charge["events"].as_array().unwrap();
    assert!(events.len() >= 2, "{charge}");
    for e in events {
        assert_eq!(e["data"]["description"], "[REDACTED]", "{e}");
    }
    let workers = run.admin.get(&format!("/api/v1/projects/{SLUG}/workers")).await.body["workers"].clone();
    let rq_w = workers.as_array().unwrap().iter().find(|w| w["engine"] == "rq" && w["name"] == "interop-rq");
    let rq_w = rq_w.unwrap_or_else(|| panic!("the RQ worker is listed: {workers}"));
    assert_eq!((rq_w["succeeded"].as_i64(), rq_w["failed"].as_i64()), (Some(4), Some(3)), "{rq_w}");
    rq
}

/// A retry through the REST API reaches the RQ worker, which requeues the
/// failed job by reference; the same job runs again and succeeds.
async fn retry_reruns_the_failed_job(run: &mut Run, flaky: &str) {
    let t0 = Instant::now();
    let id = command(&mut run.admin, SLUG, "retry-task", json!({ "engine": "rq", "task_id": flaky })).await;
    let c = wait_for!(60, "the retry command to finish", command_done(&mut run.admin, SLUG, &id).await);
    run.note("retry: issue to command succeeded", secs(t0));
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["agent_id"], run.rq_agent.as_str(), "{c}");
    assert_eq!(c["result"], json!({ "task_id": flaky, "queue": "default", "source": "dlq" }), "{c}");
    wait_for!(60, "the retried job to succeed", task_state_in(&mut run.admin, SLUG, "rq", flaky, &["succeeded"]).await);
    run.note("retry: issue to task succeeded", secs(t0));
    let body = task(&mut run.admin, SLUG, "rq", flaky).await.unwrap();
    let kinds: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "task.started").count(), 2, "two runs: {kinds:?}");
    assert!(kinds.contains(&"task.failed") && kinds.contains(&"task.succeeded"), "{kinds:?}");
    assert!(body["task"]["exception"].as_str().unwrap_or("").contains("first attempt fails"), "{body}");
}

/// RQ cancels a queued job. To have one Palisade knows about (RQ reports
/// nothing until a job runs), workers are suspended (`rq suspend`), a failed
/// job is retried (requeued by reference, so it waits on `default`), then
/// cancelled: RQ drops it from the queue and it never runs again.
async fn cancel_removes_a_queued_rq_job(run: &mut Run, failed: &str) {
    run.rq_cli(&["suspend"]);
    // A worker blocked in its dequeue only sees the suspension after its
    // next job: once this one is done, nothing else is taken.
    let nudge = run.rq_enqueue(json!([{ "key": "n", "func": "add", "args": [0, 0] }]))["n"].clone();
    wait_for!(60, "the nudge job", task_state_in(&mut run.admin, SLUG, "rq", &nudge, &["succeeded"]).await);

    let id = command(&mut run.admin, SLUG, "retry-task", json!({ "engine": "rq", "task_id": failed })).await;
    let c = wait_for!(60, "the requeue", command_done(&mut run.admin, SLUG, &id).await);
    assert_eq!((c["status"].as_str(), c["result"]["source"].as_str()), (Some("succeeded"), Some("dlq")), "{c}");
    assert_eq!(run.rq_status(failed), "queued");
    assert_eq!(produce(&run.venv, &run.rq_env, &["rq-depth", &run.rq_url, "default"]), 1);

    let t0 = Instant::now();
    let id = command(&mut run.admin, SLUG, "cancel-task", json!({ "engine": "rq", "task_id": failed })).await;
    let c = wait_for!(60, "the cancel command to finish", command_done(&mut run.admin, SLUG, &id).await);
    run.note("cancel (queued RQ job): issue to command succeeded", secs(t0));
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"], json!({ "task_id": failed, "soft": false }), "{c}");
    assert_eq!(run.rq_status(failed), "canceled");
    assert_eq!(produce(&run.venv, &run.rq_env, &["rq-depth", &run.rq_url, "default"]), 0);

    run.rq_cli(&["resume"]);
    let after = run.rq_enqueue(json!([{ "key": "a", "func": "add", "args": [9, 9] }]))["a"].clone();
    wait_for!(60, "a job after resuming", task_state_in(&mut run.admin, SLUG, "rq", &after, &["succeeded"]).await);
    // The cancelled job never ran again: one start, still failed.
    let body = task(&mut run.admin, SLUG, "rq", failed).await.unwrap();
    let starts = body["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "task.started").count();
    assert_eq!((body["task"]["state"].as_str(), starts), (Some("failed"), 1), "{body}");
}

async fn queue_depth(admin: &mut Browser, engine: &str, name: &str) -> Option<i64> {
    let r = admin.get(&format!("/api/v1/projects/{SLUG}/queues")).await;
    let qs = r.body["queues"].as_array()?.clone();
    qs.iter().find(|q| q["engine"] == engine && q["name"] == name).and_then(|q| q["depth"].as_i64())
}

/// Jobs parked on a queue no worker consumes: Palisade learns the depth
/// from heartbeats, a token for the wrong depth is refused by the agent,
/// and a purge with the learned depth empties the queue.
async fn purge_empties_the_parked_rq_queue(run: &mut Run) {
    let plan: Vec<Value> =
        (0..3).map(|i| json!({ "key": format!("p{i}"), "queue": RQ_PARKED, "func": "parked", "args": [i] })).collect();
    run.rq_enqueue(json!(plan));
    let t0 = Instant::now();
    wait_for!(60, "the parked depth from a heartbeat", {
        (queue_depth(&mut run.admin, "rq", RQ_PARKED).await == Some(3)).then_some(())
    });
    run.note("RQ parked depth visible via heartbeat", secs(t0));

    let body = json!({ "engine": "rq", "queue": RQ_PARKED, "depth": 2 });
    let id = command(&mut run.admin, SLUG, "purge-queue", body).await;
    let c = wait_for!(60, "the stale purge to finish", command_done(&mut run.admin, SLUG, &id).await);
    assert_eq!(c["status"], "failed", "{c}");
    assert!(c["error"].as_str().unwrap().contains("confirm_token missing or stale"), "{c}");
    let depth = produce(&run.venv, &run.rq_env, &["rq-depth", &run.rq_url, RQ_PARKED]);
    assert_eq!(depth, 3, "a refused purge leaves the queue alone");

    let t0 = Instant::now();
    let id = command(&mut run.admin, SLUG, "purge-queue", json!({ "engine": "rq", "queue": RQ_PARKED })).await;
    let c = wait_for!(60, "the purge to finish", command_done(&mut run.admin, SLUG, &id).await);
    run.note("purge (RQ, learned depth): issue to command succeeded", secs(t0));
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"], json!({ "queue": RQ_PARKED, "purged": 3 }), "{c}");
    assert_eq!(produce(&run.venv, &run.rq_env, &["rq-depth", &run.rq_url, RQ_PARKED]), 0);
    wait_for!(60, "depth 0 reported", (queue_depth(&mut run.admin, "rq", RQ_PARKED).await == Some(0)).then_some(()));
}

/// Dramatiq without dramatiq-abort has no cancel: the agent answers that it
/// does not support it. Its Redis broker reports no depths in heartbeats,
/// and the adapter's own depth probe over-counts, so only a forced purge
/// gets through; it empties the queue.
async fn dramatiq_cancel_and_purge(run: &mut Run) {
    let t0 = Instant::now();
    run.dq_send(json!([{ "key": "park", "actor": "park", "args": [3] }]));
    let parked = wait_for!(60, "three parked dramatiq messages reported", {
        let tasks = all_tasks(&mut run.admin, SLUG).await;
        let p: Vec<Value> = tasks.into_iter().filter(|t| t["engine"] == "dramatiq" && t["name"] == "parked").collect();
        (p.len() == 3 && p.iter().all(|t| t["state"] == "received" && t["queue"] == DQ_PARKED)).then_some(p)
    });
    run.note("dramatiq parked messages visible (task.received)", secs(t0));
    let victim = parked[0]["task_id"].as_str().unwrap().to_string();
    let id = command(&mut run.admin, SLUG, "cancel-task", json!({ "engine": "dramatiq", "task_id": victim })).await;
    let c = wait_for!(60, "the dramatiq cancel to finish", command_done(&mut run.admin, SLUG, &id).await);
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["agent_id"], run.dq_agent.as_str(), "{c}");
    assert!(c["error"].as_str().unwrap().contains("does not support action 'cancel_task'"), "{c}");
    assert_eq!(produce(&run.venv, &run.dq_env, &["dramatiq-depth", DQ_PARKED]), 3);

    // z4j-dramatiq measures a Redis queue as qsize(q) + qsize(q.DQ), and
    // qsize already includes the .DQ: it sees 6 here, so a token for the
    // true depth (3) is refused as stale. `force` is the way through.
    let body = json!({ "engine": "dramatiq", "queue": DQ_PARKED, "depth": 3 });
    let id = command(&mut run.admin, SLUG, "purge-queue", body).await;
    let c = wait_for!(60, "the token purge to finish", command_done(&mut run.admin, SLUG, &id).await);
    assert_eq!(c["status"], "failed", "{c}");
    assert!(c["error"].as_str().unwrap().contains("confirm_token missing or stale"), "{c}");
    assert_eq!(produce(&run.venv, &run.dq_env, &["dramatiq-depth", DQ_PARKED]), 3);

    let t0 = Instant::now();
    let body = json!({ "engine": "dramatiq", "queue": DQ_PARKED, "force": true });
    let id = command(&mut run.admin, SLUG, "purge-queue", body).await;
    let c = wait_for!(60, "the dramatiq purge to finish", command_done(&mut run.admin, SLUG, &id).await);
    run.note("purge (dramatiq, force): issue to command succeeded", secs(t0));
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["result"], json!({ "queue": DQ_PARKED, "purged": 6 }), "the adapter's own count: {c}");
    assert_eq!(produce(&run.venv, &run.dq_env, &["dramatiq-depth", DQ_PARKED]), 0);
    // Purging emits no events: Palisade still shows what it last saw.
    let t = task(&mut run.admin, SLUG, "dramatiq", &victim).await.unwrap();
    assert_eq!(t["task"]["state"], "received", "{t}");
}

/// One byte of one signed frame changed on the wire: Palisade closes 4403
/// and audits it, the agent reconnects with a new session, events flow on.
async fn flipped_byte_closes_4403_and_the_agent_reconnects(run: &mut Run, proxy: &FlipProxy) {
    let agent = run.dq_agent.clone();
    let connected_before = agent_audit(&mut run.admin, "agent.connected", &agent).await.len();
    assert_eq!(connected_before, 1, "one session so far");
    assert!(agent_audit(&mut run.admin, "agent.frame_rejected", &agent).await.is_empty());
    proxy.arm();
    let kind = wait_for!(60, "the proxy to corrupt a frame", proxy.flipped());
    let t0 = Instant::now();
    let rejected = wait_for!(30, "agent.frame_rejected", {
        let rows = agent_audit(&mut run.admin, "agent.frame_rejected", &agent).await;
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["outcome"], "denied", "{}", rejected[0]);
    wait_for!(10, "the 4403 close on the wire", proxy.server_closes().contains(&4403).then_some(()));
    let connected = wait_for!(60, "the agent to reconnect", {
        let rows = agent_audit(&mut run.admin, "agent.connected", &agent).await;
        (rows.len() > connected_before).then_some(rows)
    });
    run.note(&format!("4403 (corrupted {kind} frame) to agent.connected again"), secs(t0));
    let old = &rejected[0]["details"]["session_id"];
    eprintln!("interop: rejected: {}", rejected[0]["details"]);
    assert!(connected.iter().any(|r| &r["details"]["session_id"] == old), "the first session was the one rejected");
    assert!(connected.iter().any(|r| &r["details"]["session_id"] != old), "the agent came back with a new session");
    assert!(proxy.state.connections.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    let t0 = Instant::now();
    let id = run.dq_send(json!([{ "key": "after", "actor": "add", "args": [7, 8] }]))["after"].clone();
    wait_for!(
        60,
        "events after the reconnect",
        task_state_in(&mut run.admin, SLUG, "dramatiq", &id, &["succeeded"]).await
    );
    run.note("after reconnect: enqueue to task succeeded", secs(t0));
}

/// The card number and the API key appear in no API answer and in no row
/// of any table.
async fn secrets_never_leave_the_scrub(run: &mut Run, db: &TestDb) {
    let needles = [CARD, &CARD.replace(' ', ""), API_KEY, "4eC39HqLyjWDarjtT1zdp7dc"];
    let mut answers = Vec::new();
    let tasks = all_tasks(&mut run.admin, SLUG).await;
    answers.push(serde_json::to_string(&tasks).unwrap());
    for t in &tasks {
        let path = format!(
            "/api/v1/projects/{SLUG}/tasks/{}/{}",
            t["engine"].as_str().unwrap(),
            t["task_id"].as_str().unwrap()
        );
        answers.push(run.admin.get(&path).await.text);
    }
    for path in ["events?limit=200", "workers", "queues", "commands?limit=500", "agents", "audit?limit=500"] {
        answers.push(run.admin.get(&format!("/api/v1/projects/{SLUG}/{path}")).await.text);
    }
    answers.push(run.admin.get("/api/v1/audit?limit=500").await.text);
    for text in &answers {
        assert!(text.len() > 2, "an empty answer proves nothing");
        for n in needles {
            assert!(!text.contains(n), "{n:?} in an API answer: {text}");
        }
    }
    let c = db.client().await;
    let tables: Vec<String> = c
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "task_events") && tables.iter().any(|t| t == "tasks"), "{tables:?}");
    let events: i64 = c.query_one("SELECT count(*) FROM task_events", &[]).await.unwrap().get(0);
    assert!(events >= 30, "the scan covers the stored events ({events})");
    for t in &tables {
        for n in needles {
            let sql = format!("SELECT count(*) FROM \"{t}\" x WHERE strpos(x::text, $1) > 0");
            let hits: i64 = c.query_one(&sql, &[&n]).await.unwrap().get(0);
            assert_eq!(hits, 0, "{n:?} stored in table {t}");
        }
    }
}
