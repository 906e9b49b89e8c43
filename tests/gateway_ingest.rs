//! Events from agents: redacted, stored, folded into tasks/workers/queues,
//! acknowledged only after commit, deduplicated, isolated per project, and
//! held back (not buffered without bound) when the database is slow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{task_event, Got, TestAgent};
use common::*;
use palisade::security::frame::FrameKind;
use serde_json::json;

const T: Duration = Duration::from_secs(15);

async fn count(srv: &TestServer, sql: &str) -> i64 {
    srv.db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn events_are_redacted_stored_projected_and_acked_after_commit() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let w = json!({ "task_name": "billing.charge", "queue": "default", "worker": "host@1" });
    let batches = vec![
        ("ev_01", task_event("task.received", "t-ok", w.clone())),
        ("ev_02", task_event("task.started", "t-ok", w.clone())),
        ("ev_03", task_event("task.succeeded", "t-ok", json!({ "worker": "host@1", "runtime_ms": 12 }))),
        ("ev_04", task_event("task.started", "t-bad", w.clone())),
        (
            "ev_05",
            task_event(
                "task.failed",
                "t-bad",
                json!({ "worker": "host@1", "kwargs": { "password": "hunter2hunter2", "amount": 3 },
                        "exception": "ConnectionError: redis://:s3cr3t-pass@cache:6379/0 refused" }),
            ),
        ),
    ];
    for (id, ev) in &batches {
        ag.send_events(id, vec![ev.clone()]).await;
    }
    for _ in 0..batches.len() {
        let (_, ack) = ag.recv_kind("event_batch_ack", T).await.unwrap();
        // Ack after commit: the moment the ack is on the wire, the event
        // row is in the database.
        let id = ack["acked_id"].as_str().unwrap();
        assert_eq!(ack["received"], 1);
        assert_eq!(ack["accepted"], 1);
        let n = count(&srv, "SELECT count(*) FROM task_events").await;
        assert!(n >= id[3..].parse::<i64>().unwrap_or(1), "ack for {id} before its row");
    }
    assert_eq!(count(&srv, "SELECT count(*) FROM task_events").await, 5);

    let r = admin.get("/api/v1/projects/alpha/tasks").await;
    let tasks = r.body["tasks"].as_array().unwrap();
    let state = |id: &str| tasks.iter().find(|t| t["task_id"] == id).unwrap()["state"].as_str().unwrap().to_string();
    assert_eq!((state("t-ok"), state("t-bad")), ("succeeded".to_string(), "failed".to_string()));
    let text = r.text.clone();
    assert!(!text.contains("hunter2hunter2") && !text.contains("s3cr3t-pass"), "secrets reach the API: {text}");
    let detail = admin.get("/api/v1/projects/alpha/tasks/rq/t-bad").await;
    assert_eq!(detail.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(detail.body["task"]["name"], "billing.charge");
    assert!(!detail.text.contains("hunter2hunter2"));
    let dump: String = srv
        .db
        .client()
        .await
        .query_one("SELECT string_agg(data::text, ' ') FROM task_events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains("hunter2hunter2") && !dump.contains("s3cr3t-pass"), "secrets stored: {dump}");
    let workers = admin.get("/api/v1/projects/alpha/workers").await;
    let w0 = &workers.body["workers"][0];
    assert_eq!(
        (w0["name"].as_str(), w0["succeeded"].as_i64(), w0["failed"].as_i64()),
        (Some("host@1"), Some(1), Some(1))
    );

    // Queue depths arrive in heartbeats.
    ag.send(
        FrameKind::Heartbeat,
        "hb_1",
        json!({ "buffer_size": 0, "adapter_health": { "rq.queue_depths": "{\"default\": 4}" } }),
    )
    .await;
    for _ in 0..50 {
        if admin.get("/api/v1/projects/alpha/queues").await.body["queues"][0]["depth"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin.get("/api/v1/projects/alpha/queues").await.body["queues"][0]["depth"], 4);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_resent_batch_is_acked_again_but_stored_once() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let events: Vec<_> =
        (0..10).map(|i| task_event("task.succeeded", &format!("t{i}"), json!({ "worker": "w" }))).collect();
    ag.send_events("ev_a", events.clone()).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
    // The agent re-sends an unacked batch with the same event ids (new
    // seq/nonce/ts, possibly on a new session).
    ag.close().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    ag.send_events("ev_a", events).await;
    let (_, ack) = ag.recv_kind("event_batch_ack", T).await.unwrap();
    assert_eq!(ack["acked_id"], "ev_a");
    assert_eq!(count(&srv, "SELECT count(*) FROM task_events").await, 10);
    assert_eq!(count(&srv, "SELECT succeeded FROM workers").await, 10, "counters not doubled");
    srv.shutdown().await;
}

#[tokio::test]
async fn an_agent_only_ever_writes_its_own_project() {
    let srv = TestServer::start().await;
    let (mut admin, a, b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    // Same task id and same event id in both projects: neither hides the other.
    let ev = task_event("task.failed", "shared-id", json!({ "worker": "w" }));
    ag.send_events("ev_1", vec![ev.clone()]).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
    let mut bg = TestAgent::connect(&srv.base, &b.token, &b.hmac_secret, "w1", &["rq"], true).await.unwrap();
    bg.send_events("ev_1", vec![ev]).await;
    bg.recv_kind("event_batch_ack", T).await.unwrap();
    let c = srv.db.client().await;
    let rows = c.query("SELECT project_id FROM task_events ORDER BY project_id", &[]).await.unwrap();
    let projects: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let mut want = vec![a.project_id, b.project_id];
    want.sort();
    assert_eq!(projects, want);
    assert_eq!(admin.get("/api/v1/projects/alpha/tasks").await.body["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(admin.get("/api/v1/projects/beta/tasks").await.body["tasks"].as_array().unwrap().len(), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_slow_database_holds_agents_back_instead_of_buffering() {
    let srv = TestServer::start_with(&[("PALISADE_INGEST_BUDGET", "1000")]).await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    // Stall every insert into task_events behind a held lock.
    let blocker = srv.db.client().await;
    blocker.batch_execute("BEGIN; LOCK TABLE task_events IN EXCLUSIVE MODE").await.unwrap();
    // ~20 MB of frames: far more than the socket buffers between us hold,
    // so once the brain stops reading, this sender must stall.
    let filler = "x".repeat(2_000);
    let sender = tokio::spawn(async move {
        for i in 0..1_000 {
            let events =
                (0..10).map(|j| task_event("task.started", &format!("t{i}-{j}"), json!({ "note": filler }))).collect();
            ag.send_events(&format!("ev_{i}"), events).await;
        }
        ag
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let budget = srv.running().state.ingest_budget.available();
    assert_eq!(budget, 0, "the in-memory budget is exhausted, not exceeded");
    assert!(!sender.is_finished(), "the agent's writes are held back by TCP, not buffered in the brain");
    blocker.batch_execute("COMMIT").await.unwrap();
    let mut ag = tokio::time::timeout(Duration::from_secs(60), sender).await.unwrap().unwrap();
    let mut acked = std::collections::HashSet::new();
    while acked.len() < 1_000 {
        match ag.recv(Duration::from_secs(30)).await {
            Got::Frame(kind, p) if kind.starts_with("event_batch_ack") => {
                acked.insert(p["acked_id"].as_str().unwrap().to_string());
            }
            Got::Frame(..) => {}
            other => panic!("{other:?} after {} acks", acked.len()),
        }
    }
    assert_eq!(count(&srv, "SELECT count(*) FROM task_events").await, 10_000, "nothing lost");
    assert_eq!(srv.running().state.ingest_budget.available(), 1000, "the budget is whole again");
    srv.shutdown().await;
}

/// Batches that wait behind one commit are acknowledged together: each
/// session gets exactly its own acks, once each, in the order it sent the
/// batches, with strictly increasing seq (the test agent's replay guard
/// refuses anything else).
#[tokio::test]
async fn batches_committed_together_are_acked_once_each_in_order_per_session() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut agents = Vec::new();
    for w in ["w1", "w2"] {
        agents.push(TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, w, &["rq"], true).await.unwrap());
    }
    // Hold every insert so both agents' batches pile up into shared commits.
    let blocker = srv.db.client().await;
    blocker.batch_execute("BEGIN; LOCK TABLE task_events IN EXCLUSIVE MODE").await.unwrap();
    for (n, ag) in agents.iter_mut().enumerate() {
        for i in 0..100 {
            let ev = task_event("task.started", &format!("t{n}-{i}"), json!({ "worker": format!("w{n}") }));
            ag.send_events(&format!("ev_{n}_{i:03}"), vec![ev]).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&srv, "SELECT count(*) FROM task_events").await, 0, "nothing committed while the lock is held");
    blocker.batch_execute("COMMIT").await.unwrap();
    for (n, ag) in agents.iter_mut().enumerate() {
        for i in 0..100 {
            let (id, ack) = ag.recv_kind("event_batch_ack", T).await.unwrap();
            let want = format!("ev_{n}_{i:03}");
            assert_eq!(ack["acked_id"], want.as_str(), "agent {n}: acks arrive in the order the batches were sent");
            assert_eq!(id, format!("eba_{want}"));
            assert_eq!((ack["received"].as_i64(), ack["accepted"].as_i64()), (Some(1), Some(1)));
        }
        match ag.recv(Duration::from_millis(300)).await {
            Got::Timeout => {}
            other => panic!("agent {n}: nothing after its own 100 acks, got {other:?}"),
        }
    }
    assert_eq!(count(&srv, "SELECT count(*) FROM task_events").await, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_closed_socket_frees_its_session() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let registry = srv.running().state.registry.clone();
    let count = || async {
        registry.call(palisade::actors::session_registry::RegistryMsg::Count, Duration::from_secs(2)).await.unwrap()
    };
    let mut agents = Vec::new();
    for i in 0..10 {
        agents.push(
            TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, &format!("w{i}"), &["rq"], true).await.unwrap(),
        );
    }
    assert_eq!(count().await, 10);
    for ag in agents {
        ag.close().await;
    }
    for _ in 0..100 {
        if count().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count().await, 0, "every session actor (and its replay window) is gone");
    srv.shutdown().await;
}
