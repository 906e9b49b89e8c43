//! End to end: a real agent reports a failing task over `/ws/agent`; the
//! brain stores it, enqueues one notification in the same transaction,
//! and the Notifier delivers one signed webhook to a local receiver that
//! the operator's allow-list admits. The receiver verifies the signature
//! (independently, with the hmac crate). A second failure of the same task
//! inside the cooldown sends nothing; after the cooldown the next message
//! says how many were muted. A receiver that is down gets the message
//! after it comes back, across a server restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{task_event, TestAgent};
use common::receiver::{Received, Receiver};
use common::webhook::{allow, receiver_verifies, refs, webhook_rule, WEBHOOK_SECRET};
use common::*;
use palisade::actors::notifier::NotifierMsg;
use palisade::notify::triggers::{self, TaskFailure};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);
const SECRET: &str = WEBHOOK_SECRET;

async fn fail_task(ag: &mut TestAgent, batch: &str, task_id: &str) {
    let data = json!({ "task_name": "billing.charge", "queue": "default", "worker": "w@1",
                       "exception": "ValueError: card declined" });
    ag.send_events(batch, vec![task_event("task.failed", task_id, data)]).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
}

#[tokio::test]
async fn a_failing_task_sends_one_signed_webhook_and_the_cooldown_holds_the_rest() {
    let rx = Receiver::start().await;
    let srv = TestServer::start_with(&refs(&allow(rx.port()))).await;
    let (mut admin, a, _b) = srv.fleets().await;
    webhook_rule(&mut admin, "alpha", rx.port(), "task.failed", 600).await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();

    fail_task(&mut ag, "ev_1", "t-1").await;
    let got = rx.wait_for(1, T).await;
    assert_eq!(got.len(), 1);
    let hook = &got[0];
    assert_eq!((hook.method.as_str(), hook.path.as_str()), ("POST", "/hook"));
    assert!(receiver_verifies(hook, SECRET), "signature does not verify");
    assert!(!receiver_verifies(hook, "some-other-secret-0123456789"));
    let body = hook.json();
    assert_eq!(body["trigger"], "task.failed");
    assert_eq!(body["project_slug"], "alpha");
    assert_eq!(body["task"]["name"], "billing.charge");
    assert_eq!(body["task"]["task_id"], "t-1");
    assert_eq!(body["detail"], "ValueError: card declined");
    assert_eq!(body["suppressed"], 0);
    assert_eq!(hook.header("x-palisade-delivery"), body["delivery_id"].as_str());
    assert_eq!(hook.header("content-type"), Some("application/json"));

    // The same task fails again inside the cooldown: nothing is sent.
    fail_task(&mut ag, "ev_2", "t-2").await;
    fail_task(&mut ag, "ev_3", "t-3").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.count(), 1, "the cooldown let a second message through");
    let d = admin.get("/api/v1/projects/alpha/notifications/deliveries").await;
    let deliveries = d.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "sent");

    // After the cooldown the next one goes out and reports the muted two.
    // (The agent signs frames with real time, so once the brain's clock is
    // moved its frames would be refused as stale; this occurrence goes in
    // through the same trigger function ingest calls.)
    srv.clock.advance(Duration::from_secs(601));
    let st = srv.state();
    let mut conn = st.db.conn().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    let data = json!({ "task_name": "billing.charge", "queue": "default" });
    let failure = TaskFailure {
        project_id: a.project_id,
        engine: "rq",
        task_id: "t-4",
        occurred_at: st.clock.now(),
        data: &data,
    };
    assert_eq!(triggers::task_failures(&tx, &[failure], st.clock.now()).await.unwrap(), 1);
    tx.commit().await.unwrap();
    st.notifier.cast(NotifierMsg::Kick).unwrap();
    let got = rx.wait_for(2, T).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["suppressed"], 2);
    assert!(receiver_verifies(&got[1], SECRET));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_receiver_outage_across_a_restart_loses_nothing() {
    // Learn a free port, then close it: the receiver is "down".
    let port = Receiver::start().await.stop().port();
    let env = allow(port);
    let srv = TestServer::start_with(&refs(&env)).await;
    let (mut admin, a, _b) = srv.fleets().await;
    webhook_rule(&mut admin, "alpha", port, "task.failed", 0).await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    fail_task(&mut ag, "ev_1", "t-down").await;

    // The first attempt fails (connection refused) and is scheduled again.
    let mut last = Value::Null;
    for _ in 0..100 {
        last = admin.get("/api/v1/projects/alpha/notifications/deliveries").await.body["deliveries"][0].clone();
        if last["attempts"].as_i64().unwrap_or(0) >= 1 && last["status"] == "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "pending", "{last}");
    assert_eq!(last["last_error"], "the connection could not be established");
    let id = last["id"].as_str().unwrap().to_string();
    ag.close().await;

    // Restart with the receiver back on the same port.
    let (db, dir) = srv.stop().await;
    let rx = Receiver::bind(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let srv = TestServer::start_on(db, dir, &refs(&env)).await;
    assert_eq!(rx.count(), 0);
    // Let the backoff run out.
    srv.clock.advance(Duration::from_secs(3600));
    let got = rx.wait_for(1, T).await;
    assert_eq!(got.len(), 1, "not delivered after the restart");
    assert!(receiver_verifies(&got[0], SECRET));
    assert_eq!(got[0].header("x-palisade-delivery"), Some(id.as_str()));
    assert_eq!(got[0].json()["task"]["task_id"], "t-down");
    let c = srv.db.client().await;
    let row = c.query_one("SELECT status, attempts FROM notification_outbox", &[]).await.unwrap();
    let (status, attempts): (String, i32) = (row.get(0), row.get(1));
    assert_eq!(status, "sent");
    assert!(attempts >= 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 1, "delivered twice");
    srv.shutdown().await;
}

#[tokio::test]
async fn agents_going_offline_commands_failing_lockouts_and_tampering_each_notify() {
    let rx = Receiver::start().await;
    let srv = TestServer::start_with(&refs(&allow(rx.port()))).await;
    let (mut admin, a, _b) = srv.fleets().await;
    let channel = webhook_rule(&mut admin, "alpha", rx.port(), "agent.offline", 0).await;
    for trigger in ["command.failed", "auth.lockout", "audit.verify_failed", "task.retries_exhausted"] {
        let r = admin
            .post(
                "/api/v1/projects/alpha/notifications/rules",
                json!({ "name": trigger, "trigger": trigger, "channel_ids": [channel["id"]], "cooldown_secs": 0 }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let triggers =
        |got: &[Received]| got.iter().map(|r| r.json()["trigger"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    // agent.offline: the agent's only connection closes (grace 0 here).
    let ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    ag.close().await;
    let got = rx.wait_for(1, T).await;
    assert_eq!(triggers(&got), ["agent.offline"]);
    assert_eq!(got[0].json()["agent"]["id"], a.agent_id.to_string());

    // task.retries_exhausted: retried once, then failed for good.
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let data = json!({ "task_name": "mail.send", "queue": "default" });
    ag.send_events("ev_r", vec![task_event("task.retried", "t-r", data.clone())]).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
    ag.send_events("ev_f", vec![task_event("task.failed", "t-r", data)]).await;
    ag.recv_kind("event_batch_ack", T).await.unwrap();
    let got = rx.wait_for(2, T).await;
    assert_eq!(triggers(&got)[1], "task.retries_exhausted");
    assert_eq!(got[1].json()["task"]["retries"], 1);

    // auth.lockout: a member of alpha fails to sign in five times.
    let user = srv.make_user("locked@alpha.test", false).await;
    srv.add_member(a.project_id, user, palisade::security::rbac::Role::Viewer).await;
    let mut b = srv.browser();
    for _ in 0..5 {
        b.post("/api/v1/auth/login", json!({ "email": "locked@alpha.test", "password": "Wrong-Password-99!" })).await;
    }
    let got = rx.wait_for(3, T).await;
    assert_eq!(triggers(&got)[2], "auth.lockout");
    assert_eq!(got[2].json()["detail"], "Account: locked@alpha.test");

    // audit.verify_failed: a row is edited behind the server's back.
    let c = srv.db.client().await;
    c.batch_execute(
        "SET session_replication_role = replica;
         UPDATE audit_log SET details = '{\"edited\":true}' WHERE seq = (SELECT min(seq) + 1 FROM audit_log)",
    )
    .await
    .unwrap();
    let r = admin.get("/api/v1/audit/verify").await;
    assert_eq!(r.body["intact"], false);
    let got = rx.wait_for(4, T).await;
    assert_eq!(triggers(&got)[3], "audit.verify_failed");

    // command.failed: a command nobody picks up times out (last: moving
    // the clock two hours ends every session).
    srv.make_command(a.project_id).await;
    srv.clock.advance(Duration::from_secs(2 * 3600));
    let got = rx.wait_for(5, T).await;
    assert_eq!(triggers(&got)[4], "command.failed");
    assert_eq!(got[4].json()["command"]["status"], "timed_out");

    assert!(got.iter().all(|r| receiver_verifies(r, SECRET)));
    srv.shutdown().await;
}

/// Nobody asks for a verification: the scheduled audit watch finds a row
/// edited behind the server's back within one interval, sends one signed
/// `audit.verify_failed` webhook naming the row, and does not repeat it
/// for the same finding on later passes.
#[tokio::test]
async fn the_scheduled_audit_watch_reports_tampering_once() {
    let rx = Receiver::start().await;
    let allowed = allow(rx.port());
    let mut env = refs(&allowed);
    env.push(("PALISADE_AUDIT_VERIFY_SECS", "1"));
    let srv = TestServer::start_with(&env).await;
    let (mut admin, _a, _b) = srv.fleets().await;
    webhook_rule(&mut admin, "alpha", rx.port(), "audit.verify_failed", 0).await;
    // An intact chain: passes go by without a message.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(rx.count(), 0, "an intact chain raised an alert");

    let c = srv.db.client().await;
    let seq: i64 = c.query_one("SELECT min(seq) + 1 FROM audit_log", &[]).await.unwrap().get(0);
    c.batch_execute(&format!(
        "SET session_replication_role = replica;
         UPDATE audit_log SET details = '{{\"edited\":true}}' WHERE seq = {seq}"
    ))
    .await
    .unwrap();
    let got = rx.wait_for(1, T).await;
    assert_eq!(got[0].json()["trigger"], "audit.verify_failed");
    assert_eq!(got[0].json()["detail"], format!("Finding: hmac_mismatch at row {seq}"));
    assert!(receiver_verifies(&got[0], SECRET));
    // Three more passes over the same broken row: no second message.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(rx.count(), 1, "the same finding was announced again");
    srv.shutdown().await;
}
