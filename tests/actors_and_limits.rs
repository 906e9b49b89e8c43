//! Supervision (a panicking actor is restarted and the server keeps
//! answering) and the limiter's memory bound under 100,000 client IPs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use palisade::actors::limiter::{bytes_per_key_bound, Bucket, LimiterMsg};
use palisade::actors::lockout::LockoutMsg;
use palisade::actors::supervisor::{SupervisorMsg, MAX_RESTARTS};
use reqwest::StatusCode;
use serde_json::json;

async fn wait_for_new_ref<M: ractor::Message>(slot: &palisade::actors::Slot<M>, old: ractor::ActorId) {
    for _ in 0..100 {
        if let Ok(r) = slot.get() {
            if r.get_id() != old {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("actor was not restarted");
}

#[tokio::test]
async fn a_panicking_actor_is_restarted_and_the_server_keeps_serving() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let state = &srv.running().state;

    let old = state.limiter.get().unwrap();
    old.cast(LimiterMsg::InjectPanic).unwrap();
    wait_for_new_ref(&state.limiter, old.get_id()).await;
    // The server answered throughout and the new limiter works.
    assert_eq!(admin.get("/api/v1/auth/me").await.status, StatusCode::OK);
    let r = srv.browser().post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::OK);

    let old = state.lockout.get().unwrap();
    old.cast(LockoutMsg::InjectPanic).unwrap();
    wait_for_new_ref(&state.lockout, old.get_id()).await;
    let r = srv
        .browser()
        .post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": "Wrong-Password-9!" }))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let status =
        srv.running().supervisor.call(SupervisorMsg::Status, Some(Duration::from_secs(5))).await.unwrap().unwrap();
    for name in ["limiter", "lockout"] {
        let c = status.iter().find(|c| c.name == name).unwrap();
        assert!(c.running && c.restarts == 1 && !c.gave_up, "{c:?}");
    }
    assert_eq!(srv.browser().get("/api/v1/health/ready").await.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_crash_looping_actor_melts_down_without_taking_the_server_down() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let state = &srv.running().state;
    for _ in 0..=MAX_RESTARTS {
        let old = state.limiter.get().unwrap();
        old.cast(LimiterMsg::InjectPanic).unwrap();
        for _ in 0..100 {
            if old.get_status() == ractor::ActorStatus::Stopped {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status =
        srv.running().supervisor.call(SupervisorMsg::Status, Some(Duration::from_secs(5))).await.unwrap().unwrap();
    let limiter = status.iter().find(|c| c.name == "limiter").unwrap();
    assert!(limiter.gave_up, "{limiter:?}");
    // Readiness tells the orchestrator; everything not needing the limiter
    // still works, and what needs it fails closed with 503, not a hang.
    let mut b = srv.browser();
    assert_eq!(b.get("/api/v1/health/ready").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.get("/api/v1/health").await.status, StatusCode::OK);
    assert_eq!(admin.get("/api/v1/auth/me").await.status, StatusCode::OK);
    let r = b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some());
    srv.shutdown().await;
}

#[tokio::test]
async fn limiter_memory_stays_bounded_under_100k_client_ips() {
    let srv = TestServer::start_with(&[("PALISADE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let url = srv.url("/api/v1/auth/login");
    let client = reqwest::Client::new();
    let total: u32 = 100_000;
    let workers: u32 = 32;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut limited = 0u32;
            let mut i = w;
            while i < total {
                // 10.x.y.z: 100k distinct addresses.
                let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
                // An empty body fails after the limiter: no hashing, so the
                // test measures the limiter, not Argon2.
                let r = client.post(&url).header("x-forwarded-for", ip).send().await.unwrap();
                match r.status() {
                    StatusCode::BAD_REQUEST => {}
                    StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    other => panic!("unexpected {other}"),
                }
                i += workers;
            }
            limited
        }));
    }
    let mut limited = 0;
    for t in tasks {
        limited += t.await.unwrap();
    }
    let stats = srv.running().state.limiter.call(LimiterMsg::Stats, Duration::from_secs(5)).await.unwrap();
    let login = stats.iter().find(|s| s.bucket == Bucket::Login).unwrap();
    let cap = login.max_keys;
    assert_eq!(cap, 10_000);
    assert_eq!(login.keys, cap, "the table filled to its cap and no further");
    assert_eq!(u64::from(limited), login.refused_new_keys);
    assert_eq!(limited, total - cap as u32, "every address beyond the cap was refused, none evicted");
    let bound = cap * bytes_per_key_bound(Bucket::Login) + cap * 64;
    assert!(login.approx_bytes <= bound, "{} > {}", login.approx_bytes, bound);
    println!("login bucket: {} keys, ~{} KiB (bound {} KiB)", login.keys, login.approx_bytes / 1024, bound / 1024);

    // A client already tracked keeps its budget; a new one is refused until
    // the windows lapse, then admitted.
    let r = client.post(&url).header("x-forwarded-for", "10.0.0.5").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client.post(&url).header("x-forwarded-for", "192.0.2.1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    srv.clock.advance(Duration::from_secs(61));
    let r = client.post(&url).header("x-forwarded-for", "192.0.2.1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    srv.shutdown().await;
}
