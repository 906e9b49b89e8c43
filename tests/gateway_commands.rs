//! Operator commands through the gateway: lifecycle, redelivery on
//! connect, exactly-once delivery, the retry contract, timeouts, project
//! isolation and the purge confirm token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{task_event, Got, TestAgent};
use common::*;
use palisade::security::frame::{self, FrameKey, FrameKind};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

async fn status(admin: &mut Browser, slug: &str, id: &str) -> String {
    admin.get(&format!("/api/v1/projects/{slug}/commands/{id}")).await.body["command"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_status(admin: &mut Browser, slug: &str, id: &str, want: &str) {
    for _ in 0..200 {
        if status(admin, slug, id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("command {id} never reached {want} (is {})", status(admin, slug, id).await);
}

async fn seed_failed_task(ag: &mut TestAgent, task: &str) {
    ag.send_events(
        &format!("ev_{task}"),
        vec![task_event("task.failed", task, json!({ "task_name": "jobs.flaky", "worker": "w" }))],
    )
    .await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
}

fn issue(kind: &str, body: Value) -> (String, Value) {
    (format!("/api/v1/projects/alpha/commands/{kind}"), body)
}

#[tokio::test]
async fn a_retry_goes_pending_dispatched_acked_succeeded() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    seed_failed_task(&mut ag, "job-1").await;
    let (path, body) = issue("retry-task", json!({ "engine": "rq", "task_id": "job-1" }));
    let r = admin.post(&path, body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["command"]["id"].as_str().unwrap().to_string();

    let (frame_id, p) = ag.recv_kind("command", T).await.unwrap();
    assert_eq!(frame_id, id, "the frame id is the command id");
    assert_eq!(p["action"], "retry_task");
    assert_eq!(p["target"], json!({ "type": "task", "id": "rq:job-1", "engine": "rq" }));
    assert_eq!(p["parameters"]["task_id"], "job-1");
    assert_eq!(p["parameters"]["task_name"], "jobs.flaky");
    assert_eq!(p["parameters"]["args"], Value::Null, "redacted copies are never sent back");
    wait_status(&mut admin, "alpha", &id, "dispatched").await;
    let token = p["delivery_claim_token"].clone();
    ag.send(FrameKind::CommandAck, &id, json!({ "delivery_claim_token": token })).await;
    wait_status(&mut admin, "alpha", &id, "acked").await;
    ag.send(FrameKind::CommandResult, &id, json!({ "status": "success", "result": { "task_id": "job-1", "queue": "default", "source": "dlq" }, "error": null, "delivery_claim_token": token })).await;
    wait_status(&mut admin, "alpha", &id, "succeeded").await;
    let c = admin.get(&format!("/api/v1/projects/alpha/commands/{id}")).await;
    assert_eq!(c.body["command"]["result"]["source"], "dlq");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = srv.db.client().await;
    let actions: Vec<String> = db
        .query("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY seq", &[&id])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, vec!["command.issued", "command.succeeded"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn commands_wait_for_an_agent_and_are_delivered_once() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    srv.make_task(a.project_id, "rq", "job-2", "failed").await;
    let (path, body) = issue("cancel-task", json!({ "engine": "rq", "task_id": "job-2" }));
    let id = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    assert_eq!(status(&mut admin, "alpha", &id).await, "pending", "no agent is connected yet");

    // Two workers connect; exactly one of them receives it.
    let mut w1 = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let mut w2 = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w2", &["rq"], true).await.unwrap();
    let mut got = 0;
    for ag in [&mut w1, &mut w2] {
        if ag.recv_kind("command", Duration::from_secs(3)).await.is_ok() {
            got += 1;
        }
    }
    assert_eq!(got, 1, "delivered to exactly one session");
    wait_status(&mut admin, "alpha", &id, "dispatched").await;
    // Reconnecting does not deliver an already dispatched command again.
    w1.close().await;
    w2.close().await;
    let mut w3 = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    assert_eq!(w3.recv(Duration::from_secs(3)).await, Got::Timeout);
    srv.shutdown().await;
}

#[tokio::test]
async fn retries_only_reach_agents_with_the_retry_contract() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    srv.make_task(a.project_id, "rq", "job-3", "failed").await;
    let mut legacy = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], false).await.unwrap();
    let (path, body) = issue("retry-task", json!({ "engine": "rq", "task_id": "job-3" }));
    let retry = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    let (path, body) = issue("cancel-task", json!({ "engine": "rq", "task_id": "job-3" }));
    let cancel = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    let (got, _) = legacy.recv_kind("command", T).await.unwrap();
    assert_eq!(got, cancel, "the cancel is delivered");
    assert_eq!(legacy.recv(Duration::from_secs(3)).await, Got::Timeout, "the retry is not");
    assert_eq!(status(&mut admin, "alpha", &retry).await, "pending");
    // A capable worker picks it up.
    let mut modern = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w2", &["rq"], true).await.unwrap();
    let (got, _) = modern.recv_kind("command", T).await.unwrap();
    assert_eq!(got, retry);
    srv.shutdown().await;
}

#[tokio::test]
async fn unanswered_commands_time_out() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    srv.make_task(a.project_id, "rq", "job-4", "failed").await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let (path, body) = issue("cancel-task", json!({ "engine": "rq", "task_id": "job-4" }));
    let dispatched = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    ag.recv_kind("command", T).await.unwrap();
    let (path, body) = issue("cancel-task", json!({ "engine": "dramatiq", "task_id": "job-4" }));
    srv.make_task(a.project_id, "dramatiq", "job-4", "failed").await;
    let stranded = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    srv.clock.advance(Duration::from_secs(61));
    wait_status(&mut admin, "alpha", &dispatched, "timed_out").await;
    assert_eq!(status(&mut admin, "alpha", &stranded).await, "pending", "no dramatiq agent yet, still waiting");
    srv.clock.advance(Duration::from_secs(15 * 60));
    wait_status(&mut admin, "alpha", &stranded, "timed_out").await;
    let c = admin.get(&format!("/api/v1/projects/alpha/commands/{stranded}")).await;
    assert_eq!(c.body["command"]["error"], "no capable agent connected in time");
    srv.shutdown().await;
}

#[tokio::test]
async fn agents_and_operators_cannot_reach_across_projects() {
    let srv = TestServer::start().await;
    let (mut admin, a, b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let mut bg = TestAgent::connect(&srv.base, &b.token, &b.hmac_secret, "w1", &["rq"], true).await.unwrap();
    seed_failed_task(&mut bg, "beta-job").await;
    // A task of beta cannot be named from alpha.
    let (path, body) = issue("retry-task", json!({ "engine": "rq", "task_id": "beta-job" }));
    assert_eq!(admin.post(&path, body).await.status, 404);
    // beta's agent answering alpha's command id changes nothing.
    seed_failed_task(&mut ag, "alpha-job").await;
    let (path, body) = issue("cancel-task", json!({ "engine": "rq", "task_id": "alpha-job" }));
    let id = admin.post(&path, body).await.body["command"]["id"].as_str().unwrap().to_string();
    ag.recv_kind("command", T).await.unwrap();
    bg.send(FrameKind::CommandAck, &id, json!({ "delivery_claim_token": null })).await;
    bg.send(FrameKind::CommandResult, &id, json!({ "status": "success", "result": { "forged": true }, "error": null }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&mut admin, "alpha", &id).await, "dispatched");
    srv.shutdown().await;
}

#[tokio::test]
async fn purge_carries_a_confirm_token_bound_to_the_queue_depth() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let (path, body) = issue("purge-queue", json!({ "engine": "rq", "queue": "default" }));
    let r = admin.post(&path, body).await;
    assert_eq!(r.status, 422, "depth unknown and not forced: {:?}", r.body);
    ag.send(FrameKind::Heartbeat, "hb_1", json!({ "adapter_health": { "rq.queue_depths": "{\"default\": 42}" } }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (path, body) = issue("purge-queue", json!({ "engine": "rq", "queue": "default" }));
    assert_eq!(admin.post(&path, body).await.status, 202);
    let (_, p) = ag.recv_kind("command", T).await.unwrap();
    let key = FrameKey::from_urlsafe_b64(&a.hmac_secret).unwrap();
    assert_eq!(p["parameters"]["confirm_token"], frame::purge_confirm_token(&key, "default", 42));
    assert_eq!(p["parameters"]["force"], false);
    srv.shutdown().await;
}
