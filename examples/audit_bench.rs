//! Audit log benchmarks (see BENCHMARKS.md for results and the machine).
//!
//!   cargo run --release --example audit_bench -- append [seconds] [levels, e.g. 1,16,64,256]
//!   cargo run --release --example audit_bench -- verify [rows]
//!
//! Uses a fresh database on PALISADE_BENCH_DATABASE_URL (default: the local
//! PostgreSQL on 127.0.0.1:5432) and drops it afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use palisade::actors::audit_writer::{AuditMsg, AuditWriter, AuditWriterArgs};
use palisade::audit::canonical::{normalize_time, AuditRow, GENESIS};
use palisade::audit::checkpoint::{CheckpointSink, FileSink};
use palisade::audit::keys::AuditKeys;
use palisade::audit::{ActorKind, AuditEvent};
use palisade::clock::SystemClock;
use palisade::security::secret::MasterSecret;
use palisade::store::{audit as store, migrate, Db};
use ractor::Actor;
use serde_json::json;

fn admin_url() -> String {
    std::env::var("PALISADE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_db() -> (String, String) {
    let admin = admin_url();
    let name = format!("palisade_bench_{}", uuid::Uuid::new_v4().simple());
    let (c, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

async fn drop_db(name: &str) {
    let (c, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

fn keys() -> Arc<AuditKeys> {
    Arc::new(AuditKeys::new(
        &MasterSecret::from_string("bench-master-secret-0123456789-abcdefghijkl".into()).unwrap(),
        &[],
    ))
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new("user.updated")
        .actor(ActorKind::User, Some("0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into()))
        .target("user", "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3")
        .ip(Some("203.0.113.9".parse().unwrap()))
        .request(&format!("req_{i:016x}"))
        .details(json!({ "fields": ["display_name"], "n": i }))
}

async fn append(seconds: u64, levels: Vec<usize>) {
    for concurrency in levels {
        let (url, name) = fresh_db().await;
        let db = Db::connect(&url, 4).unwrap();
        migrate::run(&db).await.unwrap();
        let dir = std::env::temp_dir().join(format!("{name}-cp"));
        let sink: Arc<dyn CheckpointSink> = Arc::new(FileSink::new(dir.join("checkpoints.log")));
        let args = AuditWriterArgs {
            db: db.sibling(2).unwrap(),
            keys: keys(),
            sink,
            clock: SystemClock::shared(),
            checkpoint_interval: Duration::from_secs(1),
            allow_broken_chain: false,
        };
        let (writer, _) = Actor::spawn(None, AuditWriter, args).await.unwrap();
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).unwrap();
                let mut i = (t as u64) << 40;
                while Instant::now() < end {
                    let started = Instant::now();
                    let ev = event(i);
                    i += 1;
                    let r =
                        writer.call(|reply| AuditMsg::Append { event: ev, reply }, Some(Duration::from_secs(30))).await;
                    assert!(matches!(r, Ok(ractor::rpc::CallResult::Success(Ok(_)))));
                    h.record(started.elapsed().as_micros() as u64).unwrap();
                }
                h
            }));
        }
        let mut h = Histogram::<u64>::new(3).unwrap();
        for t in tasks {
            h.add(t.await.unwrap()).unwrap();
        }
        writer.stop(None);
        println!(
            "append concurrency={concurrency:>2}: {:>7.0} appends/s  enqueue->commit p50={:.2}ms p99={:.2}ms max={:.2}ms ({} appends in {seconds}s)",
            h.len() as f64 / seconds as f64,
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        );
        let _ = std::fs::remove_dir_all(dir);
        drop(db);
        drop_db(&name).await;
    }
}

async fn verify(rows: i64) {
    let (url, name) = fresh_db().await;
    let db = Db::connect(&url, 4).unwrap();
    migrate::run(&db).await.unwrap();
    let keys = keys();
    let (kid, key) = keys.rows.signing();
    let started = Instant::now();
    let mut prev = GENESIS;
    let conn = db.conn().await.unwrap();
    let now = normalize_time(chrono::Utc::now());
    let mut seq = 0i64;
    while seq < rows {
        let mut batch = Vec::with_capacity(10_000);
        for _ in 0..10_000.min(rows - seq) {
            seq += 1;
            let mut row = AuditRow {
                seq,
                occurred_at: now,
                actor_kind: "user".into(),
                actor_id: Some("0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into()),
                action: "user.updated".into(),
                project_id: None,
                target_type: Some("user".into()),
                target_id: Some("0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into()),
                outcome: "success".into(),
                client_ip: Some("203.0.113.9".parse().unwrap()),
                request_id: Some(format!("req_{seq:016x}")),
                details: format!("{{\"fields\":[\"display_name\"],\"n\":{seq}}}"),
                key_id: kid.to_string(),
                prev_hmac: prev,
                row_hmac: [0; 32],
            };
            row.row_hmac = row.compute_hmac(key);
            prev = row.row_hmac;
            batch.push(row);
        }
        store::insert_batch(&conn, &batch).await.unwrap();
    }
    drop(conn);
    println!("loaded {rows} chained rows in {:.1}s", started.elapsed().as_secs_f64());
    {
        use futures_util::StreamExt;
        let started = Instant::now();
        let conn = db.conn().await.unwrap();
        let stream = store::stream_from(&conn, 1).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let mut n = 0u64;
        while let Some(r) = stream.next().await {
            std::hint::black_box(r.unwrap());
            n += 1;
        }
        println!("scan only (fetch + decode, no MAC): {n} rows in {:.2}s", started.elapsed().as_secs_f64());
    }
    let runs = std::env::var("AUDIT_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    // One walk, then the segment count `verify_table` picks on this machine.
    let auto = palisade::audit::scan::segments_for(rows);
    for run in 1..=runs {
        for segments in [1, auto] {
            let started = Instant::now();
            let report =
                palisade::audit::scan::verify_segmented(&db, &keys, &[], Some(segments), |_| {}).await.unwrap();
            let secs = started.elapsed().as_secs_f64();
            assert!(report.intact && report.rows_checked as i64 == rows);
            println!(
                "verify run {run}, {segments} segment(s): {rows} rows in {secs:.2}s = {:.0} rows/s",
                rows as f64 / secs
            );
        }
    }
    drop(db);
    drop_db(&name).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("append") => {
            // Optional third argument: concurrency levels, e.g. `1,16,64,256`.
            let levels = args
                .get(3)
                .map(|l| l.split(',').filter_map(|c| c.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1, 16, 64]);
            append(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10), levels).await
        }
        Some("verify") => verify(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000)).await,
        _ => eprintln!("usage: audit_bench append [seconds] [levels] | verify [rows]"),
    }
}
