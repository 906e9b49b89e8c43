//! The long-poll transport: the same signed frames over HTTP, bound to the
//! `X-Z4J-Session-Nonce`, with identity headers, commit-before-accept and
//! poisoned nonces after a bad signature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::task_event;
use common::fixtures::Fleet;
use common::*;
use palisade::security::canonical_json;
use palisade::security::frame::{self, Binding, FrameKey, FrameKind, VerifiedFrame};
use serde_json::{json, Value};

struct Poller {
    http: reqwest::Client,
    base: String,
    token: String,
    nonce: String,
    key: FrameKey,
    binding: Binding,
    seq: u64,
}

impl Poller {
    fn new(base: &str, f: &Fleet) -> Poller {
        let nonce = frame::new_nonce();
        Poller {
            http: reqwest::Client::new(),
            base: base.to_string(),
            token: f.token.clone(),
            key: FrameKey::from_urlsafe_b64(&f.hmac_secret).unwrap(),
            binding: Binding { agent_id: String::new(), project_id: String::new(), session_id: nonce.clone() },
            nonce,
            seq: 0,
        }
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("x-z4j-session-nonce", &self.nonce)
            .header("x-z4j-retry-contracts", "rq=1")
    }

    /// The agent's connect probe; binds to the identity headers.
    async fn probe(&mut self) -> reqwest::StatusCode {
        let r = self.req(reqwest::Method::GET, "/api/v1/agent/commands?wait=0&max_frames=0").send().await.unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        self.binding.agent_id = h("x-z4j-agent-id");
        self.binding.project_id = h("x-z4j-project-id");
        r.status()
    }

    fn sign(&mut self, kind: FrameKind, id: &str, payload: Value) -> String {
        self.seq += 1;
        let ts = frame::format_ts(chrono::Utc::now());
        let p = canonical_json::Value::from_serde(&payload).unwrap();
        String::from_utf8(
            frame::sign(&self.key, &self.binding, kind, id, &ts, &frame::new_nonce(), self.seq, &p).unwrap(),
        )
        .unwrap()
    }

    async fn upload(&self, frames: Vec<String>) -> (reqwest::StatusCode, Value) {
        let r = self
            .req(reqwest::Method::POST, "/api/v1/agent/events")
            .json(&json!({ "frames": frames }))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn long_poll_uploads_and_polls_with_the_same_verification() {
    let srv = TestServer::start().await;
    let (mut admin, a, _b) = srv.fleets().await;
    let mut p = Poller::new(&srv.base, &a);
    assert_eq!(p.probe().await, 200);
    assert_eq!(p.binding.agent_id, a.agent_id.to_string(), "identity headers on the probe");
    assert_eq!(p.binding.project_id, a.project_id.to_string());

    let frames = vec![
        p.sign(FrameKind::Heartbeat, "hb_1", json!({ "buffer_size": 0 })),
        p.sign(
            FrameKind::EventBatch,
            "ev_1",
            json!({ "events": [task_event("task.failed", "lp-1", json!({ "worker": "w" }))] }),
        ),
        p.sign(
            FrameKind::EventBatch,
            "ev_2",
            json!({ "events": [task_event("task.succeeded", "lp-2", json!({ "worker": "w" }))] }),
        ),
    ];
    let (status, body) = p.upload(frames).await;
    assert_eq!(status, 200);
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(3), Some(0)), "{body}");
    // Accepted means committed: the rows are there when the answer arrives.
    let n: i64 = srv.db.client().await.query_one("SELECT count(*) FROM task_events", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);

    // A command issued by an operator comes back on the next poll, signed
    // for this nonce.
    let r =
        admin.post("/api/v1/projects/alpha/commands/retry-task", json!({ "engine": "rq", "task_id": "lp-1" })).await;
    assert_eq!(r.status, 202);
    let id = r.body["command"]["id"].as_str().unwrap().to_string();
    let r = p.req(reqwest::Method::GET, "/api/v1/agent/commands?wait=5&max_frames=50").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let frames = body["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1);
    let mut guard = palisade::security::replay::ReplayGuard::new(palisade::security::replay::Direction::BrainToAgent);
    let f: VerifiedFrame =
        guard.verify(&p.key, &p.binding, frames[0].as_str().unwrap().as_bytes(), chrono::Utc::now(), 1).unwrap();
    assert_eq!((f.kind, f.id.as_str()), (FrameKind::Command, id.as_str()));

    // The agent answers by upload; the command completes.
    let ack = p.sign(FrameKind::CommandAck, &id, json!({ "delivery_claim_token": null }));
    let res =
        p.sign(FrameKind::CommandResult, &id, json!({ "status": "success", "result": { "ok": true }, "error": null }));
    assert_eq!(p.upload(vec![ack, res]).await.1["accepted"], 2);
    for _ in 0..100 {
        if admin.get(&format!("/api/v1/projects/alpha/commands/{id}")).await.body["command"]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        admin.get(&format!("/api/v1/projects/alpha/commands/{id}")).await.body["command"]["status"],
        "succeeded"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn a_bad_signature_poisons_the_nonce_and_other_credentials_are_refused() {
    let srv = TestServer::start().await;
    let (_admin, a, b) = srv.fleets().await;
    let mut p = Poller::new(&srv.base, &a);
    p.probe().await;
    let good = p.sign(FrameKind::Heartbeat, "hb_1", json!({}));
    // Replayed frame in the same upload: the second copy is rejected.
    let (status, body) = p.upload(vec![good.clone(), good]).await;
    assert_eq!(status, 200);
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(1), Some(1)), "{body}");
    // The nonce is now dead: 409 until the agent starts a new session.
    let another = p.clone_sign();
    assert_eq!(p.upload(vec![another]).await.0, 409);
    let mut fresh = Poller::new(&srv.base, &a);
    fresh.probe().await;
    let hb = fresh.sign(FrameKind::Heartbeat, "hb_1", json!({}));
    assert_eq!(fresh.upload(vec![hb]).await.1["accepted"], 1);
    // Signed with another project's key: rejected.
    let mut forger = Poller::new(&srv.base, &a);
    forger.probe().await;
    forger.key = FrameKey::from_urlsafe_b64(&b.hmac_secret).unwrap();
    let forged = forger.sign(FrameKind::Heartbeat, "hb_1", json!({}));
    assert_eq!(forger.upload(vec![forged]).await.1["rejected"], 1);
    // No or a wrong token: 401.
    let r = reqwest::Client::new().get(format!("{}/api/v1/agent/commands", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let rejected: i64 = srv
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM audit_log WHERE action = 'agent.frame_rejected'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rejected, 2, "each rejecting upload audited");
    srv.shutdown().await;
}

impl Poller {
    fn clone_sign(&mut self) -> String {
        self.sign(FrameKind::Heartbeat, "hb_x", json!({}))
    }
}
