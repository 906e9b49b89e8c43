//! The agent WebSocket at the protocol level: handshake and close codes,
//! connection rules, and the replay/forgery suite (each case closed 4403
//! and audited).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, next, Got, TestAgent};
use common::*;
use futures_util::SinkExt;
use palisade::clock::Clock;
use palisade::security::frame::{self, FrameKind};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(10);

async fn audit_reasons(srv: &TestServer, action: &str) -> Vec<String> {
    // Session audit rows are written off the socket path; give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = srv.db.client().await;
    let rows = c.query("SELECT details FROM audit_log WHERE action = $1 ORDER BY seq", &[&action]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test]
async fn handshake_accepts_a_valid_agent_and_refuses_the_rest() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    // A good agent gets a hello_ack naming its agent, project and a fresh session.
    let ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    assert_eq!(ag.binding.agent_id, a.agent_id.to_string());
    assert_eq!(ag.binding.project_id, a.project_id.to_string());
    ag.close().await;

    // No token, or a wrong one: the upgrade succeeds and the socket is
    // closed 4401 before anything else (the agent backs off as for auth).
    for token in [None, Some("not-a-real-token-at-all-0123456789abcdefg")] {
        let mut ws = agent::open(&srv.base, token).await;
        assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4401));
    }
    // First message not a hello: 4400. Another protocol version: 4426.
    let mut ws = agent::open(&srv.base, Some(&a.token)).await;
    ws.send(Message::text("{\"v\":2,\"type\":\"heartbeat\"}")).await.unwrap();
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4400));
    let mut ws = agent::open(&srv.base, Some(&a.token)).await;
    let mut h = agent::hello("w1", &["rq"], true);
    h["payload"]["protocol_version"] = json!("3");
    ws.send(Message::text(h.to_string())).await.unwrap();
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4426));
    let reasons = audit_reasons(&srv, "agent.auth_failed").await;
    assert!(
        reasons.iter().any(|r| r.contains("missing_bearer")) && reasons.iter().any(|r| r.contains("invalid_token"))
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn hello_deadline_and_idle_timeout() {
    let srv = TestServer::start_with(&[("PALISADE_AGENT_HELLO_SECS", "1"), ("PALISADE_AGENT_IDLE_SECS", "2")]).await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut ws = agent::open(&srv.base, Some(&a.token)).await;
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4400), "no hello within the deadline");
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    assert_eq!(ag.expect_close(T).await, 4408, "silent agent closed as idle");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_for_the_same_worker_replaces_the_first() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut first = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let mut other_worker = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w2", &["rq"], true).await.unwrap();
    let _second = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    assert_eq!(first.expect_close(T).await, 4002);
    // A different worker id of the same agent is untouched.
    other_worker.send(FrameKind::Heartbeat, "hb_1", json!({ "buffer_size": 0 })).await;
    assert_eq!(other_worker.recv(Duration::from_millis(500)).await, Got::Timeout);
    srv.shutdown().await;
}

#[tokio::test]
async fn more_than_64_workers_of_one_agent_are_refused() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut held = Vec::new();
    for i in 0..64 {
        held.push(
            TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, &format!("w{i}"), &["rq"], true).await.unwrap(),
        );
    }
    let mut ws = agent::open(&srv.base, Some(&a.token)).await;
    ws.send(Message::text(agent::hello("w64", &["rq"], true).to_string())).await.unwrap();
    // The hello_ack is sent before the registry refuses; then 4429.
    let first = next(&mut ws, T).await.unwrap();
    assert!(frame::parse_hello_ack(&first.into_data()).is_ok());
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4429));
    srv.shutdown().await;
}

#[tokio::test]
async fn revoking_an_agent_or_archiving_its_project_closes_it_now() {
    let srv = TestServer::start().await;
    let (mut admin, a, b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    let r = admin.delete(&format!("/api/v1/projects/alpha/agents/{}", a.agent_id)).await;
    assert_eq!(r.status, 204);
    assert_eq!(ag.expect_close(T).await, 4003);
    let mut ws = agent::open(&srv.base, Some(&a.token)).await;
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4401), "a revoked token is refused");

    let mut bg = TestAgent::connect(&srv.base, &b.token, &b.hmac_secret, "w1", &["rq"], true).await.unwrap();
    assert_eq!(admin.delete("/api/v1/projects/beta").await.status, 204);
    assert_eq!(bg.expect_close(T).await, 4003);
    let mut ws = agent::open(&srv.base, Some(&b.token)).await;
    assert_eq!(next(&mut ws, T).await.unwrap_err(), Some(4401), "an archived project's agents are refused");
    srv.shutdown().await;
}

/// Each case: a fresh session, one good heartbeat, then the bad frame.
#[tokio::test]
async fn replayed_stale_forged_and_misbound_frames_close_4403_and_are_audited() {
    let srv = TestServer::start().await;
    let (_admin, a, b) = srv.fleets().await;
    let connect = || TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true);
    let hb = || json!({ "buffer_size": 0, "dropped_events": 0 });
    let mut cases = 0;

    // 1. The same frame twice (replay).
    let mut ag = connect().await.unwrap();
    let f = ag.frame(FrameKind::Heartbeat, "hb_1", hb());
    ag.send_raw(f.clone()).await;
    ag.send_raw(f).await;
    assert_eq!(ag.expect_close(T).await, 4403, "replayed frame");
    cases += 1;

    // 2. A stale and 3. a future timestamp (more than 60 s off).
    for offset in [-61i64, 61] {
        let mut ag = connect().await.unwrap();
        // Relative to the server's clock, which stands still in tests: real
        // time has moved on since it was read, so `Utc::now() - 61 s` can
        // already be inside the window on a slow machine.
        let ts = frame::format_ts(srv.clock.now() + chrono::Duration::seconds(offset));
        let f = ag.frame_with(FrameKind::Heartbeat, "hb_1", hb(), &ts, &frame::new_nonce(), 1);
        ag.send_raw(f).await;
        assert_eq!(ag.expect_close(T).await, 4403, "timestamp {offset}s off");
        cases += 1;
    }

    // 4. A reused nonce with a higher seq.
    let mut ag = connect().await.unwrap();
    let now = frame::format_ts(chrono::Utc::now());
    let nonce = frame::new_nonce();
    ag.send_raw(ag.frame_with(FrameKind::Heartbeat, "hb_1", hb(), &now, &nonce, 1)).await;
    ag.send_raw(ag.frame_with(FrameKind::Heartbeat, "hb_2", hb(), &now, &nonce, 2)).await;
    assert_eq!(ag.expect_close(T).await, 4403, "nonce reuse");
    cases += 1;

    // 5. A seq that does not increase.
    let mut ag = connect().await.unwrap();
    let now = frame::format_ts(chrono::Utc::now());
    ag.send_raw(ag.frame_with(FrameKind::Heartbeat, "hb_1", hb(), &now, &frame::new_nonce(), 5)).await;
    ag.send_raw(ag.frame_with(FrameKind::Heartbeat, "hb_2", hb(), &now, &frame::new_nonce(), 5)).await;
    assert_eq!(ag.expect_close(T).await, 4403, "seq not increasing");
    cases += 1;

    // 6. A frame captured in one session, sent in the next.
    let mut old = connect().await.unwrap();
    let captured = old.frame(FrameKind::Heartbeat, "hb_1", hb());
    old.close().await;
    let mut ag = connect().await.unwrap();
    ag.send_raw(captured).await;
    assert_eq!(ag.expect_close(T).await, 4403, "frame from another session");
    cases += 1;

    // 7. Signed with another project's key.
    let mut ag = connect().await.unwrap();
    ag.key = palisade::security::frame::FrameKey::from_urlsafe_b64(&b.hmac_secret).unwrap();
    let f = ag.frame(FrameKind::Heartbeat, "hb_1", hb());
    ag.send_raw(f).await;
    assert_eq!(ag.expect_close(T).await, 4403, "another project's key");
    cases += 1;

    // 8. A flipped byte inside the MAC.
    let mut ag = connect().await.unwrap();
    let mut f = ag.frame(FrameKind::Heartbeat, "hb_1", hb());
    let at = String::from_utf8_lossy(&f).find("\"hmac\":\"").unwrap() + 8;
    f[at] = if f[at] == b'0' { b'1' } else { b'0' };
    ag.send_raw(f).await;
    assert_eq!(ag.expect_close(T).await, 4403, "flipped byte");
    cases += 1;

    let rejected = audit_reasons(&srv, "agent.frame_rejected").await;
    assert_eq!(rejected.len(), cases, "each rejection audited once: {rejected:?}");
    for needle in ["skew", "not strictly greater", "nonce replay", "mismatch"] {
        assert!(rejected.iter().any(|r| r.contains(needle)), "no audit row mentions {needle}: {rejected:?}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn brain_frames_verify_and_arrive_in_seq_order() {
    let srv = TestServer::start().await;
    let (_admin, a, _b) = srv.fleets().await;
    let mut ag = TestAgent::connect(&srv.base, &a.token, &a.hmac_secret, "w1", &["rq"], true).await.unwrap();
    // 50 batches back to back: 50 acks, each verified by the agent-side
    // replay guard, which rejects any out-of-order seq.
    for i in 0..50 {
        ag.send_events(
            &format!("ev_{i:032x}"),
            vec![agent::task_event("task.started", &format!("t{i}"), json!({ "task_name": "add" }))],
        )
        .await;
    }
    let mut acked = std::collections::HashSet::new();
    while acked.len() < 50 {
        let (_, payload) = ag.recv_kind("event_batch_ack", T).await.unwrap();
        acked.insert(payload["acked_id"].as_str().unwrap().to_string());
    }
    srv.shutdown().await;
}
