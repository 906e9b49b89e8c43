//! Notification delivery benchmark (see BENCHMARKS.md, "Notifications").
//!
//!   cargo run --release --example notify_bench -- [messages]
//!
//! Starts the real server in-process on a fresh database
//! (PALISADE_BENCH_DATABASE_URL, default the local PostgreSQL; dropped
//! afterwards), with loopback receivers admitted by the operator
//! allow-list, then:
//!
//! 1. `throughput`: enqueues N task failures (distinct task names, cooldown
//!    0) for 1 and for 4 webhook channels and times until every message
//!    has reached a local HTTP receiver;
//! 2. `blackhole`: one rule sends to a fast channel and to a receiver that
//!    accepts connections and never answers. Reports the fast channel's
//!    rate next to the blackholed one, how many connections the blackhole
//!    ever held at once, and how long each was held (the timeout);
//! 3. the cost of enqueueing (what ingest pays) with the blackhole present.
//!
//! All traffic stays on 127.0.0.1 and every loop is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palisade::clock::SystemClock;
use palisade::config::Config;
use palisade::notify::triggers::{task_failures, TaskFailure};
use palisade::server::{self, Running};
use palisade::store::notify_channels::{insert as insert_channel, ChannelWrite};
use palisade::store::notify_rules::{insert as insert_rule, RuleWrite};
use palisade::store::{projects, users};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use uuid::Uuid;
use warp::Filter;

const TIMEOUT_SECS: &str = "2";

fn admin_url() -> String {
    std::env::var("PALISADE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin_exec(sql: &str) {
    let (c, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(sql).await.unwrap();
}

/// A keep-alive HTTP receiver counting requests per path.
async fn fast_receiver() -> (u16, Arc<Mutex<HashMap<String, usize>>>) {
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let c = counts.clone();
    let route =
        warp::post().and(warp::path::full()).and(warp::body::bytes()).map(move |p: warp::path::FullPath, _b| {
            *c.lock().unwrap().entry(p.as_str().to_string()).or_default() += 1;
            warp::http::StatusCode::OK
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (port, counts)
}

#[derive(Default)]
struct Hole {
    open: AtomicUsize,
    max_open: AtomicUsize,
    accepted: AtomicUsize,
    held_ms: Mutex<Vec<u128>>,
}

/// Accepts, reads whatever comes, never answers; records how long each
/// connection stayed open before the client gave up.
async fn blackhole() -> (u16, Arc<Hole>) {
    let hole = Arc::new(Hole::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = hole.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let h = h.clone();
            h.accepted.fetch_add(1, Ordering::SeqCst);
            let now = h.open.fetch_add(1, Ordering::SeqCst) + 1;
            h.max_open.fetch_max(now, Ordering::SeqCst);
            tokio::spawn(async move {
                let started = Instant::now();
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                h.held_ms.lock().unwrap().push(started.elapsed().as_millis());
                h.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, hole)
}

async fn start(db_url: &str, data_dir: &std::path::Path, ports: &str) -> Running {
    let vars: HashMap<&str, String> = [
        ("PALISADE_SECRET", "bench-master-secret-0123456789-abcdefghijkl".to_string()),
        ("PALISADE_BIND", "127.0.0.1:0".into()),
        ("PALISADE_PUBLIC_URL", "http://127.0.0.1:0".into()),
        ("PALISADE_DATABASE_URL", db_url.into()),
        ("PALISADE_DATA_DIR", data_dir.display().to_string()),
        ("PALISADE_OUTBOUND_ALLOW_HTTP", "1".into()),
        ("PALISADE_OUTBOUND_ALLOW_LOOPBACK", "1".into()),
        ("PALISADE_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32".into()),
        ("PALISADE_OUTBOUND_ALLOW_PORTS", ports.into()),
        ("PALISADE_OUTBOUND_TIMEOUT_SECS", TIMEOUT_SECS.into()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    server::start(config, SystemClock::shared()).await.unwrap()
}

struct World {
    running: Running,
    project: Uuid,
}

impl World {
    async fn channel(&self, name: &str, url: &str) -> Uuid {
        let st = &self.running.state;
        let id = Uuid::new_v4();
        let secrets = json!({ "url": url, "secret": "bench-signing-secret-0123456789" });
        let blob = st.deliverer.cipher.encrypt(self.project, id, secrets.to_string().as_bytes()).unwrap();
        let keys = vec!["secret".to_string(), "url".to_string()];
        let w = ChannelWrite {
            name,
            config: &json!({}),
            destination: url,
            secrets: &blob,
            secret_keys: &keys,
            enabled: true,
        };
        let conn = st.db.conn().await.unwrap();
        insert_channel(&conn, id, self.project, "webhook", &w, None, st.clock.now()).await.unwrap();
        id
    }

    async fn rule(&self, name: &str, channels: &[Uuid]) -> Uuid {
        let st = &self.running.state;
        let conn = st.db.conn().await.unwrap();
        conn.execute("UPDATE notification_rules SET enabled = false", &[]).await.unwrap();
        let w = RuleWrite { name, trigger: "task.failed", filters: &json!({}), cooldown_secs: 0, enabled: true };
        insert_rule(&conn, self.project, &w, channels, None, st.clock.now()).await.unwrap().id
    }

    /// Enqueue `n` failures in batches of 500, as ingest would; returns the
    /// time spent inside the transactions.
    async fn enqueue(&self, tag: &str, n: usize) -> Duration {
        let st = &self.running.state;
        let mut spent = Duration::ZERO;
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let data: Vec<_> =
                chunk.iter().map(|i| json!({ "task_name": format!("{tag}.task{i}"), "queue": "q" })).collect();
            let ids: Vec<String> = chunk.iter().map(|i| format!("{tag}-{i}")).collect();
            let failures: Vec<TaskFailure<'_>> = chunk
                .iter()
                .enumerate()
                .map(|(j, _)| TaskFailure {
                    project_id: self.project,
                    engine: "rq",
                    task_id: &ids[j],
                    occurred_at: st.clock.now(),
                    data: &data[j],
                })
                .collect();
            let started = Instant::now();
            let mut conn = st.db.conn().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            task_failures(&tx, &failures, st.clock.now()).await.unwrap();
            tx.commit().await.unwrap();
            spent += started.elapsed();
            let _ = st.notifier.cast(palisade::actors::notifier::NotifierMsg::Kick);
        }
        spent
    }
}

async fn wait(counts: &Arc<Mutex<HashMap<String, usize>>>, paths: &[String], want: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        let done = {
            let c = counts.lock().unwrap();
            paths.iter().all(|p| c.get(p).copied().unwrap_or(0) >= want)
        };
        if done {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not all messages arrived within {limit:?}");
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let name = format!("palisade_bench_{}", Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE {name}")).await;
    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_path(&format!("/{name}"));
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();

    let (fast_port, counts) = fast_receiver().await;
    let (hole_port, hole) = blackhole().await;
    let running = start(url.as_str(), &dir, &format!("{fast_port},{hole_port}")).await;
    let st = running.state.clone();
    let conn = st.db.conn().await.unwrap();
    let new_user = users::NewUser { email: "bench@example.com", display_name: "", password_hash: "x", is_admin: true };
    let user = users::insert(&conn, &new_user, st.clock.now()).await.unwrap().id;
    let new_project = projects::NewProject { slug: "bench", name: "bench", description: "", created_by: user };
    let project = projects::insert(&conn, &new_project, st.clock.now()).await.unwrap().id;
    drop(conn);
    let w = World { running, project };

    println!("notify_bench: {n} messages per run, outbound timeout {TIMEOUT_SECS}s");
    for (run, channels) in [1usize, 4, 1].into_iter().enumerate() {
        let mut ids = Vec::new();
        let mut paths = Vec::new();
        for c in 0..channels {
            let path = format!("/run{run}-{c}");
            ids.push(w.channel(&format!("fast-{run}-{c}"), &format!("http://127.0.0.1:{fast_port}{path}")).await);
            paths.push(path);
        }
        w.rule(&format!("throughput-{run}"), &ids).await;
        let started = Instant::now();
        let enq = w.enqueue(&format!("run{run}"), n).await;
        wait(&counts, &paths, n, Duration::from_secs(600)).await;
        let total = started.elapsed();
        let msgs = n * channels;
        println!(
            "throughput  channels={channels}  messages={msgs}  delivered in {:.2}s  = {:.0} notifications/s  (enqueue: {:.0} occurrences/s in-transaction)",
            total.as_secs_f64(),
            msgs as f64 / total.as_secs_f64(),
            n as f64 / enq.as_secs_f64()
        );
    }

    // Blackhole next to a fast channel.
    let fast = w.channel("fast-beside-hole", &format!("http://127.0.0.1:{fast_port}/beside")).await;
    let dead = w.channel("blackholed", &format!("http://127.0.0.1:{hole_port}/hook")).await;
    w.rule("blackhole", &[fast, dead]).await;
    let started = Instant::now();
    let enq = w.enqueue("bh", n).await;
    wait(&counts, &["/beside".to_string()], n, Duration::from_secs(600)).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = hole.held_ms.lock().unwrap().clone();
    let (min, max) = (held.iter().min().copied().unwrap_or(0), held.iter().max().copied().unwrap_or(0));
    println!(
        "blackhole   fast channel: {n} delivered in {:.2}s = {:.0}/s while the blackhole held connections; enqueue {:.0} occurrences/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        n as f64 / enq.as_secs_f64()
    );
    println!(
        "blackhole   dead channel: {} connections in {:.1}s, at most {} open at once, each held {min}-{max} ms before the client gave up",
        hole.accepted.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64(),
        hole.max_open.load(Ordering::SeqCst),
    );
    let conn = st.db.conn().await.unwrap();
    let rows = conn
        .query(
            "SELECT status, count(*), max(attempts) FROM notification_outbox WHERE channel_id = $1 GROUP BY status",
            &[&dead],
        )
        .await
        .unwrap();
    for r in rows {
        let (s, c, a): (String, i64, i32) = (r.get(0), r.get(1), r.get(2));
        println!("blackhole   dead channel outbox: {c} {s} (max attempts {a})");
    }
    drop(conn);
    w.running.shutdown().await;
    admin_exec(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    let _ = std::fs::remove_dir_all(&dir);
}
