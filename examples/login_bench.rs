//! Benchmark: password logins per second against the Argon2id cost.
//!
//! First it times one Argon2id verification (64 MiB, t=3, p=4, the live
//! parameters) on this machine, serially, and takes the median. Then it
//! logs in over HTTP against a running server at concurrency 1 and 4 for a
//! fixed time and compares logins/s with the ceiling `min(c, cores) ÷
//! verify time`.
//!
//! The per-IP login limit (20/min) would cap the run at a few logins, so
//! each request carries a fresh `X-Forwarded-For` address; start the server
//! with `PALISADE_TRUSTED_PROXIES=127.0.0.1` so it believes them
//! (`loadtest/goals.sh` does). The password is right every time, so the
//! lockout never engages.
//!
//! Run: `cargo run --release --example login_bench -- <url> <email> <password> [seconds]`

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::security::password::PasswordHasher;
use serde_json::json;

const VERIFY_SAMPLES: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn verify_time(password: &str) -> Result<f64, String> {
    let hasher = PasswordHasher::new(1);
    let phc = hasher.hash(password).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(VERIFY_SAMPLES);
    for _ in 0..VERIFY_SAMPLES {
        let t = Instant::now();
        let ok = hasher.verify(password, &phc).await.map_err(|e| e.to_string())?;
        if !ok {
            return Err("verification of the right password failed".into());
        }
        samples.push(t.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

struct Run {
    ok: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
    secs: f64,
}

async fn logins(url: &str, email: &str, password: &str, concurrency: usize, secs: u64) -> Result<Run, String> {
    let client = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
    let next_ip = Arc::new(AtomicU64::new(1));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next_ip) = (client.clone(), next_ip.clone());
        let (url, email, password) = (format!("{url}/api/v1/auth/login"), email.to_string(), password.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut lat) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                // 10.0.0.0/8 addresses, one per request, never repeated in a run.
                let n = next_ip.fetch_add(1, Ordering::Relaxed);
                let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("x-forwarded-for", ip)
                    .json(&json!({ "email": email, "password": password }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(r) => {
                        failed += 1;
                        if failed == 1 {
                            eprintln!("login answered {}", r.status());
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("login failed: {e}");
                    }
                }
            }
            (ok, failed, lat)
        }));
    }
    let mut run = Run { ok: 0, failed: 0, latencies_ms: Vec::new(), secs: 0.0 };
    for t in tasks {
        let (ok, failed, lat) = t.await.map_err(|e| e.to_string())?;
        run.ok += ok;
        run.failed += failed;
        run.latencies_ms.extend(lat);
    }
    run.secs = started.elapsed().as_secs_f64();
    Ok(run)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, email, password, rest @ ..] = args.as_slice() else {
        return Err("usage: login_bench <url> <email> <password> [seconds]".into());
    };
    let secs = rest.first().and_then(|s| s.parse().ok()).unwrap_or(20u64);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let verify = verify_time(password).await?;
    println!("cores: {cores}; one Argon2id verification (median of {VERIFY_SAMPLES}): {:.1} ms", verify * 1000.0);
    println!("| concurrency | logins/s | ceiling min(c, cores) ÷ verify | ratio | p50 | p99 | failed |");
    println!("|---|---|---|---|---|---|---|");
    for c in [1usize, 4] {
        let run = logins(url, email, password, c, secs).await?;
        let rate = run.ok as f64 / run.secs;
        let ceiling = c.min(cores) as f64 / verify;
        let mut lat = run.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN);
        println!(
            "| {c} | {rate:.2} | {ceiling:.2} | {:.0} % | {:.0} ms | {:.0} ms | {} |",
            100.0 * rate / ceiling,
            pct(0.5),
            pct(0.99),
            run.failed
        );
    }
    Ok(())
}
